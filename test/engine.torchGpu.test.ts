// The torch engine on an NVIDIA GPU (issue 8, "Verified on the GPU machine"). Skipped wherever
// `python3 -m finetune_torch check` says the engine cannot run (CI has no GPU; the reason is printed); run on the
// GPU machine with `node scripts/test.mjs test/engine.torchGpu.test.ts`. The tiny model is the embedded engine's
// tiny-qwen2-1m folder (random weights and a byte-level tokenizer, written here), so both engines see the same
// weights, and the parity test starts both from the same LoRA initialisation.
//   - a packed row's logits equal those of its examples run one by one;
//   - with transformers' tokenizer, the trained tokens decode to exactly the assistant turns;
//   - a short run lowers the loss and writes checkpoints that PeftModel.from_pretrained loads;
//   - a run killed after its first checkpoint resumes from it with the uninterrupted run's loss curve;
//   - the same weights, adapter initialisation and data give the same losses (within 1e-3) in both engines.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EngineMessage, MetricsMessage, TrainSpec } from '../common/engineProtocol';
import { adapterConfig } from '../backend/engines/embedded/checkpoint';
import { writeSafetensors } from '../backend/engines/embedded/model/safetensors';
import { ensureModelFolder } from '../backend/engines/embedded/tinyModels';
import { loadModel, runTraining } from '../backend/engines/embedded/train';
import { ChatEngine, conversationsOf, DISTINCT_PAIRS, Engine, exitWithin, trainLine, trainSpec } from './engine.harness';

const ROOT = join(__dirname, '..');
const ENGINE_DIR = join(ROOT, 'backend', 'engines', 'torch');
const PYTHON = process.env.FINETUNE_PYTHON ?? 'python3';
const ENV = { ...process.env, PYTHONPATH: ENGINE_DIR };

/**
 * Why the torch engine cannot run here, or undefined when it can. With FINETUNE_TORCH_ALLOW_CPU=1 a machine whose
 * only lack is the GPU runs the checks on the CPU (slower; the flash path is then not the one checked).
 */
function unavailable(): string | undefined {
  const result = spawnSync(PYTHON, ['-m', 'finetune_torch', 'check'], { env: ENV, encoding: 'utf8' });
  if (result.status !== 0) return `\`${PYTHON} -m finetune_torch check\` failed: ${result.stderr.trim() || result.error?.message}`;
  const report = JSON.parse(result.stdout) as { available: boolean; reason?: string };
  if (!report.available && process.env.FINETUNE_TORCH_ALLOW_CPU === '1' && /^no NVIDIA GPU/.test(report.reason ?? '')) return undefined;
  return report.available ? undefined : report.reason;
}

