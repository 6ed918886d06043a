// Issue 7's dashboard UI test: the run dashboard as a user meets it in the real workbench (code-server), driven
// through Debian's Chromium with playwright-core. A tiny run is trained beforehand on a backend this test starts
// itself (test/backend.harness.ts), handed to the extension through FINETUNE_BACKEND_URL/KEY as `npm start` does.
// Clicking the run's row in the tree opens its dashboard; the charts hold the backend's metrics (read back through
// the page's `window.finetuneDashboard`); dragging the smoothing slider changes the drawn curve; hovering a chart
// shows the read-out; the dashboard is photographed in the light and the dark theme, in English and in Chinese
// (openHostSession's `locale`: `vscode.env.language` is then zh-cn, the webview's <html lang> says so and our strings
// show in Chinese). Each step is a subtest that waits on selectors (never sleeps) and leaves a screenshot in
// test-artifacts/dashboard-ui/ (English) and test-artifacts/dashboard-ui-zh-cn/ (Chinese).
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { Frame, FrameLocator, Page } from 'playwright-core';
import { ownerOf } from '../backend/http/auth';
import type { FineTuningJob, FineTuningJobEvent, ListObject, MetricsData } from '../common/api';
import type { ChartData, ChartSettings } from '../webview/dashboard/chartApi';
import type { InspectResult } from '../webview/dashboard/protocol';
import { call, startTestBackend, type TestBackend, upload, waitForFinal } from './backend.harness';
import { ARTIFACTS_DIR, openHostSession, type HostSession } from './host/session';
import { arithmeticDataset } from './host/tinyDatasets';
import { uiSteps } from './host/uiSteps';
import { colorTheme, palette, runsView, treeRow } from './host/workbench';

const STEP_TIMEOUT_MS = 60_000;
const RUN_NAME = 'ui-dash';
/** A finished run whose history is made 100,000 steps long (see `lengthenHistory`). */
const BIG_RUN = 'ui-100k';
const BIG_STEPS = 100_000;
/** What the page exposes (webview/dashboard/main.ts). The test project has no DOM types: typed here. */
interface DashboardGlobals {
  finetuneDashboard?: { inspect(): InspectResult; received(): number; apply(settings: Partial<ChartSettings>): ChartSettings };
}

/** The dashboard's page: VS Code nests the extension's HTML in an inner frame of its webview iframe. */
function dashboardFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').first().frameLocator('iframe#active-frame');
}

/** The dashboard's Frame (to evaluate in it): the one frame whose page has the dashboard's read-out. */
async function dashboardPage(page: Page, ready = '#chart-loss canvas'): Promise<Frame> {
  await dashboardFrame(page).locator(ready).first().waitFor();
  for (const frame of page.frames()) {
    if (frame.isDetached()) continue;
    const has = await frame.evaluate(() => (globalThis as unknown as DashboardGlobals).finetuneDashboard !== undefined && document.visibilityState === 'visible').catch(() => false);
    if (has) return frame;
  }
  throw new Error('no frame has window.finetuneDashboard');
}

function inspect(frame: Frame): Promise<InspectResult> {
  return frame.evaluate(() => {
    const api = (globalThis as unknown as DashboardGlobals).finetuneDashboard;
    if (api === undefined) throw new Error('window.finetuneDashboard is missing');
    return api.inspect();
  });
}

function lossSeries(result: InspectResult): ChartData['series'][number] {
  const series = result.charts.find((c) => c.id === 'loss')?.series.find((s) => s.key === '0/train_loss');
  assert.ok(series, 'no train loss series');
  return series;
}

/** The runs view's part of the side bar. */
let backend: TestBackend;
let trained: { job: FineTuningJob; metrics: MetricsData[] };

