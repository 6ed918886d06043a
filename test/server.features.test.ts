// Quick fixes, hover, statistics, conversion and token counts of the language server, over real JSON-RPC.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CodeAction, MarkupContent } from 'vscode-languageserver-protocol';
import { LineChecker } from '../common/dataset/lineCheck';
import { ConvertDatasetRequest, VisibleRangesNotification } from '../common/lspProtocol';
import { countConversation } from '../common/tokenizer/chat';
import { loadQwenTokenizer } from '../server/tokenizerFile';
import { brief, example, messageOf, TestClient } from './server.harness';

const checker = new LineChecker();
const lineCodes = (line: string): string[] => checker.checkText(line).findings.map((f) => f.code);
const msg = (role: string, content: string): { role: string; content: string } => ({ role, content });

describe('language server: quick fixes', () => {
  let client: TestClient;
  let n = 0;
  const uri = (): string => `file:///tmp/fixes-${++n}.jsonl`;

  before(async () => {
    client = await TestClient.start({ settings: { countTokens: false } });
  });
  after(async () => {
    await client.stop();
  });

  /** Opens a document, asks for the code actions of `line`, and returns them with the diagnostics. */
  async function actionsFor(text: string, line: number): Promise<{ u: string; actions: CodeAction[] }> {
    const u = uri();
    await client.open(u, text);
    const diagnostics = await client.diagnosticsOf(u);
    const actions = await client.codeActions(u, line, diagnostics.filter((d) => d.range.start.line === line));
    return { u, actions };
  }

  /** Applies an action's edit as an editor would, and returns the document's text after it. */
  async function apply(u: string, action: CodeAction | undefined): Promise<string> {
    assert.ok(action?.edit, 'the action carries an edit');
    await client.applyEdit(action.edit);
    await client.diagnosticsOf(u);
    return client.text(u);
  }

  const find = (actions: CodeAction[], title: RegExp): CodeAction | undefined => actions.find((a) => title.test(a.title));

  it('moves a misplaced system message to the front', async () => {
    const line = JSON.stringify({ messages: [msg('user', 'Q'), msg('system', 'S'), msg('assistant', 'A')] });
    const { u, actions } = await actionsFor(`${example('a', 'b')}\n${line}\n`, 1);
    const move = find(actions, /Move the system message to the front/);
    assert.equal(move?.kind, 'quickfix');
    assert.equal(move?.isPreferred, true);
    assert.equal(move?.diagnostics?.[0].code, 'system-not-first');
    assert.ok(find(actions, /Remove this system message/));
    const text = await apply(u, move);
    const fixed = text.split('\n')[1];
    assert.deepEqual(JSON.parse(fixed), { messages: [msg('system', 'S'), msg('user', 'Q'), msg('assistant', 'A')] });
    assert.deepEqual(lineCodes(fixed), []);
    assert.deepEqual(await client.diagnosticsOf(u), []);
  });

  it('merges a second system message into the first, or drops it', async () => {
    const line = JSON.stringify({ messages: [msg('system', 'A'), msg('user', 'Q'), msg('system', 'B'), msg('assistant', 'R')] });
    const { u, actions } = await actionsFor(`${line}\n`, 0);
    const merge = find(actions, /Merge this system message into the first one/);
    assert.equal(merge?.isPreferred, true);
    const drop = find(actions, /Remove this system message/);
    assert.equal(drop?.isPreferred, false);
    const merged = (await apply(u, merge)).split('\n')[0];
    assert.equal((JSON.parse(merged) as { messages: { content: string }[] }).messages[0].content, 'A\n\nB');
    assert.deepEqual(lineCodes(merged), []);
    const other = await actionsFor(`${line}\n`, 0);
    const dropped = (await apply(other.u, find(other.actions, /Remove this system message/))).split('\n')[0];
    assert.deepEqual(lineCodes(dropped), []);
  });

  it('adds an empty assistant reply after a trailing user message (then content-empty asks for the reply)', async () => {
    const line = JSON.stringify({ messages: [msg('user', 'Q'), msg('assistant', 'A'), msg('user', 'Q2')] });
    const { u, actions } = await actionsFor(`${line}\n`, 0);
    const add = find(actions, /Add an empty assistant reply/);
    assert.equal(add?.isPreferred, true);
    assert.equal(add?.diagnostics?.[0].code, 'role-order');
    const fixed = (await apply(u, add)).split('\n')[0];
    assert.deepEqual(lineCodes(fixed), ['content-empty']);
    assert.deepEqual(brief(await client.diagnosticsOf(u)).map((s) => s.split(' ')[1]), ['content-empty']);
  });

  it('removes a blank line and a duplicate line', async () => {
    const a = example('a', 'b');
    const { u, actions } = await actionsFor(`${a}\n\n${example('c', 'd')}\n${a}\n`, 1);
    const remove = find(actions, /Remove the blank line/);
    assert.equal(remove?.isPreferred, true);
    assert.equal((await apply(u, remove)).split('\n').length, 4);
    const dupActions = await client.codeActions(u, 2);
    const removeDup = find(dupActions, /Remove the duplicate line \(a copy of line 1\)/);
    assert.equal(removeDup?.isPreferred, true);
    assert.equal(await apply(u, removeDup), `${a}\n${example('c', 'd')}\n`);
    assert.deepEqual(await client.diagnosticsOf(u), []);
  });

  it('removes a blank last line without a final newline', async () => {
    const { u, actions } = await actionsFor(`${example('a', 'b')}\n  `, 1);
    assert.equal(await apply(u, find(actions, /Remove the blank line/)), example('a', 'b'));
  });

  it('converts a ShareGPT line and an Alpaca line into messages form', async () => {
    const sharegpt = JSON.stringify({ conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }] });
    const alpaca = JSON.stringify({ instruction: 'I', input: 'X', output: 'O' });
    const { u, actions } = await actionsFor(`${sharegpt}\n${alpaca}\n`, 0);
    const convert = find(actions, /Convert this ShareGPT line to messages form/);
    assert.equal(convert?.isPreferred, true);
    assert.equal(convert?.diagnostics?.[0].code, 'messages-missing');
    assert.ok(find(actions, /Convert every ShareGPT or Alpaca line/), 'the whole-file conversion is offered too');
    const first = (await apply(u, convert)).split('\n')[0];
    assert.deepEqual(JSON.parse(first), { messages: [msg('user', 'Q'), msg('assistant', 'A')] });
    const alpacaActions = await client.codeActions(u, 1);
    const second = (await apply(u, find(alpacaActions, /Convert this Alpaca line/))).split('\n')[1];
    assert.deepEqual(JSON.parse(second), { messages: [msg('user', 'I\n\nX'), msg('assistant', 'O')] });
    assert.deepEqual(await client.diagnosticsOf(u), []);
  });

  it('converts a whole file with dataset/convert, and with the source action', async () => {
    const lines = [
      JSON.stringify({ conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }] }),
      example('ok', 'fine'),
      JSON.stringify({ instruction: 'I', output: 'O' }),
      JSON.stringify({ text: 'unknown form' }),
    ];
    const u = uri();
    await client.open(u, lines.join('\n') + '\n');
    await client.diagnosticsOf(u);
    const result = await client.connection.sendRequest(ConvertDatasetRequest.type, { uri: u });
    assert.deepEqual(result, { converted: 2, unrecognised: 1 });
    const diagnostics = await client.diagnosticsOf(u);
    assert.deepEqual(brief(diagnostics).map((s) => s.split(' ')[1]), ['messages-missing']);
    assert.equal(diagnostics[0].range.start.line, 3);

    const v = uri();
    await client.open(v, lines.join('\n') + '\n');
    await client.diagnosticsOf(v);
    const source = await client.connection.sendRequest('textDocument/codeAction', {
      textDocument: { uri: v },
      range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
      context: { diagnostics: [], only: ['source'] },
    });
    const action = (source as CodeAction[]).find((a) => a.kind === 'source.finetune.convertToMessages');
    assert.ok(action?.command, 'a source action that runs the server command');
    assert.ok(!(source as CodeAction[]).some((a) => a.kind === 'quickfix'), 'only source actions when only source is asked for');
    await client.connection.sendRequest('workspace/executeCommand', { command: action.command.command, arguments: action.command.arguments });
    await client.waitFor('the converted file', () => client.text(v).split('\n')[2].startsWith('{"messages"'));
    assert.deepEqual(brief(await client.diagnosticsOf(v)).map((s) => s.split(' ')[1]), ['messages-missing']);
  });

  it('shows findings in the hover of a broken line, and the shape of an example', async () => {
    const u = uri();
    await client.open(u, `{"messages": [}\n${example('q', 'a', 'sys')}\n`);
    await client.diagnosticsOf(u);
    const broken = await client.hover(u, 0, 3);
    const value = (broken?.contents as MarkupContent).value;
    assert.equal((broken?.contents as MarkupContent).kind, 'markdown');
    assert.match(value, /Not an example/);
    assert.match(value, /`json-syntax` Invalid JSON/);
    const good = await client.hover(u, 1, 40);
    assert.match((good?.contents as MarkupContent).value, /system → user → assistant, 1 turn/);
    assert.match((good?.contents as MarkupContent).value, /not counted \(setting `finetune.dataset.countTokens` is off\)/);
    assert.deepEqual(good?.range, { start: { line: 1, character: 0 }, end: { line: 1, character: example('q', 'a', 'sys').length } });
    assert.equal(await client.hover(u, 9, 0), null);
  });
});

