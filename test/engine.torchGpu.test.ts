// The torch engine on an NVIDIA GPU (issue 8, "Verified on the GPU machine"). Skipped wherever
// `python3 -m finetune_torch check` says the engine cannot run (CI has no GPU; the reason is printed); run on the
// GPU machine with `node scripts/test.mjs test/engine.torchGpu.test.ts`. The tiny model is the embedded engine's
// tiny-qwen2-1m folder (random weights and a byte-level tokenizer, written here), so both engines see the same
// weights, and the parity test starts both from the same LoRA initialisation.
//   - a packed row's logits equal those of its examples run one by one (varlen attention; on the CPU through a
//     per-segment sdpa stand-in for torch's CUDA-only kernel);
//   - with transformers' tokenizer, the trained tokens decode to exactly the assistant turns;
//   - a short run lowers the loss and writes checkpoints that PeftModel.from_pretrained loads;
//   - a run killed after its first checkpoint resumes from it with the uninterrupted run's loss curve;
//   - the same weights, adapter initialisation and data give the same losses (within 1e-3) in both engines;
//   - two processes through torchrun (NCCL; gloo on the CPU) give one process's losses and one protocol stream, and
//     stop without leaving a process behind, whether cancelled or killed;
//   - out of memory (in a step, a sample, an evaluation, or planned before the start) and a non-finite loss end the
//     job with one clear error and intact earlier checkpoints (on the CPU the faults are injected where the real
//     ones would happen: FINETUNE_TORCH_FAULT);
//   - torch.compile gives the eager losses (on the CPU only with FINETUNE_TORCH_CHECK_COMPILE=1: it takes minutes);
//   - bench/torch_bench.py runs end to end (--tiny) and prints both sides' tokens/s and MFU.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
 * Why the torch engine cannot run here (no reason when it can), and whether it runs on the CPU. With
 * FINETUNE_TORCH_ALLOW_CPU=1 a machine whose only lack is the GPU runs the checks on the CPU (slower; torch's varlen
 * kernel, NCCL and real out-of-memory are then not what is checked).
 */
function unavailable(): { reason?: string; onCpu: boolean } {
  const result = spawnSync(PYTHON, ['-m', 'finetune_torch', 'check'], { env: ENV, encoding: 'utf8' });
  if (result.status !== 0) return { reason: `\`${PYTHON} -m finetune_torch check\` failed: ${result.stderr.trim() || result.error?.message}`, onCpu: false };
  const report = JSON.parse(result.stdout) as { available: boolean; reason?: string };
  if (!report.available && process.env.FINETUNE_TORCH_ALLOW_CPU === '1' && /^no NVIDIA GPU/.test(report.reason ?? '')) return { onCpu: true };
  return { reason: report.available ? undefined : report.reason, onCpu: false };
}

