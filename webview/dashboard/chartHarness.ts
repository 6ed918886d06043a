// The page script of the chart's browser test and benchmark: not part of the dashboard. It puts the real charts
// (chart.ts) on a plain page with VS Code's theme variables, and exposes `globalThis.chartHarness` (see
// chartHarnessApi.ts) for playwright to drive. test/webview.chartBrowser.test.ts and bench/webview.bench.ts
// bundle it with esbuild into a temporary folder.
import { createMetricChart } from './chart';
import { type ChartSettings, DEFAULT_CHART_SETTINGS, type MetricChart, type SeriesPoints } from './chartApi';
import { createChartJsBenchChart } from './chartBenchChartJs';
import { benchDashboardSpecs, benchPoints } from './chartBenchData';
import type { BenchLibrary, BenchTimings, ChartHarness, PageRect, PlainChartSpec } from './chartHarnessApi';

/** VS Code's colour variables (the few the charts use), as the default light and dark themes set them. */
const THEMES = {
  light: {
    '--vscode-foreground': '#3b3b3b',
    '--vscode-descriptionForeground': '#717171',
    '--vscode-editor-background': '#ffffff',
    '--vscode-focusBorder': '#005fb8',
    '--vscode-button-secondaryForeground': '#3b3b3b',
    '--vscode-button-secondaryBackground': '#e5e5e5',
    '--vscode-charts-blue': '#1a85ff',
    '--vscode-charts-orange': '#d18616',
    '--vscode-charts-red': '#e51400',
    '--vscode-charts-green': '#388a34',
    '--vscode-charts-yellow': '#bf8803',
    '--vscode-charts-purple': '#652d90',
    '--vscode-font-family': 'system-ui, sans-serif',
  },
  dark: {
    '--vscode-foreground': '#cccccc',
    '--vscode-descriptionForeground': '#9d9d9d',
    '--vscode-editor-background': '#1f1f1f',
    '--vscode-focusBorder': '#0078d4',
    '--vscode-button-secondaryForeground': '#cccccc',
    '--vscode-button-secondaryBackground': '#313131',
    '--vscode-charts-blue': '#3794ff',
    '--vscode-charts-orange': '#d18616',
    '--vscode-charts-red': '#f14c4c',
    '--vscode-charts-green': '#89d185',
    '--vscode-charts-yellow': '#cca700',
    '--vscode-charts-purple': '#b180d7',
    '--vscode-font-family': 'system-ui, sans-serif',
  },
} as const;

const PLOT_HEIGHT = 220;
const BENCH_WIDTH = 640;
const errors: string[] = [];
window.addEventListener('error', (event) => errors.push(String(event.error ?? event.message)));
window.addEventListener('unhandledrejection', (event) => errors.push(String(event.reason)));

const charts = new Map<string, { chart: MetricChart; box: HTMLElement }>();

function chartOf(id: string): { chart: MetricChart; box: HTMLElement } {
  const entry = charts.get(id);
  if (entry === undefined) throw new Error(`no chart ${id} on the page`);
  return entry;
}

function setTheme(kind: 'light' | 'dark'): void {
  for (const [name, value] of Object.entries(THEMES[kind])) document.body.style.setProperty(name, value);
  document.body.style.background = 'var(--vscode-editor-background)';
  document.body.style.color = 'var(--vscode-foreground)';
  document.body.style.fontFamily = 'var(--vscode-font-family)';
  document.body.classList.remove('vscode-light', 'vscode-dark');
  document.body.classList.add(`vscode-${kind}`);
}

function nextFrame(): Promise<number> {
  return new Promise((resolve) => requestAnimationFrame(() => resolve(performance.now())));
}

/**
 * The work of one frame caused by `work`: its own time, plus the animation-frame callbacks it scheduled (the
 * library's redraw), bracketed by a frame callback registered before it and one registered after it.
 */
async function measureFrame(work: () => void): Promise<number> {
  let start = NaN;
  requestAnimationFrame(() => {
    start = performance.now();
  });
  const t0 = performance.now();
  work();
  const workMs = performance.now() - t0;
  const end = await nextFrame();
  return workMs + (end - start);
}

