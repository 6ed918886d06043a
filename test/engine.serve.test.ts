// The embedded engine's chat mode, run as the backend runs it: `serve` as a child process answering `chat` and
// `chat_cancel` lines with streamed `token`s. On the base tiny model and on a checkpoint trained here: stop at
// <|im_end|>, stop strings (not emitted), max_tokens → length, cancel within a token, arrival order, bad adapter.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { LORA_TARGET_MODULES } from '../common/api';
import { isEngineParseError, parseEngineMessage } from '../common/engineSchemas';
import type { ChatRequestMessage, EngineMessage, GenerationParams } from '../common/engineProtocol';
import { generate, TextStream } from '../backend/engines/embedded/generate';
import { tinyModel } from '../backend/engines/embedded/catalog';
import { tinyBaseModel } from '../backend/engines/embedded/tinyModels';
import { BpeTokenizer } from '../common/tokenizer/bpe';
import { TokenBytes, tinyTokenizerJson } from '../backend/engines/embedded/tokenizer';

const ROOT = join(__dirname, '..');
let dir = '';
let modelPath = '';
let adapter = '';
let server: ChildProcessWithoutNullStreams;
let stderr = '';
const messages: EngineMessage[] = [];
let waiters: { test: (m: EngineMessage) => boolean; resolve: (m: EngineMessage) => void }[] = [];

function onMessage(m: EngineMessage): void {
  messages.push(m);
  const hit = waiters.filter((w) => w.test(m));
  waiters = waiters.filter((w) => !w.test(m));
  for (const w of hit) w.resolve(m);
}

