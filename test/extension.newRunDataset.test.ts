import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { countConversation } from '../common/tokenizer/chat';
import { checkDatasetFile, DatasetCheckError, loadTokenizer } from '../src/datasetCheck';
import { overLengthCount } from '../src/newRunModel';

const TOKENIZER = join(__dirname, '..', 'media', 'qwen2.5-tokenizer.json.gz');
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'finetune-newrun-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

const example = (q: string, a: string): string => JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });

describe('the form\'s dataset check', () => {
  it('blocks on errors, lists them first with their lines, and counts the warnings', async () => {
    const path = write('bad.jsonl', [example('a?', 'b.'), '{"messages": [', example('a?', 'b.'), JSON.stringify({ messages: [{ role: 'assistant', content: 'x' }, { role: 'user', content: 'y' }] }), '{"text": 1}']);
    const result = await checkDatasetFile(path);
    assert.equal(result.summary.lines, 5);
    assert.ok(result.summary.errors >= 3, `errors: ${result.summary.errors}`);
    assert.equal(result.summary.warnings, 1, 'the duplicate');
    assert.deepEqual(
      result.findings.map((f) => [f.line, f.severity]),
      [...result.findings.filter((f) => f.severity === 'error').map((f) => [f.line, 'error']), [2, 'warning']],
    );
    assert.equal(result.findings.find((f) => f.severity === 'error')?.line, 1);
    assert.equal(result.findings.find((f) => f.line === 1)?.code, 'json-syntax');
    assert.equal(result.totalFindings, result.findings.length);
    assert.equal(result.tokens, 0, 'no tokenizer given: no counts');
  });

  it('counts tokens as the chat template renders them, and the over-length examples', async () => {
    const tokenizer = await loadTokenizer(TOKENIZER);
    const lines = ['Hello?', '你好，请介绍一下你自己。', 'x'.repeat(400)].map((q, i) => example(q, `Answer number ${i}.`));
    const path = write('good.jsonl', lines);
    let last = 0;
    const result = await checkDatasetFile(path, { tokenizer: Promise.resolve(tokenizer), onProgress: (f) => (last = f) });
    assert.equal(last, 1);
    assert.equal(result.summary.errors, 0);
    assert.equal(result.summary.validExamples, 3);
    const expected = lines.map((line) => countConversation(tokenizer, (JSON.parse(line) as { messages: { role: string; content: string }[] }).messages));
    assert.equal(result.tokens, expected.reduce((s, c) => s + c.total, 0));
    assert.equal(result.trainedTokens, expected.reduce((s, c) => s + c.trained, 0));
    assert.deepEqual(result.lengths, expected.map((c) => c.total).sort((a, b) => a - b));
    assert.equal(result.estimated, false);
    const longest = Math.max(...result.lengths);
    assert.equal(overLengthCount({ validExamples: 3, tokens: result.tokens, lengths: result.lengths }, longest - 1), 1);
  });

  it('counts a sample of a big file and says so', async () => {
    const tokenizer = Promise.resolve(await loadTokenizer(TOKENIZER));
    const lines = Array.from({ length: 400 }, (_, i) => example(`question ${i}?`, `answer ${i}.`));
    const path = write('big.jsonl', lines);
    const full = await checkDatasetFile(path, { tokenizer });
    const sampled = await checkDatasetFile(path, { tokenizer, fullCountBytes: 4096 });
    assert.equal(sampled.estimated, true);
    assert.ok(sampled.lengths.length < 400 / 2, `counted ${sampled.lengths.length}`);
    assert.equal(sampled.summary.validExamples, 400);
    assert.ok(Math.abs(sampled.tokens - full.tokens) / full.tokens < 0.05, `${sampled.tokens} vs ${full.tokens}`);
  });

  it('fails with a reason on a missing file and when cancelled', async () => {
    await assert.rejects(checkDatasetFile(join(dir, 'none.jsonl')), (e: unknown) => DatasetCheckError.is(e) && e.reason === 'unreadable' && /none\.jsonl/.test(e.message));
    const abort = new AbortController();
    abort.abort();
    const path = write('c.jsonl', [example('a', 'b')]);
    await assert.rejects(checkDatasetFile(path, { signal: abort.signal }), (e: unknown) => DatasetCheckError.is(e) && e.reason === 'cancelled');
  });

  it('reports a tokenizer that cannot load, and still checks', async () => {
    const path = write('d.jsonl', [example('a', 'b')]);
    const result = await checkDatasetFile(path, { tokenizer: loadTokenizer(join(dir, 'no-tokenizer.json')) });
    assert.match(result.tokenizerFailure ?? '', /no-tokenizer/);
    assert.equal(result.summary.validExamples, 1);
  });
});