describe('language server: tokens, hover counts and statistics', () => {
  let client: TestClient;
  const u = 'file:///tmp/tokens.jsonl';
  const long = example('Tell me a story. '.repeat(8), 'Once upon a time there was a model that learned to count tokens. '.repeat(4));
  const short = example('hi', 'hello');
  const multi = JSON.stringify({ messages: [msg('system', 's'), msg('user', 'q1'), msg('assistant', 'a1'), msg('user', 'q2'), msg('assistant', 'a2')] });

  before(async () => {
    client = await TestClient.start({ settings: { maxSequenceLength: 64 } });
  });
  after(async () => {
    await client.stop();
  });

  it('counts tokens in the background, reports too-long, and shows counts in the hover', async () => {
    await client.open(u, [short, long, multi, '{"bad"', short].join('\n') + '\n');
    await client.connection.sendNotification(VisibleRangesNotification.type, { uri: u, ranges: [{ start: 1, end: 3 }] });
    // Structural findings come first; too-long follows once the tokenizer has counted.
    await client.waitFor('counting done', () => client.statuses.get(u)?.counting === false && (client.statuses.get(u)?.tokens ?? 0) > 0, 20_000);
    const diagnostics = await client.diagnosticsOf(u, (d) => d.some((x) => x.code === 'too-long'));
    assert.deepEqual(brief(diagnostics).map((s) => s.replace(/-\d+ /, ' ')), ['1:0 too-long', '3:5 json-syntax', '4:0 duplicate']);
    const tooLong = diagnostics[0];
    assert.equal(tooLong.severity, 2);

    const tokenizer = await loadQwenTokenizer();
    const counts = (line: string): { total: number; trained: number } =>
      countConversation(tokenizer, (JSON.parse(line) as { messages: { role: string; content: string }[] }).messages);
    const longCounts = counts(long);
    assert.ok(longCounts.total > 64);
    assert.match(messageOf(tooLong), new RegExp(`is ${longCounts.total} tokens long, over the maximum sequence length of 64`));

    const hover = (await client.hover(u, 1, 5))?.contents as MarkupContent;
    assert.match(hover.value, new RegExp(`\\*\\*${longCounts.total} tokens\\*\\* \\(${longCounts.trained} trained\\): \\*\\*truncated\\*\\* to the maximum sequence length of 64`));
    const multiCounts = counts(multi);
    const multiHover = ((await client.hover(u, 2, 0))?.contents as MarkupContent).value;
    assert.match(multiHover, /system → user → assistant → user → assistant, 2 turns/);
    assert.match(multiHover, new RegExp(`\\*\\*${multiCounts.total} tokens\\*\\* \\(${multiCounts.trained} trained\\): fits`));

    const stats = await client.statistics(u);
    assert.ok(stats);
    const shortCounts = counts(short);
    assert.equal(stats.lines, 5);
    assert.equal(stats.examples, 4);
    assert.equal(stats.validExamples, 4);
    assert.equal(stats.errors, 1);
    assert.equal(stats.warnings, 2);
    assert.equal(stats.byCode['too-long'], 1);
    assert.equal(stats.byCode.duplicate, 1);
    assert.equal(stats.tokenizedExamples, 4);
    assert.equal(stats.overLength, 1);
    assert.deepEqual(stats.messagesPerExample, { count: 4, min: 2, max: 5, mean: 11 / 4, median: 2, p5: 2, p95: 5 });
    assert.equal(stats.tokensPerExample.max, longCounts.total);
    assert.equal(stats.tokensPerExample.min, shortCounts.total);
    assert.equal(stats.epochTokens, 2 * shortCounts.total + multiCounts.total + 64);
    assert.equal(stats.epochTrainedTokens, 2 * shortCounts.trained + multiCounts.trained + Math.max(0, longCounts.trained - (longCounts.total - 64)));
    assert.equal(client.statuses.get(u)?.tokens, 2 * shortCounts.total + multiCounts.total + longCounts.total);
  });

  it('re-counts only what an edit changed, and follows a new maximum length', async () => {
    // Shorten the long line's reply: it is counted again and no longer too long.
    const fixed = example('Tell me a story.', 'Once.');
    await client.change(u, [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: long.length } }, text: fixed }]);
    await client.waitFor('too-long gone', () => !client.diagnostics.get(u)?.diagnostics.some((d) => d.code === 'too-long'), 10_000);
    await client.waitFor('counted', () => client.statuses.get(u)?.counting === false);
    // A higher maximum in the settings: nothing is over it.
    client.settings = { maxSequenceLength: 8 };
    await client.connection.sendNotification('workspace/didChangeConfiguration', { settings: null });
    await client.waitFor('too-long everywhere', () => (client.diagnostics.get(u)?.diagnostics.filter((d) => d.code === 'too-long').length ?? 0) === 4);
    const stats = await client.statistics(u);
    assert.equal(stats?.overLength, 4);
    assert.equal(stats?.maxSequenceLength, 8);
  });
});

describe('language server: without a tokenizer', () => {
  it('checks as usual and says why tokens are not counted', async () => {
    const client = await TestClient.start({ env: { FINETUNE_TOKENIZER: '/nonexistent/tokenizer.json.gz' }, quiet: true });
    try {
      const u = 'file:///tmp/no-tokenizer.jsonl';
      await client.open(u, `${example('q', 'a')}\n[]\n`);
      assert.deepEqual(brief(await client.diagnosticsOf(u)), ['1:0-2 not-object']);
      await client.waitFor('counting given up', () => client.statuses.get(u)?.counting === false && client.logs.some((l) => l.includes('Token counting is off')));
      const hover = ((await client.hover(u, 0))?.contents as MarkupContent).value;
      assert.match(hover, /not counted \(the Qwen2.5 tokenizer could not be loaded/);
      assert.equal((await client.statistics(u))?.tokenizedExamples, 0);
    } finally {
      await client.stop();
    }
  });
});