function checks(args: string[]): Record<string, unknown> {
  const result = spawnSync(PYTHON, [join(ROOT, 'test', 'gpu', 'checks.py'), ...args], { env: ENV, encoding: 'utf8', timeout: 300_000 });
  assert.equal(result.status, 0, `checks.py ${args[0]} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

/** Starts the torch engine in train mode, writing the train message without closing stdin. */
function startTorch(spec: TrainSpec, env: NodeJS.ProcessEnv = {}): Engine {
  const child = spawn(PYTHON, ['-m', 'finetune_torch', 'train'], { env: { ...ENV, ...env }, stdio: 'pipe' });
  child.stdin.write(trainLine(spec) + '\n');
  return new Engine(child);
}

async function finish(engine: Engine): Promise<MetricsMessage[]> {
  await engine.waitFor((m) => m.type === 'done' || m.type === 'error', 600_000);
  const error = engine.of('error')[0];
  assert.equal(error, undefined, `the engine failed: ${JSON.stringify(error)}\n${engine.stderr}`);
  engine.child.stdin.end();
  await exitWithin(engine, 60_000);
  return engine.of('metrics');
}

const reason = unavailable();
/** Each test skips (and says why) where the engine cannot run, so that the summary counts them as skipped. */
const skip = reason === undefined ? false : `the torch engine cannot run here: ${reason}`;

describe('torch engine on the GPU', () => {
  let dir = '';
  let modelPath = '';
  let data = '';
  const spec = (name: string, more: Partial<TrainSpec> = {}): TrainSpec =>
    trainSpec(dir, modelPath, name, data, { n_epochs: 3, batch_size: 4, learning_rate: 2e-3, lora_dropout: 0, checkpoints: 3, eval_ratio: 0.1 }, { gpus: 1, ...more });

  before(async () => {
    if (skip !== false) return;
    dir = mkdtempSync(join(tmpdir(), 'engine-torch-gpu-'));
    mkdirSync(join(dir, 'models'));
    modelPath = join(dir, 'models', 'tiny-qwen2-1m');
    await ensureModelFolder({ id: 'tiny-qwen2-1m', path: modelPath });
    data = join(dir, 'train.jsonl');
    writeFileSync(data, conversationsOf(Array.from({ length: 32 }, (_, i) => DISTINCT_PAIRS[i % DISTINCT_PAIRS.length])));
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('packs rows whose logits equal those of the examples one by one', { skip }, () => {
    const result = checks(['packed', '--model', modelPath]);
    assert.ok((result.max_abs_diff as number) < 2e-2, JSON.stringify(result));
    assert.equal(result.argmax_equal, true, JSON.stringify(result));
  });

  it('builds labels whose decoded trained tokens are exactly the assistant turns, with transformers\' tokenizer', { skip }, () => {
    const result = checks(['labels', '--model', modelPath, '--data', data]);
    assert.equal(result.checked, 32);
    assert.equal(result.transformers_tokenizer, true);
  });

  let trainedCheckpoint: Extract<EngineMessage, { type: 'checkpoint' }> | undefined;

  it('lowers the loss and writes checkpoints that PeftModel.from_pretrained loads', { skip }, async () => {
    const engine = startTorch(spec('short'));
    const losses = (await finish(engine)).map((m) => m.data.train_loss);
    const head = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const tail = losses.slice(-3).reduce((a, b) => a + b) / 3;
    assert.ok(tail < head * 0.8, `loss ${head} → ${tail}`);
    const checkpoints = engine.of('checkpoint');
    trainedCheckpoint = checkpoints[checkpoints.length - 1];
    assert.equal(checkpoints.length, 3);
    assert.ok(checkpoints.every((c) => c.sample !== null));
    const loaded = checks(['load', '--model', modelPath, '--adapter', checkpoints[checkpoints.length - 1].path]);
    assert.equal(loaded.loaded, true);
    assert.ok((loaded.changed as number) > 0, 'the trained adapter changes the logits');
  });

  it('resumes after a kill from its last checkpoint with the same loss curve', { skip }, async () => {
    // The same job and seed start from the same adapter, so an uninterrupted run of it is the reference curve.
    const reference = await finish(startTorch(spec('reference')));
    const first = startTorch(spec('resumed'));
    const checkpoint = await first.waitFor((m) => m.type === 'checkpoint', 600_000);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(checkpoint.type, 'checkpoint');
    const { path, step } = checkpoint as Extract<EngineMessage, { type: 'checkpoint' }>;
    const second = startTorch(spec('resumed', { resume_from: path }));
    const rest = await finish(second);
    assert.equal(second.of('started')[0].resumed_from_step, step);
    assert.deepEqual(rest.map((m) => m.data.step), reference.filter((m) => m.data.step > step).map((m) => m.data.step));
    for (const m of rest) {
      const same = reference.find((u) => u.data.step === m.data.step);
      assert.ok(same, `step ${m.data.step}`);
      assert.ok(Math.abs(same.data.train_loss - m.data.train_loss) < 1e-3, `step ${m.data.step}: ${same.data.train_loss} vs ${m.data.train_loss}`);
    }
  });

  it('serves chat: the checkpoint\'s greedy answer streamed, the base model with the adapter off, adapters switched without reloading', { skip }, async () => {
    assert.ok(trainedCheckpoint?.sample, 'the short run wrote a checkpoint with a sample');
    const { path, sample } = trainedCheckpoint;
    const chat = await ChatEngine.start({ file: PYTHON, args: ['-m', 'finetune_torch', 'serve'], env: ENV });
    try {
      const model = { id: 'tiny-qwen2-1m', path: modelPath };
      const limit = 2 * (Buffer.byteLength(sample.reference) + 1) + 8;
      // Greedy with the checkpoint's adapter: the answer the training wrote as its sample (byte-level tokens).
      const tuned = await chat.chat(model, path, sample.messages, { max_tokens: limit });
      assert.equal(tuned.end.type, 'chat_done', JSON.stringify(tuned.end));
      assert.equal(tuned.text, sample.answer);
      const base = await chat.chat(model, null, sample.messages, { max_tokens: limit });
      assert.equal(base.end.type, 'chat_done', JSON.stringify(base.end));
      assert.notEqual(base.text, tuned.text, 'the base model (adapter disabled) answers differently');
      const again = await chat.chat(model, path, sample.messages, { max_tokens: limit });
      assert.equal(again.text, tuned.text, 'back on the adapter: the same answer');
      const pieces = chat.engine.messages.filter((m) => m.type === 'token').length;
      assert.ok(pieces > 2, `streamed in pieces (${pieces})`);
    } finally {
      await chat.close();
    }
  });

  it('gives the embedded engine\'s losses (within 1e-3) from the same weights, adapter initialisation and data', { skip }, async () => {
    const s = spec('parity', { seed: 11 });
    // The embedded engine's initial adapter (addLora with the job's seed), exported in peft's format.
    const { model } = await loadModel(s.model);
    const h = s.hyperparameters;
    const lora = { r: h.lora_r, alpha: h.lora_alpha, dropout: 0, targetModules: [...h.lora_target_modules] };
    model.addLora(lora, s.seed);
    const init = join(dir, 'parity-init');
    mkdirSync(init);
    await writeFile(join(init, 'adapter_config.json'), JSON.stringify(adapterConfig(s.model.id, lora)));
    await writeSafetensors(join(init, 'adapter_model.safetensors'), model.loraTensors(), { format: 'pt' });

    const embedded: MetricsMessage[] = [];
    await runTraining({ ...s, output_dir: join(dir, 'parity-embedded') }, {
      send: (m) => void (m.type === 'metrics' && embedded.push(m)),
      log: () => undefined,
      cancelled: () => false,
    });
    const torch = await finish(startTorch({ ...s, output_dir: join(dir, 'parity-torch') }, { FINETUNE_TORCH_INIT_ADAPTER: init, FINETUNE_TORCH_DTYPE: 'float32' }));
    assert.equal(torch.length, embedded.length);
    torch.forEach((m, i) => {
      assert.ok(Math.abs(m.data.train_loss - embedded[i].data.train_loss) < 1e-3, `step ${m.data.step}: torch ${m.data.train_loss} vs embedded ${embedded[i].data.train_loss}`);
    });
  });
});
