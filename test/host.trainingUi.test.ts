// Issue 6's UI test: the training workflow as a user clicks through it in the real workbench (code-server),
// driven through Debian's Chromium with playwright-core. Nothing is configured: the welcome view's offer starts the
// embedded local backend; the "New Training Run" form launches a tiny run that goes to succeeded in the tree with
// its checkpoints, the status bar and the notification; a setting of the local backend changed while a second run
// trains restarts the backend through "Restart Now" and the run goes on; that run is cancelled from the tree's
// context menu; a dataset with errors is blocked; the form and the tree are photographed in the light and the dark
// theme; the form comes back after a window reload. Each step is a subtest that waits on selectors (never sleeps) and leaves
// a screenshot in test-artifacts/training-ui/; a failing step adds a FAILED screenshot and the logs to its error.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { FrameLocator, Locator, Page } from 'playwright-core';
import { openHostSession, type HostSession } from './host/session';
import { uiSteps } from './host/uiSteps';
import { palette, runsView, treeRow } from './host/workbench';

/** Generous for 2 cores shared with the rest of `npm test`; a healthy run needs a fraction of it. */
const STEP_TIMEOUT_MS = 60_000;
/** The tiny run: 24 conversations, 2 epochs of batch 4 on the 1M-parameter model, seconds on a CPU. */
const TRAIN_TIMEOUT_MS = 120_000;
const TINY_MODEL = 'tiny-qwen2-1m';
const GOOD_FILE = 'train-good.jsonl';
const BAD_FILE = 'train-bad.jsonl';
const LOCAL_BACKEND = 'Local (this machine)';
const RUN_STATUS_ITEM = '[id="finetune-studio.finetune-studio.finetune.runStatus"]';

function goodDataset(): string {
  const lines: string[] = [];
  for (let i = 0; i < 24; i++) {
    lines.push(JSON.stringify({ messages: [{ role: 'user', content: `What is ${i} times two?` }, { role: 'assistant', content: `${i} times two is ${i * 2}.` }] }));
  }
  return `${lines.join('\n')}\n`;
}

/** Line 2 has a role that does not exist, line 4 is cut off in the middle of its JSON. */
function badDataset(): string {
  const good = (i: number) => JSON.stringify({ messages: [{ role: 'user', content: `Hello ${i}` }, { role: 'assistant', content: `Hi ${i}!` }] });
  const badRole = JSON.stringify({ messages: [{ role: 'robot', content: 'Beep?' }, { role: 'assistant', content: 'Boop.' }] });
  return [good(1), badRole, good(3), '{"messages": [{"role": "user", "content": "unfinished"', good(5)].join('\n') + '\n';
}

/** What the recorders use of a page's globals (see recordLaunchState). */
interface BrowserGlobals {
  MutationObserver: new (callback: () => void) => { observe(target: unknown, options: Record<string, boolean>): void };
  document: { getElementById(id: string): BrowserElement | null };
  trainingUiStatus?: string[];
}

interface BrowserElement {
  readonly innerText: string;
  querySelector(selector: string): BrowserElement | null;
}

/** The extension's local backend processes of a host (their `--data` folder is in its user data), from /proc. */
function localBackendProcesses(userDataDir: string): { pid: number; args: string[] }[] {
  const found: { pid: number; args: string[] }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const data = args.indexOf('--data');
    if (args.includes('--print-json') && data >= 0 && args[data + 1]?.startsWith(userDataDir)) found.push({ pid: Number(entry), args });
  }
  return found;
}

/** The form's page: VS Code nests the extension's HTML in an inner frame of its webview iframe. */
function formFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').first().frameLocator('iframe#active-frame');
}

