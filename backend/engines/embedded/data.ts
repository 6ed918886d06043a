// The training data of a job: the `.jsonl` conversations rendered with the Qwen2.5 chat template, with labels
// built segment by segment (ARCHITECTURE.md, "The training rules"; TRAINING.md, "Masking"), truncated at the
// maximum sequence length, split into training and held-out examples.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ChatMessageInput } from '../../../common/api';
import type { BpeTokenizer } from '../../../common/tokenizer/bpe';
import { QWEN_DEFAULT_SYSTEM_PROMPT, type ChatMessage } from '../../../common/tokenizer/chat';
import { EngineError, oneLine } from './errors';
import { permutation } from './schedule';
import type { ChatTokenIds } from './tokenizer';

/** transformers' ignore index: a label the loss skips. */
export const IGNORE = -100;

/** Writes a line to the job's event log. */
export type EngineLog = (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => void;

/** A rendered conversation: token ids, and for each id whether it is trained on. */
export interface Rendered {
  ids: number[];
  trained: boolean[];
}

/** One training or evaluation example. */
export interface Example {
  /** 1-based line of its file. */
  line: number;
  messages: ChatMessage[];
  ids: Int32Array;
  /** transformers' convention: the id where trained, IGNORE elsewhere; position i predicts labels[i + 1]. */
  labels: Int32Array;
  /** Positions that carry loss (labels other than IGNORE, the first position excluded: nothing predicts it). */
  trainedTokens: number;
  /** Whether max_seq_length cut it. */
  truncated: boolean;
}

function push(out: Rendered, ids: readonly number[], trained: boolean): void {
  for (const id of ids) {
    out.ids.push(id);
    out.trained.push(trained);
  }
}

/**
 * Renders a conversation as the Qwen2.5 chat template does (`<|im_start|>{role}\n{content}<|im_end|>\n` per
 * message, the default system message first when there is none), segment by segment:
 * - system and user messages: `<|im_start|>`, `{role}\n{content}` tokenized together, `<|im_end|>`, `\n`,
 *   all masked (the special tokens are split out before anything else, so this is exactly how the whole
 *   rendered text tokenizes);
 * - assistant messages: `<|im_start|>` and `assistant\n` masked; the content tokenized alone, `<|im_end|>` and
 *   `\n` trained unless the message has `weight: 0`.
 * The content of an assistant message is tokenized alone so that the trained tokens are exactly what the model
 * generates after the generation prompt at chat time; it differs from tokenizing the whole text only when the
 * content begins with a line break that the tokenizer would merge with the one after the role.
 * `generationPrompt` appends `<|im_start|>assistant\n` (masked), as chat does.
 */
export function renderConversation(tokenizer: BpeTokenizer, special: ChatTokenIds, messages: readonly ChatMessage[], generationPrompt = false): Rendered {
  const out: Rendered = { ids: [], trained: [] };
  const newline = tokenizer.encode('\n');
  if (messages.length === 0 || messages[0].role !== 'system') {
    push(out, [special.imStart, ...tokenizer.encode(`system\n${QWEN_DEFAULT_SYSTEM_PROMPT}`), special.imEnd, ...newline], false);
  }
  for (const m of messages) {
    if (m.role === 'assistant') {
      push(out, [special.imStart, ...tokenizer.encode('assistant\n')], false);
      push(out, [...tokenizer.encode(m.content), special.imEnd, ...newline], m.weight !== 0);
    } else {
      push(out, [special.imStart, ...tokenizer.encode(`${m.role}\n${m.content}`), special.imEnd, ...newline], false);
    }
  }
  if (generationPrompt) push(out, [special.imStart, ...tokenizer.encode('assistant\n')], false);
  return out;
}

/** The ids of a chat prompt: the conversation and the generation prompt `<|im_start|>assistant\n`. */
export function promptIds(tokenizer: BpeTokenizer, special: ChatTokenIds, messages: readonly ChatMessage[]): number[] {
  return renderConversation(tokenizer, special, messages, true).ids;
}

/** An example from a conversation, truncated to `maxSeqLength` tokens. */
export function buildExample(tokenizer: BpeTokenizer, special: ChatTokenIds, messages: ChatMessage[], maxSeqLength: number, line = 0): Example {
  const rendered = renderConversation(tokenizer, special, messages);
  const length = Math.min(rendered.ids.length, maxSeqLength);
  const ids = Int32Array.from(rendered.ids.slice(0, length));
  const labels = new Int32Array(length);
  let trainedTokens = 0;
  for (let i = 0; i < length; i++) {
    labels[i] = rendered.trained[i] ? ids[i] : IGNORE;
    if (i > 0 && rendered.trained[i]) trainedTokens++;
  }
  return { line, messages, ids, labels, trainedTokens, truncated: rendered.ids.length > maxSeqLength };
}

const ROLES = new Set(['system', 'user', 'assistant']);

/** The conversation of a parsed line, or why it is not one. */
export function parseConversation(value: unknown): ChatMessage[] | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const messages = (value as Record<string, unknown>).messages;
  if (!Array.isArray(messages) || messages.length === 0) return 'no "messages" array';
  const out: ChatMessage[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (typeof m !== 'object' || m === null) return `messages[${i}] is not an object`;
    const { role, content, weight } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role)) return `messages[${i}].role is not system, user or assistant`;
    if (typeof content !== 'string') return `messages[${i}].content is not a string`;
    if (weight !== undefined && typeof weight !== 'number') return `messages[${i}].weight is not a number`;
    out.push(weight === undefined ? { role, content } : { role, content, weight });
  }
  if (!out.some((m) => m.role === 'assistant')) return 'no assistant message';
  return out;
}

