// Token counting for `validate`: example lines are copied into batches as the check streams past them, and
// each batch is counted either on the main thread or by a pool of worker threads (tokenizing is a hundred
// times slower than checking, so on a large file the workers overlap it with reading and checking). Results
// come back per batch; the caller keeps findings in file order (see findingQueue.ts).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TokenCounter } from '../server/tokenCounter';
import { loadQwenTokenizer } from '../server/tokenizerFile';

/**
 * A batch of lines to count: their bytes, each line followed by `\n` (a line never holds one: it was split on
 * it), and their 0-based line numbers. Travels to a worker as transferred buffers.
 */
export interface TokenBatch {
  bytes: Uint8Array;
  lines: Int32Array;
}

/** What came back for a batch: per line, the conversation's tokens (-1: not counted) and its UTF-16 length. */
export interface TokenResult {
  totals: Int32Array;
  lengths: Int32Array;
}

/** The messages between the pool and its workers. */
export type ToWorker = { type: 'batch'; id: number; bytes: Uint8Array; lines: Int32Array };
export type FromWorker = { type: 'failed'; reason: string } | { type: 'result'; id: number; totals: Int32Array; lengths: Int32Array };

/** The `workerData` that tells a copy of the command-line bundle to be a token worker. */
export interface TokenWorkerData {
  role: 'finetune-studio-token-worker';
  tokenizerPath: string | undefined;
}

/** Whether `data` is a token worker's `workerData`. */
export function isTokenWorkerData(data: unknown): data is TokenWorkerData {
  return typeof data === 'object' && data !== null && (data as { role?: unknown }).role === 'finetune-studio-token-worker';
}

