// Seeded generator of chat datasets for the benchmarks and the tests: mixed Chinese and English conversations
// of 1–6 turns, with and without a system prompt, of varied lengths, some with code, and a small share of
// lines carrying one mistake of a kind from the rules table (issue 2). The same seed gives the same bytes on
// every machine, so figures and finding counts are comparable between runs.
import { createWriteStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FINDING_CODES, type FindingCode } from '../common/dataset/codes';

/** A seeded PRNG (mulberry32): 32 bits of state, fast, and good enough for test data. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;

const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)];
const between = (rand: Rand, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

const ZH = (
  '模型 训练 数据 样本 损失 梯度 学习率 批量 检查点 推理 部署 评估 指标 准确率 对话 助手 用户 问题 回答 解释 ' +
  '我们 你们 他们 这个 那个 已经 可以 需要 应该 如果 因为 所以 但是 然后 现在 今天 明天 时候 地方 方法 ' +
  '北京 上海 深圳 杭州 天气 旅行 城市 文化 历史 经济 科技 教育 医疗 健康 运动 音乐 电影 书籍 朋友 家庭 ' +
  '简单 复杂 重要 有趣 清楚 具体 详细 快速 稳定 安全 的 了 是 在 和 也 都 就 还 很 把 被 让 给 从 向'
).split(' ');
const ZH_END = ['，', '，', '。', '。', '？', '！', '；', '：'];
const EN = (
  'the a of and to in is that it for you with on as have be at this are not but from or by one all ' +
  'there we can an your which their if will each about how up out them then many some so these would ' +
  'model training data sample loss gradient learning rate batch checkpoint inference deploy evaluate ' +
  'metric accuracy conversation assistant user question answer explain function value return string ' +
  'number list file memory adapter token Python TypeScript Qwen LoRA GPU please thanks sure example'
).split(' ');
const EN_END = ['.', '.', '.', '?', '!', ',', ':'];
const CODE = [
  'def train(model, batches, lr=2e-4):',
  '    for step, batch in enumerate(batches):',
  '        loss = model(**batch).loss',
  '        loss.backward(); optimizer.step()',
  'const total = items.reduce((sum, item) => sum + item.count, 0);',
  'if (value !== undefined && value.length > 0) { return value[0]; }',
  '\tprintf("%s\\n", name);',
  'SELECT role, COUNT(*) AS n FROM messages GROUP BY role;',
  'print(f"第{epoch}轮 loss={loss:.4f}")',
];
const EMOJI = ['🙂', '😀', '👍', '🚀', '✅', '🤔'];
const SYSTEM = [
  'You are a helpful assistant.',
  'You are a concise technical assistant. Answer in the language of the question.',
  '你是一个乐于助人的助手。',
  '你是一名资深的机器学习工程师，请用简洁的中文回答。',
];

function zhSentence(rand: Rand): string {
  let s = '';
  for (let i = between(rand, 3, 18); i > 0; i--) {
    s += pick(rand, ZH);
    if (rand() < 0.05) s += String(between(rand, 1, 2025));
    if (rand() < 0.03) s += pick(rand, ['GPU', 'LoRA', 'Qwen', 'API']);
  }
  return s + pick(rand, ZH_END);
}

function enSentence(rand: Rand): string {
  const words: string[] = [];
  for (let i = between(rand, 3, 16); i > 0; i--) words.push(rand() < 0.03 ? String(between(rand, 0, 99999)) : pick(rand, EN));
  words[0] = words[0][0].toUpperCase() + words[0].slice(1);
  return words.join(' ') + pick(rand, EN_END);
}

/** One message's text; `scale` stretches it (assistant replies run longer than questions). */
function text(rand: Rand, scale: number): string {
  const zhShare = pick(rand, [0, 0.5, 1, 1]);
  const parts: string[] = [];
  const paragraphs = Math.max(1, Math.round(between(rand, 1, 3) * scale * (rand() < 0.05 ? 6 : 1)));
  for (let p = 0; p < paragraphs; p++) {
    let para = '';
    for (let i = between(rand, 1, 4); i > 0; i--) para += rand() < zhShare ? zhSentence(rand) : (para ? ' ' : '') + enSentence(rand);
    if (rand() < 0.03) para += ' ' + pick(rand, EMOJI);
    parts.push(para);
    if (scale > 1 && rand() < 0.12) {
      const code: string[] = [];
      for (let i = between(rand, 2, 6); i > 0; i--) code.push(pick(rand, CODE));
      parts.push('```\n' + code.join('\n') + '\n```');
    }
  }
  return parts.join('\n\n');
}

interface Message {
  role: string;
  content: unknown;
  weight?: unknown;
  [key: string]: unknown;
}

function conversation(rand: Rand): Message[] {
  const messages: Message[] = [];
  // A third of the conversations are short exchanges, so that line lengths vary as in real datasets.
  const scale = rand() < 0.33 ? 0.3 : 1;
  if (rand() < 0.4) messages.push({ role: 'system', content: pick(rand, SYSTEM) });
  for (let turns = between(rand, 1, 6); turns > 0; turns--) {
    messages.push({ role: 'user', content: text(rand, 0.6 * scale) });
    const reply: Message = { role: 'assistant', content: text(rand, 1.6 * scale) };
    if (rand() < 0.03) reply.weight = turns === 1 ? 1 : 0;
    messages.push(reply);
  }
  return messages;
}

/** The mistakes the generator makes, one per broken line: every finding code but those no single line can show. */
type Mistake = Exclude<FindingCode, 'too-long' | 'file-empty'>;
export const MISTAKES: readonly Mistake[] = FINDING_CODES.filter((code): code is Mistake => code !== 'too-long' && code !== 'file-empty');

