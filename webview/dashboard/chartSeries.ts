// The data side of a chart, with no DOM: each series's own columns (step, time, raw y, smoothed y) and the table
// uPlot's default mode needs, where every series is aligned on one shared, ascending x column (the union of the
// series' x; a series with no point at a row holds NaN there, which the hover skips). Appends that land at the
// end of the table (the live single-run case) cost O(appended); only a point that falls between existing rows
// (runs compared by time) rebuilds the table, O(total).
import type { SeriesPoints, XAxisMode } from './chartApi';
import { GrowableColumn, lowerBound, upperBound } from '../../common/columns';
import { CurveSummary } from './chartPaths';
import { type EmaState, checkSmoothingWeight, emptyEma, smoothRange } from './smoothing';

/** Why points were refused. */
export type ChartInputReason = 'unknown-series' | 'length-mismatch' | 'not-ascending' | 'not-a-number';
// Times that go back are not refused: a resumed run restarts its clock (see SeriesStore.append).

/** Bad input to a chart: says which series and what is wrong; nothing already held is changed. */
export class ChartInputError extends Error {
  constructor(
    readonly reason: ChartInputReason,
    message: string,
  ) {
    super(message);
    this.name = 'ChartInputError';
  }

  /** Whether `error` is a ChartInputError (across bundles too, where `instanceof` may not hold). */
  static is(error: unknown): error is ChartInputError {
    return error instanceof Error && error.name === 'ChartInputError' && 'reason' in error;
  }
}

/** The smallest and largest finite value of a curve, and the smallest positive one (for a log scale). */
export interface Extent {
  min: number;
  max: number;
  minPositive: number;
}

function emptyExtent(): Extent {
  return { min: Infinity, max: -Infinity, minPositive: Infinity };
}

function widen(extent: Extent, values: ArrayLike<number>, from: number, to: number): void {
  let { min, max, minPositive } = extent;
  for (let i = from; i < to; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    if (v > 0 && v < minPositive) minPositive = v;
  }
  extent.min = min;
  extent.max = max;
  extent.minPositive = minPositive;
}

/** One series's own points, in arrival order (x ascending), with its smoothed curve kept up to date. */
export class SeriesStore {
  readonly step = new GrowableColumn();
  readonly time = new GrowableColumn();
  readonly raw = new GrowableColumn();
  readonly smoothed = new GrowableColumn();
  /** Extents over every point (what an unzoomed y axis needs, without a scan per frame). */
  readonly rawExtent = emptyExtent();
  readonly smoothedExtent = emptyExtent();
  /** Per-bucket extremes of each curve, for drawing many points per pixel quickly (chartPaths.ts). */
  readonly rawSummary = new CurveSummary();
  readonly smoothedSummary = new CurveSummary();
  private ema: EmaState = emptyEma();
  /** Added to the times appended, so that time never goes back (see append). */
  private timeOffset = 0;
  private weightInUse = 0;

  /** `smooth`: whether the smoothing weight applies (false: the smoothed curve is the raw one). */
  constructor(
    readonly key: string,
    readonly smooth: boolean,
  ) {}

  get length(): number {
    return this.raw.length;
  }

  /** The smoothing weight in use (0 for a series that is never smoothed). */
  get weight(): number {
    return this.weightInUse;
  }

  /** The x column for an axis mode. */
  x(mode: XAxisMode): GrowableColumn {
    return mode === 'step' ? this.step : this.time;
  }

  /** Throws a ChartInputError when `points` cannot be appended; changes nothing. */
  check(points: SeriesPoints): void {
    const { step, time, y } = points;
    if (step.length !== time.length || step.length !== y.length) {
      throw new ChartInputError('length-mismatch', `series ${this.key}: step, time and y must have equal lengths (got ${step.length}, ${time.length}, ${y.length})`);
    }
    let lastStep = this.step.last();
    for (let i = 0; i < step.length; i++) {
      const s = step[i];
      const t = time[i];
      if (!Number.isFinite(s) || !Number.isFinite(t)) {
        throw new ChartInputError('not-a-number', `series ${this.key}: point ${i} has step ${s} and time ${t}; both must be finite numbers`);
      }
      if (s <= lastStep) {
        throw new ChartInputError('not-ascending', `series ${this.key}: point ${i} (step ${s}) does not come after step ${lastStep}; steps must increase`);
      }
      lastStep = s;
    }
  }

