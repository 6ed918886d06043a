// The local backend as the extension starts it: the real dist/backend.js on a free loopback port, its key read
// from the JSON line, stopped cleanly; a crash is reported once, and the next start brings it back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BackendClient } from '../src/backendClient';
import { LocalBackend, LocalBackendError } from '../src/localBackend';

const SCRIPT = join(__dirname, '..', 'dist', 'backend.js');
const quiet = { info: () => undefined, error: () => undefined };

describe('local backend', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'finetune-local-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts on loopback, answers with its key, and stops', async () => {
    const local = new LocalBackend({ script: SCRIPT, dataDir: join(dir, 'a'), log: quiet });
    try {
      const [first, second] = await Promise.all([local.start(), local.start()]);
      assert.deepEqual(first, second, 'concurrent starts share one process');
      assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const system = await new BackendClient({ url: first.url, apiKey: first.key }).system();
      assert.equal(system.object, 'system');
      await assert.rejects(new BackendClient({ url: first.url, apiKey: 'wrong' }).system(), (e: unknown) => (e as { reason?: string }).reason === 'unauthorized');
    } finally {
      await local.stop();
    }
    assert.equal(local.running, false);
  });

  it('reports a crash once and starts again on demand', async () => {
    const local = new LocalBackend({ script: SCRIPT, dataDir: join(dir, 'b'), log: quiet });
    try {
      const first = await local.start();
      const exited = new Promise<string>((resolve) => local.onUnexpectedExit(resolve));
      const port = new URL(first.url).port;
      // Killed behind the extension's back.
      const pid = local.pid;
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGKILL');
      assert.match(await withTimeout(exited, 10_000, 'the exit report'), /SIGKILL/);
      assert.equal(local.running, false);
      const second = await local.start();
      assert.notEqual(new URL(second.url).port, '', `restarted after ${port}`);
      assert.equal((await new BackendClient({ url: second.url, apiKey: second.key }).system()).object, 'system');
    } finally {
      await local.stop();
    }
  });

  it('says clearly when the backend script is missing', async () => {
    const local = new LocalBackend({ script: join(dir, 'nope.js'), dataDir: join(dir, 'c'), log: quiet });
    await assert.rejects(local.start(), (e: unknown) => LocalBackendError.is(e) && e.reason === 'missing' && /nope\.js/.test(e.message));
  });

  it('gives the log tail when the process dies before it listens', async () => {
    const bad = join(dir, 'bad.js');
    writeFileSync(bad, 'process.stderr.write("cannot open the data folder\\n"); process.exit(3);\n');
    const local = new LocalBackend({ script: bad, dataDir: join(dir, 'd'), log: quiet });
    await assert.rejects(local.start(), (e: unknown) => LocalBackendError.is(e) && e.reason === 'start-failed' && /code 3/.test(e.message) && /cannot open the data folder/.test(e.message));
  });
});

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}
