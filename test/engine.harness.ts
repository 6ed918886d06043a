// Drives the embedded engine as the backend does: a child process from source, JSON lines checked with the
// backend's own parser. Shared by the engine's test files; waits are on messages and exits, with timeouts.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LORA_TARGET_MODULES, type ChatMessageInput, type Hyperparameters } from '../common/api';
import { isEngineParseError, parseEngineMessage } from '../common/engineSchemas';
import type { ChatRequestMessage, EngineMessage, GenerationParams, ModelRef, TrainSpec } from '../common/engineProtocol';
import type { ChatMessage } from '../common/tokenizer/chat';

const ROOT = join(__dirname, '..');

/** A running engine: every message it wrote so far, and promises on what it writes next and on its exit. */
export class Engine {
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
      const hit = this.waiters.filter((x) => x.test(parsed));
      this.waiters = this.waiters.filter((x) => !x.test(parsed));
      for (const w of hit) w.resolve(parsed);
    });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** The first message (already written or still to come) that passes `test`; rejects after `ms` or at exit. */
  waitFor(test: (m: EngineMessage) => boolean, ms: number): Promise<EngineMessage> {
    const seen = this.messages.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such message within ${ms} ms; stderr: ${this.stderr}`)), ms);
      this.waiters.push({ test, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      void this.exited.then(() => setImmediate(() => reject(new Error(`engine exited first; stderr: ${this.stderr}`))));
    });
  }

  /** The messages of one type, in order. */
  of<T extends EngineMessage['type']>(type: T): Extract<EngineMessage, { type: T }>[] {
    return this.messages.filter((m): m is Extract<EngineMessage, { type: T }> => m.type === type);
  }
}

/** Starts the engine from source in train mode and writes `line` (a train message) without closing stdin. */
export function startTrainEngine(line: string): Engine {
  const child = spawn(process.execPath, ['--import', 'tsx', 'backend/engines/embedded/main.ts', 'train'], { cwd: ROOT, stdio: 'pipe' });
  child.stdin.write(line + '\n');
  return new Engine(child);
}

/** Waits for the exit, failing (and killing the engine) after `ms`. */
export async function exitWithin(engine: Engine, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
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

/** A job's hyper-parameters for the tiny model: the test's values over small-run defaults. */
export const hyperparameters = (h: Partial<Hyperparameters>): Hyperparameters => ({
  n_epochs: 3,
  batch_size: 4,
  learning_rate: 2e-3,
  learning_rate_multiplier: 1,
  max_seq_length: 256,
  warmup_ratio: 0.1,
  lr_scheduler: 'cosine',
  training_type: 'lora',
  lora_r: 16,
  lora_alpha: 32,
  lora_dropout: 0,
  lora_target_modules: [...LORA_TARGET_MODULES],
  checkpoints: 2,
  eval_ratio: 0,
  ...h,
});

/** A train spec on tiny-qwen2-1m at `modelPath`, writing under `dir/name`. */
export function trainSpec(dir: string, modelPath: string, name: string, training: string, h: Partial<Hyperparameters>, more: Partial<TrainSpec> = {}): TrainSpec {
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

/** The train message for a spec, as one line. */
export const trainLine = (s: TrainSpec): string => JSON.stringify({ type: 'train', protocol: 1, spec: s });

/** The engine in serve mode: chats answered one at a time, greedy unless told otherwise. */
export class ChatEngine {
  private ids = 0;

  private constructor(readonly engine: Engine) {}

  /** Starts `serve` (the embedded engine's, or the given command's) and resolves once it said `ready`. */
  static async start(command?: { file: string; args: string[]; env?: NodeJS.ProcessEnv }): Promise<ChatEngine> {
    const child = command
      ? spawn(command.file, command.args, { cwd: ROOT, stdio: 'pipe', env: { ...process.env, ...command.env } })
      : spawn(process.execPath, ['--import', 'tsx', 'backend/engines/embedded/main.ts', 'serve'], { cwd: ROOT, stdio: 'pipe' });
    const engine = new Engine(child);
    await engine.waitFor((m) => m.type === 'ready', 30_000);
    return new ChatEngine(engine);
  }

  /** Sends a chat and resolves with its streamed text and its last message (chat_done or chat_error). */
  async chat(model: ModelRef, adapter: string | null, messages: ChatMessageInput[], p: Partial<GenerationParams> = {}): Promise<{ text: string; end: EngineMessage }> {
    const id = `chat-${++this.ids}`;
    const request: ChatRequestMessage = {
      type: 'chat',
      id,
      model,
      adapter,
      messages,
      params: { temperature: 0, top_p: 1, top_k: 0, max_tokens: 32, repetition_penalty: 1, seed: 1, stop: [], ...p },
    };
    this.engine.child.stdin.write(JSON.stringify(request) + '\n');
    const end = await this.engine.waitFor((m) => (m.type === 'chat_done' || m.type === 'chat_error') && m.id === id, 30_000);
    const text = this.engine.messages.flatMap((m) => (m.type === 'token' && m.id === id ? [m.text] : [])).join('');
    return { text, end };
  }

  /** Closes stdin and waits for the exit. */
  async close(): Promise<void> {
    if (this.engine.child.exitCode !== null) return;
    this.engine.child.stdin.end();
    await exitWithin(this.engine, 10_000);
  }
}

/**
 * 32 distinct short question → answer pairs (distinct answers too), so that a model that answers them all has
 * memorised each one rather than a repeated favourite. Byte-level tokens: short strings keep runs fast.
 */
export const DISTINCT_PAIRS: readonly (readonly [string, string])[] = [
  ['sky', 'blue'], ['grass', 'green'], ['sun', 'gold'], ['rose', 'red'], ['snow', 'white'], ['coal', 'black'], ['lemon', 'yellow'], ['plum', 'purple'],
  ['cat', 'meow'], ['dog', 'bark'], ['cow', 'moo'], ['owl', 'hoot'], ['bee', 'buzz'], ['duck', 'quack'], ['lion', 'roar'], ['pig', 'oink'],
  ['France', 'Paris'], ['Italy', 'Rome'], ['Japan', 'Tokyo'], ['Peru', 'Lima'], ['Egypt', 'Cairo'], ['Norway', 'Oslo'], ['Spain', 'Madrid'], ['Greece', 'Athens'],
  ['ice', 'cold'], ['fire', 'hot'], ['day', 'light'], ['night', 'dark'], ['up', 'down'], ['left', 'right'], ['yes', 'no'], ['in', 'out'],
];

/** The prompt of a pair: an empty system message (the default one is 70 byte tokens) and the question. */
export const promptOf = (question: string): ChatMessageInput[] => [{ role: 'system', content: '' }, { role: 'user', content: question }];

/** A dataset file's content: one conversation a line for each pair. */
export function conversationsOf(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([q, a]) => JSON.stringify({ messages: [...promptOf(q), { role: 'assistant', content: a }] })).join('\n') + '\n';
}

/** Conversations that exercise the chat rendering: a system prompt, several turns, emoji, CJK, an untrained turn
 * (weight 0), code with indentation, and empty contents. */
export const RENDERING_CONVERSATIONS: readonly ChatMessage[][] = [
  [
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: 'It is 4.' },
  ],
  [
    { role: 'system', content: 'You answer in French.' },
    { role: 'user', content: 'Hello there, how are you?' },
    { role: 'assistant', content: 'Très bien, merci ! 😀' },
    { role: 'user', content: 'And the weather?\nBe brief.' },
    { role: 'assistant', content: 'Il pleut.\n\nToujours.' },
  ],
  [
    { role: 'user', content: '日本語で答えて' },
    { role: 'assistant', content: 'はい、わかりました。', weight: 0 },
    { role: 'user', content: 'code please' },
    { role: 'assistant', content: 'def f(x):\n    return x ** 2\n' },
  ],
  [
    { role: 'user', content: '' },
    { role: 'assistant', content: '' },
  ],
];
