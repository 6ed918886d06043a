// The run dashboard's chart benchmark (`npm run bench:webview`, issue 7 "Done when"): in Debian's headless
// Chromium, a page holding the six charts of a run dashboard (loss [train, valid every 50 steps], token accuracy
// [train, valid], learning rate, grad norm, tokens/s, GPU memory) with 100,000 points per series, drawn by our
// charts (webview/dashboard/chart.ts, uPlot) and, for comparison, by Chart.js 4 at its best-case settings:
//   1. 1,000 points appended to every series in one batch, to the painted frame: median and p95 of 20;
//   2. the same 1,000 points as 1,000 live events (one append per event), 10 per frame: mean and worst frame;
//   3. first paint of a finished run of 100,000 steps: creating the charts with all the data to the first painted
//      frame, median of 5, a fresh page each time;
//   4. hover: the cursor crossing the loss chart, the work per mousemove to the painted frame.
// "To the painted frame" is measured in the page (webview/dashboard/chartHarness.ts `measureFrame`): the work of
// the call itself plus the animation-frame callbacks it scheduled (the library's redraw), bracketed by a frame
// callback registered before it and one after it — the main-thread time the frame costs, without the idle wait
// for the display's next vsync.
//
//   npm run bench:webview            (builds, installs Chromium if needed, then runs this)
//   tsx bench/webview.bench.ts [--points N]
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../test/host/session';
import type { BenchLibrary, BenchTimings } from '../webview/dashboard/chartHarnessApi';
import { buildAppPage, buildChartPage, type ChartPageGlobals, hasDashboardApp } from './webview/chartPage';

const LIBRARIES: readonly BenchLibrary[] = ['uplot', 'chartjs'];
const FIRST_PAINT_RUNS = 5;

interface LibraryResult {
  firstPaint: number[];
  live: BenchTimings;
}

