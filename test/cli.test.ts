// The command-line tool, run as users run it: the bundle built from cli/main.ts, started as a child process,
// its exit code, standard output and standard error checked. The streaming property (bounded memory) is
// checked on the chunked path directly, plus one run over a file larger than the tool's read size.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateText } from '../bench/generate';
import { compareFindings, type Finding } from '../common/dataset/codes';
import { DatasetStreamChecker } from '../common/dataset/fileCheck';
import { lineHash, scriptLineHashForTests, textHash } from '../common/dataset/hash';
import { specialBytes } from '../common/dataset/kernel';
import { LineChecker } from '../common/dataset/lineCheck';
import { countConversation } from '../common/tokenizer/chat';
import { loadQwenTokenizer } from '../server/tokenizerFile';
import { CHUNK_SIZE } from '../cli/validate';
import { bundleCli } from './bundles';

const ROOT = join(__dirname, '..');
let dir = '';
let bundle = '';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built command with `args` in the repository root (where media/ holds the tokenizer). */
function cli(args: string[], input?: string | Uint8Array): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Writes `content` to a fresh file in the test folder and returns its path. */
let files = 0;
function file(content: string | Uint8Array, name = `f${files++}.jsonl`): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

interface JsonDiagnostic {
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  code: string;
  severity: string;
  message: string;
}
interface JsonFile {
  path: string;
  examples: number;
  errors: number;
  warnings: number;
  omitted?: number;
  diagnostics: JsonDiagnostic[];
}

async function json(args: string[], input?: string): Promise<{ run: Run; files: JsonFile[] }> {
  const run = await cli(['validate', '--format', 'json', ...args], input);
  const parsed = JSON.parse(run.stdout) as { files: JsonFile[] };
  return { run, files: parsed.files };
}

const brief = (d: JsonDiagnostic): [number, number, number, string] => [d.line, d.column, d.endColumn, d.code];