/** At most this many skipped lines are logged one by one; the rest are counted. */
const SKIP_LOG_LIMIT = 20;

/** Reads the conversations of a `.jsonl` file, skipping (with a log line) any line that is not one. */
export async function readConversations(path: string, log: EngineLog): Promise<{ line: number; messages: ChatMessage[] }[]> {
  const out: { line: number; messages: ChatMessage[] }[] = [];
  let skipped = 0;
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === '') continue;
      let why: string;
      try {
        const parsed = parseConversation(JSON.parse(text) as unknown);
        if (typeof parsed !== 'string') {
          out.push({ line, messages: parsed });
          continue;
        }
        why = parsed;
      } catch (e) {
        why = `not valid JSON (${oneLine(e)})`;
      }
      if (++skipped <= SKIP_LOG_LIMIT) log('warn', `${path}:${line}: skipped, ${why}`);
    }
  } catch (e) {
    throw new EngineError('invalid_dataset', `cannot read ${path}: ${oneLine(e)}`);
  }
  if (skipped > SKIP_LOG_LIMIT) log('warn', `${path}: ${skipped} lines skipped in all (not conversations)`, { skipped });
  return out;
}

/** The conversation that every checkpoint answers: the messages before the last assistant turn, and that turn. */
export interface SampleConversation {
  messages: ChatMessageInput[];
  reference: string;
}

/** The sample of a conversation: its prompt is everything before its last assistant message. */
export function sampleOf(messages: readonly ChatMessage[]): SampleConversation | null {
  let last = -1;
  for (let i = 0; i < messages.length; i++) if (messages[i].role === 'assistant') last = i;
  if (last < 0) return null;
  return {
    messages: messages.slice(0, last).map((m) => ({ role: m.role as ChatMessageInput['role'], content: m.content })),
    reference: messages[last].content,
  };
}

/** Everything the training loop needs to know about the data. */
export interface Dataset {
  train: Example[];
  eval: Example[];
  truncated: number;
  /** Sum of the training examples' lengths, and of their trained tokens. */
  tokensPerEpoch: number;
  trainedTokensPerEpoch: number;
  sample: SampleConversation | null;
}

/** What {@link loadDataset} needs. */
export interface DatasetOptions {
  trainingFile: string;
  validationFile: string | null;
  evalRatio: number;
  seed: number;
  maxSeqLength: number;
  tokenizer: BpeTokenizer;
  special: ChatTokenIds;
}

async function examplesOf(path: string, o: DatasetOptions, log: EngineLog): Promise<{ examples: Example[]; truncated: number }> {
  const examples: Example[] = [];
  let truncated = 0;
  let untrained = 0;
  for (const c of await readConversations(path, log)) {
    const example = buildExample(o.tokenizer, o.special, c.messages, o.maxSeqLength, c.line);
    if (example.trainedTokens === 0) {
      const why = example.truncated ? `after truncation to max_seq_length ${o.maxSeqLength}` : 'every assistant message has weight 0';
      if (++untrained <= SKIP_LOG_LIMIT) log('warn', `${path}:${c.line}: skipped, no token to train on (${why})`);
      continue;
    }
    if (example.truncated) truncated++;
    examples.push(example);
  }
  if (untrained > SKIP_LOG_LIMIT) log('warn', `${path}: ${untrained} examples skipped in all (no token to train on)`, { skipped: untrained });
  return { examples, truncated };
}

/**
 * Reads and renders the training (and validation) file. Without a validation file, `evalRatio` of the training
 * examples (chosen with the seed, at least one when the ratio is above 0 and two examples exist) are held out.
 * @throws EngineError `invalid_dataset` when no example has a token to train on
 */
export async function loadDataset(o: DatasetOptions, log: EngineLog): Promise<Dataset> {
  const main = await examplesOf(o.trainingFile, o, log);
  if (main.examples.length === 0) {
    throw new EngineError('invalid_dataset', `${o.trainingFile} has no example with an assistant token to train on`);
  }
  let train = main.examples;
  let evalSet: Example[] = [];
  let truncated = main.truncated;
  if (o.validationFile !== null) {
    const valid = await examplesOf(o.validationFile, o, log);
    evalSet = valid.examples;
    truncated += valid.truncated;
  } else if (o.evalRatio > 0 && train.length >= 2) {
    const count = Math.min(train.length - 1, Math.max(1, Math.round(train.length * o.evalRatio)));
    const held = new Set(permutation(train.length, o.seed).slice(0, count));
    evalSet = train.filter((_, i) => held.has(i));
    train = train.filter((_, i) => !held.has(i));
  }
  if (truncated > 0) {
    log('warn', `${truncated} example(s) longer than max_seq_length ${o.maxSeqLength} tokens were truncated`, { truncated });
  }
  let tokensPerEpoch = 0;
  let trainedTokensPerEpoch = 0;
  for (const e of train) {
    tokensPerEpoch += e.ids.length;
    trainedTokensPerEpoch += e.trainedTokens;
  }
  const source = evalSet[0] ?? train[0];
  return { train, eval: evalSet, truncated, tokensPerEpoch, trainedTokensPerEpoch, sample: sampleOf(source.messages) };
}
