// `npm start` as a user runs it: the start script prints a URL; that page shows the sample dataset with live
// diagnostics from the extension; Ctrl+C (SIGINT) stops code-server and everything it started.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../scripts/host/codeServer';
import { freshArtifactDir, launchChromium, type LaunchedChromium } from './host/session';

const TIMEOUT_MS = 60_000;

/** Resolves with the first line of the child's stdout that matches `pattern`; rejects on exit or timeout. */
function waitForLine(child: ChildProcess, pattern: RegExp, output: { text: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const match = buffered.split('\n').find((line) => pattern.test(line));
      if (match !== undefined) done(() => resolve(match.trim()));
    };
    const onExit = (code: number | null) => done(() => reject(new Error(`the start script exited (${code}) before printing a URL:\n${output.text}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`no URL within ${TIMEOUT_MS / 1000} s:\n${output.text}`))), TIMEOUT_MS);
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    function done(settle: () => void) {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      settle();
    }
  });
}

describe('npm start', { timeout: 180_000 }, () => {
  const dir = freshArtifactDir('start');
  const output = { text: '' };
  let child: ChildProcess;
  let chromium: LaunchedChromium | undefined;
  let url: string;
  let backendUrl: string | undefined;

  before(async () => {
    // What `npm start` runs after building and installing, with the host's state in the artefacts folder.
    child = spawn(process.execPath, ['--import', 'tsx', join('scripts', 'host', 'start.ts'), '--state', join(dir, 'host')], {
      cwd: ROOT,
      env: { ...process.env, EXTENSIONS_GALLERY: '{}' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output.text += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (output.text += chunk.toString('utf8')));
    url = await waitForLine(child, /^\s+http:\/\/127\.0\.0\.1:\d+\/\?folder=/, output);
  });

  after(async () => {
    await chromium?.close();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('prints a loopback URL that opens the sample dataset with live diagnostics', async () => {
    // The embedded training backend runs beside the host, on loopback, and answers.
    const backend = /training backend:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(output.text);
    assert.ok(backend, `the banner should give the training backend's loopback URL:\n${output.text}`);
    backendUrl = backend[1];
    const health = await fetch(`${backendUrl}/healthz`);
    assert.equal(health.status, 200);
    chromium = await launchChromium();
    const page = await chromium.browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(TIMEOUT_MS);
    const screenshot = join(dir, 'npm-start.png');
    try {
      await page.goto(url);
      // The URL opens dataset.jsonl itself: squiggles and the extension's status-bar item, without a click.
      await page.locator('.tabs-container .tab', { hasText: 'dataset.jsonl' }).waitFor();
      await page.locator('.monaco-editor .squiggly-error').first().waitFor();
      await page.locator('[id="finetune-studio.finetune-studio.finetune.datasetStatus"]', { hasText: /\d+ errors/ }).waitFor();
      // The walkthrough is hidden: the dataset is the only tab.
      assert.equal(await page.locator('.editor-group-container .tab').count(), 1);
    } catch (error) {
      await page.screenshot({ path: screenshot }).catch(() => undefined);
      throw new Error(`${(error as Error).message}\nscreenshot: ${relative(ROOT, screenshot)}\nstart script output:\n${output.text}`, { cause: error });
    }
    await page.screenshot({ path: screenshot });
  });

  it('stops code-server and its children on Ctrl+C', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0, output.text);
    // Nothing listens on the port any more: code-server is gone, not orphaned.
    await assert.rejects(fetch(new URL(url).origin), 'code-server still answers after Ctrl+C');
    assert.ok(backendUrl);
    await assert.rejects(fetch(`${backendUrl}/healthz`), 'the training backend still answers after Ctrl+C');
  });
});