const user = (content: string): { role: string; content: string } => ({ role: 'user', content });
const assistant = (content: string): { role: string; content: string } => ({ role: 'assistant', content });
const GOOD = JSON.stringify({ messages: [user('Hi'), assistant('Hello!')] });
const GOOD2 = JSON.stringify({ messages: [user('你好'), assistant('你好！😀')] });
const BOT = JSON.stringify({ messages: [user('Hi'), { role: 'bot', content: 'b' }] });
const BOT_AT = BOT.indexOf('"bot"');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'finetune-cli-test-'));
  bundle = join(dir, 'cli.js');
  await bundleCli(bundle);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('validate: output formats and exit codes', () => {
  it('text: one compiler-style line per finding, then a summary; exit 1 on an error', async () => {
    const path = file(`${GOOD}\n\n${BOT}\n`);
    const run = await cli(['validate', '--no-tokens', path]);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, '');
    assert.deepEqual(run.stdout.split('\n'), [
      `${path}:2:1: warning line-blank: Blank line; expected one JSON object per line (remove it).`,
      `${path}:3:${BOT_AT + 1}: error role-unknown: Unknown role "bot" in message 2; expected "system", "user" or "assistant".`,
      `${path}: 2 examples, 1 error, 1 warning`,
      '',
    ]);
  });

  it('json: one object, 1-based lines and columns, exclusive end, sorted by position', async () => {
    const dup = `${BOT}\n${GOOD}\n${BOT}`;
    const path = file(dup);
    const { run, files } = await json(['--no-tokens', path]);
    assert.equal(run.code, 1);
    assert.equal(files.length, 1);
    const [f] = files;
    assert.equal(f.path, path);
    assert.equal(f.examples, 3);
    assert.equal(f.errors, 2);
    assert.equal(f.warnings, 1);
    assert.deepEqual(f.diagnostics.map(brief), [
      [1, BOT_AT + 1, BOT_AT + 6, 'role-unknown'],
      [3, 1, BOT.length + 1, 'duplicate'],
      [3, BOT_AT + 1, BOT_AT + 6, 'role-unknown'],
    ]);
    const d = f.diagnostics[1];
    assert.equal(d.endLine, 3);
    assert.equal(d.severity, 'warning');
    assert.match(d.message, /copy of line 1\b/);
    assert.equal(f.diagnostics[0].severity, 'error');
  });

  it('exit 0 when no file has an error, warnings or not', async () => {
    const clean = await cli(['validate', '--no-tokens', file(`${GOOD}\n${GOOD2}\n`)]);
    assert.equal(clean.code, 0);
    assert.match(clean.stdout, /: 2 examples, 0 errors, 0 warnings\n$/);
    const warned = await cli(['validate', '--no-tokens', file(`${GOOD}\n${GOOD}\n`)]);
    assert.equal(warned.code, 0);
    assert.match(warned.stdout, /warning duplicate/);
  });

  it('several files: each reported in order; the exit code is the worst', async () => {
    const a = file(`${GOOD}\n`);
    const b = file(`${BOT}\n`);
    const text = await cli(['validate', '--no-tokens', a, b]);
    assert.equal(text.code, 1);
    const summaries = text.stdout.split('\n').filter((l) => / examples?, /.test(l));
    assert.deepEqual(summaries, [`${a}: 1 example, 0 errors, 0 warnings`, `${b}: 1 example, 1 error, 0 warnings`]);
    const { files } = await json(['--no-tokens', a, b]);
    assert.deepEqual(
      files.map((f) => [f.path, f.errors, f.diagnostics.length]),
      [
        [a, 0, 0],
        [b, 1, 1],
      ],
    );
  });

  it('an empty file is one file-empty error on line 1', async () => {
    const { run, files } = await json(['--no-tokens', file('')]);
    assert.equal(run.code, 1);
    assert.deepEqual(files[0].diagnostics.map(brief), [[1, 1, 1, 'file-empty']]);
    assert.equal(files[0].examples, 0);
  });

  it('--max-diagnostics prints the first N and still counts all', async () => {
    const lines = [GOOD, ...Array.from({ length: 5 }, () => '')].join('\n') + '\n' + GOOD2;
    const path = file(lines);
    const { files } = await json(['--no-tokens', '--max-diagnostics', '2', path]);
    assert.equal(files[0].diagnostics.length, 2);
    assert.equal(files[0].omitted, 3);
    assert.equal(files[0].warnings, 5);
    const text = await cli(['validate', '--no-tokens', '--max-diagnostics=2', path]);
    assert.match(text.stdout, /5 warnings \(3 not shown, see --max-diagnostics\)/);
  });

  it('reads standard input for -', async () => {
    const { run, files } = await json(['--no-tokens', '-'], `${BOT}\n`);
    assert.equal(run.code, 1);
    assert.equal(files[0].path, '<stdin>');
    assert.deepEqual(files[0].diagnostics.map((d) => d.code), ['role-unknown']);
  });

  it('many findings: the JSON output stays one valid object when diagnostics spill to disk', async () => {
    // About 8 MB of diagnostics JSON, more than is held in memory before spilling.
    const blanks = 60_000;
    const path = file(`${GOOD}\n${'\n'.repeat(blanks)}${GOOD2}\n`);
    const { run, files } = await json(['--no-tokens', path]);
    assert.equal(run.code, 0);
    assert.equal(files[0].warnings, blanks);
    assert.equal(files[0].diagnostics.length, blanks);
    assert.deepEqual(brief(files[0].diagnostics[blanks - 1]), [blanks + 1, 1, 1, 'line-blank']);
  });
});

