// The Qwen2.5 tokenizer (common/tokenizer) against the reference, @huggingface/tokenizers, loaded from the same
// media/qwen2.5-tokenizer.json.gz: ids, counts, decoding, chat-template counts, the cache and the loader.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from '@huggingface/tokenizers';
import { seeded } from '../bench/generate';
import { generateMessage } from '../bench/tokens.bench';
import { BpeTokenizer, TokenizerError } from '../common/tokenizer/bpe';
import {
  QWEN_DEFAULT_SYSTEM_PROMPT,
  QWEN_DEFAULT_SYSTEM_PROMPT_TOKENS,
  QWEN_SPECIAL_IDS,
  countConversation,
  renderConversation,
  type ChatMessage,
} from '../common/tokenizer/chat';
import { defaultTokenizerPath, loadQwenTokenizer, readTokenizerFile } from '../server/tokenizerFile';

const file = defaultTokenizerPath();
const json = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as Record<string, unknown>;
const ours = new BpeTokenizer(json);
// Qwen's tokenizer_config.json turns the clean-up of spaces off; the reference defaults it on.
const hf = new Tokenizer(json, { clean_up_tokenization_spaces: false });
// The reference is slow (about 0.3 MB/s); several tests compare the same texts, so its answers are kept.
const hfMemo = new Map<string, number[]>();
const hfIds = (text: string): number[] => {
  const known = hfMemo.get(text);
  if (known) return known;
  const ids = hf.encode(text).ids;
  hfMemo.set(text, ids);
  return ids;
};

// Fragments chosen for the places where a tokenizer can go wrong; the corpus strings are random sequences of
// them, so that they also meet each other in every order.
const fragments = [
  // letters of several scripts, including ones NFC changes (decomposed é, Hangul jamo, Devanagari marks)
  'hello', 'World', ' the', 'naïve', 'cafe\u0301', 'Ελληνικά', 'русский', 'العربية', 'हिन्दी', 'ไทย',
  '\u1100\u1161\u11a8', '한국어', '日本語です', 'カタカナ', '我们今天讨论一下', '中文，标点。', '「引号」',
  // contractions in every case, and near misses
  "'s", "'S", "'t", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll", "'d", "'D", "'x",
  "it's", "IT'S", "we'll", "They'RE", '’s', "''", "'", "'ſ",
  // numbers: each \p{N} is its own piece
  '0', '42', '3.14159', '1,000,000', '0x1F', '١٢٣', '１２３', '²', 'Ⅻ', '½', '𝟘𝟙',
  // whitespace of every kind: runs, CRLF, lone CR, Unicode spaces, and look-alikes that are not spaces
  ' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\r\n', '\r', '\r\n\r\n', ' \n ', '\u00a0', '\u3000', '\u2028',
  '\u2029', '\u0085', '\u000b', '\u000c', '\u1680', '\u2003', '\ufeff', '\u200b', '\u200d',
  // punctuation, symbols, code
  '.', ',', '!?', '...', '—', '-', '--', '==', '=>', '()', '{', '}', '[0]', '#', '@user', '$x', '%', '&&', '||',
  '/*', '*/', '//', '\\', '"', '`', '~', '^', '<', '>', '<|', '|>', '<|im_', 'def f(x):', '    return x**2',
  'const a = [1, 2, 3];', '\x00', '\x1b[0m', '\x7f', '\ufffd', '\uffff',
  // emoji and astral characters: pairs, ZWJ sequences, flags, variation selectors, astral letters
  '😀', '👍🏽', '👨‍👩‍👧', '🇨🇳', '❤️', '𝐀𝐁𝐂', '𠀀𠀁', '𐌰𐌱', '\u{10ffff}',
  // lone and reversed surrogates
  '\ud800', '\udfff', '\udc00\ud800', 'a\ud83d', '\ude00b',
  // added tokens, special and not, literal in text; Qwen3-only ones are plain text for Qwen2.5
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<tool_call>', '</tool_call>', '<|fim_prefix|>', '<think>',
  '</tool_response>', '<|im_end|', '<<|im_end|>>',
];

