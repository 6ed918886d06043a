// A tokenizer file loaded once per process and shared: the language server (server/tokenizerFile.ts) and the
// extension host (src/datasetCheck.ts) each keep one of these, and hand it their own way of reading and
// gunzipping (common/ has no Node, and neither side may import the other).
import type { BpeTokenizer } from './bpe';
import { tokenizerFromFile } from './file';

/** How a side reads a tokenizer file (plain functions: they are called without `this`). */
export interface TokenizerFileAccess {
  /** The file's bytes. */
  read(path: string): Promise<Uint8Array>;
  gunzip(gzipped: Uint8Array): Promise<Uint8Array>;
  /** Runs between parsing and building (each holds the thread for a couple of hundred milliseconds with Qwen2.5's file). */
  pause?(): Promise<void>;
}

/**
 * Tokenizers by file path, each loaded once: concurrent callers get the same promise. A failed load is forgotten,
 * so that a later call tries again (for example after the file was restored).
 */
export class TokenizerCache {
  private readonly loaded = new Map<string, Promise<BpeTokenizer>>();

  constructor(private readonly access: TokenizerFileAccess) {}

  /** Reads, gunzips when needed, parses and builds, uncached (about half a second for Qwen2.5's file). */
  async read(path: string): Promise<BpeTokenizer> {
    const { read, gunzip, pause } = this.access;
    return tokenizerFromFile(await read(path), gunzip, pause);
  }

  /** The tokenizer of `path` (compared as given: callers that take paths from users resolve them first). */
  load(path: string): Promise<BpeTokenizer> {
    let promise = this.loaded.get(path);
    if (promise === undefined) {
      promise = this.read(path);
      this.loaded.set(path, promise);
      promise.catch(() => this.loaded.delete(path));
    }
    return promise;
  }
}
