import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Finding } from '../common/dataset/codes';
import { DatasetStreamChecker, type FileSummary } from '../common/dataset/fileCheck';

const A = '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}';
const B = '{"messages":[{"role":"user","content":"中文"},{"role":"assistant","content":"😀"}]}';
const BAD = '{"messages":[{"role":"bot","content":"b"}]}';
const BOT = BAD.indexOf('"bot"');

function check(text: string | Uint8Array, chunk = Infinity): { findings: Finding[]; summary: FileSummary } {
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  const findings: Finding[] = [];
  const checker = new DatasetStreamChecker({ onFinding: (f) => findings.push(f) });
  for (let i = 0; i < bytes.length; i += Math.min(chunk, bytes.length)) checker.push(bytes.subarray(i, Math.min(bytes.length, i + chunk)));
  return { findings, summary: checker.end() };
}

const brief = (fs: Finding[]): [number, string, number, number][] => fs.map((f) => [f.line, f.code, f.start, f.end]);

describe('file-wide rules', () => {
  const table: { name: string; text: string; expect: [number, string, number, number][] }[] = [
    { name: 'file-empty: no bytes', text: '', expect: [[0, 'file-empty', 0, 0]] },
    { name: 'file-empty: only blank lines is one error and nothing else', text: '\n  \n\r\n', expect: [[0, 'file-empty', 0, 0]] },
    { name: 'a single final newline does not make a blank line', text: `${A}\n`, expect: [] },
    { name: 'no final newline', text: `${A}\n${B}`, expect: [] },
    { name: 'CRLF line ends are fine', text: `${A}\r\n${B}\r\n`, expect: [] },
    { name: 'line-blank: empty line in the middle', text: `${A}\n\n${B}\n`, expect: [[1, 'line-blank', 0, 0]] },
    { name: 'line-blank: white space only, whole line', text: `${A}\n \t \n${B}`, expect: [[1, 'line-blank', 0, 3]] },
    { name: 'line-blank: two final newlines make one blank line', text: `${A}\n\n`, expect: [[1, 'line-blank', 0, 0]] },
    { name: 'line-blank: leading blank lines are reported once content proves the file is not empty', text: `\n\n${A}`, expect: [[0, 'line-blank', 0, 0], [1, 'line-blank', 0, 0]] },
    { name: 'duplicate: says which line, covers the whole line', text: `${A}\n${B}\n${A}\n`, expect: [[2, 'duplicate', 0, A.length]] },
    { name: 'duplicate: every later copy points at the first', text: `${B}\n${B}\n${B}`, expect: [[1, 'duplicate', 0, B.length], [2, 'duplicate', 0, B.length]] },
    { name: 'duplicate: a CRLF copy of an LF line is still a copy', text: `${A}\r\n${A}\n`, expect: [[1, 'duplicate', 0, A.length]] },
    { name: 'duplicate: the copy of a broken line keeps its own findings too, sorted', text: `${BAD}\n${BAD}`, expect: [[0, 'role-unknown', BOT, BOT + 5], [1, 'duplicate', 0, BAD.length], [1, 'role-unknown', BOT, BOT + 5]] },
    { name: 'blank lines are not duplicates of each other', text: `${A}\n\n\n${B}`, expect: [[1, 'line-blank', 0, 0], [2, 'line-blank', 0, 0]] },
    { name: 'a BOM on the first line is skipped and counts as a column', text: `\uFEFF${BAD}`, expect: [[0, 'role-unknown', BOT + 1, BOT + 6]] },
    { name: 'a BOM on a later line is an error', text: `${A}\n\uFEFF${A}`, expect: [[1, 'json-syntax', 0, 1]] },
  ];
  for (const { name, text, expect } of table) {
    it(name, () => {
      const { findings } = check(text);
      assert.deepEqual(brief(findings), expect);
    });
  }

  it('duplicate names the original line in its message and data', () => {
    const { findings } = check(`${A}\n${B}\n${A}`);
    assert.equal(findings[0].data, 0);
    assert.match(findings[0].message, /copy of line 1\b/);
  });

  it('counts everything in the summary', () => {
    const { summary } = check(`${A}\n\n${BAD}\n${A}\n${B}\n[1]\n`);
    assert.equal(summary.lines, 6);
    assert.equal(summary.examples, 4);
    assert.equal(summary.validExamples, 3);
    assert.equal(summary.blank, 1);
    assert.equal(summary.errors, 2);
    assert.equal(summary.warnings, 2);
    assert.equal(summary.byCode['role-unknown'], 1);
    assert.equal(summary.byCode['not-object'], 1);
    assert.equal(summary.byCode.duplicate, 1);
    assert.equal(summary.byCode['line-blank'], 1);
  });

  it('gives the same findings whatever the chunk size, lines split anywhere', () => {
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      const k = (i * 7919) % 11;
      lines.push(k === 0 ? '' : k === 1 ? BAD : k === 2 ? A : k === 3 ? `{"messages":[{"role":"user","content":"${'长'.repeat(i)}"}]}` : `{"messages":[{"role":"user","content":"q${i} 中文😀"},{"role":"assistant","content":"r${i}"}]}`);
    }
    const text = '\uFEFF' + lines.join('\r\n');
    const whole = check(text);
    assert.ok(whole.findings.length > 50);
    for (const size of [1, 2, 3, 5, 7, 64, 4093]) {
      const chunked = check(text, size);
      assert.deepEqual(chunked.findings, whole.findings, `chunk size ${size}`);
      assert.deepEqual(chunked.summary, whole.summary, `chunk size ${size}`);
    }
  });

  it('invalid UTF-8 is checked without throwing', () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('{"messages":[{"role":"user","content":"'), 0xff, 0xc3, 0x28, ...new TextEncoder().encode('"},{"role":"assistant","content":"b"}]}\n'), 0xfe, 0x0a]);
    const { findings } = check(bytes);
    assert.deepEqual(findings.map((f) => [f.line, f.code]), [[1, 'json-syntax']]);
  });

  it('a million empty lines after an example are a million blank-line warnings, counted without holding them', () => {
    const text = A + '\n'.repeat(1_000_001);
    let blanks = 0;
    const checker = new DatasetStreamChecker({ onFinding: (f) => (blanks += f.code === 'line-blank' ? 1 : 0) });
    checker.push(new TextEncoder().encode(text));
    const summary = checker.end();
    assert.equal(summary.blank, 1_000_000);
    assert.equal(blanks, 1_000_000);
  });
});
