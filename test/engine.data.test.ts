// The embedded engine's data path: the tiny byte-level tokenizer (against the Hugging Face reference), the chat
// rendering and its labels (trained tokens decode to exactly the assistant turns), truncation, the eval split,
// skipped lines, and the run's schedule (steps, learning rate, checkpoints, data order).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { BpeTokenizer } from '../common/tokenizer/bpe';
import { countConversation, renderConversation as renderText, type ChatMessage } from '../common/tokenizer/chat';
import { TINY_SPECIAL_IDS } from '../backend/engines/embedded/catalog';
import { IGNORE, buildExample, loadDataset, promptIds, renderConversation, sampleOf, type EngineLog } from '../backend/engines/embedded/data';
import { EngineError } from '../backend/engines/embedded/errors';
import { batchOf, epochOrder, learningRate, planRun } from '../backend/engines/embedded/schedule';
import { chatTokenIds, tinyTokenizerJson, type ChatTokenIds } from '../backend/engines/embedded/tokenizer';
import { loadQwenTokenizer } from '../server/tokenizerFile';
import { RENDERING_CONVERSATIONS } from './engine.harness';

const tiny = new BpeTokenizer(tinyTokenizerJson());
const tinySpecial = chatTokenIds(tiny);

const conversations = RENDERING_CONVERSATIONS;

/** The text the trained tokens of a conversation must decode to: each trained assistant turn with its end. */
function trainedText(messages: readonly ChatMessage[]): string {
  return messages
    .filter((m) => m.role === 'assistant' && m.weight !== 0)
    .map((m) => `${m.content}<|im_end|>\n`)
    .join('');
}

function checkRendering(tok: BpeTokenizer, special: ChatTokenIds): void {
  for (const messages of conversations) {
    const example = buildExample(tok, special, messages, 100000);
    assert.deepEqual([...example.ids], tok.encode(renderText(messages)), JSON.stringify(messages));
    const trainedIds = [...example.labels].filter((l) => l !== IGNORE);
    assert.equal(tok.decode(trainedIds), trainedText(messages));
    for (let i = 0; i < example.ids.length; i++) {
      assert.ok(example.labels[i] === IGNORE || example.labels[i] === example.ids[i], `label ${i}`);
    }
    assert.equal(example.trainedTokens, trainedIds.length);
    assert.equal(example.truncated, false);
    assert.equal(example.trainedTokens, countConversation(tok, messages).trained);
  }
}

describe('tiny tokenizer', () => {
  it('is byte-level with the three chat tokens at 256–258', () => {
    assert.equal(tiny.vocabSize, 259);
    assert.deepEqual(tinySpecial, {
      imStart: TINY_SPECIAL_IDS.imStart,
      imEnd: TINY_SPECIAL_IDS.imEnd,
      endOfText: TINY_SPECIAL_IDS.endOfText,
    });
    const text = 'héllo 😀\n\t<|im_end|>x';
    const ids = tiny.encode(text);
    assert.deepEqual(ids, [...Buffer.from('héllo 😀\n\tx')].slice(0, -1).concat([TINY_SPECIAL_IDS.imEnd, 0x78]));
    assert.equal(tiny.decode(ids), text);
  });

  it('gives the same ids as the Hugging Face tokenizers on the same file', () => {
    const hf = new Tokenizer(tinyTokenizerJson(), { clean_up_tokenization_spaces: false });
    for (const messages of conversations) {
      const text = renderText(messages);
      assert.deepEqual(hf.encode(text).ids, tiny.encode(text));
      assert.equal(hf.decode(tiny.encode(text), { skip_special_tokens: false }), text);
    }
  });
});

describe('chat rendering and labels', () => {
  it('tiny tokenizer: ids equal the rendered text encoded, trained tokens decode to the assistant turns', () => {
    checkRendering(tiny, tinySpecial);
  });

  it('Qwen2.5 tokenizer: the same', async () => {
    const qwen = await loadQwenTokenizer();
    checkRendering(qwen, chatTokenIds(qwen));
  });

  it('masks the assistant prefix and weight-0 turns, trains content + <|im_end|> + \\n', () => {
    const messages = conversations[2];
    const example = buildExample(tiny, tinySpecial, messages, 100000);
    const ids = [...example.ids];
    // Every <|im_start|> and the role after it is masked.
    ids.forEach((id, i) => {
      if (id === TINY_SPECIAL_IDS.imStart) assert.equal(example.labels[i], IGNORE);
    });
    // The weight-0 answer's <|im_end|> is masked, the trained answer's is not.
    const ends = ids.flatMap((id, i) => (id === TINY_SPECIAL_IDS.imEnd ? [i] : []));
    assert.equal(ends.length, 5);
    assert.deepEqual(ends.map((i) => example.labels[i] !== IGNORE), [false, false, false, false, true]);
    assert.equal(tiny.decode([...example.labels].filter((l) => l !== IGNORE)), 'def f(x):\n    return x ** 2\n<|im_end|>\n');
  });

  it('truncates at max_seq_length and counts only the trained tokens that are left', () => {
    const messages = conversations[0];
    const full = buildExample(tiny, tinySpecial, messages, 100000);
    const cut = buildExample(tiny, tinySpecial, messages, full.ids.length - 5);
    assert.equal(cut.truncated, true);
    assert.equal(cut.ids.length, full.ids.length - 5);
    assert.equal(cut.trainedTokens, full.trainedTokens - 5);
    assert.deepEqual([...cut.ids], [...full.ids].slice(0, -5));
    const none = buildExample(tiny, tinySpecial, messages, full.ids.length - full.trainedTokens);
    assert.equal(none.trainedTokens, 0);
  });

  it('chat prompt: the conversation and <|im_start|>assistant\\n, default system message included', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    assert.equal(tiny.decode(promptIds(tiny, tinySpecial, messages)), renderText(messages) + '<|im_start|>assistant\n');
    const rendered = renderConversation(tiny, tinySpecial, messages, true);
    assert.ok(rendered.trained.every((t) => !t));
  });

  it('the sample of a conversation is everything before its last assistant turn', () => {
    assert.deepEqual(sampleOf(conversations[1]), {
      messages: conversations[1].slice(0, 4).map(({ role, content }) => ({ role, content })),
      reference: 'Il pleut.\n\nToujours.',
    });
  });
});