function randomText(rand: () => number): string {
  let s = '';
  const n = 1 + Math.floor(rand() * 12);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.08) s += generateMessage(rand).slice(0, 200);
    else if (r < 0.1) s += ' '.repeat(1 + Math.floor(rand() * 120));
    else s += fragments[Math.floor(rand() * fragments.length)];
  }
  return s;
}

function corpus(seed: number, count: number): string[] {
  const rand = seeded(seed);
  const texts: string[] = [];
  for (let i = 0; i < count; i++) texts.push(randomText(rand));
  // Long pieces take the heap path of the merge loop: runs of Chinese, spaces, symbols, letters, newlines.
  const chinese = '机器学习模型训练方法数据集合非常重要我们今天讨论一下这个问题的结果';
  texts.push(
    chinese.repeat(12),
    ' '.repeat(1000) + 'x',
    '='.repeat(500),
    'a'.repeat(700),
    '\n'.repeat(300),
    ' \t'.repeat(200) + '\n',
    '😀'.repeat(100),
    'Pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(5),
    'x𝐀𝐁𝐂',
    '1𝟘',
    '😀',
    '',
  );
  return texts;
}

const texts = corpus(20240601, 2500);
const chat = (() => {
  const rand = seeded(7);
  const messages: string[] = [];
  for (let i = 0; i < 400; i++) messages.push(generateMessage(rand));
  return messages;
})();

function firstMismatch(tok: BpeTokenizer, inputs: readonly string[]): string | undefined {
  for (const text of inputs) {
    const a = tok.encode(text);
    const b = hfIds(text);
    if (a.length !== b.length || a.some((id, i) => id !== b[i])) {
      return `${JSON.stringify(text)}\n ours ${JSON.stringify(a)}\n hf   ${JSON.stringify(b)}`;
    }
  }
  return undefined;
}

