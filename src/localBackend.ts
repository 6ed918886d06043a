// The embedded local backend: `dist/backend.js` run by the extension host's own Node (ELECTRON_RUN_AS_NODE),
// on a free loopback port, its data in the extension's global storage. It prints one JSON line `{"url","key"}`
// once it listens; the key stays in memory. Started on demand, started again if it died, stopped on deactivate.
// How it starts (the torch engine's Python, whether it may download models) is read at each start, so that a
// restart picks up changed settings; `launch` says what the running process was started with.
// No `vscode` import: the unit tests start it under plain Node.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** Why the local backend is not available. */
export type LocalBackendErrorReason = 'missing' | 'start-failed' | 'timeout';

/** The local backend could not start; the message carries the tail of its log. */
export class LocalBackendError extends Error {
  override readonly name = 'LocalBackendError';

  constructor(
    readonly reason: LocalBackendErrorReason,
    message: string,
  ) {
    super(message);
  }

  static is(error: unknown): error is LocalBackendError {
    return error instanceof LocalBackendError;
  }
}

/** Where the running backend listens, and its key. */
export interface LocalEndpoint {
  url: string;
  key: string;
}

/** The log the backend's stderr goes to (the extension's output channel, or the console in tests). */
export interface LocalBackendLog {
  info(message: string): void;
  error(message: string): void;
}

/** The backend's options that come from the user's settings (`finetune.localBackend.*`). */
export interface LocalBackendLaunch {
  /** `--python`: the Python of the torch engine; undefined: the backend's default (`python3`). */
  python?: string;
  /** `--allow-downloads`. */
  allowDownloads?: boolean;
}

/**
 * A Python setting as the backend needs it: `~` expanded, a relative path (`.venv/bin/python`) taken from the first
 * workspace folder, a bare command (`python3.11`) left for the PATH; empty means the default.
 */
export function resolvePythonSetting(raw: unknown, workspaceFolder: string | undefined, home = homedir()): string | undefined {
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (text === '') return undefined;
  if (text === '~' || text.startsWith('~/')) return join(home, text.slice(1));
  if (isAbsolute(text) || !/[\\/]/.test(text)) return text;
  return workspaceFolder === undefined ? text : join(workspaceFolder, text);
}

/** The command-line options of a launch, after `--port 0 --data DIR --print-json`. */
export function launchArgs(launch: LocalBackendLaunch): string[] {
  return [...(launch.python !== undefined && launch.python !== '' ? ['--python', launch.python] : []), ...(launch.allowDownloads === true ? ['--allow-downloads'] : [])];
}

/** Whether two launches start the same backend. */
export function sameLaunch(a: LocalBackendLaunch, b: LocalBackendLaunch): boolean {
  return launchArgs(a).join('\0') === launchArgs(b).join('\0');
}

/** How to start it. */
export interface LocalBackendOptions {
  /** `dist/backend.js` of the extension. */
  script: string;
  /** The backend's data folder (jobs, files, checkpoints). */
  dataDir: string;
  log: LocalBackendLog;
  /** The Node to run it with (default: this process's executable, as Node). */
  execPath?: string;
  /** How long to wait for the JSON line (default 30 s). */
  startTimeoutMs?: number;
  /** The settings to start with, read at every start (default: none, the backend's defaults). */
  launch?: () => LocalBackendLaunch;
}

const STDERR_TAIL_LINES = 20;

/** One local backend process at a time (see the file comment). */
export class LocalBackend {
  private child: ChildProcess | undefined;
  private endpointNow: LocalEndpoint | undefined;
  private launchNow: LocalBackendLaunch | undefined;
  private starting: Promise<LocalEndpoint> | undefined;
  private readonly stderrTail: string[] = [];
  private readonly exitListeners = new Set<(why: string) => void>();

  constructor(private readonly options: LocalBackendOptions) {}

  /** Where it listens, while it runs. */
  get endpoint(): LocalEndpoint | undefined {
    return this.endpointNow;
  }

