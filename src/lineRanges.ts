/** A 0-based, end-exclusive range of lines, as `dataset/visibleRanges` carries it. */
export interface LineRange {
  start: number;
  end: number;
}

/**
 * Sorts and merges line ranges that overlap or touch, dropping empty ones: two editors showing the same
 * dataset (a split view) report one set of lines to the server. Pure, for the unit tests.
 */
export function mergeLineRanges(ranges: Iterable<LineRange>): LineRange[] {
  const sorted = [...ranges].filter((r) => r.end > r.start).sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: LineRange[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ start: range.start, end: range.end });
  }
  return merged;
}

/** Whether two merged range lists are the same, so that an unchanged view is not sent again. */
export function sameLineRanges(a: readonly LineRange[], b: readonly LineRange[]): boolean {
  return a.length === b.length && a.every((r, i) => r.start === b[i].start && r.end === b[i].end);
}
