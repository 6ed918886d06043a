// The local backend started with the user's settings (`finetune.localBackend.python` and `.allowModelDownloads`):
// the real dist/backend.js gets them as `--python` / `--allow-downloads` and says so in `/v1/system` — the torch
// engine's check ran with that Python and downloads are allowed — a start after the settings changed picks the new
// ones up, and what the running process was started with is known (the extension restarts it when they differ).
// How a setting is read (`~`, a workspace-relative path, a command on the PATH) is checked here too.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EngineInfo } from '../common/api';
import { BackendClient } from '../src/backendClient';
import { launchArgs, LocalBackend, resolvePythonSetting, sameLaunch, type LocalBackendLaunch } from '../src/localBackend';

const SCRIPT = join(__dirname, '..', 'dist', 'backend.js');
const quiet = { info: () => undefined, error: () => undefined };

describe('local backend settings', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'finetune-local-settings-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function torchEngine(local: LocalBackend): Promise<EngineInfo> {
    const endpoint = await local.start();
    const system = await new BackendClient({ url: endpoint.url, apiKey: endpoint.key }).system();
    const torch = system.engines.find((e) => e.id === 'torch');
    assert.ok(torch, 'the torch engine is listed');
    return torch;
  }

  it('starts the backend with the settings, and with the new ones after a restart', async () => {
    // A Python that is not there: the backend's torch check names it, which shows the setting reached it.
    const python = join(dir, 'venv', 'bin', 'python');
    let settings: LocalBackendLaunch = { python, allowDownloads: true };
    const local = new LocalBackend({ script: SCRIPT, dataDir: join(dir, 'data'), log: quiet, launch: () => settings });
    try {
      const first = await torchEngine(local);
      assert.equal(first.downloads_allowed, true);
      assert.equal(first.available, false);
      assert.ok((first.reason ?? '').includes(`cannot run ${python}`), first.reason);
      assert.deepEqual(local.launch, { python, allowDownloads: true });

      settings = { python: undefined, allowDownloads: false };
      assert.equal(sameLaunch(local.launch ?? {}, settings), false, 'the running backend differs from the settings');
      await local.stop();
      assert.equal(local.launch, undefined);
      const second = await torchEngine(local);
      assert.equal(second.downloads_allowed, false);
      assert.ok(!(second.reason ?? '').includes(python), second.reason);
      assert.deepEqual(local.launch, settings);
    } finally {
      await local.stop();
    }
  });

  it('turns settings into the backend\'s options', () => {
    assert.deepEqual(launchArgs({}), []);
    assert.deepEqual(launchArgs({ python: '/v/bin/python', allowDownloads: true }), ['--python', '/v/bin/python', '--allow-downloads']);
    assert.deepEqual(launchArgs({ python: '', allowDownloads: false }), []);
    assert.ok(sameLaunch({ python: undefined, allowDownloads: false }, {}));
    assert.ok(!sameLaunch({ python: 'python3.11' }, { python: 'python3.12' }));
  });

  it('reads the Python setting: empty is the default, ~ is home, a relative path is the workspace\'s, a bare name is a command', () => {
    assert.equal(resolvePythonSetting('', '/ws', '/home/u'), undefined);
    assert.equal(resolvePythonSetting('   ', '/ws', '/home/u'), undefined);
    assert.equal(resolvePythonSetting(42, '/ws', '/home/u'), undefined);
    assert.equal(resolvePythonSetting('~/venvs/torch/bin/python', '/ws', '/home/u'), '/home/u/venvs/torch/bin/python');
    assert.equal(resolvePythonSetting('.venv/bin/python', '/ws', '/home/u'), '/ws/.venv/bin/python');
    assert.equal(resolvePythonSetting('.venv/bin/python', undefined, '/home/u'), '.venv/bin/python');
    assert.equal(resolvePythonSetting(' /opt/py/bin/python3 ', '/ws', '/home/u'), '/opt/py/bin/python3');
    assert.equal(resolvePythonSetting('python3.11', '/ws', '/home/u'), 'python3.11');
  });
});
