import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FineTuningJob, Hyperparameters, ModelObject } from '../common/api';
import { planRun } from '../backend/engines/embedded/schedule';
import * as backendRules from '../backend/hyperparameters';
import { BackendClient } from '../src/backendClient';
import { BackendError } from '../src/backendErrors';
import {
  GENERAL_DEFAULTS,
  MIN_SEQ_LENGTH,
  RANGES,
  applyModelDefaults,
  buildCreateRequest,
  changedHyperparameters,
  checkNumber,
  emptyValues,
  estimatedSeconds,
  fieldOfParam,
  modelDefaults,
  overLengthCount,
  parseNumber,
  planNumbers,
  prefillFromJob,
  settingsText,
  summaryView,
  validateValues,
} from '../src/newRunModel';
import type { FormValues } from '../webview/protocol';
import { dataset, startTestBackend, type TestBackend } from './backend.harness';

const tiny: ModelObject = {
  id: 'tiny-test',
  object: 'model',
  created: 0,
  owned_by: 'test',
  kind: 'base',
  engine: 'embedded',
  context_length: 256,
  default_hyperparameters: { ...GENERAL_DEFAULTS, max_seq_length: 256, learning_rate: 2e-3, batch_size: 4 },
};

function form(patch: Partial<FormValues['settings']> = {}): FormValues {
  const values = { ...emptyValues(), name: 'run-1', backend: 'local', model: tiny.id, dataset: { kind: 'local' as const, path: '/d.jsonl' } };
  values.settings = { ...settingsText(modelDefaults(tiny)), ...patch };
  return values;
}
const context = { model: tiny, modelIds: [tiny.id], maxGpus: 1 };

describe('the form keeps the backend rules', () => {
  it('has the backend ranges, defaults and shortest sequence length', () => {
    const { learning_rate_multiplier: _ignored, ...ranges } = backendRules.RANGES;
    assert.deepEqual(RANGES, ranges);
    assert.deepEqual(GENERAL_DEFAULTS, backendRules.GENERAL_DEFAULTS);
    assert.equal(MIN_SEQ_LENGTH, backendRules.MIN_SEQ_LENGTH);
  });

  // Every value either passes both the form and the backend, or is refused by both, on the same field.
  const cases: [keyof typeof RANGES | 'max_seq_length', string[]][] = [
    ['n_epochs', ['1', '100', '0', '101', '2.5', 'x']],
    ['batch_size', ['1', '1024', '0', '1025']],
    ['learning_rate', ['1e-4', '1', '0', '1.5', '-1']],
    ['warmup_ratio', ['0', '0.5', '0.51']],
    ['lora_r', ['1', '256', '0', '257', '8.5']],
    ['lora_alpha', ['0.5', '1024', '0', '1025']],
    ['lora_dropout', ['0', '0.5', '0.6']],
    ['checkpoints', ['1', '100', '0', '101']],
    ['eval_ratio', ['0', '0.5', '0.7']],
    ['max_seq_length', ['16', '256', '15', '257', '100.5']],
  ];
  for (const [key, texts] of cases) {
    for (const text of texts) {
      it(`${key} = ${text}`, () => {
        const errors = validateValues(form({ [key]: text }), context);
        const parsed = parseNumber(text);
        let refused: string | undefined;
        if (parsed === undefined) refused = key;
        else {
          try {
            backendRules.resolveHyperparameters({ [key]: parsed }, modelDefaults(tiny), 256, false);
          } catch (error) {
            assert.ok(backendRules.HyperparameterError.is(error));
            refused = error.param;
          }
        }
        assert.equal(errors[key] !== undefined, refused !== undefined, `form: ${errors[key] ?? 'ok'}, backend: ${refused ?? 'ok'}`);
        if (refused !== undefined) assert.equal(refused, key);
      });
    }
  }

  it('flags the other fields as the user types', () => {
    assert.deepEqual(validateValues(form(), context), {});
    const values = { ...form({ lora_target_modules: 'q_proj,q_proj', lr_scheduler: 'step', training_type: 'full', seed: '-1' }), name: 'bad name!', gpus: '2' };
    const errors = validateValues(values, { ...context, model: { ...tiny, id: 'qwen2.5-0.5b' }, modelIds: ['qwen2.5-0.5b'] });
    assert.deepEqual(Object.keys(errors).sort(), ['gpus', 'lora_target_modules', 'lr_scheduler', 'model', 'name', 'seed', 'training_type']);
    assert.match(errors.gpus ?? '', /from 1 to 1 GPUs/);
    assert.match(validateValues({ ...form(), dataset: null }, context).dataset ?? '', /Choose a training file/);
    assert.match(checkNumber('0', RANGES.learning_rate) ?? '', /greater than 0 and at most 1; 0 is not/);
  });
});

