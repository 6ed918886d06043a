// The pure rewrites behind the quick fixes and the file conversion: each result checked with the line rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  appendAssistantReply,
  describeConversation,
  dropMessage,
  endsWithUnansweredUser,
  fromAlpaca,
  fromShareGpt,
  type JsonObject,
  mergeSystemIntoFirst,
  misplacedSystemMessages,
  moveSystemToFront,
  printLine,
  toMessagesForm,
  usesSpacedStyle,
} from '../common/dataset/convert';
import { LineChecker } from '../common/dataset/lineCheck';

const checker = new LineChecker();
/** The codes the line rules give for a value printed as one line. */
const codes = (value: unknown): string[] => checker.checkText(JSON.stringify(value)).findings.map((f) => f.code);

const sys = (content: string): JsonObject => ({ role: 'system', content });
const user = (content: string): JsonObject => ({ role: 'user', content });
const bot = (content: string): JsonObject => ({ role: 'assistant', content });

describe('ShareGPT to messages', () => {
  const cases: { name: string; line: JsonObject; messages?: JsonObject[]; keys?: string[] }[] = [
    {
      name: 'human/gpt turns with a system prompt',
      line: { conversations: [{ from: 'system', value: 'S' }, { from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }] },
      messages: [sys('S'), user('Q'), bot('A')],
      keys: ['messages'],
    },
    {
      name: 'user/assistant spellings, other keys kept after messages, weight kept on assistant turns',
      line: { id: 7, conversations: [{ from: 'user', value: 'Q' }, { from: 'assistant', value: 'A', weight: 0 }, { from: 'human', value: 'Q2' }, { from: 'gpt', value: 'A2' }] },
      messages: [user('Q'), { role: 'assistant', content: 'A', weight: 0 }, user('Q2'), bot('A2')],
      keys: ['messages', 'id'],
    },
    { name: 'an unknown speaker', line: { conversations: [{ from: 'tool', value: 'x' }] } },
    { name: 'a value that is not a string', line: { conversations: [{ from: 'human', value: 1 }] } },
    { name: 'no turns', line: { conversations: [] } },
    { name: 'a line that already has messages', line: { messages: [], conversations: [{ from: 'human', value: 'Q' }] } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = fromShareGpt(c.line);
      if (!c.messages) {
        assert.equal(out, undefined);
        return;
      }
      assert.ok(out);
      assert.deepEqual(out.messages, c.messages);
      assert.deepEqual(Object.keys(out), c.keys);
      assert.deepEqual(toMessagesForm(c.line)?.form, 'sharegpt');
      assert.ok(!codes(out).some((code) => code !== 'key-unknown'), 'only unknown keys remain to report');
    });
  }
});

describe('Alpaca to messages', () => {
  const cases: { name: string; line: JsonObject; messages?: JsonObject[] }[] = [
    { name: 'instruction and output', line: { instruction: 'Say hi', output: 'hi' }, messages: [user('Say hi'), bot('hi')] },
    { name: 'with an input, after a blank line', line: { instruction: 'Translate', input: 'chat', output: '猫' }, messages: [user('Translate\n\nchat'), bot('猫')] },
    { name: 'an empty input is left out', line: { instruction: 'I', input: '', output: 'O' }, messages: [user('I'), bot('O')] },
    { name: 'with a system prompt', line: { system: 'S', instruction: 'I', output: 'O' }, messages: [sys('S'), user('I'), bot('O')] },
    { name: 'with history', line: { instruction: 'I', output: 'O', history: [['q1', 'a1']] }, messages: [user('q1'), bot('a1'), user('I'), bot('O')] },
    { name: 'no output', line: { instruction: 'I' } },
    { name: 'an input that is not a string', line: { instruction: 'I', input: 3, output: 'O' } },
    { name: 'a malformed history', line: { instruction: 'I', output: 'O', history: [['q1']] } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = fromAlpaca(c.line);
      if (!c.messages) {
        assert.equal(out, undefined);
        return;
      }
      assert.ok(out);
      assert.deepEqual(out.messages, c.messages);
      assert.equal(Object.keys(out)[0], 'messages');
      assert.deepEqual(codes(out), []);
    });
  }
  it('keeps other keys after messages', () => {
    assert.deepEqual(Object.keys(fromAlpaca({ id: 1, instruction: 'I', output: 'O' }) ?? {}), ['messages', 'id']);
  });
  it('recognises neither form in an unrelated object', () => {
    assert.equal(toMessagesForm({ text: 'x' }), undefined);
    assert.equal(toMessagesForm([1]), undefined);
  });
});