async function train(fileId: string, suffix: string, hyperparameters: Record<string, number>): Promise<FineTuningJob> {
  const created = await call<FineTuningJob>(backend, 'POST', '/v1/fine_tuning/jobs', {
    json: { model: 'tiny-qwen2-1m', training_file: fileId, suffix, method: { type: 'supervised', supervised: { hyperparameters } } },
  });
  assert.equal(created.status, 200, created.text);
  const job = await waitForFinal(backend, ownerOf(backend.key), created.body.id, 120_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  return job;
}

/**
 * Replaces a finished run's event log (the backend stopped) with 100,000 metrics events, as a long run leaves it:
 * the run store's own format (backend/runtime/jobStore.ts), read back when the backend starts again.
 */
function lengthenHistory(dataDir: string, jobId: string): void {
  const lines: string[] = [];
  for (let seq = 1; seq <= BIG_STEPS; seq++) {
    const data: MetricsData = {
      step: seq,
      total_steps: BIG_STEPS,
      epoch: seq / 25_000,
      train_loss: 2.5 * Math.exp(-seq / 30_000) + 0.3 * Math.sin(seq / 7) ** 2,
      train_mean_token_accuracy: 0.9 - 0.5 * Math.exp(-seq / 20_000),
      learning_rate: 2e-4 * (1 - seq / BIG_STEPS),
      grad_norm: 1 + Math.abs(Math.sin(seq / 11)),
      tokens_per_second: 5000 + 100 * Math.sin(seq / 13),
      elapsed: seq * 0.25,
      ...(seq % 1000 === 0 ? { valid_loss: 2.6 * Math.exp(-seq / 30_000) + 0.1, valid_mean_token_accuracy: 0.85 - 0.5 * Math.exp(-seq / 20_000) } : {}),
    };
    const event: FineTuningJobEvent = { id: `ftevent-${String(seq).padStart(24, '0')}`, object: 'fine_tuning.job.event', created_at: 1_700_000_000 + seq, level: 'info', message: `step ${seq}`, seq, job_id: jobId, type: 'metrics', data };
    lines.push(JSON.stringify(event));
  }
  writeFileSync(join(dataDir, 'jobs', jobId, 'events.jsonl'), `${lines.join('\n')}\n`);
}

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'finetune-dashboard-ui-'));
  backend = await startTestBackend({}, dataDir);
  const file = await upload(backend, arithmeticDataset(), { filename: 'dashboard-ui.jsonl' });
  assert.equal(file.status, 200, file.text);
  const fileId = (file.body as { id: string }).id;
  const big = await train(fileId, BIG_RUN, { n_epochs: 1, batch_size: 4, checkpoints: 1, eval_ratio: 0 });
  const job = await train(fileId, RUN_NAME, { n_epochs: 3, batch_size: 2, checkpoints: 3, eval_ratio: 0.25 });
  const events = await call<ListObject<FineTuningJobEvent>>(backend, 'GET', `/v1/fine_tuning/jobs/${job.id}/events?limit=1000`);
  trained = { job, metrics: events.body.data.flatMap((e) => (e.type === 'metrics' ? [e.data] : [])) };
  // Stop the backend (its folder stays), give the big run its long history, start it again on the same folder.
  await backend.backend.close();
  lengthenHistory(dataDir, big.id);
  backend = await startTestBackend({}, dataDir);
});

after(async () => {
  await backend?.close();
});

