// Where the torch engine's base model comes from (issue 8, finetune_torch/hub.py), checked without a GPU and
// without the network: the launcher the backend starts the engine with puts it offline (HF_HUB_OFFLINE=1,
// TRANSFORMERS_OFFLINE=1, whatever the backend's environment says) unless downloads are allowed; `model_folder`
// takes a model folder as it is, finds a snapshot in the Hugging Face cache, refuses to download without
// permission (naming the places it looked and how to get the model), and with permission turns a failed download
// into `model_unavailable` with its cause — huggingface_hub missing from a bare python3, or the hub unreachable.
// The chat server says the same through the protocol. Runs with Debian's python3 (no huggingface_hub, no torch);
// the cases that need huggingface_hub or torch run with FINETUNE_PYTHON or the repository's .venv-torch when present.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkTorchEngine, torchEngineDir } from '../backend/engines/torch/check';
import { torchCommand } from '../backend/runtime/engines';

const ROOT = join(__dirname, '..');
/** A plain python3: Debian's where it is there (CI), else the one on the PATH. */
const BARE_PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** A Python with huggingface_hub (and torch): FINETUNE_PYTHON, else the repository's venv; undefined when neither. */
const HUB_PYTHON = process.env.FINETUNE_PYTHON ?? (existsSync(join(ROOT, '.venv-torch', 'bin', 'python')) ? join(ROOT, '.venv-torch', 'bin', 'python') : undefined);
const SEVEN_B = 'Qwen/Qwen2.5-7B-Instruct';

