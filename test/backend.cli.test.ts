// `finetune-studio backend` as users start it: the bundled command in a child process, what it prints, the key
// it stores (mode 0600) and reuses, the keys file, --print-json for a parent process, usage mistakes, and a
// clean stop on SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseApiKeys, parseBackendArgs } from '../backend/options';
import { bundleCli, bundleNodeEntry } from './bundles';

let dir = '';
let bundle = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'finetune-backend-cli-test-'));
  bundle = join(dir, 'cli.js');
  await bundleCli(bundle);
  await bundleNodeEntry(join('backend', 'main.ts'), join(dir, 'backend.js'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A running command, its output gathered as it comes. */
interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
}

function start(args: string[], script = bundle): Running {
  const child = spawn(process.execPath, [script, ...args], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return { child, stdout: () => stdout, stderr: () => stderr };
}

/** Resolves once stdout matches `pattern` (or rejects when the process exits first or time runs out). */
async function waitForOutput(run: Running, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (;;) {
    const match = pattern.exec(run.stdout());
    if (match) return match;
    if (run.child.exitCode !== null) throw new Error(`exited with ${run.child.exitCode} before printing ${pattern}: ${run.stderr()}`);
    await Promise.race([once(run.child.stdout, 'data', { signal }), once(run.child, 'exit', { signal })]);
  }
}

/** Stops it with SIGTERM and resolves to its exit code. */
async function stop(run: Running): Promise<number | null> {
  if (run.child.exitCode !== null) return run.child.exitCode;
  const exited = once(run.child, 'exit', { signal: AbortSignal.timeout(20_000) });
  run.child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  return code;
}

/** Runs to completion. */
async function finish(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = start(args);
  const [code] = (await once(run.child, 'exit', { signal: AbortSignal.timeout(20_000) })) as [number | null];
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe('backend command', () => {
  it('generates a key, stores it with mode 0600, prints the URL and the key, says it binds to loopback, stops on SIGTERM, reuses the key', async () => {
    const data = join(dir, 'data-generated');
    const run = start(['backend', '--port', '0', '--data', data]);
    let key = '';
    try {
      const [, url] = await waitForOutput(run, /listening on (http:\/\/127\.0\.0\.1:\d+)\n/);
      [, key] = await waitForOutput(run, /API key: (fs-[A-Za-z0-9_-]{43})\n/);
      assert.equal(statSync(join(data, 'api-key')).mode & 0o777, 0o600);
      assert.equal(readFileSync(join(data, 'api-key'), 'utf8').trim(), key);
      assert.match(run.stderr(), /binding to 127\.0\.0\.1 only/);
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
      assert.equal((await fetch(`${url}/v1/models`)).status, 401);
      assert.equal((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status, 200);
      // One log line per request, without the key.
      assert.match(run.stderr(), /GET \/healthz 200 [\d.]+ms -/);
      assert.ok(!run.stderr().includes(key));
    } finally {
      assert.equal(await stop(run), 0);
    }
    const again = start(['backend', '--port', '0', '--data', data]);
    try {
      const [, reused] = await waitForOutput(again, /API key: (fs-[A-Za-z0-9_-]{43})\n/);
      assert.equal(reused, key);
    } finally {
      await stop(again);
    }
  });

  it('--print-json prints one JSON line with the URL and the key, and nothing else on stdout', async () => {
    const data = join(dir, 'data-json');
    const run = start(['backend', '--port=0', '--data', data, '--print-json']);
    try {
      const [line] = await waitForOutput(run, /^.*\n/);
      const parsed = JSON.parse(line) as { url: string; key: string };
      assert.match(parsed.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(parsed.key, readFileSync(join(data, 'api-key'), 'utf8').trim());
      const models = await fetch(`${parsed.url}/v1/models`, { headers: { authorization: `Bearer ${parsed.key}` } });
      assert.equal(models.status, 200);
      assert.equal(run.stdout(), line);
    } finally {
      await stop(run);
    }
  });

  it('dist/backend.js takes the same options: --print-json from the process entry', async () => {
    const data = join(dir, 'data-entry');
    const run = start(['--port', '0', '--data', data, '--print-json'], join(dir, 'backend.js'));
    try {
      const [line] = await waitForOutput(run, /^.*\n/);
      const parsed = JSON.parse(line) as { url: string; key: string };
      assert.equal(parsed.key, readFileSync(join(data, 'api-key'), 'utf8').trim());
      assert.equal((await fetch(`${parsed.url}/v1/system`, { headers: { authorization: `Bearer ${parsed.key}` } })).status, 200);
    } finally {
      assert.equal(await stop(run), 0);
    }
  });

  it('dist/backend.js with --allow-downloads and --python: /v1/system says downloads are allowed, and which Python it asked', async () => {
    const system = async (args: string[], data: string): Promise<{ id: string; available: boolean; reason?: string; downloads_allowed?: boolean }> => {
      // A Python that is not there: the torch engine's check says so, naming it (no torch needed for this test).
      const run = start(['--port', '0', '--data', data, '--print-json', ...args], join(dir, 'backend.js'));
      try {
        const [line] = await waitForOutput(run, /^.*\n/);
        const parsed = JSON.parse(line) as { url: string; key: string };
        const answer = (await (await fetch(`${parsed.url}/v1/system`, { headers: { authorization: `Bearer ${parsed.key}` } })).json()) as { engines: { id: string; available: boolean; reason?: string; downloads_allowed?: boolean }[] };
        const torch = answer.engines.find((e) => e.id === 'torch');
        assert.ok(torch, 'the torch engine is listed');
        return torch;
      } finally {
        assert.equal(await stop(run), 0);
      }
    };
    const missing = join(dir, 'no-such-python');
    const allowed = await system(['--allow-downloads', '--python', missing], join(dir, 'data-downloads'));
    assert.equal(allowed.downloads_allowed, true);
    assert.equal(allowed.available, false);
    assert.match(allowed.reason ?? '', new RegExp(`cannot run ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    const offline = await system(['--python', missing], join(dir, 'data-downloads'));
    assert.equal(offline.downloads_allowed, false);
  });

  it('--api-keys-file: every key in it works, comments do not, and no key is printed or stored', async () => {
    const data = join(dir, 'data-keys');
    const keys = join(dir, 'keys.txt');
    writeFileSync(keys, '# team keys\nfs-first-key-0123456789abcdef\n\n  fs-second-key-0123456789abcdef  # bob\n');
    const run = start(['backend', '--port', '0', '--data', data, '--api-keys-file', keys, '--host', '0.0.0.0']);
    try {
      const [, port] = await waitForOutput(run, /listening on http:\/\/0\.0\.0\.0:(\d+)\n/);
      for (const [key, status] of [
        ['fs-first-key-0123456789abcdef', 200],
        ['fs-second-key-0123456789abcdef', 200],
        ['# team keys', 401],
      ] as const) {
        const reply = await fetch(`http://127.0.0.1:${port}/v1/system`, { headers: { authorization: `Bearer ${key}` } });
        assert.equal(reply.status, status, key);
      }
      assert.doesNotMatch(run.stdout(), /API key/);
      assert.throws(() => statSync(join(data, 'api-key')));
      assert.match(run.stderr(), /warn binding to 0\.0\.0\.0: the backend is reachable from the network/);
    } finally {
      await stop(run);
    }
  });

  for (const [args, message] of [
    [['--port', 'x'], /--port expects a whole number from 0 to 65535, got 'x'/],
    [['--gpus', '0'], /--gpus expects a whole number from 1/],
    [['--nope'], /unknown option '--nope'/],
    [['--api-key', 'short'], /at least 16 characters/],
    [['--api-key', 'fs-0123456789abcdef0', '--api-keys-file', 'k'], /either --api-key or --api-keys-file/],
    [['--api-keys-file', 'missing-file'], /cannot read the API-keys file .*missing-file: ENOENT/],
    [['--allow-downloads=yes'], /--allow-downloads takes no value, got '--allow-downloads=yes'/],
    [['--python', ''], /--python expects the path or name of a Python, got an empty value/],
  ] as const) {
    it(`refuses ${args.join(' ')} with exit code 2 and says why`, async () => {
      const result = await finish(['backend', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /finetune-studio backend --help/);
    });
  }

  it('--help prints the options; the main help lists the command', async () => {
    const help = await finish(['backend', '--help']);
    assert.equal(help.code, 0);
    for (const option of ['--host', '--port', '--data', '--api-key', '--api-keys-file', '--gpus', '--max-upload-bytes', '--python', '--allow-downloads', '--print-json']) assert.ok(help.stdout.includes(option), option);
    const main = await finish(['--help']);
    assert.match(main.stdout, /backend {12}run the training backend/);
  });

  it('a port in use is a clear error', async () => {
    const data = join(dir, 'data-port');
    const first = start(['backend', '--port', '0', '--data', data, '--print-json']);
    try {
      const [line] = await waitForOutput(first, /^.*\n/);
      const port = new URL((JSON.parse(line) as { url: string }).url).port;
      const second = await finish(['backend', '--port', port, '--data', data]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, new RegExp(`port ${port} is in use`));
    } finally {
      await stop(first);
    }
  });
});

describe('options', () => {
  it('defaults, relative paths and --name=value', () => {
    const o = parseBackendArgs(['--data=d', '--max-upload-bytes', '10', '--python', 'py3'], '/work', '/home/u');
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.port, 8742);
    assert.equal(o.dataDir, '/work/d');
    assert.equal(o.maxUploadBytes, 10);
    assert.equal(o.python, 'py3');
    assert.equal(parseBackendArgs([], '/work', '/home/u').dataDir, '/home/u/.finetune-studio/backend');
    assert.equal(parseBackendArgs([], '/work', '/home/u').maxUploadBytes, 2 * 1024 ** 3);
  });

  it('--allow-downloads: off by default, on when given, and takes no value', () => {
    assert.equal(parseBackendArgs([], '/work', '/home/u').allowDownloads, false);
    assert.equal(parseBackendArgs(['--allow-downloads'], '/work', '/home/u').allowDownloads, true);
    assert.equal(parseBackendArgs(['--python', '/venv/bin/python', '--allow-downloads', '--port', '0'], '/work', '/home/u').python, '/venv/bin/python');
    assert.throws(() => parseBackendArgs(['--allow-downloads=1'], '/work', '/home/u'), /--allow-downloads takes no value/);
  });

  it('a keys file: one key a line, comments and blanks skipped, a short key refused with its line', () => {
    assert.deepEqual(parseApiKeys('a-key-0123456789abcdef # x\n\n# c\nb-key-0123456789abcdef\n', 'k'), ['a-key-0123456789abcdef', 'b-key-0123456789abcdef']);
    assert.throws(() => parseApiKeys('# nothing\n', 'k'), /k holds no API key/);
    assert.throws(() => parseApiKeys('a-key-0123456789abcdef\nshort\n', 'k'), /k:2: an API key must be at least 16/);
  });
});
