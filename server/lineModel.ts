import type { LineFinding } from '../common/dataset/codes';
import { utf16Length } from '../common/dataset/lineCheck';

/**
 * The text of an open dataset, one object per line, as the language server keeps it instead of a full-text
 * document: the file as it was opened stays UTF-8 bytes (half the size of a JS string for English text, and
 * the line checker works on bytes), each line points into them, and only the lines that the user edited hold
 * their text as a string. An edit replaces the lines it touches and nothing else, so a change in a
 * 1,000,000-line document costs what its few lines cost, plus one pass that renumbers the lines after it when
 * the count of lines changed.
 *
 * The bytes are kept in segments of under 128 KB rather than one buffer: the C allocator serves blocks that
 * small from the memory that the open message's read buffers just gave back, where one big buffer would be
 * mapped anew and the freed memory would stay resident, unused (a third more memory on a 100 MB file).
 *
 * Lines are split on LF only; a CR before the LF (or at the very end) belongs to the line ending. This is
 * what common/dataset's file checker does, so the editor and the command-line validator number lines alike.
 * A lone CR inside a line stays text (VS Code normalises line ends when it loads a file, so it never sends one).
 */

/** What a line is, after its checks: see {@link Line.kind}. */
export const KIND_BLANK = 0;
export const KIND_EXAMPLE = 1;
export const KIND_BROKEN = 2;

/** Token counts of a line not known yet (waiting to be counted). */
export const TOKENS_PENDING = -1;
/** Token counts that will never exist: the line is not a valid example, or counting is off. */
export const TOKENS_NONE = -2;
/** The line is too big to count without stalling the server (see the token counter). */
export const TOKENS_SKIPPED = -3;
/** The tokenizer could not count the line (it did not parse as the checks said it would). */
export const TOKENS_FAILED = -4;

const EMPTY: readonly LineFinding[] = Object.freeze([]);

/**
 * One line of the document and what the checks found in it. A plain class with every field set in the
 * constructor, so that V8 gives all lines one shape and keeps a million of them compact.
 */
export class Line {
  /** The bytes that hold the content (a segment of the opened file); undefined when `text` holds it. */
  buf: Buffer | undefined;
  /** Byte offset of the content in `buf`. */
  start: number;
  /** Byte offset just past the content in `buf` (before any CR LF). */
  end: number;
  /** The content (without line ending) of a line the user edited; undefined for lines in the buffer. */
  text: string | undefined;
  /** The line ends with CR (before its LF, or at the end of the file). */
  cr: boolean;
  /**
   * The line's place in document order: increasing along the document, with gaps, so that inserting lines
   * renumbers only a few neighbours rather than every line after them (see LineModel.label). Not the line
   * number: `LineModel.indexOf` finds that. -1 once the line was removed.
   */
  order = -1;

  // What the dataset checks found; set by DatasetDocument when it accounts the line.
  /** Whether this line counts in the file (false for the empty remainder after a final newline). */
  counted = false;
  kind = KIND_BLANK;
  findings: readonly LineFinding[] = EMPTY;
  errors = 0;
  messages = 0;
  /** The low 32 bits of `lineHash` of the content (non-blank lines only); equal for equal contents. */
  hash = 0;
  /** An exact copy of an earlier line (kept by the duplicate index). */
  dup = false;
  /** Tokens of the rendered conversation, or one of the TOKENS_* markers. */
  tokens = TOKENS_NONE;
  /** Trained (assistant) tokens. */
  trained = 0;

  constructor(buf: Buffer | undefined, start: number, end: number, text: string | undefined, cr: boolean) {
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.text = text;
    this.cr = cr;
  }
}

/** A position in LSP terms: 0-based line and UTF-16 character. */
export interface ModelPosition {
  line: number;
  character: number;
}

/** What one content change did to the lines: `removed` were at `[from, from + removed.length)`, `added` are there now. */
export interface LineSplice {
  from: number;
  removed: Line[];
  added: Line[];
}

