// A byte-level BPE tokenizer (the GPT-2 family: Qwen2.5, Llama 3, …) built from a Hugging Face tokenizer.json
// object. It gives the same ids as the Hugging Face tokenizers for the configurations it accepts, and refuses
// (with a TokenizerError) any configuration it cannot reproduce exactly, rather than count approximately.
//
// Pure TypeScript: no Node built-ins, no DOM, no TextEncoder/TextDecoder; it runs in any JS environment.
//
// Why it is fast (the language server counts every line of datasets of hundreds of megabytes):
// - the Qwen2 pre-tokenizer regex is recognised and run as a hand-written scanner over character classes,
//   which allocates nothing (other regexes run through RegExp);
// - pieces (most are words that repeat) are cached with their ids in a direct-mapped table keyed by a hash of
//   the piece's UTF-16 units: a hit needs no substring, and a single-id result is stored as a number;
// - merges are looked up by the pair of integer ids, never by string: byte pairs in a dense 256 KB table,
//   other pairs through a small cache of recent pairs and a bit filter (both stay in the CPU cache) before the
//   6 MB open-addressing table, whose lookups are cache misses;
// - the merge loop works on typed-array scratch buffers: a linear scan for the usual short piece, a binary
//   heap for long ones (a run of Chinese characters or of spaces is one piece and can be very long).

/** Why a tokenizer file was refused: malformed, or a feature this tokenizer does not reproduce exactly. */
export type TokenizerErrorReason = 'format' | 'unsupported';

/** Raised when a tokenizer.json cannot be used; `reason` says why without matching on message text. */
export class TokenizerError extends Error {
  /** What went wrong, for callers that react differently to a broken file and an unsupported one. */
  readonly reason: TokenizerErrorReason;

  constructor(reason: TokenizerErrorReason, message: string) {
    super(message);
    this.name = 'TokenizerError';
    this.reason = reason;
  }

  /** True when `e` is a TokenizerError (works across bundles, unlike instanceof alone). */
  static is(e: unknown): e is TokenizerError {
    return e instanceof TokenizerError || (e instanceof Error && e.name === 'TokenizerError' && 'reason' in e);
  }
}

/** Options for {@link BpeTokenizer}. */
export interface BpeTokenizerOptions {
  /**
   * Slots of the piece cache (rounded up to a power of two; default 131,072). Each slot holds one piece; a new
   * piece whose content hashes to a taken slot replaces what was there, so the cache never grows past this.
   */
  cacheSize?: number;
  /**
   * 'auto' (default) runs a recognised pre-tokenizer regex (Qwen2's) as a hand-written scanner; 'regex'
   * always runs the file's regex through RegExp. The two give the same pieces; 'regex' exists to prove it.
   */
  preTokenizer?: 'auto' | 'regex';
}

/** An added token of the file (special or not), as the tokenizer matches it before any other step. */
export interface AddedTokenInfo {
  /** The literal text that is matched. */
  readonly content: string;
  /** Its id. */
  readonly id: number;
  /** Whether the file marks it special (e.g. `<|im_end|>`); non-special added tokens are matched as well. */
  readonly special: boolean;
}

// Character classes of the pre-tokenizer; NEWLINE is \r or \n, SPACE any other White_Space.
const OTHER = 0;
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const NEWLINE = 4;

/**
 * Qwen2's pre-tokenizer pattern, exactly as its tokenizer.json writes it. When the file has this pattern the
 * scanner below runs instead of RegExp; any other pattern goes through RegExp.
 */
