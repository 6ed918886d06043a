// The dashboard's chart (webview/dashboard/chart.ts, on uPlot) drawn for real in Debian's Chromium: the harness
// page (webview/dashboard/chartHarness.ts) is bundled into a temporary folder and opened from a file: URL, and
// every check reads back what the chart holds and what its canvas shows. No code-server needed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { buildChartPage, type ChartPageGlobals } from '../bench/webview/chartPage';
import type { ChartData, ChartSettings, SeriesPoints } from '../webview/dashboard/chartApi';
import type { PlainChartSpec } from '../webview/dashboard/chartHarnessApi';
import { freshArtifactDir, launchChromium, type LaunchedChromium } from './host/session';

const SETTINGS: ChartSettings = { smoothing: 0.6, logScale: false, xAxis: 'step' };
const WIDTH = 640;
const RATIO = 2;
const BLUE = 'var(--vscode-charts-blue)';
const ORANGE = 'var(--vscode-charts-orange)';

/** TensorBoard's smoothing, point by point (the reference the drawn curve must equal). */
function tensorBoardSmooth(values: readonly number[], weight: number): number[] {
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return v;
    last = last * weight + (1 - weight) * v;
    count++;
    return last / (1 - Math.pow(weight, count));
  });
}

function lossSpec(id: string): PlainChartSpec {
  return {
    id,
    title: 'Loss',
    series: [
      { key: 'train', label: 'train loss', color: BLUE },
      { key: 'valid', label: 'valid loss', color: ORANGE, dashed: true },
    ],
  };
}

/** Steps [from, to] of a loss curve (1.5 s per step); valid points every 50 steps. */
function lossPoints(from: number, to: number): (SeriesPoints & { step: number[]; time: number[]; y: number[] })[] {
  const steps = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const evals = steps.filter((s) => s % 50 === 0);
  const y = (s: number) => 0.3 + 2 * Math.exp(-s / 400) + ((s * 7919) % 13) / 40;
  return [
    { key: 'train', step: steps, time: steps.map((s) => s * 1.5), y: steps.map(y) },
    { key: 'valid', step: evals, time: evals.map((s) => s * 1.5), y: evals.map((s) => 0.4 + 2 * Math.exp(-s / 400)) },
  ];
}

function assertClose(actual: readonly number[], expected: readonly number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => {
    const e = expected[i];
    if (Number.isNaN(e)) assert.ok(Number.isNaN(a), `point ${i}: NaN expected, got ${a}`);
    else assert.ok(Math.abs(a - e) <= 1e-12 * Math.max(1, Math.abs(e)), `point ${i}: ${a} ≠ ${e}`);
  });
}

/** Decodes a PNG data URL far enough to prove it whole: chunks, inflated pixel data of the declared size, and the
 * first pixel (the same under every PNG filter). */
function decodePng(url: string): { width: number; height: number; firstPixel: number[] } {
  assert.match(url, /^data:image\/png;base64,/);
  const bytes = Buffer.from(url.slice(url.indexOf(',') + 1), 'base64');
  assert.deepEqual([...bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'PNG signature');
  let offset = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  for (;;) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8');
      colorType = data[9];
    } else if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
    if (type === 'IEND') break;
  }
  const channels = colorType === 6 ? 4 : 3;
  const pixels = inflateSync(Buffer.concat(idat));
  assert.equal(pixels.length, height * (1 + width * channels), 'the pixel data matches the declared size');
  return { width, height, firstPixel: [...pixels.subarray(1, 1 + channels)] };
}

