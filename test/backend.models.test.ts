// The torch engine's Qwen2.5 catalogue in `/v1/models` (issue 8): a model that is not on the machine is listed
// unavailable, with where to put it and how to get it, unless the backend runs with `--allow-downloads`; then it is
// available with the size of its download and the engine gets its hub id. A model in the Hugging Face cache is
// found there. The real ModelCatalogue, told what the torch engine's check said (a GPU machine's answer cannot be
// had here); and the real backend over HTTP for what it says without a GPU.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EngineInfo, ModelObject } from '../common/api';
import { parseModelList, parseSystem } from '../common/apiGuards';
import { startBackend } from '../backend/app';
import { parameterCount } from '../backend/engines/embedded/catalog';
import { QWEN_MODELS } from '../backend/engines/torch/catalog';
import { downloadBytes, ModelCatalogue } from '../backend/models';
import { engineRegistry } from '../backend/runtime/engines';

const SEVEN_B = 'Qwen/Qwen2.5-7B-Instruct';
const HALF_B = 'Qwen/Qwen2.5-0.5B-Instruct';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

let dir = '';
const savedEnv = { HF_HOME: process.env.HF_HOME, HF_HUB_CACHE: process.env.HF_HUB_CACHE };

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'finetune-models-test-'));
  // The machine's own cache must not decide what these tests see.
  process.env.HF_HOME = join(dir, 'hf');
  delete process.env.HF_HUB_CACHE;
});
after(() => {
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** The torch engine as a GPU machine's check reports it. */
function torchOnGpu(downloadsAllowed: boolean): () => Promise<EngineInfo> {
  return () => Promise.resolve({ id: 'torch', available: true, resumable: true, downloads_allowed: downloadsAllowed });
}

async function qwen(catalogue: ModelCatalogue, id: string): Promise<{ object: ModelObject; path: string }> {
  const found = await catalogue.find(id);
  assert.ok(found, `${id} is listed`);
  return { object: found.object, path: found.ref.path };
}

describe('the Qwen2.5 catalogue and downloads', () => {
  it('without --allow-downloads a missing model is unavailable, saying where to put it, how to get it, and the option', async () => {
    const data = join(dir, 'offline');
    const { object, path } = await qwen(new ModelCatalogue(data, torchOnGpu(false)), SEVEN_B);
    assert.equal(object.available, false);
    assert.equal(object.download_bytes, undefined);
    const reason = object.unavailable_reason ?? '';
    assert.ok(reason.includes(join(data, 'models', 'Qwen', 'Qwen2.5-7B-Instruct')), reason);
    assert.ok(reason.includes(join(dir, 'hf', 'hub')), reason);
    assert.ok(reason.includes(`huggingface-cli download ${SEVEN_B}`), reason);
    assert.match(reason, /download it on first use \(about 15\.2 GB\): --allow-downloads, or in VS Code the setting finetune\.localBackend\.allowModelDownloads/);
    assert.equal(path, join(data, 'models', 'Qwen', 'Qwen2.5-7B-Instruct'));
  });

  it('with --allow-downloads a missing model is available, with its download size and a note, and the engine gets its hub id', async () => {
    const catalogue = new ModelCatalogue(join(dir, 'online'), torchOnGpu(true));
    for (const m of QWEN_MODELS) {
      const { object, path } = await qwen(catalogue, m.id);
      assert.equal(object.available, true, m.id);
      assert.equal(object.unavailable_reason, undefined);
      assert.equal(object.download_bytes, parameterCount(m.config) * 2, 'bf16: two bytes a parameter');
      assert.match(object.description ?? '', /downloaded from the Hugging Face hub on first use: about \d+\.\d GB/);
      assert.equal(path, m.id);
    }
    const seven = await qwen(catalogue, SEVEN_B);
    // 7.62 billion parameters: the size the hub shows for its safetensors, within a few per cent.
    assert.ok(Math.abs((seven.object.download_bytes ?? 0) - 15.23e9) < 0.3e9, String(seven.object.download_bytes));
    assert.match(seven.object.description ?? '', /about 15\.2 GB/);
    // What crosses the wire passes the client's guard.
    const list = parseModelList({ object: 'list', data: (await catalogue.list()).map((m) => m.object) });
    assert.equal(list.data.find((m) => m.id === SEVEN_B)?.download_bytes, seven.object.download_bytes);
  });

  it('a model in the Hugging Face cache is found there and needs no download, whatever the option', async () => {
    const snapshot = join(dir, 'hf', 'hub', 'models--Qwen--Qwen2.5-0.5B-Instruct', 'snapshots', 'abc123');
    mkdirSync(snapshot, { recursive: true });
    for (const file of ['config.json', 'tokenizer.json', 'model.safetensors']) writeFileSync(join(snapshot, file), '{}');
    mkdirSync(join(dir, 'hf', 'hub', 'models--Qwen--Qwen2.5-0.5B-Instruct', 'refs'), { recursive: true });
    writeFileSync(join(dir, 'hf', 'hub', 'models--Qwen--Qwen2.5-0.5B-Instruct', 'refs', 'main'), 'abc123');
    try {
      for (const allowed of [false, true]) {
        const { object, path } = await qwen(new ModelCatalogue(join(dir, 'cached'), torchOnGpu(allowed)), HALF_B);
        assert.equal(object.available, true);
        assert.equal(object.download_bytes, undefined);
        assert.equal(object.description, 'Qwen2.5 0.5B Instruct');
        assert.equal(path, snapshot);
      }
    } finally {
      rmSync(join(dir, 'hf'), { recursive: true, force: true });
    }
  });

  it('where the torch engine cannot run nothing is offered for download, and the reason is the engine\'s', async () => {
    const noGpu = (): Promise<EngineInfo> => Promise.resolve({ id: 'torch', available: false, resumable: true, reason: 'no NVIDIA GPU is visible to torch', downloads_allowed: true });
    const { object } = await qwen(new ModelCatalogue(join(dir, 'nogpu'), noGpu), SEVEN_B);
    assert.equal(object.available, false);
    assert.equal(object.download_bytes, undefined);
    assert.match(object.unavailable_reason ?? '', /The torch engine cannot run here: no NVIDIA GPU is visible to torch/);
  });

  it('the download size is the bf16 weights', () => {
    for (const m of QWEN_MODELS) assert.equal(downloadBytes(m.config), parameterCount(m.config) * 2);
  });

  it('the engine registry carries the option into the torch engine\'s info, and offline by default', () => {
    assert.equal(engineRegistry({}, 'python3', true).get('torch')?.info.downloads_allowed, true);
    assert.equal(engineRegistry({}, 'python3', false).get('torch')?.info.downloads_allowed, false);
  });

  it('the real backend without a GPU: /v1/models lists the catalogue unavailable with the engine\'s reason, /v1/system says downloads are off', async () => {
    const key = 'fs-models-test-key-0123456789';
    const backend = await startBackend({ dataDir: join(dir, 'backend'), apiKeys: [key], log: quiet, python: join(dir, 'no-python'), runtimeExtra: { detectedGpus: [] } });
    try {
      const get = async (path: string): Promise<unknown> => (await fetch(`${backend.url}${path}`, { headers: { authorization: `Bearer ${key}` } })).json();
      const system = parseSystem(await get('/v1/system'));
      assert.equal(system.engines.find((e) => e.id === 'torch')?.downloads_allowed, false);
      const models = parseModelList(await get('/v1/models'));
      const seven = models.data.find((m) => m.id === SEVEN_B);
      assert.equal(seven?.available, false);
      assert.match(seven?.unavailable_reason ?? '', /The torch engine cannot run here: cannot run .*no-python/);
    } finally {
      await backend.close();
    }
  });
});
