// Growable typed-array columns and binary searches over ascending ones: the dashboard charts' storage (uPlot draws
// from `view()`, a subarray over the filled part — no copy per frame) and the backend's metrics tables. Appends
// extend a column in place (capacity doubles, so n appends cost O(n) in all).

/** A Float64Array that grows by doubling; `length` is how much of it is filled. */
export class GrowableColumn {
  private buffer: Float64Array;
  private filled = 0;

  constructor(capacity = 256) {
    this.buffer = new Float64Array(Math.max(1, capacity));
  }

  /** How many values the column holds. */
  get length(): number {
    return this.filled;
  }

  /** Makes room for `extra` more values without growing again. */
  reserve(extra: number): void {
    const needed = this.filled + extra;
    if (needed <= this.buffer.length) return;
    let capacity = this.buffer.length;
    while (capacity < needed) capacity *= 2;
    const grown = new Float64Array(capacity);
    grown.set(this.buffer.subarray(0, this.filled));
    this.buffer = grown;
  }

  push(value: number): void {
    if (this.filled === this.buffer.length) this.reserve(1);
    this.buffer[this.filled++] = value;
  }

  /** Appends every value of `values` (one growth at most, then a straight copy). */
  pushAll(values: ArrayLike<number>): void {
    const n = values.length;
    this.reserve(n);
    const buffer = this.buffer;
    const at = this.filled;
    if (values instanceof Float64Array) buffer.set(values, at);
    else for (let i = 0; i < n; i++) buffer[at + i] = values[i];
    this.filled += n;
  }

  /** Appends `count` copies of `value` (a new row's empty cells). */
  fill(value: number, count: number): void {
    this.reserve(count);
    this.buffer.fill(value, this.filled, this.filled + count);
    this.filled += count;
  }

  /** Sets how much is filled, after writing through `raw()` past the end (within the reserved capacity). */
  setLength(length: number): void {
    if (length < 0 || length > this.buffer.length) throw new RangeError(`column length ${length} is outside its capacity ${this.buffer.length}`);
    this.filled = length;
  }

  get(index: number): number {
    return this.buffer[index];
  }

  set(index: number, value: number): void {
    this.buffer[index] = value;
  }

  /** The last value (NaN when empty). */
  last(): number {
    return this.filled === 0 ? NaN : this.buffer[this.filled - 1];
  }

  /** The filled part, shared with the column (valid until the next growth). */
  view(): Float64Array {
    return this.buffer.subarray(0, this.filled);
  }

  /** How many values the column holds before it must grow again. */
  get capacity(): number {
    return this.buffer.length;
  }

  /** The whole backing store, `length` of it filled: for hot loops that index it directly. */
  raw(): Float64Array {
    return this.buffer;
  }

  clear(): void {
    this.filled = 0;
  }
}

/** The first index in `values[0..length)` (ascending) whose value is >= `x`; `length` when none. */
export function lowerBound(values: ArrayLike<number>, length: number, x: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index in `values[0..length)` (ascending) whose value is > `x`; `length` when none. */
export function upperBound(values: ArrayLike<number>, length: number, x: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of the value nearest to `x` in `values[0..length)` (ascending); -1 when empty. */
export function nearestIndex(values: ArrayLike<number>, length: number, x: number): number {
  if (length === 0) return -1;
  const i = lowerBound(values, length, x);
  if (i === 0) return 0;
  if (i === length) return length - 1;
  return x - values[i - 1] <= values[i] - x ? i - 1 : i;
}