/** Splits text into lines (see the module comment for what a line end is). */
function textLines(text: string): Line[] {
  const out: Line[] = [];
  let from = 0;
  for (;;) {
    const nl = text.indexOf('\n', from);
    const stop = nl < 0 ? text.length : nl;
    const cr = stop > from && text.charCodeAt(stop - 1) === 0x0d;
    out.push(new Line(undefined, 0, 0, text.slice(from, cr ? stop - 1 : stop), cr));
    if (nl < 0) return out;
    from = nl + 1;
  }
}

/** UTF-16 units per segment: at most 3 bytes each, so a segment stays under 128 KB (see the module comment). */
const SEGMENT_UNITS = 40_000;

/** Splits text into lines held in UTF-8 segments. There is always at least one line (an empty text has one). */
function bufferedLines(text: string): Line[] {
  const lines: Line[] = [];
  let from = 0;
  for (;;) {
    // A segment ends after the last line end within reach; a longer line is a segment of its own.
    let stop = text.length;
    if (from + SEGMENT_UNITS < text.length) {
      const nl = text.lastIndexOf('\n', from + SEGMENT_UNITS);
      stop = nl >= from ? nl + 1 : text.indexOf('\n', from + SEGMENT_UNITS) + 1 || text.length;
    }
    const buf = Buffer.from(text.slice(from, stop), 'utf8');
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      const end = nl < 0 ? buf.length : nl;
      // A segment that ends with a line end has no line after it, except the very last one (the empty remainder).
      if (nl < 0 && start === buf.length && stop < text.length) break;
      const cr = end > start && buf[end - 1] === 0x0d;
      lines.push(new Line(buf, start, cr ? end - 1 : end, undefined, cr));
      if (nl < 0) break;
      start = nl + 1;
    }
    if (stop >= text.length) return lines;
    from = stop;
  }
}

/** The lines of a document; see the module comment. Not a service: DatasetDocument owns one. */
export class LineModel {
  private lines: Line[];

  constructor(text: string) {
    this.lines = bufferedLines(text);
    this.label(0, this.lines.length);
  }

  /** Lines in LSP terms: one more than the count of LFs. */
  get lineCount(): number {
    return this.lines.length;
  }

  /** The line at `index` (0-based); undefined past the end. */
  line(index: number): Line | undefined {
    return this.lines[index];
  }

  /** Every line, for loops that visit the whole document (read-only by contract). */
  all(): readonly Line[] {
    return this.lines;
  }

  /** The line's content as text, without its line end. */
  text(line: Line): string {
    return line.text ?? (line.buf as Buffer).toString('utf8', line.start, line.end);
  }

  /**
   * The line's content as JSON text: without the byte order mark that may start the first line (JSON.parse
   * refuses it; the checker skips it too).
   */
  jsonText(line: Line): string {
    const text = this.text(line);
    return line === this.lines[0] && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }

  /** Whether the line starts with a byte order mark (only the first line can). */
  hasBom(line: Line): boolean {
    if (line !== this.lines[0]) return false;
    if (line.text !== undefined) return line.text.charCodeAt(0) === 0xfeff;
    const b = line.buf as Buffer;
    return line.end - line.start >= 3 && b[line.start] === 0xef && b[line.start + 1] === 0xbb && b[line.start + 2] === 0xbf;
  }

  /** The line's length in UTF-16 code units, as positions count it. */
  length(line: Line): number {
    return line.text !== undefined ? line.text.length : utf16Length(line.buf as Buffer, line.start, line.end);
  }

  /** Whether the line has no content at all (not even white space). */
  isEmpty(line: Line): boolean {
    return line.text !== undefined ? line.text.length === 0 : line.end === line.start;
  }

  /** Whether two lines have the same content (to confirm a hash match before calling one a duplicate). */
  sameContent(a: Line, b: Line): boolean {
    if (a.text !== undefined && b.text !== undefined) return a.text === b.text;
    if (a.buf && b.buf) return a.end - a.start === b.end - b.start && a.buf.compare(b.buf, b.start, b.end, a.start, a.end) === 0;
    const [held, stored] = a.text !== undefined ? [a.text, b] : [b.text as string, a];
    if (Buffer.byteLength(held, 'utf8') !== stored.end - stored.start) return false;
    return Buffer.from(held, 'utf8').equals((stored.buf as Buffer).subarray(stored.start, stored.end));
  }

