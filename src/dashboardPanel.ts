// The run dashboard (issue 7): one webview panel per run (or per set of compared runs) with the run's header,
// live charts of every metric (webview/dashboard/), and its checkpoints with their samples. History comes from the
// backend in one `…/metrics` answer of columns (or `…/events` pages from a backend without that route:
// src/dashboardModel.ts HistoryReader), what follows from the sidebar's live stream (`RunsModel.onEvent`),
// deduplicated by seq; a gap (or no stream at all) is filled by reading what came after the last seq seen. The
// host keeps every point (src/dashboardModel.ts MetricsTable) and sends the webview columnar batches at most every
// 100 ms; a reloaded webview gets everything again. The host side of webview/dashboard/protocol.ts.
import { writeFile } from 'node:fs/promises';
import * as vscode from 'vscode';
import type { FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent } from '../common/api';
import { IpcEndpoint } from '../webview/protocol';
import { DEFAULT_CHART_SETTINGS, type ChartSettings } from '../webview/dashboard/chartApi';
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
  type DashboardSnapshot,
  type DashboardState,
  type InspectResult,
  type MetricsBatch,
  type RunCheckpoints,
  type RunHeaderView,
} from '../webview/dashboard/protocol';
import type { BackendClient } from './backendClient';
import type { BackendRegistry } from './backendRegistry';
import type { CommandFactory } from './commands';
import { checkpointView, exportFileName, headerView, HistoryReader, MetricsTable, metricsCsv } from './dashboardModel';
import { dashboardStrings } from './dashboardStrings';
import { isFinal, runRefOf, type RunRef, type RunsModel } from './runsModel';
import { runLabel, shortJobId } from './runsText';
import { webviewPageHtml, webviewPanelOptions } from './webviewPage';

/** What the dashboards need from the extension. */
export interface DashboardDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  backends: BackendRegistry;
  model: RunsModel;
}

/** What the extension's API exposes of the dashboards, for the in-host tests. */
export interface DashboardsApi {
  /** Opens (or reveals) the dashboard of these runs (one run, or several compared). */
  open(runs: readonly RunRef[]): Promise<void>;
  /** The runs of every open dashboard, one list per panel. */
  openPanels(): RunRef[][];
  /**
   * What the dashboard of these runs holds and shows, read from its webview once its history is loaded and every
   * point the host has was sent (opens the dashboard first when needed).
   */
  inspect(runs: readonly RunRef[]): Promise<InspectResult>;
  /** Applies chart settings as the toolbar does; resolves with the settings now in force. */
  applySettings(runs: readonly RunRef[], settings: Partial<ChartSettings>): Promise<ChartSettings>;
  /** Writes the dashboard's CSV export to `path` (what "Export CSV" does after its dialog). */
  exportCsv(runs: readonly RunRef[], path: string): Promise<void>;
  /** A chart's PNG, as a data: URL. */
  chartPng(runs: readonly RunRef[], chartId: string): Promise<string>;
}

/** The id of a set of runs: the same set (in any order) is the same dashboard. */
function panelKey(runs: readonly RunRef[]): string {
  return runs
    .map((r) => `${r.backend}\u0000${r.jobId}`)
    .sort()
    .join('\u0001');
}

/** Every dashboard panel of the window. */
export class DashboardPanels implements vscode.Disposable {
  static readonly viewType = 'finetune.dashboard';
  readonly api: DashboardsApi;
  private readonly panels = new Map<string, DashboardPanel>();
  private readonly registrations: vscode.Disposable[] = [];
  /** Shared by the panels: which backends lack the metrics route is found out once per backend. */
  private readonly history = new HistoryReader();