/** One dashboard of the benchmark, on either library. */
interface BenchDashboard {
  append(chartIndex: number, points: SeriesPoints[]): void;
  hoverTarget(): HTMLElement;
  destroy(): void;
}

let bench: { library: BenchLibrary; dashboard: BenchDashboard; specs: PlainChartSpec[]; steps: number } | null = null;

/** The dashboard of a finished run: the charts created with all of `data` (per chart, its series' points). */
function createBenchDashboard(library: BenchLibrary, specs: PlainChartSpec[], data: SeriesPoints[][]): BenchDashboard {
  const boxes = specs.map(() => {
    const box = document.createElement('div');
    box.style.width = `${BENCH_WIDTH}px`;
    box.style.display = 'inline-block';
    box.style.margin = '4px';
    document.body.append(box);
    return box;
  });
  if (library === 'uplot') {
    const made = specs.map((spec, i) => createMetricChart(boxes[i], spec, { ...DEFAULT_CHART_SETTINGS }));
    made.forEach((chart, i) => chart.append(data[i]));
    return {
      append: (i, points) => made[i].append(points),
      hoverTarget: () => {
        const over = boxes[0].querySelector('.u-over');
        if (!(over instanceof HTMLElement)) throw new Error('the loss chart has no uPlot overlay');
        return over;
      },
      destroy: () => {
        for (const chart of made) chart.destroy();
        for (const box of boxes) box.remove();
      },
    };
  }
  const made = specs.map((spec, i) => createChartJsBenchChart(boxes[i], spec, BENCH_WIDTH, PLOT_HEIGHT + 60, data[i]));
  return {
    append: (i, points) => made[i].append(points),
    hoverTarget: () => made[0].hoverTarget,
    destroy: () => {
      for (const chart of made) chart.destroy();
      for (const box of boxes) box.remove();
    },
  };
}

async function benchFirstPaint(library: BenchLibrary, steps: number): Promise<number> {
  bench?.dashboard.destroy();
  const specs = benchDashboardSpecs();
  // The data exists before the clock starts: the dashboard receives a finished run's history in one message.
  const data = specs.map((spec) => benchPoints(spec, 1, steps, steps * 2));
  let dashboard: BenchDashboard | undefined;
  const ms = await measureFrame(() => {
    dashboard = createBenchDashboard(library, specs, data);
  });
  if (dashboard === undefined) throw new Error('the dashboard was not created');
  bench = { library, dashboard, specs, steps };
  return ms;
}

async function benchLive(library: BenchLibrary): Promise<BenchTimings> {
  if (bench === null || bench.library !== library) throw new Error(`benchFirstPaint(${library}) first`);
  const { dashboard, specs } = bench;
  const total = bench.steps * 2;
  let next = bench.steps + 1;
  // Scenario 1: 1,000 points per series in one batch, 20 times.
  const batchAppend: number[] = [];
  for (let r = 0; r < 20; r++) {
    const from = next;
    const data = specs.map((spec) => benchPoints(spec, from, 1000, total));
    next += 1000;
    batchAppend.push(await measureFrame(() => specs.forEach((_spec, i) => dashboard.append(i, data[i]))));
  }
  // Scenario 2: 1,000 live events, one append per event and chart, 10 events per frame.
  const liveFrames: number[] = [];
  for (let f = 0; f < 100; f++) {
    const events = Array.from({ length: 10 }, (_, e) => specs.map((spec) => benchPoints(spec, next + e, 1, total)));
    next += 10;
    liveFrames.push(await measureFrame(() => {
      for (const event of events) event.forEach((points, i) => dashboard.append(i, points));
    }));
  }
  // Scenario 4: the cursor crosses the loss chart, one mousemove per frame.
  const target = dashboard.hoverTarget();
  const rect = target.getBoundingClientRect();
  const hover: number[] = [];
  for (let k = 0; k < 60; k++) {
    const clientX = rect.left + 5 + ((rect.width - 10) * k) / 59;
    const clientY = rect.top + rect.height / 2;
    hover.push(await measureFrame(() => {
      target.dispatchEvent(new MouseEvent('mousemove', { clientX, clientY, bubbles: true, cancelable: true, view: window }));
    }));
  }
  return { batchAppend, liveFrames, hover };
}

