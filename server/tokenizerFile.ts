// Node-side loading of the Qwen2.5 tokenizer shipped in media/: read, gunzip, parse, build. common/tokenizer
// stays free of Node (its TokenizerCache loads each file once); this is the only place that knows where the file
// lies.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { type BpeTokenizer } from '../common/tokenizer/bpe';
import { TokenizerCache } from '../common/tokenizer/cache';

const cache = new TokenizerCache({
  read: (path) => readFile(path),
  gunzip: promisify(gunzip),
  // Parsing and building each hold the thread for a couple of hundred milliseconds; let whatever queued up in
  // between (a request to the language server) run.
  pause: () => new Promise<void>((resolve) => setImmediate(resolve)),
});

/** The file name of the Qwen2.5 tokenizer in media/ (a gzipped Hugging Face tokenizer.json). */
export const QWEN_TOKENIZER_FILE = 'qwen2.5-tokenizer.json.gz';

/**
 * Where media/qwen2.5-tokenizer.json.gz is. Bundles run from dist/ and sources (through tsx) from server/, so
 * `../media` from this file's folder is the usual answer; the working folder's media/ is the fallback for
 * bundles placed elsewhere or loaded as ES modules (where __dirname does not exist).
 */
export function defaultTokenizerPath(): string {
  const candidates: string[] = [];
  if (typeof __dirname === 'string') {
    candidates.push(join(__dirname, '..', 'media', QWEN_TOKENIZER_FILE));
    candidates.push(join(__dirname, '..', '..', 'media', QWEN_TOKENIZER_FILE));
  }
  candidates.push(resolve('media', QWEN_TOKENIZER_FILE));
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

/**
 * Reads, gunzips and parses a (gzipped or plain) tokenizer.json and builds a tokenizer from it, uncached: about
 * 0.4–0.7 s for Qwen2.5's file. Gunzip runs off the main thread; parsing and building do not, so the language
 * server calls this once, in the background, through {@link loadQwenTokenizer}.
 */
export function readTokenizerFile(path: string): Promise<BpeTokenizer> {
  return cache.read(path);
}

/**
 * The Qwen2.5 tokenizer, loaded once per path and shared: concurrent callers get the same promise. A failed
 * load is forgotten, so that a later call tries again (for example after the file was restored).
 * @param path the tokenizer file; default: media/qwen2.5-tokenizer.json.gz next to the bundle
 */
export function loadQwenTokenizer(path?: string): Promise<BpeTokenizer> {
  return cache.load(resolve(path ?? defaultTokenizerPath()));
}
