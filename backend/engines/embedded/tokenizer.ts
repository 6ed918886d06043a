// The tokenizer of a model folder (its Hugging Face tokenizer.json, built with common/tokenizer/bpe.ts) and the
// byte-level tokenizer of the built-in tiny models, written in the same file format so that the engines, the
// Hugging Face tokenizers and transformers all read a tiny model folder the same way.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { type BpeTokenizer, TokenizerError } from '../../../common/tokenizer/bpe';
import { tokenizerFromFile } from '../../../common/tokenizer/file';
import { QWEN_DEFAULT_SYSTEM_PROMPT } from '../../../common/tokenizer/chat';
import { TINY_SPECIAL_IDS } from './catalog';
import { EngineError, oneLine } from './errors';

const gunzipAsync = promisify(gunzip);

/** The special tokens that the chat template and generation need, with the ids this tokenizer gives them. */
export interface ChatTokenIds {
  imStart: number;
  imEnd: number;
  /** `<|endoftext|>` when the tokenizer has it (generation also stops on it). */
  endOfText: number | undefined;
}

/** A model's tokenizer together with the ids of its chat tokens. */
export interface ModelTokenizer {
  tokenizer: BpeTokenizer;
  special: ChatTokenIds;
}

/**
 * The chat token ids of a tokenizer, read from its special tokens (never assumed per model).
 * @throws EngineError `model_unavailable` when `<|im_start|>` or `<|im_end|>` is missing
 */
export function chatTokenIds(tokenizer: BpeTokenizer): ChatTokenIds {
  const ids = tokenizer.specialTokenIds;
  const imStart = ids.get('<|im_start|>');
  const imEnd = ids.get('<|im_end|>');
  if (imStart === undefined || imEnd === undefined) {
    throw new EngineError('model_unavailable', 'the tokenizer has no <|im_start|>/<|im_end|> special tokens: not a Qwen2.5 chat tokenizer');
  }
  return { imStart, imEnd, endOfText: ids.get('<|endoftext|>') };
}

/**
 * Reads `{folder}/tokenizer.json` (plain or gzipped).
 * @throws EngineError `model_unavailable` when it is missing, malformed or of a kind the BPE tokenizer refuses
 */
export async function loadTokenizer(folder: string): Promise<ModelTokenizer> {
  const path = join(folder, 'tokenizer.json');
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (e) {
    throw new EngineError('model_unavailable', `cannot read ${path}: ${oneLine(e)}`);
  }
  try {
    const tokenizer = await tokenizerFromFile(raw, gunzipAsync);
    return { tokenizer, special: chatTokenIds(tokenizer) };
  } catch (e) {
    if (EngineError.is(e)) throw e;
    const why = TokenizerError.is(e) ? e.message : `not valid JSON (${oneLine(e)})`;
    throw new EngineError('model_unavailable', `${path}: ${why}`);
  }
}

/** GPT-2's printable stand-in character of every byte: the vocabulary's spelling of the 256 one-byte tokens. */
function byteLevelAlphabet(): string[] {
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : 256 + extra++));
  }
  return chars;
}

/** The tiny models' special tokens in id order, as `added_tokens` lists them. */
const TINY_ADDED = [
  { id: TINY_SPECIAL_IDS.endOfText, content: '<|endoftext|>' },
  { id: TINY_SPECIAL_IDS.imStart, content: '<|im_start|>' },
  { id: TINY_SPECIAL_IDS.imEnd, content: '<|im_end|>' },
];

/** Qwen2's pre-tokenizer split pattern (kept identical, so that the BPE tokenizer's fast scanner applies). */
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * The tiny models' tokenizer.json: byte-level BPE with the 256 byte tokens as ids 0–255 (GPT-2's byte-to-unicode
 * spelling), no merges, and Qwen2.5's three chat tokens as special added tokens 256–258. No normaliser (Qwen
 * has NFC), so every text round-trips byte for byte; otherwise the structure is Qwen2.5's file.
 */
export function tinyTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((ch, id) => (vocab[ch] = id));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: TINY_ADDED.map((t) => ({ ...t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false }, byteLevel],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** The Qwen2.5 chat template without tool calls (what the engines render), as a Jinja string for transformers. */
const CHAT_TEMPLATE =
  "{%- if not messages or messages[0]['role'] != 'system' %}" +
  `{{- '<|im_start|>system\\n${QWEN_DEFAULT_SYSTEM_PROMPT}<|im_end|>\\n' }}` +
  '{%- endif %}' +
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** The tiny models' tokenizer_config.json: what transformers' AutoTokenizer reads next to tokenizer.json. */
export function tinyTokenizerConfig(maxLength: number): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  for (const t of TINY_ADDED) {
    decoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: maxLength,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

/**
 * The bytes each token id stands for (the vocabulary's byte-level spelling mapped back, added tokens as UTF-8),
 * cached: generation streams text with a streaming UTF-8 decoder over them, so that a character split across
 * tokens is held back until it is complete.
 */
export class TokenBytes {
  private readonly cache = new Map<number, Uint8Array>();
  private readonly charToByte = new Map<string, number>();
  private readonly added = new Map<number, string>();

  constructor(private readonly tokenizer: BpeTokenizer) {
    byteLevelAlphabet().forEach((ch, b) => this.charToByte.set(ch, b));
    for (const t of tokenizer.addedTokens) this.added.set(t.id, t.content);
  }

  /** The bytes of token `id`. @throws RangeError outside the vocabulary */
  of(id: number): Uint8Array {
    let bytes = this.cache.get(id);
    if (bytes) return bytes;
    const added = this.added.get(id);
    if (added !== undefined) {
      bytes = Buffer.from(added, 'utf8');
    } else {
      const token = this.tokenizer.idToTokenString(id);
      if (token === undefined) throw new RangeError(`token id ${id} is not in the vocabulary`);
      bytes = new Uint8Array(token.length);
      for (let i = 0; i < token.length; i++) bytes[i] = this.charToByte.get(token[i]) ?? 0x3f;
    }
    this.cache.set(id, bytes);
    return bytes;
  }
}