const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** What ByteLevel uses when its own `use_regex` is on (GPT-2's pattern). */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const NO_RANK = 0x7fffffff;
const PAIR_CACHE_SLOTS = 1 << 14;
/** Pieces longer than this (UTF-16 units) are not cached: they rarely repeat, and hashing them costs. */
const MAX_CACHED_LENGTH = 64;
/** Pieces of more symbols than this merge through the heap; fewer, through a linear scan (faster when short). */
const HEAP_THRESHOLD = 64;

let bmpClasses: Uint8Array | undefined;
const astralClasses = new Map<number, number>();

/**
 * The class of every BMP code unit, computed once from the engine's own Unicode tables (`\p{L}`, `\p{N}`,
 * `\p{White_Space}`), so that the scanner agrees with the RegExp that the reference implementation uses.
 * Surrogates are left OTHER: the scanner decodes pairs itself and a lone surrogate is OTHER.
 */
function classTable(): Uint8Array {
  if (bmpClasses) return bmpClasses;
  const table = new Uint8Array(0x10000);
  const units: number[] = [];
  for (let c = 0; c < 0x10000; c++) units.push(c >= 0xd800 && c < 0xe000 ? 0x20 : c);
  let all = '';
  for (let i = 0; i < units.length; i += 8192) all += String.fromCharCode(...units.slice(i, i + 8192));
  const mark = (re: RegExp, cls: number): void => {
    for (const m of all.matchAll(re)) table.fill(cls, m.index, m.index + m[0].length);
  };
  mark(/\p{L}+/gu, LETTER);
  mark(/\p{N}+/gu, NUMBER);
  mark(/\p{White_Space}+/gu, SPACE);
  table[0x0a] = NEWLINE;
  table[0x0d] = NEWLINE;
  // The stand-in spaces written over the surrogate range above must not count as spaces.
  table.fill(OTHER, 0xd800, 0xe000);
  bmpClasses = table;
  return table;
}

function astralClass(cp: number): number {
  let cls = astralClasses.get(cp);
  if (cls === undefined) {
    const ch = String.fromCodePoint(cp);
    cls = /\p{L}/u.test(ch) ? LETTER : /\p{N}/u.test(ch) ? NUMBER : /\p{White_Space}/u.test(ch) ? SPACE : OTHER;
    // Bounded, so that text full of distinct rare characters cannot grow it without limit.
    if (astralClasses.size < 65536) astralClasses.set(cp, cls);
  }
  return cls;
}

/** GPT-2's map from byte to the printable character that stands for it in the vocabulary. */
function byteToChar(): string[] {
  const chars: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return chars;
}

/**
 * Rewrites the Oniguruma constructs that tokenizer files use into JavaScript `u`-mode RegExp syntax: `\s` and
 * `\S` become `\p{White_Space}` and `\P{White_Space}` (JavaScript's `\s` differs: it has U+FEFF, lacks U+0085),
 * and `(?i:…)` groups of literal text become the same text with `[xX]` classes. Anything else is kept as is;
 * a pattern JavaScript then rejects is refused.
 */
function translatePattern(source: string): RegExp {
  let out = '';
  let caseless = 0;
  const groups: boolean[] = [];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === '\\') {
      const next = source[i + 1] ?? '';
      i++;
      if (caseless > 0 && /[a-zA-Z]/.test(next)) {
        throw new TokenizerError('unsupported', `escape \\${next} inside a (?i:) group in ${source}`);
      }
      if (next === 's') out += '\\p{White_Space}';
      else if (next === 'S') out += '\\P{White_Space}';
      else if (next === 'p' || next === 'P') {
        const close = source.indexOf('}', i);
        out += source.slice(i - 1, close + 1);
        i = close;
      } else out += '\\' + next;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      else if (caseless > 0 && /[a-zA-Z]/.test(ch)) {
        throw new TokenizerError('unsupported', 'letters inside a character class of a (?i:) group');
      }
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
    } else if (source.startsWith('(?i:', i)) {
      groups.push(true);
      caseless++;
      out += '(?:';
      i += 3;
    } else if (ch === '(') {
      if (source.startsWith('(?', i) && /^\(\?[a-zA-Z-]+[:)]/.test(source.slice(i, i + 12))) {
        throw new TokenizerError('unsupported', `inline regex flags at ${i} in ${source}`);
      }
      groups.push(false);
      out += ch;
    } else if (ch === ')') {
      if (groups.pop() === true) caseless--;
      out += ch;
    } else if (caseless > 0 && /[a-zA-Z]/.test(ch)) {
      out += `[${ch.toLowerCase()}${ch.toUpperCase()}]`;
    } else if (caseless > 0 && ch.toLowerCase() !== ch.toUpperCase()) {
      // Oniguruma folds non-ASCII case by Unicode rules, which a [xX] class would not reproduce.
      throw new TokenizerError('unsupported', `non-ASCII letter inside a (?i:) group in ${source}`);
    } else {
      out += ch;
    }
  }
  try {
    return new RegExp(out, 'gu');
  } catch (e) {
    throw new TokenizerError('unsupported', `pre-tokenizer regex ${source}: ${(e as Error).message}`);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

// ---- reading the file ---------------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A vocabulary lookup that cannot return what Object.prototype has (a token may well be `constructor`). */
function ownId(vocab: Record<string, number>, token: string): number | undefined {
  // Nothing on Object.prototype is a number, so the type check alone keeps inherited names out.
  const id: unknown = vocab[token];
  return typeof id === 'number' ? id : undefined;
}

function formatError(what: string): TokenizerError {
  return new TokenizerError('format', `tokenizer.json: ${what}`);
}

interface PreTokenizerPlan {
  /** The compiled regex whose matches and the gaps between them are the pieces; undefined: one piece. */
  regex: RegExp | undefined;
  /** The pattern as the file writes it, to recognise Qwen2's. */
  source: string | undefined;
}

/** Accepts ByteLevel alone, or Sequence[Split(Regex, Isolated), ByteLevel(use_regex false)]: the GPT-2 family. */
function planPreTokenizer(config: unknown): PreTokenizerPlan {
  if (!isRecord(config)) throw new TokenizerError('unsupported', 'no pre_tokenizer');
  const steps = config.type === 'Sequence' ? config.pretokenizers : [config];
  if (!Array.isArray(steps)) throw formatError('pre_tokenizer.pretokenizers is not an array');
  let plan: PreTokenizerPlan | undefined;
  let byteLevel = false;
  for (const step of steps) {
    if (!isRecord(step)) throw formatError('a pre_tokenizer step is not an object');
    if (step.type === 'Split' && !plan && !byteLevel) {
      const pattern = step.pattern;
      const behavior = typeof step.behavior === 'string' ? step.behavior.toLowerCase() : '';
      if (!isRecord(pattern) || typeof pattern.Regex !== 'string' || behavior !== 'isolated' || step.invert === true) {
        throw new TokenizerError('unsupported', `Split pre-tokenizer ${JSON.stringify(step)}`);
      }
      plan = { regex: translatePattern(pattern.Regex), source: pattern.Regex };
    } else if (step.type === 'ByteLevel' && !byteLevel) {
      if (step.add_prefix_space === true) throw new TokenizerError('unsupported', 'ByteLevel add_prefix_space');
      if (step.use_regex !== false) {
        if (plan) throw new TokenizerError('unsupported', 'ByteLevel with its regex after a Split');
        plan = { regex: translatePattern(GPT2_PATTERN), source: GPT2_PATTERN };
      }
      byteLevel = true;
    } else {
      throw new TokenizerError('unsupported', `pre_tokenizer step ${String(step.type)}`);
    }
  }
  if (!byteLevel) throw new TokenizerError('unsupported', 'pre_tokenizer without ByteLevel');
  return plan ?? { regex: undefined, source: undefined };
}

function planNormalizer(config: unknown): 'NFC' | undefined {
  if (config === null || config === undefined) return undefined;
  if (isRecord(config) && config.type === 'NFC') return 'NFC';
  if (isRecord(config) && config.type === 'Sequence' && Array.isArray(config.normalizers)) {
    if (config.normalizers.length === 0) return undefined;
    if (config.normalizers.length === 1) return planNormalizer(config.normalizers[0]);
  }
  throw new TokenizerError('unsupported', `normalizer ${JSON.stringify(config)}`);
}

// ---- the tokenizer --------------------------------------------------------------------------------------------

/**
 * A byte-level BPE tokenizer built from a parsed Hugging Face tokenizer.json object (the caller reads and parses
 * the file, so that this class runs anywhere). For Qwen2.5's file its ids equal those of the Hugging Face
 * tokenizers: added tokens are split out first (a literal `<|im_end|>` in text is that special token), the rest
 * is NFC-normalised, pre-tokenised, mapped to bytes and merged by rank.
 *
 * Not safe to share between threads (it has scratch buffers and a cache), as nothing in JS is.
 */
export class BpeTokenizer {
  /** Number of ids: regular tokens plus added tokens. */
  readonly vocabSize: number;
  /** The added tokens, in id order. */
  readonly addedTokens: readonly AddedTokenInfo[];
  /** Content → id of the added tokens that the file marks special (`<|im_start|>`, `<|im_end|>`, …). */
  readonly specialTokenIds: ReadonlyMap<string, number>;

  private readonly vocab: Record<string, number>;
  private readonly idToToken: string[];
  private readonly addedById = new Map<number, string>();
  private readonly addedByContent = new Map<string, number>();
  private readonly addedRegex: RegExp | undefined;
  private readonly nfc: boolean;
  private readonly pieceRegex: RegExp | undefined;
  private readonly scanner: boolean;
  private readonly ignoreMerges: boolean;

  /** Byte → id of its one-byte token. */
  private readonly byteIds = new Int32Array(256);
  /** Vocabulary character → byte, for decoding (the byte-level characters are all below U+0144). */
  private readonly charToByte = new Int16Array(512).fill(-1);
  /** Open-addressing table of [left id, right id, rank] triples; left -1 marks an empty slot. */
  private readonly mergeTable: Int32Array;
  private readonly mergeMask: number;
  /**
   * Ranks of merges between two of the first 256 ids (the one-byte tokens in GPT-2-style files), indexed by
   * a × 256 + b: the first merges of every non-ASCII piece are of bytes, and this 256 KB table stays in the CPU
   * cache where the big table does not.
   */
  private readonly byteMerges = new Int32Array(65536).fill(NO_RANK);
  /**
   * A small direct-mapped cache of recent pair lookups ([a, b, rank] triples, 192 KB): the big table is 6 MB and
   * each of its lookups is a cache miss, while text reuses the same few thousand pairs over and over.
   */
  private readonly pairCache = new Int32Array(PAIR_CACHE_SLOTS * 3).fill(-1);
  /**
   * One bit per 2^21 hash values of the pairs in the big table (256 KB): most pairs that a merge loop asks about
   * do not merge, and this answers most of them without touching the big table.
   */
  private readonly mergeFilter = new Int32Array(1 << 16);
  /** Rank → id of the merged token. */
  private readonly mergeResult: Int32Array;
  private readonly classes: Uint8Array;

  // The piece cache: direct-mapped by a hash of the piece's UTF-16 units, checked against the stored piece.
  // Unlike a Map it needs no slice of the text to look up (only to store), never rehashes, and evicts by itself.
  private readonly cacheMask: number;
  private readonly cacheHashes: Int32Array;
  private readonly cacheKeys: string[];
  private readonly cacheValues: (number | number[])[];
  private cacheUsed = 0;

  // Scratch buffers of the merge loop, grown on demand.
  private sym = new Int32Array(256);
  private ranks = new Int32Array(256);
  private next = new Int32Array(256);
  private prev = new Int32Array(256);
  private heap = new Float64Array(768);
  private heapSize = 0;

  /**
   * @param json the parsed tokenizer.json
   * @throws TokenizerError when the file is malformed or uses a feature that is not reproduced exactly
   */
  constructor(json: unknown, options: BpeTokenizerOptions = {}) {
    if (!isRecord(json)) throw formatError('not an object');
    const model = json.model;
    if (!isRecord(model) || model.type !== 'BPE') throw new TokenizerError('unsupported', 'model is not BPE');
    if (!isRecord(model.vocab) || !Array.isArray(model.merges)) throw formatError('model.vocab or model.merges');
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
      if (model[key]) throw new TokenizerError('unsupported', `model.${key}`);
    }
    if (model.dropout) throw new TokenizerError('unsupported', 'BPE dropout');
    if (model.byte_fallback === true) throw new TokenizerError('unsupported', 'byte_fallback');
    this.ignoreMerges = model.ignore_merges === true;

    this.nfc = planNormalizer(json.normalizer) === 'NFC';
    const plan = planPreTokenizer(json.pre_tokenizer);
    this.scanner = options.preTokenizer !== 'regex' && plan.source === QWEN2_PATTERN;
    this.pieceRegex = plan.regex;
    this.classes = classTable();
    let cacheSlots = 1;
    while (cacheSlots < (options.cacheSize ?? 131072)) cacheSlots <<= 1;
    this.cacheMask = cacheSlots - 1;
    this.cacheHashes = new Int32Array(cacheSlots);
    this.cacheKeys = new Array<string>(cacheSlots).fill('');
    this.cacheValues = new Array<number | number[]>(cacheSlots).fill(0);

    // The vocabulary: ids must be dense so that decoding is an array lookup.
    const vocab = model.vocab as Record<string, number>;
    this.vocab = vocab;
    const tokens = Object.keys(vocab);
    const idToToken: string[] = new Array<string>(tokens.length);
    for (const token of tokens) {
      const id = vocab[token];
      if (!Number.isInteger(id) || id < 0) throw formatError(`vocab id of ${JSON.stringify(token)}`);
      if (idToToken[id] !== undefined) throw formatError(`id ${id} is used twice`);
      idToToken[id] = token;
    }

    const chars = byteToChar();
    for (let b = 0; b < 256; b++) {
      const id = ownId(vocab, chars[b]);
      if (id === undefined) throw formatError(`no token for byte ${b}`);
      this.byteIds[b] = id;
      this.charToByte[chars[b].charCodeAt(0)] = b;
    }

    // Added tokens: matched in the raw text, longest first at the leftmost position, as the reference does.
    const added: AddedTokenInfo[] = [];
    const special = new Map<string, number>();
    const addedList = Array.isArray(json.added_tokens) ? json.added_tokens : [];
    for (const t of addedList) {
      if (!isRecord(t) || typeof t.content !== 'string' || !Number.isInteger(t.id) || t.content === '') {
        throw formatError('an added token');
      }
      if (t.lstrip === true || t.rstrip === true || t.single_word === true) {
        throw new TokenizerError('unsupported', `added token ${t.content} with lstrip, rstrip or single_word`);
      }
      const isSpecial = t.special === true;
      // normalized defaults to !special. A normalized added token is matched in the NFC-normalised text, a
      // second pass that is not implemented: every added token of the Qwen files is normalized: false.
      if ((t.normalized ?? !isSpecial) === true && this.nfc) {
        throw new TokenizerError('unsupported', `normalized added token ${t.content}`);
      }
      const id = t.id as number;
      added.push({ content: t.content, id, special: isSpecial });
      this.addedById.set(id, t.content);
      this.addedByContent.set(t.content, id);
      if (isSpecial) special.set(t.content, id);
      // Some files also list an added token in the vocabulary (GPT-2's <|endoftext|>); the added one wins.
      idToToken[id] = t.content;
    }
    added.sort((a, b) => a.id - b.id);
    this.addedTokens = added;
    this.specialTokenIds = special;
    const byLength = [...this.addedByContent.keys()].sort((a, b) => b.length - a.length);
    this.addedRegex = byLength.length ? new RegExp(byLength.map(escapeRegExp).join('|'), 'g') : undefined;
    for (let id = 0; id < idToToken.length; id++) {
      if (idToToken[id] === undefined) throw formatError(`no token has id ${id}`);
    }
    this.idToToken = idToToken;
    this.vocabSize = idToToken.length;
    if (this.vocabSize >= 1 << 30) throw formatError('vocabulary too large');

    // Merges: pair of ids → rank, and rank → merged id. A pair whose tokens are missing cannot occur.
    const merges = model.merges as unknown[];
    let slots = 1;
    while (slots < merges.length * 3) slots <<= 1;
    this.mergeMask = slots - 1;
    this.mergeTable = new Int32Array(slots * 3).fill(-1);
    this.mergeResult = new Int32Array(merges.length);
    for (let rank = 0; rank < merges.length; rank++) {
      const m = merges[rank];
      let left: string;
      let right: string;
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        left = m[0];
        right = m[1];
      } else if (typeof m === 'string') {
        const space = m.indexOf(' ', 1);
        if (space < 0) throw formatError(`merge ${rank}`);
        left = m.slice(0, space);
        right = m.slice(space + 1);
      } else {
        throw formatError(`merge ${rank}`);
      }
      const a = ownId(vocab, left);
      const b = ownId(vocab, right);
      // Files written by BPE training give merge r the id 256 + r; comparing is cheaper than hashing the pair.
      const guess = 256 + rank;
      const merged = idToToken[guess] === left + right ? guess : ownId(vocab, left + right);
      if (a === undefined || b === undefined || merged === undefined) {
        throw formatError(`merge ${rank} (${left} ${right}) names a token not in the vocabulary`);
      }
      this.mergeResult[rank] = merged;
      this.insertMerge(a, b, rank);
    }
  }

  /** The ids of `text`, as the reference tokenizer gives them (no BOS/EOS is added: Qwen adds none). */
  encode(text: string): number[] {
    const out: number[] = [];
    this.run(text, out);
    return out;
  }

  /** The number of tokens of `text`; the same as `encode(text).length`, without building the array. */
  count(text: string): number {
    return this.run(text, undefined);
  }

  /**
   * The text of `ids`. Bytes that do not form valid UTF-8 (an id list cut inside a character) become U+FFFD,
   * as TextDecoder does; no clean-up of spaces is applied (Qwen's files turn it off).
   * @throws RangeError for an id outside the vocabulary
   */
  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const added = this.addedById.get(id);
      const token = added ?? this.idToToken[id];
      if (token === undefined || !Number.isInteger(id)) throw new RangeError(`token id ${id} is not in the vocabulary`);
      if (added !== undefined) {
        utf8Bytes(added, bytes);
      } else {
        for (let i = 0; i < token.length; i++) bytes.push(this.charToByte[token.charCodeAt(i)]);
      }
    }
    return decodeUtf8(bytes);
  }

  /**
   * The pieces that the pre-tokenizer cuts `text` into (after splitting out added tokens and normalising), each
   * of which is merged on its own: for tests and for explaining a count, not needed to count.
   */
  preTokenize(text: string): string[] {
    const pieces: string[] = [];
    const sections: string[] = [];
    const re = this.addedRegex;
    let last = 0;
    if (re) {
      re.lastIndex = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        sections.push(text.slice(last, m.index));
        last = m.index + m[0].length;
      }
    }
    sections.push(text.slice(last));
    for (const raw of sections) {
      const s = this.nfc ? raw.normalize('NFC') : raw;
      this.eachPiece(s, (i, j) => {
        pieces.push(s.slice(i, j));
        return 0;
      });
    }
    return pieces;
  }

  /** The id of a token given as the vocabulary writes it (byte-level characters, e.g. `Ġthe`) or an added token. */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token) ?? ownId(this.vocab, token);
  }

  /** The token of an id as the vocabulary writes it, or undefined outside the vocabulary. */
  idToTokenString(id: number): string | undefined {
    return this.idToToken[id];
  }

  /** Number of pieces held in the cache now (at most its slots); for tests and diagnostics. */
  get cachedPieces(): number {
    return this.cacheUsed;
  }

  /** Empties the piece cache (for example after a large one-off file, to give the memory back). */
  clearCache(): void {
    this.cacheHashes.fill(0);
    this.cacheKeys.fill('');
    this.cacheValues.fill(0);
    this.cacheUsed = 0;
  }

  // ---- encoding -----------------------------------------------------------------------------------------------

  /** Splits out added tokens, then tokenizes each section in between; pushes ids to `out` when given. */
  private run(text: string, out: number[] | undefined): number {
    const re = this.addedRegex;
    if (re === undefined) return this.section(text, out);
    let count = 0;
    let last = 0;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m.index > last) count += this.section(text.slice(last, m.index), out);
      const id = this.addedByContent.get(m[0]) as number;
      if (out) out.push(id);
      count++;
      last = m.index + m[0].length;
    }
    if (last === 0) return this.section(text, out);
    if (last < text.length) count += this.section(text.slice(last), out);
    return count;
  }

  private section(raw: string, out: number[] | undefined): number {
    const text = this.nfc ? raw.normalize('NFC') : raw;
    const n = text.length;
    if (!this.scanner) return this.eachPiece(text, (i, j) => this.piece(text, i, j, out));
    // The scanner loop is written out here rather than through eachPiece: this is the hot path.
    let count = 0;
    for (let i = 0; i < n; ) {
      const j = this.pieceEnd(text, i, n);
      count += this.piece(text, i, j, out);
      i = j;
    }
    return count;
  }

  /** Calls `visit` with the bounds of every piece of `text` (one section), and sums what it returns. */
  private eachPiece(text: string, visit: (i: number, j: number) => number): number {
    const n = text.length;
    let count = 0;
    if (this.scanner) {
      for (let i = 0; i < n; ) {
        const j = this.pieceEnd(text, i, n);
        count += visit(i, j);
        i = j;
      }
    } else if (this.pieceRegex) {
      // Isolated behaviour: the matches and the gaps between them are all pieces.
      const re = this.pieceRegex;
      re.lastIndex = 0;
      let last = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        const len = m[0].length;
        if (len === 0) {
          re.lastIndex++;
          continue;
        }
        if (m.index > last) count += visit(last, m.index);
        count += visit(m.index, m.index + len);
        last = m.index + len;
      }
      if (last < n) count += visit(last, n);
    } else if (n > 0) {
      count += visit(0, n);
    }
    return count;
  }

  /**
   * The end of the piece that starts at `i`: Qwen2's pattern, alternative by alternative, in the order RegExp
   * tries them, with the classes that `\p{L}`, `\p{N}` and `\s` (Unicode White_Space) give.
   */
  private pieceEnd(s: string, i: number, n: number): number {
    const c = s.charCodeAt(i);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d) — ASCII letters only, as the reference's translation matches them.
    if (c === 0x27 && i + 1 < n) {
      const c1 = s.charCodeAt(i + 1) | 0x20;
      if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return i + 2;
      if (i + 2 < n) {
        const c2 = s.charCodeAt(i + 2) | 0x20;
        if ((c2 === 0x65 && (c1 === 0x72 || c1 === 0x76)) || (c1 === 0x6c && c2 === 0x6c)) return i + 3;
      }
    }
    const k = this.classAt(s, i, n);
    const w = k >> 3;
    const cls = k & 7;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (cls === LETTER) return this.skipLetters(s, i + w, n);
    if (cls !== NEWLINE && cls !== NUMBER && i + w < n) {
      const k2 = this.classAt(s, i + w, n);
      if ((k2 & 7) === LETTER) return this.skipLetters(s, i + w + (k2 >> 3), n);
    }
    // \p{N}
    if (cls === NUMBER) return i + w;
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    let j = -1;
    if (cls === OTHER) j = i;
    else if (c === 0x20 && i + 1 < n && (this.classAt(s, i + 1, n) & 7) === OTHER) j = i + 1;
    if (j >= 0) {
      for (;;) {
        const kk = this.classAt(s, j, n);
        if ((kk & 7) !== OTHER) break;
        j += kk >> 3;
        if (j >= n) return n;
      }
      while (j < n) {
        const cc = s.charCodeAt(j);
        if (cc !== 0x0a && cc !== 0x0d) break;
        j++;
      }
      return j;
    }
    // Whitespace: \s*[\r\n]+ (up to the run's last newline), else \s+(?!\S) (all but the last unless at the end),
    // else \s+ (the single character). White_Space is all in the BMP, so code units are characters here.
    const table = this.classes;
    let lastNewline = -1;
    j = i;
    while (j < n) {
      const cc = s.charCodeAt(j);
      const kk = table[cc];
      if (kk === NEWLINE) lastNewline = j;
      else if (kk !== SPACE) break;
      j++;
    }
    if (lastNewline >= 0) return lastNewline + 1;
    if (j === n) return n;
    return j - i >= 2 ? j - 1 : j;
  }

  /** The class of the character at `i` in the low 3 bits, its width in UTF-16 units (1 or 2) above them. */
  private classAt(s: string, i: number, n: number): number {
    const c = s.charCodeAt(i);
    if ((c & 0xf800) !== 0xd800) return this.classes[c] | 8;
    if (c < 0xdc00 && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if ((d & 0xfc00) === 0xdc00) return astralClass(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000) | 16;
    }
    return OTHER | 8;
  }

  private skipLetters(s: string, j: number, n: number): number {
    while (j < n) {
      const c = s.charCodeAt(j);
      if ((c & 0xf800) !== 0xd800) {
        if (this.classes[c] !== LETTER) return j;
        j++;
      } else {
        const k = this.classAt(s, j, n);
        if ((k & 7) !== LETTER) return j;
        j += k >> 3;
      }
    }
    return j;
  }

  /** Tokenizes the piece s[i, j): from the cache, or through bytes and merges. Returns its token count. */
  private piece(s: string, i: number, j: number, out: number[] | undefined): number {
    const len = j - i;
    if (len === 1) {
      const c = s.charCodeAt(i);
      // A single ASCII character is a single byte, hence a single token: no lookup needed.
      if (c < 0x80) {
        if (out) out.push(this.byteIds[c]);
        return 1;
      }
    }
    if (len > MAX_CACHED_LENGTH) return this.emit(this.bpe(s, i, j), out);
    let h = 0x811c9dc5;
    for (let p = i; p < j; p++) h = Math.imul(h ^ s.charCodeAt(p), 0x01000193);
    h |= 1; // 0 marks an empty slot
    const slot = (h ^ (h >>> 15)) & this.cacheMask;
    if (this.cacheHashes[slot] === h) {
      const key = this.cacheKeys[slot];
      let same = key.length === len;
      for (let p = 0; same && p < len; p++) same = key.charCodeAt(p) === s.charCodeAt(i + p);
      if (same) return this.emit(this.cacheValues[slot], out);
    }
    const result = this.bpe(s, i, j);
    if (this.cacheHashes[slot] === 0) this.cacheUsed++;
    this.cacheHashes[slot] = h;
    this.cacheKeys[slot] = s.slice(i, j);
    this.cacheValues[slot] = result;
    return this.emit(result, out);
  }

  /** Pushes a piece's ids to `out` when given; returns their number. */
  private emit(ids: number | number[], out: number[] | undefined): number {
    if (typeof ids === 'number') {
      if (out) out.push(ids);
      return 1;
    }
    if (out) for (let t = 0; t < ids.length; t++) out.push(ids[t]);
    return ids.length;
  }

  /** UTF-8 bytes of s[i, j) as one-byte token ids in `sym`; returns their number. */
  private toByteSymbols(s: string, i: number, j: number): number {
    if ((j - i) * 3 > this.sym.length) this.grow((j - i) * 3);
    const sym = this.sym;
    const ids = this.byteIds;
    let m = 0;
    for (let p = i; p < j; p++) {
      let c = s.charCodeAt(p);
      if (c < 0x80) {
        sym[m++] = ids[c];
      } else if (c < 0x800) {
        sym[m++] = ids[0xc0 | (c >> 6)];
        sym[m++] = ids[0x80 | (c & 0x3f)];
      } else {
        if ((c & 0xf800) === 0xd800) {
          const d = p + 1 < j ? s.charCodeAt(p + 1) : 0;
          if (c < 0xdc00 && (d & 0xfc00) === 0xdc00) {
            const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
            p++;
            sym[m++] = ids[0xf0 | (cp >> 18)];
            sym[m++] = ids[0x80 | ((cp >> 12) & 0x3f)];
            sym[m++] = ids[0x80 | ((cp >> 6) & 0x3f)];
            sym[m++] = ids[0x80 | (cp & 0x3f)];
            continue;
          }
          // A lone surrogate has no UTF-8 form; like TextEncoder (and the reference), write U+FFFD.
          c = 0xfffd;
        }
        sym[m++] = ids[0xe0 | (c >> 12)];
        sym[m++] = ids[0x80 | ((c >> 6) & 0x3f)];
        sym[m++] = ids[0x80 | (c & 0x3f)];
      }
    }
    return m;
  }

  private grow(size: number): void {
    let cap = this.sym.length;
    while (cap < size) cap *= 2;
    this.sym = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.heap = new Float64Array(cap * 3);
  }

  /** The ids of the piece s[i, j): a number when it is one token, else an array. */
  private bpe(s: string, i: number, j: number): number | number[] {
    let m = this.toByteSymbols(s, i, j);
    const sym = this.sym;
    if (m === 1) return sym[0];
    if (this.ignoreMerges) {
      const whole = ownId(this.vocab, this.byteString(sym, m));
      if (whole !== undefined) return whole;
    }
    if (m > HEAP_THRESHOLD) return this.bpeHeap(m);
    // Short piece: ranks[t] is the rank of the pair (sym[t], sym[t + 1]); merge the lowest, leftmost first.
    const ranks = this.ranks;
    for (let t = 0; t < m - 1; t++) ranks[t] = this.rankOf(sym[t], sym[t + 1]);
    for (;;) {
      let best = NO_RANK;
      let at = -1;
      for (let t = 0; t < m - 1; t++) {
        if (ranks[t] < best) {
          best = ranks[t];
          at = t;
        }
      }
      if (at < 0) break;
      sym[at] = this.mergeResult[best];
      for (let t = at + 1; t < m - 1; t++) sym[t] = sym[t + 1];
      for (let t = at + 1; t < m - 2; t++) ranks[t] = ranks[t + 1];
      m--;
      if (at > 0) ranks[at - 1] = this.rankOf(sym[at - 1], sym[at]);
      if (at < m - 1) ranks[at] = this.rankOf(sym[at], sym[at + 1]);
      if (m === 1) return sym[0];
    }
    const result = new Array<number>(m);
    for (let t = 0; t < m; t++) result[t] = sym[t];
    return result;
  }

  /**
   * Long piece: symbols in a linked list, candidate merges in a binary min-heap keyed by rank × 2^32 + position
   * (positions are the symbols' first byte, so equal ranks merge leftmost first, as in the reference).
   * `ranks[p]` holds the rank of the pair that starts at live symbol p now; a heap entry whose rank differs is
   * stale (its pair changed since: a rank names one pair, and tokens only grow, so a changed pair never gets
   * the old rank back). Dead symbols have rank NO_RANK.
   */
  private bpeHeap(m: number): number[] {
    const { sym, next, prev, ranks } = this;
    this.heapSize = 0;
    for (let t = 0; t < m; t++) {
      next[t] = t + 1 < m ? t + 1 : -1;
      prev[t] = t - 1;
    }
    ranks[m - 1] = NO_RANK;
    for (let t = 0; t < m - 1; t++) {
      const r = this.rankOf(sym[t], sym[t + 1]);
      ranks[t] = r;
      if (r !== NO_RANK) this.heapPush(r * 4294967296 + t);
    }
    while (this.heapSize > 0) {
      const key = this.heapPop();
      const rank = (key / 4294967296) | 0;
      const pos = key - rank * 4294967296;
      if (ranks[pos] !== rank) continue;
      const right = next[pos];
      const after = next[right];
      sym[pos] = this.mergeResult[rank];
      ranks[right] = NO_RANK;
      next[pos] = after;
      if (after >= 0) {
        prev[after] = pos;
        const r = this.rankOf(sym[pos], sym[after]);
        ranks[pos] = r;
        if (r !== NO_RANK) this.heapPush(r * 4294967296 + pos);
      } else {
        ranks[pos] = NO_RANK;
      }
      const before = prev[pos];
      if (before >= 0) {
        const r = this.rankOf(sym[before], sym[pos]);
        ranks[before] = r;
        if (r !== NO_RANK) this.heapPush(r * 4294967296 + before);
      }
    }
    const result: number[] = [];
    for (let t = 0; t >= 0; t = next[t]) result.push(sym[t]);
    return result;
  }

  private heapPush(key: number): void {
    const heap = this.heap;
    let p = this.heapSize++;
    while (p > 0) {
      const parent = (p - 1) >> 1;
      const up = heap[parent];
      if (up <= key) break;
      heap[p] = up;
      p = parent;
    }
    heap[p] = key;
  }

  private heapPop(): number {
    const heap = this.heap;
    const top = heap[0];
    const size = --this.heapSize;
    const last = heap[size];
    let p = 0;
    for (;;) {
      let child = 2 * p + 1;
      if (child >= size) break;
      if (child + 1 < size && heap[child + 1] < heap[child]) child++;
      const down = heap[child];
      if (down >= last) break;
      heap[p] = down;
      p = child;
    }
    heap[p] = last;
    return top;
  }

  private byteString(sym: Int32Array, m: number): string {
    let s = '';
    for (let t = 0; t < m; t++) s += this.idToToken[sym[t]];
    return s;
  }

  private hashPair(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ b;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    return (h ^ (h >>> 13)) & this.mergeMask;
  }

  private insertMerge(a: number, b: number, rank: number): void {
    if ((a | b) < 256) {
      if (this.byteMerges[(a << 8) | b] === NO_RANK) this.byteMerges[(a << 8) | b] = rank;
      return;
    }
    {
      let h = Math.imul(a, 0x9e3779b1) ^ b;
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h ^= h >>> 13;
      const bit = h >>> 11;
      this.mergeFilter[bit >>> 5] |= 1 << (bit & 31);
    }
    const table = this.mergeTable;
    let slot = this.hashPair(a, b);
    for (;;) {
      const at = slot * 3;
      if (table[at] === -1) {
        table[at] = a;
        table[at + 1] = b;
        table[at + 2] = rank;
        return;
      }
      // A pair listed twice keeps its first (lowest) rank, as a map built in order of the file would not;
      // the reference keeps the last, but valid files never list a pair twice.
      if (table[at] === a && table[at + 1] === b) return;
      slot = (slot + 1) & this.mergeMask;
    }
  }

  /** The rank of merging ids a and b, or NO_RANK. */
  private rankOf(a: number, b: number): number {
    if ((a | b) < 256) return this.byteMerges[(a << 8) | b];
    let h = Math.imul(a, 0x9e3779b1) ^ b;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h ^= h >>> 13;
    const cache = this.pairCache;
    const c = (h & (PAIR_CACHE_SLOTS - 1)) * 3;
    if (cache[c] === a && cache[c + 1] === b) return cache[c + 2];
    const bit = h >>> 11;
    const inFilter = (this.mergeFilter[bit >>> 5] & (1 << (bit & 31))) !== 0;
    const rank = inFilter ? this.rankInTable(a, b, h & this.mergeMask) : NO_RANK;
    cache[c] = a;
    cache[c + 1] = b;
    cache[c + 2] = rank;
    return rank;
  }

  private rankInTable(a: number, b: number, start: number): number {
    const table = this.mergeTable;
    let slot = start;
    for (;;) {
      const at = slot * 3;
      const x = table[at];
      if (x === a && table[at + 1] === b) return table[at + 2];
      if (x === -1) return NO_RANK;
      slot = (slot + 1) & this.mergeMask;
    }
  }
}

