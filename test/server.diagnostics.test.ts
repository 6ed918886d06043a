// The language server's live diagnostics over real JSON-RPC: a document opened and edited incrementally, every
// published set compared with what common/dataset's file checker finds in the client's copy of the whole text.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Diagnostic } from 'vscode-languageserver-protocol';
import { seeded } from '../bench/generate';
import { brief, example, expectedFindings, messageOf, TestClient } from './server.harness';

/** `line:start-end code message` of the server's diagnostics and of the oracle's findings. */
function full(items: Diagnostic[]): string[] {
  return items.map((d) => `${d.range.start.line}:${d.range.start.character}-${d.range.end.character} ${String(d.code)} ${d.message}`);
}
function oracle(text: string): string[] {
  return expectedFindings(text).map((f) => `${f.line}:${f.start}-${f.end} ${f.code} ${f.message}`);
}

const GOOD = [example('hi', 'hello'), example('2+2?', '4'), example('天气怎么样？', '晴天 🙂'), example('q', 'a', 'be brief')];

describe('language server: live diagnostics over JSON-RPC', () => {
  let client: TestClient;
  let n = 0;
  const uri = (): string => `file:///tmp/diagnostics-${++n}.jsonl`;

  before(async () => {
    client = await TestClient.start({ settings: { countTokens: false } });
  });
  after(async () => {
    await client.stop();
  });

  /** Waits for the current version's diagnostics and compares them with the oracle. */
  async function agrees(u: string): Promise<Diagnostic[]> {
    const diagnostics = await client.diagnosticsOf(u);
    assert.deepEqual(full(diagnostics), oracle(client.text(u)), `diagnostics of:\n${client.text(u)}`);
    for (const d of diagnostics) assert.equal(d.source, 'finetune');
    return diagnostics;
  }

  it('publishes findings with codes, severities and ranges when a document opens', async () => {
    const u = uri();
    const text = [GOOD[0], '{"messages": [}', '', GOOD[1], GOOD[0], '[1,2]', '{"messages":[{"role":"user","content":"x"}]}', GOOD[2]].join('\n') + '\n';
    await client.open(u, text);
    const diagnostics = await agrees(u);
    assert.deepEqual(brief(diagnostics), [
      '1:14-15 json-syntax',
      '2:0-0 line-blank',
      `4:0-${GOOD[0].length} duplicate`,
      '5:0-5 not-object',
      '6:1-11 no-pair',
    ]);
    assert.equal(diagnostics[0].severity, 1);
    assert.equal(diagnostics[1].severity, 2);
    assert.match(messageOf(diagnostics[2]), /copy of line 1\b/);
  });

  it('re-checks edits inside a line, inserted and deleted lines, and a change that joins two lines', async () => {
    const u = uri();
    await client.open(u, GOOD.join('\n') + '\n');
    assert.deepEqual(await agrees(u), []);
    // Break line 2 inside: delete its closing brace.
    const len = GOOD[1].length;
    await client.change(u, [{ range: { start: { line: 1, character: len - 1 }, end: { line: 1, character: len } }, text: '' }]);
    // The line ends too early: the finding is on its last character.
    assert.deepEqual(brief(await agrees(u)), [`1:${len - 2}-${len - 1} json-syntax`]);
    // Fix it again.
    await client.change(u, [{ range: { start: { line: 1, character: len - 1 }, end: { line: 1, character: len - 1 } }, text: '}' }]);
    assert.deepEqual(await agrees(u), []);
    // Insert three lines (one blank, one broken) in the middle.
    await client.change(u, [{ range: { start: { line: 2, character: 0 }, end: { line: 2, character: 0 } }, text: `\n{"x":1}\n${GOOD[3]}\n` }]);
    await agrees(u);
    // Delete two lines across line ends.
    await client.change(u, [{ range: { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } }, text: '' }]);
    await agrees(u);
    // Join two lines: remove the line end between them (gives one invalid line).
    const first = client.docs.get(u)?.getText({ start: { line: 0, character: 0 }, end: { line: 1, character: 0 } }) ?? '';
    await client.change(u, [{ range: { start: { line: 0, character: first.length - 1 }, end: { line: 1, character: 0 } }, text: '' }]);
    const joined = await agrees(u);
    assert.equal(joined[0].code, 'json-syntax');
    // Several changes in one notification, applied in order.
    await client.change(u, [
      { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: `${GOOD[2]}\n` },
      { range: { start: { line: 2, character: 0 }, end: { line: 2, character: 0 } }, text: '\n' },
    ]);
    await agrees(u);
  });

  it('keeps CRLF line ends and positions right', async () => {
    const u = uri();
    await client.open(u, [GOOD[0], GOOD[1], '{"messages":5}', GOOD[0]].join('\r\n') + '\r\n');
    assert.deepEqual(brief(await agrees(u)), ['2:12-13 messages-missing', `3:0-${GOOD[0].length} duplicate`]);
    // Edit at the end of a CRLF line (character = length without the CR).
    await client.change(u, [{ range: { start: { line: 2, character: 14 }, end: { line: 2, character: 14 } }, text: ' ' }]);
    await agrees(u);
    // Insert CRLF lines, and delete a CRLF line end.
    await client.change(u, [{ range: { start: { line: 1, character: GOOD[1].length }, end: { line: 1, character: GOOD[1].length } }, text: `\r\n${GOOD[3]}\r\n` }]);
    await agrees(u);
    await client.change(u, [{ range: { start: { line: 0, character: GOOD[0].length }, end: { line: 1, character: 0 } }, text: '' }]);
    await agrees(u);
    // A CR typed before an LF makes a CRLF line end, not a line.
    const doc = client.docs.get(u);
    const last = (doc?.lineCount ?? 2) - 2;
    const lastLength = doc?.getText({ start: { line: last, character: 0 }, end: { line: last + 1, character: 0 } }).replace(/\r?\n$/, '').length ?? 0;
    await client.change(u, [{ range: { start: { line: last, character: lastLength }, end: { line: last, character: lastLength } }, text: '\r' }]);
    await agrees(u);
  });

  it('counts UTF-16 columns across surrogate pairs, in findings and in edits', async () => {
    const u = uri();
    const line = '{"messages":[{"role":"user","content":"🙂🙂"},{"role":"assistant","content":"😀"}],"extra":1}';
    await client.open(u, `${line}\n`);
    const [unknown] = await agrees(u);
    assert.equal(unknown.code, 'key-unknown');
    assert.equal(unknown.range.start.character, line.indexOf('"extra"'));
    // Insert after the emoji (UTF-16 offsets): the key moves by the inserted length.
    const at = line.indexOf('😀') + 2;
    await client.change(u, [{ range: { start: { line: 0, character: at }, end: { line: 0, character: at } }, text: '🚀x' }]);
    const [moved] = await agrees(u);
    assert.equal(moved.range.start.character, line.indexOf('"extra"') + 3);
    // Delete an emoji (two code units).
    const emoji = line.indexOf('🙂');
    await client.change(u, [{ range: { start: { line: 0, character: emoji }, end: { line: 0, character: emoji + 2 } }, text: '' }]);
    await agrees(u);
  });

  it('keeps duplicates right across edits: the next copy becomes the original, line numbers follow', async () => {
    const u = uri();
    const a = GOOD[0];
    const b = GOOD[1];
    await client.open(u, [a, b, a, b, a].join('\n') + '\n');
    assert.deepEqual(full(await agrees(u)).map((s) => s.replace(/ This.*copy of line (\d+).*/, ' of $1')), [
      `2:0-${a.length} duplicate of 1`,
      `3:0-${b.length} duplicate of 2`,
      `4:0-${a.length} duplicate of 1`,
    ]);
    // Change the original of `a`: line 3 becomes the original, line 5 its copy.
    await client.change(u, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: a.length } }, text: GOOD[3] }]);
    const copy4 = (await agrees(u)).find((d) => d.range.start.line === 4);
    assert.ok(copy4);
    assert.match(messageOf(copy4), /copy of line 3\b/);
    // Insert two lines above: every "copy of line N" moves.
    await client.change(u, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: `${GOOD[2]}\n\n` }]);
    const copy6 = (await agrees(u)).find((d) => d.range.start.line === 6);
    assert.ok(copy6);
    assert.match(messageOf(copy6), /copy of line 5\b/);
    // Delete the original of `a` (line 5, 0-based 4): the last copy is alone now.
    await client.change(u, [{ range: { start: { line: 4, character: 0 }, end: { line: 5, character: 0 } }, text: '' }]);
    assert.ok(!(await agrees(u)).some((d) => d.code === 'duplicate' && d.range.start.line === 5));
    // Make a line a copy by typing it.
    await client.change(u, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: GOOD[2].length } }, text: b }]);
    await agrees(u);
  });

  it('keeps duplicates and line numbers right while lines are inserted again and again at one place', async () => {
    const u = uri();
    await client.open(u, [GOOD[0], GOOD[1], GOOD[2]].join('\n') + '\n');
    for (let i = 0; i < 80; i++) {
      // Alternately a copy of line 1 just after it and a copy of line 3 just before line 2: both land in the
      // same gap between two lines, which must be relabelled many times.
      const text = i % 2 === 0 ? `\n${GOOD[0]}` : `${GOOD[2]}\n`;
      const at = i % 2 === 0 ? { line: 0, character: GOOD[0].length } : { line: 1, character: 0 };
      await client.change(u, [{ range: { start: at, end: at }, text }]);
      if (i % 10 === 9) await agrees(u);
    }
    const diagnostics = await agrees(u);
    assert.equal(diagnostics.filter((d) => d.code === 'duplicate').length, 80);
  });

  it('reports blank lines, but not a final newline, and an empty file as one file-empty error', async () => {
    const u = uri();
    await client.open(u, `${GOOD[0]}\n\n  \n${GOOD[1]}\n`);
    assert.deepEqual(brief(await agrees(u)), ['1:0-0 line-blank', '2:0-2 line-blank']);
    const empty = uri();
    await client.open(empty, '');
    assert.deepEqual(brief(await agrees(empty)), ['0:0-0 file-empty']);
    const blanks = uri();
    await client.open(blanks, '\n \n\t\n');
    assert.deepEqual(brief(await agrees(blanks)), ['0:0-0 file-empty']);
    // Typing an example makes the blank lines blank lines again.
    await client.change(blanks, [{ range: { start: { line: 3, character: 0 }, end: { line: 3, character: 0 } }, text: GOOD[0] }]);
    assert.deepEqual(brief(await agrees(blanks)), ['0:0-0 line-blank', '1:0-1 line-blank', '2:0-1 line-blank']);
    // And deleting everything gives file-empty back.
    const doc = client.docs.get(blanks);
    await client.change(blanks, [{ range: { start: { line: 0, character: 0 }, end: doc?.positionAt(doc.getText().length) ?? { line: 9, character: 0 } }, text: '' }]);
    assert.deepEqual(brief(await agrees(blanks)), ['0:0-0 file-empty']);
    // A full-text change (no range) is accepted too.
    await client.change(blanks, [{ text: `${GOOD[1]}\n${GOOD[1]}` }]);
    assert.deepEqual(brief(await agrees(blanks)), [`1:0-${GOOD[1].length} duplicate`]);
  });

  it('agrees with the file checker after each of 300 random edits', async () => {
    const u = uri();
    const rand = seeded(7);
    const pieces = ['\n', '\r\n', '{', '}', '"', ',', ' ', 'x', '🙂', '中', ...GOOD, `${GOOD[0]}\n`, `\n${GOOD[1]}\n`, '"messages"', '[]', '\n\n'];
    await client.open(u, [...GOOD, GOOD[0], '', '{"messages":[]}'].join('\n') + '\n');
    await agrees(u);
    for (let i = 0; i < 300; i++) {
      const doc = client.docs.get(u);
      assert.ok(doc);
      const pos = (): { line: number; character: number } => {
        const line = Math.floor(rand() * doc.lineCount);
        const lineText = doc.getText({ start: { line, character: 0 }, end: { line: line + 1, character: 0 } }).replace(/\r?\n$/, '');
        let character = Math.floor(rand() * (lineText.length + 1));
        // Never between the halves of a surrogate pair (an editor never puts a cursor there).
        if (character > 0 && character < lineText.length && /[\udc00-\udfff]/.test(lineText[character])) character--;
        return { line, character };
      };
      let start = pos();
      let end = rand() < 0.5 ? start : pos();
      if (doc.offsetAt(end) < doc.offsetAt(start)) [start, end] = [end, start];
      const text = rand() < 0.3 ? '' : pieces[Math.floor(rand() * pieces.length)];
      await client.change(u, [{ range: { start, end }, text }]);
      await agrees(u);
    }
  });

  it('caps the diagnostics with one summary, while the status counts them all', async () => {
    const u = uri();
    const lines = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? `{"bad": ${i}` : GOOD[i % 4]));
    await client.open(u, lines.join('\n') + '\n');
    await agrees(u);
    client.settings = { ...client.settings, maxDiagnostics: 5 };
    await client.connection.sendNotification('workspace/didChangeConfiguration', { settings: null });
    const capped = await client.diagnosticsOf(u, (d) => d.length === 6);
    const summary = capped[5];
    assert.equal(summary.code, 'more-findings');
    assert.equal(summary.severity, 3);
    assert.equal(summary.range.start.line, capped[4].range.start.line);
    const total = oracle(client.text(u)).length;
    assert.match(messageOf(summary), new RegExp(`^${total - 5} more findings are not shown.*count all ${total}`));
    await client.waitFor('status', () => client.statuses.get(u)?.errors === 15);
    const stats = await client.statistics(u);
    assert.equal(stats?.errors, 15);
    client.settings = { ...client.settings, maxDiagnostics: 1000 };
    await client.connection.sendNotification('workspace/didChangeConfiguration', { settings: null });
    await client.diagnosticsOf(u, (d) => d.length === total);
  });

  it('checks .jsonl and .ndjson files and only those', async () => {
    await client.open('file:///tmp/other.json', '{"not": "a dataset"', 'json');
    const nd = 'file:///tmp/data.ndjson';
    await client.open(nd, '[]\n', 'plaintext');
    assert.deepEqual(brief(await client.diagnosticsOf(nd)), ['0:0-2 not-object']);
    assert.equal(client.diagnostics.has('file:///tmp/other.json'), false);
    // Closing clears the diagnostics.
    await client.close(nd);
    await client.waitFor('cleared diagnostics', () => client.diagnostics.get(nd)?.diagnostics.length === 0);
  });
});

describe('language server: settings without workspace/configuration', () => {
  it('takes the settings from initializationOptions', async () => {
    const client = await TestClient.start({ configuration: false, initializationOptions: { maxDiagnostics: 2, countTokens: false } });
    try {
      const u = 'file:///tmp/init-options.jsonl';
      await client.open(u, '1\n2\n3\n4\n');
      const diagnostics = await client.diagnosticsOf(u);
      assert.deepEqual(brief(diagnostics), ['0:0-1 not-object', '1:0-1 not-object', '1:0-0 more-findings']);
      // Settings pushed with didChangeConfiguration (clients without the pull model).
      await client.connection.sendNotification('workspace/didChangeConfiguration', { settings: { finetune: { dataset: { maxDiagnostics: 3 } } } });
      await client.diagnosticsOf(u, (d) => d.length === 4);
    } finally {
      await client.stop();
    }
  });
});
