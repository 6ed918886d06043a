// How `validate` prints: a buffered writer that respects back-pressure, and one reporter per output format.
// Both formats stream: findings are written as they are found, so memory does not grow with their number.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Finding } from '../common/dataset/codes';

/** Collects output in large pieces and writes them to a stream, waiting when the stream asks to. */
export class BufferedWriter {
  private pending: string[] = [];
  private size = 0;

  constructor(
    private readonly stream: Writable,
    private readonly limit = 1 << 16,
  ) {}

  /** Adds text; writes once enough is collected (await it, so that a slow reader slows the producer). */
  async write(text: string): Promise<void> {
    this.pending.push(text);
    this.size += text.length;
    if (this.size >= this.limit) await this.flush();
  }

  /** Writes everything collected so far. */
  async flush(): Promise<void> {
    if (this.size === 0 && this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.size = 0;
    if (!this.stream.write(text)) await new Promise<void>((resolve) => this.stream.once('drain', () => resolve()));
  }
}

/** The counts of one file, printed after its findings. */
export interface FileTotals {
  examples: number;
  errors: number;
  warnings: number;
  /** Findings not printed because of `--max-diagnostics`. */
  omitted: number;
  /** Why tokens were not counted, when they were asked for and could not be. */
  tokensOff?: string;
}

/** Prints the findings of the files of one run. Calls: begin, (file, finding*, endFile)*, end. */
export interface Reporter {
  begin(): Promise<void>;
  file(path: string): Promise<void>;
  /** A finding of the current file, in order; `Finding.line` is 0-based, columns 0-based UTF-16 units. */
  finding(finding: Finding): Promise<void>;
  endFile(totals: FileTotals): Promise<void>;
  /** Forgets a file that could not be read to its end (its error goes to standard error). */
  abandonFile(): Promise<void>;
  end(): Promise<void>;
}

/** `path:line:col: severity code: message`, as compilers print, so that editors and CI link to the place. */
export class TextReporter implements Reporter {
  private path = '';

  constructor(private readonly out: BufferedWriter) {}

  async begin(): Promise<void> {}

  async file(path: string): Promise<void> {
    this.path = path;
  }

  async finding(f: Finding): Promise<void> {
    await this.out.write(`${this.path}:${f.line + 1}:${f.start + 1}: ${f.severity} ${f.code}: ${f.message}\n`);
  }

  async endFile(t: FileTotals): Promise<void> {
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    let line = `${this.path}: ${plural(t.examples, 'example')}, ${plural(t.errors, 'error')}, ${plural(t.warnings, 'warning')}`;
    if (t.omitted > 0) line += ` (${t.omitted} not shown, see --max-diagnostics)`;
    if (t.tokensOff) line += ` (tokens not counted: ${t.tokensOff})`;
    await this.out.write(line + '\n');
  }

  async abandonFile(): Promise<void> {}

  async end(): Promise<void> {
    await this.out.flush();
  }
}

/**
 * Diagnostics text held in memory up to a limit, then in a temporary file: JSON output lists a file's counts
 * before its diagnostics, and the counts are known only at the end, so the diagnostics wait somewhere that does
 * not grow the heap.
 */
class Spill {
  private parts: string[] = [];
  private size = 0;
  private dir: string | undefined;
  private fd = -1;

  constructor(private readonly limit = 4 << 20) {}

  add(text: string): void {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= this.limit) this.spill();
  }

  private spill(): void {
    if (this.fd < 0) {
      this.dir = mkdtempSync(join(tmpdir(), 'finetune-studio-'));
      this.fd = openSync(join(this.dir, 'diagnostics.json'), 'w+');
    }
    writeSync(this.fd, this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }

  /** Writes everything held, in order, then empties itself. */
  async drainTo(out: BufferedWriter): Promise<void> {
    if (this.fd >= 0) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      const decoder = new TextDecoder();
      let position = 0;
      for (;;) {
        const n = readSync(this.fd, chunk, 0, chunk.length, position);
        if (n === 0) break;
        position += n;
        await out.write(decoder.decode(chunk.subarray(0, n), { stream: true }));
      }
      this.dispose();
    }
    await out.write(this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }

  dispose(): void {
    if (this.fd >= 0) closeSync(this.fd);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.fd = -1;
    this.dir = undefined;
  }
}

/**
 * `{"files":[{"path","examples","errors","warnings","diagnostics":[…]}]}` with 1-based lines and columns and
 * an exclusive end column, as the issue specifies. `omitted` is added when --max-diagnostics left some out.
 */
export class JsonReporter implements Reporter {
  private files = 0;
  private count = 0;
  private spill = new Spill();
  private path = '';

  constructor(private readonly out: BufferedWriter) {}

  async begin(): Promise<void> {
    await this.out.write('{"files":[');
  }

  async file(path: string): Promise<void> {
    this.path = path;
    this.count = 0;
  }

  async finding(f: Finding): Promise<void> {
    const line = f.line + 1;
    this.spill.add(
      `${this.count++ > 0 ? ',' : ''}\n{"line":${line},"column":${f.start + 1},"endLine":${line},"endColumn":${f.end + 1},` +
        `"code":"${f.code}","severity":"${f.severity}","message":${JSON.stringify(f.message)}}`,
    );
  }

  async endFile(t: FileTotals): Promise<void> {
    let head = `${this.files++ > 0 ? ',' : ''}\n{"path":${JSON.stringify(this.path)},"examples":${t.examples},"errors":${t.errors},"warnings":${t.warnings}`;
    if (t.omitted > 0) head += `,"omitted":${t.omitted}`;
    if (t.tokensOff) head += `,"tokensOff":${JSON.stringify(t.tokensOff)}`;
    await this.out.write(head + ',"diagnostics":[');
    await this.spill.drainTo(this.out);
    await this.out.write(']}');
  }

  async abandonFile(): Promise<void> {
    this.spill.dispose();
    this.spill = new Spill();
  }

  async end(): Promise<void> {
    await this.out.write('\n]}\n');
    await this.out.flush();
  }
}
