// The model card, training_args.json and folder name that "Save to Repository" writes (src/modelCard.ts): pure
// functions over the backend's job, checkpoint and file objects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CheckpointFile, FileObject, FineTuningJob, FineTuningJobCheckpoint, Hyperparameters } from '../common/api';
import { adapterFolderName, modelCard, runName, trainingArgs, vllmMaxLoraRank, type ModelCardInput } from '../src/modelCard';

function hyperparameters(over: Partial<Hyperparameters> = {}): Hyperparameters {
  return {
    n_epochs: 3,
    batch_size: 4,
    learning_rate: 0.0002,
    learning_rate_multiplier: 1,
    max_seq_length: 2048,
    warmup_ratio: 0.03,
    lr_scheduler: 'cosine',
    training_type: 'lora',
    lora_r: 8,
    lora_alpha: 16,
    lora_dropout: 0.05,
    lora_target_modules: ['q_proj', 'v_proj'],
    checkpoints: 3,
    eval_ratio: 0.1,
    ...over,
  };
}

function job(over: Partial<FineTuningJob> = {}, hp: Partial<Hyperparameters> = {}): FineTuningJob {
  const h = hyperparameters(hp);
  return {
    id: 'ftjob-abc123',
    object: 'fine_tuning.job',
    created_at: 1_700_000_000,
    finished_at: 1_700_000_100,
    model: 'Qwen/Qwen2.5-0.5B-Instruct',
    fine_tuned_model: 'ft:x',
    organization_id: 'org',
    status: 'succeeded',
    training_file: 'file-1',
    validation_file: null,
    hyperparameters: h,
    method: { type: 'supervised', supervised: { hyperparameters: h } },
    result_files: [],
    trained_tokens: 12345,
    error: null,
    seed: 42,
    suffix: 'support-bot',
    metadata: null,
    estimated_finish: null,
    integrations: [],
    user_provided_suffix: 'support-bot',
    started_at: 1_700_000_001,
    queue_position: null,
    engine: 'embedded',
    gpus: 0,
    progress: { step: 30, total_steps: 30, epoch: 3 },
    last_event_seq: 99,
    ...over,
  };
}

