import { createReadStream, type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Finding, LineFinding } from '../common/dataset/codes';
import { DatasetStreamChecker, type FileSummary, tooLongFinding } from '../common/dataset/fileCheck';
import { utf16Length } from '../common/dataset/lineCheck';
import { lineHash } from '../common/dataset/hash';
import type { DatasetStatistics } from '../common/lspProtocol';
import { cappedDiagnostics } from './diagnostics';
import { type ClientSink, describe } from './documentService';
import { t } from './l10n';
import type { ServerSettings } from './settings';
import { buildStatistics, IntList } from './statistics';
import { MAX_COUNTED_LENGTH, type TokenCounter } from './tokenCounter';

/** Read size: large, so that a 100 MB file is a few dozen reads, yet one chunk's check is a few ms. */
const CHUNK_BYTES = 2 << 20;
/** Saves come as bursts of file events (truncate, write, rename): wait until they settle. */
const DEBOUNCE_MS = 300;
/** Token counting holds the thread at most this long before it lets other messages through. */
const SLICE_MS = 6;
/** While tokens are counted, re-publish and update the status at most this often. */
const PROGRESS_MS = 500;

/** Lets other messages through; waits `ms` first when the live documents ask for quiet (see DocumentService.holdOff). */
const yieldToEventLoop = (ms: number): Promise<void> =>
  new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

/** One file that is checked from disk, and what its last check found. */
class DiskDataset {
  /** Bumped by every restart; a run that sees another generation stops. */
  generation = 0;
  summary: FileSummary | undefined;
  /** The first findings in file order (at most the cap): what gets published. */
  findings: Finding[] = [];
  /** 0-based lines of the valid examples, and their message counts. */
  valid = new IntList();
  messages = new IntList();
  /** Token counts of the valid examples counted so far, in file order. */
  tokens = new IntList();
  trained = new IntList();
  /** Over-length examples found so far: line, tokens and line length, in file order. */
  overLong: { line: number; tokens: number; length: number }[] = [];
  counting = false;
  watcher: FSWatcher | undefined;
  debounce: NodeJS.Timeout | undefined;
  lastProgress = 0;

  constructor(
    readonly uri: string,
    readonly path: string,
  ) {}

  reset(): void {
    this.summary = undefined;
    this.findings = [];
    this.valid = new IntList();
    this.messages = new IntList();
    this.tokens = new IntList();
    this.trained = new IntList();
    this.overLong = [];
    this.counting = false;
  }
}

/**
 * Datasets too large for VS Code to sync (over 50 × 2^20 UTF-16 units): the client sends
 * `dataset/checkFromDisk` for such a file open in a tab, and this service checks it from disk with the
 * streaming checker (memory bounded by the longest line), publishes its diagnostics as for an open
 * document, counts its tokens in the background, re-checks it when it changes on disk, and tells the user
 * once why live checking is off for it. `dataset/stopCheckFromDisk` drops it.
 */
export class DiskDatasetService {
  private readonly files = new Map<string, DiskDataset>();
  /** Files whose "checked from disk" message the user has seen (once per file per session). */
  private readonly told = new Set<string>();

  constructor(
    private readonly sink: ClientSink,
    private readonly counter: TokenCounter,
    private settings: ServerSettings,
    private readonly holdOff: () => number = () => 0,
  ) {}

  /** `dataset/checkFromDisk`: starts checking a file (again, if it was being checked). */
  check(uri: string): void {
    let path: string;
    try {
      path = fileURLToPath(uri);
    } catch (error) {
      this.sink.error(`Cannot check ${uri} from disk: only file: URIs can be read (${describe(error)}).`);
      return;
    }
    let file = this.files.get(uri);
    if (!file) {
      file = new DiskDataset(uri, path);
      this.files.set(uri, file);
      this.watch(file);
    }
    this.tell(file);
    this.restart(file);
  }

  /** `dataset/stopCheckFromDisk`: forgets the file and clears its diagnostics. */
  stop(uri: string): void {
    const file = this.files.get(uri);
    if (!file) return;
    this.drop(file);
    this.sink.publishDiagnostics(uri, undefined, []);
  }

  /** Whether this file is checked from disk. */
  has(uri: string): boolean {
    return this.files.has(uri);
  }

  /** `dataset/statistics` of a file checked from disk; null when it is not (or its first check is running). */
  statistics(uri: string): DatasetStatistics | null {
    const file = this.files.get(uri);
    const summary = file?.summary;
    if (!file || !summary) return null;
    const { errors, warnings, byCode } = this.totals(file, summary);
    return buildStatistics({
      uri,
      live: false,
      lines: summary.lines,
      examples: summary.examples,
      validExamples: summary.validExamples,
      blank: summary.blank,
      errors,
      warnings,
      byCode,
      maxSequenceLength: this.settings.maxSequenceLength,
      messages: file.messages.values(),
      tokens: file.tokens.values(),
      trained: file.trained.values(),
    });
  }