describe('defaults and the request body', () => {
  it('takes a new model\'s defaults for the fields the user did not touch', () => {
    const values = { ...form({ n_epochs: '7', batch_size: '2' }), touched: ['n_epochs' as const] };
    const other: ModelObject = { ...tiny, id: 'tiny-other', default_hyperparameters: { ...GENERAL_DEFAULTS, batch_size: 16, n_epochs: 2 } };
    const next = applyModelDefaults(values, other);
    assert.equal(next.settings.n_epochs, '7');
    assert.equal(next.settings.batch_size, '16');
    assert.equal(next.settings.learning_rate, '1e-4');
    assert.equal(applyModelDefaults({ ...form({ training_type: 'full' }), touched: ['training_type'] }, { ...tiny, id: 'qwen2.5-7b' }).settings.training_type, 'lora');
  });

  it('defaults to the general ones capped by the context when the model gives none', () => {
    const plain = modelDefaults({ ...tiny, default_hyperparameters: undefined, context_length: 512 });
    assert.equal(plain.max_seq_length, 512);
    assert.equal(plain.n_epochs, 3);
  });

  it('sends only what differs from the defaults, plus suffix, seed and GPUs', () => {
    const defaults = modelDefaults(tiny);
    assert.deepEqual(buildCreateRequest(form(), defaults, 'file-x'), { model: 'tiny-test', training_file: 'file-x', method: { type: 'supervised' }, suffix: 'run-1', gpus: 1 });
    const values = form({ n_epochs: '5', learning_rate: '0.002', lora_target_modules: 'v_proj,q_proj', seed: '42', lr_scheduler: 'linear' });
    assert.deepEqual(changedHyperparameters(values, defaults), { n_epochs: 5, lr_scheduler: 'linear', lora_target_modules: ['v_proj', 'q_proj'] });
    const request = buildCreateRequest(values, defaults, 'file-x');
    assert.equal(request.seed, 42);
    assert.deepEqual(request.method?.supervised?.hyperparameters, { n_epochs: 5, lr_scheduler: 'linear', lora_target_modules: ['v_proj', 'q_proj'] });
    // The same targets in another order are no change.
    assert.deepEqual(changedHyperparameters(form({ lora_target_modules: [...defaults.lora_target_modules].reverse().join(',') }), defaults), {});
  });

  it('maps a refusal\'s param to its field', () => {
    assert.equal(fieldOfParam('method.supervised.hyperparameters.lora_r'), 'lora_r');
    assert.equal(fieldOfParam('hyperparameters.n_epochs'), 'n_epochs');
    assert.equal(fieldOfParam('suffix'), 'name');
    assert.equal(fieldOfParam('training_file'), 'dataset');
    assert.equal(fieldOfParam('metadata'), undefined);
    assert.equal(fieldOfParam(null), undefined);
  });
});

