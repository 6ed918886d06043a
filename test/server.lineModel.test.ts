// The language server's line model on its own: incremental changes against the standard full-text document,
// and the order labels that replace line numbers (so that inserting a line never renumbers the whole file).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { seeded } from '../bench/generate';
import { LineModel } from '../server/lineModel';

/** The model's text, rebuilt from its lines (LF or CRLF after each but the last). */
function textOf(model: LineModel): string {
  return model
    .all()
    .map((line, i, all) => model.text(line) + (line.cr ? '\r' : '') + (i < all.length - 1 ? '\n' : ''))
    .join('');
}

function checkOrder(model: LineModel): void {
  const lines = model.all();
  for (let i = 0; i < lines.length; i++) {
    if (i > 0) assert.ok(lines[i].order > lines[i - 1].order, `order increases at line ${i}`);
    assert.ok(Number.isInteger(lines[i].order) && lines[i].order < 2 ** 30);
    assert.equal(model.indexOf(lines[i]), i);
  }
}

describe('line model', () => {
  it('splits on LF, keeps CR as part of the line end, and always has a line', () => {
    for (const text of ['', 'a', 'a\n', 'a\r\nb', '\n\n', 'x\r', '中\r\n🙂\n']) {
      const model = new LineModel(text);
      assert.equal(textOf(model), text);
      assert.equal(model.lineCount, text.split('\n').length);
    }
    const model = new LineModel('ab\r\n🙂x\n');
    assert.equal(model.length(model.all()[0]), 2, 'the CR is not counted in the line length');
    assert.equal(model.length(model.all()[1]), 3, 'an emoji is two UTF-16 units');
  });

  it('keeps lines in segments of the opened text, and compares contents across segments and edits', () => {
    const long = Array.from({ length: 5000 }, (_, i) => `{"n": ${i % 50}, "text": "行 ${i % 50}"}`).join('\n');
    const model = new LineModel(long);
    assert.equal(textOf(model), long);
    const lines = model.all();
    assert.ok(lines[0].buf !== lines[4999].buf, 'more than one segment');
    assert.ok(model.sameContent(lines[0], lines[4950]));
    assert.ok(!model.sameContent(lines[0], lines[1]));
    model.replace({ line: 1, character: 0 }, { line: 1, character: model.length(lines[1]) }, model.text(lines[0]));
    assert.ok(model.sameContent(model.all()[1], lines[4950]), 'an edited line (text) against a stored one (bytes)');
  });

  it('applies random incremental changes as the standard document does, renumbering through order labels', () => {
    const rand = seeded(11);
    const pieces = ['\n', '\r\n', 'a', '中文', '🙂', '{"x":1}', '\n\n\n', ''];
    let doc = TextDocument.create('u', 'jsonl', 1, 'first\nsecond\r\nthird 🙂\n');
    const model = new LineModel(doc.getText());
    for (let step = 0; step < 3000; step++) {
      // Half of the edits hit the same place, as typing Enter again and again does.
      const line = step % 2 === 0 ? Math.min(1, doc.lineCount - 1) : Math.floor(rand() * doc.lineCount);
      const length = model.length(model.all()[line]);
      let character = Math.floor(rand() * (length + 1));
      const lineText = model.text(model.all()[line]);
      if (/[\udc00-\udfff]/.test(lineText[character] ?? '')) character--;
      const start = { line, character };
      const end = rand() < 0.7 ? start : doc.positionAt(doc.offsetAt(start) + Math.floor(rand() * 8));
      if (/[\udc00-\udfff]/.test(doc.getText({ start: end, end: { line: end.line, character: end.character + 1 } }))) end.character--;
      const text = step % 2 === 0 ? '\n' : pieces[Math.floor(rand() * pieces.length)];
      doc = TextDocument.update(doc, [{ range: { start, end }, text }], doc.version + 1);
      model.replace(start, end, text);
      if (step % 100 === 0) {
        assert.equal(textOf(model), doc.getText(), `after step ${step}`);
        checkOrder(model);
      }
    }
    assert.equal(textOf(model), doc.getText());
    assert.ok(doc.lineCount > 300, `${doc.lineCount} lines`);
    checkOrder(model);
  });

  it('pastes many lines at once and replaces the whole text', () => {
    const model = new LineModel('a\nb\n');
    const paste = Array.from({ length: 10_000 }, (_, i) => `line ${i}`).join('\n');
    model.replace({ line: 1, character: 0 }, { line: 1, character: 0 }, paste);
    assert.equal(model.lineCount, 10_002);
    checkOrder(model);
    const removed = model.all()[5];
    model.replaceAll('x\ny');
    assert.equal(textOf(model), 'x\ny');
    assert.equal(model.indexOf(removed), -1);
    checkOrder(model);
  });

  it('clamps positions past the end of a line or of the document', () => {
    const model = new LineModel('ab\r\ncd');
    model.replace({ line: 0, character: 99 }, { line: 0, character: 99 }, '!');
    model.replace({ line: 9, character: 0 }, { line: 9, character: 0 }, '?');
    assert.equal(textOf(model), 'ab!\r\ncd?');
  });
});