  /** New settings: files are checked again with them. */
  configure(settings: ServerSettings): void {
    const before = this.settings;
    this.settings = settings;
    const same =
      before.maxDiagnostics === settings.maxDiagnostics &&
      before.maxSequenceLength === settings.maxSequenceLength &&
      before.countTokens === settings.countTokens;
    if (!same) for (const file of this.files.values()) this.restart(file);
  }

  /** Stops every check and watcher (the connection is closing). */
  dispose(): void {
    for (const file of [...this.files.values()]) this.drop(file);
  }

  private drop(file: DiskDataset): void {
    file.generation++;
    file.watcher?.close();
    clearTimeout(file.debounce);
    this.files.delete(file.uri);
  }

  private tell(file: DiskDataset): void {
    if (this.told.has(file.uri)) return;
    this.told.add(file.uri);
    let size = '';
    try {
      size = ` (${(statSync(file.path).size / 2 ** 20).toFixed(0)} MB)`;
    } catch {
      // The check itself reports a file that cannot be read.
    }
    this.sink.showInfo(t('server/too-large', basename(file.path), size));
  }

  /** Re-checks on changes on disk. The folder is watched, since saves often replace the file (a rename). */
  private watch(file: DiskDataset): void {
    const name = basename(file.path);
    try {
      file.watcher = watch(dirname(file.path), (_event, changed) => {
        if (changed !== null && changed.toString() !== name) return;
        clearTimeout(file.debounce);
        file.debounce = setTimeout(() => {
          if (this.files.get(file.uri) === file) this.restart(file);
        }, DEBOUNCE_MS);
      });
      file.watcher.on('error', (error) => this.sink.error(`Watching ${file.path} failed: ${describe(error)}`));
    } catch (error) {
      this.sink.error(`Cannot watch ${file.path} for changes: ${describe(error)}`);
    }
  }

  private restart(file: DiskDataset): void {
    const generation = ++file.generation;
    this.run(file, generation).catch((error: unknown) => {
      if (file.generation !== generation) return;
      this.sink.error(`Checking ${file.path} from disk failed: ${describe(error)}`);
      file.reset();
      this.sink.publishDiagnostics(file.uri, undefined, []);
    });
  }

  /** One check: the structural pass (then publish), then the token pass (publishing as it finds long examples). */
  private async run(file: DiskDataset, generation: number): Promise<void> {
    const started = performance.now();
    const cap = this.settings.maxDiagnostics;
    const findings: Finding[] = [];
    const valid = new IntList();
    const messages = new IntList();
    const checker = new DatasetStreamChecker({
      onFinding: (f) => {
        if (findings.length < cap) findings.push(f);
      },
      onLine: (_buf, _start, _end, line, check) => {
        if (check.kind === 'example' && check.errors === 0) {
          valid.push(line);
          messages.push(check.messages);
        }
      },
    });
    const stream = createReadStream(file.path, { highWaterMark: CHUNK_BYTES });
    try {
      for await (const chunk of stream) {
        if (file.generation !== generation) return;
        checker.push(chunk as Buffer);
      }
    } finally {
      stream.destroy();
    }
    if (file.generation !== generation) return;
    file.reset();
    file.summary = checker.end();
    file.findings = findings;
    file.valid = valid;
    file.messages = messages;
    file.counting = this.settings.countTokens && valid.length > 0;
    this.publish(file);
    this.sink.log(`Checked ${file.path} from disk: ${file.summary.lines} lines in ${Math.round(performance.now() - started)} ms.`);
    if (file.counting) await this.countTokens(file, generation);
  }

  /** Waits for the tokenizer; false when it cannot be loaded. */
  private tokenizerReady(): Promise<boolean> {
    return new Promise((resolve) => this.counter.ensureLoaded(() => resolve(this.counter.state === 'ready')));
  }