describe('the chart in Chromium', { timeout: 120_000 }, () => {
  let chromium: LaunchedChromium;
  let page: Page;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'finetune-chart-'));
    const url = await buildChartPage(dir);
    chromium = await launchChromium();
    const context = await chromium.browser.newContext({ viewport: { width: 1000, height: 900 }, deviceScaleFactor: RATIO });
    page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => (globalThis as unknown as Partial<ChartPageGlobals>).chartHarness !== undefined);
  });

  after(async () => {
    const errors = page === undefined ? [] : await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.errors());
    await chromium?.close();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });

  async function create(spec: PlainChartSpec, settings = SETTINGS): Promise<void> {
    await page.evaluate(([s, o, w]) => (globalThis as unknown as ChartPageGlobals).chartHarness.create(s, o, w), [spec, settings, WIDTH] as const);
  }
  async function append(id: string, points: SeriesPoints[]): Promise<void> {
    await page.evaluate(([i, p]) => (globalThis as unknown as ChartPageGlobals).chartHarness.append(i, p), [id, points] as const);
  }
  async function apply(id: string, settings: ChartSettings): Promise<void> {
    await page.evaluate(([i, s]) => (globalThis as unknown as ChartPageGlobals).chartHarness.apply(i, s), [id, settings] as const);
  }
  async function data(id: string): Promise<ChartData> {
    return page.evaluate((i) => (globalThis as unknown as ChartPageGlobals).chartHarness.data(i), id);
  }
  async function frames(): Promise<void> {
    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.frames());
  }
  async function columnRows(id: string, x: number, color: string, options: { tolerance?: number; minAlpha?: number } = {}): Promise<number[]> {
    return page.evaluate(([i, px, c, o]) => {
      const harness = (globalThis as unknown as ChartPageGlobals).chartHarness;
      return harness.columnRows(i, px, harness.resolveColor(c), o);
    }, [id, x, color, options] as const);
  }
  /** TensorBoard's smoothing of `values`, computed in the page (the same code as tensorBoardSmooth). */
  async function referenceInPage(values: number[], weight: number): Promise<number[]> {
    return page.evaluate(([v, w]) => {
      let last = 0;
      let count = 0;
      return v.map((x) => {
        if (!Number.isFinite(x)) return x;
        last = last * w + (1 - w) * x;
        count++;
        return last / (1 - Math.pow(w, count));
      });
    }, [values, weight] as const);
  }
  async function plotRect(id: string) {
    return page.evaluate((i) => (globalThis as unknown as ChartPageGlobals).chartHarness.plotRect(i), id);
  }
  /** Where value `y` is drawn (CSS pixels from the plot's top) in the chart's current view. */
  function yPixel(view: NonNullable<ChartData['view']>, y: number): number {
    const f = view.logScale ? (Math.log10(y) - Math.log10(view.yMin)) / (Math.log10(view.yMax) - Math.log10(view.yMin)) : (y - view.yMin) / (view.yMax - view.yMin);
    return view.height * (1 - f);
  }
  function xPixel(view: NonNullable<ChartData['view']>, x: number): number {
    return ((x - view.xMin) / (view.xMax - view.xMin)) * view.width;
  }

  it('holds the appended values unchanged and draws TensorBoard\'s smoothing of them, appended in batches', async () => {
    await create(lossSpec('ema'));
    const batches = [lossPoints(1, 120), lossPoints(121, 121), lossPoints(122, 600)];
    // A non-finite loss (a diverged step) is kept but neither drawn nor averaged.
    batches[1][0].y[0] = NaN;
    for (const batch of batches) await append('ema', batch);
    await frames();
    const held = await data('ema');
    const train = batches.flatMap((b) => [...b[0].y]);
    const valid = batches.flatMap((b) => [...b[1].y]);
    assert.deepEqual(held.series.map((s) => s.key), ['train', 'valid']);
    assert.deepEqual(held.series[0].raw, train);
    assert.deepEqual(held.series[1].raw, valid);
    assert.deepEqual(held.series[0].x, batches.flatMap((b) => [...b[0].step]));
    // The reference runs in Node and in the page: Chromium's V8 and Node's may round Math.pow differently in the
    // last bit, so the drawn curve must equal the reference computed by the same engine, and Node's within 1e-12.
    assert.deepEqual(held.series[0].drawn, await referenceInPage(train, 0.6));
    assert.deepEqual(held.series[1].drawn, await referenceInPage(valid, 0.6));
    assertClose(held.series[0].drawn, tensorBoardSmooth(train, 0.6));
    // The smoothed curve is on the canvas where its value says, at a step in the middle.
    const view = held.view;
    assert.ok(view !== null && view !== undefined);
    const step = 300;
    const rows = await columnRows('ema', xPixel(view, step), BLUE);
    assert.ok(rows.length > 0, 'the train curve is drawn at step 300');
    const expected = yPixel(view, held.series[0].drawn[step - 1]);
    assert.ok(rows.some((r) => Math.abs(r - expected) < 3), `the curve passes near y=${expected.toFixed(1)} (drawn at ${rows.join(', ')})`);

    await apply('ema', { ...SETTINGS, smoothing: 0.95 });
    assert.deepEqual((await data('ema')).series[0].drawn, await referenceInPage(train, 0.95), 'the slider recomputes the curve');
    await apply('ema', { ...SETTINGS, smoothing: 0 });
    assert.deepEqual((await data('ema')).series[0].drawn, train, 'weight 0 draws the raw values');
  });

  it('refuses bad points with a clear error and keeps what it held', async () => {
    await create(lossSpec('bad'));
    await append('bad', lossPoints(1, 10));
    await assert.rejects(append('bad', [{ key: 'nope', step: [11], time: [1], y: [1] }]), /chart bad has no series nope \(it has train, valid\)/);
    await assert.rejects(append('bad', [{ key: 'train', step: [5], time: [20], y: [1] }]), /series train: point 0 \(step 5\) does not come after step 10; steps must increase/);
    assert.equal((await data('bad')).series[0].raw.length, 10);
  });

  it('draws on a log scale, values placed by their logarithm', async () => {
    await create(lossSpec('log'));
    const steps = Array.from({ length: 400 }, (_, i) => i + 1);
    const y = steps.map((s) => 10 ** (-3 * (s / 400)));
    await append('log', [{ key: 'train', step: steps, time: steps, y }]);
    await apply('log', { smoothing: 0, logScale: true, xAxis: 'step' });
    await frames();
    const held = await data('log');
    const view = held.view;
    assert.ok(view?.logScale === true, 'the view is logarithmic');
    assert.ok(view.yMin <= 1e-3 && view.yMax >= 1, `the y range covers the data: ${view.yMin}…${view.yMax}`);
    for (const step of [100, 200, 300]) {
      const rows = await columnRows('log', xPixel(view, step), BLUE);
      const expected = yPixel(view, y[step - 1]);
      assert.ok(rows.some((r) => Math.abs(r - expected) < 3), `step ${step}: near y=${expected.toFixed(1)} (drawn at ${rows.join(', ')})`);
    }
    // A linear scale would put 10^-1.5 close to the bottom; the log scale puts it half-way.
    const middle = yPixel(view, y[199]);
    assert.ok(middle > view.height * 0.25 && middle < view.height * 0.75);
  });

  it('puts x by time and the checkpoint markers at the time of their step', async () => {
    await create(lossSpec('time'));
    await append('time', lossPoints(1, 1000));
    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.setMarkers('time', [333, 777]));
    await apply('time', { ...SETTINGS, xAxis: 'time' });
    await frames();
    const held = await data('time');
    assert.equal(held.xAxis, 'time');
    assert.deepEqual(held.series[0].x, held.series[0].x.map((_, i) => (i + 1) * 1.5));
    assert.deepEqual(held.markers, [333, 777]);
    const view = held.view;
    assert.ok(view !== null && view !== undefined);
    assert.ok(view.xMin <= 1.5 && view.xMax >= 1500, `the x range is in seconds: ${view.xMin}…${view.xMax}`);
    const foreground = 'var(--vscode-foreground)';
    const markerRows = await columnRows('time', xPixel(view, 333 * 1.5), foreground, { tolerance: 40, minAlpha: 90 });
    // Rows come in device pixels: a dashed line covers about half of the plot's height.
    const deviceHeight = view.height * RATIO;
    assert.ok(markerRows.length > deviceHeight * 0.3, `a dashed line at 499.5 s (${markerRows.length} of ${deviceHeight} pixels)`);
    assert.ok(markerRows.length < deviceHeight * 0.8, `dashed, not solid (${markerRows.length} of ${deviceHeight} pixels)`);
    const beside = await columnRows('time', xPixel(view, 333 * 1.5) + 6, foreground, { tolerance: 40, minAlpha: 90 });
    assert.ok(beside.length < 3, 'nothing of the kind beside it');
  });

  it('zooms by dragging, keeps the zoom while data arrives, and resets by double click and by resetZoom()', async () => {
    await create(lossSpec('zoom'));
    await append('zoom', lossPoints(1, 1000));
    await frames();
    const rect = await plotRect('zoom');
    const full = (await data('zoom')).view;
    assert.ok(full !== null && full !== undefined);
    await page.mouse.move(rect.x + rect.width * 0.25, rect.y + rect.height / 2);
    await page.mouse.down();
    await page.mouse.move(rect.x + rect.width * 0.4, rect.y + rect.height / 2, { steps: 4 });
    await page.mouse.move(rect.x + rect.width * 0.5, rect.y + rect.height / 2, { steps: 4 });
    await page.mouse.up();
    const zoomed = await data('zoom');
    assert.ok(zoomed.zoom !== null, 'dragging zooms');
    const [lo, hi] = zoomed.zoom;
    const expectLo = full.xMin + 0.25 * (full.xMax - full.xMin);
    const expectHi = full.xMin + 0.5 * (full.xMax - full.xMin);
    assert.ok(Math.abs(lo - expectLo) < 5 && Math.abs(hi - expectHi) < 5, `zoomed to ${lo}…${hi}, expected ≈${expectLo}…${expectHi}`);
    assert.equal(await page.locator('[data-chart-id="zoom"] .ft-chart-reset').isVisible(), true, 'the reset button shows');
    assert.ok(zoomed.view !== null && zoomed.view !== undefined && zoomed.view.yMax < full.yMax, 'y fits the part in view (lower losses than at the start)');

    await append('zoom', lossPoints(1001, 1500));
    await frames();
    const after = await data('zoom');
    assert.deepEqual(after.zoom, zoomed.zoom, 'new data keeps the zoom');
    assert.equal(after.view?.xMin, lo);
    assert.equal(after.view?.xMax, hi);
    assert.equal(after.series[0].raw.length, 1500);

    // Hover read-out at the middle of the zoomed range.
    await page.mouse.move(rect.x + rect.width / 2, rect.y + rect.height / 2);
    const readout = await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.readout('zoom'));
    const middle = Math.round((lo + hi) / 2);
    const shown = Number(/step ([\d,]+)/.exec(readout)?.[1].replace(/,/g, ''));
    assert.ok(Math.abs(shown - middle) <= 2, `the read-out shows step ≈${middle}: ${readout}`);
    assert.match(readout, /train loss\s+[\d.]+\s+raw [\d.]+\s+step [\d,]+ · \d+m\d*s?/);
    assert.match(readout, /valid loss\s+[\d.]+/);

    await page.mouse.dblclick(rect.x + rect.width / 2, rect.y + rect.height / 2);
    await frames();
    const reset = await data('zoom');
    assert.equal(reset.zoom, null, 'double click shows everything');
    assert.equal(reset.view?.xMax, 1500, 'and follows the data again');

    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.zoom('zoom', [100, 200]));
    assert.deepEqual((await data('zoom')).zoom, [100, 200]);
    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.resetZoom('zoom'));
    const again = await data('zoom');
    assert.equal(again.zoom, null);
    assert.equal(again.view?.xMin, 1);
    assert.equal(again.view?.xMax, 1500);
    assert.equal(await page.locator('[data-chart-id="zoom"] .ft-chart-reset').isVisible(), false);
  });

  it('compares runs with different steps and clocks on one time axis', async () => {
    await create({ id: 'compare', title: 'Loss', series: [{ key: 'a', label: 'run a', color: BLUE }, { key: 'b', label: 'run b', color: ORANGE }] }, { ...SETTINGS, xAxis: 'time' });
    const a = Array.from({ length: 300 }, (_, i) => i + 1);
    const b = Array.from({ length: 200 }, (_, i) => 2 * (i + 1));
    await append('compare', [{ key: 'a', step: a, time: a.map((s) => s * 2), y: a.map((s) => 3 - s / 150) }]);
    // Run b arrives later, its times falling between run a's: the table is rebuilt, both drawn.
    await append('compare', [{ key: 'b', step: b, time: b.map((s) => s * 1.3), y: b.map(() => 0.5) }]);
    await frames();
    const held = await data('compare');
    assert.deepEqual(held.series[1].x, b.map((s) => s * 1.3));
    const view = held.view;
    assert.ok(view !== null && view !== undefined);
    assert.equal(view.xMax, 600, 'the x range spans both runs');
    for (const [color, y] of [[BLUE, held.series[0].drawn[149]], [ORANGE, 0.5]] as const) {
      const rows = await columnRows('compare', xPixel(view, 300), color);
      const expected = yPixel(view, y);
      assert.ok(rows.some((r) => Math.abs(r - expected) < 3), `${color} near y=${expected.toFixed(1)} at 300 s (drawn at ${rows.join(', ')})`);
    }
  });

  it('exports a PNG with title and legend on the theme background, and follows the theme', async () => {
    await create(lossSpec('png'));
    await append('png', lossPoints(1, 500));
    await frames();
    const canvas = await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.canvasSize('png'));
    assert.equal(canvas.width, WIDTH * RATIO, 'the canvas is as wide as the container, in device pixels');
    const artifacts = freshArtifactDir('webview-chart');
    const save = (name: string, url: string) => writeFileSync(join(artifacts, name), Buffer.from(url.slice(url.indexOf(',') + 1), 'base64'));
    const lightUrl = await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.toPng('png'));
    save('chart-light.png', lightUrl);
    const light = decodePng(lightUrl);
    assert.equal(light.width, canvas.width);
    // Title (28 CSS px), the plot, and a legend of two lines (18 each, plus 10).
    assert.equal(light.height, canvas.height + (28 + 2 * 18 + 10) * RATIO);
    assert.deepEqual(light.firstPixel, [255, 255, 255, 255], 'opaque, on the light background');

    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.setTheme('dark'));
    await frames();
    const darkUrl = await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.toPng('png'));
    save('chart-dark.png', darkUrl);
    const dark = decodePng(darkUrl);
    assert.deepEqual(dark.firstPixel, [0x1f, 0x1f, 0x1f, 255], 'the dark theme background');
    const view = (await data('png')).view;
    assert.ok(view !== null && view !== undefined);
    const darkBlue = await columnRows('png', view.width / 2, BLUE);
    assert.ok(darkBlue.length > 0, 'the curve is redrawn in the dark theme\'s blue');
    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.setTheme('light'));
  });

  it('follows its container\'s width', async () => {
    await create(lossSpec('resize'));
    await append('resize', lossPoints(1, 100));
    await page.evaluate(() => (globalThis as unknown as ChartPageGlobals).chartHarness.setWidth('resize', 420));
    await page.waitForFunction((w) => (globalThis as unknown as ChartPageGlobals).chartHarness.canvasSize('resize').width === w, 420 * RATIO, { timeout: 10_000 });
  });
});
