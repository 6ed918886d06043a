import { msg } from '../i18n/messages';
import { compareFindings, finding, type Finding, type FindingCode, FINDING_CODES } from './codes';
import { lineHash } from './hash';
import { type LineCheck, LineChecker, utf16Length } from './lineCheck';

/** The counts every view of a dataset shares (file check, open document, statistics), never capped. */
export interface DatasetCounts {
  /** Lines of the file (a final newline does not start another). */
  lines: number;
  /** Lines that are examples (objects with a non-empty `messages` array), with or without findings. */
  examples: number;
  /** Examples without any error: what training would use. */
  validExamples: number;
  blank: number;
  errors: number;
  warnings: number;
  /** Findings per code. */
  byCode: Record<FindingCode, number>;
}

/** What a whole file holds, counted over all of it. */
export interface FileSummary extends DatasetCounts {
  /** Bytes read. */
  bytes: number;
}

/** Called for every checked line, for callers that do more per line (token counts, statistics). */
export type LineHook = (buf: Uint8Array, start: number, end: number, line: number, check: LineCheck) => void;

/** Options of the streaming checker. */
export interface StreamCheckOptions {
  /** Receives every finding, in file order (by line, then column). */
  onFinding?: (finding: Finding) => void;
  /** Receives every line after its checks (its `buf` range is only valid during the call). */
  onLine?: LineHook;
}

/** Creates the zeroed per-code counters. */
export function emptyCounts(): Record<FindingCode, number> {
  return Object.fromEntries(FINDING_CODES.map((code) => [code, 0])) as Record<FindingCode, number>;
}

/** The `duplicate` finding of a line that copies the 0-based line `original`. */
export function duplicateFinding(original: number, length: number): Omit<Finding, 'line'> {
  return finding('duplicate', msg('duplicate', original + 1), 0, length, original);
}

/** The `line-blank` finding of a blank line of `length` UTF-16 units. */
export function blankFinding(length: number): Omit<Finding, 'line'> {
  return finding('line-blank', msg('line-blank'), 0, length);
}

/** The `too-long` finding of a line of `length` UTF-16 units whose conversation has `tokens` tokens. */
export function tooLongFinding(tokens: number, max: number, length: number): Omit<Finding, 'line'> {
  return finding('too-long', msg('too-long', tokens, max), 0, length, tokens);
}

/** The `file-empty` finding of a file with no lines but blank ones. */
export function fileEmptyFinding(): Finding {
  return { ...finding('file-empty', msg('file-empty'), 0, 0), line: 0 };
}

/**
 * Checks a dataset file given as a stream of byte chunks, with every rule of `LineChecker` plus the
 * file-wide ones (`duplicate`, `line-blank`, `file-empty`). Memory stays bounded by the longest line and one
 * hash per line, whatever the file's size. Not `too-long`: token counting is the caller's (see `onLine`).
 */
export class DatasetStreamChecker {
  private readonly lines = new LineChecker();
  private readonly seen = new Map<number, number>();
  private carry = new Uint8Array(0);
  private carryLength = 0;
  private line = 0;
  private ended = false;
  private readonly summary: FileSummary = {
    lines: 0,
    examples: 0,
    validExamples: 0,
    blank: 0,
    errors: 0,
    warnings: 0,
    byCode: emptyCounts(),
    bytes: 0,
  };
  /** Lengths of the leading blank lines, reported only once a non-blank line proves the file is not empty. */
  private heldBlank: number[] = [];
  private sawContent = false;

  constructor(private readonly options: StreamCheckOptions = {}) {}

  /** Feeds the next chunk of the file. The chunk may be reused by the caller after the call. */
  push(chunk: Uint8Array): void {
    this.summary.bytes += chunk.length;
    let from = 0;
    if (this.carryLength > 0) {
      const nl = chunk.indexOf(0x0a);
      if (nl < 0) {
        this.append(chunk, 0, chunk.length);
        return;
      }
      this.append(chunk, 0, nl);
      this.doLine(this.carry, 0, this.carryLength);
      this.carryLength = 0;
      from = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      if (nl < 0) break;
      this.doLine(chunk, from, nl);
      from = nl + 1;
    }
    if (from < chunk.length) this.append(chunk, from, chunk.length);
  }

  /** Ends the file: checks its last line and returns the counts. */
  end(): FileSummary {
    if (this.ended) return this.summary;
    this.ended = true;
    // A final line without a newline is a line; the empty remainder after a final newline is not.
    if (this.carryLength > 0) this.doLine(this.carry, 0, this.carryLength);
    this.carry = new Uint8Array(0);
    if (!this.sawContent) {
      this.heldBlank = [];
      this.summary.blank = 0;
      this.summary.warnings = 0;
      this.summary.byCode['line-blank'] = 0;
      this.emit(fileEmptyFinding());
    }
    this.seen.clear();
    return this.summary;
  }

  private append(chunk: Uint8Array, start: number, end: number): void {
    const need = this.carryLength + (end - start);
    if (need > this.carry.length) {
      const grown = new Uint8Array(Math.max(need, this.carry.length * 2, 4096));
      grown.set(this.carry.subarray(0, this.carryLength));
      this.carry = grown;
    }
    this.carry.set(chunk.subarray(start, end), this.carryLength);
    this.carryLength = need;
  }

  private doLine(buf: Uint8Array, start: number, end: number): void {
    const line = this.line++;
    const summary = this.summary;
    summary.lines++;
    if (end > start && buf[end - 1] === 0x0d) end--;
    const check = this.lines.check(buf, start, end, line === 0);
    if (check.kind === 'blank') {
      summary.blank++;
      summary.warnings++;
      summary.byCode['line-blank']++;
      const length = utf16Length(buf, start, end);
      if (this.sawContent) this.emit({ ...blankFinding(length), line });
      else this.heldBlank.push(length);
      this.options.onLine?.(buf, start, end, line, check);
      return;
    }
    if (!this.sawContent) {
      this.sawContent = true;
      this.heldBlank.forEach((length, held) => this.emit({ ...blankFinding(length), line: held }));
      this.heldBlank = [];
    }
    if (check.kind === 'example') {
      summary.examples++;
      if (check.errors === 0) summary.validExamples++;
    }
    const hash = lineHash(buf, start, end);
    const original = this.seen.get(hash);
    if (original === undefined) this.seen.set(hash, line);
    if (original === undefined) {
      for (const f of check.findings) this.count({ ...f, line });
      if (this.options.onFinding) for (const f of check.findings) this.options.onFinding({ ...f, line });
    } else {
      const all: Finding[] = [{ ...duplicateFinding(original, utf16Length(buf, start, end)), line }];
      for (const f of check.findings) all.push({ ...f, line });
      all.sort(compareFindings);
      for (const f of all) this.count(f);
      if (this.options.onFinding) for (const f of all) this.options.onFinding(f);
    }
    this.options.onLine?.(buf, start, end, line, check);
  }

  private count(f: Finding): void {
    const summary = this.summary;
    if (f.severity === 'error') summary.errors++;
    else summary.warnings++;
    summary.byCode[f.code]++;
  }

  private emit(f: Finding): void {
    if (f.code !== 'line-blank') this.count(f);
    this.options.onFinding?.(f);
  }
}
