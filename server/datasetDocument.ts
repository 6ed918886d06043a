import { type FindingCode, type LineFinding } from '../common/dataset/codes';
import { blankFinding, type DatasetCounts, duplicateFinding, emptyCounts, fileEmptyFinding, tooLongFinding } from '../common/dataset/fileCheck';
import { lineHash, textHash } from '../common/dataset/hash';
import { LineChecker } from '../common/dataset/lineCheck';
import { DuplicateIndex } from './duplicates';
import {
  KIND_BLANK,
  KIND_BROKEN,
  KIND_EXAMPLE,
  type Line,
  LineModel,
  type ModelPosition,
  TOKENS_FAILED,
  TOKENS_NONE,
  TOKENS_PENDING,
  TOKENS_SKIPPED,
} from './lineModel';
import { MAX_COUNTED_LENGTH, type TokenCounts } from './tokenCounter';

/** The settings a document's checks depend on. */
export interface DocumentSettings {
  maxSequenceLength: number;
  countTokens: boolean;
}

/** One content change of `textDocument/didChange`: with a range (incremental) or the whole text. */
export interface ContentChange {
  range?: { start: ModelPosition; end: ModelPosition };
  text: string;
}

/** Where token counts come from before a line is counted: counts already known for the same content. */
export interface TokenCache {
  cached(hash: number): TokenCounts | undefined;
  remember(hash: number, counts: TokenCounts): void;
}

/** Counts over the whole document, never capped. */
export interface DocumentCounts extends DatasetCounts {
  tokenizedExamples: number;
  tokens: number;
  trainedTokens: number;
  overLength: number;
  /** Valid examples whose tokens are not counted yet. */
  pendingTokens: number;
}

/** Receives findings in document order; returns false to stop. */
export type FindingVisitor = (line: number, finding: LineFinding) => boolean;

/** Edited lines longer than this (UTF-16 units) are encoded once rather than through the checkers' scratch buffers. */
const HUGE_LINE = 1 << 16;

/**
 * The duplicate index keys lines by the low 32 bits of their hash: a small integer that V8 keeps unboxed, in
 * the line and in the map (a 53-bit number is a heap object each time, which made opening a million-line file
 * twice as slow). Equal keys of different lines are told apart by their content (see DuplicateIndex).
 */
function shortHash(hash: number): number {
  return hash % 4294967296 | 0;
}

function byPosition(a: LineFinding, b: LineFinding): number {
  return a.start - b.start || a.end - b.end || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
}

/**
 * One open dataset and everything the checks know about it, kept up to date edit by edit: each line's
 * findings, the duplicate index, the file-wide counts and the token counts. The document service creates one
 * per `didOpen` and calls `applyChanges` per `didChange`; an edit re-checks only the lines it replaced.
 */
export class DatasetDocument {
  readonly model: LineModel;
  private readonly checker = new LineChecker();
  private readonly dups: DuplicateIndex;

  // File-wide counts, kept by account/unaccount.
  private lines = 0;
  private nonBlank = 0;
  private blank = 0;
  private examples = 0;
  private valid = 0;
  private errors = 0;
  private warnings = 0;
  private readonly byCode = emptyCounts();
  private tokenized = 0;
  private tokenSum = 0;
  private trainedSum = 0;
  private overLength = 0;
  private pending = 0;

  /** Lines the user sees (0-based, end exclusive), counted before the others. */
  private visible: { start: number; end: number }[] = [];
  private visibleDone = true;
  /** Lines changed by edits, counted first: the user looks at what they type. */
  private dirty: Line[] = [];
  private cursor = 0;

  constructor(
    readonly uri: string,
    public version: number,
    text: string,
    private settings: DocumentSettings,
    private readonly tokenCache: TokenCache,
  ) {
    this.model = new LineModel(text);
    this.dups = new DuplicateIndex((a, b) => this.model.sameContent(a, b));
    this.accountAll();
  }

