import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FINDING_CODES, SEVERITY, type FindingCode } from '../common/dataset/codes';
import { LineChecker } from '../common/dataset/lineCheck';

/** The [start, end) UTF-16 range of the `nth` occurrence of `needle` in `line`. */
function at(line: string, needle: string, nth = 0): [number, number] {
  let from = 0;
  let index = -1;
  for (let i = 0; i <= nth; i++) {
    index = line.indexOf(needle, from);
    assert.ok(index >= 0, `test setup: ${JSON.stringify(needle)} #${nth} not in ${line}`);
    from = index + 1;
  }
  return [index, index + needle.length];
}

const ok = (system = false): string =>
  JSON.stringify({
    messages: [
      ...(system ? [{ role: 'system', content: 'Be brief.' }] : []),
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
    ],
  });

interface Case {
  name: string;
  line: string;
  /** Expected findings: code and the text the range covers (or an explicit range). */
  expect: { code: FindingCode; range: [number, number]; message?: RegExp }[];
}

function c(name: string, line: string, expect: (line: string) => Case['expect']): Case {
  return { name, line, expect: expect(line) };
}

const cases: Case[] = [
  c('valid with system', ok(true), () => []),
  c('valid without system', ok(), () => []),
  c('valid multi-turn with weight and name', '{"messages":[{"role":"user","content":"a","name":"x"},{"role":"assistant","content":"b","weight":0},{"role":"user","content":"c"},{"role":"assistant","content":"d","weight":1}]}', () => []),
  c('weight 1.0 and 0e5 are 1 and 0', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","weight":1.0},{"role":"user","content":"c"},{"role":"assistant","content":"d","weight":0e5}]}', () => []),
  c('escaped keys and roles are what they decode to', '{"m\\u0065ssages":[{"r\\u006fle":"us\\u0065r","content":"a"},{"role":"assistant","content":"b"}]}', () => []),
  c('white space around tokens and a trailing CR', ' { "messages" : [ {"role":"user","content":"a"} , {"role":"assistant","content":"b"} ] } \r', () => []),

  // json-syntax: range at the failing position.
  c('json-syntax: unclosed object', '{"messages":[]', (l) => [{ code: 'json-syntax', range: [l.length - 1, l.length], message: /line ends too early/ }]),
  c('json-syntax: single quotes', "{'messages':[]}", () => [{ code: 'json-syntax', range: [1, 2], message: /column 2.*property name/ }]),
  c('json-syntax: trailing comma', '{"messages":[1,]}', (l) => [{ code: 'json-syntax', range: at(l, ']'), message: /JSON value/ }]),
  c('json-syntax: garbage after the value', '{"messages":[]} x', (l) => [{ code: 'json-syntax', range: at(l, 'x'), message: /after the end/ }]),
  c('json-syntax: raw tab inside a string', '{"messages":[{"role":"user","content":"a\tb"}]}', (l) => [{ code: 'json-syntax', range: at(l, '\t'), message: /U\+0009/ }]),
  c('json-syntax: bad escape', '{"messages":[{"role":"user","content":"a\\qb"}]}', (l) => [{ code: 'json-syntax', range: [at(l, '\\q')[0], at(l, '\\q')[0] + 1], message: /escape/ }]),
  c('json-syntax: bad number', '{"messages":[01]}', (l) => [{ code: 'json-syntax', range: [at(l, '1]')[0], at(l, '1]')[0] + 1], message: /','/ }]),
  c('json-syntax: bad literal', '{"messages":[tru]}', (l) => [{ code: 'json-syntax', range: at(l, ']'), message: /'true'/ }]),
  c('json-syntax: column counts UTF-16 units after Chinese and emoji', '{"messages":[{"role":"user","content":"中文😀"} x]}', (l) => [{ code: 'json-syntax', range: at(l, 'x'), message: new RegExp(`column ${at(l, 'x')[0] + 1}:`) }]),
  c('json-syntax wins over everything else on the line', '{"messages":[{"role":"bot","content":""}],"x":1', (l) => [{ code: 'json-syntax', range: [l.length - 1, l.length] }]),

  // not-object: the whole value.
  c('not-object: array', '  [1, 2] ', (l) => [{ code: 'not-object', range: at(l, '[1, 2]'), message: /array/ }]),
  c('not-object: string', '"hello"', (l) => [{ code: 'not-object', range: [0, l.length], message: /string/ }]),
  c('not-object: number', '42', () => [{ code: 'not-object', range: [0, 2], message: /number/ }]),
  c('not-object: null', 'null', () => [{ code: 'not-object', range: [0, 4], message: /null/ }]),

  // messages-missing: the object, or the non-array value.
  c('messages-missing: no key', '{"conversations":[]}', (l) => [{ code: 'messages-missing', range: [0, l.length], message: /no "messages"/ }]),
  c('messages-missing: empty object', '{}', () => [{ code: 'messages-missing', range: [0, 2] }]),
  c('messages-missing: not an array', '{"messages":{"role":"user"}}', (l) => [{ code: 'messages-missing', range: at(l, '{"role":"user"}'), message: /object; expected an array/ }]),
  c('messages-missing: the last duplicate key wins, as in JSON.parse', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"messages":"x"}', (l) => [{ code: 'messages-missing', range: at(l, '"x"') }]),
  c('messages-missing ends the checks: no key-unknown', '{"other":1}', (l) => [{ code: 'messages-missing', range: [0, l.length] }]),

  // messages-empty.
  c('messages-empty', '{"messages": [ ], "extra": 1}', (l) => [{ code: 'messages-empty', range: at(l, '[ ]'), message: /empty array/ }]),

  // message-invalid: the entry, or the offending value.
  c('message-invalid: entry not an object', '{"messages":["hi",{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'message-invalid', range: at(l, '"hi"'), message: /Message 1 is a string/ }]),
  c('message-invalid: no role', '{"messages":[{"content":"a"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'message-invalid', range: at(l, '{"content":"a"}'), message: /no "role"/ }]),
  c('message-invalid: no content', '{"messages":[{"role":"user"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'message-invalid', range: at(l, '{"role":"user"}'), message: /no "content"/ }]),
  c('message-invalid: content not a string', '{"messages":[{"role":"user","content":["a"]},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'message-invalid', range: at(l, '["a"]'), message: /"content" that is an array/ }]),
  c('message-invalid: role not a string', '{"messages":[{"role":1,"content":"a"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'message-invalid', range: at(l, '1'), message: /"role" that is a number/ }]),
  c('message-invalid: both missing is one finding', '{"messages":[{},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'message-invalid', range: at(l, '{}'), message: /no "role" and has no "content"/ }]),

  // role-unknown: the role value.
  c('role-unknown', '{"messages":[{"role":"user","content":"a"},{"role":"bot","content":"b"}]}', (l) => [{ code: 'role-unknown', range: at(l, '"bot"'), message: /"bot".*"system", "user" or "assistant"/ }]),
  c('role-unknown is case-sensitive', '{"messages":[{"role":"User","content":"a"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'role-unknown', range: at(l, '"User"') }]),
  c('role-unknown: tool', '{"messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"},{"role":"assistant","content":"c"}]}', (l) => [{ code: 'role-unknown', range: at(l, '"tool"') }]),

  // weight-invalid: the value.
  c('weight-invalid: on a user message', '{"messages":[{"role":"user","content":"a","weight":1},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'weight-invalid', range: [at(l, '1}')[0], at(l, '1}')[0] + 1], message: /user message/ }]),
  c('weight-invalid: on a system message', '{"messages":[{"role":"system","content":"s","weight":0},{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'weight-invalid', range: [at(l, '0}')[0], at(l, '0}')[0] + 1], message: /system message/ }]),
  c('weight-invalid: 0.5', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","weight":0.5}]}', (l) => [{ code: 'weight-invalid', range: at(l, '0.5'), message: /0\.5.*expected 0/ }]),
  c('weight-invalid: a string', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","weight":"1"}]}', (l) => [{ code: 'weight-invalid', range: at(l, '"1"') }]),
  c('weight-invalid: true', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","weight":true}]}', (l) => [{ code: 'weight-invalid', range: at(l, 'true') }]),

  // system-not-first: one per misplaced system message, on its role.
  c('system-not-first: in the middle', '{"messages":[{"role":"user","content":"a"},{"role":"system","content":"s"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'system-not-first', range: at(l, '"system"'), message: /position 2/ }]),
  c('system-not-first: a second system message, one finding each', '{"messages":[{"role":"system","content":"s"},{"role":"system","content":"t"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"system","content":"u"}]}', (l) => [
    { code: 'system-not-first', range: at(l, '"system"', 1) },
    { code: 'system-not-first', range: at(l, '"system"', 2) },
  ]),

  // no-pair: on the "messages" key.
  c('no-pair: only a user message', '{"messages":[{"role":"user","content":"a"}]}', (l) => [{ code: 'no-pair', range: at(l, '"messages"'), message: /no assistant message/ }]),
  c('no-pair: only assistant messages', '{"messages":[{"role":"assistant","content":"a"}]}', (l) => [{ code: 'no-pair', range: at(l, '"messages"'), message: /no user message/ }]),
  c('no-pair: only a system message', '{"messages":[{"role":"system","content":"a"}]}', (l) => [{ code: 'no-pair', range: at(l, '"messages"'), message: /no user and no assistant/ }]),

  // role-order: the first message that breaks alternation, or a trailing user message.
  c('role-order: starts with assistant', '{"messages":[{"role":"assistant","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"}]}', (l) => [{ code: 'role-order', range: at(l, '"assistant"'), message: /Message 1 is assistant; expected user/ }]),
  c('role-order: two users in a row', '{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"}]}', (l) => [{ code: 'role-order', range: at(l, '"user"', 1), message: /Message 2 is user; expected assistant/ }]),
  c('role-order: two assistants in a row', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"assistant","content":"c"}]}', (l) => [{ code: 'role-order', range: at(l, '"assistant"', 1) }]),
  c('role-order: ends with user', '{"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}', (l) => [{ code: 'role-order', range: at(l, '"user"', 1), message: /ends with a user message \(message 4\)/ }]),
  c('role-order: only the first break is reported', '{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"},{"role":"user","content":"d"}]}', (l) => [{ code: 'role-order', range: at(l, '"user"', 1) }]),
  c('role-order ignores a misplaced system message, which has its own finding', '{"messages":[{"role":"user","content":"a"},{"role":"system","content":"s"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'system-not-first', range: at(l, '"system"') }]),

  // content-empty (warning): the content value.
  c('content-empty: empty string', '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":""}]}', (l) => [{ code: 'content-empty', range: at(l, '""'), message: /Message 2 has empty content/ }]),
  c('content-empty: spaces and escaped new lines', '{"messages":[{"role":"user","content":"  \\n\\t "},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'content-empty', range: at(l, '"  \\n\\t "') }]),
  c('content-empty: ideographic space', '{"messages":[{"role":"user","content":"\u3000"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'content-empty', range: at(l, '"\u3000"') }]),
  c('content-empty: not for a non-breaking content', '{"messages":[{"role":"user","content":" \\u4e2d "},{"role":"assistant","content":"b"}]}', () => []),

  // key-unknown (warning): the key.
  c('key-unknown: top level', '{"id":7,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'key-unknown', range: at(l, '"id"'), message: /"id" at the top level/ }]),
  c('key-unknown: in a message', '{"messages":[{"role":"user","content":"a","tool_calls":[]},{"role":"assistant","content":"b"}]}', (l) => [{ code: 'key-unknown', range: at(l, '"tool_calls"'), message: /in message 1/ }]),

  // Precedence.
  c('invalid messages skip the order checks', '{"messages":[{"role":"user","content":"a"},{"role":"bot","content":"b"},{"role":"user","content":"c"}]}', (l) => [{ code: 'role-unknown', range: at(l, '"bot"') }]),
  c('message-invalid skips no-pair', '{"messages":[{"role":"user"}]}', (l) => [{ code: 'message-invalid', range: at(l, '{"role":"user"}') }]),
  c('several findings on one line, sorted by column', '{"x":1,"messages":[{"role":"user","content":""},{"role":"user","content":"b"},{"role":"assistant","content":"c"}]}', (l) => [
    { code: 'key-unknown', range: at(l, '"x"') },
    { code: 'content-empty', range: at(l, '""') },
    { code: 'role-order', range: at(l, '"user"', 1) },
  ]),
];

describe('dataset rules, one line at a time', () => {
  const checker = new LineChecker();
  for (const { name, line, expect } of cases) {
    it(name, () => {
      const result = checker.checkText(line);
      const got = result.findings.map((f) => ({ code: f.code, range: [f.start, f.end] }));
      assert.deepEqual(got, expect.map((e) => ({ code: e.code, range: e.range })));
      for (const [i, e] of expect.entries()) {
        assert.equal(result.findings[i].severity, SEVERITY[e.code]);
        if (e.message) assert.match(result.findings[i].message, e.message);
      }
      assert.equal(result.errors, result.findings.filter((f) => f.severity === 'error').length);
    });
  }

  it('covers every per-line code', () => {
    const covered = new Set(cases.flatMap((k) => k.expect.map((e) => e.code)));
    const fileWide = new Set<FindingCode>(['line-blank', 'too-long', 'duplicate', 'file-empty']);
    for (const code of FINDING_CODES) if (!fileWide.has(code)) assert.ok(covered.has(code), `no case for ${code}`);
  });

  it('classifies lines', () => {
    assert.equal(checker.checkText('').kind, 'blank');
    assert.equal(checker.checkText(' \t\r').kind, 'blank');
    assert.equal(checker.checkText(ok()).kind, 'example');
    assert.equal(checker.checkText(ok()).messages, 2);
    assert.equal(checker.checkText('{"messages":[{"role":"user","content":"a"}]}').kind, 'example');
    assert.equal(checker.checkText('[]').kind, 'broken');
    assert.equal(checker.checkText('{').kind, 'broken');
  });

  it('skips a byte order mark only on the first line, where it still counts as a column', () => {
    const line = '\uFEFF' + ok();
    assert.deepEqual(checker.checkText(line, true).findings, []);
    const broken = '\uFEFF{"messages":[{"role":"bot","content":"a"}]}';
    const first = checker.checkText(broken, true).findings;
    assert.deepEqual(first.map((f) => [f.code, f.start]), [['role-unknown', broken.indexOf('"bot"')]]);
    assert.equal(checker.checkText(line, false).findings[0].code, 'json-syntax');
  });

  it('checks bytes in a larger buffer without reading past the line end', () => {
    const bytes = new TextEncoder().encode('{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}\n}');
    const end = bytes.indexOf(0x0a);
    assert.deepEqual(checker.check(bytes, 0, end).findings, []);
    // The line cut short must fail at its own end, not see the '}' of the next line.
    const cut = checker.check(bytes, 0, end - 1);
    assert.equal(cut.findings[0].code, 'json-syntax');
    assert.equal(cut.findings[0].start, end - 2);
  });

  it('survives deep nesting without recursion', () => {
    const deep = '{"messages":' + '['.repeat(200_000) + ']'.repeat(200_000) + '}';
    const result = checker.checkText(deep);
    assert.equal(result.kind, 'example');
    assert.equal(result.findings[0].code, 'message-invalid');
    const unbalanced = '['.repeat(200_000);
    assert.equal(checker.checkText(unbalanced).findings[0].code, 'json-syntax');
  });

  it('reports a line with a million messages in one pass', () => {
    const bad = '{"role":"user","content":""}';
    const line = `{"messages":[${Array(200_000).fill(bad).join(',')}]}`;
    const result = checker.checkText(line);
    assert.equal(result.messages, 200_000);
    assert.equal(result.findings.filter((f) => f.code === 'content-empty').length, 200_000);
    const last = result.findings.filter((f) => f.code === 'content-empty').at(-1);
    assert.equal(last?.start, line.lastIndexOf('""'));
  });
});

/** A seeded generator of near-JSON lines: valid JSON with random edits applied. */
function* mutations(seed: number, count: number): Generator<string> {
  let s = seed >>> 0;
  const rand = (n: number): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
  const pieces = ['{', '}', '[', ']', '"', ',', ':', '\\', 'u', '0', '1', '-', '.', 'e', 'E', '+', 'true', 'false', 'null', ' ', '\t', '\u0001', '中', '😀', '"a"', '\\n', '\\u00e9', '\\uD83D'];
  const seeds = [ok(), ok(true), '{"a":[1,2.5e-3,-0,{"b":null}],"c":"x\\"y"}', '[]', '"s"', '-12.5E+7', '{"messages":[{"role":"user","content":"中文 😀"}]}'];
  for (let i = 0; i < count; i++) {
    let line = seeds[rand(seeds.length)];
    const edits = 1 + rand(3);
    for (let k = 0; k < edits; k++) {
      const pos = rand(line.length + 1);
      const op = rand(3);
      if (op === 0) line = line.slice(0, pos) + line.slice(pos + 1);
      else if (op === 1) line = line.slice(0, pos) + pieces[rand(pieces.length)] + line.slice(pos);
      else line = line.slice(0, pos) + pieces[rand(pieces.length)] + line.slice(pos + 1);
    }
    yield line;
  }
}

describe('the scanner agrees with JSON.parse', () => {
  it('on 20,000 mutated lines: json-syntax exactly when JSON.parse throws', () => {
    const checker = new LineChecker();
    let invalid = 0;
    for (const line of mutations(7, 20_000)) {
      if (line.trim() === '') continue;
      let parses = true;
      try {
        JSON.parse(line);
      } catch {
        parses = false;
      }
      const codes = checker.checkText(line).findings.map((f) => f.code);
      const syntax = codes.includes('json-syntax');
      assert.equal(syntax, !parses, `line ${JSON.stringify(line)}: JSON.parse ${parses ? 'accepts' : 'rejects'} it, the checker says ${codes.join(',') || 'nothing'}`);
      if (syntax) {
        invalid++;
        assert.deepEqual(codes, ['json-syntax']);
      }
    }
    assert.ok(invalid > 1000, `the mutations should break many lines (${invalid})`);
  });

  it('on valid lines: not-object exactly when the value is not an object', () => {
    const checker = new LineChecker();
    for (const value of [1, 'x', null, true, [], [1], {}, { messages: 1 }]) {
      const line = JSON.stringify(value);
      const codes = checker.checkText(line).findings.map((f) => f.code);
      const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
      assert.equal(codes.includes('not-object'), !isObject, line);
    }
  });
});
