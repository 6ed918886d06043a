// The run dashboard in the webview: the runs' headers, a toolbar (smoothing, log scale, x axis, reset zoom, CSV),
// one chart per metric (webview/dashboard/chart.ts behind chartApi.ts), and each run's checkpoints with their
// sample in three columns. It renders what the host sends (webview/dashboard/protocol.ts): a snapshot on `ready`,
// then columnar metrics batches that it appends to the charts (never redrawing from scratch), and whole headers
// and checkpoint lists. The settings and the runs are kept with setState, so a hidden or reloaded panel comes back
// as it was.
//
// For tests, `window.finetuneDashboard` exposes the same read-out as the host's `dashboard/inspect` request:
// `inspect()` returns an InspectResult, `apply(settings)` sets the toolbar's settings, `chart(id)` a chart's
// ChartData, and `received()` the rows of metrics received so far.
import { format } from '../protocol';
import { byId, connectToHost, el } from '../host';
import { createMetricChart } from './chart';
import { DEFAULT_CHART_SETTINGS, type ChartData, type ChartSettings, type ChartSpec, type MetricChart, type SeriesPoints, type SeriesSpec, type XAxisMode } from './chartApi';
import { formatDuration } from './chartFormat';
import {
  ApplySettingsRequest,
  CheckpointActionRequest,
  CheckpointsNotification,
  ChartPngRequest,
  DashboardReadyRequest,
  ExportCsvRequest,
  HeadersNotification,
  InspectRequest,
  MetricsNotification,
  RunActionRequest,
  SavePngRequest,
  SettingsChangedNotification,
  type CheckpointView,
  type DashboardRunRef,
  type DashboardState,
  type DashboardStringKey,
  type InspectedCheckpoint,
  type InspectResult,
  type MetricField,
  type MetricsBatch,
  type RunCheckpoints,
  type RunHeaderView,
} from './protocol';

const { vscode, ipc } = connectToHost();

// ---------------------------------------------------------------------------------------------------------
// State

let strings: Record<DashboardStringKey, string> | undefined;
let settings: ChartSettings = { ...DEFAULT_CHART_SETTINGS };
let runRefs: DashboardRunRef[] = [];
let headers: RunHeaderView[] = [];
const checkpointLists = new Map<number, CheckpointView[]>();
const charts = new Map<string, MetricChart>();
/** Checkpoint steps per run (the markers on every chart). */
const markerSteps = new Map<number, number[]>();
let received = 0;

function t(key: DashboardStringKey, ...args: (string | number)[]): string {
  return format(strings?.[key] ?? key, ...args);
}

function saveState(): void {
  const state: DashboardState = { runs: runRefs, settings };
  vscode.setState(state);
}

function savedState(): DashboardState | null {
  const state = vscode.getState() as Partial<DashboardState> | undefined | null;
  if (state === undefined || state === null || !Array.isArray(state.runs) || typeof state.settings !== 'object' || state.settings === null) return null;
  return { runs: state.runs, settings: { ...DEFAULT_CHART_SETTINGS, ...state.settings } };
}

// ---------------------------------------------------------------------------------------------------------
// Colours: the theme's chart colours, read from the page (the canvas needs real colours, not var(…)).

const PALETTE = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];
const FALLBACK = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'];

function themeColor(index: number): string {
  const i = index % PALETTE.length;
  const value = getComputedStyle(document.body).getPropertyValue(PALETTE[i]).trim();
  return value === '' ? FALLBACK[i] : value;
}

/** The colour of a series: one colour per run when runs are compared, else one per metric of the chart. */
function seriesColor(run: number, metricIndex: number): string {
  return runRefs.length > 1 ? themeColor(run) : themeColor(metricIndex);
}

// ---------------------------------------------------------------------------------------------------------
// Charts