/** Every process under `pid` (Linux /proc), to check that a stopped job leaves none behind. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const todo = [pid];
  while (todo.length > 0) for (const child of children.get(todo.pop() ?? -1) ?? []) found.push(child), todo.push(child);
  return found;
}

/** Whether a process is still running (a zombie, awaiting its parent's wait, counts as ended). */
function running(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
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
  const exit = await exitWithin(engine, 60_000);
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}\n${engine.stderr}`);
  return engine.of('metrics');
}

/** Runs a job to its error: the one `error` message, after checking the exit code and a stderr free of tracebacks. */
async function failure(engine: Engine): Promise<Extract<EngineMessage, { type: 'error' }>> {
  // Stdin stays open until the error: closing it earlier would cancel the job.
  await engine.waitFor((m) => m.type === 'done' || m.type === 'error', 300_000);
  engine.child.stdin.end();
  const exit = await exitWithin(engine, 60_000);
  assert.equal(exit.code, 1, `exit ${JSON.stringify(exit)}\n${engine.stderr}`);
  assert.doesNotMatch(engine.stderr, /Traceback/, 'no Python traceback on stderr');
  const errors = engine.of('error');
  assert.equal(errors.length, 1, JSON.stringify(engine.messages.filter((m) => m.type !== 'log')));
  assert.equal(engine.of('done').length, 0);
  return errors[0];
}

const { reason, onCpu } = unavailable();
/** Each test skips (and says why) where the engine cannot run, so that the summary counts them as skipped. */
const skip = reason === undefined ? false : `the torch engine cannot run here: ${reason}`;
/**
 * torch.compile's first step takes 2–5 minutes on two busy CPU cores (inductor compiling C++): on the CPU that check
 * runs only when asked for with FINETUNE_TORCH_CHECK_COMPILE=1; where a GPU runs the engine it always runs.
 */
const skipCompile =
  skip !== false ? skip : onCpu && process.env.FINETUNE_TORCH_CHECK_COMPILE !== '1' ? 'torch.compile on the CPU takes minutes: set FINETUNE_TORCH_CHECK_COMPILE=1 to run this check here' : false;

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
    // The varlen path, not sdpa: on the CPU with a per-segment sdpa stand-in for torch's CUDA-only kernel (one call
    // a layer), so that the wrapper around the kernel is checked there too.
    assert.equal(result.implementation, 'finetune_varlen', JSON.stringify(result));
    if (result.kernel_calls !== null) assert.equal(result.kernel_calls, 8, `4 layers, forward for logits and for the gradient: ${JSON.stringify(result)}`);
    assert.ok((result.grad_relative_diff as number) < 2e-2, `the backward through the packed row: ${JSON.stringify(result)}`);
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

  it('trains on two processes (torchrun, gloo on the CPU) with the one-process run\'s losses, one protocol stream and loadable checkpoints', { skip }, async (t) => {
    // Rows of at most 64 tokens (the job's max_seq_length; an example here is about 40): one example a row, so a
    // step's 4 rows go 2 to each rank, and the gradients are summed in another order than in one process.
    const env = { FINETUNE_TORCH_DTYPE: 'float32', FINETUNE_TORCH_PACK_TOKENS: '64' };
    const h = { n_epochs: 1, checkpoints: 2, max_seq_length: 64 };
    const one = startTorch({ ...spec('ddp-1'), hyperparameters: { ...spec('ddp-1').hyperparameters, ...h } }, env);
    const single = await finish(one);
    const two = startTorch({ ...spec('ddp-2', { gpus: 2 }), hyperparameters: { ...spec('ddp-2').hyperparameters, ...h } }, env);
    const double = await finish(two);
    assert.equal(two.of('started').length, 1);
    assert.deepEqual(two.of('started')[0], one.of('started')[0]);
    assert.equal(one.of('started')[0].truncated_examples, 0, 'no example is cut at 64 tokens');
    assert.deepEqual(double.map((m) => m.data.step), single.map((m) => m.data.step), 'one metrics message a step');
    t.diagnostic(`largest train-loss difference between 1 and 2 processes: ${Math.max(...double.map((m, i) => Math.abs(m.data.train_loss - single[i].data.train_loss)))}`);
    double.forEach((m, i) => {
      const s = single[i].data;
      assert.ok(Math.abs(m.data.train_loss - s.train_loss) < 1e-5, `step ${m.data.step}: 2 processes ${m.data.train_loss} vs 1: ${s.train_loss}`);
      assert.ok(Math.abs(m.data.grad_norm - s.grad_norm) < 1e-4, `step ${m.data.step}: grad norm ${m.data.grad_norm} vs ${s.grad_norm}`);
      assert.equal(m.data.valid_loss === undefined, s.valid_loss === undefined, `step ${m.data.step}: eval on both or neither`);
      if (m.data.valid_loss !== undefined && s.valid_loss !== undefined) assert.ok(Math.abs(m.data.valid_loss - s.valid_loss) < 1e-5, `step ${m.data.step}: valid ${m.data.valid_loss} vs ${s.valid_loss}`);
    });
    const checkpoints = two.of('checkpoint');
    assert.deepEqual(checkpoints.map((c) => c.step), one.of('checkpoint').map((c) => c.step), 'one checkpoint message a checkpoint step');
    assert.equal(checkpoints[checkpoints.length - 1].sample?.answer, one.of('checkpoint').slice(-1)[0].sample?.answer, 'the same greedy sample');
    assert.equal(two.of('done').length, 1);
    const loaded = checks(['load', '--model', modelPath, '--adapter', checkpoints[checkpoints.length - 1].path]);
    assert.equal(loaded.loaded, true);
  });

  it('stops a two-process job promptly when its stdin closes, leaving no process behind', { skip }, async () => {
    // Default rows (up to 16384 tokens): a step is one row, so rank 1 has none and only joins the gradient sums.
    const engine = startTorch(spec('ddp-cancel', { gpus: 2 }));
    await engine.waitFor((m) => m.type === 'metrics', 300_000);
    const processes = descendants(engine.child.pid ?? -1);
    assert.ok(processes.length >= 3, `torchrun and two workers under the engine: ${processes.join(', ')}`);
    const asked = Date.now();
    engine.child.stdin.end();
    const exit = await exitWithin(engine, 40_000);
    assert.equal(exit.code, 143, engine.stderr);
    assert.deepEqual(processes.filter(running), [], `still running after the engine exited (${Date.now() - asked} ms)`);
    assert.equal(engine.of('error').length, 0, 'a cancelled job reports nothing');
    // A cancel is no failure: the log says the ranks stopped, without torchrun's tracebacks.
    assert.doesNotMatch(engine.stderr, /Traceback|SignalException|ChildFailedError/, 'a traceback in the engine\'s log');
    assert.match(engine.stderr, /engine: (training|rank \d) stopped \(cancelled\)/);
  });

  it('takes a two-process job\'s processes down with its engine when the engine is killed outright', { skip }, async () => {
    const engine = startTorch(spec('ddp-kill', { gpus: 2 }));
    await engine.waitFor((m) => m.type === 'metrics', 300_000);
    const processes = descendants(engine.child.pid ?? -1);
    assert.ok(processes.length >= 3, `torchrun and two workers under the engine: ${processes.join(', ')}`);
    engine.child.kill('SIGKILL');
    await engine.exited;
    // torchrun was asked (PR_SET_PDEATHSIG) for a SIGTERM when the engine dies, and stops its workers on it.
    const deadline = Date.now() + 60_000;
    while (processes.some(running) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(processes.filter(running), [], 'still running a minute after the engine was killed');
  });

  // Faults a CPU cannot provoke, injected (FINETUNE_TORCH_FAULT, test only) where the real ones would happen.
  const faulty = (name: string, fault: string, h: Partial<TrainSpec['hyperparameters']> = {}): Engine =>
    startTorch({ ...spec(name), hyperparameters: { ...spec(name).hyperparameters, n_epochs: 1, checkpoints: 4, ...h } }, { FINETUNE_TORCH_FAULT: fault });

  it('reports out of memory in a step as one out_of_memory error with the peak and what to lower, keeping earlier checkpoints', { skip }, async () => {
    const engine = faulty('oom-step', 'out_of_memory@5');
    const error = await failure(engine);
    assert.equal(error.code, 'out_of_memory');
    assert.match(error.message, /ran out of memory at a peak of .*; try a smaller batch size \(now 4, try 2\)/);
    assert.deepEqual(engine.of('metrics').map((m) => m.data.step), [1, 2, 3, 4]);
    const written = engine.of('checkpoint');
    assert.deepEqual(written.map((c) => c.step), [2, 4]);
    for (const c of written) assert.ok(existsSync(join(c.path, 'resume_state.pt')), c.path);
    assert.equal(checks(['load', '--model', modelPath, '--adapter', written[1].path]).loaded, true);
  });

  it('reports a non-finite loss as one nan_loss error naming the step', { skip }, async () => {
    const engine = faulty('nan', 'nan_loss@3');
    const error = await failure(engine);
    assert.equal(error.code, 'nan_loss');
    assert.match(error.message, /at step 3\b/);
    assert.deepEqual(engine.of('checkpoint').map((c) => c.step), [2]);
  });

  it('reports out of memory in a checkpoint\'s sample or evaluation as out_of_memory too', { skip }, async () => {
    for (const where of ['sample', 'eval']) {
      const engine = faulty(`oom-${where}`, `out_of_memory@${where}:4`);
      const error = await failure(engine);
      assert.equal(error.code, 'out_of_memory', `${where}: ${error.message}`);
      assert.deepEqual(engine.of('checkpoint').map((c) => c.step), [2], where);
    }
  });

  it('reports out of memory in a two-process job once, from rank 0, and ends both ranks', { skip }, async () => {
    const s = spec('ddp-oom', { gpus: 2 });
    // One example a row (as in the two-process run above), so that both ranks have rows and both hit the fault.
    const engine = startTorch({ ...s, hyperparameters: { ...s.hyperparameters, n_epochs: 1, checkpoints: 4, max_seq_length: 64 } }, { FINETUNE_TORCH_FAULT: 'out_of_memory@3', FINETUNE_TORCH_PACK_TOKENS: '64' });
    await engine.waitFor((m) => m.type === 'error' || m.type === 'done', 300_000);
    const processes = descendants(engine.child.pid ?? -1);
    engine.child.stdin.end();
    const exit = await exitWithin(engine, 60_000);
    assert.equal(exit.code, 1, engine.stderr);
    assert.deepEqual(engine.of('error').map((e) => e.code), ['out_of_memory']);
    assert.deepEqual(engine.of('metrics').map((m) => m.data.step), [1, 2]);
    // Rank 1 failed the same way; only its log says so (torchrun adds its own report of the failed worker there).
    assert.match(engine.stderr, /engine: rank 1 failed: out_of_memory: /);
    assert.deepEqual(processes.filter(running), []);
  });

  it('refuses, before training starts, a job whose one sequence cannot fit in memory', { skip }, async () => {
    // A billion tokens a sequence: no host or GPU holds its activations, so the plan refuses it up front.
    const engine = faulty('too-long', '', { max_seq_length: 1_000_000_000 });
    const error = await failure(engine);
    assert.equal(error.code, 'out_of_memory');
    assert.match(error.message, /^one sequence of 1000000000 tokens does not fit even with gradient checkpointing: .* try a maximum sequence length of at most \d+/);
    assert.equal(engine.of('started').length, 0);
  });

  it('refuses a malformed fault injection before training', { skip }, async () => {
    const error = await failure(faulty('bad-fault', 'out_of_memory@soon'));
    assert.equal(error.code, 'engine_error');
    assert.match(error.message, /FINETUNE_TORCH_FAULT='out_of_memory@soon' is not understood/);
  });

  it('runs the benchmark end to end in --tiny mode: both sides\' tokens/s and an MFU figure', { skip }, () => {
    const result = spawnSync(PYTHON, [join(ROOT, 'bench', 'torch_bench.py'), '--tiny', '--steps', '1', '--json'], { env: ENV, encoding: 'utf8', timeout: 300_000 });
    assert.equal(result.status, 0, `torch_bench.py --tiny failed:\n${result.stderr}`);
    const row = result.stdout.split('\n').find((l) => l.startsWith('tiny '));
    assert.match(row ?? '', /^tiny\s+\d+\s+\d+\s+[\d.]+×\s+[\d.e+-]+%\s+[\d.e+-]+%$/, `the table's row:\n${result.stdout}`);
    const report = JSON.parse(result.stdout.split('\n').find((l) => l.startsWith('{"size"')) ?? '{}') as {
      baseline?: { tokens_per_second: number; mfu: number };
      ours?: { tokens_per_second: number; mfu: number };
      speedup?: number;
    };
    for (const [side, figures] of Object.entries({ baseline: report.baseline, ours: report.ours })) {
      assert.ok(figures && Number.isFinite(figures.tokens_per_second) && figures.tokens_per_second > 0, `${side} tokens/s: ${result.stdout}`);
      assert.ok(figures && Number.isFinite(figures.mfu) && figures.mfu > 0 && figures.mfu < 1, `${side} MFU: ${result.stdout}`);
    }
    assert.ok(Number.isFinite(report.speedup), result.stdout);
  });

  it('gives the uncompiled run\'s losses (within 1e-3) with torch.compile', { skip: skipCompile }, async () => {
    const s = spec('compiled', { seed: 5 });
    const job = { ...s, hyperparameters: { ...s.hyperparameters, n_epochs: 1, batch_size: 8, checkpoints: 1 } };
    const env = { FINETUNE_TORCH_DTYPE: 'float32' };
    const eager = await finish(startTorch({ ...job, output_dir: join(dir, 'compiled-eager') }, env));
    const compiledRun = startTorch({ ...job, output_dir: join(dir, 'compiled-compiled') }, { ...env, FINETUNE_TORCH_COMPILE: '1' });
    const compiled = await finish(compiledRun);
    assert.equal(compiled.length, eager.length);
    compiled.forEach((m, i) => assert.ok(Math.abs(m.data.train_loss - eager[i].data.train_loss) < 1e-3, `step ${m.data.step}: compiled ${m.data.train_loss} vs ${eager[i].data.train_loss}`));
    assert.ok(compiledRun.of('checkpoint')[0]?.sample, 'the checkpoint\'s sample is generated (with the eager forward)');
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
