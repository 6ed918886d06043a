// The pure parts of the dashboard's charts, under Node: TensorBoard's smoothing, the growable columns, the series
// stores and the aligned table that uPlot draws from, and the axis formats. The drawn chart itself is tested in
// Chromium (test/webview.chartBrowser.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GrowableColumn, lowerBound, nearestIndex, upperBound } from '../common/columns';
import { formatDuration, formatStep, formatValue } from '../webview/dashboard/chartFormat';
import { BUCKET, CurveSummary, type PathView, tracePath } from '../webview/dashboard/chartPaths';
import { AlignedTable, ChartInputError, SeriesStore } from '../webview/dashboard/chartSeries';
import { checkSmoothingWeight, emptyEma, smoothAll, smoothRange } from '../webview/dashboard/smoothing';

/** TensorBoard's smoothing as its scalar dashboard writes it, point by point: the reference. */
function tensorBoardSmooth(values: readonly number[], weight: number): number[] {
  let last = values.length > 0 ? 0 : NaN;
  let numAccum = 0;
  return values.map((nextVal) => {
    if (!Number.isFinite(nextVal)) return nextVal;
    last = last * weight + (1 - weight) * nextVal;
    numAccum++;
    const debiasWeight = weight === 1 ? 1 : 1 - Math.pow(weight, numAccum);
    return last / debiasWeight;
  });
}

/** Deterministic noisy values. */
function noisy(n: number, seed = 1): number[] {
  let x = seed;
  return Array.from({ length: n }, (_, i) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return 2 * Math.exp(-i / 300) + (x / 2147483648) * 0.5;
  });
}

function points(key: string, steps: number[], y: number[], secondsPerStep = 1.5) {
  return { key, step: steps, time: steps.map((s) => s * secondsPerStep), y };
}

function range(from: number, to: number, every = 1): number[] {
  const out: number[] = [];
  for (let s = from; s <= to; s += every) out.push(s);
  return out;
}

describe('smoothing', () => {
  it('equals TensorBoard at its default weight and others', () => {
    const values = noisy(500);
    for (const w of [0.6, 0.9, 0.99, 0.3]) assert.deepEqual(Array.from(smoothAll(values, w)), tensorBoardSmooth(values, w), `weight ${w}`);
  });

  it('draws the raw values at weight 0', () => {
    const values = noisy(100);
    assert.deepEqual(Array.from(smoothAll(values, 0)), values);
  });

  it('continues incrementally to exactly the whole-curve result', () => {
    const values = noisy(1000);
    const out = new Float64Array(values.length);
    const state = emptyEma();
    for (const [from, to] of [[0, 1], [1, 7], [7, 500], [500, 999], [999, 1000]]) smoothRange(values, out, from, to, 0.6, state);
    assert.deepEqual(Array.from(out), Array.from(smoothAll(values, 0.6)));
    assert.equal(state.count, 1000);
  });

  it('skips non-finite values: they pass through and do not poison the average', () => {
    const values = [1, 2, NaN, 3, Infinity, 4];
    const smoothed = Array.from(smoothAll(values, 0.5));
    assert.ok(Number.isNaN(smoothed[2]));
    assert.equal(smoothed[4], Infinity);
    assert.deepEqual([smoothed[0], smoothed[1], smoothed[3], smoothed[5]], Array.from(smoothAll([1, 2, 3, 4], 0.5)));
  });

  it('refuses weights outside [0, 1)', () => {
    for (const w of [1, -0.1, NaN, 2]) assert.throws(() => checkSmoothingWeight(w), /smoothing weight must be in \[0, 1\)/);
    checkSmoothingWeight(0);
    checkSmoothingWeight(0.999);
  });
});