describe('BpeTokenizer on the Qwen2.5 file', () => {
  it('has Qwen2.5 vocabulary: 151,643 regular tokens, 22 added, none of the Qwen3-only ones', () => {
    assert.equal(ours.vocabSize, 151665);
    assert.equal(ours.addedTokens.length, 22);
    assert.equal(ours.specialTokenIds.get('<|im_start|>'), 151644);
    assert.equal(ours.specialTokenIds.get('<|im_end|>'), 151645);
    assert.equal(ours.specialTokenIds.get('<|endoftext|>'), 151643);
    assert.deepEqual(QWEN_SPECIAL_IDS, {
      endOfText: hf.token_to_id('<|endoftext|>'),
      imStart: hf.token_to_id('<|im_start|>'),
      imEnd: hf.token_to_id('<|im_end|>'),
    });
    assert.equal(ours.tokenToId('<think>'), undefined);
    assert.equal(ours.tokenToId('<tool_call>'), 151657);
    assert.equal(ours.tokenToId('Ġthe'), hf.token_to_id('Ġthe'));
    assert.equal(ours.tokenToId('constructor'), hf.token_to_id('constructor'));
    assert.equal(ours.tokenToId('toString'), hf.token_to_id('toString'));
    assert.equal(ours.idToTokenString(151645), '<|im_end|>');
  });

  it('gives the reference ids on the edge-case corpus', () => {
    assert.equal(firstMismatch(ours, texts), undefined);
  });

  it('gives the reference ids on generated Chinese/English conversation text', () => {
    assert.equal(firstMismatch(ours, chat), undefined);
  });

  it('gives the same ids when the pre-tokenizer runs through RegExp instead of the scanner', () => {
    const viaRegex = new BpeTokenizer(json, { preTokenizer: 'regex' });
    assert.equal(firstMismatch(viaRegex, texts), undefined);
    assert.equal(firstMismatch(viaRegex, chat.slice(0, 100)), undefined);
  });

  it('cuts the same pieces with the scanner as with the file\'s regex through RegExp', () => {
    const viaRegex = new BpeTokenizer(json, { preTokenizer: 'regex' });
    for (const text of [...texts, ...chat.slice(0, 100)]) {
      assert.deepEqual(ours.preTokenize(text), viaRegex.preTokenize(text), JSON.stringify(text));
    }
    assert.deepEqual(ours.preTokenize("Hi<|im_end|>\nit's  ok\n\n  x"), ['Hi', '\n', 'it', "'s", ' ', ' ok', '\n\n', ' ', ' x']);
  });

  it('matches the longest added token first, as the reference does', () => {
    const extra = [
      { id: 151665, content: '<a>', special: true, normalized: false },
      { id: 151666, content: '<a><b>', special: true, normalized: false },
      { id: 151667, content: '<a><', special: false, normalized: false },
    ];
    const patched = { ...json, added_tokens: [...(json.added_tokens as object[]), ...extra] };
    const mine = new BpeTokenizer(patched);
    const theirs = new Tokenizer(patched, { clean_up_tokenization_spaces: false });
    for (const text of ['<a><b>', '<a><a>', 'x<a><b><a>y', '<a><c>', '<a>']) {
      assert.deepEqual(mine.encode(text), theirs.encode(text).ids, text);
    }
    assert.deepEqual(mine.encode('<a><b>'), [151666]);
  });

  it('count equals the length of encode', () => {
    for (const text of [...texts, ...chat]) assert.equal(ours.count(text), ours.encode(text).length, text);
  });

  it('splits out literal special tokens, longest first', () => {
    const ids = ours.encode('a<|im_end|>b<|im_start|>user');
    assert.ok(ids.includes(151645) && ids.includes(151644));
    assert.deepEqual(ours.encode('<|im_end|>'), [151645]);
    assert.deepEqual(ours.encode('<|im_end|><|im_end|>'), [151645, 151645]);
    assert.ok(!ours.encode('<think>').includes(151667), 'Qwen3-only tokens are text in Qwen2.5');
    assert.deepEqual(ours.encode(''), []);
    assert.equal(ours.count(''), 0);
  });

  it('NFC-normalises before tokenizing, as the file says', () => {
    assert.deepEqual(ours.encode('cafe\u0301'), ours.encode('caf\u00e9'));
    assert.deepEqual(ours.encode('\u1100\u1161\u11a8'), ours.encode('\uac01'));
  });

  it('decodes what it encodes, and as the reference decodes any id list', () => {
    const rand = seeded(99);
    for (const text of [...texts, ...chat.slice(0, 50)]) {
      const ids = ours.encode(text);
      if (ids.length === 0) continue;
      const hasLoneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
      if (!hasLoneSurrogate) assert.equal(ours.decode(ids), text.normalize('NFC'));
      assert.equal(ours.decode(ids), hf.decode(ids));
      // A cut inside a character leaves invalid UTF-8, which both must replace in the same way.
      const from = Math.floor(rand() * ids.length);
      const slice = ids.slice(from, from + 1 + Math.floor(rand() * 5));
      assert.equal(ours.decode(slice), hf.decode(slice), JSON.stringify(slice));
    }
    // Random ids, one-byte tokens among them, make every kind of invalid UTF-8 (overlong, surrogate, truncated).
    for (let k = 0; k < 400; k++) {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 8) }, () =>
        rand() < 0.7 ? Math.floor(rand() * 256) : Math.floor(rand() * ours.vocabSize),
      );
      assert.equal(ours.decode(ids), hf.decode(ids), JSON.stringify(ids));
    }
    // Sequences that a decoder must replace byte by byte or as a whole, as TextDecoder does.
    const byteChar = (b: number): string => {
      const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      let extra = 0;
      for (let x = 0; x < b; x++) if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff))) extra++;
      return String.fromCharCode(printable ? b : 256 + extra);
    };
    const invalid = [
      [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80], [0xf0, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80],
      [0xc0, 0xaf], [0xc1, 0xbf], [0xc2], [0xe4, 0xb8], [0xff], [0x80, 0x41], [0xf0, 0x9f, 0x98], [0xf5, 0x80],
      [0xe4, 0x41, 0xb8, 0xad], [0xf0, 0x9f, 0x98, 0x80, 0xe4, 0xb8, 0xad], [0xef, 0xbb, 0xbf, 0x41],
    ];
    for (const bytes of invalid) {
      const ids = bytes.map((b) => ours.tokenToId(byteChar(b)) as number);
      const expected = new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
      assert.equal(ours.decode(ids), expected, JSON.stringify(bytes));
      assert.equal(ours.decode(ids), hf.decode(ids), JSON.stringify(bytes));
    }
    assert.equal(ours.decode([]), '');
    assert.throws(() => ours.decode([ours.vocabSize]), RangeError);
    assert.throws(() => ours.decode([-1]), RangeError);
  });

  it('keeps giving the reference ids when its cache evicts all the time', () => {
    const tiny = new BpeTokenizer(json, { cacheSize: 4 });
    assert.equal(firstMismatch(tiny, texts.slice(0, 600)), undefined);
    assert.ok(tiny.cachedPieces > 0 && tiny.cachedPieces <= 4, `cache holds ${tiny.cachedPieces} pieces`);
    // One slot: every piece evicts the one before, and repeats must still come out right.
    const single = new BpeTokenizer(json, { cacheSize: 1 });
    const words = ['alpha', ' beta', ' gamma', '你好', ' delta', '世界和平'];
    for (let round = 0; round < 3; round++) {
      for (const w of words) assert.deepEqual(single.encode(w), hfIds(w));
    }
    assert.equal(single.cachedPieces, 1);
    single.clearCache();
    assert.equal(single.cachedPieces, 0);
    assert.deepEqual(single.encode(words.join('')), hfIds(words.join('')));
  });

  it('tells apart two pieces whose cache hashes collide', () => {
    // FNV-1a over UTF-16 units, as the cache hashes pieces; find two words with the same hash.
    const fnv = (w: string): number => {
      let h = 0x811c9dc5;
      for (let p = 0; p < w.length; p++) h = Math.imul(h ^ w.charCodeAt(p), 0x01000193);
      return h | 1;
    };
    const rand = seeded(3);
    const byHash = new Map<number, string>();
    let pair: [string, string] | undefined;
    while (!pair) {
      let w = '';
      for (let k = 0; k < 6; k++) w += String.fromCharCode(97 + Math.floor(rand() * 26));
      const other = byHash.get(fnv(w));
      if (other !== undefined && other !== w) pair = [other, w];
      else byHash.set(fnv(w), w);
    }
    const tok = new BpeTokenizer(json, { cacheSize: 1024 });
    for (let round = 0; round < 2; round++) {
      for (const w of pair) assert.deepEqual(tok.encode(w), hfIds(w), w);
    }
  });

  it('refuses files it cannot reproduce exactly, with a reason', () => {
    const refuse = (patch: Record<string, unknown>, reason: string): void => {
      assert.throws(
        () => new BpeTokenizer({ ...json, ...patch }),
        (e: unknown) => TokenizerError.is(e) && e.reason === reason,
      );
    };
    refuse({ pre_tokenizer: { type: 'Metaspace', replacement: '▁' } }, 'unsupported');
    refuse({ normalizer: { type: 'NFKC' } }, 'unsupported');
    refuse({ model: { ...(json.model as object), type: 'WordPiece' } }, 'unsupported');
    refuse({ model: { ...(json.model as object), merges: [['no-such-token', 'x']] } }, 'format');
    refuse({ added_tokens: [{ id: 151643, content: '<x>', lstrip: true }] }, 'unsupported');
    assert.throws(() => new BpeTokenizer(null), (e: unknown) => TokenizerError.is(e) && e.reason === 'format');
  });

  it('runs a GPT-2 ByteLevel pre-tokenizer (use_regex) like the reference', () => {
    const gpt2 = { ...json, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true } };
    const mine = new BpeTokenizer(gpt2);
    const theirs = new Tokenizer(gpt2, { clean_up_tokenization_spaces: false });
    // The reference writes `\s` there as JavaScript's, which differs from Unicode White_Space (what the Rust
    // tokenizers use) on U+0085 and U+FEFF; leave those two out.
    for (const text of texts.slice(0, 400).filter((t) => !/[\u0085\ufeff]/.test(t))) {
      assert.deepEqual(mine.encode(text), theirs.encode(text).ids, JSON.stringify(text));
    }
  });
});