  /** The process id while it runs (for logs and tests). */
  get pid(): number | undefined {
    return this.endpointNow ? this.child?.pid : undefined;
  }

  /** What the running (or starting) process was started with; undefined when none is. */
  get launch(): LocalBackendLaunch | undefined {
    return this.child !== undefined ? this.launchNow : undefined;
  }

  /** Whether it runs now. */
  get running(): boolean {
    return this.endpointNow !== undefined;
  }

  /** Called when the process exits without being asked to (with a description for the user). */
  onUnexpectedExit(listener: (why: string) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Starts it, or returns where it already listens; concurrent calls share one start. */
  start(): Promise<LocalEndpoint> {
    if (this.endpointNow) return Promise.resolve(this.endpointNow);
    this.starting ??= this.spawn().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private spawn(): Promise<LocalEndpoint> {
    const { script, dataDir, log } = this.options;
    if (!existsSync(script)) {
      return Promise.reject(new LocalBackendError('missing', `The local backend is missing from the extension (${script}); reinstall Finetune Studio.`));
    }
    this.stderrTail.length = 0;
    const launch = { ...(this.options.launch?.() ?? {}) };
    this.launchNow = launch;
    const child = spawn(this.options.execPath ?? process.execPath, [script, '--port', '0', '--data', dataDir, '--print-json', ...launchArgs(launch)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Inside VS Code the executable is Electron: this makes it behave as plain Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      windowsHide: true,
    });
    this.child = child;
    let stderrPending = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderrPending += chunk;
      const lines = stderrPending.split('\n');
      stderrPending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        log.info(`[local backend] ${line}`);
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      }
    });
    return new Promise<LocalEndpoint>((resolve, reject) => {
      let stdout = '';
      let settled = false;
      const fail = (error: LocalBackendError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        child.kill('SIGKILL');
        log.error(error.message);
        reject(error);
      };
      const timeoutMs = this.options.startTimeoutMs ?? 30_000;
      const timer = setTimeout(
        () => fail(new LocalBackendError('timeout', `The local backend did not start within ${timeoutMs / 1000} s.${this.tailText()}`)),
        timeoutMs,
      );
      child.once('error', (error) => fail(new LocalBackendError('start-failed', `The local backend could not be started: ${error.message}`)));
      child.once('exit', (code, signal) => {
        const why = `the local backend exited (${signal ?? `code ${code}`})`;
        if (!settled) {
          fail(new LocalBackendError('start-failed', `${why[0].toUpperCase()}${why.slice(1)} before it listened.${this.tailText()}`));
          return;
        }
        const expected = this.child !== child;
        if (this.child === child) this.child = undefined;
        this.endpointNow = undefined;
        if (!expected) {
          log.error(`${why}.${this.tailText()}`);
          for (const listener of [...this.exitListeners]) listener(why);
        }
      });
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        if (settled) return;
        stdout += chunk;
        const newline = stdout.indexOf('\n');
        if (newline < 0) return;
        const line = stdout.slice(0, newline);
        let parsed: { url?: unknown; key?: unknown };
        try {
          parsed = JSON.parse(line) as { url?: unknown; key?: unknown };
        } catch {
          parsed = {};
        }
        if (typeof parsed.url !== 'string' || typeof parsed.key !== 'string') {
          fail(new LocalBackendError('start-failed', `The local backend printed an unexpected first line: ${line.slice(0, 200)}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.endpointNow = { url: parsed.url, key: parsed.key };
        const how = [launch.python !== undefined ? `torch engine Python ${launch.python}` : '', launch.allowDownloads === true ? 'model downloads allowed' : ''].filter((t) => t !== '');
        log.info(`Local backend listening on ${parsed.url} (data in ${dataDir}${how.map((t) => `; ${t}`).join('')}).`);
        resolve(this.endpointNow);
      });
    });
  }

  /** Stops it (SIGTERM, then SIGKILL after `graceMs`); resolves once it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.endpointNow = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  private tailText(): string {
    return this.stderrTail.length > 0 ? `\nLast lines of its log:\n${this.stderrTail.join('\n')}` : '';
  }
}