describe('growable columns', () => {
  it('grow in place past their capacity and keep every value', () => {
    const column = new GrowableColumn(2);
    for (let i = 0; i < 1000; i++) column.push(i * 0.5);
    column.fill(NaN, 3);
    assert.equal(column.length, 1003);
    assert.equal(column.view().length, 1003);
    assert.equal(column.get(999), 499.5);
    assert.ok(Number.isNaN(column.last()));
    assert.ok(column.raw().length >= 1003 && column.raw().length <= 2048, 'capacity doubles, not more');
  });

  it('searches ascending values', () => {
    const xs = [1, 3, 3, 7, 10];
    assert.equal(lowerBound(xs, xs.length, 3), 1);
    assert.equal(upperBound(xs, xs.length, 3), 3);
    assert.equal(lowerBound(xs, xs.length, 11), 5);
    assert.equal(nearestIndex(xs, xs.length, 8), 3);
    assert.equal(nearestIndex(xs, xs.length, 9), 4);
    assert.equal(nearestIndex(xs, xs.length, -5), 0);
    assert.equal(nearestIndex([], 0, 1), -1);
  });
});

describe('series store', () => {
  it('keeps the appended values unchanged and smooths them as one curve', () => {
    const store = new SeriesStore('loss', true);
    store.setWeight(0.6);
    const y = noisy(300);
    store.append(points('loss', range(1, 100), y.slice(0, 100)));
    store.append(points('loss', range(101, 300), y.slice(100)));
    assert.deepEqual(Array.from(store.raw.view()), y);
    assert.deepEqual(Array.from(store.smoothed.view()), tensorBoardSmooth(y, 0.6));
    assert.deepEqual(Array.from(store.time.view()), range(1, 300).map((s) => s * 1.5));
    assert.equal(store.rawExtent.min, Math.min(...y));
    assert.equal(store.rawExtent.max, Math.max(...y));
  });

  it('recomputes the whole curve only when the weight changes; unsmoothed series stay raw', () => {
    const store = new SeriesStore('loss', true);
    const y = noisy(50);
    store.append(points('loss', range(1, 50), y));
    assert.deepEqual(Array.from(store.smoothed.view()), y, 'weight 0 at creation');
    assert.equal(store.setWeight(0.9), true);
    assert.equal(store.setWeight(0.9), false);
    assert.deepEqual(Array.from(store.smoothed.view()), tensorBoardSmooth(y, 0.9));
    const lr = new SeriesStore('lr', false);
    lr.append(points('lr', range(1, 50), y));
    assert.equal(lr.setWeight(0.9), false);
    assert.equal(lr.weight, 0);
    assert.deepEqual(Array.from(lr.smoothed.view()), y);
  });

  it('refuses bad points with a reason, and keeps what it held', () => {
    const store = new SeriesStore('loss', true);
    store.append(points('loss', [1, 2, 3], [1, 1, 1]));
    const cases: [ReturnType<typeof points>, string, RegExp][] = [
      [{ key: 'loss', step: [4, 5], time: [6], y: [1, 2] }, 'length-mismatch', /series loss: step, time and y must have equal lengths \(got 2, 1, 2\)/],
      [points('loss', [3], [1]), 'not-ascending', /series loss: point 0 \(step 3\) does not come after step 3; steps must increase/],
      [points('loss', [5, 4], [1, 1]), 'not-ascending', /point 1 \(step 4/],
      [{ key: 'loss', step: [NaN], time: [1], y: [1] }, 'not-a-number', /point 0 has step NaN/],
    ];
    for (const [bad, reason, message] of cases) {
      assert.throws(() => store.check(bad), (error: unknown) => ChartInputError.is(error) && error.reason === reason && message.test(error.message));
    }
    assert.equal(store.length, 3);
  });

  it('keeps time going forward when a resumed run restarts its clock', () => {
    const store = new SeriesStore('loss', true);
    store.append({ key: 'loss', step: [1, 2, 3], time: [10, 20, 30], y: [1, 1, 1] });
    store.append({ key: 'loss', step: [4, 5], time: [2, 12], y: [1, 1] });
    store.append({ key: 'loss', step: [6], time: [22], y: [1] });
    assert.deepEqual(Array.from(store.time.view()), [10, 20, 30, 30, 40, 50]);
  });

  it('gives the extent of the points within an x range', () => {
    const store = new SeriesStore('loss', true);
    store.append(points('loss', [1, 2, 3, 4, 5], [5, -1, 3, 0.5, 9]));
    assert.deepEqual(store.extentWithin('step', 2, 4, 'raw'), { min: -1, max: 3, minPositive: 0.5 });
    assert.deepEqual(store.extentWithin('time', 4, 7, 'raw'), { min: 0.5, max: 3, minPositive: 0.5 });
  });
});

describe('aligned table', () => {
  /** The table's rows as [x, raw per series…] for comparison (NaN as null). */
  function rows(table: AlignedTable): (number | null)[][] {
    return Array.from({ length: table.length }, (_, r) => [table.x.get(r), ...table.raw.map((c) => (Number.isNaN(c.get(r)) ? null : c.get(r)))]);
  }

  it('aligns a dense train series and a sparse valid series, appending at the end without a rebuild', () => {
    const train = new SeriesStore('train', true);
    const valid = new SeriesStore('valid', true);
    const table = new AlignedTable([train, valid], 'step');
    for (let from = 1; from <= 200; from += 20) {
      const starts = [train.length, valid.length];
      const steps = range(from, from + 19);
      train.append(points('train', steps, steps.map((s) => s / 100)));
      const evals = steps.filter((s) => s % 50 === 0);
      valid.append(points('valid', evals, evals.map((s) => s / 50)));
      assert.equal(table.add(starts), false, 'appends at the end do not rebuild');
    }
    assert.equal(table.length, 200);
    assert.deepEqual(rows(table)[49], [50, 0.5, 1]);
    assert.deepEqual(rows(table)[50], [51, 0.51, null]);
    const incremental = rows(table);
    table.rebuild();
    assert.deepEqual(rows(table), incremental);
  });

  it('fills a row that exists when a sparse point arrives later (valid loss after train loss of its step)', () => {
    const train = new SeriesStore('train', true);
    const valid = new SeriesStore('valid', true);
    const table = new AlignedTable([train, valid], 'step');
    train.append(points('train', range(1, 60), range(1, 60)));
    table.add([0, 0]);
    valid.append(points('valid', [50], [7]));
    assert.equal(table.add([60, 0]), false);
    assert.deepEqual(rows(table)[49], [50, 50, 7]);
  });

  it('equals a table aligned from scratch after any sequence of appends', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (const mode of ['step', 'time'] as const) {
      for (let trial = 0; trial < 30; trial++) {
        const stores = [new SeriesStore('a', true), new SeriesStore('b', true), new SeriesStore('c', false)];
        const table = new AlignedTable(stores, mode);
        const next = [1, 1, 1];
        for (let batch = 0; batch < 12; batch++) {
          const starts = stores.map((st) => st.length);
          for (let s = 0; s < stores.length; s++) {
            if (random() < 0.4) continue;
            const steps: number[] = [];
            for (let n = Math.floor(random() * 30); n > 0; n--) {
              next[s] += 1 + Math.floor(random() * (s === 0 ? 2 : 40));
              steps.push(next[s]);
            }
            stores[s].append({ key: stores[s].key, step: steps, time: steps.map((x) => x * (1 + s * 0.5)), y: steps.map(() => random()) });
          }
          table.add(starts);
        }
        const incremental = rows(table);
        const drawn = table.drawn.map((c) => Array.from(c.view()));
        table.rebuild();
        assert.deepEqual(incremental, rows(table), `${mode}, trial ${trial}`);
        assert.deepEqual(drawn, table.drawn.map((c) => Array.from(c.view())), `${mode}, trial ${trial}: drawn`);
      }
    }
  });

  it('rebuilds when runs compared by time interleave, to the same table as from scratch', () => {
    const a = new SeriesStore('a', true);
    const b = new SeriesStore('b', true);
    const table = new AlignedTable([a, b], 'time');
    a.append(points('a', range(1, 10), range(1, 10), 2));
    table.add([0, 0]);
    b.append(points('b', range(1, 10), range(11, 20), 3));
    assert.equal(table.add([10, 0]), true, 'times between existing rows rebuild');
    const times = [...new Set([...range(1, 10).map((s) => s * 2), ...range(1, 10).map((s) => s * 3)])].sort((x, y) => x - y);
    assert.deepEqual(rows(table).map((r) => r[0]), times);
    assert.deepEqual(rows(table).find((r) => r[0] === 6), [6, 3, 12]);
    table.setMode('step');
    assert.equal(table.length, 10);
    assert.deepEqual(rows(table)[0], [1, 1, 11]);
  });
});

