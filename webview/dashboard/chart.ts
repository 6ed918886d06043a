// The dashboard's metric charts on uPlot (see chartApi.ts for the contract). Why uPlot: a canvas library made for
// long time series, an order of magnitude cheaper than Chart.js on the same data (npm run bench:webview).
//
// How a chart stays cheap with 100,000 points per series:
// - each series keeps its own growable typed-array columns (chartSeries.ts); an append extends them in place and
//   continues the smoothing average, and the shared x table uPlot needs grows at its end;
// - appends only mark the chart dirty: one redraw per animation frame, however many appends came in;
// - the curves are drawn by our own path builder straight from the series's columns, one vertical min/max segment
//   per pixel column (so a sparse series such as valid loss is a plain line, not a line through gaps), and the y
//   range comes from extents kept on append (a scan only of the visible part while zoomed);
// - uPlot keeps the canvas, axes, cursor, drag-to-zoom and double-click reset.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import '../../media/chart.css';
import {
  type ChartData,
  type ChartSettings,
  type ChartSpec,
  type ChartStrings,
  type ChartView,
  DEFAULT_CHART_STRINGS,
  type MetricChart,
  type SeriesPoints,
} from './chartApi';
import { lowerBound } from '../../common/columns';
import { DURATION_INCREMENTS, formatDuration, formatStep, formatValue } from './chartFormat';
import { tracePath } from './chartPaths';
import { AlignedTable, ChartInputError, type Extent, SeriesStore } from './chartSeries';
import { checkSmoothingWeight } from './smoothing';

/** Creates a chart in `container` (emptied first) with the dashboard's shared settings. */
export function createMetricChart(container: HTMLElement, spec: ChartSpec, settings: ChartSettings): MetricChart {
  return new UPlotMetricChart(container, spec, settings);
}

const DEFAULT_HEIGHT = 220;
/** Alpha of the raw curve behind the smoothed one (TensorBoard draws it faint in the same colour). */
const RAW_ALPHA = 0.28;

/** Colours resolved from the theme's CSS variables (canvas cannot use `var(--…)`). */
interface Palette {
  readonly series: readonly string[];
  readonly foreground: string;
  readonly muted: string;
  readonly grid: string;
  readonly marker: string;
  readonly background: string;
  readonly font: string;
}

class UPlotMetricChart implements MetricChart {
  private readonly root: HTMLElement;
  private readonly titleRow: HTMLElement;
  private readonly resetButton: HTMLButtonElement;
  private readonly plotBox: HTMLElement;
  private readonly readoutHead: HTMLElement;
  private readonly readoutRows: { value: HTMLElement; raw: HTMLElement; where: HTMLElement }[] = [];
  private readonly stores: SeriesStore[];
  private readonly byKey = new Map<string, number>();
  private readonly table: AlignedTable;
  private readonly strings: ChartStrings;
  private readonly formatY: (value: number) => string;
  private readonly height: number;
  private settings: ChartSettings;
  private markers: number[] = [];
  private zoomRange: [number, number] | null = null;
  private palette: Palette;
  private plot: uPlot | null = null;
  /** Per store, the first point not yet in the aligned table (appends since the last frame). */
  private pendingFrom: number[];
  private frame = 0;
  /** Set while we hand uPlot new data, so that its scale change is not taken for the user zooming. */
  private settingData = false;
  private destroyed = false;
  private readonly resizeObserver: ResizeObserver;
  private readonly themeObserver: MutationObserver;

