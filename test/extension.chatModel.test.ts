// The chat's pure logic (src/chatModel.ts): generation defaults and settings' parsing, each side's messages, the
// stats under an answer, the export line (checked by the dataset rules and accepted by a real backend's upload),
// appending to a file, and the quick pick's order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FineTuningJob, FineTuningJobCheckpoint, SavedAdapter } from '../common/api';
import { BackendClient } from '../src/backendClient';
import {
  ChatExportError,
  GENERATION_DEFAULTS,
  answerStats,
  appendedText,
  checkpointPickItems,
  compareChoices,
  datasetLineErrors,
  defaultGenerationTexts,
  exportLine,
  isChatState,
  messagesFor,
  parseGenerationSettings,
  pendingAnswer,
  prefillSystem,
  randomSeed,
  runPickItems,
  tokensPerSecond,
} from '../src/chatModel';
import type { Answer, ChatState } from '../webview/chat/protocol';
import { startTestBackend, type TestBackend } from './backend.harness';
import { fixtureJob } from './jobFixture';

const JOB = 'ftjob-aaaaaaaaaaaaaaaaaaaaaaaa';

/** A running job named `demo`. */
const job = (extra: Partial<FineTuningJob> = {}): FineTuningJob => fixtureJob('running', { id: JOB, suffix: 'demo', user_provided_suffix: 'demo', ...extra });


function checkpoint(step: number, sample: FineTuningJobCheckpoint['sample'] = null): FineTuningJobCheckpoint {
  return {
    id: `ftckpt-${String(step).padStart(24, '0')}`, object: 'fine_tuning.job.checkpoint', created_at: step, fine_tuned_model_checkpoint: `ft:tiny:demo:ckpt-step-${step}`,
    fine_tuning_job_id: JOB, metrics: { step, train_loss: 1.23456, train_mean_token_accuracy: 0.5, valid_loss: 1.5 }, step_number: step, sample,
  };
}

function done(text: string, extra: Partial<Answer> = {}): Answer {
  return { ...pendingAnswer(42), text, state: 'done', ttftMs: 100, durationMs: 1100, tokens: 11, tokensFromUsage: true, finishReason: 'stop', ...extra };
}

function state(extra: Partial<ChatState> = {}): ChatState {
  return {
    target: { backend: 'local', model: 'ft:tiny:demo:ckpt-step-4', jobId: JOB, label: 'demo-step4' },
    compare: null,
    system: 'You are terse.',
    settings: defaultGenerationTexts(),
    turns: [],
    ...extra,
  };
}

describe('chat model: settings', () => {
  it('starts from Qwen2.5\'s defaults with an empty (random) seed, and parses them back', () => {
    const texts = defaultGenerationTexts();
    assert.deepEqual(texts, { temperature: '0.7', top_p: '0.8', top_k: '20', repetition_penalty: '1.05', max_tokens: '512', seed: '' });
    const parsed = parseGenerationSettings(texts);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.settings, { ...GENERATION_DEFAULTS, seed: undefined });
  });

  it('says what is wrong with each bad field', () => {
    const cases: [keyof ChatState['settings'], string][] = [
      ['temperature', '-1'],
      ['temperature', 'hot'],
      ['top_p', '0'],
      ['top_p', '1.5'],
      ['top_k', '2.5'],
      ['repetition_penalty', '0'],
      ['max_tokens', '0'],
      ['max_tokens', '12x'],
      ['seed', '-3'],
      ['seed', '2147483648'],
      ['seed', '1.5'],
    ];
    for (const [key, text] of cases) {
      const parsed = parseGenerationSettings({ ...defaultGenerationTexts(), [key]: text });
      assert.equal(parsed.ok, false, `${key}=${text} was accepted`);
      if (!parsed.ok) {
        assert.deepEqual(Object.keys(parsed.errors), [key], `${key}=${text}`);
        assert.ok((parsed.errors[key] ?? '').length > 5);
      }
    }
    const greedy = parseGenerationSettings({ ...defaultGenerationTexts(), temperature: '0', seed: ' 7 ', top_k: '0' });
    assert.ok(greedy.ok);
    assert.equal(greedy.settings.temperature, 0);
    assert.equal(greedy.settings.seed, 7);
  });

  it('draws random seeds in the engines\' 31-bit range', () => {
    assert.equal(randomSeed(() => 0), 0);
    assert.equal(randomSeed(() => 0.999999999999), 2_147_483_647);
    const seeds = new Set(Array.from({ length: 50 }, () => randomSeed()));
    assert.ok(seeds.size > 45);
  });
});