describe('paths', () => {
  /** Records the segments a trace makes. */
  function trace(xs: number[], ys: number[], view: PathView, withSummary: boolean): string[] {
    const out: string[] = [];
    let summary: CurveSummary | null = null;
    if (withSummary) {
      summary = new CurveSummary();
      summary.extend(ys, 0, 7);
      summary.extend(ys, 7, ys.length);
    }
    tracePath({ moveTo: (x, y) => out.push(`M${x},${y}`), lineTo: (x, y) => out.push(`L${x},${y}`) }, xs, ys, xs.length, view, summary);
    return out;
  }
  const view: PathView = { left: 10, top: 5, width: 300, height: 200, xMin: 1, xMax: 20_000, yMin: 0, yMax: 3, log: false };

  it('draws at most one vertical segment per pixel column', () => {
    const xs = range(1, 20_000);
    const segments = trace(xs, noisy(20_000), view, false);
    assert.ok(segments.length <= 4 * 302 + 2, `${segments.length} segments for 300 pixel columns`);
    const [x0, y0] = segments[0].slice(1).split(',').map(Number);
    assert.equal(x0, 10);
    assert.ok(Math.abs(y0 - (5 + 200 - (noisy(1)[0] / 3) * 200)) < 1e-9, 'the first point where its value says');
  });

  it('gives the same segments from bucket summaries as point by point, breaks and log scale included', () => {
    const xs = range(1, 20_000);
    const ys = noisy(20_000);
    ys[5000] = NaN;
    ys[12_345] = -1;
    for (const v of [view, { ...view, log: true, yMin: 0.01 }, { ...view, xMin: 3000, xMax: 9000 }, { ...view, width: 40 }]) {
      const plain = trace(xs, ys, v, false);
      const fast = trace(xs, ys, v, true);
      assert.deepEqual(fast, plain, `view ${JSON.stringify(v)}`);
    }
    assert.equal(BUCKET, 16);
  });

  it('breaks the line at values it cannot draw and keeps lone points visible', () => {
    const segments = trace([1, 2, 3], [1, NaN, 2], { ...view, xMax: 3 }, false);
    assert.equal(segments.filter((s) => s.startsWith('M')).length, 2, 'two pieces around the NaN');
    assert.equal(segments.length, 4, 'each lone point is a dot-sized segment');
  });
});

describe('formats', () => {
  it('writes durations like a clock', () => {
    const cases: [number, string][] = [[0, '0s'], [45, '45s'], [90, '1m30s'], [120, '2m'], [725, '12m05s'], [7500, '2h05m'], [3600, '1h'], [97_200, '1d03h'], [2.5, '2.5s']];
    for (const [seconds, text] of cases) assert.equal(formatDuration(seconds), text, `${seconds}s`);
  });

  it('writes values with 4 significant digits and steps with separators', () => {
    assert.equal(formatValue(0.123456), '0.1235');
    assert.equal(formatValue(2.0), '2');
    assert.equal(formatValue(0.0002), '2e-4');
    assert.equal(formatValue(1.5e9), '1.5e+9');
    assert.equal(formatValue(NaN), 'NaN');
    assert.equal(formatStep(12345), '12,345');
  });
});
