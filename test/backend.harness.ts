// What the backend's HTTP tests share: a real backend on a loopback port with a temp data folder, a small
// client that returns status, headers and parsed body, datasets, and a log that tests can wait on.
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningBackend, type StartOptions, startBackend } from '../backend/app';
import type { Log } from '../backend/runtime';
import { FINAL_JOB_STATUSES, type FineTuningJob } from '../common/api';

/** A log that keeps its lines and tells listeners about each. */
export class TestLog extends EventEmitter implements Log {
  readonly lines: string[] = [];
  info(message: string): void {
    this.add(`info ${message}`);
  }
  warn(message: string): void {
    this.add(`warn ${message}`);
  }
  error(message: string): void {
    this.add(`error ${message}`);
  }
  private add(line: string): void {
    this.lines.push(line);
    if (process.env.BACKEND_TEST_LOG) process.stderr.write(`${line}\n`);
    this.emit('line', line);
  }

  /** Resolves with the first line (from now on, or already logged when `past`) that matches. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000, past = false): Promise<string> {
    if (past) {
      const seen = this.lines.find((l) => pattern.test(l));
      if (seen) return seen;
    }
    const signal = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const [line] = (await once(this, 'line', { signal })) as [string];
      if (pattern.test(line)) return line;
    }
  }
}

/** A backend for a test file. */
export interface TestBackend {
  url: string;
  key: string;
  dir: string;
  log: TestLog;
  backend: RunningBackend;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

/** Starts a backend on 127.0.0.1, port 0, in a fresh temp folder. */
export async function startTestBackend(options: Partial<StartOptions> = {}, dir = mkdtempSync(join(tmpdir(), 'finetune-backend-test-'))): Promise<TestBackend> {
  const log = new TestLog();
  const backend = await startBackend({ dataDir: dir, port: 0, log, ...options });
  const key = backend.key ?? options.apiKeys?.[0] ?? '';
  return {
    url: backend.url,
    key,
    dir,
    log,
    backend,
    close: async () => {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A response, read whole. */
export interface Reply<T = unknown> {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body when it is JSON, else undefined. */
  body: T;
}

/** The error body's fields that tests look at. */
export interface ErrorReply {
  error: { message: string; type: string; param: string | null; code: string | null; findings?: { line: number; column: number; code: string; severity: string }[]; total_findings?: number };
}

/** Sends a request; `json` is sent as an application/json body; `key: null` sends no Authorization. */
export async function call<T = unknown>(
  base: { url: string; key: string },
  method: string,
  path: string,
  options: { json?: unknown; body?: RequestInit['body']; headers?: Record<string, string>; key?: string | null } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  const key = options.key === undefined ? base.key : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(options.json);
  }
  const response = await fetch(`${base.url}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed as T };
}

/** A valid dataset of `n` two-turn examples (distinct lines). */
export function dataset(n: number, tag = 'q'): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    lines.push(JSON.stringify({ messages: [{ role: 'user', content: `${tag} question ${i}?` }, { role: 'assistant', content: `Answer ${i}.` }] }));
  }
  return `${lines.join('\n')}\n`;
}

/** Uploads `content` as a dataset with OpenAI's form fields (or the ones given). */
export async function upload(
  base: { url: string; key: string },
  content: string | Uint8Array,
  options: { filename?: string; purpose?: string | null; key?: string | null } = {},
): Promise<Reply> {
  const form = new FormData();
  if (options.purpose !== null) form.set('purpose', options.purpose ?? 'fine-tune');
  // A copy on its own ArrayBuffer: the DOM's Blob typings (which the webview tests bring in) refuse a shared one.
  form.set('file', new Blob([typeof content === 'string' ? content : new Uint8Array(content)]), options.filename ?? 'train.jsonl');
  return call(base, 'POST', '/v1/files', { body: form, key: options.key });
}

/**
 * Resolves once the job's engine process is up and has reported (its `started` event is stored): from then on a
 * cancel stops a process rather than racing its start.
 */
export async function waitForEngine(b: TestBackend, jobId: string, timeoutMs = 30_000): Promise<void> {
  const runtime = b.backend.runtime;
  let reported = false;
  const started = (): boolean => reported && runtime.enginePid(jobId) !== undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`the engine of ${jobId} did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    const check = (): void => {
      if (!started()) return;
      clearTimeout(timer);
      stop();
      resolve();
    };
    const stop = runtime.watch({
      event: (entry) => {
        if (entry.job.id !== jobId) return;
        reported = true;
        check();
      },
      job: check,
      checkpoint: check,
    });
  });
}

/** Resolves with the job once it reaches a final status (succeeded, failed, cancelled). */
export async function waitForFinal(b: TestBackend, owner: string, jobId: string, timeoutMs = 60_000): Promise<FineTuningJob> {
  const runtime = b.backend.runtime;
  return new Promise<FineTuningJob>((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`${jobId} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    const check = (): void => {
      const job = runtime.getJob(owner, jobId);
      if (!job || !FINAL_JOB_STATUSES.includes(job.status)) return;
      clearTimeout(timer);
      stop();
      resolve(job);
    };
    const stop = runtime.watch({ event: check, job: check, checkpoint: check });
    check();
  });
}