describe('training workflow UI in code-server (Chromium)', { timeout: 300_000 }, () => {
  let session: HostSession;
  let page: Page;
  /** What the page's frames printed with our marker (the launch state observer in the form writes there). */
  const marked: string[] = [];

  before(async () => {
    // Nothing configured: no backends in the settings and no `npm start` backend in the environment.
    session = await openHostSession('training-ui', {
      env: { FINETUNE_BACKEND_URL: undefined, FINETUNE_BACKEND_KEY: undefined },
      settings: { 'workbench.colorTheme': 'Default Light Modern', 'finetune.backends': [] },
    });
    page = session.page;
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('console', (message) => {
      const text = message.text();
      if (text.startsWith('[training-ui] ')) marked.push(text.slice('[training-ui] '.length));
    });
    writeFileSync(join(session.workspace, GOOD_FILE), goodDataset());
    writeFileSync(join(session.workspace, BAD_FILE), badDataset());
  });

  after(async () => {
    await session?.close();
  });

  const step = uiSteps(() => session, STEP_TIMEOUT_MS * 2);

  /** Opens a workspace file through Quick Open (the side bar keeps showing the runs view). */
  async function quickOpen(name: string): Promise<void> {
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor();
    await input.fill(name);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().click();
    await page.locator('.tabs-container .tab.active', { hasText: name }).waitFor();
  }

  /** The dataset's editor title button "New Training Run": the form opens on that dataset. */
  async function openForm(name: string): Promise<FrameLocator> {
    await quickOpen(name);
    await page.locator('.editor-actions .action-label[aria-label^="New Training Run"]').first().click();
    await page.locator('.tabs-container .tab.active', { hasText: 'New Training Run' }).waitFor();
    const frame = formFrame(page);
    await frame.locator('#datasetLabel', { hasText: name }).waitFor();
    return frame;
  }

  /** Types into one of the toolkit's text fields (its input lives in the element's shadow root). */
  async function type(frame: FrameLocator, key: string, text: string): Promise<void> {
    const input = frame.locator(`#f-${key} input`);
    await input.fill(text);
    assert.equal(await input.inputValue(), text);
  }

  /** Picks an option of one of the toolkit's drop-downs, as a user does: open it, click the option. */
  async function choose(frame: FrameLocator, key: string, value: string): Promise<void> {
    const select = frame.locator(`#f-${key}`);
    await select.click();
    await frame.locator(`#f-${key} vscode-option[value="${value}"]`).click();
    await frame.locator(`#f-${key}[current-value="${value}"]`).waitFor();
  }

  /** Fills a form for a run on the tiny model and waits until the host has taken the values (Start enabled). */
  async function fillForm(frame: FrameLocator, run: { name: string; epochs: string; batch: string; checkpoints?: string }): Promise<void> {
    await frame.locator('#datasetState', { hasText: /24 examples/ }).waitFor();
    await frame.locator(`#f-model vscode-option[value="${TINY_MODEL}"]`).waitFor({ state: 'attached' });
    await choose(frame, 'model', TINY_MODEL);
    await type(frame, 'name', run.name);
    await type(frame, 'n_epochs', run.epochs);
    await type(frame, 'batch_size', run.batch);
    if (run.checkpoints !== undefined) {
      if ((await frame.locator('#more[open]').count()) === 0) await frame.locator('#more > summary').click();
      await type(frame, 'checkpoints', run.checkpoints);
    }
    // The summary is the host's answer to the values: 24 examples less the held-out ones, in batches.
    await frame.locator('#summary tr', { hasText: 'Total steps' }).waitFor();
    await frame.locator('#start:not([disabled])').waitFor();
    for (const key of ['name', 'model', 'n_epochs', 'batch_size']) assert.equal((await frame.locator(`#e-${key}`).innerText()).trim(), '', `the form marks ${key}`);
    // The fields left alone hold the model's defaults (the ones shown beside them), not the general ones.
    for (const key of ['learning_rate', 'max_seq_length']) {
      const shown = /([0-9.e+-]+)\)\s*$/.exec(await frame.locator(`#d-${key}`).innerText());
      assert.ok(shown, `#d-${key} shows no default`);
      await frame.locator(`#f-${key}[current-value="${shown[1]}"]`).waitFor();
    }
  }

  /** Two pictures of a form: its top (run, model, dataset) and its end (settings summary, Start Training). */
  async function snapForm(frame: FrameLocator, snap: (label: string, part?: Locator) => Promise<void>, label: string): Promise<void> {
    const editor = page.locator('.editor-group-container.active');
    await frame.locator('h1').scrollIntoViewIfNeeded();
    await snap(label, editor);
    await frame.locator('.actions').scrollIntoViewIfNeeded();
    await snap(`${label}-end`, editor);
  }

  // The two recorders below run in the browser. The test project has no DOM types, so what they use of the page's
  // globals is typed here, as little as they need.

  /** Records every text of the form's launch state, through the page's console (the form closes at the end). */
  async function recordLaunchState(frame: FrameLocator): Promise<void> {
    await frame.locator('#launchState').evaluate((node) => {
      const { MutationObserver: Observer } = globalThis as unknown as BrowserGlobals;
      const seen = new Set<string>();
      new Observer(() => {
        const text = node.textContent ?? '';
        if (seen.has(text)) return;
        seen.add(text);
        console.log(`[training-ui] launchState: ${text}`);
      }).observe(node, { childList: true, characterData: true, subtree: true });
    });
  }

  /** Records every text of the run status-bar item in the page (read back with `statusTexts`). */
  async function recordStatusBar(): Promise<void> {
    await page.evaluate((selector) => {
      const browser = globalThis as unknown as BrowserGlobals;
      const texts: string[] = [];
      browser.trainingUiStatus = texts;
      const bar = browser.document.getElementById('workbench.parts.statusbar');
      if (bar === null) throw new Error('no status bar');
      new browser.MutationObserver(() => {
        const text = bar.querySelector(selector)?.innerText.trim();
        if (text !== undefined && text !== '' && texts[texts.length - 1] !== text) texts.push(text);
      }).observe(bar, { childList: true, characterData: true, subtree: true, attributes: true });
    }, RUN_STATUS_ITEM);
  }

  function statusTexts(): Promise<string[]> {
    return page.evaluate(() => (globalThis as unknown as BrowserGlobals).trainingUiStatus ?? []);
  }

  step('the workbench opens with nothing configured', async () => {
    await page.goto(session.workbenchUrl());
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: GOOD_FILE }).waitFor();
    await page.locator('.monaco-workbench.vs').waitFor();
  });

  step('the Finetune view offers the local backend; accepting it shows it connected in the tree', async (snap) => {
    await page.locator('.activitybar .action-item[aria-label^="Finetune"], .activitybar .action-label[aria-label^="Finetune"]').first().click();
    const start = runsView(page).locator('.welcome-view-content .monaco-button', { hasText: 'Start Local Backend' });
    await start.waitFor();
    await runsView(page).locator('.welcome-view-content .monaco-button', { hasText: 'Add Remote Backend' }).waitFor();
    await snap('welcome view', runsView(page));
    await start.click();
    const backend = treeRow(page, LOCAL_BACKEND);
    await backend.waitFor();
    // Connected and filled: the backend's one child says it has no runs (a failure would say why instead).
    await treeRow(page, 'No training runs yet').waitFor();
    assert.match(await backend.locator('.label-description').innerText(), /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await runsView(page).locator('.welcome-view-content').count(), 0, 'the welcome view stays');
  });

  step('"New Training Run" on a good dataset: the form with its statistics, filled for the tiny model', async (snap) => {
    const frame = await openForm(GOOD_FILE);
    await fillForm(frame, { name: 'ui-run', epochs: '2', batch: '4', checkpoints: '2' });
    assert.match(await frame.locator('#datasetState').innerText(), /24 examples · [\d,]+ tokens · [\d,]+ trained tokens/);
    assert.equal(await frame.locator('#findings li').count(), 0, 'a good dataset has findings');
    assert.equal(await frame.locator('#f-backend').getAttribute('current-value'), LOCAL_BACKEND);
    await snapForm(frame, snap, 'form-light');
  });

  step('Start Training: upload, then the run goes running → succeeded with checkpoints, status bar and notification', async (snap) => {
    const frame = formFrame(page);
    await recordLaunchState(frame);
    await recordStatusBar();
    await frame.locator('#start').click();
    const run = treeRow(page, 'ui-run');
    await run.waitFor();
    // The form closes once the job is created (the tree reveals the run).
    await page.locator('.tabs-container .tab', { hasText: 'New Training Run' }).waitFor({ state: 'detached' });
    assert.ok(marked.some((m) => /^launchState: Uploading the dataset… \d+%$/.test(m)), `the upload progress never showed: ${marked.join(' | ')}`);
    assert.ok(marked.some((m) => m === 'launchState: Creating the job…'), `"Creating the job…" never showed: ${marked.join(' | ')}`);
    await run.locator('.label-description', { hasText: /succeeded$/ }).waitFor({ timeout: TRAIN_TIMEOUT_MS });
    assert.match(await run.locator('.label-description').innerText(), new RegExp(`^${TINY_MODEL} · succeeded$`));
    await run.locator('.codicon-pass').waitFor();
    const seen = await statusTexts();
    assert.ok(seen.some((text) => /ui-run \d+\/\d+ · loss \d+\.\d\d/.test(text)), `the status bar never showed step and loss: ${seen.join(' | ') || 'nothing'}`);
    // Nothing runs any more: the item goes.
    await page.locator(RUN_STATUS_ITEM).waitFor({ state: 'hidden' });
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Training run ui-run succeeded.' });
    await toast.waitFor();
    await toast.locator('.monaco-button', { hasText: 'Show Run' }).waitFor();
    // Expand the run by its twistie (clicking the row itself opens the run's dashboard): its checkpoints, newest
    // first, with their losses.
    if ((await run.getAttribute('aria-expanded')) !== 'true') await run.locator('.monaco-tl-twistie').click();
    const checkpoints = runsView(page).locator('.monaco-list-row', { has: page.locator('.label-name', { hasText: /^step \d+$/ }) });
    await checkpoints.first().waitFor();
    assert.ok((await checkpoints.count()) >= 1);
    assert.match(await checkpoints.first().locator('.label-description').innerText(), /^train \d+\.\d{3}/);
    await snap('tree-light', runsView(page));
  }, TRAIN_TIMEOUT_MS + STEP_TIMEOUT_MS);

  step('a second, longer run: a click on its row while it trains opens its dashboard', async () => {
    const frame = await openForm(GOOD_FILE);
    // 2,400 steps: minutes, so that it still trains through the restart below until it is cancelled.
    await fillForm(frame, { name: 'ui-cancel', epochs: '100', batch: '1' });
    await frame.locator('#start').click();
    const run = treeRow(page, 'ui-cancel');
    // The row's command is the run's own and has no arguments (src/runRowCommands.ts), so the row's refresh once a
    // second never invalidates it under the click.
    await run.locator('.label-description', { hasText: /step \d+\/\d+/ }).waitFor();
    await run.click();
    await page.locator('.tabs-container .tab.active', { hasText: 'ui-cancel' }).waitFor();
  });

  step('a local backend setting changed while the run trains: "Restart Now", then "Restart", and the run trains on', async (snap) => {
    const backend = treeRow(page, LOCAL_BACKEND);
    const url = await backend.locator('.label-description').innerText();
    const before = localBackendProcesses(session.server.userDataDir);
    assert.equal(before.length, 1, `local backend processes: ${before.map((p) => p.args.join(' ')).join(' | ')}`);
    assert.ok(!before[0].args.includes('--allow-downloads'));
    // The Settings editor, as a user flips the switch: a machine setting, under the remote's tab in code-server.
    await palette(page, 'Preferences: Open Settings (UI)');
    await page.locator('.settings-editor .search-container').click();
    await page.keyboard.type('finetune.localBackend.allowModelDownloads');
    await page.locator('.settings-editor .settings-tabs-widget .action-label', { hasText: /^Remote/ }).click();
    const toggle = page.locator('.settings-editor .setting-item-bool .setting-value-checkbox');
    await toggle.click();
    await page.locator('.settings-editor .setting-item-bool .setting-value-checkbox[aria-checked="true"]').waitFor();
    // A job runs on it: the backend is not restarted under it; the notice offers to.
    const notice = page.locator('.notifications-toasts .notification-toast', { hasText: 'The new local backend settings apply when its running job ends.' });
    await notice.waitFor();
    await snap('notice');
    await notice.locator('.monaco-button', { hasText: 'Restart Now' }).click();
    const dialog = page.locator('.monaco-dialog-box', { hasText: 'Restart the local backend now?' });
    await dialog.waitFor();
    await snap('dialog');
    await dialog.locator('.monaco-button', { hasText: /^Restart$/ }).click();
    // A new backend (another free port) with the new setting; the sidebar connects to it, and the run goes on there.
    const port = /:(\d+)$/.exec(url)?.[1] ?? '';
    await backend.locator('.label-description', { hasText: new RegExp(`^http://127\\.0\\.0\\.1:(?!${port}$)\\d+$`) }).waitFor();
    const after = localBackendProcesses(session.server.userDataDir);
    assert.equal(after.length, 1, `local backend processes: ${after.map((p) => p.args.join(' ')).join(' | ')}`);
    assert.notEqual(after[0].pid, before[0].pid);
    assert.ok(after[0].args.includes('--allow-downloads'), after[0].args.join(' '));
    const run = treeRow(page, 'ui-cancel');
    await run.locator('.label-description', { hasText: /step \d+\/\d+/ }).waitFor();
    await page.locator(RUN_STATUS_ITEM).waitFor();
    await palette(page, 'View: Close Editor');
  });

  step('the run is cancelled from the tree\'s context menu', async (snap) => {
    const run = treeRow(page, 'ui-cancel');
    // One right-click opens the menu: the tree refreshes a running run's row only when what it shows changes, its
    // progress at most once a second (src/runsRefresh.ts), so the row is rarely replaced under the click.
    const item = page.locator('.monaco-menu .action-item', { hasText: 'Cancel Run' });
    await run.click({ button: 'right' });
    await item.waitFor();
    await snap('context menu');
    await item.click();
    await run.locator('.label-description', { hasText: /cancelled$/ }).waitFor();
    await run.locator('.codicon-circle-slash').waitFor();
    await page.locator(RUN_STATUS_ITEM).waitFor({ state: 'hidden' });
  });

  step('a dataset with errors: the form lists them with line links and blocks Start Training', async (snap) => {
    const frame = await openForm(BAD_FILE);
    await frame.locator('#datasetState', { hasText: /errors must be fixed before training/ }).waitFor();
    const links = frame.locator('#findings li a.error');
    await links.first().waitFor();
    const texts = await links.allInnerTexts();
    assert.ok(texts.some((t) => t.startsWith('Line 2, column')), `no finding on line 2: ${texts.join(' | ')}`);
    assert.ok(texts.some((t) => t.startsWith('Line 4, column')), `no finding on line 4: ${texts.join(' | ')}`);
    await frame.locator('#start[disabled]').waitFor();
    // The launch line says why once the backend's models are in (a restarted backend answers its first listing later).
    await frame.locator('#launchState', { hasText: /error/ }).waitFor();
    await snap('form-errors-light', page.locator('.editor-group-container.active'));
    // A click on the button does nothing; a click on a link shows the line in the editor.
    await frame.locator('#start').click({ force: true });
    await frame.locator('#start[disabled]').waitFor();
    assert.equal(await treeRow(page, 'ui-run').count() + (await treeRow(page, 'ui-cancel').count()), 2);
    await links.filter({ hasText: /^Line 4, column/ }).first().click();
    await page.locator('#status\\.editor\\.selection', { hasText: /^Ln 4, Col \d+/ }).waitFor();
  });

  step('the dark theme: the form with errors, a filled form and the tree again', async (snap) => {
    // The two finish notifications would cover the form's end in the pictures.
    await palette(page, 'Notifications: Clear All Notifications');
    await page.locator('.notifications-toasts .notification-toast').first().waitFor({ state: 'detached' });
    await palette(page, 'Preferences: Color Theme');
    const input = page.locator('.quick-input-widget input.input');
    await input.fill('Dark Modern');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: /^Dark Modern/ }).first().click();
    await page.locator('.monaco-workbench.vs-dark').waitFor();
    // The form with errors is still open beside the dataset.
    await page.locator('.tabs-container .tab', { hasText: 'New Training Run' }).first().click();
    const errors = formFrame(page);
    await errors.locator('#findings li a.error').first().waitFor();
    // The webview follows the theme: its body carries VS Code's dark class.
    await errors.locator('body.vscode-dark').waitFor();
    await snap('form-errors-dark', page.locator('.editor-group-container.active'));
    await palette(page, 'View: Close All Editor Groups');
    await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached' });
    const frame = await openForm(GOOD_FILE);
    await frame.locator('body.vscode-dark').waitFor();
    await fillForm(frame, { name: 'typed-before-reload', epochs: '3', batch: '2' });
    await snapForm(frame, snap, 'form-dark');
    await snap('tree-dark', runsView(page));
  });

  step('"Developer: Reload Window" brings the form back with what was typed', async () => {
    const reloaded = page.waitForEvent('load');
    await palette(page, 'Developer: Reload Window');
    await reloaded;
    const frame = formFrame(page);
    await frame.locator('#datasetLabel', { hasText: GOOD_FILE }).waitFor();
    await frame.locator('#f-name input').waitFor();
    assert.equal(await frame.locator('#f-name input').inputValue(), 'typed-before-reload');
    assert.equal(await frame.locator('#f-n_epochs input').inputValue(), '3');
    assert.equal(await frame.locator('#f-batch_size input').inputValue(), '2');
    await frame.locator('#datasetState', { hasText: /24 examples/ }).waitFor();
  });
});