describe('chat model: messages and stats', () => {
  it('sends the system prompt, each earlier answered turn of its own side, then the prompt', () => {
    const s = state({
      turns: [
        { user: 'one', answers: [done('A1'), done('B1')] },
        { user: 'two', answers: [done('A2'), { ...pendingAnswer(1), state: 'failed', error: 'x' }] },
        { user: 'three', answers: [pendingAnswer(3), pendingAnswer(3)] },
      ],
    });
    assert.deepEqual(messagesFor(s, 2, 0), [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'A1' },
      { role: 'user', content: 'two' },
      { role: 'assistant', content: 'A2' },
      { role: 'user', content: 'three' },
    ]);
    // The failed answer of side 1 leaves its turn out, so that two user turns never follow each other.
    assert.deepEqual(messagesFor(s, 2, 1), [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'B1' },
      { role: 'user', content: 'three' },
    ]);
    assert.deepEqual(messagesFor({ ...s, system: '  ' }, 0, 0), [{ role: 'user', content: 'one' }]);
  });

  it('measures tokens/s over the decoding time and says how the answer ended', () => {
    const a = done('x', { ttftMs: 100, durationMs: 1100, tokens: 11 });
    assert.equal(tokensPerSecond(a), 10);
    assert.equal(answerStats(a), 'first token 100 ms · 10.0 tokens/s · 11 tokens · finished · seed 42');
    const stopped = done('x', { state: 'stopped', finishReason: null, tokens: 3, tokensFromUsage: false, ttftMs: 1500, durationMs: 2500 });
    assert.equal(answerStats(stopped), 'first token 1.5 s · 2.0 tokens/s · 3 pieces · stopped · seed 42');
    assert.match(answerStats(done('x', { finishReason: 'length' })), /cut at max tokens/);
    assert.equal(tokensPerSecond(done('', { tokens: 0 })), undefined);
    assert.equal(tokensPerSecond({ ...pendingAnswer(1) }), undefined);
  });
});

describe('chat model: export', () => {
  it('makes one dataset line of a side\'s answered turns that the dataset rules accept', () => {
    const s = state({
      turns: [
        { user: 'Hello "there"\nfriend', answers: [done('Hi!\n```py\nprint(1)\n```'), done('Yo')] },
        { user: 'again', answers: [{ ...done('half'), state: 'stopped' }, { ...pendingAnswer(1), state: 'failed' }] },
      ],
    });
    const left = exportLine(s, 0);
    assert.ok(!left.includes('\n'), 'one line');
    assert.deepEqual(JSON.parse(left), {
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hello "there"\nfriend' },
        { role: 'assistant', content: 'Hi!\n```py\nprint(1)\n```' },
        { role: 'user', content: 'again' },
        { role: 'assistant', content: 'half' },
      ],
    });
    assert.deepEqual(datasetLineErrors(left), []);
    const right = JSON.parse(exportLine({ ...s, system: '' }, 1)) as { messages: unknown[] };
    assert.deepEqual(right.messages, [{ role: 'user', content: 'Hello "there"\nfriend' }, { role: 'assistant', content: 'Yo' }]);
  });

  it('refuses a conversation without a finished answer, with a reason', () => {
    assert.throws(() => exportLine(state(), 0), (e: unknown) => ChatExportError.is(e) && e.reason === 'empty');
    assert.throws(() => exportLine(state({ turns: [{ user: 'q', answers: [pendingAnswer(1)] }] }), 0), (e: unknown) => ChatExportError.is(e) && e.reason === 'empty');
  });

  it('the dataset check used on export does catch a bad line', () => {
    assert.ok(datasetLineErrors('{"messages":[{"role":"robot","content":"x"}]}').length > 0);
    assert.ok(datasetLineErrors('{"messages":[').length > 0);
  });

  it('appends as one line, with a newline first when the file does not end with one', () => {
    assert.equal(appendedText(undefined, 'L'), 'L\n');
    assert.equal(appendedText(0x0a, 'L'), 'L\n');
    assert.equal(appendedText('}'.charCodeAt(0), 'L'), '\nL\n');
  });

  it('recognises a kept state and nothing else', () => {
    assert.ok(isChatState(state({ turns: [{ user: 'q', answers: [done('a')] }] })));
    assert.equal(isChatState(null), false);
    assert.equal(isChatState({ target: { backend: 'b' }, system: '', settings: {}, turns: [] }), false);
    assert.equal(isChatState({ ...state(), turns: [{ answers: [] }] }), false);
  });
});