  /** Appends checked points and smooths them, continuing the average; returns the index of the first new point. */
  append(points: SeriesPoints): number {
    const start = this.length;
    const n = points.y.length;
    this.step.pushAll(points.step);
    this.time.reserve(n);
    const times = this.time.raw();
    let last = start === 0 ? -Infinity : times[start - 1];
    for (let i = 0; i < n; i++) {
      // A run resumed by a fresh engine process restarts its clock: its time goes on from where it stopped.
      let t = points.time[i] + this.timeOffset;
      if (t < last) {
        this.timeOffset += last - t;
        t = last;
      }
      times[start + i] = t;
      last = t;
    }
    this.time.setLength(start + n);
    this.raw.pushAll(points.y);
    this.smoothed.fill(NaN, n);
    smoothRange(this.raw.raw(), this.smoothed.raw(), start, start + n, this.weightInUse, this.ema);
    widen(this.rawExtent, this.raw.raw(), start, start + n);
    widen(this.smoothedExtent, this.smoothed.raw(), start, start + n);
    this.rawSummary.extend(this.raw.raw(), start, start + n);
    this.smoothedSummary.extend(this.smoothed.raw(), start, start + n);
    return start;
  }

  /** Sets the smoothing weight; recomputes the whole smoothed curve only when it changed. Returns whether it did. */
  setWeight(weight: number): boolean {
    checkSmoothingWeight(weight);
    const effective = this.smooth ? weight : 0;
    if (effective === this.weightInUse) return false;
    this.weightInUse = effective;
    this.ema = emptyEma();
    smoothRange(this.raw.raw(), this.smoothed.raw(), 0, this.length, effective, this.ema);
    Object.assign(this.smoothedExtent, emptyExtent());
    widen(this.smoothedExtent, this.smoothed.raw(), 0, this.length);
    this.smoothedSummary.reset();
    this.smoothedSummary.extend(this.smoothed.raw(), 0, this.length);
    return true;
  }

  /** The extent of a curve over the points whose x (in `mode`) lies in [xMin, xMax]: a scan of that part only. */
  extentWithin(mode: XAxisMode, xMin: number, xMax: number, curve: 'raw' | 'smoothed'): Extent {
    const xs = this.x(mode).raw();
    const from = lowerBound(xs, this.length, xMin);
    const to = upperBound(xs, this.length, xMax);
    const extent = emptyExtent();
    widen(extent, (curve === 'raw' ? this.raw : this.smoothed).raw(), from, to);
    return extent;
  }
}

/** The series aligned on one x column, for uPlot's default mode. */
export class AlignedTable {
  readonly x = new GrowableColumn();
  readonly raw: GrowableColumn[];
  readonly drawn: GrowableColumn[];

  constructor(
    private readonly stores: readonly SeriesStore[],
    private mode: XAxisMode,
  ) {
    this.raw = stores.map(() => new GrowableColumn());
    this.drawn = stores.map(() => new GrowableColumn());
    this.rebuild();
  }

  get length(): number {
    return this.x.length;
  }

  get xMode(): XAxisMode {
    return this.mode;
  }

  /** Aligns again on another x (a user action: O(total)). */
  setMode(mode: XAxisMode): void {
    this.mode = mode;
    this.rebuild();
  }