function imports(python: string, module: string): boolean {
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}
const bareHasHub = imports(BARE_PYTHON, 'huggingface_hub');
const hubPython = HUB_PYTHON !== undefined && imports(HUB_PYTHON, 'huggingface_hub') ? HUB_PYTHON : undefined;
const torchPython = hubPython !== undefined && imports(hubPython, 'torch') ? hubPython : undefined;

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'finetune-torch-hub-test-'));
  writeFileSync(
    join(dir, 'resolve.py'),
    [
      '# Calls hub.model_folder under the launcher\'s rules; prints its answer, or its error, and the log events, as JSON.',
      'import json, sys',
      'from finetune_torch import hub',
      'from finetune_torch.hub import model_folder, set_network_rules',
      'from finetune_torch.protocol import EngineError',
      'set_network_rules(sys.argv[1] == "--allow-downloads")',
      '# Every progress update becomes an event (a real download reports every 10 s).',
      'hub.PROGRESS_EVERY_S = 0',
      'logs = []',
      'try:',
      '    answer = {"folder": model_folder(sys.argv[2], sys.argv[3], lambda level, message, data=None: logs.append({"level": level, "message": message, "data": data}))}',
      'except EngineError as error:',
      '    answer = {"code": error.code, "message": str(error)}',
      'answer["logs"] = logs',
      'print(json.dumps(answer))',
      '',
    ].join('\n'),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** An environment with only the hub settings a test names (HF_HOME in the test's folder, nothing inherited). */
function hubEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HF_HOME: join(dir, 'hf'), PYTHONPATH: torchEngineDir(), ...extra };
  for (const name of ['HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'FINETUNE_TORCH_ALLOW_DOWNLOAD', 'HF_ENDPOINT']) if (!(name in extra)) delete env[name];
  return env;
}

interface Resolved {
  folder?: string;
  code?: string;
  message?: string;
  logs: { level: string; message: string; data: Record<string, unknown> | null }[];
}

/** Runs resolve.py (asynchronously: a test's own HTTP server must keep answering meanwhile). */
async function resolveModel(python: string, rule: '--offline' | '--allow-downloads', id: string, path: string, extra: Record<string, string> = {}): Promise<Resolved> {
  const child = spawn(python, [join(dir, 'resolve.py'), rule, id, path], { env: hubEnv(extra), stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.equal(status, 0, `resolve.py failed:\n${stderr}`);
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, `only the answer on stdout, got:\n${stdout}`);
  return JSON.parse(lines[0]) as Resolved;
}

/**
 * A stand-in for the Hugging Face hub on loopback, answering what snapshot_download asks (the revision, the file
 * tree, each file's metadata and content) for one repository; the paths it was asked for, in order.
 */
async function fakeHub(repo: string, files: Record<string, Buffer>): Promise<{ endpoint: string; asked: string[]; server: Server }> {
  const commit = 'c0ffee'.padEnd(40, '0');
  const asked: string[] = [];
  const server = createHttpServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://hub').pathname);
    asked.push(`${request.method ?? ''} ${path}`);
    const json = (value: unknown): void => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(value));
    };
    if (path === `/api/models/${repo}/revision/main` || path === `/api/models/${repo}`) {
      json({ id: repo, sha: commit, siblings: Object.keys(files).map((rfilename) => ({ rfilename })) });
    } else if (path === `/api/models/${repo}/tree/${commit}`) {
      json(Object.entries(files).map(([name, body]) => ({ type: 'file', path: name, size: body.length, oid: createHash('sha1').update(body).digest('hex') })));
    } else if (path.startsWith(`/${repo}/resolve/${commit}/`) && files[path.slice(`/${repo}/resolve/${commit}/`.length)] !== undefined) {
      const body = files[path.slice(`/${repo}/resolve/${commit}/`.length)];
      response.setHeader('X-Repo-Commit', commit);
      response.setHeader('ETag', `"${createHash('sha256').update(body).digest('hex')}"`);
      response.setHeader('Content-Length', String(body.length));
      response.end(request.method === 'HEAD' ? undefined : body);
    } else {
      response.statusCode = 404;
      json({ error: 'not found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`, asked, server };
}

/** A loopback port with nothing listening: the hub "endpoint" of a machine without network, refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs the launcher's `env` mode as the backend would start the engine; the rules the engine sees. */
function launchedRules(python: string, allow: boolean, env: Record<string, string>): Record<string, string | boolean | null> {
  const command = torchCommand(python, 'env', allow);
  const result = spawnSync(command.file, command.args, { cwd: command.cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Record<string, string | boolean | null>;
}

describe('the torch engine\'s launcher', () => {
  it('puts the engine offline whatever the environment says, unless downloads are allowed', () => {
    const userSays = { HF_HUB_OFFLINE: '0', TRANSFORMERS_OFFLINE: '0', FINETUNE_TORCH_ALLOW_DOWNLOAD: '1' };
    const offline = launchedRules(BARE_PYTHON, false, userSays);
    assert.equal(offline.HF_HUB_OFFLINE, '1');
    assert.equal(offline.TRANSFORMERS_OFFLINE, '1');
    assert.equal(offline.FINETUNE_TORCH_ALLOW_DOWNLOAD, null);
    const allowed = launchedRules(BARE_PYTHON, true, { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' });
    assert.equal(allowed.FINETUNE_TORCH_ALLOW_DOWNLOAD, '1');
    assert.equal(allowed.HF_HUB_OFFLINE, null, 'the backend\'s permission wins over an offline switch left in the environment');
    assert.equal(allowed.TRANSFORMERS_OFFLINE, null);
  });

  it('huggingface_hub itself concludes it is offline', { skip: hubPython === undefined && 'needs a Python with huggingface_hub (FINETUNE_PYTHON or .venv-torch)' }, () => {
    assert.equal(launchedRules(hubPython ?? '', false, { HF_HUB_OFFLINE: '0' }).huggingface_hub_offline, true);
    assert.equal(launchedRules(hubPython ?? '', true, { HF_HUB_OFFLINE: '1' }).huggingface_hub_offline, false);
  });

  it('runs the engine\'s check: the backend\'s check goes through it and gets the engine\'s own answer', async () => {
    const result = await checkTorchEngine(BARE_PYTHON);
    assert.equal(result.info.available, false);
    // The engine's answer (what is missing, or no GPU), not a failure to start it.
    assert.match(result.info.reason ?? '', /missing Python packages|no NVIDIA GPU|Python 3\.10 or later/);
  });

  it('refuses a wrong command line with a usage line', () => {
    const result = spawnSync(BARE_PYTHON, ['-m', 'finetune_torch.hub', 'train'], { cwd: torchEngineDir(), encoding: 'utf8' });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /usage: python -m finetune_torch\.hub \(--offline \| --allow-downloads\)/);
    assert.equal(result.stdout, '');
  });
});

describe('model_folder', () => {
  it('takes a model folder as it is', async () => {
    const folder = join(dir, 'models', 'mine');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'config.json'), '{}');
    for (const rule of ['--offline', '--allow-downloads'] as const) assert.equal((await resolveModel(BARE_PYTHON, rule, 'Org/Mine', folder)).folder, folder);
  });

  it('finds the snapshot in the Hugging Face cache when the backend sent the hub id', async () => {
    const repo = join(dir, 'hf', 'hub', 'models--Qwen--Qwen2.5-0.5B-Instruct');
    mkdirSync(join(repo, 'snapshots', 'rev1'), { recursive: true });
    mkdirSync(join(repo, 'refs'), { recursive: true });
    for (const file of ['config.json', 'tokenizer.json', 'model.safetensors']) writeFileSync(join(repo, 'snapshots', 'rev1', file), '{}');
    writeFileSync(join(repo, 'refs', 'main'), 'rev1\n');
    try {
      const resolved = await resolveModel(BARE_PYTHON, '--offline', 'Qwen/Qwen2.5-0.5B-Instruct', 'Qwen/Qwen2.5-0.5B-Instruct');
      assert.equal(resolved.folder, join(repo, 'snapshots', 'rev1'));
      assert.deepEqual(resolved.logs, []);
    } finally {
      rmSync(join(dir, 'hf'), { recursive: true, force: true });
    }
  });

  it('says which files an interrupted download left out of the cache, and how to finish it', async () => {
    const snapshot = join(dir, 'hf', 'hub', 'models--Qwen--Qwen2.5-7B-Instruct', 'snapshots', 'rev2');
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(snapshot, 'config.json'), '{}');
    writeFileSync(join(snapshot, 'tokenizer.json'), '{}');
    const weightMap = { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' };
    writeFileSync(join(snapshot, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    writeFileSync(join(snapshot, 'model-00001-of-00002.safetensors'), '');
    try {
      const resolved = await resolveModel(BARE_PYTHON, '--offline', SEVEN_B, SEVEN_B);
      assert.equal(resolved.code, 'model_unavailable');
      assert.match(resolved.message ?? '', /incomplete Qwen\/Qwen2\.5-7B-Instruct \(.*rev2 has no model-00002-of-00002\.safetensors\)/);
      assert.ok((resolved.message ?? '').includes(`huggingface-cli download ${SEVEN_B}`));
    } finally {
      rmSync(join(dir, 'hf'), { recursive: true, force: true });
    }
  });

  it('without permission refuses to download, naming where it looked and how to get the model', async () => {
    const own = join(dir, 'data', 'models', 'Qwen', 'Qwen2.5-7B-Instruct');
    const resolved = await resolveModel(BARE_PYTHON, '--offline', SEVEN_B, own);
    assert.equal(resolved.code, 'model_unavailable');
    const message = resolved.message ?? '';
    assert.ok(message.includes(own), message);
    assert.ok(message.includes(join(dir, 'hf', 'hub', 'models--Qwen--Qwen2.5-7B-Instruct')), message);
    assert.ok(message.includes(`huggingface-cli download ${SEVEN_B}`), message);
    assert.ok(message.includes('--allow-downloads'), message);
    assert.deepEqual(resolved.logs, [], 'nothing was attempted');
  });

  it('with permission but without huggingface_hub: model_unavailable saying it is missing and how to install it', { skip: bareHasHub && `${BARE_PYTHON} has huggingface_hub` }, async () => {
    const resolved = await resolveModel(BARE_PYTHON, '--allow-downloads', SEVEN_B, SEVEN_B);
    assert.equal(resolved.code, 'model_unavailable');
    assert.match(resolved.message ?? '', /cannot download Qwen\/Qwen2\.5-7B-Instruct: huggingface_hub is missing from this Python/);
    assert.match(resolved.message ?? '', /pip install huggingface_hub/);
  });

  it('with permission and the hub unreachable: a start event, then model_unavailable with the cause, nothing else on stdout', { skip: hubPython === undefined && 'needs a Python with huggingface_hub (FINETUNE_PYTHON or .venv-torch)' }, async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const resolved = await resolveModel(hubPython ?? '', '--allow-downloads', SEVEN_B, SEVEN_B, { HF_ENDPOINT: endpoint });
    assert.equal(resolved.code, 'model_unavailable');
    assert.match(resolved.message ?? '', /cannot download Qwen\/Qwen2\.5-7B-Instruct from the Hugging Face hub: \w+: .*(refused|connect|Connect)/);
    assert.equal(resolved.logs.length, 1);
    assert.equal(resolved.logs[0].data?.phase, 'start');
    assert.match(resolved.logs[0].message, /downloading Qwen\/Qwen2\.5-7B-Instruct from the Hugging Face hub into .*hf/);
  });
});

describe('a download with permission', () => {
  it('fetches only what training and chat open into the Hugging Face cache, reporting start, progress and done; later found offline', { skip: hubPython === undefined && 'needs a Python with huggingface_hub (FINETUNE_PYTHON or .venv-torch)', timeout: 120_000 }, async () => {
    const repo = 'Org/Tiny-Instruct';
    const files: Record<string, Buffer> = {
      'config.json': Buffer.from('{"model_type": "qwen2"}'),
      'tokenizer.json': Buffer.from('{}'),
      'model.safetensors': Buffer.alloc(2_000_000, 7),
      'README.md': Buffer.from('not needed'),
      'model.gguf': Buffer.alloc(1000, 1),
    };
    const hub = await fakeHub(repo, files);
    let folder: string;
    try {
      const resolved = await resolveModel(hubPython ?? '', '--allow-downloads', repo, repo, { HF_ENDPOINT: hub.endpoint });
      assert.equal(resolved.code, undefined, resolved.message);
      folder = resolved.folder ?? '';
      assert.ok(folder.startsWith(join(dir, 'hf', 'hub', 'models--Org--Tiny-Instruct', 'snapshots')), folder);
      assert.equal(readFileSync(join(folder, 'config.json'), 'utf8'), '{"model_type": "qwen2"}');
      assert.ok(existsSync(join(folder, 'model.safetensors')));
      assert.ok(!existsSync(join(folder, 'README.md')) && !existsSync(join(folder, 'model.gguf')), 'only the allowed patterns');
      assert.ok(!hub.asked.some((a) => a.endsWith('README.md') || a.endsWith('model.gguf')), hub.asked.join('\n'));
      const phases = resolved.logs.map((l) => l.data?.phase);
      assert.equal(phases[0], 'start');
      assert.equal(phases.at(-1), 'done');
      assert.ok(phases.includes('progress'), `progress events: ${phases.join(', ')}`);
      const wanted = files['config.json'].length + files['tokenizer.json'].length + files['model.safetensors'].length;
      assert.equal(resolved.logs.at(-1)?.data?.bytes, wanted);
      assert.match(resolved.logs.at(-1)?.message ?? '', /downloaded Org\/Tiny-Instruct: 2\.0 MB in \d+ s/);
    } finally {
      await new Promise<void>((resolve) => hub.server.close(() => resolve()));
    }
    // The hub is gone: offline, the cache alone answers.
    assert.equal((await resolveModel(hubPython ?? '', '--offline', repo, repo)).folder, folder);
  });
});

describe('the chat server', () => {
  it('answers a chat on a model that is not here with model_unavailable and where it looked', { skip: torchPython === undefined && 'needs a Python with torch (FINETUNE_PYTHON or .venv-torch)', timeout: 120_000 }, async () => {
    const command = torchCommand(torchPython ?? '', 'serve', false);
    const child = spawn(command.file, command.args, { cwd: command.cwd, env: hubEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const messages: Record<string, unknown>[] = [];
    let buffered = '';
    const answered = new Promise<Record<string, unknown>>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => reject(new Error(`the chat server exited with ${code} before answering`)));
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          const message = JSON.parse(line) as Record<string, unknown>;
          messages.push(message);
          if (message.type === 'chat_error' || message.type === 'chat_done') resolve(message);
        }
      });
    });
    try {
      const own = join(dir, 'data', 'models', 'Qwen', 'Qwen2.5-7B-Instruct');
      child.stdin.write(
        `${JSON.stringify({
          type: 'chat',
          id: 'c1',
          model: { id: SEVEN_B, path: own },
          adapter: null,
          messages: [{ role: 'user', content: 'hi' }],
          params: { temperature: 0, top_p: 1, top_k: 0, max_tokens: 4, repetition_penalty: 1, seed: 1, stop: [] },
        })}\n`,
      );
      const answer = await answered;
      assert.equal(answer.type, 'chat_error');
      assert.equal(answer.code, 'model_unavailable');
      assert.ok(String(answer.message).includes(own), String(answer.message));
      assert.match(String(answer.message), /--allow-downloads/);
      assert.equal(messages[0].type, 'ready');
    } finally {
      child.stdin.end();
      if (child.exitCode === null) child.kill('SIGTERM');
    }
  });
});