describe('validate: usage and read errors (exit 2)', () => {
  const usage: [string, string[], RegExp][] = [
    ['an unknown option', ['validate', '--frobnicate', 'x.jsonl'], /unknown option '--frobnicate'/],
    ['a bad format', ['validate', '--format', 'xml', 'x.jsonl'], /--format expects text or json, got 'xml'/],
    ['a missing value', ['validate', 'x.jsonl', '--max-tokens'], /--max-tokens needs a value/],
    ['a bad number', ['validate', '--max-tokens', '12k', 'x.jsonl'], /--max-tokens expects a positive whole number, got '12k'/],
    ['no file', ['validate', '--no-tokens'], /no file to validate/],
    ['an unknown command', ['check', 'x.jsonl'], /unknown command 'check'/],
    ['lsp without a transport', ['lsp'], /lsp needs a transport: --stdio/],
  ];
  for (const [name, args, message] of usage) {
    it(name, async () => {
      const run = await cli(args);
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, message);
      assert.match(run.stderr, /--help' for usage/);
    });
  }

  it('a missing file: says which, still checks the others, exits 2', async () => {
    const missing = join(dir, 'no-such-file.jsonl');
    const good = file(`${BOT}\n`);
    const run = await cli(['validate', '--no-tokens', missing, good]);
    assert.equal(run.code, 2);
    assert.equal(run.stderr, `finetune-studio validate: cannot read '${missing}': no such file.\n`);
    assert.match(run.stdout, new RegExp(`${good.replace(/[.\\]/g, '\\$&')}: 1 example, 1 error`));
    const asJson = await json(['--no-tokens', missing, good]);
    assert.equal(asJson.run.code, 2);
    assert.deepEqual(asJson.files.map((f) => f.path), [good]);
  });

  it('a directory is a read error', async () => {
    const run = await cli(['validate', '--no-tokens', dir]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /cannot read '.*': it is a directory/);
  });

  it('an explicit --tokenizer that cannot be loaded is a read error', async () => {
    const run = await cli(['validate', '--jobs', '0', '--tokenizer', join(dir, 'none.json'), file(`${GOOD}\n`)]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /tokens are not counted/);
  });
});

describe('validate: positions as the editor counts them', () => {
  it('columns in UTF-16 code units after Chinese and emoji', async () => {
    const line = JSON.stringify({ messages: [user('中文😀😀 mixed 文本'), { role: 'bot', content: '🙂' }], extra: 1 });
    const { files } = await json(['--no-tokens', file(`${line}\n`)]);
    const bot = line.indexOf('"bot"');
    const extra = line.indexOf('"extra"');
    assert.deepEqual(files[0].diagnostics.map(brief), [
      [1, bot + 1, bot + 6, 'role-unknown'],
      [1, extra + 1, extra + 8, 'key-unknown'],
    ]);
  });

  it('CRLF line ends: fine, and no part of a column', async () => {
    const { run, files } = await json(['--no-tokens', file(`${GOOD}\r\n${BOT}\r\n${GOOD2}\r\n`)]);
    assert.equal(run.code, 1);
    assert.deepEqual(files[0].diagnostics.map(brief), [[2, BOT_AT + 1, BOT_AT + 6, 'role-unknown']]);
  });

  it('a BOM on the first line is skipped but counts as a column', async () => {
    const { files } = await json(['--no-tokens', file(`\uFEFF${BOT}\n`)]);
    assert.deepEqual(files[0].diagnostics.map(brief), [[1, BOT_AT + 2, BOT_AT + 7, 'role-unknown']]);
  });

  it('a final line without a newline is checked', async () => {
    const { files } = await json(['--no-tokens', file(`${GOOD}\n${BOT}`)]);
    assert.deepEqual(files[0].diagnostics.map(brief), [[2, BOT_AT + 1, BOT_AT + 6, 'role-unknown']]);
  });
});

