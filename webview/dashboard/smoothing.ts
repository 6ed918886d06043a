// TensorBoard's smoothing: an exponential moving average with its start-up debiasing, so that the first points
// are not dragged towards zero. Pure, so that node tests check it against a reference.

/** Where the average stands after the points seen so far; `append` continues from it. */
export interface EmaState {
  /** The biased average (before debiasing). */
  last: number;
  /** How many finite values went into it. */
  count: number;
}

/** A fresh state: nothing averaged yet. */
export function emptyEma(): EmaState {
  return { last: 0, count: 0 };
}

/** Checks a smoothing weight: TensorBoard's slider covers [0, 1); 1 would freeze the curve at its first point. */
export function checkSmoothingWeight(weight: number): void {
  if (!(weight >= 0 && weight < 1)) throw new RangeError(`smoothing weight must be in [0, 1), got ${weight}`);
}

/**
 * Smooths `raw[from..to)` into `out[from..to)`, continuing from `state` (updated in place). Non-finite values are
 * written through unchanged (they are not drawn) and leave the average untouched, as TensorBoard does. With weight
 * 0 the output equals the input exactly (the debiasing divides by 1 - 0^n = 1).
 */
export function smoothRange(
  raw: ArrayLike<number>,
  out: { [index: number]: number },
  from: number,
  to: number,
  weight: number,
  state: EmaState,
): void {
  let { last, count } = state;
  for (let i = from; i < to; i++) {
    const value = raw[i];
    if (!Number.isFinite(value)) {
      out[i] = value;
      continue;
    }
    last = last * weight + (1 - weight) * value;
    count++;
    // Math.pow rather than a running product: the same rounding as TensorBoard's own code.
    out[i] = weight === 0 ? value : last / (1 - Math.pow(weight, count));
  }
  state.last = last;
  state.count = count;
}

/** The whole smoothed curve of `raw` (a fresh state), e.g. as a reference or after the weight changed. */
export function smoothAll(raw: ArrayLike<number>, weight: number): Float64Array {
  const out = new Float64Array(raw.length);
  smoothRange(raw, out, 0, raw.length, weight, emptyEma());
  return out;
}