const harness: ChartHarness = {
  setTheme,
  create(spec: PlainChartSpec, settings: ChartSettings, width = 640) {
    if (charts.has(spec.id)) throw new Error(`chart ${spec.id} exists`);
    const box = document.createElement('div');
    box.style.width = `${width}px`;
    box.style.margin = '8px';
    document.body.append(box);
    charts.set(spec.id, { chart: createMetricChart(box, spec, settings), box });
  },
  append: (id, points) => chartOf(id).chart.append(points),
  apply: (id, settings) => chartOf(id).chart.apply(settings),
  setMarkers: (id, steps) => chartOf(id).chart.setMarkers(steps),
  zoom: (id, range) => chartOf(id).chart.zoom(range),
  resetZoom: (id) => chartOf(id).chart.resetZoom(),
  data: (id) => chartOf(id).chart.data(),
  toPng: (id) => chartOf(id).chart.toPng(),
  setWidth(id, width) {
    chartOf(id).box.style.width = `${width}px`;
  },
  destroy(id) {
    const { chart, box } = chartOf(id);
    chart.destroy();
    box.remove();
    charts.delete(id);
  },
  async frames() {
    await nextFrame();
    await nextFrame();
  },
  plotRect(id) {
    const over = chartOf(id).box.querySelector('.u-over');
    if (over === null) throw new Error(`chart ${id} has no plot area`);
    // In the viewport, so that the mouse can reach it.
    over.scrollIntoView({ block: 'center' });
    const r = over.getBoundingClientRect();
    return { x: r.left, y: r.top, width: r.width, height: r.height } satisfies PageRect;
  },
  canvasSize(id) {
    const canvas = chartOf(id).box.querySelector('canvas');
    if (canvas === null) throw new Error(`chart ${id} has no canvas`);
    return { width: canvas.width, height: canvas.height };
  },
  readout(id) {
    const node = chartOf(id).box.querySelector('.ft-chart-readout');
    return node instanceof HTMLElement ? node.innerText : '';
  },
  columnRows(id, x, rgb, { tolerance = 60, minAlpha = 160 } = {}) {
    const { box } = chartOf(id);
    const canvas = box.querySelector('canvas');
    const over = box.querySelector('.u-over');
    if (canvas === null || over === null) throw new Error(`chart ${id} has no canvas`);
    const canvasRect = canvas.getBoundingClientRect();
    const ratio = canvas.width / canvasRect.width;
    const overRect = over.getBoundingClientRect();
    const px = Math.round((overRect.left - canvasRect.left + x) * ratio);
    const top = Math.round((overRect.top - canvasRect.top) * ratio);
    const height = Math.round(overRect.height * ratio);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (ctx === null) throw new Error('no 2D context');
    const pixels = ctx.getImageData(px, top, 1, height).data;
    const rows: number[] = [];
    for (let i = 0; i < pixels.length; i += 4) {
      const distance = Math.abs(pixels[i] - rgb[0]) + Math.abs(pixels[i + 1] - rgb[1]) + Math.abs(pixels[i + 2] - rgb[2]);
      if (distance <= tolerance && pixels[i + 3] >= minAlpha) rows.push(i / 4 / ratio);
    }
    return rows;
  },
  resolveColor(css) {
    const probe = document.createElement('span');
    document.body.append(probe);
    probe.style.color = css;
    const parts = (getComputedStyle(probe).color.match(/[\d.]+/g) ?? []).map(Number);
    probe.remove();
    return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
  },
  errors: () => [...errors],
  benchFirstPaint,
  benchLive,
};

setTheme('light');
(globalThis as unknown as { chartHarness: ChartHarness }).chartHarness = harness;