describe('validate: token counting', () => {
  const long = JSON.stringify({ messages: [user('Explain LoRA in two sentences.'), assistant('LoRA 在冻结的权重旁训练低秩矩阵。 '.repeat(30))] });
  const short = GOOD;
  let expected = 0;

  before(async () => {
    const tokenizer = await loadQwenTokenizer(join(ROOT, 'media', 'qwen2.5-tokenizer.json.gz'));
    expected = countConversation(tokenizer, (JSON.parse(long) as { messages: { role: string; content: string }[] }).messages).total;
  });

  it('too-long over --max-tokens, with the count, the limit and the whole line; sorted among the line\'s findings', async () => {
    const withKey = long.slice(0, -1) + ',"id":7}';
    const path = file(`${short}\n${long}\n${withKey}\n`);
    const { run, files } = await json(['--max-tokens', '100', '--jobs', '0', path]);
    assert.equal(run.code, 0);
    assert.ok(expected > 100, `test setup: the long conversation has ${expected} tokens`);
    const key = withKey.indexOf('"id"');
    assert.deepEqual(files[0].diagnostics.map(brief), [
      [2, 1, long.length + 1, 'too-long'],
      [3, 1, withKey.length + 1, 'too-long'],
      [3, key + 1, key + 5, 'key-unknown'],
    ]);
    const message = files[0].diagnostics[0].message;
    assert.ok(message.includes(String(expected)), message);
    assert.ok(message.includes('100'), message);
    assert.match(message, /truncate/);
    assert.equal(files[0].warnings, 3);
  });

  it('--no-tokens skips counting and so too-long', async () => {
    const path = file(`${short}\n${long}\n`);
    const run = await cli(['validate', '--no-tokens', '--max-tokens', '100', path]);
    assert.equal(run.code, 0);
    assert.doesNotMatch(run.stdout, /too-long/);
  });

  it('the default limit (4096) leaves ordinary conversations alone', async () => {
    const run = await cli(['validate', '--jobs', '0', file(`${short}\n${long}\n`)]);
    assert.equal(run.code, 0);
    assert.doesNotMatch(run.stdout, /too-long/);
  });

  it('worker threads count the same as the main thread, in the same order', async () => {
    const path = file(generateText(11, 400));
    const main = await cli(['validate', '--max-tokens', '900', '--jobs', '0', path]);
    const workers = await cli(['validate', '--max-tokens', '900', '--jobs', '2', path]);
    assert.equal(workers.stderr, '');
    assert.match(main.stdout, /too-long/);
    assert.equal(workers.stdout, main.stdout);
    assert.equal(workers.code, main.code);
  });
});

describe('streaming', () => {
  const text = generateText(3, 3000, { mistakes: 0.1, crlf: 0.2 });
  const bytes = new TextEncoder().encode(text);

  function check(chunks: Iterable<Uint8Array>): { findings: Finding[]; lines: number; errors: number; warnings: number } {
    const findings: Finding[] = [];
    const checker = new DatasetStreamChecker({ onFinding: (f) => findings.push(f) });
    for (const chunk of chunks) checker.push(chunk);
    const summary = checker.end();
    return { findings, lines: summary.lines, errors: summary.errors, warnings: summary.warnings };
  }

  it('tiny chunks (1–7 bytes) give exactly what the whole buffer gives', () => {
    const whole = check([bytes]);
    assert.ok(whole.findings.length > 100, `test setup: ${whole.findings.length} findings`);
    const sizes = [1, 2, 3, 5, 7];
    function* pieces(): Generator<Uint8Array> {
      // A reused buffer, as the command line reuses its read buffer: the checker must copy what it keeps.
      const scratch = new Uint8Array(7);
      for (let i = 0, k = 0; i < bytes.length; k++) {
        const n = Math.min(sizes[k % sizes.length], bytes.length - i);
        scratch.set(bytes.subarray(i, i + n));
        yield scratch.subarray(0, n);
        scratch.fill(0x7b);
        i += n;
      }
    }
    const chunked = check(pieces());
    assert.deepEqual(chunked, whole);
    assert.deepEqual([...whole.findings].sort(compareFindings), whole.findings, 'findings come in file order');
  });

  it('a file larger than the read size: the command prints what the whole-buffer check finds', async () => {
    // Copies of the generated text with a unique line between them, past one read of CHUNK_SIZE bytes.
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < CHUNK_SIZE * 1.5; i++) {
      const part = `${JSON.stringify({ messages: [user(`part ${i}`), assistant('ok')] })}\n${text}`;
      parts.push(part);
      size += Buffer.byteLength(part);
    }
    const big = Buffer.from(parts.join(''));
    const path = file(big, 'big.jsonl');
    const expected = check([big]);
    const { run, files } = await json(['--no-tokens', path]);
    assert.equal(run.code, 1);
    assert.equal(files[0].errors, expected.errors);
    assert.equal(files[0].warnings, expected.warnings);
    assert.equal(files[0].diagnostics.length, expected.findings.length);
    const want = expected.findings.map((f) => [f.line + 1, f.start + 1, f.end + 1, f.code]);
    assert.deepEqual(files[0].diagnostics.map(brief), want);
  });
});

