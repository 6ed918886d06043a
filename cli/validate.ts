// `finetune-studio validate`: checks dataset files with common/dataset, the same rules as the editor, streaming
// each file in large chunks so that memory stays bounded whatever its size, and prints the findings in file
// order (text or JSON). Token counting (for too-long) runs beside the check, batch by batch.
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import type { Finding } from '../common/dataset/codes';
import { DatasetStreamChecker } from '../common/dataset/fileCheck';
import type { ValidateOptions } from './args';
import { FindingQueue } from './findingQueue';
import { BufferedWriter, JsonReporter, type Reporter, TextReporter } from './output';
import { chooseJobs, MainThreadTokens, TokenBatcher, type TokenEngine, WorkerPoolTokens } from './tokens';

/** Where `validate` reads and writes; the process's streams in the command, others in tests. */
export interface ValidateIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /**
   * The script that runs a token worker (see main.ts); without it, tokens are counted on the main thread.
   */
  workerScript?: string;
}

/** A file that could not be read; exit code 2. */
export class ReadError extends Error {
  readonly reason = 'read';
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot read '${path}': ${describeFsError(cause)}.`);
    this.name = 'ReadError';
  }

  static is(error: unknown): error is ReadError {
    return error instanceof ReadError;
  }
}

function describeFsError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EISDIR':
      return 'it is a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

/** The size of one read: large, so that per-chunk costs vanish, and far below any machine's memory. */
export const CHUNK_SIZE = 8 << 20;

/**
 * Reads a file in chunks of {@link CHUNK_SIZE}, reading the next chunk while the caller checks the current one.
 * The yielded buffer is reused after the caller asks for the next one.
 */
export async function* readChunks(path: string, size = CHUNK_SIZE): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  let next: Promise<{ bytesRead: number }> | undefined;
  try {
    const buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    let which = 0;
    next = handle.read(buffers[0], 0, size, null);
    for (;;) {
      const { bytesRead } = await next;
      next = undefined;
      if (bytesRead === 0) return;
      const current = buffers[which];
      which ^= 1;
      next = handle.read(buffers[which], 0, size, null);
      yield current.subarray(0, bytesRead);
    }
  } finally {
    if (next) await next.catch(() => undefined);
    await handle.close();
  }
}

async function* readStream(stream: Readable): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
}

/** What validating one file found. */
export interface FileResult {
  examples: number;
  errors: number;
  warnings: number;
}

/** Token counting shared by the files of one run: one engine, turned off for good when it fails. */
class Tokens {
  off: string | undefined;
  private warned = false;

  constructor(
    readonly engine: TokenEngine,
    private readonly stderr: Writable,
  ) {}

  failed(error: unknown): void {
    this.off ??= error instanceof Error ? error.message : String(error);
    if (!this.warned) {
      this.warned = true;
      this.stderr.write(`finetune-studio validate: tokens are not counted, so too-long is not checked: ${this.off}\n`);
    }
  }
}

async function validateFile(
  path: string,
  chunks: AsyncIterable<Uint8Array>,
  reporter: Reporter,
  options: ValidateOptions,
  tokens: Tokens | undefined,
): Promise<FileResult> {
  let printed = 0;
  let omitted = 0;
  const queue = new FindingQueue(options.maxTokens, async (f: Finding) => {
    if (printed < options.maxDiagnostics) {
      printed++;
      await reporter.finding(f);
    } else {
      omitted++;
    }
  });
  const inflight: Promise<void>[] = [];
  const counting = tokens && !tokens.off ? tokens : undefined;
  const engine = counting?.engine;
  const batcher =
    counting &&
    new TokenBatcher((batch) => {
      const settle = queue.track(batch.lines);
      inflight.push(
        counting.engine.count(batch).then(settle, (error: unknown) => {
          counting.failed(error);
          settle(undefined);
        }),
      );
    });
  const checker = new DatasetStreamChecker({
    onFinding: (f) => queue.add(f),
    // Examples without errors are what training uses, and so what is counted (as in the editor).
    onLine:
      batcher &&
      ((buf, start, end, line, check) => {
        if (check.kind === 'example' && check.errors === 0) batcher.add(line, buf, start, end);
      }),
  });
  await reporter.file(path);
  for await (const chunk of chunks) {
    checker.push(chunk);
    // Back-pressure: the reader waits for the tokenizers rather than queueing the whole file for them.
    while (engine && engine.outstanding > engine.capacity && inflight.length > 0) await inflight.shift();
    await queue.flush(batcher ? batcher.firstLine : -1);
  }
  const summary = checker.end();
  batcher?.flush();
  await Promise.all(inflight);
  await queue.flush(-1);
  const result: FileResult = { examples: summary.examples, errors: summary.errors, warnings: summary.warnings + queue.tooLong };
  await reporter.endFile({ ...result, omitted, tokensOff: tokens?.off });
  return result;
}

/** Runs `finetune-studio validate`; resolves to the exit code (0 clean, 1 an error found, 2 a read error). */
export async function validate(options: ValidateOptions, io: ValidateIo): Promise<number> {
  const out = new BufferedWriter(io.stdout);
  const reporter: Reporter = options.format === 'json' ? new JsonReporter(out) : new TextReporter(out);
  let tokens: Tokens | undefined;
  if (options.countTokens) {
    let total = 0;
    for (const path of options.files) {
      try {
        if (path !== '-') total += statSync(path).size;
      } catch {
        // Reported when the file is read.
      }
    }
    const jobs = io.workerScript ? chooseJobs(options.jobs, total) : 0;
    const engine = jobs > 0 ? new WorkerPoolTokens(io.workerScript!, jobs, options.tokenizer) : new MainThreadTokens(options.tokenizer);
    // Engines start (load tokenizers, start workers) on the first batch, so a file without examples to count
    // costs nothing; a failure to load shows up as the batches' rejections.
    tokens = new Tokens(engine, io.stderr);
  }
  let exit = 0;
  try {
    await reporter.begin();
    for (const path of options.files) {
      const stdin = path === '-';
      const shown = stdin ? '<stdin>' : path;
      try {
        const result = await validateFile(shown, stdin ? readStream(io.stdin) : readChunks(path), reporter, options, tokens);
        if (result.errors > 0) exit = Math.max(exit, 1);
      } catch (error) {
        // File-system errors (they carry a code such as ENOENT) are the user's to fix; anything else is a bug.
        if (typeof (error as { code?: unknown }).code !== 'string') throw error;
        await reporter.abandonFile();
        const failure = new ReadError(shown, error);
        io.stderr.write(`finetune-studio validate: ${failure.message}\n`);
        exit = 2;
      }
    }
    await reporter.end();
    // A tokenizer named on the command line that cannot be used is the user's mistake, as a missing file is.
    if (tokens?.off !== undefined && options.tokenizer !== undefined) exit = 2;
  } finally {
    await tokens?.engine.close();
  }
  return exit;
}