  /** The token pass: reads the file again and counts every valid example, yielding between slices. */
  private async countTokens(file: DiskDataset, generation: number): Promise<void> {
    if (!(await this.tokenizerReady()) || file.generation !== generation) {
      file.counting = false;
      if (file.generation === generation) this.sendStatus(file);
      return;
    }
    const valid = file.valid.values().slice();
    const max = this.settings.maxSequenceLength;
    let next = 0;
    let line = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let tooBig = false;
    let deadline = performance.now() + SLICE_MS;
    let found = false;
    const countLine = (buf: Buffer, start: number, end: number): void => {
      if (end > start && buf[end - 1] === 0x0d) end--;
      const hash = lineHash(buf, start, end);
      let counts = this.counter.cached(hash);
      if (!counts) {
        counts = end - start <= MAX_COUNTED_LENGTH * 3 ? this.counter.count(buf.toString('utf8', start, end)) : undefined;
        if (counts) this.counter.remember(hash, counts);
      }
      if (!counts) return;
      file.tokens.push(counts.total);
      file.trained.push(counts.trained);
      if (counts.total > max) {
        file.overLong.push({ line, tokens: counts.total, length: utf16Length(buf, start, end) });
        found = true;
      }
    };
    const stream = createReadStream(file.path, { highWaterMark: CHUNK_BYTES });
    try {
      for await (const data of stream) {
        const chunk = data as Buffer;
        let from = 0;
        while (next < valid.length) {
          const nl = chunk.indexOf(0x0a, from);
          if (nl < 0) break;
          if (line === valid[next]) {
            next++;
            if (tooBig) {
              tooBig = false;
            } else if (pending.length > 0) {
              const whole = Buffer.concat([...pending, chunk.subarray(from, nl)]);
              countLine(whole, 0, whole.length);
            } else {
              countLine(chunk, from, nl);
            }
          }
          pending = [];
          pendingBytes = 0;
          line++;
          from = nl + 1;
          if (performance.now() > deadline) {
            await yieldToEventLoop(this.holdOff());
            if (file.generation !== generation) return;
            deadline = performance.now() + SLICE_MS;
            found = this.progress(file, found);
          }
        }
        if (next >= valid.length) break;
        // Only a line that will be counted needs its bytes kept across chunks.
        if (from < chunk.length && line === valid[next]) {
          pending.push(chunk.subarray(from));
          pendingBytes += chunk.length - from;
        }
        if (pendingBytes > MAX_COUNTED_LENGTH * 3) {
          // Not counted (see MAX_COUNTED_LENGTH); its bytes need not be kept.
          pending = [];
          pendingBytes = 0;
          tooBig = true;
        }
        if (file.generation !== generation) return;
      }
      // A last line without a final newline.
      if (next < valid.length && line === valid[next] && pending.length > 0 && !tooBig) {
        const whole = Buffer.concat(pending);
        countLine(whole, 0, whole.length);
      }
    } finally {
      stream.destroy();
    }
    if (file.generation !== generation) return;
    file.counting = false;
    this.publish(file);
  }

  /** During the token pass: re-publish (when long examples were found) or send the status, throttled. */
  private progress(file: DiskDataset, found: boolean): boolean {
    const now = performance.now();
    if (now - file.lastProgress < PROGRESS_MS) return found;
    file.lastProgress = now;
    if (found) this.publish(file);
    else this.sendStatus(file);
    return false;
  }

  private totals(file: DiskDataset, summary: FileSummary): { errors: number; warnings: number; byCode: FileSummary['byCode'] } {
    const over = file.overLong.length;
    return {
      errors: summary.errors,
      warnings: summary.warnings + over,
      byCode: { ...summary.byCode, 'too-long': over },
    };
  }

  private publish(file: DiskDataset): void {
    const summary = file.summary;
    if (!summary) return;
    const { errors, warnings } = this.totals(file, summary);
    const max = this.settings.maxSequenceLength;
    // Structural findings and the too-long ones found so far, merged in file order.
    const structural = file.findings;
    const long = file.overLong;
    const visit = (visitor: (line: number, f: LineFinding) => boolean): void => {
      let i = 0;
      let j = 0;
      while (i < structural.length || j < long.length) {
        const takeLong = j < long.length && (i >= structural.length || long[j].line < structural[i].line);
        if (takeLong) {
          const { line, tokens, length } = long[j++];
          if (!visitor(line, tooLongFinding(tokens, max, length))) return;
        } else {
          const f = structural[i++];
          if (!visitor(f.line, f)) return;
        }
      }
    };
    this.sink.publishDiagnostics(file.uri, undefined, cappedDiagnostics(visit, errors + warnings, this.settings.maxDiagnostics));
    this.sendStatus(file);
  }

  private sendStatus(file: DiskDataset): void {
    const summary = file.summary;
    if (!summary) return;
    const { errors, warnings } = this.totals(file, summary);
    let tokens = 0;
    for (const n of file.tokens.values()) tokens += n;
    this.sink.sendStatus({ uri: file.uri, examples: summary.examples, errors, warnings, tokens, counting: file.counting, live: false });
  }
}