  constructor(readonly deps: DashboardDeps) {
    this.api = {
      open: (runs) => this.open(runs),
      openPanels: () => [...this.panels.values()].map((p) => p.runRefs()),
      inspect: async (runs) => (await this.panelFor(runs)).inspect(),
      applySettings: async (runs, settings) => (await this.panelFor(runs)).applySettings(settings),
      exportCsv: async (runs, path) => (await this.panelFor(runs)).exportCsv(path),
      chartPng: async (runs, chartId) => (await this.panelFor(runs)).chartPng(chartId),
    };
    this.registrations.push(
      vscode.window.registerWebviewPanelSerializer(DashboardPanels.viewType, {
        deserializeWebviewPanel: (panel, state: unknown) => {
          const saved = dashboardStateOf(state);
          if (saved === undefined || saved.runs.length === 0) {
            panel.dispose();
            return Promise.resolve();
          }
          this.adopt(panel, saved.runs, saved.settings);
          return Promise.resolve();
        },
      }),
    );
  }

  /** Opens (or reveals) the dashboard of these runs. */
  open(runs: readonly RunRef[]): Promise<void> {
    this.show(runs);
    return Promise.resolve();
  }

  /** The panel of these runs, opened when needed. */
  private panelFor(runs: readonly RunRef[]): Promise<DashboardPanel> {
    return Promise.resolve(this.show(runs));
  }

  private show(runs: readonly RunRef[]): DashboardPanel {
    if (runs.length === 0) throw new Error(vscode.l10n.t('A dashboard needs at least one run.'));
    const unique = uniqueRuns(runs);
    const existing = this.panels.get(panelKey(unique));
    if (existing !== undefined) {
      existing.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(DashboardPanels.viewType, panelTitle(unique, this.deps.model), vscode.ViewColumn.Active, this.webviewOptions());
    return this.adopt(panel, unique, undefined);
  }

  /** The webview's options: scripts, and only dist/webview and media/ as local resources. */
  webviewOptions(): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return webviewPanelOptions(this.deps.extension.extensionUri);
  }

  private adopt(webviewPanel: vscode.WebviewPanel, runs: readonly RunRef[], settings: ChartSettings | undefined): DashboardPanel {
    webviewPanel.webview.options = this.webviewOptions();
    const key = panelKey(runs);
    const panel = new DashboardPanel(webviewPanel, this.deps, this.history, runs, settings);
    this.panels.get(key)?.close();
    this.panels.set(key, panel);
    webviewPanel.onDidDispose(() => {
      if (this.panels.get(key) === panel) this.panels.delete(key);
      panel.dispose();
    });
    return panel;
  }

  dispose(): void {
    for (const registration of this.registrations) registration.dispose();
    for (const panel of [...this.panels.values()]) panel.close();
  }
}