  constructor(
    private readonly container: HTMLElement,
    readonly spec: ChartSpec,
    settings: ChartSettings,
  ) {
    checkSmoothingWeight(settings.smoothing);
    if (spec.series.length === 0) throw new ChartInputError('unknown-series', `chart ${spec.id}: a chart needs at least one series`);
    this.settings = { ...settings };
    this.strings = { ...DEFAULT_CHART_STRINGS, ...spec.strings };
    this.formatY = spec.formatY ?? formatValue;
    this.height = spec.height ?? DEFAULT_HEIGHT;
    this.stores = spec.series.map((s, i) => {
      if (this.byKey.has(s.key)) throw new ChartInputError('unknown-series', `chart ${spec.id}: series key ${s.key} is used twice`);
      this.byKey.set(s.key, i);
      const store = new SeriesStore(s.key, s.smooth ?? true);
      store.setWeight(settings.smoothing);
      return store;
    });
    this.pendingFrom = this.stores.map(() => 0);
    this.table = new AlignedTable(this.stores, settings.xAxis);

    container.replaceChildren();
    this.root = el('div', 'ft-chart');
    this.root.dataset.chartId = spec.id;
    this.titleRow = el('div', 'ft-chart-title');
    const title = el('h3', 'ft-chart-name');
    title.textContent = spec.title;
    this.resetButton = el('button', 'ft-chart-reset');
    this.resetButton.type = 'button';
    this.resetButton.textContent = this.strings.resetZoom;
    this.resetButton.hidden = true;
    this.resetButton.addEventListener('click', () => this.resetZoom());
    this.titleRow.append(title, this.resetButton);
    this.plotBox = el('div', 'ft-chart-plot');
    this.plotBox.title = this.strings.zoomHint;
    this.plotBox.setAttribute('role', 'img');
    this.plotBox.setAttribute('aria-label', spec.title);
    const readout = el('div', 'ft-chart-readout');
    this.readoutHead = el('div', 'ft-chart-readout-head');
    readout.append(this.readoutHead);
    for (const s of spec.series) {
      const row = el('div', 'ft-chart-readout-row');
      const swatch = el('span', s.dashed === true ? 'ft-chart-swatch ft-chart-swatch-dashed' : 'ft-chart-swatch');
      swatch.style.setProperty('--ft-series-color', s.color);
      const label = el('span', 'ft-chart-label');
      label.textContent = s.label;
      const value = el('span', 'ft-chart-value');
      const raw = el('span', 'ft-chart-raw');
      const where = el('span', 'ft-chart-where');
      row.append(swatch, label, value, raw, where);
      readout.append(row);
      this.readoutRows.push({ value, raw, where });
    }
    this.root.append(this.titleRow, this.plotBox, readout);
    container.append(this.root);

    this.palette = this.readPalette();
    this.mount();

    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.container);
    // VS Code swaps vscode-light / vscode-dark / vscode-high-contrast on <body> when the theme changes.
    this.themeObserver = new MutationObserver(() => this.onThemeChange());
    this.themeObserver.observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-kind'] });
  }

  append(points: readonly SeriesPoints[]): void {
    this.assertAlive();
    for (const p of points) {
      const s = this.byKey.get(p.key);
      if (s === undefined) throw new ChartInputError('unknown-series', `chart ${this.spec.id} has no series ${p.key} (it has ${[...this.byKey.keys()].join(', ')})`);
      this.stores[s].check(p);
      this.stores[s].append(p);
    }
    this.schedule();
  }

  apply(settings: ChartSettings): void {
    this.assertAlive();
    checkSmoothingWeight(settings.smoothing);
    const previous = this.settings;
    this.settings = { ...settings };
    this.flushTable();
    let smoothingChanged = false;
    for (const store of this.stores) smoothingChanged = store.setWeight(settings.smoothing) || smoothingChanged;
    if (settings.xAxis !== previous.xAxis) {
      this.table.setMode(settings.xAxis);
      // A step range means nothing on a time axis.
      this.zoomRange = null;
      this.mount();
    } else if (settings.logScale !== previous.logScale) {
      if (smoothingChanged) this.table.refreshDrawn();
      this.mount();
    } else if (smoothingChanged) {
      this.table.refreshDrawn();
      const plot = this.plot;
      if (plot !== null) this.stores.forEach((store, s) => plot.setSeries(rawIndex(s), { show: store.weight > 0 }));
      this.schedule();
    }
  }

  setMarkers(steps: readonly number[]): void {
    this.assertAlive();
    for (const step of steps) {
      if (!Number.isFinite(step)) throw new ChartInputError('not-a-number', `chart ${this.spec.id}: marker step ${step} is not a finite number`);
    }
    this.markers = [...steps].sort((a, b) => a - b);
    this.plot?.redraw(false);
  }

  zoom(range: readonly [number, number]): void {
    this.assertAlive();
    const [min, max] = range;
    if (!(Number.isFinite(min) && Number.isFinite(max) && min < max)) {
      throw new RangeError(`chart ${this.spec.id}: a zoom range needs two finite numbers, the first smaller (got ${min}, ${max})`);
    }
    this.flushNow();
    this.plot?.setScale('x', { min, max });
  }

  resetZoom(): void {
    this.assertAlive();
    this.zoomRange = null;
    this.resetButton.hidden = true;
    this.flushNow();
    const n = this.table.length;
    if (this.plot !== null && n > 0) this.plot.setScale('x', { min: this.table.x.get(0), max: this.table.x.get(n - 1) });
  }

  async toPng(): Promise<string> {
    this.assertAlive();
    this.flushNow();
    const plot = this.plot;
    if (plot === null) throw new Error(`chart ${this.spec.id}: not drawn`);
    // uPlot draws in a microtask after setData: let it finish before copying its canvas.
    await Promise.resolve();
    return composePng(plot.ctx.canvas, this.spec, this.palette, this.latestLines());
  }

  data(): ChartData {
    this.flushNow();
    const mode = this.settings.xAxis;
    return {
      id: this.spec.id,
      xAxis: mode,
      series: this.stores.map((store, s) => ({
        key: store.key,
        label: this.spec.series[s].label,
        x: Array.from(store.x(mode).view()),
        raw: Array.from(store.raw.view()),
        drawn: Array.from(store.smoothed.view()),
      })),
      markers: [...this.markers],
      zoom: this.zoomRange === null ? null : [this.zoomRange[0], this.zoomRange[1]],
      view: this.view(),
    };
  }

  private view(): ChartView | null {
    const plot = this.plot;
    if (plot === null) return null;
    const { x, y } = plot.scales;
    if (x.min == null || x.max == null || y.min == null || y.max == null) return null;
    const ratio = uPlot.pxRatio;
    return { xMin: x.min, xMax: x.max, yMin: y.min, yMax: y.max, logScale: this.settings.logScale, width: plot.bbox.width / ratio, height: plot.bbox.height / ratio };
  }

  resize(): void {
    if (this.destroyed || this.plot === null) return;
    const width = this.plotWidth();
    if (width !== this.plot.width) this.plot.setSize({ width, height: this.height });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.frame !== 0) cancelAnimationFrame(this.frame);
    this.resizeObserver.disconnect();
    this.themeObserver.disconnect();
    this.plot?.destroy();
    this.plot = null;
    this.root.remove();
  }

  // ——— drawing ———

  /** (Re)creates the uPlot instance: at start, and when the axis mode, the scale or the theme changes. */
  private mount(): void {
    this.flushTable();
    this.plot?.destroy();
    const keepZoom = this.zoomRange;
    this.settingData = true;
    try {
      this.plot = new uPlot(this.options(), this.uplotData(), this.plotBox);
    } finally {
      this.settingData = false;
    }
    if (keepZoom !== null) this.plot.setScale('x', { min: keepZoom[0], max: keepZoom[1] });
    this.updateReadout(null);
  }

  private options(): uPlot.Options {
    const palette = this.palette;
    const mode = this.settings.xAxis;
    const log = this.settings.logScale;
    const formatX = mode === 'time' ? formatDuration : formatStep;
    const formatY = this.formatY;
    const series: uPlot.Series[] = [{ label: mode }];
    this.spec.series.forEach((spec, s) => {
      const store = this.stores[s];
      const color = palette.series[s];
      series.push({
        label: `${spec.label} (${this.strings.raw})`,
        stroke: color,
        alpha: RAW_ALPHA,
        width: 1,
        show: store.weight > 0,
        auto: false,
        points: { show: false },
        paths: (u) => this.buildPath(u, s, 'raw'),
      });
      series.push({
        label: spec.label,
        stroke: color,
        width: 1.6,
        dash: spec.dashed === true ? [6, 4] : undefined,
        auto: false,
        points: { show: false },
        paths: (u) => this.buildPath(u, s, 'smoothed'),
      });
    });
    const axis = (values: uPlot.Axis['values']): uPlot.Axis => ({
      stroke: palette.muted,
      font: palette.font,
      grid: { stroke: palette.grid, width: 1 },
      ticks: { stroke: palette.grid, width: 1, size: 4 },
      border: { show: false },
      values,
    });
    return {
      width: this.plotWidth(),
      height: this.height,
      legend: { show: false },
      padding: [8, 22, 0, 0],
      cursor: {
        drag: { x: true, y: false, setScale: true },
        // NaN is the "no point here" of the aligned table: the hover takes the nearest real point instead.
        hover: { skip: [undefined, null, NaN] },
        points: {
          size: (_u, i) => (i % 2 === 1 ? 0 : 7),
          width: 1.5,
          fill: (_u, i) => palette.series[(i - 1) >> 1] ?? palette.foreground,
          stroke: () => palette.background,
        },
      },
      scales: {
        x: { time: false },
        y: log ? { distr: 3, log: 10, range: (u) => this.yRange(u) } : { range: (u) => this.yRange(u) },
      },
      axes: [
        { ...axis((_u, splits) => splits.map((v) => formatX(v))), incrs: mode === 'time' ? [...DURATION_INCREMENTS] : undefined, space: 64, size: 30 },
        {
          ...axis((_u, splits) => splits.map((v) => (v === null || v === undefined ? '' : formatY(v)))),
          size: (_u, values) => 14 + 7 * Math.max(3, ...(values ?? []).map((v) => v.length)),
        },
      ],
      series,
      hooks: {
        setScale: [(u, key) => this.onScale(u, key)],
        setCursor: [(u) => this.updateReadout(u.cursor.idx ?? null)],
        draw: [(u) => this.drawMarkers(u)],
      },
    };
  }

  /** uPlot's data: the aligned x, then per series its raw and its drawn column (views, not copies). */
  private uplotData(): uPlot.AlignedData {
    const columns: Float64Array[] = [this.table.x.view()];
    for (let s = 0; s < this.stores.length; s++) columns.push(this.table.raw[s].view(), this.table.drawn[s].view());
    return columns as unknown as uPlot.AlignedData;
  }

  /**
   * One curve as a path from the series's own columns (see tracePath). A dense curve (more points than device
   * pixels across) is stroked one device pixel wide: canvas rasterises wider strokes of thousands of segments 10–30× slower
   * (the stroke outline with its joins), which without a GPU decides whether 100,000 points stay smooth.
   */
  private buildPath(u: uPlot, s: number, curve: 'raw' | 'smoothed'): uPlot.Series.Paths {
    const path = new Path2D();
    const result: uPlot.Series.Paths & { _width?: number } = { stroke: path, fill: null, clip: null, band: null, flags: 0 };
    const store = this.stores[s];
    const { x, y } = u.scales;
    if (x.min == null || x.max == null || y.min == null || y.max == null) return result;
    const raw = curve === 'raw';
    const inView = tracePath(
      path,
      store.x(this.settings.xAxis).raw(),
      (raw ? store.raw : store.smoothed).raw(),
      store.length,
      { ...u.bbox, xMin: x.min, xMax: x.max, yMin: y.min, yMax: y.max, log: this.settings.logScale },
      raw ? store.rawSummary : store.smoothedSummary,
    );
    if (inView > u.bbox.width) result._width = 1 / uPlot.pxRatio;
    return result;
  }

  /** The y range: every shown curve's extent (kept on append; scanned over the visible x only when zoomed). */
  private yRange(u: uPlot): uPlot.Range.MinMax {
    const log = this.settings.logScale;
    const total: Extent = { min: Infinity, max: -Infinity, minPositive: Infinity };
    // The x data in view (uPlot has set them for the coming x range; the zoom state follows only after).
    const xMin = u.series[0]?.min ?? -Infinity;
    const xMax = u.series[0]?.max ?? Infinity;
    const n = this.table.length;
    const zoomed = n > 0 && (xMin > this.table.x.get(0) || xMax < this.table.x.get(n - 1));
    const add = (e: Extent) => {
      total.min = Math.min(total.min, e.min);
      total.max = Math.max(total.max, e.max);
      total.minPositive = Math.min(total.minPositive, e.minPositive);
    };
    for (const store of this.stores) {
      const curves: ('raw' | 'smoothed')[] = store.weight > 0 ? ['raw', 'smoothed'] : ['smoothed'];
      for (const curve of curves) {
        if (zoomed) add(store.extentWithin(this.settings.xAxis, xMin, xMax, curve));
        else add(curve === 'raw' ? store.rawExtent : store.smoothedExtent);
      }
    }
    if (log) {
      if (!Number.isFinite(total.minPositive)) return [1, 10];
      return uPlot.rangeLog(total.minPositive, Math.max(total.max, total.minPositive), 10, false);
    }
    if (!Number.isFinite(total.min)) return [0, 1];
    if (total.min === total.max) {
      const pad = Math.abs(total.min) * 0.1 || 1;
      return [total.min - pad, total.max + pad];
    }
    return uPlot.rangeNum(total.min, total.max, 0.1, true);
  }

  /** Checkpoint markers: dashed vertical lines at their steps (on a time axis, at the time of that step). */
  private drawMarkers(u: uPlot): void {
    if (this.markers.length === 0 || u.scales.x.min == null || u.scales.x.max == null) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const ratio = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.strokeStyle = this.palette.marker;
    ctx.lineWidth = Math.max(1, ratio);
    ctx.setLineDash([4 * ratio, 4 * ratio]);
    ctx.beginPath();
    for (const step of this.markers) {
      const x = this.settings.xAxis === 'step' ? step : this.timeOfStep(step);
      if (x === null || x < u.scales.x.min || x > u.scales.x.max) continue;
      const px = Math.round(u.valToPos(x, 'x', true)) + 0.5;
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + height);
    }
    ctx.stroke();
    ctx.restore();
  }

  /** The time at `step`: exact where a series has that step, else interpolated between its neighbours. */
  private timeOfStep(step: number): number | null {
    let best: number | null = null;
    for (const store of this.stores) {
      const n = store.length;
      if (n === 0) continue;
      const steps = store.step.raw();
      const i = lowerBound(steps, n, step);
      if (i < n && steps[i] === step) return store.time.get(i);
      if (best !== null || i === 0 || i === n) continue;
      const [s0, s1] = [steps[i - 1], steps[i]];
      const [t0, t1] = [store.time.get(i - 1), store.time.get(i)];
      best = t0 + ((step - s0) / (s1 - s0)) * (t1 - t0);
    }
    return best;
  }

  // ——— read-out ———

  /** The read-out under the plot: at the hovered row, or the latest points when the cursor is away. */
  private updateReadout(row: number | null): void {
    const plot = this.plot;
    const mode = this.settings.xAxis;
    const x = row === null || row >= this.table.length ? null : this.table.x.get(row);
    this.readoutHead.textContent = x === null ? '' : mode === 'step' ? `${this.strings.step} ${formatStep(x)}` : `${this.strings.time} ${formatDuration(x)}`;
    this.stores.forEach((store, s) => {
      const cells = this.readoutRows[s];
      let i = store.length - 1;
      if (x !== null && plot !== null) {
        // The row uPlot picked for this series (the nearest one holding a point of it).
        const seriesRow = plot.cursor.idxs?.[drawnIndex(s)];
        const at = seriesRow == null ? x : this.table.x.get(seriesRow);
        const xs = store.x(mode).raw();
        const j = lowerBound(xs, store.length, at);
        i = j < store.length && xs[j] === at ? j : -1;
      }
      if (i < 0) {
        cells.value.textContent = '–';
        cells.raw.textContent = '';
        cells.where.textContent = '';
        return;
      }
      cells.value.textContent = this.formatY(store.smoothed.get(i));
      cells.raw.textContent = store.weight > 0 ? `${this.strings.raw} ${this.formatY(store.raw.get(i))}` : '';
      cells.where.textContent = `${this.strings.step} ${formatStep(store.step.get(i))} · ${formatDuration(store.time.get(i))}`;
    });
  }

  private latestLines(): { color: string; dashed: boolean; text: string }[] {
    return this.stores.map((store, s) => {
      const spec = this.spec.series[s];
      const n = store.length;
      const value = n === 0 ? '–' : this.formatY(store.smoothed.get(n - 1));
      const where = n === 0 ? '' : `  ${this.strings.step} ${formatStep(store.step.get(n - 1))} · ${formatDuration(store.time.get(n - 1))}`;
      return { color: this.palette.series[s], dashed: spec.dashed === true, text: `${spec.label}  ${value}${where}` };
    });
  }

  // ——— frames and state ———

  private schedule(): void {
    if (this.frame !== 0 || this.destroyed) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.redrawData();
    });
  }

  /** Draws what is pending now (before a PNG, a zoom, or a read of the data). */
  private flushNow(): void {
    if (this.frame !== 0) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
      this.redrawData();
    }
  }

  /** Brings the aligned table up to date with the appends since the last frame. */
  private flushTable(): void {
    let pending = false;
    for (let s = 0; s < this.stores.length; s++) pending = pending || this.pendingFrom[s] < this.stores[s].length;
    if (!pending) return;
    this.table.add(this.pendingFrom);
    this.pendingFrom = this.stores.map((store) => store.length);
  }

  private redrawData(): void {
    if (this.destroyed || this.plot === null) return;
    this.flushTable();
    const plot = this.plot;
    this.settingData = true;
    try {
      // While zoomed the x range stays where the user put it; otherwise the chart follows the data.
      plot.setData(this.uplotData(), this.zoomRange === null);
    } finally {
      this.settingData = false;
    }
    if (plot.cursor.idx == null) this.updateReadout(null);
  }

  private onScale(u: uPlot, key: string): void {
    if (key !== 'x' || this.settingData) return;
    const n = this.table.length;
    const min = u.scales.x.min;
    const max = u.scales.x.max;
    if (n === 0 || min == null || max == null) return;
    const full = min <= this.table.x.get(0) && max >= this.table.x.get(n - 1);
    this.zoomRange = full ? null : [min, max];
    this.resetButton.hidden = full;
  }

  private onThemeChange(): void {
    if (this.destroyed) return;
    this.palette = this.readPalette();
    this.mount();
  }

  private plotWidth(): number {
    return Math.max(120, Math.floor(this.plotBox.clientWidth || this.container.clientWidth || 400));
  }

  private readPalette(): Palette {
    const probe = el('span', 'ft-chart-probe');
    this.root.append(probe);
    const resolve = (css: string, fallback: string): string => {
      probe.style.color = fallback;
      probe.style.color = css;
      return getComputedStyle(probe).color;
    };
    const style = getComputedStyle(this.root);
    const foreground = style.color;
    const palette: Palette = {
      series: this.spec.series.map((s) => resolve(s.color, foreground)),
      foreground,
      muted: resolve('var(--vscode-descriptionForeground)', foreground),
      grid: withAlpha(foreground, 0.1),
      marker: withAlpha(foreground, 0.5),
      background: resolve('var(--vscode-editor-background)', isDark() ? '#1e1e1e' : '#ffffff'),
      font: `11px ${style.fontFamily || 'sans-serif'}`,
    };
    probe.remove();
    return palette;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error(`chart ${this.spec.id} was destroyed`);
  }
}

