// What the chart's test and benchmark page (chartHarness.ts) exposes on `globalThis.chartHarness`, for
// test/webview.chartBrowser.test.ts and bench/webview.bench.ts to drive it through playwright. Pure types (the Node
// side has no DOM types), plain data only: everything crosses page.evaluate.
import type { ChartData, ChartSettings, ChartSpec, SeriesPoints } from './chartApi';

/** A ChartSpec that can cross page.evaluate (no formatY function). */
export type PlainChartSpec = Omit<ChartSpec, 'formatY'>;

/** A rectangle in page CSS pixels. */
export interface PageRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The chart library a benchmark scenario runs on. */
export type BenchLibrary = 'uplot' | 'chartjs';

/** One benchmark scenario's timings in milliseconds. */
export interface BenchTimings {
  /** Scenario 1: 1,000 points appended to every series in one batch, to the painted frame (20 repetitions). */
  batchAppend: number[];
  /** Scenario 2: the work of each frame while 1,000 live events (one append each) arrive, 10 per frame. */
  liveFrames: number[];
  /** Scenario 4: the work per mousemove while the cursor crosses the loss chart, to the painted frame. */
  hover: number[];
}

/** The page's API. */
export interface ChartHarness {
  /** Sets VS Code's theme class and colour variables on <body> (light or dark). */
  setTheme(kind: 'light' | 'dark'): void;
  /** Creates a chart in a new container of `width` CSS pixels. */
  create(spec: PlainChartSpec, settings: ChartSettings, width?: number): void;
  append(id: string, points: SeriesPoints[]): void;
  apply(id: string, settings: ChartSettings): void;
  setMarkers(id: string, steps: number[]): void;
  zoom(id: string, range: [number, number]): void;
  resetZoom(id: string): void;
  data(id: string): ChartData;
  toPng(id: string): Promise<string>;
  /** Sets the container's width (the chart follows through its ResizeObserver). */
  setWidth(id: string, width: number): void;
  destroy(id: string): void;
  /** Resolves after the next frame is drawn (two animation frames). */
  frames(): Promise<void>;
  /** The plot area (uPlot's overlay) of a chart, scrolled into view, to drag and hover on. */
  plotRect(id: string): PageRect;
  /** The size of uPlot's canvas in device pixels. */
  canvasSize(id: string): { width: number; height: number };
  /** The text of a chart's read-out under the plot. */
  readout(id: string): string;
  /** The rows (CSS pixels from the plot area's top) of the plot canvas's column `x` (CSS pixels from the plot
   * area's left) whose colour is within `tolerance` (sum of RGB differences, default 60) of `rgb` and whose alpha
   * is at least `minAlpha` (default 160: the faint raw curve and the grid do not count). */
  columnRows(id: string, x: number, rgb: [number, number, number], options?: { tolerance?: number; minAlpha?: number }): number[];
  /** The RGB of a CSS colour as the page resolves it (theme variables included). */
  resolveColor(css: string): [number, number, number];
  /** Uncaught errors seen by the page. */
  errors(): string[];

  /** Benchmark: builds the 6 charts of a finished run's dashboard with `points` per series; returns the ms from
   * creating the charts to the first painted frame. */
  benchFirstPaint(library: BenchLibrary, points: number): Promise<number>;
  /** Benchmark: scenarios 1, 2 and 4 on the dashboard built by benchFirstPaint. */
  benchLive(library: BenchLibrary): Promise<BenchTimings>;
}