describe('the summary', () => {
  it('plans as the engine does', () => {
    for (const [examples, batch, epochs, ratio, checkpoints] of [
      [100, 8, 3, 0.1, 3],
      [10, 4, 1, 0, 5],
      [2, 8, 2, 0.5, 10],
      [1, 1, 1, 0.2, 1],
      [37, 5, 4, 0.25, 100],
    ]) {
      const numbers = { validExamples: examples, tokens: examples * 50, lengths: Array.from({ length: examples }, () => 50) };
      const plan = planNumbers(numbers, { n_epochs: epochs, batch_size: batch, eval_ratio: ratio, checkpoints, max_seq_length: 2048 });
      const evalCount = ratio > 0 && examples >= 2 ? Math.min(examples - 1, Math.max(1, Math.round(examples * ratio))) : 0;
      const engine = planRun(examples - evalCount, batch, epochs, 0, checkpoints);
      assert.equal(plan.trainExamples, examples - evalCount);
      assert.equal(plan.stepsPerEpoch, engine.stepsPerEpoch);
      assert.equal(plan.totalSteps, engine.totalSteps);
      assert.equal(plan.checkpoints, engine.checkpointSteps.length);
      assert.equal(plan.tokensPerEpoch, plan.trainExamples * 50);
    }
  });

  it('counts over-length examples and caps tokens per epoch at the maximum length', () => {
    const numbers = { validExamples: 4, tokens: 10 + 20 + 30 + 40, lengths: [10, 20, 30, 40] };
    assert.equal(overLengthCount(numbers, 25), 2);
    assert.equal(overLengthCount(numbers, 40), 0);
    assert.equal(overLengthCount({ ...numbers, validExamples: 400 }, 25), 200, 'a sample scales up');
    assert.equal(planNumbers(numbers, { n_epochs: 1, batch_size: 1, eval_ratio: 0, checkpoints: 1, max_seq_length: 25 }).tokensPerEpoch, 10 + 20 + 25 + 25);
  });

  it('writes the rows, or says what is missing', () => {
    const rows = summaryView({ validExamples: 100, tokens: 5000, lengths: Array.from({ length: 100 }, () => 50) }, form({ batch_size: '8', n_epochs: '3', eval_ratio: '0.1' }), true).rows;
    const byLabel = Object.fromEntries(rows.map((r) => [r.label, r.value]));
    assert.equal(byLabel['Training examples'], '90 (+ 10 held out for evaluation)');
    assert.equal(byLabel['Steps per epoch'], '12');
    assert.equal(byLabel['Total steps'], '36');
    assert.equal(byLabel['Tokens per epoch'], '≈ 4,500');
    assert.match(summaryView(undefined, form(), false).rows[0].value, /not checked/);
    assert.match(summaryView({ validExamples: 1, tokens: 1, lengths: [1] }, form({ batch_size: 'x' }), false).rows[0].value, /fix the settings/);
  });

  it('estimates the duration from the backend\'s measured throughput: tokens per epoch × epochs ÷ rate', () => {
    const numbers = { validExamples: 100, tokens: 5000, lengths: Array.from({ length: 100 }, () => 50) };
    const duration = (values: FormValues, rate: number | undefined): string | undefined =>
      summaryView(numbers, values, false, rate).rows.find((r) => r.label === 'Duration')?.value;
    // 90 training examples × 50 tokens = 4,500 a epoch; 3 epochs = 13,500 tokens; at 45 tokens/s: 300 s.
    assert.equal(estimatedSeconds({ tokensPerEpoch: 4500 }, 3, 45), 300);
    assert.equal(duration(form({ n_epochs: '3', eval_ratio: '0.1' }), 45), 'about 5 min (from this backend\'s recent runs of this model)');
    // Twice the epochs, twice the time; a slower backend, longer.
    assert.equal(duration(form({ n_epochs: '6', eval_ratio: '0.1' }), 45), 'about 10 min (from this backend\'s recent runs of this model)');
    assert.equal(duration(form({ n_epochs: '3', eval_ratio: '0.1' }), 1.5), 'about 2 h 30 min (from this backend\'s recent runs of this model)');
    // A very fast run still says a minute rather than 0.
    assert.equal(duration(form({ n_epochs: '1', eval_ratio: '0.1' }), 1e6), 'about 1 min (from this backend\'s recent runs of this model)');
    assert.equal(duration(form({ n_epochs: '3' }), undefined), 'no estimate yet (no run of this model on this backend)');
    assert.equal(estimatedSeconds({ tokensPerEpoch: 4500 }, 3, 0), undefined, 'a zero rate is no rate');
    // A file on the backend has no token count here: no figure rather than a wrong one.
    assert.match(summaryView({ validExamples: 20, tokens: 0, lengths: [] }, form(), false, 45).rows.find((r) => r.label === 'Duration')?.value ?? '', /not counted/);
  });
});