describe('the checker\'s byte-level fast paths agree with their definitions', () => {
  const checker = new LineChecker();
  const encoder = new TextEncoder();
  const line = (content: string): string => JSON.stringify({ messages: [user(content), assistant('ok')] });

  it('content-empty is exactly what String.prototype.trim calls empty, for every kind of space', () => {
    const candidates: string[] = [];
    for (let cp = 0x80; cp < 0x3100; cp++) candidates.push(String.fromCodePoint(cp));
    candidates.push('\ufeff', '\uff00', '\u{1f600}', '\u180e', '\u200b', '\u0085', '\u001c', '\t', '\n', '\r', '\v', '\f', '\b', ' ', '');
    for (const c of [...candidates]) candidates.push(` ${c} `, `\u3000${c}`, `${c}\u00a0`);
    for (const content of candidates) {
      const text = line(content);
      const codes = checker.checkText(text).findings.map((f) => f.code);
      assert.equal(codes.includes('content-empty'), content.trim() === '', JSON.stringify(content));
    }
  });

  it('strings scanned four bytes at a time or from the kernel\'s list: every alignment and special byte position', () => {
    // Short lines take the JavaScript loop, long ones (128 bytes and more) the WebAssembly kernel's list.
    for (const filler of ['', 'long '.repeat(30)]) for (let pad = 0; pad < 8; pad++) {
      for (let at = 0; at < 12; at++) {
        const before = filler + 'é中'.repeat(at).slice(0, at);
        for (const [inside, valid] of [['\\"', true], ['\\\\', true], ['\\n', true], ['\u0001', false], ['\t', false], ['"', false]] as const) {
          const text = `{"messages":[{"role":"user","content":"${before}${inside}tail"},{"role":"assistant","content":"ok"}]}`;
          const bytes = encoder.encode(text);
          const padded = new Uint8Array(bytes.length + pad + 8).fill(0x20);
          padded.set(bytes, pad);
          const check = checker.check(padded, pad, pad + bytes.length);
          let parses = true;
          try {
            JSON.parse(text);
          } catch {
            parses = false;
          }
          assert.equal(parses, valid, `test setup: ${text}`);
          assert.equal(check.findings.some((f) => f.code === 'json-syntax'), !valid, `pad ${pad}: ${text}`);
          assert.deepEqual(check, checker.checkText(text), `pad ${pad}: ${text}`);
        }
      }
    }
  });

  it('JSON syntax: the scanner accepts exactly what JSON.parse accepts, on long lines too', () => {
    let state = 7;
    const random = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    const pieces = ['"', '\\', '\\"', '\\u12', '\\u00e9', '\t', '\u0001', '\\x', '}', ']', ',', ':', ' ', '中', '😀', 'e', '1'];
    const base = generateText(5, 60).split('\n').filter((l) => l.length > 200);
    for (let i = 0; i < 3000; i++) {
      let text = base[i % base.length];
      for (let m = random(3); m >= 0; m--) {
        const at = random(text.length);
        text = text.slice(0, at) + pieces[random(pieces.length)] + text.slice(at + random(2));
      }
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      const syntax = checker.checkText(text).findings.some((f) => f.code === 'json-syntax');
      assert.equal(syntax, !parses, text);
    }
  });

  it('the kernel lists the same special bytes and computes the same hash as JavaScript', () => {
    let state = 3;
    for (let length = 0; length < 2100; length += 7) {
      const bytes = new Uint8Array(length + 5);
      for (let i = 0; i < bytes.length; i++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        bytes[i] = state >>> 24;
      }
      for (const offset of [0, 1, 5]) {
        const start = Math.min(offset, bytes.length);
        const end = Math.min(start + length, bytes.length);
        assert.equal(lineHash(bytes, start, end), scriptLineHashForTests(bytes, start, end), `length ${end - start}`);
        const listed = specialBytes(bytes, start, end);
        if (!listed) continue;
        const expected: number[] = [];
        for (let i = start; i < end; i++) if (bytes[i] === 0x22 || bytes[i] === 0x5c || bytes[i] < 0x20) expected.push(i - start);
        assert.deepEqual([...listed.positions.subarray(0, listed.count)], expected, `length ${end - start}`);
      }
    }
    assert.ok(specialBytes(new Uint8Array(200), 0, 200), 'the kernel is available under Node');
  });

  it('the line hash depends on the bytes only, not on where they lie', () => {
    const text = line('中文 text 😀 '.repeat(7));
    const bytes = encoder.encode(text);
    for (let length = 0; length <= bytes.length; length += 3) {
      const hashes = new Set<number>();
      for (let offset = 0; offset < 9; offset++) {
        const copy = new Uint8Array(length + 16);
        copy.set(bytes.subarray(0, length), offset);
        hashes.add(lineHash(copy, offset, offset + length));
      }
      assert.equal(hashes.size, 1, `length ${length}`);
    }
    assert.equal(textHash(text), lineHash(bytes, 0, bytes.length));
    // Lines that differ in one byte anywhere never share a hash.
    const seen = new Set<number>();
    for (let i = 0; i < bytes.length; i++) {
      const copy = bytes.slice();
      copy[i] ^= 0x01;
      seen.add(lineHash(copy, 0, copy.length));
    }
    seen.add(lineHash(bytes, 0, bytes.length));
    assert.equal(seen.size, bytes.length + 1);
  });
});

