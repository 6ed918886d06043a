// The local backend's settings in a real extension host (code-server + Chromium): the backend starts with
// `finetune.localBackend.python` and `.allowModelDownloads` from the user's settings (the torch check names that
// Python, `/v1/system` says downloads are allowed); changing a setting with no job running restarts it with the new
// value; with a job running the restart waits, and comes once the job has ended.
//
// One file, two sides: under node:test it opens the host session, bundles this very file as the in-host suite and
// reports each in-host test as a subtest (as test/host.inHost.test.ts does for the registered suites); inside
// the extension host VS Code calls its `run()`. The host-only modules (`vscode`, the in-host helpers) are imported
// inside `run()`, so that the Node side never loads them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import * as esbuild from 'esbuild';
import type { Backends } from '../src/backends';
import type { FinetuneApi } from '../src/extension';
import type { InHostReport, InHostTest } from './host/inHostRunner';
import { waitForFile } from './host/runHostSuite';
import { ARTIFACTS_DIR, openHostSession } from './host/session';
import { RESULTS_ENV } from './host/suites';

const NAME = 'in-host-localBackend';
const EXTENSION_ID = 'finetune-studio.finetune-studio';
/** A Python that is not there: the backend's torch check names it, which shows that the setting reached it. */
const MISSING_PYTHON = '/nonexistent/finetune-python';

if (process.env[RESULTS_ENV] === undefined) {
  test('local backend settings in a real extension host', { timeout: 300_000 }, async (t) => {
    const resultsFile = join(ARTIFACTS_DIR, NAME, 'results.json');
    const session = await openHostSession(NAME, {
      env: { [RESULTS_ENV]: resultsFile },
      settings: { 'finetune.localBackend.python': MISSING_PYTHON, 'finetune.localBackend.allowModelDownloads': true },
    });
    try {
      const bundle = join(session.dir, 'suite', 'localBackend.js');
      // node_modules stay outside the bundle (resolved from the repository), `vscode` is the host's own.
      await esbuild.build({ entryPoints: [__filename], outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'cjs', packages: 'external', external: ['vscode'], sourcemap: 'inline', logLevel: 'warning' });
      const exited = new Promise<string>((resolve) => session.server.process.once('exit', (code, signal) => resolve(`code-server exited (${signal ?? `code ${code}`}) before the suite reported`)));
      const reported = waitForFile(resultsFile, 240_000, { exited });
      reported.catch(() => undefined);
      try {
        await session.page.goto(session.workbenchUrl(bundle));
        await reported;
      } catch (error) {
        const screenshot = join(session.dir, 'no-report.png');
        await session.page.screenshot({ path: screenshot }).catch(() => undefined);
        throw new Error(`the suite did not report: ${(error as Error).message}\nscreenshot: ${relative(process.cwd(), screenshot)}\n${session.diagnose()}`);
      }
      const report = JSON.parse(readFileSync(resultsFile, 'utf8')) as InHostReport;
      assert.ok(report.results.length > 0, `the suite ran no test\n${session.diagnose()}`);
      for (const result of report.results) {
        await t.test(result.name, () => {
          if (result.status === 'failed') throw new Error(`in-host test failed: ${result.name}\n${result.detail ?? ''}\n\n${session.diagnose()}`);
        });
      }
    } finally {
      await session.close();
    }
  });
}

/** What VS Code calls inside the extension host. */
export async function run(): Promise<void> {
  const vscode = await import('vscode');
  const { runInHostTests, waitForEvent } = await import('./host/inHostRunner.js');
  const { arithmeticDataset } = await import('./host/tinyDatasets.js');
  const { startLocalBackend, startTinyRun, waitForRun } = await import('./host/tinyRuns.js');

  const api = (await vscode.extensions.getExtension<FinetuneApi>(EXTENSION_ID)?.activate()) as FinetuneApi;
  const training = api.training;
  // The registry behind the API's interface: what it started the local backend with, and the settings' outcome.
  const backends = training.backends as unknown as Backends;
  let name = '';

  const torchEngine = async (): Promise<{ reason?: string; downloads_allowed?: boolean }> => {
    const system = await (await training.backends.client(name)).system();
    const torch = system.engines.find((e) => e.id === 'torch');
    assert.ok(torch, 'the torch engine is listed');
    return torch;
  };
  /** Resolves once the local backend runs again, as another process than `pid`. */
  const restartedFrom = (pid: number | undefined, what: string): Promise<number> =>
    waitForEvent(
      backends.onDidChange,
      () => (backends.local.running && backends.local.pid !== undefined && backends.local.pid !== pid ? backends.local.pid : undefined),
      what,
      60_000,
      () => JSON.stringify({ running: backends.local.running, pid: backends.local.pid, launch: backends.local.launch }),
    );
  const setting = async (key: string, value: unknown): Promise<void> => {
    await vscode.workspace.getConfiguration('finetune.localBackend').update(key, value, vscode.ConfigurationTarget.Global);
  };

  const tests: InHostTest[] = [
    {
      name: 'the local backend starts with the Python and the download permission of the settings',
      timeoutMs: 90_000,
      async run() {
        name = await startLocalBackend(training);
        assert.deepEqual(backends.local.launch, { python: MISSING_PYTHON, allowDownloads: true });
        const torch = await torchEngine();
        assert.equal(torch.downloads_allowed, true);
        assert.ok((torch.reason ?? '').includes(`cannot run ${MISSING_PYTHON}`), torch.reason);
      },
    },
    {
      name: 'a changed setting with no job running restarts it with the new value, and the sidebar reconnects',
      timeoutMs: 90_000,
      async run() {
        const before = backends.local.pid;
        const restarted = restartedFrom(before, 'the restart after allowModelDownloads changed');
        await setting('allowModelDownloads', false);
        await restarted;
        assert.deepEqual(backends.local.launch, { python: MISSING_PYTHON, allowDownloads: false });
        assert.equal((await torchEngine()).downloads_allowed, false);
        await waitForEvent(training.tree.onDidChangeTreeData, () => (training.model.backend(name)?.connection.kind === 'connected' ? true : undefined), 'the sidebar to reconnect', 30_000);
      },
    },
    {
      name: 'with a job running the restart waits for it, and comes once the job has ended',
      timeoutMs: 150_000,
      async run() {
        const client = await training.backends.client(name);
        // Long enough to be running when the setting changes: it is cancelled below.
        const { job } = await startTinyRun(client, { dataset: { name: 'settings.jsonl', text: arithmeticDataset(48) }, suffix: 'settings', hyperparameters: { n_epochs: 100, batch_size: 1 } });
        await waitForRun(training, name, job.id, 'the run to be running', (r) => r.job.status === 'running', 60_000);
        const before = backends.local.pid;
        await setting('python', '');
        assert.equal(await backends.applyLocalSettings(), 'pending');
        assert.equal(backends.local.pid, before, 'not restarted under a running job');
        assert.equal(backends.local.launch?.python, MISSING_PYTHON);
        const restarted = restartedFrom(before, 'the restart once the run was cancelled');
        await client.cancelJob(job.id);
        await restarted;
        assert.deepEqual(backends.local.launch, { python: undefined, allowDownloads: false });
        assert.ok(!((await torchEngine()).reason ?? '').includes(MISSING_PYTHON));
        assert.equal((await (await training.backends.client(name)).getJob(job.id)).status, 'cancelled');
      },
    },
  ];
  await runInHostTests('localBackend', tests);
}