describe('loadDataset', () => {
  let dir = '';
  const logs: { level: string; message: string }[] = [];
  const log: EngineLog = (level, message) => logs.push({ level, message });
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'engine-data-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const line = (q: string, a: string, weight?: number): string =>
    JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a, ...(weight === undefined ? {} : { weight }) }] });

  it('skips lines that are not conversations (with a log line), splits off eval_ratio with the seed', async () => {
    const lines = [];
    for (let i = 0; i < 20; i++) lines.push(line(`q${i}`, `a${i}`));
    lines.splice(3, 0, '{"prompt": "x"}', 'not json', '', line('only', 'masked', 0));
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    logs.length = 0;
    const options = { trainingFile: file, validationFile: null, evalRatio: 0.2, seed: 7, maxSeqLength: 512, tokenizer: tiny, special: tinySpecial };
    const data = await loadDataset(options, log);
    assert.equal(data.train.length + data.eval.length, 20);
    assert.equal(data.eval.length, 4);
    assert.deepEqual(logs.map((l) => l.message.replace(/^.*:(\d+): /, '$1: ')), [
      '4: skipped, no "messages" array',
      '5: skipped, not valid JSON (Unexpected token \'o\', "not json" is not valid JSON)',
      '7: skipped, no token to train on (every assistant message has weight 0)',
    ]);
    // Deterministic per seed; the sample is the first held-out example.
    const again = await loadDataset(options, log);
    assert.deepEqual(again.eval.map((e) => e.line), data.eval.map((e) => e.line));
    assert.deepEqual(data.sample, sampleOf(data.eval[0].messages));
    const other = await loadDataset({ ...options, seed: 8 }, log);
    assert.notDeepEqual(other.eval.map((e) => e.line), data.eval.map((e) => e.line));
    assert.equal(data.tokensPerEpoch, data.train.reduce((s, e) => s + e.ids.length, 0));
  });

  it('counts truncated examples; a dataset with nothing to train on fails with invalid_dataset', async () => {
    const file = join(dir, 'masked.jsonl');
    writeFileSync(file, [line('a', 'b', 0), line('c', 'd', 0)].join('\n'));
    const options = { trainingFile: file, validationFile: null, evalRatio: 0, seed: 1, maxSeqLength: 512, tokenizer: tiny, special: tinySpecial };
    await assert.rejects(loadDataset(options, log), (e) => EngineError.is(e) && e.code === 'invalid_dataset');
    const long = join(dir, 'long.jsonl');
    writeFileSync(long, [line('q', 'x'.repeat(100)), line('q', 'short')].join('\n'));
    logs.length = 0;
    const data = await loadDataset({ ...options, trainingFile: long, maxSeqLength: 130 }, log);
    assert.equal(data.truncated, 1);
    assert.equal(data.sample?.reference, 'x'.repeat(100));
    assert.ok(logs.some((l) => l.message.includes('1 example(s) longer than max_seq_length 130')));
  });
});

describe('run schedule', () => {
  it('steps, warm-up then cosine/linear/constant, evenly spaced checkpoints ending at the last step', () => {
    const plan = planRun(30, 8, 3, 0.1, 4);
    assert.deepEqual(plan, { stepsPerEpoch: 4, totalSteps: 12, warmupSteps: 2, checkpointSteps: [3, 6, 9, 12] });
    assert.equal(learningRate(1, plan, 1, 'cosine'), 0.5);
    assert.equal(learningRate(2, plan, 1, 'cosine'), 1);
    assert.equal(learningRate(3, plan, 1, 'cosine'), 1);
    const cos = Array.from({ length: 12 }, (_, i) => learningRate(i + 1, plan, 1, 'cosine'));
    for (let i = 2; i < 11; i++) assert.ok(cos[i + 1] < cos[i]);
    assert.ok(cos[11] > 0);
    assert.ok(Math.abs(learningRate(12, plan, 1, 'linear') - 0.1) < 1e-12);
    assert.equal(learningRate(12, plan, 1, 'constant'), 1);
    assert.deepEqual(planRun(3, 8, 1, 0, 5).checkpointSteps, [1]);
    assert.deepEqual(planRun(10, 1, 1, 0, 3).checkpointSteps, [3, 7, 10]);
  });

  it('shuffles each epoch differently, deterministically, covering every example once', () => {
    const a = epochOrder(30, 42, 0);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i));
    assert.deepEqual(epochOrder(30, 42, 0), a);
    assert.notDeepEqual(epochOrder(30, 42, 1), a);
    assert.notDeepEqual(epochOrder(30, 43, 0), a);
    const plan = planRun(30, 8, 2, 0, 1);
    const batches = [1, 2, 3, 4].map((s) => batchOf(s, plan, a, 8));
    assert.deepEqual(batches.map((b) => b.length), [8, 8, 8, 6]);
    assert.deepEqual(batches.flat(), a);
    assert.deepEqual(batchOf(5, plan, a, 8), a.slice(0, 8));
  });
});