function uniqueRuns(runs: readonly RunRef[]): RunRef[] {
  const seen = new Set<string>();
  const out: RunRef[] = [];
  for (const run of runs) {
    const k = `${run.backend}\u0000${run.jobId}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ backend: run.backend, jobId: run.jobId });
  }
  return out;
}

function nameOf(run: RunRef, model: RunsModel): string {
  const job = model.run(run.backend, run.jobId)?.job;
  return job === undefined ? shortJobId(run.jobId) : runLabel(job);
}

function panelTitle(runs: readonly RunRef[], model: RunsModel): string {
  return panelTitleOf(runs.map((r) => nameOf(r, model)));
}

function panelTitleOf(names: readonly string[]): string {
  return names.length === 1 ? vscode.l10n.t('Run: {0}', names[0]) : vscode.l10n.t('Compare: {0}', names.join(', '));
}

function isChartSettings(value: unknown): value is ChartSettings {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<ChartSettings>;
  return typeof v.smoothing === 'number' && typeof v.logScale === 'boolean' && (v.xAxis === 'step' || v.xAxis === 'time');
}

/** The state a webview kept (setState), checked: anything else is ignored. */
function dashboardStateOf(value: unknown): DashboardState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as { runs?: unknown; settings?: unknown };
  if (!Array.isArray(v.runs)) return undefined;
  const runs = v.runs.map((r) => runRefOf(r)).filter((r): r is RunRef => r !== undefined);
  return { runs, settings: isChartSettings(v.settings) ? v.settings : { ...DEFAULT_CHART_SETTINGS } };
}

/** One run of a dashboard: its job, its metrics, its checkpoints, and where reading its history stands. */
interface RunData {
  readonly ref: RunRef;
  readonly index: number;
  job: FineTuningJob | undefined;
  readonly table: MetricsTable;
  readonly checkpoints: Map<string, FineTuningJobCheckpoint>;
  /** Reading events from the backend (the first history, or a catch-up after a gap): live events wait in `buffer`. */
  loading: boolean;
  loadError: string | null;
  readonly buffer: FineTuningJobEvent[];
  /** When the last event or job snapshot arrived (ms), for the poll that covers a missing stream. */
  lastNews: number;
  /** The run's latest message as the sidebar's model has it (the header shows it before the first step). */
  lastMessage: string | undefined;
}

/** How often the host sends the webview what arrived (ms): at most 10 messages a second, never one per point. */
const FLUSH_MS = 100;
/** A run that is not final and heard nothing for this long is polled (the stream may not be connected). */
const POLL_MS = 3_000;

/** One dashboard: its runs' data, the webview's channel, and the actions. */
class DashboardPanel {
  private readonly ipc: IpcEndpoint;
  private readonly runs: RunData[];
  private settings: ChartSettings;
  private readonly subscriptions: (() => void)[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private webviewReady = false;
  private readyWaiters: (() => void)[] = [];
  private loadWaiters: (() => void)[] = [];
  private headersDirty = false;
  private readonly checkpointsDirty = new Set<number>();
  private disposed = false;

  constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: DashboardDeps,
    private readonly history: HistoryReader,
    refs: readonly RunRef[],
    settings: ChartSettings | undefined,
  ) {
    this.settings = settings ?? { ...DEFAULT_CHART_SETTINGS };
    this.runs = refs.map((ref, index) => ({
      ref,
      index,
      job: deps.model.run(ref.backend, ref.jobId)?.job,
      table: new MetricsTable(),
      checkpoints: new Map(),
      loading: true,
      loadError: null,
      buffer: [],
      lastNews: Date.now(),
      lastMessage: deps.model.run(ref.backend, ref.jobId)?.lastMessage,
    }));
    this.ipc = new IpcEndpoint((message) => void this.panel.webview.postMessage(message));
    this.ipc.onRequest(DashboardReadyRequest, ({ saved }) => this.ready(saved));
    this.ipc.onRequest(RunActionRequest, ({ run, action }) => this.runAction(run, action));
    this.ipc.onRequest(CheckpointActionRequest, ({ run, checkpointId, action }) => this.checkpointAction(run, checkpointId, action));
    this.ipc.onRequest(ExportCsvRequest, () => this.exportCsvInteractively());
    this.ipc.onRequest(SavePngRequest, ({ title, dataUrl }) => this.savePng(title, dataUrl));
    this.ipc.onNotification(SettingsChangedNotification, ({ settings: s }) => {
      if (isChartSettings(s)) this.settings = s;
    });
    const messages = this.panel.webview.onDidReceiveMessage((message: unknown) => this.ipc.receive(message));
    // A hidden panel's webview is gone (its context is not retained): nothing is sent until the next `ready`.
    const visibility = this.panel.onDidChangeViewState(() => {
      if (!this.panel.visible) this.webviewReady = false;
    });
    this.subscriptions.push(
      () => messages.dispose(),
      () => visibility.dispose(),
      deps.model.onEvent((backend, event) => this.liveEvent(backend, event)),
      deps.model.onChange((change) => {
        if (change.kind !== 'run') return;
        const run = this.runs.find((r) => r.ref.backend === change.backend && r.ref.jobId === change.jobId);
        if (run !== undefined) this.modelChanged(run);
      }),
    );
    this.panel.webview.html = this.html();
    this.panel.iconPath = vscode.Uri.joinPath(deps.extension.extensionUri, 'media', 'finetune.svg');
    for (const run of this.runs) void this.load(run, true);
    this.pollTimer = setInterval(() => this.poll(), POLL_MS);
  }

  runRefs(): RunRef[] {
    return this.runs.map((r) => ({ ...r.ref }));
  }

  reveal(): void {
    this.panel.reveal();
  }

  close(): void {
    this.panel.dispose();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ipc.close();
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    for (const stop of this.subscriptions) stop();
    // Whoever waits (a test's inspect) goes on and meets the closed channel's error rather than waiting forever.
    this.releaseLoadWaiters();
    for (const w of this.readyWaiters.splice(0)) w();
  }

  // -------------------------------------------------------------------------------------------------------
  // For the tests (DashboardsApi)

  async inspect(): Promise<InspectResult> {
    await this.settled();
    return await this.ipc.request(InspectRequest, {});
  }

  async applySettings(settings: Partial<ChartSettings>): Promise<ChartSettings> {
    await this.whenReady();
    this.settings = await this.ipc.request(ApplySettingsRequest, { settings });
    return this.settings;
  }

  async exportCsv(path: string): Promise<void> {
    await this.whenLoaded();
    await writeFile(path, this.csv(), 'utf8');
  }

  async chartPng(chartId: string): Promise<string> {
    await this.settled();
    return (await this.ipc.request(ChartPngRequest, { chartId })).dataUrl;
  }

  /** The webview is ready, every history is read, and every point was sent. */
  private async settled(): Promise<void> {
    await this.whenReady();
    await this.whenLoaded();
    this.flush();
  }

  private whenReady(): Promise<void> {
    if (this.webviewReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private whenLoaded(): Promise<void> {
    if (this.runs.every((r) => !r.loading)) return Promise.resolve();
    return new Promise((resolve) => this.loadWaiters.push(resolve));
  }

  // -------------------------------------------------------------------------------------------------------
  // The data

  private ready(saved: DashboardState | null): DashboardSnapshot {
    if (saved !== null && isChartSettings(saved.settings)) this.settings = saved.settings;
    this.webviewReady = true;
    // A (re)loaded webview has nothing: everything goes again, after this answer.
    for (const run of this.runs) run.table.resend();
    this.headersDirty = false;
    this.checkpointsDirty.clear();
    this.scheduleFlush(0);
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    setTimeout(() => waiters.forEach((w) => w()), 0);
    return {
      strings: dashboardStrings(),
      runs: this.headers(),
      checkpoints: this.runs.map((r) => this.checkpointList(r)),
      settings: this.settings,
      runRefs: this.runRefs(),
    };
  }

  /** Reads what a run's table lacks of its history (all of it the first time; its checkpoints too). */
  private async load(run: RunData, first: boolean): Promise<void> {
    // One reader per run: two would race on the table's last seq (live events meanwhile wait in the buffer).
    if (!first && run.loading) return;
    run.loading = true;
    run.loadError = null;
    this.headersDirty = true;
    try {
      const client = await this.deps.backends.client(run.ref.backend);
      if (first) {
        run.job ??= await client.getJob(run.ref.jobId);
        void this.loadCheckpoints(run, client);
      }
      const started = Date.now();
      const read = await this.history.read(client, run.ref.jobId, run.table, {
        knownLastSeq: run.job?.last_event_seq ?? 0,
        stopped: () => this.disposed,
        onRows: () => this.scheduleFlush(),
      });
      if (read.fellBack) this.deps.log.info(`Dashboard: the backend at ${client.url} has no metrics route (an older backend); reading event pages instead.`);
      const what = read.via === 'metrics' ? 'metrics rows' : 'events';
      this.deps.log.info(`Dashboard: ${read.read} ${what} of ${run.ref.jobId} read in ${Date.now() - started} ms.`);
    } catch (error) {
      run.loadError = error instanceof Error ? error.message : String(error);
      this.deps.log.warn(`Dashboard: the history of ${run.ref.jobId} on ${run.ref.backend} could not be read: ${run.loadError}`);
    }
    const buffered = run.buffer.splice(0).sort((a, b) => a.seq - b.seq);
    for (const event of buffered) run.table.apply(event);
    run.loading = false;
    run.lastNews = Date.now();
    this.headersDirty = true;
    this.scheduleFlush();
    if (this.runs.every((r) => !r.loading)) this.releaseLoadWaiters();
  }

  private releaseLoadWaiters(): void {
    const waiters = this.loadWaiters;
    this.loadWaiters = [];
    for (const w of waiters) w();
  }

  private async loadCheckpoints(run: RunData, client: BackendClient): Promise<void> {
    try {
      let after: string | undefined;
      for (;;) {
        const page = await client.listCheckpoints(run.ref.jobId, after === undefined ? { limit: 100 } : { after, limit: 100 });
        for (const c of page.data) run.checkpoints.set(c.id, c);
        if (!page.has_more || page.last_id === null || page.last_id === undefined || page.data.length === 0) break;
        after = page.last_id;
      }
    } catch (error) {
      this.deps.log.warn(`Dashboard: the checkpoints of ${run.ref.jobId} could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.checkpointsDirty.add(run.index);
    this.scheduleFlush();
  }

  private liveEvent(backend: string, event: FineTuningJobEvent): void {
    const run = this.runs.find((r) => r.ref.backend === backend && r.ref.jobId === event.job_id);
    if (run === undefined) return;
    run.lastNews = Date.now();
    if (run.loading) {
      run.buffer.push(event);
      return;
    }
    // A gap (events the stream never delivered): read them from the backend rather than patch around it.
    if (event.seq > run.table.lastSeq + 1) {
      run.buffer.push(event);
      void this.load(run, false);
      return;
    }
    if (run.table.apply(event)) this.headersDirty = true;
    this.scheduleFlush();
  }

  private modelChanged(run: RunData): void {
    const state = this.deps.model.run(run.ref.backend, run.ref.jobId);
    if (state === undefined) return;
    run.lastNews = Date.now();
    if (run.job !== state.job || run.lastMessage !== state.lastMessage) {
      run.job = state.job;
      run.lastMessage = state.lastMessage;
      this.headersDirty = true;
    }
    let added = false;
    for (const c of state.checkpoints) {
      if (run.checkpoints.get(c.id) === c) continue;
      run.checkpoints.set(c.id, c);
      added = true;
    }
    if (added) this.checkpointsDirty.add(run.index);
    this.scheduleFlush();
  }

  /** Covers a missing or silent stream: a run that is not final and heard nothing lately is read again. */
  private poll(): void {
    const now = Date.now();
    for (const run of this.runs) {
      if (run.loading || (run.job !== undefined && isFinal(run.job.status)) || now - run.lastNews < POLL_MS) continue;
      run.lastNews = now;
      void this.refresh(run);
    }
  }

  private async refresh(run: RunData): Promise<void> {
    try {
      const client = await this.deps.backends.client(run.ref.backend);
      const job = await client.getJob(run.ref.jobId);
      run.job = job;
      this.headersDirty = true;
      if (job.last_event_seq > run.table.lastSeq) await this.load(run, false);
      if (isFinal(job.status)) await this.loadCheckpoints(run, client);
      this.scheduleFlush();
    } catch (error) {
      this.deps.log.warn(`Dashboard: ${run.ref.jobId} could not be refreshed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private headers(): RunHeaderView[] {
    return this.runs.map((run) => {
      const job = run.job;
      if (job === undefined) return placeholderHeader(run);
      return headerView({
        index: run.index,
        backend: run.ref.backend,
        job,
        last: run.table.last,
        trainingFile: this.deps.model.file(run.ref.backend, job.training_file)?.filename,
        loading: run.loading,
        loadError: run.loadError,
        lastMessage: run.lastMessage,
      });
    });
  }

  private checkpointList(run: RunData): RunCheckpoints {
    const list = [...run.checkpoints.values()].sort((a, b) => a.step_number - b.step_number).map((c) => checkpointView(c));
    return { run: run.index, checkpoints: list };
  }

  private scheduleFlush(delay = FLUSH_MS): void {
    if (!this.webviewReady || this.disposed) return;
    if (this.flushTimer !== undefined) {
      if (delay > 0) return;
      clearTimeout(this.flushTimer);
    }
    this.flushTimer = setTimeout(() => this.flush(), delay);
  }

  /** Sends the webview what arrived since the last flush: new points, headers, checkpoint lists. */
  private flush(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.webviewReady || this.disposed) return;
    for (;;) {
      const batches: MetricsBatch[] = [];
      for (const run of this.runs) {
        const batch = run.table.takeBatch();
        if (batch !== undefined) batches.push({ run: run.index, ...batch });
      }
      if (batches.length === 0) break;
      this.ipc.notify(MetricsNotification, { batches });
      this.headersDirty = true;
    }
    if (this.headersDirty) {
      this.headersDirty = false;
      const headers = this.headers();
      this.ipc.notify(HeadersNotification, { runs: headers });
      // A job read after the panel opened names it now.
      const title = panelTitleOf(headers.map((h) => h.name));
      if (this.panel.title !== title) this.panel.title = title;
    }
    if (this.checkpointsDirty.size > 0) {
      const lists = [...this.checkpointsDirty].map((i) => this.checkpointList(this.runs[i]));
      this.checkpointsDirty.clear();
      this.ipc.notify(CheckpointsNotification, { lists });
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Actions

  private async runAction(index: number, action: 'cancel' | 'rerun'): Promise<null> {
    const run = this.runs[index];
    if (run === undefined) throw new Error(`No run ${index} in this dashboard.`);
    const command = action === 'cancel' ? 'finetune.cancelRun' : 'finetune.rerunWithChanges';
    await vscode.commands.executeCommand(command, { ...run.ref });
    return null;
  }

  private async checkpointAction(index: number, checkpointId: string, action: 'test' | 'save'): Promise<null> {
    const run = this.runs[index];
    const checkpoint = run?.checkpoints.get(checkpointId);
    if (run === undefined || checkpoint === undefined) throw new Error(`No checkpoint ${checkpointId} in this dashboard.`);
    if (action === 'test') await vscode.commands.executeCommand('finetune.testCheckpoint', { ...run.ref, checkpoint });
    else await vscode.commands.executeCommand('finetune.saveToRepository', { ...run.ref, checkpointId });
    return null;
  }

  private csv(): string {
    return metricsCsv(this.runs.map((r) => ({ name: r.job === undefined ? shortJobId(r.ref.jobId) : runLabel(r.job), jobId: r.ref.jobId, table: r.table })));
  }

  private names(): string[] {
    return this.runs.map((r) => (r.job === undefined ? shortJobId(r.ref.jobId) : runLabel(r.job)));
  }

  private defaultUri(fileName: string): vscode.Uri {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    return folder === undefined ? vscode.Uri.file(fileName) : vscode.Uri.joinPath(folder, fileName);
  }

  private async exportCsvInteractively(): Promise<{ path: string | null }> {
    await this.whenLoaded();
    const target = await vscode.window.showSaveDialog({
      defaultUri: this.defaultUri(exportFileName(this.names(), 'csv', 'metrics')),
      filters: { [vscode.l10n.t('CSV files')]: ['csv'] },
      saveLabel: vscode.l10n.t('Export'),
    });
    if (target === undefined) return { path: null };
    await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(this.csv()));
    this.deps.log.info(`Dashboard: metrics exported to ${target.fsPath}.`);
    return { path: target.fsPath };
  }

  private async savePng(title: string, dataUrl: string): Promise<{ path: string | null }> {
    const match = /^data:image\/png;base64,([A-Za-z0-9+/=]+)$/.exec(dataUrl);
    if (match === null) throw new Error('The chart did not give a PNG data: URL.');
    const target = await vscode.window.showSaveDialog({
      defaultUri: this.defaultUri(exportFileName(this.names(), 'png', title)),
      filters: { [vscode.l10n.t('PNG images')]: ['png'] },
      saveLabel: vscode.l10n.t('Save'),
    });
    if (target === undefined) return { path: null };
    await vscode.workspace.fs.writeFile(target, Buffer.from(match[1], 'base64'));
    return { path: target.fsPath };
  }

  private html(): string {
    return webviewPageHtml({
      webview: this.panel.webview,
      extensionUri: this.deps.extension.extensionUri,
      // uPlot's stylesheet, bundled by esbuild beside the app, then ours.
      script: 'dist/webview/dashboard.js',
      styles: ['dist/webview/dashboard.css', 'media/dashboard.css'],
      title: this.panel.title,
      // The display language, as the form and the chat set it (the webview's strings come translated in it).
      lang: vscode.env.language,
    });
  }
}

function placeholderHeader(run: RunData): RunHeaderView {
  return {
    index: run.index,
    backend: run.ref.backend,
    jobId: run.ref.jobId,
    name: shortJobId(run.ref.jobId),
    model: '',
    status: '',
    statusText: '',
    final: false,
    step: 0,
    totalSteps: 0,
    epoch: 0,
    startedAt: null,
    finishedAt: null,
    etaAt: null,
    tokens: '—',
    settings: [],
    error: null,
    note: null,
    loading: run.loading,
    loadError: run.loadError,
  };
}


/** A run picked from a quick pick of every run the sidebar knows, across backends. */
interface RunPick extends vscode.QuickPickItem {
  ref: RunRef;
}

function runPicks(model: RunsModel): RunPick[] {
  const picks: RunPick[] = [];
  for (const backend of model.backendList()) {
    for (const run of model.runsOf(backend.name)) {
      picks.push({ label: runLabel(run.job), description: `${run.job.model} · ${run.job.status}`, detail: `${backend.name} · ${run.job.id}`, ref: { backend: backend.name, jobId: run.job.id } });
    }
  }
  return picks;
}

/** The runs a command got: the tree's selection (VS Code passes the clicked node, then every selected node). */
function selectedRuns(arg: unknown, selection: unknown): RunRef[] {
  const refs = Array.isArray(selection) ? selection.map((s) => runRefOf(s)).filter((r): r is RunRef => r !== undefined) : [];
  const clicked = runRefOf(arg);
  if (clicked !== undefined && !refs.some((r) => r.backend === clicked.backend && r.jobId === clicked.jobId)) refs.unshift(clicked);
  return refs;
}

/** The dashboard's commands, by id (merged into commands.ts's table). */
export const dashboardCommandFactories: Readonly<Record<string, CommandFactory>> = {
  'finetune.openDashboard': (ctx) => async (arg?: unknown) => {
    let ref = runRefOf(arg);
    if (ref === undefined) {
      const picks = runPicks(ctx.training.model);
      if (picks.length === 0) {
        void vscode.window.showInformationMessage(vscode.l10n.t('No runs to show: open the Finetune view to connect to a backend, or start a training run.'));
        return;
      }
      ref = (await vscode.window.showQuickPick(picks, { placeHolder: vscode.l10n.t('Open the dashboard of which run?'), matchOnDetail: true }))?.ref;
    }
    if (ref !== undefined) await ctx.dashboards.open([ref]);
  },

  'finetune.compareRuns': (ctx) => async (arg?: unknown, selection?: unknown) => {
    const selected = selectedRuns(arg, selection);
    if (selected.length >= 2) {
      await ctx.dashboards.open(selected);
      return;
    }
    const picks = runPicks(ctx.training.model);
    if (picks.length < 2) {
      void vscode.window.showInformationMessage(vscode.l10n.t('Comparing needs at least two runs.'));
      return;
    }
    for (const pick of picks) pick.picked = selected.some((r) => r.backend === pick.ref.backend && r.jobId === pick.ref.jobId);
    const chosen = await vscode.window.showQuickPick(picks, { canPickMany: true, placeHolder: vscode.l10n.t('Compare which runs? (two or more)'), matchOnDetail: true });
    if (chosen === undefined) return;
    if (chosen.length < 2) {
      void vscode.window.showInformationMessage(vscode.l10n.t('Comparing needs at least two runs.'));
      return;
    }
    await ctx.dashboards.open(chosen.map((c) => c.ref));
  },
};