  /**
   * Adds the points of each store from `starts[s]` on. Rows at the end are appended and rows that exist are
   * filled in (binary search); a point between two existing rows rebuilds the table. Returns whether it rebuilt.
   */
  add(starts: readonly number[]): boolean {
    // A merge of the stores' new points (each store's are ascending): no sorting, no allocation per point, and
    // straight writes into the reserved buffers (this runs for every point that arrives).
    const k = this.stores.length;
    const heads = [...starts];
    const xs = this.stores.map((store) => store.x(this.mode).raw());
    const ys = this.stores.map((store) => store.raw.raw());
    const smooth = this.stores.map((store) => store.smoothed.raw());
    const lengths = this.stores.map((store) => store.length);
    let incoming = 0;
    for (let s = 0; s < k; s++) incoming += lengths[s] - starts[s];
    const columns = [this.x, ...this.raw, ...this.drawn];
    for (const column of columns) column.reserve(incoming);
    const xOut = this.x.raw();
    const rawOut = this.raw.map((c) => c.raw());
    const drawnOut = this.drawn.map((c) => c.raw());
    let rows = this.x.length;
    if (incoming === 0) return false;
    // The usual case: the series with the most new points (train loss) has new rows at the end, and the others'
    // new points (valid loss, at eval steps) fall on those rows. Block copies, then one search per sparse point.
    let d = 0;
    for (let s = 1; s < k; s++) if (lengths[s] - starts[s] > lengths[d] - starts[d]) d = s;
    const [from, to] = [starts[d], lengths[d]];
    if ((rows === 0 || xs[d][from] > xOut[rows - 1]) && strictlyAscending(xs[d], from, to)) {
      xOut.set(xs[d].subarray(from, to), rows);
      for (let c = 0; c < k; c++) {
        if (c === d) {
          rawOut[c].set(ys[c].subarray(from, to), rows);
          drawnOut[c].set(smooth[c].subarray(from, to), rows);
        } else {
          rawOut[c].fill(NaN, rows, rows + to - from);
          drawnOut[c].fill(NaN, rows, rows + to - from);
        }
      }
      rows += to - from;
      for (const column of columns) column.setLength(rows);
      for (let s = 0; s < k; s++) {
        if (s === d) continue;
        let row = 0;
        for (let i = starts[s]; i < lengths[s]; i++) {
          row = lowerBound(xOut, rows, xs[s][i]);
          if (row === rows || xOut[row] !== xs[s][i]) {
            // A point between rows (runs compared by time): align everything again.
            this.rebuild();
            return true;
          }
          rawOut[s][row] = ys[s][i];
          drawnOut[s][row] = smooth[s][i];
        }
      }
      return false;
    }
    let rebuilt = false;
    for (;;) {
      let x = Infinity;
      for (let s = 0; s < k; s++) {
        if (heads[s] < lengths[s] && xs[s][heads[s]] < x) x = xs[s][heads[s]];
      }
      if (x === Infinity) break;
      let row: number;
      if (rows === 0 || x > xOut[rows - 1]) {
        xOut[rows] = x;
        for (let c = 0; c < k; c++) {
          rawOut[c][rows] = NaN;
          drawnOut[c][rows] = NaN;
        }
        row = rows++;
      } else {
        row = x === xOut[rows - 1] ? rows - 1 : lowerBound(xOut, rows, x);
        if (xOut[row] !== x) {
          rebuilt = true;
          break;
        }
      }
      for (let s = 0; s < k; s++) {
        // Equal x within one series (times that repeat): the last point of that x fills the row.
        while (heads[s] < lengths[s] && xs[s][heads[s]] === x) {
          rawOut[s][row] = ys[s][heads[s]];
          drawnOut[s][row] = smooth[s][heads[s]];
          heads[s]++;
        }
      }
    }
    for (const column of columns) column.setLength(rows);
    if (rebuilt) this.rebuild();
    return rebuilt;
  }

  /** Copies the smoothed curves again (after the weight changed): the rows stay, O(total). */
  refreshDrawn(): void {
    this.rebuild();
  }

  /** Aligns every point from scratch: a k-way merge of the series' x columns, O(total). */
  rebuild(): void {
    this.x.clear();
    for (const column of [...this.raw, ...this.drawn]) column.clear();
    const heads = this.stores.map(() => 0);
    const xs = this.stores.map((store) => store.x(this.mode).raw());
    for (;;) {
      let x = Infinity;
      for (let s = 0; s < this.stores.length; s++) {
        if (heads[s] < this.stores[s].length && xs[s][heads[s]] < x) x = xs[s][heads[s]];
      }
      if (x === Infinity) break;
      this.x.push(x);
      for (let s = 0; s < this.stores.length; s++) {
        const store = this.stores[s];
        let value = NaN;
        let drawn = NaN;
        // Equal x within one series (times that repeat): the last point of that x fills the row.
        while (heads[s] < store.length && xs[s][heads[s]] === x) {
          value = store.raw.get(heads[s]);
          drawn = store.smoothed.get(heads[s]);
          heads[s]++;
        }
        this.raw[s].push(value);
        this.drawn[s].push(drawn);
      }
    }
  }
}

/** Whether `values[from..to)` strictly increase (times may repeat: then rows merge, and the general path does it). */
function strictlyAscending(values: Float64Array, from: number, to: number): boolean {
  for (let i = from + 1; i < to; i++) if (!(values[i] > values[i - 1])) return false;
  return true;
}