describe('rerun prefill', () => {
  it('fills every field from the job and offers its file by id and name', () => {
    const h: Hyperparameters = { ...modelDefaults(tiny), n_epochs: 9, lora_r: 4, lora_alpha: 8, lora_target_modules: ['q_proj', 'v_proj'] };
    const job = { id: 'ftjob-1', model: tiny.id, hyperparameters: h, seed: 7, suffix: 'abc', user_provided_suffix: 'abc', training_file: 'file-abc', gpus: 1 } as unknown as FineTuningJob;
    const values = prefillFromJob(job, 'local', tiny, { filename: 'train.jsonl', examples: 20 });
    assert.equal(values.settings.n_epochs, '9');
    assert.equal(values.settings.lora_target_modules, 'q_proj,v_proj');
    assert.equal(values.settings.seed, '7');
    assert.equal(values.name, 'abc');
    assert.deepEqual(values.dataset, { kind: 'remote', fileId: 'file-abc', filename: 'train.jsonl', examples: 20 });
    const rows = Object.fromEntries(summaryView({ validExamples: 20, tokens: 0, lengths: [] }, values, false).rows.map((r) => [r.label, r.value]));
    assert.equal(rows['Total steps'], String(9 * Math.ceil(18 / 4)));
    assert.match(rows['Tokens per epoch'], /on the backend/);
    assert.equal(prefillFromJob(job, 'local', tiny, undefined).dataset?.kind, 'remote');
    assert.deepEqual([...values.touched].sort(), ['lora_alpha', 'lora_r', 'lora_target_modules', 'n_epochs']);
    assert.deepEqual(validateValues(values, context), {});
    assert.deepEqual(changedHyperparameters(values, modelDefaults(tiny)), { n_epochs: 9, lora_r: 4, lora_alpha: 8, lora_target_modules: ['q_proj', 'v_proj'] });
  });
});

describe('against a real backend', () => {
  let b: TestBackend;
  let client: BackendClient;
  before(async () => {
    b = await startTestBackend();
    client = new BackendClient({ url: b.url, apiKey: b.key });
  });
  after(async () => b.close());

  it('creates a job from the form, and a refusal names the field the form flags too', async () => {
    const models = await client.models();
    const model = models.find((m) => m.kind === 'base' && m.id.startsWith('tiny-'));
    assert.ok(model, 'the backend has a tiny model');
    const file = await client.uploadFile({ name: 'train.jsonl', bytes: new TextEncoder().encode(dataset(8)) });
    const values = { ...emptyValues(), name: 'form-test', backend: 'local', model: model.id, gpus: '0', dataset: { kind: 'remote' as const, fileId: file.id, filename: 'train.jsonl' } };
    values.settings = settingsText(modelDefaults(model));
    values.settings.lora_r = '300';
    const system = await client.system();
    const ctx = { model, modelIds: [model.id], maxGpus: system.gpus.length };
    assert.ok(validateValues(values, ctx).lora_r);
    const refused = await client.createJob(buildCreateRequest(values, modelDefaults(model), file.id)).then(
      () => assert.fail('the backend took lora_r 300'),
      (error: unknown) => error,
    );
    assert.ok(BackendError.is(refused) && refused.status === 400);
    assert.equal(fieldOfParam(refused.apiError?.param), 'lora_r');

    values.settings.lora_r = '4';
    values.settings.n_epochs = '1';
    assert.deepEqual(validateValues(values, ctx), {});
    const job = await client.createJob(buildCreateRequest(values, modelDefaults(model), file.id));
    await client.cancelJob(job.id).catch(() => undefined);
    assert.equal(job.hyperparameters.lora_r, 4);
    assert.equal(job.hyperparameters.lora_alpha, 8);
    assert.equal(job.suffix, 'form-test');
    assert.deepEqual(job.hyperparameters.lora_target_modules, modelDefaults(model).lora_target_modules);
  });
});