  /** Applies the content changes of one `didChange`, in order, re-checking the lines they touch. */
  applyChanges(changes: readonly ContentChange[], version: number): void {
    this.version = version;
    for (const change of changes) {
      if (change.range) {
        const splice = this.model.replace(change.range.start, change.range.end, change.text);
        for (const line of splice.removed) this.unaccount(line);
        const last = this.model.lineCount - 1;
        // A big paste is counted in file order like an opened file, not ahead of everything else.
        const edited = splice.added.length <= 1000;
        splice.added.forEach((line, i) => this.account(line, splice.from + i, last, edited));
      } else {
        this.resetCounts();
        this.model.replaceAll(change.text);
        this.accountAll();
      }
    }
    this.visibleDone = false;
  }

  /** New settings; returns whether the findings changed (too-long appears or goes). */
  configure(settings: DocumentSettings): boolean {
    const before = this.settings;
    const lines = this.model.all();
    // Counts leave with the settings they were added under (the over-length count depends on the maximum).
    if (before.countTokens && !settings.countTokens) for (const line of lines) if (line.counted) this.dropTokens(line);
    this.settings = settings;
    if (!before.countTokens && settings.countTokens) {
      for (const line of lines) {
        if (line.counted && line.kind === KIND_EXAMPLE && line.errors === 0) this.startTokens(line, false, this.contentHash(line));
      }
      return true;
    }
    if (before.countTokens !== settings.countTokens) return true;
    if (before.maxSequenceLength === settings.maxSequenceLength) return false;
    this.overLength = 0;
    for (const line of lines) if (line.tokens > settings.maxSequenceLength) this.overLength++;
    return true;
  }

  /** The lines shown in editors, for the token scheduler. */
  setVisible(ranges: readonly { start: number; end: number }[]): void {
    this.visible = ranges.filter((r) => r.end > r.start).map((r) => ({ start: Math.max(0, r.start), end: r.end }));
    this.visibleDone = false;
  }

  /** Counts over the whole document. */
  counts(): DocumentCounts {
    const empty = this.nonBlank === 0;
    const countTokens = this.settings.countTokens;
    const byCode = { ...this.byCode };
    byCode.duplicate = this.dups.duplicates;
    byCode['line-blank'] = empty ? 0 : this.blank;
    byCode['file-empty'] = empty ? 1 : 0;
    byCode['too-long'] = countTokens ? this.overLength : 0;
    return {
      lines: this.lines,
      examples: this.examples,
      validExamples: this.valid,
      // As the file checker counts: a file of blank lines is one empty file, not blank lines.
      blank: empty ? 0 : this.blank,
      errors: this.errors + (empty ? 1 : 0),
      warnings: this.warnings + this.dups.duplicates + byCode['line-blank'] + byCode['too-long'],
      byCode,
      tokenizedExamples: this.tokenized,
      tokens: this.tokenSum,
      trainedTokens: this.trainedSum,
      overLength: countTokens ? this.overLength : 0,
      pendingTokens: countTokens ? this.pending : 0,
    };
  }