// ---- UTF-8 without TextEncoder/TextDecoder (not every JS environment has them) --------------------------------

function utf8Bytes(text: string, out: number[]): void {
  for (let p = 0; p < text.length; p++) {
    let c = text.charCodeAt(p);
    if (c < 0x80) {
      out.push(c);
    } else if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    } else {
      if ((c & 0xf800) === 0xd800) {
        const d = p + 1 < text.length ? text.charCodeAt(p + 1) : 0;
        if (c < 0xdc00 && (d & 0xfc00) === 0xdc00) {
          const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          p++;
          out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
          continue;
        }
        c = 0xfffd;
      }
      out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    }
  }
}

/** The WHATWG UTF-8 decoder with replacement (what TextDecoder does): each maximal invalid subpart → U+FFFD. */
function decodeUtf8(bytes: readonly number[]): string {
  const units: number[] = [];
  let text = '';
  let cp = 0;
  let needed = 0;
  let seen = 0;
  let lower = 0x80;
  let upper = 0xbf;
  const flush = (): void => {
    text += String.fromCharCode(...units);
    units.length = 0;
  };
  const emit = (c: number): void => {
    if (c >= 0x10000) {
      c -= 0x10000;
      units.push(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
    } else {
      units.push(c);
    }
    if (units.length >= 8192) flush();
  };
  for (let p = 0; p < bytes.length; p++) {
    const b = bytes[p];
    if (needed === 0) {
      if (b < 0x80) emit(b);
      else if (b >= 0xc2 && b <= 0xdf) {
        needed = 1;
        cp = b & 0x1f;
      } else if (b >= 0xe0 && b <= 0xef) {
        if (b === 0xe0) lower = 0xa0;
        if (b === 0xed) upper = 0x9f;
        needed = 2;
        cp = b & 0xf;
      } else if (b >= 0xf0 && b <= 0xf4) {
        if (b === 0xf0) lower = 0x90;
        if (b === 0xf4) upper = 0x8f;
        needed = 3;
        cp = b & 0x7;
      } else emit(0xfffd);
      continue;
    }
    if (b < lower || b > upper) {
      // The sequence so far is one invalid subpart; the byte starts over on its own.
      cp = needed = seen = 0;
      lower = 0x80;
      upper = 0xbf;
      emit(0xfffd);
      p--;
      continue;
    }
    lower = 0x80;
    upper = 0xbf;
    cp = (cp << 6) | (b & 0x3f);
    if (++seen === needed) {
      emit(cp);
      cp = needed = seen = 0;
    }
  }
  if (needed !== 0) emit(0xfffd);
  flush();
  return text;
}