function waitFor(test: (m: EngineMessage) => boolean, ms: number): Promise<EngineMessage> {
  const seen = messages.find(test);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no such message within ${ms} ms; stderr: ${stderr}`)), ms);
    waiters.push({ test, resolve: (m) => (clearTimeout(timer), resolve(m)) });
  });
}

let ids = 0;
const params = (p: Partial<GenerationParams>): GenerationParams => ({
  temperature: 0,
  top_p: 1,
  top_k: 0,
  max_tokens: 32,
  repetition_penalty: 1,
  seed: 1,
  stop: [],
  ...p,
});

/** Sends a chat and resolves with its streamed text and its last message (chat_done or chat_error). */
async function chat(p: Partial<GenerationParams>, withAdapter: string | null, content = 'sky'): Promise<{ text: string; end: EngineMessage }> {
  const id = `chat-${++ids}`;
  const request: ChatRequestMessage = {
    type: 'chat',
    id,
    model: { id: 'tiny-qwen2-1m', path: modelPath },
    adapter: withAdapter,
    messages: [{ role: 'system', content: '' }, { role: 'user', content }],
    params: params(p),
  };
  server.stdin.write(JSON.stringify(request) + '\n');
  const end = await waitFor((m) => (m.type === 'chat_done' || m.type === 'chat_error') && m.id === id, 30_000);
  const text = messages.flatMap((m) => (m.type === 'token' && m.id === id ? [m.text] : [])).join('');
  return { text, end };
}

/** Trains a checkpoint that answers "blue" to "sky" with the train mode (the same data as engine.train.test.ts). */
async function trainAdapter(): Promise<string> {
  const lines: string[] = [];
  const others = [['grass', 'green'], ['sun', 'gold'], ['rose', 'red']];
  for (let i = 0; i < 32; i++) {
    const [q, a] = i % 2 === 0 ? ['sky', 'blue'] : others[(i >> 1) % 3];
    lines.push(JSON.stringify({ messages: [{ role: 'system', content: '' }, { role: 'user', content: q }, { role: 'assistant', content: a }] }));
  }
  writeFileSync(join(dir, 'train.jsonl'), lines.join('\n'));
  const spec = {
    job_id: 'ftjob-serve',
    model: { id: 'tiny-qwen2-1m', path: modelPath },
    training_file: join(dir, 'train.jsonl'),
    validation_file: null,
    hyperparameters: {
      n_epochs: 4, batch_size: 4, learning_rate: 2e-3, learning_rate_multiplier: 1, max_seq_length: 256, warmup_ratio: 0.1,
      lr_scheduler: 'cosine', training_type: 'lora', lora_r: 16, lora_alpha: 32, lora_dropout: 0, lora_target_modules: [...LORA_TARGET_MODULES], checkpoints: 1, eval_ratio: 0,
    },
    seed: 3,
    output_dir: join(dir, 'job'),
    resume_from: null,
    gpus: 0,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'backend/engines/embedded/main.ts', 'train'], { cwd: ROOT, stdio: 'pipe' });
  child.stdin.write(JSON.stringify({ type: 'train', protocol: 1, spec }) + '\n');
  let done = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = JSON.parse(line) as EngineMessage;
    if (m.type === 'done') done = m.final_checkpoint;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0);
  return done;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'engine-serve-'));
  mkdirSync(join(dir, 'models'));
  modelPath = join(dir, 'models', 'tiny-qwen2-1m');
  adapter = await trainAdapter();
  server = spawn(process.execPath, ['--import', 'tsx', 'backend/engines/embedded/main.ts', 'serve'], { cwd: ROOT, stdio: 'pipe' });
  server.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  createInterface({ input: server.stdout }).on('line', (line) => {
    const parsed = parseEngineMessage(line);
    if (isEngineParseError(parsed)) throw new Error(`malformed line from the engine: ${parsed.error}\n${line}`);
    onMessage(parsed);
  });
  await waitFor((m) => m.type === 'ready', 30_000);
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.on('exit', resolve));
    server.stdin.end();
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('embedded engine: serve', () => {
  it('a trained checkpoint answers its data, stopping at <|im_end|>', async () => {
    const { text, end } = await chat({}, adapter);
    assert.equal(text, 'blue');
    assert.deepEqual(end, { type: 'chat_done', id: end.type === 'chat_done' ? end.id : '', finish_reason: 'stop', prompt_tokens: 32, completion_tokens: 4 });
  });

  it('stop strings end the answer and are not emitted; max_tokens ends it with length', async () => {
    const stopped = await chat({ stop: ['xx', 'ue'] }, adapter);
    assert.equal(stopped.text, 'bl');
    assert.equal(stopped.end.type === 'chat_done' && stopped.end.finish_reason, 'stop');
    const short = await chat({ max_tokens: 2 }, adapter);
    assert.equal(short.text, 'bl');
    assert.ok(short.end.type === 'chat_done' && short.end.finish_reason === 'length' && short.end.completion_tokens === 2);
  });

  it('the base model streams tokens; sampling is seeded', async () => {
    const base = await chat({ max_tokens: 12 }, null);
    assert.ok(base.end.type === 'chat_done' && base.end.completion_tokens <= 12);
    const a = await chat({ temperature: 1, top_p: 0.9, top_k: 50, seed: 5, max_tokens: 12 }, null);
    const b = await chat({ temperature: 1, top_p: 0.9, top_k: 50, seed: 5, max_tokens: 12 }, null);
    assert.equal(a.text, b.text);
  });

  it('chat_cancel stops a generation within a token; requests are answered in arrival order', async () => {
    const first = chat({ max_tokens: 2000 }, null, 'tell me a long story');
    const second = chat({}, adapter);
    const id = `chat-${ids - 1}`;
    await waitFor((m) => m.type === 'token' && m.id === id, 30_000);
    server.stdin.write(JSON.stringify({ type: 'chat_cancel', id }) + '\n');
    const { end } = await first;
    assert.equal(end.type, 'chat_error');
    assert.equal(end.type === 'chat_error' && end.code, 'cancelled');
    assert.equal((await second).text, 'blue');
    const order = messages.filter((m) => m.type !== 'log' && 'id' in m && (m.id === id || m.id === `chat-${ids}`)).map((m) => ('id' in m ? m.id : ''));
    assert.equal(order.lastIndexOf(id) < order.indexOf(`chat-${ids}`), true);
  });

  it('an adapter folder that is not one fails with model_unavailable; the process goes on', async () => {
    const { end } = await chat({}, join(dir, 'nowhere'));
    assert.equal(end.type === 'chat_error' && end.code, 'model_unavailable');
    assert.equal((await chat({}, adapter)).text, 'blue');
  });
});

describe('TextStream', () => {
  const tok = new BpeTokenizer(tinyTokenizerJson());
  const feed = (text: string, stops: string[]): string[] => {
    const stream = new TextStream(new TokenBytes(tok), stops);
    const pieces = [...Buffer.from(text)].map((b) => stream.push(b));
    pieces.push(stream.finish());
    return pieces;
  };

  it('holds back a character split across tokens until it is complete', () => {
    assert.deepEqual(feed('a😀b', []), ['a', '', '', '', '😀', 'b', '']);
  });

  it('holds back a possible stop-string prefix, releases it when it is not one', () => {
    assert.deepEqual(feed('abXYc', ['XYZ']), ['a', 'b', '', '', 'XYc', '']);
    assert.deepEqual(feed('abXYZc', ['XYZ']), ['a', 'b', '', '', '', '', '']);
    assert.deepEqual(feed('abX', ['XYZ']), ['a', 'b', '', 'X']);
  });
});

describe('generate', () => {
  it('never samples the padded ids past the tokenizer (the tiny models have 272 rows for 259 ids)', async () => {
    const tiny = tinyModel('tiny-qwen2-1m');
    assert.ok(tiny);
    const model = tinyBaseModel(tiny.config, tiny.seed);
    const tokenizer = new BpeTokenizer(tinyTokenizerJson());
    assert.ok(tokenizer.vocabSize < tiny.config.vocab_size, 'the test needs a padded embedding');
    // A hot temperature over a random model spreads the draws over every id: 13 of 272 ids are padding, so 300
    // unmasked draws would hit one with near certainty (and decoding it throws).
    const { completionTokens } = await generate({
      model,
      tokenizer,
      prompt: [...tokenizer.encode('<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n')],
      stopIds: [],
      stop: [],
      maxTokens: 300,
      sampling: { temperature: 5, topP: 1, topK: 0, repetitionPenalty: 1 },
      seed: 7,
    });
    assert.equal(completionTokens, 300);
  });
});
