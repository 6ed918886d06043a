// One engine child process (a training job, or a chat server): spawns it, writes JSON lines to its stdin, reads
// its stdout as JSON lines checked by parseEngineMessage, keeps the tail of its stderr (and a capped copy in a
// file), and stops it: stdin closed first, SIGTERM after a grace period, SIGKILL when that is ignored too. Every
// failure of the child (spawn error, broken pipe, garbage) stays in here: it can't take the backend down.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { EngineMessage, EngineRequest } from '../../common/engineProtocol';
import { isEngineParseError, parseEngineMessage } from '../../common/engineSchemas';
import type { Log } from '../runtime';
import type { EngineCommand } from './engines';

/** Longest stdout line taken (a checkpoint's sample can be long; anything longer is broken). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;
/** Lines of stderr kept for a failure message. */
export const STDERR_TAIL_LINES = 20;
/** Bytes of stderr kept in the log file. */
export const ENGINE_LOG_CAP = 8 * 1024 * 1024;
/** After stdin is closed: SIGTERM after this many milliseconds (counted from the stop). */
export const TERM_AFTER_MS = 2000;
/** And SIGKILL after this many (counted from the stop too). */
export const KILL_AFTER_MS = 5000;

/** How the process ended. */
export interface EngineExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when it could not be started at all. */
  spawnError?: string;
}

/** What an engine process needs. */
export interface EngineProcessOptions {
  command: EngineCommand;
  /** For the backend's log lines: `job ftjob-…`, `chat engine embedded`. */
  label: string;
  log: Log;
  /** A file for the engine's stderr (capped), or none. */
  stderrFile?: string;
  onMessage(message: EngineMessage): void;
  env?: NodeJS.ProcessEnv;
}

/** Splits a byte stream into lines, refusing lines over a cap without buffering them. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const end = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, end < 0 ? chunk.length : end);
      if (!this.skipping) {
        this.parts.push(piece);
        this.size += piece.length;
        if (this.size > this.maxBytes) {
          this.skipping = true;
          this.parts = [];
        }
      } else {
        this.size += piece.length;
      }
      if (end < 0) return;
      if (this.skipping) this.onTooLong(this.size);
      else this.onLine(Buffer.concat(this.parts).toString('utf8').replace(/\r$/, ''));
      this.parts = [];
      this.size = 0;
      this.skipping = false;
      start = end + 1;
    }
  }
}

/** A running engine process (see the file comment). */
export class EngineProcess {
  /** Resolves when the process has exited (or could not start). Never rejects. */
  readonly exited: Promise<EngineExit>;
  private readonly child: ChildProcess;
  private readonly tail: string[] = [];
  private partialStderr = '';
  private logFile: WriteStream | undefined;
  private logBytes = 0;
  private exit: EngineExit | undefined;
  private stopping: Promise<EngineExit> | undefined;

  constructor(private readonly options: EngineProcessOptions) {
    const { command, log, label } = options;
    this.child = spawn(command.file, command.args, {
      cwd: command.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    if (options.stderrFile !== undefined) {
      this.logFile = createWriteStream(options.stderrFile, { flags: 'a', mode: 0o600 });
      this.logFile.on('error', (e) => log.warn(`${label}: engine log not written: ${e.message}`));
    }
    const lines = new LineSplitter(
      MAX_LINE_BYTES,
      (line) => this.line(line),
      (bytes) => log.warn(`${label}: ignored an engine line of ${bytes} bytes (over ${MAX_LINE_BYTES})`),
    );
    this.child.stdout?.on('data', (chunk: Buffer) => lines.push(chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => this.stderr(chunk));
    // A child that exits early makes writes fail with EPIPE; the exit handler reports what matters.
    this.child.stdin?.on('error', (e) => log.warn(`${label}: engine stdin: ${e.message}`));
    this.exited = new Promise<EngineExit>((resolve) => {
      this.child.on('error', (e) => {
        // 'error' without a pid means it never started; with one, 'close' still follows.
        if (this.child.pid === undefined) {
          this.exit = { code: null, signal: null, spawnError: e.message };
          resolve(this.exit);
        } else {
          log.warn(`${label}: ${e.message}`);
        }
      });
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        if (this.partialStderr !== '') this.keepTail(this.partialStderr);
        this.logFile?.end();
        resolve(this.exit);
      });
    });
  }

  /** The process id, for tests and logs. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the process has exited. */
  get done(): boolean {
    return this.exit !== undefined;
  }

  /** The last lines the engine wrote to stderr. */
  stderrTail(): string[] {
    return [...this.tail];
  }

  /** Writes one message; false when the process can't take it any more. */
  send(message: EngineRequest): boolean {
    const stdin = this.child.stdin;
    if (this.exit !== undefined || stdin === null || stdin.destroyed || stdin.writableEnded) return false;
    stdin.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  /**
   * Stops the process: closes stdin (the engine's cue to stop), SIGTERM after `termAfterMs`, SIGKILL after
   * `killAfterMs`. Resolves when it has exited.
   */
  stop(termAfterMs = TERM_AFTER_MS, killAfterMs = KILL_AFTER_MS): Promise<EngineExit> {
    if (this.stopping !== undefined) return this.stopping;
    if (this.exit !== undefined) return Promise.resolve(this.exit);
    this.child.stdin?.end();
    const term = setTimeout(() => this.signal('SIGTERM'), termAfterMs);
    const kill = setTimeout(() => this.signal('SIGKILL'), killAfterMs);
    this.stopping = this.exited.finally(() => {
      clearTimeout(term);
      clearTimeout(kill);
    });
    return this.stopping;
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.exit !== undefined) return;
    this.options.log.warn(`${this.options.label}: engine did not stop; sending ${signal}`);
    this.child.kill(signal);
  }

  private line(line: string): void {
    if (line.trim() === '') return;
    const parsed = parseEngineMessage(line);
    if (isEngineParseError(parsed)) {
      this.options.log.warn(`${this.options.label}: ignored a malformed engine line (${parsed.error}): ${line.slice(0, 200)}`);
      return;
    }
    this.options.onMessage(parsed);
  }

  private stderr(chunk: Buffer): void {
    if (this.logFile !== undefined && this.logBytes < ENGINE_LOG_CAP) {
      const room = ENGINE_LOG_CAP - this.logBytes;
      this.logFile.write(chunk.length <= room ? chunk : chunk.subarray(0, room));
      this.logBytes += Math.min(chunk.length, room);
      if (this.logBytes >= ENGINE_LOG_CAP) this.logFile.write(`\n[engine.log capped at ${ENGINE_LOG_CAP} bytes]\n`);
    }
    const text = this.partialStderr + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partialStderr = (lines.pop() ?? '').slice(-4000);
    for (const line of lines) this.keepTail(line);
  }

  private keepTail(line: string): void {
    const trimmed = line.replace(/\r$/, '');
    if (trimmed.trim() === '') return;
    this.tail.push(trimmed.length > 1000 ? `${trimmed.slice(0, 1000)}…` : trimmed);
    if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
  }
}
