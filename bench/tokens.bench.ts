// Token-counting throughput: our BpeTokenizer against @huggingface/tokenizers (the reference, pure JS) on the
// same seeded mixed Chinese/English conversation text, with a check that every count is identical.
//
//   node --import tsx bench/tokens.bench.ts [megabytes]      (default 5)
//
// `benchTokens` is also called from the dataset benchmark, so importing this file does nothing by itself.
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from '@huggingface/tokenizers';
import { defaultTokenizerPath, readTokenizerFile } from '../server/tokenizerFile';
import { seeded } from './generate';

/** What {@link benchTokens} measures on. */
export interface TokenBenchOptions {
  /** Size of the generated corpus, MB (10^6 bytes) of UTF-8; default 5. */
  megabytes?: number;
  /** Seed of the corpus; default 1234. */
  seed?: number;
  /** Also time the reference and compare counts (slow: about 0.3 MB/s); default true. */
  reference?: boolean;
}

/** The figures of one run of {@link benchTokens}. Throughputs are MB (10^6 bytes) of UTF-8 per second. */
export interface TokenBenchResult {
  /** UTF-8 size of the text counted, in bytes. */
  bytes: number;
  /** Number of texts (messages) counted. */
  texts: number;
  /** Total tokens, by our tokenizer. */
  tokens: number;
  /** Ours, one pass from an empty piece cache (like for like with the reference, whose cache is empty too). */
  oursMBps: number;
  /** Ours, a second pass over the same text (the cache holds its pieces): a language server re-checking. */
  oursWarmMBps: number;
  /** The reference, @huggingface/tokenizers, one pass; NaN when not measured. */
  hfMBps: number;
  /** oursMBps / hfMBps; NaN when the reference was not measured. */
  ratio: number;
  /** Whether every text got the same count from both (true when the reference was not measured). */
  identical: boolean;
  /** Texts whose counts differ. */
  mismatches: number;
  /** Milliseconds to read, gunzip, parse and build our tokenizer from media/ (a fresh load, JIT warm). */
  loadMs: number;
}

// Common Chinese words; sentences draw them at random, so runs of Chinese (one pre-token each up to the next
// punctuation) are mostly unique, as in real text, and exercise the merge loop rather than the cache.
const zhWords = (
  '我们 今天 讨论 一下 机器 学习 模型 训练 方法 这个 问题 非常 重要 数据 集合 如何 使用 可以 需要 因为 所以 但是 ' +
  '如果 已经 开始 结果 分析 系统 用户 时间 问题 工作 公司 中国 北京 上海 发展 经济 社会 文化 教育 技术 科学 研究 ' +
  '生活 世界 国家 人民 政府 市场 企业 产品 服务 信息 网络 电脑 手机 软件 程序 代码 函数 变量 参数 损失 梯度 优化 ' +
  '学习率 批次 样本 标签 准确 评估 验证 测试 部署 推理 生成 回答 助手 对话 翻译 总结 写作 朋友 家人 孩子 老师 学生 ' +
  '学校 医院 城市 天气 今天 明天 昨天 早上 晚上 喜欢 觉得 知道 看到 听说 告诉 帮助 解决 提供 包括 进行 通过 根据 ' +
  '关于 对于 一些 很多 所有 每个 其他 自己 什么 怎么 为什么 哪里 简单 复杂 容易 困难 快速 缓慢 安全 稳定 的 了 是 在 和 也 都 就 还 很'
).split(' ');
const zhPunct = ['，', '，', '，', '。', '。', '？', '！', '：', '；', '、'];
const enWords = (
  'the of and to in is that it for you was with on as have be at this are not but from or by one had all ' +
  'there we can an your which their if will each about how up out them then she many some so these would ' +
  'other into has more her two like him see time could no make than first been its who now people my made ' +
  'model training dataset token learning rate batch loss gradient optimizer checkpoint adapter inference ' +
  'assistant user system message answer question explain example function value return string number ' +
  'Python JavaScript TypeScript Qwen LoRA GPU memory epoch evaluation accuracy Hello Thanks Please Sure'
).split(' ');
const enPunct = [',', ',', '.', '.', '?', '!', ':', ';', ' -', '...'];
const codeLines = [
  'def train(model, data, lr=1e-4):',
  '    for step, batch in enumerate(data):',
  '        loss = model(**batch).loss',
  '        loss.backward()',
  'const total = items.reduce((a, b) => a + b.count, 0);',
  'if (x !== undefined && x.length > 0) { return x[0]; }',
  '\tprintf("%d\\n", n);',
  'SELECT name, COUNT(*) FROM users GROUP BY name;',
];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)];
}

function chineseSentence(rand: () => number): string {
  let s = '';
  const n = 4 + Math.floor(rand() * 20);
  for (let i = 0; i < n; i++) {
    s += pick(rand, zhWords);
    if (rand() < 0.08) s += String(Math.floor(rand() * 2000));
    if (rand() < 0.04) s += pick(rand, ['GPU', 'Qwen', 'LoRA', 'API', 'Python']);
  }
  return s + pick(rand, zhPunct);
}

function englishSentence(rand: () => number): string {
  const n = 4 + Math.floor(rand() * 18);
  const words: string[] = [];
  for (let i = 0; i < n; i++) {
    let w = pick(rand, enWords);
    if (i === 0) w = w[0].toUpperCase() + w.slice(1);
    if (rand() < 0.03) w += pick(rand, ["'s", "'ll", "'re", "'ve", "'t"]);
    if (rand() < 0.04) w = String(Math.floor(rand() * 100000));
    words.push(w);
  }
  return words.join(' ') + pick(rand, enPunct);
}