interface ChartDef {
  id: string;
  title: DashboardStringKey;
  /** The metrics on the chart; the second of a pair (valid_*) is dashed. */
  metrics: { field: MetricField; dashed?: boolean; smooth?: boolean; colorIndex: number }[];
  formatY?: (value: number) => string;
  /** Created only once a value arrives (GPU memory: GPU engines only). */
  lazy?: boolean;
}

const CHART_DEFS: readonly ChartDef[] = [
  {
    id: 'loss',
    title: 'chart.loss',
    metrics: [
      { field: 'train_loss', colorIndex: 0 },
      { field: 'valid_loss', dashed: true, colorIndex: 1 },
    ],
  },
  {
    id: 'accuracy',
    title: 'chart.accuracy',
    metrics: [
      { field: 'train_mean_token_accuracy', colorIndex: 0 },
      { field: 'valid_mean_token_accuracy', dashed: true, colorIndex: 1 },
    ],
    formatY: (v) => `${Number((v * 100).toPrecision(4))}%`,
  },
  { id: 'learning_rate', title: 'chart.learning_rate', metrics: [{ field: 'learning_rate', smooth: false, colorIndex: 3 }], formatY: (v) => (v === 0 ? '0' : v.toExponential(2)) },
  { id: 'grad_norm', title: 'chart.grad_norm', metrics: [{ field: 'grad_norm', colorIndex: 4 }] },
  { id: 'tokens_per_second', title: 'chart.tokens_per_second', metrics: [{ field: 'tokens_per_second', colorIndex: 2 }], formatY: (v) => compact(v) },
  { id: 'gpu_memory', title: 'chart.gpu_memory', metrics: [{ field: 'gpu_memory', colorIndex: 5 }], formatY: (v) => `${(v / 2 ** 30).toFixed(2)} GiB`, lazy: true },
];

