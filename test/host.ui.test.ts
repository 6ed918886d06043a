// UI tests: what a user sees and does in VS Code (code-server) with the extension loaded, driven through
// Debian's Chromium with playwright-core. Each step is a subtest that waits on selectors (never sleeps) and
// leaves a screenshot in test-artifacts/ui/; a failing step adds a FAILED screenshot and the logs to its error.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { FrameLocator, Locator, Page } from 'playwright-core';
import { ROOT } from '../scripts/host/codeServer';
import { openHostSession, type HostSession } from './host/session';
import { uiSteps } from './host/uiSteps';

/** Generous for 2 cores shared with the rest of `npm test`; a healthy run needs a fraction of it. */
const STEP_TIMEOUT_MS = 60_000;
const SYSTEM_LINE = 5;

interface CliSummary {
  examples: number;
  errors: number;
  warnings: number;
  diagnostics: { line: number; column: number; code: string }[];
}

/** What the command-line validator says about a file: the editor must agree with it. */
function validate(file: string): CliSummary {
  const result = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'validate', file, '--format', 'json'], { encoding: 'utf8' });
  assert.ok(result.stdout.length > 0, `dist/cli.js printed nothing: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { files: CliSummary[] }).files[0];
}

/** Resolves when `file`'s content satisfies `done`; rejects after `timeoutMs` with the last content. */
function waitForFileContent(file: string, done: (text: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const text = readFileSync(file, 'utf8');
      if (!done(text)) return false;
      finish();
      resolve(text);
      return true;
    };
    const watcher = watch(file, () => void check());
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${file} did not change as expected within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    function finish() {
      clearTimeout(timer);
      watcher.close();
    }
    check();
  });
}

/** The statistics webview's page: VS Code nests the extension's HTML in an inner frame. */
function statisticsFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview').first().frameLocator('iframe#active-frame');
}

function countCell(frame: FrameLocator, label: string): Locator {
  return frame.locator(`table.counts tr:has(th:text-is("${label}")) td.num`);
}

describe('UI in code-server (Chromium)', { timeout: 300_000 }, () => {
  let session: HostSession;
  let page: Page;
  let dataset: string;
  let expected: CliSummary;

  before(async () => {
    session = await openHostSession('ui');
    page = session.page;
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    dataset = join(session.workspace, 'dataset.jsonl');
    expected = validate(dataset);
  });

  after(async () => {
    await session?.close();
  });

  const step = uiSteps(() => session);

  step('the workbench opens on the sample workspace', async () => {
    await page.goto(session.workbenchUrl());
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'dataset.jsonl' }).waitFor();
    // The walkthrough is off (startupEditor none): nothing covers the editor area.
    assert.equal(await page.locator('.editor-group-container .tab').count(), 0, 'a tab opened by itself');
  });

  step('opening the dataset shows squiggles, the Problems count and the status-bar item', async () => {
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'dataset.jsonl' }).click();
    await page.locator('.monaco-editor .squiggly-error').first().waitFor();
    await page.locator('.monaco-editor .squiggly-warning').first().waitFor();
    const problems = page.locator(`#status\\.problems[aria-label="Errors: ${expected.errors}, Warnings: ${expected.warnings}"]`);
    await problems.waitFor();
    const item = page.locator('[id="finetune-studio.finetune-studio.finetune.datasetStatus"]');
    await item.filter({ hasText: `${expected.errors} errors` }).waitFor();
    assert.match((await item.getAttribute('aria-label')) ?? '', new RegExp(`${expected.warnings} warnings, ${expected.examples} examples`));
    // Token counting runs in the background; the item says so, then shows the total.
    await item.filter({ hasText: /\d tokens/ }).waitFor();
  });

  step('hovering over an example shows its turns and tokens', async () => {
    // Line 4, a conversation of two turns; a line further down keeps the hover inside the editor.
    await page.locator('.monaco-editor .view-line span span', { hasText: 'How much is a tune-up?' }).first().hover();
    await page.locator('.monaco-hover', { hasText: /\d+ tokens/ }).filter({ hasText: '2 turns' }).waitFor();
  });

  step('the Problems panel lists the findings', async () => {
    await page.locator('#status\\.problems').click();
    const panel = page.locator('.markers-panel');
    await panel.waitFor();
    for (const code of ['system-not-first', 'json-syntax', 'line-blank']) {
      await panel.locator('.monaco-list-row', { hasText: code }).first().waitFor();
    }
    // The Problems tab's badge counts every finding of the workspace.
    const badge = page.locator('.composite-bar .action-item:has([aria-label^="Problems"]) .badge-content, .composite-bar .action-item[aria-label^="Problems"] .badge-content');
    await badge.filter({ hasText: String(expected.errors + expected.warnings) }).first().waitFor();
  });

  step('"Finetune: Show Dataset Statistics" from the palette shows the numbers', async () => {
    // Focus the editor so that the command knows the dataset in front of the user.
    await page.locator('.tabs-container .tab', { hasText: 'dataset.jsonl' }).first().click();
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor();
    await input.fill('>Finetune: Show Dataset Statistics');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Finetune: Show Dataset Statistics' }).first().click();
    const frame = statisticsFrame(page);
    await frame.locator('h1', { hasText: 'dataset.jsonl' }).waitFor();
    assert.equal((await countCell(frame, 'Examples').innerText()).trim(), String(expected.examples));
    assert.equal((await countCell(frame, 'Errors').innerText()).trim(), String(expected.errors));
    assert.equal((await countCell(frame, 'Warnings').innerText()).trim(), String(expected.warnings));
    await frame.locator('table.findings code', { hasText: 'system-not-first' }).waitFor();
  });

  step('the quick fix "Move the system message to the front" changes the file', async (snap) => {
    const finding = expected.diagnostics.find((d) => d.code === 'system-not-first' && d.line === SYSTEM_LINE);
    assert.ok(finding, `the CLI reports no system-not-first on line ${SYSTEM_LINE}`);
    await page.locator('.tabs-container .tab', { hasText: 'dataset.jsonl' }).first().click();
    // Go to Line/Column puts the cursor inside the finding, where VS Code asks for its quick fixes.
    await page.keyboard.press('Control+G');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor();
    await input.fill(`:${finding.line}:${finding.column + 1}`);
    await page.keyboard.press('Enter');
    await page.locator(`#status\\.editor\\.selection`, { hasText: `Ln ${finding.line}, Col ${finding.column + 1}` }).waitFor();
    await page.keyboard.press('Control+.');
    // The preferred fix is the one focused; the widget takes keys (a pointer block covers it from the mouse).
    await page.locator('.action-widget .monaco-list-row.focused', { hasText: 'Move the system message to the front' }).waitFor();
    await snap('quick fix menu');
    await page.keyboard.press('Enter');
    // The editor changed: one error fewer, in Problems and in the extension's status-bar item.
    await page.locator(`#status\\.problems[aria-label="Errors: ${expected.errors - 1}, Warnings: ${expected.warnings}"]`).waitFor();
    await page.locator('[id="finetune-studio.finetune-studio.finetune.datasetStatus"]', { hasText: `${expected.errors - 1} errors` }).waitFor();
    await page.keyboard.press('Control+S');
    const roles = (text: string) => {
      try {
        return (JSON.parse(text.split('\n')[SYSTEM_LINE - 1]) as { messages: { role: string }[] }).messages.map((m) => m.role).join(',');
      } catch {
        return undefined;
      }
    };
    await waitForFileContent(dataset, (text) => roles(text) === 'system,user,assistant', STEP_TIMEOUT_MS);
    // The file on disk now passes where it failed: the command-line validator agrees with the editor.
    const after = validate(dataset);
    assert.equal(after.errors, expected.errors - 1);
    assert.ok(!after.diagnostics.some((d) => d.code === 'system-not-first'));
  });
});