/** One language's session: opening the dashboard from the tree, then photographs in light and dark. */
function dashboardSession(name: string, locale: string | undefined, words: { smoothing: RegExp; checkpoints: RegExp }): void {
  let session: HostSession;
  let page: Page;
  let frame: Frame;

  before(async () => {
    session = await openHostSession(name, {
      env: { FINETUNE_BACKEND_URL: backend.url, FINETUNE_BACKEND_KEY: backend.key },
      settings: { 'workbench.colorTheme': 'Default Light Modern', 'finetune.backends': [] },
      locale,
    });
    page = session.page;
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
  });

  after(async () => {
    await session?.close();
  });

  const step = uiSteps(() => session, STEP_TIMEOUT_MS * 2);

  step('clicking the finished run in the tree opens its dashboard', async (snap) => {
    await page.goto(session.workbenchUrl());
    await page.locator('.monaco-workbench.vs').waitFor();
    await page.locator('.activitybar .action-item[aria-label^="Finetune"], .activitybar .action-label[aria-label^="Finetune"]').first().click();
    const row = treeRow(page, RUN_NAME);
    await row.waitFor();
    await snap('tree', runsView(page));
    // One click opens it: the tree refreshes a row only when what it shows changes (src/runsRefresh.ts), and a
    // backend's runs arrive with its connection in one refresh of its node, so nothing replaces the row, and its
    // command, under the click (the training suite checks the second).
    await row.click();
    await page.locator('.tabs-container .tab.active', { hasText: RUN_NAME }).waitFor();
    frame = await dashboardPage(page);
    const view = dashboardFrame(page);
    await view.locator('.run-card .badge.status-succeeded').waitFor();
    await view.locator('#checkpointLists .checkpoint').first().waitFor();
    assert.match(await view.locator('label[for="smoothing"]').innerText(), words.smoothing);
    assert.match(await view.locator('#checkpoints h2').innerText(), words.checkpoints);
    if (locale !== undefined) assert.equal(await view.locator('html').getAttribute('lang'), locale, 'vscode.env.language is not the locale');
  });

  step('the charts hold the backend\'s metrics', async () => {
    const result = await inspect(frame);
    const loss = lossSeries(result);
    assert.deepEqual(loss.x, trained.metrics.map((m) => m.step));
    assert.deepEqual(loss.raw, trained.metrics.map((m) => m.train_loss));
    assert.deepEqual(result.checkpoints.length, 3);
  });

  step('dragging the smoothing slider to 0 changes the drawn curve to the raw one', async (snap) => {
    const view = dashboardFrame(page);
    const before = lossSeries(await inspect(frame));
    assert.notDeepEqual(before.drawn, before.raw, 'the default smoothing draws the raw curve');
    const slider = view.locator('#smoothing');
    const box = await slider.boundingBox();
    assert.ok(box, 'the slider is not visible');
    const value = Number(await slider.inputValue());
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + 8 + (box.width - 16) * (value / 0.99), y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, y, { steps: 4 });
    await page.mouse.move(box.x - 20, y, { steps: 4 });
    await page.mouse.up();
    await view.locator('#smoothingValue', { hasText: '0.00' }).waitFor();
    const after = lossSeries(await inspect(frame));
    assert.deepEqual(after.drawn, after.raw, 'smoothing 0 draws the raw values');
    assert.notDeepEqual(after.drawn, before.drawn);
    assert.equal((await inspect(frame)).settings.smoothing, 0);
    // Back to a visible smoothing for the pictures: drag to the middle.
    await page.mouse.move(box.x + 2, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.62, y, { steps: 6 });
    await page.mouse.up();
    await view.locator('#smoothingValue', { hasText: /^0\.[4-8]\d$/ }).waitFor();
    await snap('toolbar', view.locator('.toolbar'));
  });

  step('hovering the loss chart shows the read-out at a step', async (snap) => {
    const view = dashboardFrame(page);
    const chart = view.locator('#chart-loss');
    const plot = chart.locator('.u-over');
    const box = await plot.boundingBox();
    assert.ok(box, 'the plot is not visible');
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await chart.locator('.ft-chart-readout-head', { hasText: /\d/ }).waitFor();
    assert.notEqual((await chart.locator('.ft-chart-readout-row .ft-chart-value').first().innerText()).trim(), '');
    await snap('hover read-out', chart);
  });

  step('the dashboard in the light theme', async (snap) => {
    const view = dashboardFrame(page);
    const editor = page.locator('.editor-group-container.active');
    await view.locator('.run-card').scrollIntoViewIfNeeded();
    await snap('dashboard-light', editor);
    await view.locator('#checkpointLists .checkpoint').first().scrollIntoViewIfNeeded();
    await snap('checkpoints-light', editor);
  });

  step('the dashboard in the dark theme', async (snap) => {
    await colorTheme(page, 'Dark Modern', 'vs-dark');
    const view = dashboardFrame(page);
    await view.locator('body.vscode-dark').waitFor();
    const editor = page.locator('.editor-group-container.active');
    await view.locator('.run-card').scrollIntoViewIfNeeded();
    await snap('dashboard-dark', editor);
    await view.locator('#checkpointLists .checkpoint').first().scrollIntoViewIfNeeded();
    await snap('checkpoints-dark', editor);
  });

  if (locale === undefined) {
    step('a finished run of 100,000 steps opens quickly', async (snap) => {
      const row = treeRow(page, BIG_RUN);
      await row.waitFor();
      const started = Date.now();
      await row.click();
      await page.locator('.tabs-container .tab.active', { hasText: BIG_RUN }).waitFor();
      const big = await dashboardPage(page, `#chart-loss canvas`);
      const shown = Date.now() - started;
      await big.waitForFunction(() => ((globalThis as unknown as DashboardGlobals).finetuneDashboard?.received() ?? 0) > 0, undefined, { timeout: 60_000, polling: 20 });
      const firstPoints = Date.now() - started;
      await big.waitForFunction((n) => ((globalThis as unknown as DashboardGlobals).finetuneDashboard?.received() ?? 0) >= n, BIG_STEPS, { timeout: 60_000, polling: 50 });
      const allPoints = Date.now() - started;
      // The charts draw on the next animation frame after the last append.
      await big.evaluate(() => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))));
      const ms = Date.now() - started;
      const result = await inspect(big);
      const loss = lossSeries(result);
      assert.equal(loss.x.length, BIG_STEPS);
      assert.equal(loss.x[BIG_STEPS - 1], BIG_STEPS);
      console.log(`# dashboard of a finished ${BIG_STEPS}-step run, from the click: charts shown ${shown} ms, first points ${firstPoints} ms, all points received ${allPoints} ms, all drawn ${ms} ms`);
      await snap('dashboard-100k', page.locator('.editor-group-container.active'));
      assert.ok(ms < 30_000, `the 100,000-step dashboard took ${ms} ms`);
    });

    step('after "Developer: Reload Window" the dashboard comes back with its settings and its history', async (snap) => {
      const big = await dashboardPage(page);
      await big.evaluate(() => (globalThis as unknown as DashboardGlobals).finetuneDashboard?.apply({ smoothing: 0.8, xAxis: 'time' }));
      const reloaded = page.waitForEvent('load');
      await palette(page, 'Developer: Reload Window');
      await reloaded;
      await page.locator('.tabs-container .tab.active', { hasText: BIG_RUN }).waitFor();
      const view = dashboardFrame(page);
      await view.locator('#smoothingValue', { hasText: '0.80' }).waitFor();
      await view.locator('#xAxis-time[aria-checked="true"]').waitFor();
      const again = await dashboardPage(page);
      await again.waitForFunction((n) => ((globalThis as unknown as DashboardGlobals).finetuneDashboard?.received() ?? 0) >= n, BIG_STEPS, { timeout: 60_000, polling: 100 });
      const result = await inspect(again);
      assert.equal(result.settings.xAxis, 'time');
      assert.equal(lossSeries(result).x[BIG_STEPS - 1], BIG_STEPS * 0.25, 'x is the time since the start');
      await snap('reloaded-100k-time-axis', page.locator('.editor-group-container.active'));
    });
  }
}

// FINETUNE_DASHBOARD_UI=en or =zh-cn runs one language only (each opens its own code-server).
const only = process.env.FINETUNE_DASHBOARD_UI;

describe('run dashboard UI in code-server (Chromium), English', { timeout: 400_000, skip: only !== undefined && only !== 'en' }, () => {
  dashboardSession('dashboard-ui', undefined, { smoothing: /Smoothing/, checkpoints: /Checkpoints/ });
});

describe('run dashboard UI in code-server (Chromium), Chinese', { timeout: 400_000, skip: only !== undefined && only !== 'zh-cn' }, () => {
  dashboardSession('dashboard-ui-zh-cn', 'zh-cn', { smoothing: /平滑/, checkpoints: /检查点/ });
  // The Chinese pictures also go beside the English ones, in test-artifacts/dashboard-ui/zh-cn/.
  after(() => {
    const from = join(ARTIFACTS_DIR, 'dashboard-ui-zh-cn');
    if (!existsSync(from)) return;
    for (const file of readdirSync(from).filter((f) => f.endsWith('.png'))) cpSync(join(from, file), join(ARTIFACTS_DIR, 'dashboard-ui', 'zh-cn', file));
  });
});

