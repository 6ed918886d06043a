// The seam between the run dashboard (webview/dashboard/main.ts) and its charts (webview/dashboard/chart.ts, on
// uPlot): one `MetricChart` per metric, each holding one or more series (a metric of one run; several runs when
// runs are compared), fed by appending points as metrics events arrive, never rebuilt from scratch.
//
// Pure types: no DOM here, so that the host-side tests may import them too.

/** The x axis: the optimizer step, or the seconds since the run started (`elapsed` of the metrics). */
export type XAxisMode = 'step' | 'time';

/** One curve of a chart. */
export interface SeriesSpec {
  /** Unique within the chart, e.g. `ftjob-abc/train_loss`. */
  readonly key: string;
  /** What the legend and the hover read-out show, e.g. `train loss` or `my-run · train loss`. */
  readonly label: string;
  /** A CSS colour; the raw curve is drawn in the same colour, faint, behind the smoothed one. */
  readonly color: string;
  /** Dashed (valid loss beside train loss). */
  readonly dashed?: boolean;
  /** Whether the smoothing slider applies (losses and accuracies: yes; the learning rate: no). Default true. */
  readonly smooth?: boolean;
}

/** A chart's fixed shape, given at creation. */
export interface ChartSpec {
  /** Unique on the page (`loss`, `accuracy`, `learning_rate`, `grad_norm`, `tokens_per_second`, …). */
  readonly id: string;
  readonly title: string;
  readonly series: readonly SeriesSpec[];
  /** Formats a y value for the axis and the read-out (default: 4 significant digits). */
  readonly formatY?: (value: number) => string;
  /** Height of the plot area in CSS pixels (default 220); the width follows the container. */
  readonly height?: number;
  /** The chart's own words, translated by the host (defaults: English). */
  readonly strings?: Partial<ChartStrings>;
}

/** The few words a chart shows itself (read-out and zoom button); the dashboard sends them translated. */
export interface ChartStrings {
  /** Read-out: `step 1,234`. */
  readonly step: string;
  /** Read-out: `time 1m30s`. */
  readonly time: string;
  /** Read-out: the raw value beside the smoothed one, `raw 0.4321`. */
  readonly raw: string;
  /** The button shown while zoomed. */
  readonly resetZoom: string;
  /** The tooltip of the plot: how to zoom and reset. */
  readonly zoomHint: string;
}

/** English defaults of ChartStrings. */
export const DEFAULT_CHART_STRINGS: Readonly<ChartStrings> = {
  step: 'step',
  time: 'time',
  raw: 'raw',
  resetZoom: 'Reset zoom',
  zoomHint: 'Drag to zoom, double-click to reset',
};

/** Points appended to one series: x by step and by time, and y; equal lengths, steps strictly increasing (a
 * ChartInputError with reason `not-ascending` otherwise). A time that goes back (a resumed run whose clock restarted)
 * is shifted to continue from the last one; y may be non-finite (kept in `raw`, not drawn). */
export interface SeriesPoints {
  readonly key: string;
  readonly step: ArrayLike<number>;
  /** Seconds since the run started. */
  readonly time: ArrayLike<number>;
  readonly y: ArrayLike<number>;
}

/** The view settings every chart of a dashboard shares (the toolbar sets them on all charts at once). */
export interface ChartSettings {
  /** TensorBoard's smoothing weight in [0, 1): 0 draws the raw values; default 0.6. */
  smoothing: number;
  logScale: boolean;
  xAxis: XAxisMode;
}

export const DEFAULT_CHART_SETTINGS: Readonly<ChartSettings> = { smoothing: 0.6, logScale: false, xAxis: 'step' };

/** What a chart holds and draws, for tests and exports: per series, the x in the current mode, the raw y and the
 * y actually drawn (smoothed or raw). */
export interface ChartData {
  readonly id: string;
  readonly xAxis: XAxisMode;
  readonly series: readonly { key: string; label: string; x: number[]; raw: number[]; drawn: number[] }[];
  /** Steps marked as checkpoints. */
  readonly markers: readonly number[];
  /** The visible x range when zoomed; null when showing everything. */
  readonly zoom: readonly [number, number] | null;
  /** The ranges on screen (x in the current mode) and whether y is logarithmic, as of the last drawn frame (wait a
   * frame after append/zoom before reading it); null before the first draw. */
  readonly view?: ChartView | null;
}

/** The ranges a chart shows (its axes' ends), for tests that check what is drawn where. */
export interface ChartView {
  readonly xMin: number;
  readonly xMax: number;
  readonly yMin: number;
  readonly yMax: number;
  readonly logScale: boolean;
  /** The plot area in CSS pixels (without the axes). */
  readonly width: number;
  readonly height: number;
}

/** One chart on the page. */
export interface MetricChart {
  readonly spec: ChartSpec;
  /** Appends points (any series of the chart, in any combination); draws once, on the next animation frame. */
  append(points: readonly SeriesPoints[]): void;
  /** Applies the shared settings (smoothing recomputed incrementally-friendly, scale, axis). */
  apply(settings: ChartSettings): void;
  /** Marks these steps (checkpoints) with vertical lines; replaces the previous markers. */
  setMarkers(steps: readonly number[]): void;
  /** Zooms to the x range (in the current axis mode); the user does this by dragging. */
  zoom(range: readonly [number, number]): void;
  /** Shows everything again (the user: double click or the reset button). */
  resetZoom(): void;
  /** The chart as a PNG (title, legend and axes included), as a data: URL. */
  toPng(): Promise<string>;
  /** What the chart holds and draws (see ChartData). */
  data(): ChartData;
  /** Resizes to its container (the page calls it on resize). */
  resize(): void;
  destroy(): void;
}
