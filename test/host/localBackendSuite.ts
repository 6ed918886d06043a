// The local backend's settings in a real extension host (code-server + Chromium): the backend starts with
// `finetune.localBackend.python` and `.allowModelDownloads` from the user's settings (the torch check names that
// Python, `/v1/system` says downloads are allowed); changing a setting with no job running restarts it with the new
// value; with a job running the restart waits, and comes once the job has ended. The host opens with the settings
// of SUITE_SETTINGS.localBackend (test/host/suites.ts).
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { Backends } from '../../src/backends';
import type { FinetuneApi } from '../../src/extension';
import { runInHostTests, waitForEvent, type InHostTest } from './inHostRunner';
import { MISSING_PYTHON } from './suites';
import { arithmeticDataset } from './tinyDatasets';
import { startLocalBackend, startTinyRun, waitForRun } from './tinyRuns';

const EXTENSION_ID = 'finetune-studio.finetune-studio';

/** What VS Code calls inside the extension host. */
export async function run(): Promise<void> {
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