  /** Visits every finding in document order (by line, then column) until the visitor returns false. */
  forEachFinding(visit: FindingVisitor): void {
    if (this.nonBlank === 0) {
      visit(0, fileEmptyFinding());
      return;
    }
    const lines = this.model.all();
    const max = this.settings.countTokens ? this.settings.maxSequenceLength : Infinity;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      // The common case first: a counted, non-blank line with nothing to say.
      if (line.findings.length === 0 && !line.dup && line.tokens <= max && line.kind !== KIND_BLANK) continue;
      if (!line.counted) continue;
      if (line.kind === KIND_BLANK || line.dup || line.tokens > max) {
        for (const f of this.findingsOf(line)) if (!visit(i, f)) return;
      } else {
        for (const f of line.findings) if (!visit(i, f)) return;
      }
    }
  }

  /** Every finding of one line (its own, `duplicate`, `too-long`, `line-blank`; `file-empty` on line 0). */
  findingsOf(line: Line): LineFinding[] {
    if (!line.counted) return [];
    if (this.nonBlank === 0) return line === this.model.line(0) ? [fileEmptyFinding()] : [];
    if (line.kind === KIND_BLANK) return [blankFinding(this.model.length(line))];
    const all = [...line.findings];
    const original = this.dups.originalOf(line);
    if (original) all.push(duplicateFinding(this.model.indexOf(original), this.model.length(line)));
    if (this.settings.countTokens && line.tokens > this.settings.maxSequenceLength) {
      all.push(tooLongFinding(line.tokens, this.settings.maxSequenceLength, this.model.length(line)));
    }
    return all.length > 1 ? all.sort(byPosition) : all;
  }

  /** The settings this document is checked with. */
  get maxSequenceLength(): number {
    return this.settings.maxSequenceLength;
  }

  get countsTokens(): boolean {
    return this.settings.countTokens;
  }

  /** The next line whose tokens to count: edited lines, then visible ones, then the rest from the top. */
  nextPending(): Line | undefined {
    if (this.pending === 0 || !this.settings.countTokens) return undefined;
    while (this.dirty.length > 0) {
      const line = this.dirty.pop() as Line;
      if (line.order >= 0 && line.tokens === TOKENS_PENDING) return line;
    }
    const lines = this.model.all();
    if (!this.visibleDone) {
      for (const range of this.visible) {
        const end = Math.min(range.end, lines.length);
        for (let i = range.start; i < end; i++) if (lines[i].tokens === TOKENS_PENDING) return lines[i];
      }
      this.visibleDone = true;
    }
    for (let pass = 0; pass < 2; pass++) {
      for (; this.cursor < lines.length; this.cursor++) {
        if (lines[this.cursor].tokens === TOKENS_PENDING) return lines[this.cursor];
      }
      // Edits above the cursor shift lines under it; a second pass from the top finds what moved.
      this.cursor = 0;
    }
    // Nothing is pending after all: never scan the document again for it.
    this.pending = 0;
    return undefined;
  }

  /**
   * Records the counts of a line that `nextPending` gave (undefined: it cannot be counted). Returns whether
   * its findings changed (it is over the maximum length).
   */
  setTokens(line: Line, counts: TokenCounts | undefined): boolean {
    if (line.order < 0 || line.tokens !== TOKENS_PENDING) return false;
    this.pending--;
    if (!counts) {
      line.tokens = this.model.length(line) > MAX_COUNTED_LENGTH ? TOKENS_SKIPPED : TOKENS_FAILED;
      return false;
    }
    this.tokenCache.remember(this.contentHash(line), counts);
    this.addTokens(line, counts);
    return line.tokens > this.settings.maxSequenceLength;
  }

  /** Whether token counting has work left. */
  get counting(): boolean {
    return this.settings.countTokens && this.pending > 0;
  }

  /** Gives up on every pending count (the tokenizer cannot be loaded). */
  skipPendingTokens(): void {
    if (this.pending === 0) return;
    for (const line of this.model.all()) if (line.tokens === TOKENS_PENDING) line.tokens = TOKENS_FAILED;
    this.pending = 0;
  }

  /** All line objects, for statistics and the token scheduler. */
  allLines(): readonly Line[] {
    return this.model.all();
  }

  private accountAll(): void {
    const lines = this.model.all();
    const last = lines.length - 1;
    for (let i = 0; i < lines.length; i++) this.account(lines[i], i, last, false);
  }

  private resetCounts(): void {
    this.dups.clear();
    this.lines = this.nonBlank = this.blank = this.examples = this.valid = this.errors = this.warnings = 0;
    this.tokenized = this.tokenSum = this.trainedSum = this.overLength = this.pending = 0;
    for (const code of Object.keys(this.byCode) as FindingCode[]) this.byCode[code] = 0;
    this.dirty = [];
    this.cursor = 0;
  }

  /**
   * Checks the line at `index` and adds it to the counts. The empty remainder after a final newline (an
   * empty line at `last`) is not a line.
   */
  private account(line: Line, index: number, last: number, edited: boolean): void {
    const model = this.model;
    if (index === last && !line.cr && model.isEmpty(line)) {
      line.counted = false;
      line.kind = KIND_BLANK;
      line.tokens = TOKENS_NONE;
      return;
    }
    line.counted = true;
    this.lines++;
    const first = index === 0;
    const text = line.text;
    // An edited line is checked as text (the checker encodes it into a reused scratch buffer), except a huge
    // one: that is encoded once, exactly, for both the check and the hash.
    let buf: Uint8Array = line.buf as Buffer;
    let start = line.start;
    let end = line.end;
    let held = text !== undefined;
    if (text !== undefined && text.length > HUGE_LINE) {
      buf = Buffer.from(text, 'utf8');
      start = 0;
      end = buf.length;
      held = false;
    }
    const check = held ? this.checker.checkText(text as string, first) : this.checker.check(buf, start, end, first);
    line.findings = check.findings;
    line.errors = check.errors;
    line.messages = check.messages;
    line.tokens = TOKENS_NONE;
    if (check.kind === 'blank') {
      line.kind = KIND_BLANK;
      this.blank++;
      return;
    }
    line.kind = check.kind === 'example' ? KIND_EXAMPLE : KIND_BROKEN;
    this.nonBlank++;
    const hash = held ? textHash(text as string) : lineHash(buf, start, end);
    line.hash = shortHash(hash);
    this.dups.add(line);
    this.errors += check.errors;
    this.warnings += check.findings.length - check.errors;
    for (const f of check.findings) this.byCode[f.code]++;
    if (line.kind !== KIND_EXAMPLE) return;
    this.examples++;
    if (check.errors > 0) return;
    this.valid++;
    if (this.settings.countTokens) this.startTokens(line, edited, hash);
  }

  /** Takes a line out of the counts (an edit replaced it). */
  private unaccount(line: Line): void {
    if (!line.counted) return;
    line.counted = false;
    this.lines--;
    if (line.kind === KIND_BLANK) {
      this.blank--;
      return;
    }
    this.nonBlank--;
    this.dups.remove(line);
    this.errors -= line.errors;
    this.warnings -= line.findings.length - line.errors;
    for (const f of line.findings) this.byCode[f.code]--;
    if (line.kind !== KIND_EXAMPLE) return;
    this.examples--;
    if (line.errors > 0) return;
    this.valid--;
    this.dropTokens(line);
  }

  /**
   * A valid example joins token counting: counts of the same content are reused (from a copy in this
   * document, or from the cache by the content's full hash), else it waits its turn; an `edited` line goes
   * first. A line too long to count is marked so at once.
   */
  private startTokens(line: Line, edited: boolean, hash: number): void {
    const bytes = line.text !== undefined ? line.text.length : line.end - line.start;
    if (bytes > MAX_COUNTED_LENGTH && this.model.length(line) > MAX_COUNTED_LENGTH) {
      line.tokens = TOKENS_SKIPPED;
      return;
    }
    const same = this.dups.sameAs(line);
    const known = same !== undefined && same.tokens >= 0 ? { total: same.tokens, trained: same.trained } : this.tokenCache.cached(hash);
    if (known) {
      this.addTokens(line, known);
      return;
    }
    line.tokens = TOKENS_PENDING;
    this.pending++;
    if (edited) this.dirty.push(line);
  }

  /** The full (53-bit) hash of a line's content: the token cache's key, shared with the disk checker. */
  private contentHash(line: Line): number {
    return line.text !== undefined ? textHash(line.text) : lineHash(line.buf as Buffer, line.start, line.end);
  }

  private addTokens(line: Line, counts: TokenCounts): void {
    line.tokens = counts.total;
    line.trained = counts.trained;
    this.tokenized++;
    this.tokenSum += counts.total;
    this.trainedSum += counts.trained;
    if (counts.total > this.settings.maxSequenceLength) this.overLength++;
  }

  private dropTokens(line: Line): void {
    if (line.tokens >= 0) {
      this.tokenized--;
      this.tokenSum -= line.tokens;
      this.trainedSum -= line.trained;
      if (line.tokens > this.settings.maxSequenceLength) this.overLength--;
    } else if (line.tokens === TOKENS_PENDING) {
      this.pending--;
    }
    line.tokens = TOKENS_NONE;
  }
}