function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${Number((value / 1e6).toPrecision(3))}M`;
  if (abs >= 1e3) return `${Number((value / 1e3).toPrecision(3))}k`;
  return String(Number(value.toPrecision(3)));
}

function seriesKey(run: number, field: MetricField): string {
  return `${run}/${field}`;
}

function runName(run: number): string {
  return headers[run]?.name ?? runRefs[run]?.jobId ?? String(run);
}

function chartSpec(def: ChartDef): ChartSpec {
  const series: SeriesSpec[] = [];
  for (let run = 0; run < runRefs.length; run++) {
    for (const metric of def.metrics) {
      const label = runRefs.length > 1 ? `${runName(run)} · ${t(`series.${metric.field}`)}` : t(`series.${metric.field}`);
      series.push({ key: seriesKey(run, metric.field), label, color: seriesColor(run, metric.colorIndex), dashed: metric.dashed === true, smooth: metric.smooth !== false });
    }
  }
  const strings = { step: t('chart.step'), time: t('chart.time'), raw: t('chart.raw'), resetZoom: t('action.resetZoom'), zoomHint: t('chart.zoomHint') };
  const spec: ChartSpec = { id: def.id, title: t(def.title), series, strings, ...(def.formatY === undefined ? {} : { formatY: def.formatY }) };
  return spec;
}

function createChart(def: ChartDef): MetricChart {
  const existing = charts.get(def.id);
  if (existing !== undefined) return existing;
  const grid = byId('charts');
  const title = t(def.title);
  const body = el('div', { class: 'chart-body' });
  // The chart draws its own title, read-out and zoom button; the card adds the PNG export in its corner.
  const png = el('button', { class: 'link-button chart-png', type: 'button', title: t('action.png'), 'data-action': 'png' }, t('action.png'));
  const card = el('section', { class: 'chart-card', id: `chart-${def.id}`, 'data-chart': def.id, 'aria-label': title }, png, body);
  grid.append(card);
  const chart = createMetricChart(body, chartSpec(def), settings);
  chart.setMarkers(allMarkers());
  png.addEventListener('click', () => void savePng(def.id, title));
  charts.set(def.id, chart);
  return chart;
}

async function savePng(chartId: string, title: string): Promise<void> {
  const chart = charts.get(chartId);
  if (chart === undefined) return;
  try {
    const dataUrl = await chart.toPng();
    const { path } = await ipc.request(SavePngRequest, { chartId, title: chartId, dataUrl }, 120_000);
    if (path !== null) showToast(t('exported', path));
  } catch (error) {
    showToast(t('failed', `${title}: ${error instanceof Error ? error.message : String(error)}`), true);
  }
}

function appendBatches(batches: readonly MetricsBatch[]): void {
  const perChart = new Map<string, SeriesPoints[]>();
  for (const batch of batches) {
    received += batch.step.length;
    for (const def of CHART_DEFS) {
      for (const metric of def.metrics) {
        const column = batch.values[metric.field];
        if (column === undefined) continue;
        const points = pointsOf(seriesKey(batch.run, metric.field), batch, column);
        if (points.step.length === 0) continue;
        let list = perChart.get(def.id);
        if (list === undefined) {
          list = [];
          perChart.set(def.id, list);
        }
        list.push(points);
      }
    }
  }
  for (const [id, points] of perChart) {
    const def = CHART_DEFS.find((d) => d.id === id);
    if (def === undefined) continue;
    const chart = charts.get(id) ?? createChart(def);
    chart.append(points);
  }
  if (received > 0) document.body.classList.add('has-metrics');
}

/** One series' points of a batch: every row when the column is dense (no copy of x), else the rows with a value. */
function pointsOf(key: string, batch: MetricsBatch, column: Float64Array): SeriesPoints {
  let dense = true;
  for (let i = 0; i < column.length && dense; i++) dense = !Number.isNaN(column[i]);
  if (dense) return { key, step: batch.step, time: batch.time, y: column };
  const step: number[] = [];
  const time: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < column.length; i++) {
    const value = column[i];
    if (Number.isNaN(value)) continue;
    step.push(batch.step[i]);
    time.push(batch.time[i]);
    y.push(value);
  }
  return { key, step, time, y };
}

function allMarkers(): number[] {
  const steps = new Set<number>();
  for (const list of markerSteps.values()) for (const s of list) steps.add(s);
  return [...steps].sort((a, b) => a - b);
}

function applySettings(next: Partial<ChartSettings>): ChartSettings {
  const smoothing = next.smoothing ?? settings.smoothing;
  if (!Number.isFinite(smoothing) || smoothing < 0 || smoothing >= 1) throw new Error(`smoothing must be in [0, 1): got ${String(smoothing)}`);
  const xAxis: XAxisMode = next.xAxis ?? settings.xAxis;
  if (xAxis !== 'step' && xAxis !== 'time') throw new Error(`xAxis must be "step" or "time": got ${String(xAxis)}`);
  settings = { smoothing, logScale: next.logScale ?? settings.logScale, xAxis };
  for (const chart of charts.values()) chart.apply(settings);
  renderToolbarValues();
  saveState();
  ipc.notify(SettingsChangedNotification, { settings });
  return settings;
}

// ---------------------------------------------------------------------------------------------------------
// The page

function renderSkeleton(): void {
  const app = byId('app');
  app.replaceChildren(
    el('section', { id: 'runs', class: 'runs', 'aria-label': t('status') }),
    toolbar(),
    el('p', { id: 'noMetrics', class: 'muted no-metrics' }, t('noMetrics')),
    el('div', { id: 'charts', class: 'charts' }),
    el('section', { id: 'checkpoints', class: 'checkpoints' }, el('h2', {}, t('checkpoints')), el('div', { id: 'checkpointLists' })),
    el('div', { id: 'toast', class: 'toast', role: 'status', 'aria-live': 'polite' }),
  );
  app.removeAttribute('aria-busy');
}

function toolbar(): HTMLElement {
  const slider = el('input', { id: 'smoothing', type: 'range', min: '0', max: '0.99', step: '0.01', 'aria-label': t('toolbar.smoothing') });
  slider.addEventListener('input', () => applySettings({ smoothing: Number(slider.value) }));
  const log = el('input', { id: 'logScale', type: 'checkbox' });
  log.addEventListener('change', () => applySettings({ logScale: log.checked }));
  const axis = el('div', { class: 'segmented', role: 'radiogroup', 'aria-label': t('toolbar.xAxis') });
  for (const mode of ['step', 'time'] as const) {
    const button = el('button', { type: 'button', role: 'radio', 'data-axis': mode, id: `xAxis-${mode}` }, t(mode === 'step' ? 'xAxis.step' : 'xAxis.time'));
    button.addEventListener('click', () => applySettings({ xAxis: mode }));
    axis.append(button);
  }
  const reset = el('button', { type: 'button', id: 'resetZoom', class: 'secondary' }, t('action.resetZoom'));
  reset.addEventListener('click', () => {
    for (const chart of charts.values()) chart.resetZoom();
  });
  const csv = el('button', { type: 'button', id: 'exportCsv', class: 'secondary' }, t('action.exportCsv'));
  csv.addEventListener('click', () => void exportCsv());
  return el(
    'div',
    { class: 'toolbar', role: 'toolbar' },
    el('label', { class: 'tool', for: 'smoothing' }, el('span', {}, t('toolbar.smoothing')), slider, el('output', { id: 'smoothingValue', for: 'smoothing' })),
    el('label', { class: 'tool' }, log, el('span', {}, t('toolbar.logScale'))),
    el('span', { class: 'tool' }, el('span', {}, t('toolbar.xAxis')), axis),
    el('span', { class: 'spacer' }),
    reset,
    csv,
  );
}

function renderToolbarValues(): void {
  const slider = document.getElementById('smoothing') as HTMLInputElement | null;
  if (slider === null) return;
  slider.value = String(settings.smoothing);
  byId('smoothingValue').textContent = settings.smoothing.toFixed(2);
  (byId('logScale') as HTMLInputElement).checked = settings.logScale;
  for (const mode of ['step', 'time'] as const) {
    const button = byId(`xAxis-${mode}`);
    button.setAttribute('aria-checked', String(settings.xAxis === mode));
    button.classList.toggle('selected', settings.xAxis === mode);
  }
}

async function exportCsv(): Promise<void> {
  try {
    const { path } = await ipc.request(ExportCsvRequest, {}, 10 * 60_000);
    if (path !== null) showToast(t('exported', path));
  } catch (error) {
    showToast(t('failed', error instanceof Error ? error.message : String(error)), true);
  }
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function showToast(text: string, error = false): void {
  const toast = byId('toast');
  toast.textContent = text;
  toast.classList.toggle('error', error);
  toast.classList.add('shown');
  if (toastTimer !== undefined) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => toast.classList.remove('shown'), 5000);
}

function renderHeaders(): void {
  const section = byId('runs');
  section.replaceChildren(...headers.map((h) => runCard(h)));
  tick();
  // Series labels carry the run names in a comparison: names known late (a job read after the snapshot) are not
  // worth rebuilding charts for; the legend keeps the id prefix then.
}

function runCard(h: RunHeaderView): HTMLElement {
  const swatch = el('span', { class: 'swatch', 'aria-hidden': 'true' });
  swatch.style.background = themeColor(h.index);
  const title = el('h1', {}, ...(runRefs.length > 1 ? [swatch] : []), h.name);
  const status = el('span', { class: `badge status-${h.status}` }, h.statusText === '' ? t('loading') : h.statusText);
  const fraction = h.totalSteps > 0 ? Math.min(1, h.step / h.totalSteps) : 0;
  const bar = el('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': String(h.totalSteps), 'aria-valuenow': String(h.step) }, el('div', { class: 'bar' }));
  (bar.firstElementChild as HTMLElement).style.width = `${(fraction * 100).toFixed(1)}%`;
  const facts = el(
    'div',
    { class: 'stats' },
    stat(t('model'), h.model),
    stat(t('progress'), h.totalSteps > 0 ? t('progress.value', h.step.toLocaleString('en-US'), h.totalSteps.toLocaleString('en-US')) : '—'),
    stat(t('epoch'), h.epoch > 0 ? h.epoch.toFixed(2) : '—'),
    stat(t('elapsed'), '—', 'elapsed'),
    stat(h.final ? t('eta.done') : t('eta'), '—', 'eta'),
    stat(t('tokens'), h.tokens),
  );
  const actions = el('div', { class: 'actions' });
  if (!h.final && h.status !== '') {
    const cancel = el('button', { type: 'button', class: 'secondary', 'data-action': 'cancel' }, t('action.cancel'));
    cancel.addEventListener('click', () => void runAction(h.index, 'cancel', cancel));
    actions.append(cancel);
  }
  if (h.status !== '') {
    const rerun = el('button', { type: 'button', class: 'secondary', 'data-action': 'rerun' }, t('action.rerun'));
    rerun.addEventListener('click', () => void runAction(h.index, 'rerun', rerun));
    actions.append(rerun);
  }
  const details = el('details', { class: 'settings' }, el('summary', {}, t('settings')), el('dl', { class: 'settings-grid' }, ...h.settings.map((row) => fact(row.label, row.value))));
  const card = el('article', { class: 'run-card', 'data-run': String(h.index), 'data-status': h.status }, el('div', { class: 'run-title' }, title, status, actions), bar, facts, details);
  card.dataset.startedAt = h.startedAt === null ? '' : String(h.startedAt);
  card.dataset.finishedAt = h.finishedAt === null ? '' : String(h.finishedAt);
  card.dataset.etaAt = h.etaAt === null ? '' : String(h.etaAt);
  if (h.note !== null) card.append(el('p', { class: 'note muted', role: 'status' }, h.note));
  if (h.loading) card.append(el('p', { class: 'muted' }, t('loadingHistory')));
  if (h.loadError !== null) card.append(el('p', { class: 'error', role: 'alert' }, h.loadError));
  if (h.error !== null) card.append(el('p', { class: 'error', role: 'alert' }, h.error));
  return card;
}

/** One figure of the header: a small label over its value. */
function stat(label: string, value: string, id?: string): HTMLElement {
  const shown = el('span', { class: 'stat-value' }, value);
  if (id !== undefined) shown.dataset.fact = id;
  return el('div', { class: 'stat' }, el('span', { class: 'stat-label' }, label), shown);
}

function fact(label: string, value: string, id?: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const dd = el('dd', {}, value);
  if (id !== undefined) dd.dataset.fact = id;
  fragment.append(el('dt', {}, label), dd);
  return fragment;
}

/** Elapsed and remaining time tick every second without the host. */
function tick(): void {
  const now = Date.now() / 1000;
  for (const card of document.querySelectorAll<HTMLElement>('.run-card')) {
    const started = Number(card.dataset.startedAt || Number.NaN);
    const finished = Number(card.dataset.finishedAt || Number.NaN);
    const eta = Number(card.dataset.etaAt || Number.NaN);
    const elapsed = card.querySelector<HTMLElement>('[data-fact="elapsed"]');
    const remaining = card.querySelector<HTMLElement>('[data-fact="eta"]');
    if (elapsed !== null) elapsed.textContent = Number.isFinite(started) ? formatDuration(Math.max(0, (Number.isFinite(finished) ? finished : now) - started)) : '—';
    if (remaining !== null) {
      if (Number.isFinite(finished)) remaining.textContent = new Date(finished * 1000).toLocaleString(document.documentElement.lang || undefined, { dateStyle: 'medium', timeStyle: 'short' });
      else remaining.textContent = Number.isFinite(eta) ? formatDuration(Math.max(0, eta - now)) : '—';
    }
  }
}

async function runAction(run: number, action: 'cancel' | 'rerun', button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    await ipc.request(RunActionRequest, { run, action }, 60_000);
  } catch (error) {
    showToast(t('failed', error instanceof Error ? error.message : String(error)), true);
  } finally {
    button.disabled = false;
  }
}

function setCheckpoints(lists: readonly RunCheckpoints[]): void {
  for (const list of lists) {
    checkpointLists.set(list.run, list.checkpoints);
    markerSteps.set(list.run, list.checkpoints.map((c) => c.step));
  }
  const markers = allMarkers();
  for (const chart of charts.values()) chart.setMarkers(markers);
  renderCheckpoints();
}

function renderCheckpoints(): void {
  const container = byId('checkpointLists');
  const parts: HTMLElement[] = [];
  for (let run = 0; run < runRefs.length; run++) {
    const list = checkpointLists.get(run) ?? [];
    const group = el('div', { class: 'checkpoint-group', 'data-run': String(run) });
    if (runRefs.length > 1) {
      const swatch = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      swatch.style.background = themeColor(run);
      group.append(el('h3', {}, swatch, runName(run)));
    }
    if (list.length === 0) group.append(el('p', { class: 'muted' }, t('checkpoints.none')));
    // Newest first: the latest checkpoint is the one a person looks at.
    for (const checkpoint of [...list].reverse()) group.append(checkpointCard(run, checkpoint));
    parts.push(group);
  }
  container.replaceChildren(...parts);
}

function checkpointCard(run: number, c: CheckpointView): HTMLElement {
  const test = el('button', { type: 'button', 'data-action': 'test' }, t('action.test'));
  test.addEventListener('click', () => void checkpointAction(run, c.id, 'test', test));
  const save = el('button', { type: 'button', class: 'secondary', 'data-action': 'save' }, t('action.save'));
  save.addEventListener('click', () => void checkpointAction(run, c.id, 'save', save));
  const metrics = el('span', { class: 'checkpoint-metrics' }, ...c.metrics.map((m) => el('span', { class: 'metric' }, el('span', { class: 'muted' }, m.label), ' ', m.value)));
  const head = el('div', { class: 'checkpoint-head' }, el('h4', {}, t('checkpoint.step', c.step)), metrics, el('span', { class: 'spacer' }), test, save);
  const card = el('article', { class: 'checkpoint', 'data-run': String(run), 'data-step': String(c.step), 'data-id': c.id }, head);
  if (c.sample === null) {
    card.append(el('p', { class: 'muted' }, t('sample.none')));
    return card;
  }
  const prompt = el('div', { class: 'column sample-prompt' }, el('h5', {}, t('sample.prompt')));
  if (c.sample.system !== null) prompt.append(el('div', { class: 'turn system' }, el('span', { class: 'role' }, t('sample.system')), el('div', { class: 'turn-content system-content' }, c.sample.system)));
  for (const turn of c.sample.prompt) {
    const role = turn.role === 'user' ? t('role.user') : turn.role === 'assistant' ? t('role.assistant') : turn.role === 'system' ? t('role.system') : turn.role;
    prompt.append(el('div', { class: `turn ${turn.role}` }, el('span', { class: 'role' }, role), el('div', { class: 'turn-content prompt-content' }, turn.content)));
  }
  const reference = el('div', { class: 'column sample-reference' }, el('h5', {}, t('sample.reference')), el('div', { class: 'turn-content reference-content' }, c.sample.reference));
  const answer = el('div', { class: 'column sample-answer' }, el('h5', {}, t('sample.answer')), el('div', { class: 'turn-content answer-content' }, c.sample.answer));
  card.append(el('div', { class: 'sample' }, prompt, reference, answer));
  return card;
}

async function checkpointAction(run: number, checkpointId: string, action: 'test' | 'save', button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    // Saving downloads the adapter (with its own progress): the host answers when it is done.
    await ipc.request(CheckpointActionRequest, { run, checkpointId, action }, 60 * 60_000);
  } catch (error) {
    showToast(t('failed', error instanceof Error ? error.message : String(error)), true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Read-out (tests)

function inspect(): InspectResult {
  const checkpoints: InspectedCheckpoint[] = [];
  for (const card of document.querySelectorAll<HTMLElement>('#checkpointLists .checkpoint')) {
    const text = (selector: string): string => [...card.querySelectorAll(selector)].map((n) => n.textContent ?? '').join('\n');
    checkpoints.push({
      run: Number(card.dataset.run),
      step: Number(card.dataset.step),
      system: card.querySelector('.system-content')?.textContent ?? null,
      prompt: text('.prompt-content'),
      reference: text('.reference-content'),
      answer: text('.answer-content'),
    });
  }
  checkpoints.sort((a, b) => a.run - b.run || a.step - b.step);
  const chartData: ChartData[] = [...charts.values()].map((c) => c.data());
  const runs = [...document.querySelectorAll<HTMLElement>('#runs .run-card')].map((card) => ({
    name: card.querySelector('h1')?.textContent ?? '',
    status: card.querySelector('.badge')?.textContent ?? '',
    progress: card.querySelector('.stat:nth-child(2) .stat-value')?.textContent ?? '',
    settings: [...card.querySelectorAll('.settings-grid dt')].map((dt) => `${dt.textContent ?? ''}: ${dt.nextElementSibling?.textContent ?? ''}`),
  }));
  return { charts: chartData, checkpoints, settings: { ...settings }, received, runs };
}

declare global {
  interface Window {
    /** The dashboard's read-out for tests (see the file comment). */
    finetuneDashboard?: {
      inspect(): InspectResult;
      apply(next: Partial<ChartSettings>): ChartSettings;
      chart(id: string): ChartData | undefined;
      /** Rows of metrics received so far (cheap: for waiting on a big history). */
      received(): number;
    };
  }
}

window.finetuneDashboard = { inspect, apply: applySettings, chart: (id) => charts.get(id)?.data(), received: () => received };

// ---------------------------------------------------------------------------------------------------------
// Wiring

// Until the snapshot is rendered there is nothing to update: what comes before it comes again after `ready`.
let started = false;
ipc.onNotification(MetricsNotification, ({ batches }) => {
  if (started) appendBatches(batches);
});
ipc.onNotification(HeadersNotification, ({ runs }) => {
  if (!started) return;
  headers = runs;
  renderHeaders();
});
ipc.onNotification(CheckpointsNotification, ({ lists }) => {
  if (started) setCheckpoints(lists);
});
ipc.onRequest(InspectRequest, () => inspect());
ipc.onRequest(ApplySettingsRequest, ({ settings: next }) => applySettings(next));
ipc.onRequest(ChartPngRequest, async ({ chartId }) => {
  const chart = charts.get(chartId);
  if (chart === undefined) throw new Error(`No chart "${chartId}" on this dashboard.`);
  return { dataUrl: await chart.toPng() };
});

async function start(): Promise<void> {
  const snapshot = await ipc.request(DashboardReadyRequest, { saved: savedState() });
  strings = snapshot.strings;
  settings = snapshot.settings;
  runRefs = snapshot.runRefs;
  headers = snapshot.runs;
  saveState();
  renderSkeleton();
  renderToolbarValues();
  renderHeaders();
  for (const def of CHART_DEFS) if (def.lazy !== true) createChart(def);
  setCheckpoints(snapshot.checkpoints);
  started = true;
  setInterval(tick, 1000);
  let resizeFrame = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(() => {
      for (const chart of charts.values()) chart.resize();
    });
  }).observe(byId('charts'));
}

start().catch((error: unknown) => {
  const app = document.getElementById('app');
  if (app !== null) app.replaceChildren(el('p', { class: 'error', role: 'alert' }, error instanceof Error ? error.message : String(error)));
});
