// The form's check of a dataset file, in the extension host: the same rules as the editor (common/dataset's
// DatasetStreamChecker over the file streamed from disk, never read whole) plus token counts with the Qwen2.5
// tokenizer (common/tokenizer). It yields to the event loop between chunks, so a big file never holds the
// extension host for long, and reports progress; on files above a size it counts a sample of the examples and
// says so. Free of vscode: tests run it under plain Node.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import type { Finding } from '../common/dataset/codes';
import { DatasetStreamChecker, type FileSummary } from '../common/dataset/fileCheck';
import { type BpeTokenizer } from '../common/tokenizer/bpe';
import { TokenizerCache } from '../common/tokenizer/cache';
import { chatMessagesOf, countConversation } from '../common/tokenizer/chat';

const gunzipAsync = promisify(gunzip);

/** Findings kept for the form (errors first); the rest are counted. */
export const MAX_LISTED_FINDINGS = 100;
/** Above this many bytes the tokens of a sample of the examples are counted, and the totals scaled up. */
export const FULL_COUNT_BYTES = 32 * 1024 * 1024;
/** Lines longer than this are not tokenized (their length counts as "over any maximum"). */
const MAX_COUNTED_CHARS = 1 << 20;

/** Why a check failed. */
export type DatasetCheckErrorReason = 'unreadable' | 'cancelled';

/** A check that could not finish. */
export class DatasetCheckError extends Error {
  override readonly name = 'DatasetCheckError';
  constructor(
    readonly reason: DatasetCheckErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static is(error: unknown): error is DatasetCheckError {
    return error instanceof DatasetCheckError;
  }
}

/** What the check found. */
export interface DatasetCheckResult {
  summary: FileSummary;
  /** Up to {@link MAX_LISTED_FINDINGS}: errors first, then warnings, each in file order (0-based lines). */
  findings: Finding[];
  totalFindings: number;
  /** Tokens of the valid examples (rendered with the chat template), and those that carry loss; scaled when sampled. */
  tokens: number;
  trainedTokens: number;
  /** Rendered lengths of the counted examples, ascending. */
  lengths: number[];
  /** Token counts come from a sample of the examples. */
  estimated: boolean;
  /** Set when tokens could not be counted (no tokenizer): the counts are then 0. */
  tokenizerFailure?: string;
}

/** Options of a check. */
export interface DatasetCheckOptions {
  /** The tokenizer (a promise: it loads while the first chunks are checked); undefined: no token counts. */
  tokenizer?: Promise<BpeTokenizer>;
  /** 0–1, as bytes are read. */
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
  /** For tests: the size above which a sample is counted. */
  fullCountBytes?: number;
}

const decoder = new TextDecoder();


/**
 * Checks a dataset file and counts its tokens. Rejects with a DatasetCheckError (`unreadable`, `cancelled`).
 */
export async function checkDatasetFile(path: string, options: DatasetCheckOptions = {}): Promise<DatasetCheckResult> {
  const { signal } = options;
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    throw new DatasetCheckError('unreadable', `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const sampleEvery = Math.max(1, Math.ceil(size / (options.fullCountBytes ?? FULL_COUNT_BYTES)));
  let tokenizer: BpeTokenizer | undefined;
  let tokenizerFailure: string | undefined;
  if (options.tokenizer !== undefined) {
    try {
      tokenizer = await options.tokenizer;
    } catch (error) {
      tokenizerFailure = error instanceof Error ? error.message : String(error);
    }
  }

  const errors: Finding[] = [];
  const warnings: Finding[] = [];
  let totalFindings = 0;
  const lengths: number[] = [];
  let tokens = 0;
  let trainedTokens = 0;
  let validSeen = 0;
  const checker = new DatasetStreamChecker({
    onFinding: (f) => {
      totalFindings++;
      const list = f.severity === 'error' ? errors : warnings;
      if (list.length < MAX_LISTED_FINDINGS) list.push(f);
    },
    onLine: (buf, start, end, _line, check) => {
      if (tokenizer === undefined || check.kind !== 'example' || check.errors > 0) return;
      if (validSeen++ % sampleEvery !== 0) return;
      if (end - start > MAX_COUNTED_CHARS) {
        lengths.push(Number.MAX_SAFE_INTEGER);
        return;
      }
      const messages = chatMessagesOf(decoder.decode(buf.subarray(start, end)));
      if (messages === undefined) return;
      const counts = countConversation(tokenizer, messages);
      lengths.push(counts.total);
      tokens += counts.total;
      trainedTokens += counts.trained;
    },
  });

  let read = 0;
  const stream = createReadStream(path, { highWaterMark: 64 * 1024 });
  const abort = (): void => {
    stream.destroy(new DatasetCheckError('cancelled', 'the check was cancelled'));
  };
  signal?.addEventListener('abort', abort, { once: true });
  try {
    if (signal?.aborted) throw new DatasetCheckError('cancelled', 'the check was cancelled');
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      checker.push(chunk);
      read += chunk.length;
      options.onProgress?.(size > 0 ? Math.min(1, read / size) : 1);
      // Let whatever queued up in the extension host run between chunks (token counting is the slow part).
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw new DatasetCheckError('cancelled', 'the check was cancelled');
    }
  } catch (error) {
    if (DatasetCheckError.is(error)) throw error;
    throw new DatasetCheckError('unreadable', `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    signal?.removeEventListener('abort', abort);
    stream.destroy();
  }
  const summary = checker.end();
  lengths.sort((a, b) => a - b);
  const counted = lengths.length;
  const scale = counted > 0 && sampleEvery > 1 ? summary.validExamples / counted : 1;
  const findings = [...errors, ...warnings].slice(0, MAX_LISTED_FINDINGS);
  const result: DatasetCheckResult = {
    summary,
    findings,
    totalFindings,
    tokens: Math.round(tokens * scale),
    trainedTokens: Math.round(trainedTokens * scale),
    lengths,
    estimated: sampleEvery > 1,
  };
  if (tokenizerFailure !== undefined) result.tokenizerFailure = tokenizerFailure;
  return result;
}

/** The extension host's tokenizers, each file read once; the pause lets the host's queue run. */
const tokenizers = new TokenizerCache({
  read: (path) => readFile(path),
  gunzip: gunzipAsync,
  pause: () => new Promise<void>((resolve) => setImmediate(resolve)),
});

/** Reads a (gzipped or plain) tokenizer.json and builds the tokenizer (about half a second for Qwen2.5's). */
export function readTokenizer(path: string): Promise<BpeTokenizer> {
  return tokenizers.read(path);
}

/** The tokenizer of a file, loaded once and shared; a failed load is forgotten so that a later call tries again. */
export function loadTokenizer(path: string): Promise<BpeTokenizer> {
  return tokenizers.load(path);
}