/** One message's content: paragraphs of Chinese, English or both, now and then a code block or a list. */
export function generateMessage(rand: () => number): string {
  const parts: string[] = [];
  const paragraphs = 1 + Math.floor(rand() * 4);
  const mix = rand();
  for (let p = 0; p < paragraphs; p++) {
    let para = '';
    const sentences = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < sentences; i++) {
      const zh = mix < 0.4 ? true : mix < 0.7 ? false : rand() < 0.5;
      para += zh ? chineseSentence(rand) : (para ? ' ' : '') + englishSentence(rand);
    }
    parts.push(para);
    const r = rand();
    if (r < 0.1) {
      const lines: string[] = [];
      for (let i = 0, n = 2 + Math.floor(rand() * 5); i < n; i++) lines.push(pick(rand, codeLines));
      parts.push('```python\n' + lines.join('\n') + '\n```');
    } else if (r < 0.18) {
      parts.push([1, 2, 3].map((i) => `${i}. ${englishSentence(rand)}`).join('\n'));
    } else if (r < 0.22) {
      parts.push('- ' + chineseSentence(rand) + '\n- ' + chineseSentence(rand) + ' 🙂');
    }
  }
  return parts.join(rand() < 0.9 ? '\n\n' : '\r\n');
}

/** Seeded message contents whose UTF-8 size adds up to at least `bytes`. */
export function generateCorpus(seed: number, bytes: number): string[] {
  const rand = seeded(seed);
  const texts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const t = generateMessage(rand);
    texts.push(t);
    size += Buffer.byteLength(t, 'utf8');
  }
  return texts;
}

function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/**
 * Counts the same seeded corpus (about `megabytes` MB of UTF-8 conversation text) with our tokenizer and with the
 * reference, and returns both throughputs and whether all counts agree. Both sides first run a separate
 * warm-up corpus on a separate instance, so that the JIT is warm and the timed instances' caches are empty.
 */
export async function benchTokens(options: TokenBenchOptions = {}): Promise<TokenBenchResult> {
  const { megabytes = 5, seed = 1234, reference = true } = options;
  const texts = generateCorpus(seed, megabytes * 1e6);
  const warmup = generateCorpus(seed + 1, 0.3e6);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const path = defaultTokenizerPath();

  const oursWarm = await readTokenizerFile(path);
  for (const t of warmup) oursWarm.count(t);
  let start = performance.now();
  const ours = await readTokenizerFile(path);
  const loadMs = performance.now() - start;

  const oursCounts = new Int32Array(texts.length);
  start = performance.now();
  for (let i = 0; i < texts.length; i++) oursCounts[i] = ours.count(texts[i]);
  const oursMs = performance.now() - start;
  start = performance.now();
  for (let i = 0; i < texts.length; i++) ours.count(texts[i]);
  const warmMs = performance.now() - start;
  const tokens = oursCounts.reduce((a, b) => a + b, 0);

  let hfMBps = NaN;
  let mismatches = 0;
  if (reference) {
    const json = JSON.parse(gunzipSync(await readFile(path)).toString('utf8')) as object;
    const config = { clean_up_tokenization_spaces: false };
    const hfWarm = new Tokenizer(json, config);
    for (const t of warmup) hfWarm.encode(t);
    const hf = new Tokenizer(json, config);
    const hfCounts = new Int32Array(texts.length);
    start = performance.now();
    for (let i = 0; i < texts.length; i++) hfCounts[i] = hf.encode(texts[i]).ids.length;
    hfMBps = mbps(bytes, performance.now() - start);
    for (let i = 0; i < texts.length; i++) if (oursCounts[i] !== hfCounts[i]) mismatches++;
  }
  const oursMBps = mbps(bytes, oursMs);
  return {
    bytes,
    texts: texts.length,
    tokens,
    oursMBps,
    oursWarmMBps: mbps(bytes, warmMs),
    hfMBps,
    ratio: oursMBps / hfMBps,
    identical: mismatches === 0,
    mismatches,
    loadMs,
  };
}

// Run directly (not when imported, nor when bundled into another benchmark, where require.main would match).
if (/tokens\.bench\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  const megabytes = Number(process.argv[2] ?? 5);
  void benchTokens({ megabytes }).then((r) => {
    console.log(`corpus: ${(r.bytes / 1e6).toFixed(1)} MB UTF-8 (mixed Chinese/English chat), ${r.texts} messages, ${r.tokens} tokens`);
    console.log(`ours:   ${r.oursMBps.toFixed(1)} MB/s (one pass, empty cache); ${r.oursWarmMBps.toFixed(1)} MB/s (second pass, warm cache)`);
    console.log(`hf:     ${r.hfMBps.toFixed(2)} MB/s (@huggingface/tokenizers, one pass)`);
    console.log(`ratio:  ${r.ratio.toFixed(1)}× (one pass each); ${(r.oursWarmMBps / r.hfMBps).toFixed(1)}× with our cache warm`);
    console.log(`counts: ${r.identical ? 'identical' : `${r.mismatches} of ${r.texts} texts differ`}`);
    console.log(`load:   ${r.loadMs.toFixed(0)} ms (read + gunzip + parse + build)`);
  });
}