function checkpoint(over: Partial<FineTuningJobCheckpoint> = {}): FineTuningJobCheckpoint {
  return {
    id: 'ftckpt-1',
    object: 'fine_tuning.job.checkpoint',
    created_at: 1_700_000_050,
    fine_tuned_model_checkpoint: 'ft:Qwen2.5:support-bot:ftjob-abc123:ckpt-step-20',
    fine_tuning_job_id: 'ftjob-abc123',
    metrics: { step: 20, train_loss: 0.123456789, train_mean_token_accuracy: 0.9, valid_loss: 0.2 },
    step_number: 20,
    sample: { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say ```hi```' }], reference: 'hi', answer: '```\nhi\n```' },
    ...over,
  };
}

const FILE: FileObject = { id: 'file-1', object: 'file', bytes: 2048, created_at: 1, filename: 'support.jsonl', purpose: 'fine-tune', status: 'processed', examples: 120, warnings: 0 };
const FILES: CheckpointFile[] = [
  { object: 'fine_tuning.job.checkpoint.file', name: 'adapter_config.json', bytes: 400 },
  { object: 'fine_tuning.job.checkpoint.file', name: 'adapter_model.safetensors', bytes: 90_000 },
];

function input(over: Partial<ModelCardInput> = {}): ModelCardInput {
  return { job: job(), checkpoint: checkpoint(), trainingFile: FILE, files: FILES, ...over };
}

describe('adapter folder name', () => {
  it('is <suffix>-step<N>, else <job id>-step<N>', () => {
    assert.equal(adapterFolderName(job(), checkpoint()), 'support-bot-step20');
    assert.equal(adapterFolderName(job({ suffix: null }), checkpoint()), 'ftjob-abc123-step20');
    assert.equal(adapterFolderName(job({ suffix: '  ' }), checkpoint()), 'ftjob-abc123-step20');
    assert.equal(runName(job({ suffix: null })), 'ftjob-abc123');
  });
  it('cannot leave the repository or name a hidden folder', () => {
    assert.equal(adapterFolderName(job({ suffix: '../../etc/x y' }), checkpoint()), 'etc-x-y-step20');
    assert.equal(adapterFolderName(job({ suffix: '...' }), checkpoint()), 'ftjob-abc123-step20');
    assert.equal(adapterFolderName(job({ suffix: 'a/b\\c:d' }), checkpoint({ step_number: 7 })), 'a-b-c-d-step7');
  });
});

describe('model card', () => {
  const card = modelCard(input(), 'support-bot-step20');

  it('names the base model, the dataset with its size, and every hyper-parameter', () => {
    assert.match(card, /^---\nbase_model: Qwen\/Qwen2\.5-0\.5B-Instruct\nlibrary_name: peft\n/);
    assert.match(card, /`support\.jsonl` \(120 examples/);
    for (const [key, value] of Object.entries(hyperparameters())) {
      const shown = Array.isArray(value) ? value.join(', ') : String(value);
      assert.ok(card.includes(`| ${key} | ${shown} |`), `${key} is missing: ${shown}`);
    }
    assert.match(card, /\| seed \| 42 \|/);
    assert.match(card, /\| step \| 20 of 30 \|/);
  });
  it('has the metrics, rounded for people', () => {
    assert.match(card, /\| train_loss \| 0\.123457 \|/);
    assert.match(card, /\| valid_loss \| 0\.2 \|/);
    assert.match(card, /\| train_mean_token_accuracy \| 0\.9 \|/);
  });
  it('has the sample, in fences its backticks cannot close', () => {
    assert.match(card, /````text\nsystem: Be brief\.\nuser: Say ```hi```\n````/);
    assert.match(card, /Reference answer[^\n]*\n\n```text\nhi\n```/);
    assert.match(card, /````text\n```\nhi\n```\n````/);
  });
  it('says how to load it with transformers + peft and serve it with vLLM', () => {
    assert.match(card, /AutoModelForCausalLM\.from_pretrained\(base, torch_dtype="auto"\)/);
    assert.match(card, /base = "Qwen\/Qwen2\.5-0\.5B-Instruct"/);
    assert.match(card, /PeftModel\.from_pretrained\(model, "\.\/support-bot-step20"\)/);
    assert.match(card, /vllm serve Qwen\/Qwen2\.5-0\.5B-Instruct --enable-lora \\\n {2}--lora-modules support-bot=\.\/support-bot-step20\n/);
    assert.doesNotMatch(card, /max-lora-rank/, 'r = 8 needs no --max-lora-rank');
  });
  it('adds --max-lora-rank above rank 16, with a value vLLM accepts', () => {
    const big = modelCard(input({ job: job({}, { lora_r: 24 }) }), 'x');
    assert.match(big, /--max-lora-rank 32\n/);
    assert.equal(vllmMaxLoraRank(16), 16);
    assert.equal(vllmMaxLoraRank(64), 64);
    assert.equal(vllmMaxLoraRank(1000), 1000);
  });
  it('lists the files', () => {
    assert.match(card, /- `adapter_model\.safetensors` \(90000 bytes\)/);
    assert.match(card, /- `training_args\.json`/);
  });
  it('loads a full fine-tune directly, without peft', () => {
    const full = modelCard(input({ job: job({}, { training_type: 'full' }) }), 'full-step20');
    assert.doesNotMatch(full, /peft|PeftModel|enable-lora/i);
    assert.match(full, /AutoModelForCausalLM\.from_pretrained\(path, torch_dtype="auto"\)/);
    assert.match(full, /path = "\.\/full-step20"/);
    assert.match(full, /vllm serve \.\/full-step20\n/);
  });
  it('names a deleted training file by its id, and leaves out a missing sample', () => {
    const bare = modelCard(input({ trainingFile: undefined, checkpoint: checkpoint({ sample: null }) }), 'x');
    assert.match(bare, /file `file-1` \(no longer on the backend/);
    assert.doesNotMatch(bare, /## Sample/);
  });
  it('keeps table cells whole when a value holds a pipe or a newline', () => {
    const odd = modelCard(input({ job: job({ model: 'a|b\nc' }) }), 'x');
    assert.match(odd, /\| base model \| a\\\|b c \|/);
  });
});

describe('training_args.json', () => {
  it('holds the hyper-parameters, seed, model, training file, step and metrics', () => {
    const args = trainingArgs(input());
    assert.equal(args.base_model, 'Qwen/Qwen2.5-0.5B-Instruct');
    assert.deepEqual(args.hyperparameters, hyperparameters());
    assert.equal(args.seed, 42);
    assert.deepEqual(args.training_file, { id: 'file-1', filename: 'support.jsonl', examples: 120 });
    assert.equal(args.step, 20);
    assert.equal(args.total_steps, 30);
    assert.deepEqual(args.metrics, checkpoint().metrics);
    assert.deepEqual(JSON.parse(JSON.stringify(args)), args, 'survives JSON');
  });
  it('says when the training file is gone', () => {
    assert.deepEqual(trainingArgs(input({ trainingFile: undefined })).training_file, { id: 'file-1', filename: null, examples: null });
  });
});
