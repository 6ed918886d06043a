// Localisation: the manifest's %key% strings, the extension's vscode.l10n bundle, the language server's message
// table, and the server itself answering in the client's language over real JSON-RPC.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createProtocolConnection,
  DidOpenTextDocumentNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  StreamMessageReader,
  StreamMessageWriter,
  type Diagnostic,
  type ProtocolConnection,
} from 'vscode-languageserver-protocol/node';
import { FINDING_CODES } from '../common/dataset/codes';
import { LineChecker } from '../common/dataset/lineCheck';
import { formatMessage, LOCALES, localeOf, MESSAGES, type MessageId } from '../common/i18n/messages';
import { ensureServerBuilt, SERVER_BUNDLE, TestClient } from './server.harness';

const root = join(__dirname, '..');
const readJson = (path: string): unknown => JSON.parse(readFileSync(join(root, path), 'utf8'));
const placeholders = (text: string): string[] => [...new Set(text.match(/\{\d+\}/g) ?? [])].sort();

/** Every string value in a JSON value, depth first. */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

/** The string literals passed to `l10n.t(…)` / `vscode.l10n.t(…)` in src/, by file. */
function l10nLiterals(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of readdirSync(join(root, 'src')).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(join(root, 'src', file), 'utf8');
    for (const m of source.matchAll(/\bl10n\.t\(\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")/g)) {
      const literal = m[1];
      // The literal as JavaScript reads it: the quotes swapped for JSON's, escapes kept.
      const text = JSON.parse(`"${literal.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"').replace(/\\\\"/g, '\\"')}"`) as string;
      found.set(text, [...(found.get(text) ?? []), file]);
    }
  }
  return found;
}

describe('manifest localisation (package.nls)', () => {
  const manifest = readJson('package.json') as { contributes: unknown; l10n?: string };
  const en = readJson('package.nls.json') as Record<string, string>;
  const zh = readJson('package.nls.zh-cn.json') as Record<string, string>;
  const keys = strings(manifest.contributes)
    .map((s) => /^%(.+)%$/.exec(s)?.[1])
    .filter((k): k is string => k !== undefined);

  it('points VS Code at the l10n bundles', () => assert.equal(manifest.l10n, './l10n'));
  it('has every %key% of the manifest in both languages, and no key more', () => {
    assert.ok(keys.length >= 8, `only ${keys.length} keys`);
    assert.deepEqual(Object.keys(en).sort(), [...new Set(keys)].sort());
    assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
  });
  it('leaves no user-facing English in contributes titles and descriptions', () => {
    const c = manifest.contributes as { commands: { title: string }[]; configuration: { properties: Record<string, { description?: string }> } };
    for (const command of c.commands) assert.match(command.title, /^%.+%$/);
    for (const [name, p] of Object.entries(c.configuration.properties)) assert.match(p.description ?? '', /^%.+%$/, name);
  });
  it('translates every entry (Chinese text, same placeholders)', () => {
    for (const [key, text] of Object.entries(zh)) {
      assert.ok(text.trim().length > 0, key);
      assert.deepEqual(placeholders(text), placeholders(en[key]), key);
      if (key !== 'config.title') assert.match(text, /\p{Script=Han}/u, `${key} is not translated`);
    }
  });
});

describe('extension localisation (l10n bundle)', () => {
  const bundle = readJson('l10n/bundle.l10n.zh-cn.json') as Record<string, string>;
  const literals = l10nLiterals();

  it('finds the wrapped strings of src/', () => {
    assert.ok(literals.size > 50, `only ${literals.size} strings`);
    assert.ok(literals.has('Show Logs'));
    assert.ok(literals.has('{0} errors'));
  });
  it('has a Chinese entry for every string, and no entry that no code uses', () => {
    const missing = [...literals.keys()].filter((s) => !(s in bundle));
    assert.deepEqual(missing, [], 'not in l10n/bundle.l10n.zh-cn.json');
    const unused = Object.keys(bundle).filter((s) => !literals.has(s));
    assert.deepEqual(unused, [], 'in the bundle but not in src/');
  });
  it('keeps the placeholders of every string', () => {
    for (const [en, zh] of Object.entries(bundle)) assert.deepEqual(placeholders(zh), placeholders(en), en);
  });
  it('translates words into Chinese (codes and abbreviations excepted)', () => {
    for (const [en, zh] of Object.entries(bundle)) {
      if (/^[A-Z]\d+$/.test(en) || en === 'Finetune Studio: {0}') continue;
      assert.match(zh, /\p{Script=Han}/u, en);
    }
  });
});

describe('language-server message table', () => {
  const ids = Object.keys(MESSAGES) as MessageId[];

  it('has at least one message for every finding code', () => {
    for (const code of FINDING_CODES) assert.ok(ids.some((id) => id === code || id.startsWith(`${code}/`)), code);
  });
  it('has every message in every language, with the same parameters', () => {
    for (const id of ids) {
      const template: Record<string, string> = MESSAGES[id];
      for (const locale of LOCALES) assert.ok(template[locale]?.length > 0, `${id} ${locale}`);
      assert.deepEqual(placeholders(template['zh-cn']), placeholders(template.en), id);
    }
  });
  it('maps locale tags to a language', () => {
    for (const tag of ['zh-cn', 'zh-CN', 'zh_CN.UTF-8', 'zh', 'zh-Hans', 'zh-sg']) assert.equal(localeOf(tag), 'zh-cn', tag);
    for (const tag of ['en', 'en-US', 'C.UTF-8', 'zh-tw', 'fr', '', undefined]) assert.equal(localeOf(tag), 'en', String(tag));
  });
  it('formats a finding (nested phrases included) in both languages, English as common/dataset does', () => {
    const checker = new LineChecker();
    const [f] = checker.checkText('{"messages": [{"role": 1, "content": "x"}]}', true).findings;
    assert.equal(f.code, 'message-invalid');
    assert.ok(f.text);
    assert.equal(formatMessage(f.text, 'en'), f.message);
    assert.equal(formatMessage(f.text, 'zh-cn'), '第 1 条消息的 "role" 是数字；"role" 和 "content" 都应为字符串。');
    const [syntax] = checker.checkText('{"messages": [}', true).findings;
    assert.equal(formatMessage(syntax.text ?? { id: 'json-syntax', args: [] }, 'zh-cn'), "第 15 列的 JSON 无效：应为JSON 值，实际为'}'。");
  });
});

/** A bare LSP client with a chosen `InitializeParams.locale` (the shared test client sends none). */
async function startWithLocale(locale: string): Promise<{ connection: ProtocolConnection; stop: () => Promise<void> }> {
  await ensureServerBuilt();
  const { LC_ALL: _all, LC_MESSAGES: _messages, LANG: _lang, ...env } = process.env;
  const child = spawn(process.execPath, [SERVER_BUNDLE, '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const connection = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  connection.listen();
  await connection.sendRequest(InitializeRequest.type, { processId: process.pid, rootUri: null, capabilities: {}, locale });
  await connection.sendNotification(InitializedNotification.type, {});
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    connection,
    stop: async () => {
      connection.dispose();
      child.kill();
      await exited;
    },
  };
}

/** Opens a document and resolves with its first published diagnostics (or rejects after a while). */
function diagnosticsOf(connection: ProtocolConnection, uri: string, text: string): Promise<Diagnostic[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no diagnostics for ${uri}`)), 20_000);
    connection.onNotification(PublishDiagnosticsNotification.type, (params) => {
      if (params.uri !== uri) return;
      clearTimeout(timer);
      resolve(params.diagnostics);
    });
    void connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: 'jsonl', version: 1, text },
    });
  });
}

const BROKEN = ['{"messages": [{"role": "assistant", "content": "hi"}]}', '', '{"messages": [}'].join('\n') + '\n';

describe('language server in the client locale, over JSON-RPC', () => {
  const started: { stop: () => Promise<void> }[] = [];
  after(async () => {
    for (const s of started) await s.stop();
  });

  for (const [locale, expected] of [
    ['zh-cn', ['对话中没有 user 消息；至少应有一条 user 消息，后跟一条 assistant 回复。', '空行；每行应为一个 JSON 对象（请删除此行）。', "第 15 列的 JSON 无效：应为JSON 值，实际为'}'。"]],
    ['en', ['The conversation has no user message; expected at least one user message followed by an assistant reply.', 'Blank line; expected one JSON object per line (remove it).', "Invalid JSON at column 15: expected a JSON value, found '}'."]],
  ] as const) {
    it(`publishes diagnostics in ${locale}`, async () => {
      const server = await startWithLocale(locale);
      started.push(server);
      const diagnostics = await diagnosticsOf(server.connection, `file:///tmp/l10n-${locale}.jsonl`, BROKEN);
      assert.deepEqual(
        diagnostics.map((d) => d.message),
        expected,
      );
    });
  }

  describe('without a client locale', () => {
    let client: TestClient;
    before(async () => {
      client = await TestClient.start({ settings: { countTokens: false }, env: { LC_ALL: 'zh_CN.UTF-8' } });
    });
    after(async () => {
      await client.stop();
    });
    it('falls back to LC_ALL / LANG', async () => {
      const uri = 'file:///tmp/l10n-env.jsonl';
      await client.open(uri, '\n{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}]}\n');
      const diagnostics = await client.diagnosticsOf(uri);
      assert.deepEqual(
        diagnostics.map((d) => d.message),
        ['空行；每行应为一个 JSON 对象（请删除此行）。'],
      );
    });
  });
});
