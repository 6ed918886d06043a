// Big files checked from disk, and inputs that must neither crash nor hang the language server: invalid
// UTF-8, a 50 MB line, a million empty lines, deep nesting, a BOM, CRLF. After each, the server still answers.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { MarkupContent } from 'vscode-languageserver-protocol';
import { CheckFromDiskNotification, StopCheckFromDiskNotification } from '../common/lspProtocol';
import { brief, example, expectedFindings, messageOf, TestClient } from './server.harness';

const GOOD = example('hello', 'world');

describe('language server: bad inputs and big files', () => {
  let client: TestClient;
  let dir: string;
  let n = 0;
  const uri = (): string => `file:///tmp/robust-${++n}.jsonl`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'finetune-lsp-'));
    client = await TestClient.start({ settings: { maxSequenceLength: 4096 }, quiet: true });
  });
  after(async () => {
    await client.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The server still answers: a hover on a small new document. */
  async function stillAnswers(): Promise<void> {
    const u = uri();
    await client.open(u, `${GOOD}\n`);
    await client.diagnosticsOf(u);
    const hover = await client.hover(u, 0);
    assert.match((hover?.contents as MarkupContent).value, /user → assistant/);
    await client.close(u);
  }

  it('checks a file from disk, tells the user once, re-checks it when it changes, and stops', async () => {
    const path = join(dir, 'big.jsonl');
    const u = pathToFileURL(path).href;
    writeFileSync(path, [GOOD, '{"messages": 1}', '', GOOD, 'oops'].join('\r\n') + '\r\n');
    await client.connection.sendNotification(CheckFromDiskNotification.type, { uri: u });
    const first = await client.diagnosticsOf(u, (d) => d.length > 0);
    assert.deepEqual(brief(first), brief(expectedFindings([GOOD, '{"messages": 1}', '', GOOD, 'oops'].join('\r\n') + '\r\n')));
    await client.waitFor('the message about checking from disk', () => client.messages.some((m) => m.includes('big.jsonl') && m.includes('from disk')));
    await client.waitFor('token counting done', () => client.statuses.get(u)?.counting === false && client.statuses.get(u)?.live === false, 20_000);
    const stats = await client.statistics(u);
    assert.equal(stats?.live, false);
    assert.equal(stats?.examples, 2);
    assert.equal(stats?.errors, 2);
    assert.equal(stats?.tokenizedExamples, 2);
    assert.ok((stats?.tokensPerExample.min ?? 0) > 0);

    // A change on disk is picked up.
    writeFileSync(path, `${GOOD}\n${example('fixed', 'file')}\n`);
    await client.diagnosticsOf(u, (d) => d.length === 0, 10_000);
    // Asking again does not tell the user again.
    await client.connection.sendNotification(CheckFromDiskNotification.type, { uri: u });
    await client.waitFor('status after the re-check', () => client.statuses.get(u)?.examples === 2);
    assert.equal(client.messages.filter((m) => m.includes('big.jsonl')).length, 1);
    // Stopping clears the diagnostics; statistics are gone.
    writeFileSync(path, 'broken\n');
    await client.diagnosticsOf(u, (d) => d.length === 1, 10_000);
    await client.connection.sendNotification(StopCheckFromDiskNotification.type, { uri: u });
    await client.diagnosticsOf(u, (d) => d.length === 0);
    assert.equal(await client.statistics(u), null);
    await stillAnswers();
  });

  it('survives invalid UTF-8 in a file checked from disk', async () => {
    const path = join(dir, 'invalid-utf8.jsonl');
    const u = pathToFileURL(path).href;
    const bytes = Buffer.concat([
      Buffer.from(`${GOOD}\n{"messages":[{"role":"user","content":"`),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]),
      Buffer.from('"},{"role":"assistant","content":"x"}]}\n'),
      Buffer.from([0x80, 0x81, 0x0a, 0xf0, 0x9f]),
      Buffer.from('{"messages":"x"}\n'),
    ]);
    writeFileSync(path, bytes);
    await client.connection.sendNotification(CheckFromDiskNotification.type, { uri: u });
    const diagnostics = await client.diagnosticsOf(u, (d) => d.length > 0);
    assert.deepEqual(
      brief(diagnostics).map((s) => s.replace(/^(\d+):.* /, '$1 ')),
      ['2 json-syntax', '3 json-syntax'],
    );
    await client.connection.sendNotification(StopCheckFromDiskNotification.type, { uri: u });
    await stillAnswers();
  });

  it('survives a 50 MB single line, and edits inside it', async () => {
    const u = uri();
    // 20 bytes of UTF-8 per repeat.
    const content = 'Long text 长文本 '.repeat(Math.ceil((50 << 20) / 20));
    const line = JSON.stringify({ messages: [{ role: 'user', content }, { role: 'assistant', content: 'ok' }] });
    assert.ok(Buffer.byteLength(line) >= 50 << 20);
    await client.open(u, `${line}\n${GOOD}\n`);
    assert.deepEqual(await client.diagnosticsOf(u, undefined, 30_000), []);
    // Break it at its very end, inside the huge line.
    await client.change(u, [{ range: { start: { line: 0, character: line.length - 1 }, end: { line: 0, character: line.length } }, text: '' }]);
    assert.deepEqual(brief(await client.diagnosticsOf(u, undefined, 30_000)).map((s) => s.split(' ')[1]), ['json-syntax']);
    await client.change(u, [{ range: { start: { line: 0, character: line.length - 1 }, end: { line: 0, character: line.length - 1 } }, text: '}' }]);
    assert.deepEqual(await client.diagnosticsOf(u, undefined, 30_000), []);
    const hover = ((await client.hover(u, 0, 5))?.contents as MarkupContent).value;
    assert.match(hover, /Example/);
    await client.waitFor('counting gave up on the huge line', () => client.statuses.get(u)?.counting === false, 20_000);
    assert.match(((await client.hover(u, 0, 5))?.contents as MarkupContent).value, /not counted \(the line is over/);
    await client.close(u);
    await stillAnswers();
  });

  it('survives a million empty lines, then counts each as blank once the file has an example', async () => {
    const u = uri();
    await client.open(u, '\n'.repeat(1_000_000));
    assert.deepEqual(brief(await client.diagnosticsOf(u, undefined, 30_000)), ['0:0-0 file-empty']);
    await client.change(u, [{ range: { start: { line: 1_000_000, character: 0 }, end: { line: 1_000_000, character: 0 } }, text: GOOD }]);
    const diagnostics = await client.diagnosticsOf(u, undefined, 30_000);
    assert.equal(diagnostics.length, 1001);
    assert.equal(diagnostics[1000].code, 'more-findings');
    assert.match(messageOf(diagnostics[1000]), /^999000 more findings/);
    await client.waitFor('status', () => client.statuses.get(u)?.warnings === 1_000_000);
    const stats = await client.statistics(u);
    assert.equal(stats?.blank, 1_000_000);
    assert.equal(stats?.lines, 1_000_001);
    await client.close(u);
    await stillAnswers();
  });

  it('survives deeply nested JSON, valid and broken', async () => {
    const u = uri();
    const depth = 200_000;
    const deep = '['.repeat(depth) + ']'.repeat(depth);
    const validDeep = `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"x":${deep}}`;
    const shareDeep = `{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}],"x":${deep}}`;
    const broken = '{"a":' + '['.repeat(1_000_000);
    await client.open(u, [validDeep, shareDeep, broken].join('\n') + '\n');
    const diagnostics = await client.diagnosticsOf(u, undefined, 30_000);
    assert.deepEqual(brief(diagnostics).map((s) => s.replace(/:.* /, ' ')), ['0 key-unknown', '1 messages-missing', '2 json-syntax']);
    assert.match(((await client.hover(u, 0))?.contents as MarkupContent).value, /user → assistant, 1 turn/);
    // The conversion cannot print a value this deep: no fix rather than a crash.
    const actions = await client.codeActions(u, 1);
    assert.ok(!actions.some((a) => /Convert this/.test(a.title)));
    await client.close(u);
    await stillAnswers();
  });

  it('skips a BOM on the first line and accepts CRLF line ends', async () => {
    const u = uri();
    await client.open(u, `\uFEFF${GOOD}\r\n${example('a', 'b')}\r\n\r\n`);
    assert.deepEqual(brief(await client.diagnosticsOf(u)), ['2:0-0 line-blank']);
    assert.match(((await client.hover(u, 0))?.contents as MarkupContent).value, /user → assistant/);
    await client.close(u);
    await stillAnswers();
  });

  it('keeps running after a request with nonsense parameters', async () => {
    await client.connection.sendNotification('textDocument/didChange', { textDocument: { uri: 'file:///nowhere.jsonl' }, contentChanges: null });
    await client.connection.sendNotification(CheckFromDiskNotification.type, { uri: 'not a uri' });
    await client.connection.sendNotification(CheckFromDiskNotification.type, { uri: pathToFileURL(join(dir, 'missing.jsonl')).href });
    assert.equal(await client.hover('file:///never-opened.jsonl', 0), null);
    await stillAnswers();
  });
});