function sorted(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

function median(values: readonly number[]): number {
  const s = sorted(values);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile. */
function percentile(values: readonly number[], p: number): number {
  const s = sorted(values);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function max(values: readonly number[]): number {
  return Math.max(...values);
}

async function runLibrary(browser: Browser, url: string, library: BenchLibrary, points: number): Promise<LibraryResult> {
  const firstPaint: number[] = [];
  let live: BenchTimings | undefined;
  for (let run = 0; run < FIRST_PAINT_RUNS; run++) {
    // A fresh page each time: no warm JIT, caches or pooled canvases from the previous run.
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(url);
      await page.waitForFunction(() => (globalThis as unknown as Partial<ChartPageGlobals>).chartHarness !== undefined);
      firstPaint.push(await page.evaluate(([l, n]) => (globalThis as unknown as ChartPageGlobals).chartHarness.benchFirstPaint(l, n), [library, points] as const));
      // The live scenarios on the last page, whose dashboard already holds the finished run.
      if (run === FIRST_PAINT_RUNS - 1) live = await page.evaluate((l) => (globalThis as unknown as ChartPageGlobals).chartHarness.benchLive(l), library);
      if (errors.length > 0) throw new Error(`${library}: the page failed: ${errors.join('; ')}`);
    } finally {
      await context.close();
    }
    process.stdout.write('.');
  }
  if (live === undefined) throw new Error(`${library}: no live figures`);
  return { firstPaint, live };
}

/** Scenario 3b: the real dashboard app's first paint of a finished run (ms since navigation), median of 5. */
async function runApp(browser: Browser, dir: string, points: number): Promise<number[]> {
  const url = `${await buildAppPage(dir)}?steps=${points}`;
  const runs: number[] = [];
  for (let run = 0; run < FIRST_PAINT_RUNS; run++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(url);
      const handle = await page.waitForFunction(() => (globalThis as unknown as { appFirstPaint?: number }).appFirstPaint, undefined, { timeout: 60_000 });
      runs.push(Number(await handle.jsonValue()));
      const received = await page.evaluate(() => (globalThis as unknown as { finetuneDashboard?: { received(): number } }).finetuneDashboard?.received() ?? 0);
      if (received !== points) throw new Error(`the dashboard app took ${received} rows, not ${points}`);
      if (errors.length > 0) throw new Error(`the dashboard app failed: ${errors.join('; ')}`);
    } finally {
      await context.close();
    }
    process.stdout.write('.');
  }
  return runs;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<void> {
  const pointsArg = process.argv.indexOf('--points');
  const points = pointsArg > 0 ? Number(process.argv[pointsArg + 1]) : 100_000;
  if (!Number.isInteger(points) || points < 1000) throw new Error(`--points must be an integer of at least 1000, got ${process.argv[pointsArg + 1]}`);
  const dir = mkdtempSync(join(tmpdir(), 'finetune-bench-webview-'));
  const started = performance.now();
  try {
    // Minified, as `npm run package` ships the webview.
    const url = await buildChartPage(dir, { minify: true });
    const chromium = await launchChromium();
    try {
      const version = chromium.browser.version();
      process.stdout.write(`Chromium ${version} (headless), ${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}), ${points.toLocaleString('en-US')} points per series, 6 charts / 8 series\n`);
      const results = new Map<BenchLibrary, LibraryResult>();
      for (const library of LIBRARIES) {
        process.stdout.write(`${library} `);
        results.set(library, await runLibrary(chromium.browser, url, library, points));
        process.stdout.write(' done\n');
      }
      let app: number[] | null = null;
      if (hasDashboardApp()) {
        process.stdout.write('dashboard app ');
        try {
          app = await runApp(chromium.browser, dir, points);
          process.stdout.write(' done\n');
        } catch (error) {
          // The app is another part's work in progress: its failure is reported, not fatal to the figures above.
          process.stdout.write(` failed: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      }
      const ours = results.get('uplot');
      const theirs = results.get('chartjs');
      if (ours === undefined || theirs === undefined) throw new Error('missing results');
      const figure = (name: string, pick: (r: LibraryResult) => number): string[] => {
        const a = pick(ours);
        const b = pick(theirs);
        return [name, `${a.toFixed(2)} ms`, `${b.toFixed(2)} ms`, `${(b / a).toFixed(1)}×`];
      };
      const rows = [
        ['figure (main-thread ms to the painted frame)', 'uPlot (ours)', 'Chart.js 4', 'Chart.js / ours'],
        figure('1. append 1,000 pts/series, one batch: median', (r) => median(r.live.batchAppend)),
        figure('1. append 1,000 pts/series, one batch: p95', (r) => percentile(r.live.batchAppend, 95)),
        figure('2. 1,000 live events, 10/frame: mean frame', (r) => mean(r.live.liveFrames)),
        figure('2. 1,000 live events, 10/frame: worst frame', (r) => max(r.live.liveFrames)),
        figure(`3. first paint, finished run of ${points.toLocaleString('en-US')} steps: median of ${FIRST_PAINT_RUNS}`, (r) => median(r.firstPaint)),
        ...(app === null ? [] : [[`3b. the real dashboard app: navigation to painted history, median of ${FIRST_PAINT_RUNS}`, `${median(app).toFixed(2)} ms`, '—', '—']]),
        figure('4. hover, per mousemove: mean', (r) => mean(r.live.hover)),
        figure('4. hover, per mousemove: worst', (r) => max(r.live.hover)),
      ];
      process.stdout.write(`\n${table(rows)}\n`);
      process.stdout.write(`\nfirst paints (ms): uPlot ${ours.firstPaint.map((v) => v.toFixed(0)).join(', ')}; Chart.js ${theirs.firstPaint.map((v) => v.toFixed(0)).join(', ')}\n`);
      if (app !== null) process.stdout.write(`dashboard app first paints (ms): ${app.map((v) => v.toFixed(0)).join(", ")}\n`);
      process.stdout.write(`bench took ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    } finally {
      await chromium.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