describe('chat model: quick pick and compare', () => {
  it('lists runs newest first with status and base model', () => {
    const items = runPickItems([
      job({ id: 'ftjob-aaaaaaaaaaaaaaaaaaaaaaa1', created_at: 10, suffix: 'old' }),
      job({ id: 'ftjob-aaaaaaaaaaaaaaaaaaaaaaa3', created_at: 30, suffix: 'new', status: 'succeeded' }),
      job({ id: 'ftjob-aaaaaaaaaaaaaaaaaaaaaaa2', created_at: 20, suffix: null }),
    ]);
    assert.deepEqual(items.map((i) => i.label), ['new', 'ftjob-aaaaaaaa', 'old']);
    assert.equal(items[0].description, 'tiny-qwen2-1m · succeeded');
  });

  it('lists the final model, the run\'s saved adapters, then checkpoints by step, newest first', () => {
    const succeeded = job({ status: 'succeeded', fine_tuned_model: 'ft:tiny:demo' });
    const adapter = (name: string, created: number, jobId = JOB): SavedAdapter => ({
      id: `adapter-${name}`, object: 'adapter', name, created_at: created, base_model: 'tiny-qwen2-1m', job_id: jobId, checkpoint_id: null, step_number: 4,
      source_model: 'x', location: `/repo/${name}`, bytes: 1,
    });
    const items = checkpointPickItems('local', succeeded, [checkpoint(2), checkpoint(6), checkpoint(4)], [adapter('a', 1), adapter('other', 5, 'ftjob-bbbbbbbbbbbbbbbbbbbbbbbb'), adapter('b', 9)]);
    assert.deepEqual(items.map((i) => i.label), ['Final model', 'b', 'a', 'step 6', 'step 4', 'step 2']);
    assert.equal(items[0].value.model, 'ft:tiny:demo');
    assert.equal(items[1].value.model, 'adapter-b');
    assert.equal(items[3].value.model, 'ft:tiny:demo:ckpt-step-6');
    assert.equal(items[3].value.label, 'demo-step6');
    assert.match(items[3].description ?? '', /train loss 1\.235 · valid loss 1\.500 · accuracy 50\.0%/);
    // A run that has not succeeded offers no final model.
    assert.deepEqual(checkpointPickItems('local', job(), [checkpoint(2)], []).map((i) => i.label), ['step 2']);
  });

  it('offers the other checkpoints, the final model and the base model to compare with', () => {
    const s = state();
    const choices = compareChoices(s.target, job({ fine_tuned_model: 'ft:tiny:demo' }), [checkpoint(2), checkpoint(4), checkpoint(6)]);
    assert.deepEqual(choices.map((c) => c.model), ['ft:tiny:demo', 'ft:tiny:demo:ckpt-step-6', 'ft:tiny:demo:ckpt-step-2', 'tiny-qwen2-1m']);
    assert.equal(choices.at(-1)?.label, 'tiny-qwen2-1m (base)');
    assert.deepEqual(compareChoices(s.target, undefined, []), []);
  });

  it('prefills the dataset\'s system prompt, else the sample\'s system message', () => {
    const sample = { messages: [{ role: 'system', content: 'From sample' }, { role: 'user', content: 'q' }], reference: 'r', answer: 'a' };
    assert.deepEqual(prefillSystem('Shared', checkpoint(2, sample)), { text: 'Shared', source: 'dataset' });
    assert.deepEqual(prefillSystem(null, checkpoint(2, sample)), { text: 'From sample', source: 'sample' });
    assert.deepEqual(prefillSystem(undefined, checkpoint(2)), { text: '', source: 'none' });
  });
});

describe('chat model: the export line against a real backend', () => {
  let backend: TestBackend;
  before(async () => {
    backend = await startTestBackend();
  });
  after(async () => {
    await backend.close();
  });

  it('is accepted by the backend\'s upload check as a one-example dataset', async () => {
    const s = state({ turns: [{ user: 'What is 2+2?', answers: [done('**4**, of course.\n\n```js\nconsole.log(2 + 2);\n```')] }] });
    const line = exportLine(s, 0);
    const client = new BackendClient({ url: backend.url, apiKey: backend.key });
    const file = await client.uploadFile({ name: 'exported.jsonl', bytes: new TextEncoder().encode(appendedText(undefined, line)) });
    assert.equal(file.examples, 1);
    assert.equal(file.status, 'processed');
  });
});