describe('countConversation', () => {
  const rand = seeded(31);
  const roles = ['system', 'user', 'assistant', 'tool', '用户', 'function_call:', 'x y'];
  const contents = [...chat.slice(0, 60), ...texts.slice(0, 60), '', '\n\nstarts with newlines', '  indented'];
  const conversations: ChatMessage[][] = [[]];
  for (let i = 0; i < 120; i++) {
    const messages: ChatMessage[] = [];
    const n = 1 + Math.floor(rand() * 6);
    for (let k = 0; k < n; k++) {
      const role = k === 0 && rand() < 0.4 ? 'system' : rand() < 0.1 ? roles[Math.floor(rand() * roles.length)] : k % 2 ? 'assistant' : 'user';
      const message: ChatMessage = { role, content: contents[Math.floor(rand() * contents.length)] };
      if (rand() < 0.2) message.weight = rand() < 0.5 ? 0 : 1;
      messages.push(message);
    }
    conversations.push(messages);
  }

  it('has the default system prompt worth 21 tokens', () => {
    const rendered = `<|im_start|>system\n${QWEN_DEFAULT_SYSTEM_PROMPT}<|im_end|>\n`;
    assert.equal(hfIds(rendered).length, QWEN_DEFAULT_SYSTEM_PROMPT_TOKENS);
    assert.deepEqual(countConversation(ours, []), { total: QWEN_DEFAULT_SYSTEM_PROMPT_TOKENS, trained: 0 });
  });

  it('total equals the reference count of the rendered template', () => {
    for (const messages of conversations) {
      assert.equal(countConversation(ours, messages).total, hfIds(renderConversation(messages)).length);
    }
  });

  it('total is Σ(4 + tokens("\\n" + content)) + 21 without a system message first, for the usual roles', () => {
    for (const messages of conversations) {
      if (messages.some((m) => !['system', 'user', 'assistant'].includes(m.role))) continue;
      let expected = messages[0]?.role === 'system' ? 0 : 21;
      for (const m of messages) expected += 4 + hfIds('\n' + m.content).length;
      assert.equal(countConversation(ours, messages).total, expected);
    }
  });

  it('trained counts the content, <|im_end|> and \\n of assistant messages whose weight is not 0', () => {
    for (const messages of conversations) {
      let expected = 0;
      for (const m of messages) {
        if (m.role === 'assistant' && m.weight !== 0) expected += hfIds(m.content + '<|im_end|>\n').length;
      }
      assert.equal(countConversation(ours, messages).trained, expected);
    }
    const weighted = countConversation(ours, [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'Hello there', weight: 0 },
      { role: 'user', content: 'again' },
      { role: 'assistant', content: '你好' },
    ]);
    assert.equal(weighted.trained, hfIds('你好').length + 2);
  });
});

describe('loadQwenTokenizer', () => {
  it('loads media/ once and shares the instance', async () => {
    const [a, b] = await Promise.all([loadQwenTokenizer(), loadQwenTokenizer()]);
    assert.equal(a, b);
    assert.equal(await loadQwenTokenizer(file), a);
    assert.deepEqual(a.encode('Hello, 世界!'), hfIds('Hello, 世界!'));
  });

  it('rejects a missing file, and tries again on the next call', async () => {
    const missing = join(tmpdir(), 'no-such-dir-finetune', 'tokenizer.json.gz');
    await assert.rejects(loadQwenTokenizer(missing), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    await assert.rejects(loadQwenTokenizer(missing), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  });

  it('reads a plain (not gzipped) tokenizer.json too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-tok-'));
    const plain = join(dir, 'tokenizer.json');
    writeFileSync(plain, JSON.stringify(json));
    try {
      const tok = await readTokenizerFile(plain);
      assert.deepEqual(tok.encode(chat[0]), hfIds(chat[0]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
