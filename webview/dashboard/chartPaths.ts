// Turns a curve into line segments for the canvas, pure (a sink receives moveTo/lineTo) so that node tests check it.
// At most one vertical segment per pixel column: the column's first point, its min and max, its last point — the
// picture of every point at a fraction of the segments. With far more points than pixels, whole buckets of
// points (CurveSummary) that fall inside one pixel column are taken at once from their kept min and max, so a
// frame costs O(points in view / BUCKET + pixels) instead of O(points in view), with the same segments.
import { lowerBound, upperBound } from '../../common/columns';

/** Points per bucket of a CurveSummary (a power of two). */
export const BUCKET = 16;
const BUCKET_SHIFT = 4;

/** A bucket's flags: it holds a non-finite value (a break in the line) / a value ≤ 0 (a break on a log scale). */
export const BUCKET_NON_FINITE = 1;
export const BUCKET_NON_POSITIVE = 2;

/** Min, max and flags per bucket of BUCKET consecutive points of one curve; grows with the curve (O(appended)). */
export class CurveSummary {
  private min = new Float64Array(64);
  private max = new Float64Array(64);
  private flags = new Uint8Array(64);
  private points = 0;

  /** Takes in `values[from..to)` (the points appended since the last call, `from` = the count so far). */
  extend(values: ArrayLike<number>, from: number, to: number): void {
    if (from !== this.points) throw new RangeError(`curve summary: expected points from ${this.points}, got ${from}`);
    this.ensure((to + BUCKET - 1) >> BUCKET_SHIFT);
    for (let i = from; i < to; i++) {
      const b = i >> BUCKET_SHIFT;
      const v = values[i];
      if ((i & (BUCKET - 1)) === 0) {
        this.min[b] = Infinity;
        this.max[b] = -Infinity;
        this.flags[b] = 0;
      }
      if (!Number.isFinite(v)) {
        this.flags[b] |= BUCKET_NON_FINITE;
        continue;
      }
      if (v <= 0) this.flags[b] |= BUCKET_NON_POSITIVE;
      if (v < this.min[b]) this.min[b] = v;
      if (v > this.max[b]) this.max[b] = v;
    }
    this.points = to;
  }

  /** Starts again (the curve was recomputed). */
  reset(): void {
    this.points = 0;
  }

  get length(): number {
    return this.points;
  }

  bucketMin(b: number): number {
    return this.min[b];
  }

  bucketMax(b: number): number {
    return this.max[b];
  }

  bucketFlags(b: number): number {
    return this.flags[b];
  }

  private ensure(buckets: number): void {
    if (buckets <= this.min.length) return;
    let capacity = this.min.length;
    while (capacity < buckets) capacity *= 2;
    const grow = <T extends Float64Array | Uint8Array>(old: T, made: T): T => {
      made.set(old);
      return made;
    };
    this.min = grow(this.min, new Float64Array(capacity));
    this.max = grow(this.max, new Float64Array(capacity));
    this.flags = grow(this.flags, new Uint8Array(capacity));
  }
}

/** Where a curve is drawn: the plot area in canvas pixels and the scales' ranges. */
export interface PathView {
  left: number;
  top: number;
  width: number;
  height: number;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  /** y on a log10 scale: values ≤ 0 are breaks. */
  log: boolean;
}

/** What receives the segments (a Path2D in the page, a recorder in tests). */
export interface PathSink {
  moveTo(x: number, y: number): void;
  lineTo(x: number, y: number): void;
}

/**
 * Traces `ys` against `xs` (ascending; `n` points) into `sink`: the points in view plus one on each side (so the
 * line reaches the edges), a break at values that cannot be drawn. `summary`, when given, must cover the n points.
 * Returns how many points were in view.
 */