const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Counts the lines of a batch. A BOM (on a file's first line) stays in the decoded text for the line's length
 * (the editor counts it as a column) and is dropped before parsing.
 */
export function countBatch(counter: TokenCounter, batch: TokenBatch): TokenResult {
  const texts = decoder.decode(batch.bytes).split('\n');
  const n = batch.lines.length;
  const totals = new Int32Array(n);
  const lengths = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const text = texts[i];
    lengths[i] = text.length;
    const counts = counter.count(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    totals[i] = counts ? counts.total : -1;
  }
  return { totals, lengths };
}

/** Where batches are counted. */
export interface TokenEngine {
  /** Counts a batch; rejects with the reason when the tokenizer cannot be loaded. */
  count(batch: TokenBatch): Promise<TokenResult>;
  /** Bytes handed over and not counted yet. */
  readonly outstanding: number;
  /** How many bytes may be outstanding before the reader should wait. */
  readonly capacity: number;
  close(): Promise<void>;
}

/** Counts on the main thread: no start-up cost beyond loading the tokenizer once; best for small inputs. */
export class MainThreadTokens implements TokenEngine {
  outstanding = 0;
  /** Batches wait while the tokenizer loads; this bounds what the reader queues meanwhile. */
  readonly capacity = 16 << 20;
  private counter: TokenCounter | undefined;
  private loading: Promise<void> | undefined;

  constructor(private readonly tokenizerPath?: string) {}

  private ready(): Promise<void> {
    this.loading ??= loadQwenTokenizer(this.tokenizerPath).then((tokenizer) => {
      this.counter = new TokenCounter(() => {}, () => Promise.resolve(tokenizer));
      const counter = this.counter;
      return new Promise<void>((resolve) => counter.ensureLoaded(resolve));
    });
    return this.loading;
  }

  async count(batch: TokenBatch): Promise<TokenResult> {
    this.outstanding += batch.bytes.length;
    try {
      await this.ready();
      return countBatch(this.counter!, batch);
    } finally {
      this.outstanding -= batch.bytes.length;
    }
  }

  async close(): Promise<void> {}
}

interface PendingBatch {
  size: number;
  resolve: (result: TokenResult) => void;
  reject: (error: Error) => void;
}

/**
 * Counts in worker threads, each with its own tokenizer (JS objects cannot be shared between threads). Batches
 * go to the worker with the fewest bytes in hand.
 */
export class WorkerPoolTokens implements TokenEngine {
  private readonly workers: { worker: Worker; load: number }[] = [];
  private readonly pending = new Map<number, PendingBatch & { worker: number }>();
  private nextId = 0;
  outstanding = 0;
  /** Enough queued work to keep every worker busy while the reader waits for the slowest. */
  readonly capacity: number;
  private failure: Error | undefined;
  private closing = false;

  /**
   * @param script the file that runs `runTokenWorker` when started with {@link TokenWorkerData}: the bundle
   *   itself (dist/cli.js) or cli/main.ts when run through tsx
   */
  constructor(
    private readonly script: string,
    private readonly workerCount: number,
    private readonly tokenizerPath?: string,
  ) {
    this.capacity = workerCount * (8 << 20);
  }

  /** Starts the workers on the first batch: a run without examples to count never pays for them. */
  private start(): void {
    if (this.workers.length > 0) return;
    const script = this.script;
    const workerData: TokenWorkerData = { role: 'finetune-studio-token-worker', tokenizerPath: this.tokenizerPath };
    for (let i = 0; i < this.workerCount; i++) {
      // From sources (tsx), the worker needs the TypeScript loader too: loader hooks do not reach workers.
      const worker = script.endsWith('.ts')
        ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(script)});`, { eval: true, workerData })
        : new Worker(script, { workerData });
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'failed') this.fail(new Error(message.reason));
        else if (message.type === 'result') this.settle(message.id, { totals: message.totals, lengths: message.lengths });
      });
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        // Workers that were still loading when the run ended are terminated on purpose.
        if (!this.closing) this.fail(new Error(`a token-counting worker stopped (exit code ${code})`));
      });
      this.workers.push({ worker, load: 0 });
    }
  }

  count(batch: TokenBatch): Promise<TokenResult> {
    if (this.failure) return Promise.reject(this.failure);
    this.start();
    let index = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.workers[i].load < this.workers[index].load) index = i;
    const id = this.nextId++;
    const size = batch.bytes.length;
    this.workers[index].load += size;
    this.outstanding += size;
    return new Promise<TokenResult>((resolve, reject) => {
      this.pending.set(id, { size, resolve, reject, worker: index });
      const message: ToWorker = { type: 'batch', id, bytes: batch.bytes, lines: batch.lines };
      // The bytes move to the worker; the line numbers are copied, as the caller still reads them.
      this.workers[index].worker.postMessage(message, [batch.bytes.buffer as ArrayBuffer]);
    });
  }

  private settle(id: number, result: TokenResult): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    this.workers[pending.worker].load -= pending.size;
    this.outstanding -= pending.size;
    pending.resolve(result);
  }

  /** Counting is over for this pool: every batch in hand and every later one fails with the first error. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    this.outstanding = 0;
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map(({ worker }) => worker.terminate()));
  }
}

/** How many token workers to start: none for small inputs (loading a tokenizer takes a second), else one per core. */
export function chooseJobs(requested: number | undefined, totalBytes: number): number {
  if (requested !== undefined) return requested;
  if (totalBytes < 16 << 20) return 0;
  return Math.max(1, Math.min(8, availableParallelism()));
}

/**
 * Copies example lines into batches of about `target` bytes and hands full ones to `submit`. Lines come in file
 * order, so batches do too.
 */
export class TokenBatcher {
  private bytes: Uint8Array;
  private size = 0;
  private lines: number[] = [];

  constructor(
    private readonly submit: (batch: TokenBatch) => void,
    private readonly target = 1 << 20,
  ) {
    this.bytes = new Uint8Array(target + 4096);
  }

  /** The first line of the batch being filled, or -1 when it is empty. */
  get firstLine(): number {
    return this.lines.length > 0 ? this.lines[0] : -1;
  }

  add(line: number, buf: Uint8Array, start: number, end: number): void {
    const need = this.size + (end - start) + 1;
    if (need > this.bytes.length) {
      const grown = new Uint8Array(Math.max(need, this.bytes.length * 2));
      grown.set(this.bytes.subarray(0, this.size));
      this.bytes = grown;
    }
    this.bytes.set(buf.subarray(start, end), this.size);
    this.bytes[need - 1] = 0x0a;
    this.size = need;
    this.lines.push(line);
    if (this.size >= this.target) this.flush();
  }

  /** Hands over the batch being filled, if any. */
  flush(): void {
    if (this.lines.length === 0) return;
    const batch = { bytes: this.bytes.slice(0, this.size), lines: Int32Array.from(this.lines) };
    this.size = 0;
    this.lines = [];
    this.submit(batch);
  }
}