describe('conversation repairs', () => {
  it('moves a misplaced system message to the front', () => {
    const line = { messages: [user('Q'), sys('S'), bot('A')], id: 1 };
    assert.deepEqual(misplacedSystemMessages(line), [1]);
    assert.deepEqual(codes(line), ['system-not-first', 'key-unknown']);
    const out = moveSystemToFront(line, 1);
    assert.deepEqual(out, { messages: [sys('S'), user('Q'), bot('A')], id: 1 });
    assert.deepEqual(codes(out), ['key-unknown']);
    assert.equal(line.messages[0].role, 'user', 'the input is not changed');
  });
  it('does not move a system message when the first message is one', () => {
    assert.equal(moveSystemToFront({ messages: [sys('A'), user('Q'), sys('B'), bot('A')] }, 2), undefined);
  });
  it('merges a second system message into the first with a blank line', () => {
    const out = mergeSystemIntoFirst({ messages: [sys('A'), user('Q'), sys('B'), bot('R')] }, 2);
    assert.deepEqual(out, { messages: [sys('A\n\nB'), user('Q'), bot('R')] });
    assert.deepEqual(codes(out), []);
  });
  it('drops a message', () => {
    const out = dropMessage({ messages: [sys('A'), user('Q'), sys('B'), bot('R')] }, 2);
    assert.deepEqual(codes(out), []);
    assert.equal(dropMessage({ messages: [] }, 0), undefined);
  });
  it('appends an empty assistant reply after a trailing user message, and only then', () => {
    const line = { messages: [user('Q'), bot('A'), user('Q2')] };
    assert.ok(endsWithUnansweredUser(line));
    const out = appendAssistantReply(line);
    assert.deepEqual(out?.messages, [user('Q'), bot('A'), user('Q2'), bot('')]);
    assert.deepEqual(codes(out), ['content-empty']);
    assert.equal(appendAssistantReply({ messages: [user('Q'), user('Q2')] }), undefined, 'alternation broken elsewhere');
    assert.equal(appendAssistantReply({ messages: [user('Q'), bot('A')] }), undefined);
  });
  it('describes a conversation', () => {
    assert.deepEqual(describeConversation([sys('s'), user('q'), bot('a'), user('q'), bot('a')]), {
      roles: 'system → user → assistant → user → assistant',
      turns: 2,
    });
    assert.deepEqual(describeConversation([1]), { roles: '?', turns: 0 });
  });
});

describe('printing a fixed line in the style of the line it replaces', () => {
  const value = { messages: [{ role: 'user', content: 'a, "b": c' }, { role: 'assistant', content: '中文', weight: 1 }], skip: undefined };

  it('tells the spaced style from the compact one by the first key', () => {
    assert.equal(usesSpacedStyle('{"messages": [{"role": "user"}]}'), true);
    assert.equal(usesSpacedStyle('\uFEFF {"conversations" : []}'), true);
    assert.equal(usesSpacedStyle('{"messages":[{"role": "user"}]}'), false);
    assert.equal(usesSpacedStyle('{"me\\"ssages":[]}'), false);
    assert.equal(usesSpacedStyle('[1, 2]'), false);
  });

  it('prints what JSON.parse reads back as the same value, in either style', () => {
    for (const spaced of [true, false]) {
      const text = printLine(value, spaced);
      assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
      assert.equal(text.includes('\n'), false);
    }
    assert.equal(printLine(value, true), '{"messages": [{"role": "user", "content": "a, \\"b\\": c"}, {"role": "assistant", "content": "中文", "weight": 1}]}');
    assert.equal(printLine(value, false), JSON.stringify(value));
  });
});