describe('the command', () => {
  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const run = await cli(['--version']);
    assert.equal(run.code, 0);
    assert.equal(run.stdout, `${version}\n`);
  });

  it('--help lists the commands; validate --help the options', async () => {
    const main = await cli(['--help']);
    assert.equal(main.code, 0);
    assert.match(main.stdout, /validate FILE/);
    assert.match(main.stdout, /lsp --stdio/);
    const validate = await cli(['validate', '--help']);
    assert.equal(validate.code, 0);
    for (const option of ['--format', '--max-tokens', '--no-tokens', '--max-diagnostics']) assert.ok(validate.stdout.includes(option), option);
  });

  it('no arguments: usage on standard error, exit 2', async () => {
    const run = await cli([]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /Usage: finetune-studio/);
  });

  it('lsp --stdio answers initialize over JSON-RPC', async () => {
    const child = spawn(process.execPath, [bundle, 'lsp', '--stdio'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: null, rootUri: null, capabilities: {} } });
      child.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      const reply = await new Promise<{ id: number; result: { capabilities: Record<string, unknown> } }>((resolve, reject) => {
        let data = Buffer.alloc(0);
        child.on('exit', (code) => reject(new Error(`the server exited with ${code}`)));
        child.stdout.on('data', (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
          const text = data.toString('utf8');
          const header = /Content-Length: (\d+)\r\n\r\n/.exec(text);
          if (!header) return;
          const start = header.index + header[0].length;
          const length = Number(header[1]);
          const payload = data.subarray(Buffer.byteLength(text.slice(0, start)));
          if (payload.length >= length) resolve(JSON.parse(payload.subarray(0, length).toString('utf8')) as never);
        });
      });
      assert.equal(reply.id, 1);
      assert.ok(reply.result.capabilities.textDocumentSync !== undefined);
    } finally {
      child.kill();
    }
  });
});
