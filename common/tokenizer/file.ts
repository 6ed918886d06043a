// A tokenizer from the bytes of a Hugging Face tokenizer.json file, plain or gzipped (as media/ ships Qwen2.5's):
// the one way the language server, the extension and the engine build one. Reading the file and gunzipping are
// the caller's (common/ has no Node): each side passes its own.
import { BpeTokenizer } from './bpe';

/** Whether the bytes start with gzip's magic number. */
export function isGzip(raw: Uint8Array): boolean {
  return raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
}

/**
 * Builds the tokenizer of a tokenizer.json's bytes. `pause`, when given, runs between parsing and building (each
 * holds the thread for a couple of hundred milliseconds with Qwen2.5's file), so that a server can answer what
 * queued up meanwhile.
 * @throws SyntaxError when the text is not JSON, TokenizerError when the tokenizer is of a kind not supported
 */
export async function tokenizerFromFile(raw: Uint8Array, gunzip: (gzipped: Uint8Array) => Promise<Uint8Array>, pause?: () => Promise<void>): Promise<BpeTokenizer> {
  const bytes = isGzip(raw) ? await gunzip(raw) : raw;
  const json = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  await pause?.();
  return new BpeTokenizer(json);
}