/** Breaks a good conversation in the way named, returning the line's text. */
function broken(rand: Rand, kind: Mistake, messages: Message[], earlier: readonly string[]): string {
  const userAt = messages.findIndex((m) => m.role === 'user');
  switch (kind) {
    case 'json-syntax': {
      const line = JSON.stringify({ messages });
      const how = between(rand, 0, 3);
      if (how === 0) return line.slice(0, 1 + Math.floor((line.length - 2) * rand())); // truncated
      if (how === 1) return line.replace('"role"', 'role'); // unquoted key
      if (how === 2) return line.slice(0, -2) + ',]}'; // trailing comma
      return line.replace('"content":"', '"content":"\t'); // raw tab inside a string
    }
    case 'not-object':
      return JSON.stringify(pick(rand, [messages, 'messages', 42, null]));
    case 'messages-missing':
      return rand() < 0.5 ? JSON.stringify({ conversation: messages }) : JSON.stringify({ messages: text(rand, 0.5) });
    case 'messages-empty':
      return JSON.stringify({ messages: [] });
    case 'message-invalid': {
      const how = between(rand, 0, 2);
      if (how === 0) delete (messages[userAt] as Partial<Message>).content;
      else if (how === 1) messages[userAt].content = between(rand, 0, 9);
      else return JSON.stringify({ messages: [...messages, text(rand, 0.3)] });
      return JSON.stringify({ messages });
    }
    case 'role-unknown':
      messages[userAt].role = pick(rand, ['human', 'bot', 'User', 'gpt']);
      return JSON.stringify({ messages });
    case 'weight-invalid':
      if (rand() < 0.5) messages[userAt].weight = 1;
      else messages[messages.length - 1].weight = pick(rand, [2, 0.5, '1', true]);
      return JSON.stringify({ messages });
    case 'system-not-first':
      messages.splice(userAt + 1, 0, { role: 'system', content: pick(rand, SYSTEM) });
      return JSON.stringify({ messages });
    case 'no-pair':
      return JSON.stringify({ messages: messages.filter((m) => m.role !== 'assistant').slice(0, userAt + 1) });
    case 'role-order':
      if (rand() < 0.5) messages.push({ role: 'user', content: text(rand, 0.6) });
      else messages.splice(userAt, 0, { role: 'assistant', content: text(rand, 0.6) });
      return JSON.stringify({ messages });
    case 'content-empty':
      messages[messages.length - 1].content = pick(rand, ['', ' ', '\n', '　']);
      return JSON.stringify({ messages });
    case 'key-unknown':
      if (rand() < 0.5) return JSON.stringify({ id: `ex-${between(rand, 1, 1e6)}`, messages });
      messages[messages.length - 1].tool_calls = [];
      return JSON.stringify({ messages });
    case 'line-blank':
      return pick(rand, ['', ' ', '\t']);
    case 'duplicate':
      return earlier.length > 0 ? pick(rand, earlier) : JSON.stringify({ messages });
  }
}

/** Options of the generator. */
export interface GenerateOptions {
  /** Share of lines with one mistake (default 0.02). */
  mistakes?: number;
  /** Share of lines ended with CRLF rather than LF (default 0.01). */
  crlf?: number;
}

/**
 * An endless seeded sequence of dataset lines (without line ends). Each call of the returned function gives
 * the next line; the same seed and options give the same lines.
 */
export function lineSource(seed: number, options: GenerateOptions = {}): () => string {
  const rand = seeded(seed);
  const share = options.mistakes ?? 0.02;
  // Recent good lines, for exact copies: a ring, so that memory stays small on big files.
  const recent: string[] = [];
  let next = 0;
  return () => {
    const messages = conversation(rand);
    if (rand() < share) return broken(rand, pick(rand, MISTAKES), messages, recent);
    const line = JSON.stringify({ messages });
    if (recent.length < 64) recent.push(line);
    else if (rand() < 0.01) recent[next++ % 64] = line;
    return line;
  };
}

/** `count` seeded lines joined into one file text, each ended with LF (or CRLF, see options). */
export function generateText(seed: number, count: number, options: GenerateOptions = {}): string {
  const next = lineSource(seed, options);
  const rand = seeded(seed ^ 0x5bd1e995);
  const crlf = options.crlf ?? 0.01;
  let out = '';
  for (let i = 0; i < count; i++) out += next() + (rand() < crlf ? '\r\n' : '\n');
  return out;
}

/**
 * Writes a seeded dataset of at least `bytes` bytes (whole lines) to `path`, unless the file is already there
 * from the same seed, size and generator version (recorded in `path + '.json'`). Returns whether it wrote.
 */
export async function ensureDataset(path: string, seed: number, bytes: number, options: GenerateOptions = {}): Promise<boolean> {
  const meta = JSON.stringify({ generator: 1, seed, bytes, options });
  const metaPath = path + '.json';
  if (existsSync(path) && existsSync(metaPath) && readFileSync(metaPath, 'utf8') === meta && statSync(path).size >= bytes) return false;
  await mkdir(dirname(path), { recursive: true });
  const partial = path + '.partial';
  const out = createWriteStream(partial);
  const next = lineSource(seed, options);
  const rand = seeded(seed ^ 0x5bd1e995);
  const crlf = options.crlf ?? 0.01;
  let written = 0;
  let batch = '';
  while (written < bytes) {
    const line = next() + (rand() < crlf ? '\r\n' : '\n');
    batch += line;
    written += Buffer.byteLength(line);
    if (batch.length > 1 << 20 || written >= bytes) {
      if (!out.write(batch)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      batch = '';
    }
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  await rename(partial, path);
  writeFileSync(metaPath, meta);
  return true;
}