export function tracePath(sink: PathSink, xs: ArrayLike<number>, ys: ArrayLike<number>, n: number, view: PathView, summary: CurveSummary | null): number {
  if (n === 0) return 0;
  const { left, top, width, height, xMin, log } = view;
  const yMin = log ? Math.log10(view.yMin) : view.yMin;
  const kx = width / (view.xMax - xMin || 1);
  const ky = height / ((log ? Math.log10(view.yMax) : view.yMax) - yMin || 1);
  // Pixel = base - value * ky (y grows downwards); x pixel = round(x0 + x * kx).
  const yBase = top + height + yMin * ky;
  const x0 = left - xMin * kx;
  const i0 = Math.max(0, lowerBound(xs, n, xMin) - 1);
  const i1 = Math.min(n - 1, upperBound(xs, n, view.xMax));
  // Buckets pay off when there are several points per pixel.
  const useBuckets = summary !== null && i1 - i0 > 4 * width;
  const bad = log ? BUCKET_NON_FINITE | BUCKET_NON_POSITIVE : BUCKET_NON_FINITE;
  let column = NaN;
  let lo = 0;
  let hi = 0;
  let last = 0;
  let count = 0;
  let penDown = false;
  let i = i0;
  while (i <= i1) {
    if (useBuckets && (i & (BUCKET - 1)) === 0) {
      // Whole buckets that land in one pixel column: their first point, extremes and last point at once.
      while (i + BUCKET - 1 <= i1) {
        const b = i >> BUCKET_SHIFT;
        const end = i + BUCKET - 1;
        const px = Math.round(x0 + xs[i] * kx);
        if ((summary.bucketFlags(b) & bad) !== 0 || px !== Math.round(x0 + xs[end] * kx)) break;
        const first = ys[i];
        const high = summary.bucketMax(b);
        const low = summary.bucketMin(b);
        const top2 = yBase - (log ? Math.log10(high) : high) * ky;
        const bottom2 = yBase - (log ? Math.log10(low) : low) * ky;
        const lastY = ys[end];
        if (px !== column) {
          if (count > 1) {
            sink.lineTo(column, lo);
            sink.lineTo(column, hi);
            sink.lineTo(column, last);
          }
          const py = yBase - (log ? Math.log10(first) : first) * ky;
          column = px;
          lo = hi = py;
          count = 1;
          if (penDown) sink.lineTo(px, py);
          else {
            sink.moveTo(px, py);
            sink.lineTo(px + 0.01, py);
            penDown = true;
          }
        }
        if (top2 < lo) lo = top2;
        if (bottom2 > hi) hi = bottom2;
        last = yBase - (log ? Math.log10(lastY) : lastY) * ky;
        count += BUCKET;
        i += BUCKET;
      }
    }
    // Point by point, up to the next bucket boundary (or the end).
    const stop = useBuckets ? Math.min(i1, i | (BUCKET - 1)) : i1;
    for (; i <= stop; i++) {
      const v = ys[i];
      if (!Number.isFinite(v) || (log && v <= 0)) {
        if (count > 1) {
          sink.lineTo(column, lo);
          sink.lineTo(column, hi);
          sink.lineTo(column, last);
        }
        count = 0;
        penDown = false;
        column = NaN;
        continue;
      }
      const px = Math.round(x0 + xs[i] * kx);
      const py = yBase - (log ? Math.log10(v) : v) * ky;
      if (px === column) {
        if (py < lo) lo = py;
        if (py > hi) hi = py;
        last = py;
        count++;
        continue;
      }
      if (count > 1) {
        sink.lineTo(column, lo);
        sink.lineTo(column, hi);
        sink.lineTo(column, last);
      }
      column = px;
      lo = hi = last = py;
      count = 1;
      if (penDown) sink.lineTo(px, py);
      else {
        sink.moveTo(px, py);
        // A lone point would draw nothing: a dot-sized segment keeps it visible.
        sink.lineTo(px + 0.01, py);
        penDown = true;
      }
    }
  }
  if (count > 1) {
    sink.lineTo(column, lo);
    sink.lineTo(column, hi);
    sink.lineTo(column, last);
  }
  return i1 - i0 + 1;
}
