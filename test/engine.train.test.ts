// The embedded engine's training mode, run as the backend runs it: a child process fed one `train` message on
// stdin, its JSON lines checked with the backend's own parser. A run on a dataset written here must learn
// (loss below a third, the sample answered exactly), write peft adapter files, resume from a checkpoint with the
// same metrics as an uninterrupted run, stop promptly when stdin closes, and fail with the right codes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { LORA_TARGET_MODULES, type Hyperparameters } from '../common/api';
import { isEngineParseError, parseEngineMessage } from '../common/engineSchemas';
import type { CheckpointMessage, EngineMessage, MetricsMessage, TrainSpec } from '../common/engineProtocol';
import { readSafetensors } from '../backend/engines/embedded/model/safetensors';

const ROOT = join(__dirname, '..');
let dir = '';
let modelPath = '';

/** A running engine: every message it wrote so far, and promises on what it writes next and on its exit. */
class Engine {
  readonly messages: EngineMessage[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  private waiters: { test: (m: EngineMessage) => boolean; resolve: (m: EngineMessage) => void }[] = [];

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const parsed = parseEngineMessage(line);
      if (isEngineParseError(parsed)) throw new Error(`engine wrote a malformed line: ${parsed.error}\n${line}`);
      this.messages.push(parsed);
      for (const w of this.waiters.filter((x) => x.test(parsed))) w.resolve(parsed);
      this.waiters = this.waiters.filter((x) => !x.test(parsed));
    });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** The first message (already written or still to come) that passes `test`; rejects after `ms`. */
  waitFor(test: (m: EngineMessage) => boolean, ms: number): Promise<EngineMessage> {
    const seen = this.messages.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such message within ${ms} ms; stderr: ${this.stderr}`)), ms);
      this.waiters.push({ test, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      void this.exited.then(() => setImmediate(() => reject(new Error(`engine exited first; stderr: ${this.stderr}`))));
    });
  }

  of<T extends EngineMessage['type']>(type: T): Extract<EngineMessage, { type: T }>[] {
    return this.messages.filter((m): m is Extract<EngineMessage, { type: T }> => m.type === type);
  }
}

/** Starts the engine from source in train mode and writes `line` (a train message) without closing stdin. */
function startEngine(line: string): Engine {
  const child = spawn(process.execPath, ['--import', 'tsx', 'backend/engines/embedded/main.ts', 'train'], { cwd: ROOT, stdio: 'pipe' });
  child.stdin.write(line + '\n');
  return new Engine(child);
}

/** Waits for the exit, failing the test (and killing the engine) after `ms`. */
async function exitWithin(engine: Engine, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      engine.child.kill('SIGKILL');
      reject(new Error(`engine still running after ${ms} ms; stderr: ${engine.stderr}`));
    }, ms);
  });
  try {
    return await Promise.race([engine.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const hyperparameters = (h: Partial<Hyperparameters>): Hyperparameters => ({
  n_epochs: 3,
  batch_size: 4,
  learning_rate: 2e-3,
  learning_rate_multiplier: 1,
  max_seq_length: 256,
  warmup_ratio: 0.1,
  lr_scheduler: 'cosine',
  lora_r: 16,
  lora_alpha: 32,
  lora_dropout: 0,
  lora_target_modules: [...LORA_TARGET_MODULES],
  checkpoints: 2,
  eval_ratio: 0,
  ...h,
});

function spec(name: string, training: string, h: Partial<Hyperparameters>, more: Partial<TrainSpec> = {}): TrainSpec {
  return {
    job_id: `ftjob-${name}`,
    model: { id: 'tiny-qwen2-1m', path: modelPath },
    training_file: training,
    validation_file: null,
    hyperparameters: hyperparameters(h),
    seed: 3,
    output_dir: join(dir, name),
    resume_from: null,
    gpus: 0,
    ...more,
  };
}

const trainLine = (s: TrainSpec): string => JSON.stringify({ type: 'train', protocol: 1, spec: s });

/**
 * Short conversations (a short system message keeps them short: the default one is 70 byte tokens). Half of
 * them are the first one, so that its answer is what a small run memorises; the rest make the loss depend on
 * the question.
 */
function conversations(count: number): string {
  const others = [
    ['grass', 'green'],
    ['sun', 'gold'],
    ['rose', 'red'],
  ];
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const [q, a] = i % 2 === 0 ? ['sky', 'blue'] : others[(i >> 1) % 3];
    lines.push(JSON.stringify({ messages: [{ role: 'system', content: '' }, { role: 'user', content: q }, { role: 'assistant', content: a }] }));
  }
  return lines.join('\n') + '\n';
}

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'engine-train-'));
  mkdirSync(join(dir, 'models'));
  modelPath = join(dir, 'models', 'tiny-qwen2-1m');
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('embedded engine: train', () => {
  it('learns a small dataset: loss below a third, the sample answered exactly, peft files written', async () => {
    const training = file('train.jsonl', conversations(32));
    const validation = file('valid.jsonl', conversations(2));
    const engine = startEngine(trainLine(spec('learn', training, { n_epochs: 4 }, { validation_file: validation })));
    const { code } = await exitWithin(engine, 120_000);
    assert.equal(code, 0, engine.stderr);
    const types = engine.messages.map((m) => m.type).filter((t) => t !== 'log');
    assert.equal(types[0], 'started');
    assert.equal(types[types.length - 1], 'done');
    const started = engine.of('started')[0];
    assert.equal(started.total_steps, 32);
    assert.equal(started.train_examples, 32);
    assert.equal(started.eval_examples, 2);
    assert.equal(started.resumed_from_step, null);

    const metrics = engine.of('metrics').map((m: MetricsMessage) => m.data);
    assert.deepEqual(metrics.map((m) => m.step), Array.from({ length: 32 }, (_, i) => i + 1));
    const first = metrics[0].train_loss;
    const last = metrics[metrics.length - 1].train_loss;
    assert.ok(last < first / 3, `train loss ${first} → ${last}`);
    assert.equal(metrics[31].epoch, 4);
    assert.ok(metrics.every((m) => m.total_steps === 32 && m.learning_rate > 0 && m.grad_norm >= 0 && m.tokens_per_second > 0));
    assert.deepEqual(metrics.filter((m) => m.valid_loss !== undefined).map((m) => m.step), [16, 32]);

    const checkpoints = engine.of('checkpoint');
    assert.deepEqual(checkpoints.map((c: CheckpointMessage) => c.step), [16, 32]);
    const final = checkpoints[1];
    assert.equal(final.path, join(dir, 'learn', 'checkpoints', 'step-32'));
    assert.equal(final.valid_loss, metrics[31].valid_loss);
    assert.deepEqual(final.sample?.messages, [{ role: 'system', content: '' }, { role: 'user', content: 'sky' }]);
    assert.equal(final.sample?.reference, 'blue');
    assert.equal(final.sample?.answer, 'blue');
    const done = engine.of('done')[0];
    assert.equal(done.final_checkpoint, final.path);
    assert.equal(done.trained_tokens, started.tokens_per_epoch * 4);

    const config = JSON.parse(readFileSync(join(final.path, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.task_type, 'CAUSAL_LM');
    assert.equal(config.base_model_name_or_path, 'tiny-qwen2-1m');
    assert.equal(config.r, 16);
    assert.equal(config.lora_alpha, 32);
    assert.equal(config.bias, 'none');
    assert.equal(config.modules_to_save, null);
    assert.deepEqual(config.target_modules, [...LORA_TARGET_MODULES]);
    const tensors = await readSafetensors(join(final.path, 'adapter_model.safetensors'));
    // 4 layers × 7 projections × (A, B).
    assert.equal(tensors.size, 56);
    assert.deepEqual(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape, [16, 128]);
    assert.deepEqual(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')?.shape, [128, 16]);
    assert.deepEqual(tensors.get('base_model.model.model.layers.3.mlp.down_proj.lora_A.weight')?.shape, [16, 352]);
    assert.deepEqual(tensors.get('base_model.model.model.layers.3.self_attn.k_proj.lora_B.weight')?.shape, [64, 16]);
    assert.ok(existsSync(join(final.path, 'trainer_state.json')) && existsSync(join(final.path, 'optimizer.safetensors')));
    // The tiny model was made as an ordinary model folder.
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(modelPath, name)), name);
  });

  it('resumes from a checkpoint with the metrics of an uninterrupted run', async () => {
    const training = file('resume.jsonl', conversations(16));
    // Dropout on, so that the restored RNG state matters.
    const h = { n_epochs: 2, batch_size: 4, lora_dropout: 0.1, checkpoints: 2 };
    const whole = startEngine(trainLine(spec('whole', training, h)));
    assert.equal((await exitWithin(whole, 60_000)).code, 0, whole.stderr);

    const killed = startEngine(trainLine(spec('killed', training, h)));
    const first = (await killed.waitFor((m) => m.type === 'checkpoint', 60_000)) as CheckpointMessage;
    killed.child.kill('SIGKILL');
    await exitWithin(killed, 10_000);
    assert.equal(first.step, 4);

    const resumed = startEngine(trainLine(spec('killed', training, h, { resume_from: first.path })));
    assert.equal((await exitWithin(resumed, 60_000)).code, 0, resumed.stderr);
    const started = resumed.of('started')[0];
    assert.equal(started.total_steps, 8);
    assert.equal(started.resumed_from_step, 4);
    const after = resumed.of('metrics').map((m) => m.data);
    const reference = whole.of('metrics').map((m) => m.data).slice(4);
    assert.deepEqual(after.map((m) => m.step), [5, 6, 7, 8]);
    for (let i = 0; i < 4; i++) {
      for (const key of ['train_loss', 'train_mean_token_accuracy', 'learning_rate', 'grad_norm', 'epoch'] as const) {
        assert.ok(Math.abs(after[i][key] - reference[i][key]) <= 1e-9 * Math.max(1, Math.abs(reference[i][key])), `step ${after[i].step} ${key}: ${after[i][key]} vs ${reference[i][key]}`);
      }
    }
    assert.deepEqual(resumed.of('metrics').map((m) => m.trained_tokens), whole.of('metrics').slice(4).map((m) => m.trained_tokens));
    assert.equal(resumed.of('checkpoint')[0].sample?.answer, whole.of('checkpoint')[1].sample?.answer);
  });

  it('stops within seconds when stdin closes (the backend cancels), and on SIGTERM', async () => {
    const training = file('long.jsonl', conversations(16));
    for (const how of ['stdin', 'sigterm'] as const) {
      const engine = startEngine(trainLine(spec(`cancel-${how}`, training, { n_epochs: 50 })));
      await engine.waitFor((m) => m.type === 'metrics', 60_000);
      const asked = Date.now();
      if (how === 'stdin') engine.child.stdin.end();
      else engine.child.kill('SIGTERM');
      const { code } = await exitWithin(engine, 5_000);
      assert.ok(Date.now() - asked < 5_000);
      assert.equal(code, how === 'stdin' ? 0 : 143);
      assert.equal(engine.of('done').length + engine.of('error').length, 0);
    }
  });

  it('fails with a code: model_unavailable, invalid_dataset, a protocol mismatch', async () => {
    const training = file('ok.jsonl', conversations(4));
    const masked = file('masked.jsonl', JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', weight: 0 }] }) + '\n');
    const cases: [string, string][] = [
      [trainLine({ ...spec('bad-model', training, {}), model: { id: 'nope', path: join(dir, 'no-such-model') } }), 'model_unavailable'],
      [trainLine(spec('masked', masked, {})), 'invalid_dataset'],
      [JSON.stringify({ type: 'train', protocol: 99, spec: spec('proto', training, {}) }), 'engine_error'],
    ];
    for (const [line, expected] of cases) {
      const engine = startEngine(line);
      assert.equal((await exitWithin(engine, 30_000)).code, 1);
      const errors = engine.of('error');
      assert.equal(errors.length, 1, engine.stderr);
      assert.equal(errors[0].code, expected, errors[0].message);
      assert.ok(!errors[0].message.includes('\n    at '), 'no stack trace in the message');
    }
  });
});