/** uPlot's series index of store `s`'s faint raw curve (0 is x). */
function rawIndex(s: number): number {
  return 1 + 2 * s;
}

/** uPlot's series index of store `s`'s drawn (smoothed) curve. */
function drawnIndex(s: number): number {
  return 2 + 2 * s;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

function isDark(): boolean {
  return document.body.classList.contains('vscode-dark') || document.body.classList.contains('vscode-high-contrast');
}

/** `rgb(…)`/`rgba(…)` (what getComputedStyle gives) with another alpha. */
function withAlpha(color: string, alpha: number): string {
  const parts = color.match(/[\d.]+/g);
  if (parts === null || parts.length < 3) return color;
  return `rgba(${parts[0]}, ${parts[1]}, ${parts[2]}, ${alpha})`;
}

/** The chart as a PNG: its title, the plot (axes and markers included) and a legend with the latest values, on
 * the theme's background (a transparent PNG would be unreadable pasted on the other theme). */
function composePng(plotCanvas: HTMLCanvasElement, spec: ChartSpec, palette: Palette, lines: { color: string; dashed: boolean; text: string }[]): string {
  const ratio = uPlot.pxRatio;
  const titleHeight = Math.round(28 * ratio);
  const lineHeight = Math.round(18 * ratio);
  const legendHeight = lines.length * lineHeight + Math.round(10 * ratio);
  const canvas = document.createElement('canvas');
  canvas.width = plotCanvas.width;
  canvas.height = titleHeight + plotCanvas.height + legendHeight;
  const ctx = canvas.getContext('2d');
  if (ctx === null) throw new Error(`chart ${spec.id}: no 2D canvas context for the PNG`);
  const family = palette.font.replace(/^\S+\s/, '');
  ctx.fillStyle = palette.background;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = palette.foreground;
  ctx.font = `600 ${13 * ratio}px ${family}`;
  ctx.textBaseline = 'middle';
  ctx.fillText(spec.title, 10 * ratio, titleHeight / 2);
  ctx.drawImage(plotCanvas, 0, titleHeight);
  ctx.font = `${12 * ratio}px ${family}`;
  lines.forEach((line, k) => {
    const y = titleHeight + plotCanvas.height + Math.round(4 * ratio) + k * lineHeight + lineHeight / 2;
    ctx.strokeStyle = line.color;
    ctx.lineWidth = 2 * ratio;
    ctx.setLineDash(line.dashed ? [4 * ratio, 3 * ratio] : []);
    ctx.beginPath();
    ctx.moveTo(10 * ratio, y);
    ctx.lineTo(28 * ratio, y);
    ctx.stroke();
    ctx.fillStyle = palette.foreground;
    ctx.fillText(line.text, 36 * ratio, y);
  });
  return canvas.toDataURL('image/png');
}