  /** Clamps a position to the document, as the protocol asks for positions past a line's end or past the last line. */
  private clamp(position: ModelPosition): { line: number; character: number } {
    const last = this.lines.length - 1;
    if (position.line > last) return { line: last, character: this.length(this.lines[last]) };
    const line = Math.max(0, position.line);
    const character = Math.max(0, Math.min(position.character, this.length(this.lines[line])));
    return { line, character };
  }

  /**
   * Applies one incremental change (LSP `TextDocumentContentChangeEvent` with a range): the lines from the
   * range's start line to its end line are replaced by the lines of `prefix + text + suffix`. Returns what
   * was replaced, for the caller to re-check.
   */
  replace(rangeStart: ModelPosition, rangeEnd: ModelPosition, text: string): LineSplice {
    let start = this.clamp(rangeStart);
    let end = this.clamp(rangeEnd);
    if (end.line < start.line || (end.line === start.line && end.character < start.character)) [start, end] = [end, start];
    const first = this.lines[start.line];
    const last = this.lines[end.line];
    const firstText = this.text(first);
    const lastText = first === last ? firstText : this.text(last);
    const combined = firstText.slice(0, start.character) + text + lastText.slice(end.character) + (last.cr ? '\r' : '');
    const added = textLines(combined);
    const removedCount = end.line - start.line + 1;
    const removed = this.splice(start.line, removedCount, added);
    return { from: start.line, removed, added };
  }

  /** Replaces the whole document (a change without a range). */
  replaceAll(text: string): LineSplice {
    const removed = this.lines;
    for (const line of removed) line.order = -1;
    this.lines = bufferedLines(text);
    this.label(0, this.lines.length);
    return { from: 0, removed, added: this.lines };
  }

  /**
   * The 0-based line number of a line in the document (a binary search on `order`); -1 when it was removed.
   */
  indexOf(line: Line): number {
    const lines = this.lines;
    const order = line.order;
    if (order < 0) return -1;
    let lo = 0;
    let hi = lines.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const o = lines[mid].order;
      if (o < order) lo = mid + 1;
      else if (o > order) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  /**
   * Replaces `count` lines at `from` by `added`. Array.prototype.splice with a spread is the fast path; a
   * paste of many lines is spliced by concatenation, since spreading a huge array into arguments would
   * overflow the stack.
   */
  private splice(from: number, count: number, added: Line[]): Line[] {
    let removed: Line[];
    if (added.length <= 4096) {
      removed = this.lines.splice(from, count, ...added);
    } else {
      removed = this.lines.slice(from, from + count);
      this.lines = this.lines.slice(0, from).concat(added, this.lines.slice(from + count));
    }
    for (const line of removed) line.order = -1;
    this.label(from, added.length);
    return removed;
  }

  /**
   * Gives `count` new lines at `from` their `order`, between their neighbours' (an order-maintenance list).
   * When the gap there is too small, the window around them grows until it has room for twice its lines,
   * and the whole window is spread out evenly: typing Enter at the same place again and again relabels a
   * few lines now and then, never the whole document (amortised O(log² n) per line).
   */
  private label(from: number, count: number): void {
    const lines = this.lines;
    let a = from;
    let b = from + count;
    let grow = Math.max(count, 1);
    for (;;) {
      const low = a > 0 ? lines[a - 1].order : 0;
      const high = b < lines.length ? lines[b].order : MAX_ORDER;
      const n = b - a;
      const whole = a === 0 && b === lines.length;
      if (high - low - 1 >= 2 * n || (whole && high - low - 1 >= n)) {
        const step = (high - low) / (n + 1);
        for (let i = 0; i < n; i++) lines[a + i].order = low + Math.floor(step * (i + 1));
        return;
      }
      if (whole) throw new Error(`a document of ${lines.length} lines is more than the line model can order`);
      grow *= 2;
      a = Math.max(0, from - grow);
      b = Math.min(lines.length, from + count + grow);
    }
  }
}

/** Orders stay small integers (V8 keeps them unboxed): room for a billion lines, or a thousand between two lines of a million. */
const MAX_ORDER = 2 ** 30;
