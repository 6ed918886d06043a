// `training_type` over real HTTP: a full fine-tuning job on a built-in tiny model runs on the embedded engine to
// `succeeded`, its checkpoints list and serve the model folder's files (not an adapter's), and its fine-tuned
// model answers in chat; `full` on a model folder that is not a built-in tiny model, and an unknown value, are
// refused with a 400 naming the parameter.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChatCompletion, CheckpointFile, FileObject, FineTuningJob, FineTuningJobCheckpoint, ListObject, ModelObject } from '../common/api';
import { TINY_MODELS } from '../backend/engines/embedded/catalog';
import { ownerOf } from '../backend/http/auth';
import { call, dataset, type ErrorReply, type Reply, startTestBackend, type TestBackend, upload, waitForFinal } from './backend.harness';

const HP = 'method.supervised.hyperparameters';
const FOLDER_MODEL = 'acme/qwen2-folder';
let b: TestBackend;
let file: FileObject;

before(async () => {
  b = await startTestBackend();
  // A model folder that counts as available (the files exist); the job is refused before anything reads them.
  const folder = join(b.dir, 'models', 'acme', 'qwen2-folder');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...TINY_MODELS[0].config, hidden_size: 896, num_attention_heads: 14, max_position_embeddings: 32768 }));
  writeFileSync(join(folder, 'model.safetensors'), '');
  writeFileSync(join(folder, 'tokenizer.json'), '{}');
  file = (await upload(b, dataset(8))).body as FileObject;
});
after(async () => {
  await b.close();
});

const createJob = (model: string, hyperparameters: Record<string, unknown>): Promise<Reply<FineTuningJob>> =>
  call<FineTuningJob>(b, 'POST', '/v1/fine_tuning/jobs', { json: { model, training_file: file.id, method: { type: 'supervised', supervised: { hyperparameters } } } });

describe('training_type', () => {
  it('is lora by default on every model, shown in the defaults', async () => {
    const models = await call<ListObject<ModelObject>>(b, 'GET', '/v1/models');
    assert.equal(models.status, 200);
    const listed = models.body.data.filter((m) => m.kind === 'base');
    assert.ok(listed.some((m) => m.id === FOLDER_MODEL && m.available === true), JSON.stringify(listed.map((m) => m.id)));
    for (const m of listed) assert.equal(m.default_hyperparameters?.training_type, 'lora', m.id);
  });

  const refused: { name: string; model: string; value: unknown; code: string; message: RegExp }[] = [
    { name: 'full on a model folder that is not a built-in tiny model', model: FOLDER_MODEL, value: 'full', code: 'invalid_value', message: /tiny models only.*gradient.*optimizer moments/ },
    { name: 'an unknown value', model: 'tiny-qwen2-1m', value: 'qlora', code: 'invalid_value', message: /"lora", "full"/ },
    { name: 'a value of the wrong type', model: 'tiny-qwen2-1m', value: true, code: 'invalid_value', message: /training_type/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}: 400 naming ${HP}.training_type`, async () => {
      const reply = await createJob(c.model, { training_type: c.value });
      assert.equal(reply.status, 400, reply.text);
      const error = (reply.body as unknown as ErrorReply).error;
      assert.equal(error.param, `${HP}.training_type`);
      assert.equal(error.code, c.code);
      assert.match(error.message, c.message);
    });
  }

  it('full on a tiny model runs to succeeded; its checkpoint lists and serves model files, and chats', async () => {
    const created = await createJob('tiny-qwen2-1m', { training_type: 'full', n_epochs: 2, batch_size: 4, max_seq_length: 128, checkpoints: 1, eval_ratio: 0 });
    assert.equal(created.status, 200, created.text);
    assert.equal(created.body.hyperparameters.training_type, 'full');
    const final = await waitForFinal(b, ownerOf(b.key), created.body.id, 120_000);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    assert.ok(final.fine_tuned_model);

    const checkpoints = await call<ListObject<FineTuningJobCheckpoint>>(b, 'GET', `/v1/fine_tuning/jobs/${final.id}/checkpoints`);
    assert.equal(checkpoints.status, 200);
    const checkpoint = checkpoints.body.data[0];
    assert.ok(checkpoint);
    const files = await call<ListObject<CheckpointFile>>(b, 'GET', `/v1/fine_tuning/jobs/${final.id}/checkpoints/${checkpoint.id}/files`);
    assert.equal(files.status, 200);
    assert.deepEqual(files.body.data.map((f) => f.name).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const config = await call<{ model_type: string }>(b, 'GET', `/v1/fine_tuning/jobs/${final.id}/checkpoints/${checkpoint.id}/files/config.json`);
    assert.equal(config.status, 200);
    assert.equal(config.body.model_type, 'qwen2');
    const weights = await fetch(`${b.url}/v1/fine_tuning/jobs/${final.id}/checkpoints/${checkpoint.id}/files/model.safetensors`, { headers: { authorization: `Bearer ${b.key}` } });
    assert.equal(weights.status, 200);
    assert.equal(Buffer.from(await weights.arrayBuffer()).length, files.body.data.find((f) => f.name === 'model.safetensors')?.bytes);
    for (const name of ['adapter_config.json', 'optimizer.safetensors', 'trainer_state.json']) {
      const missing = await call<ErrorReply>(b, 'GET', `/v1/fine_tuning/jobs/${final.id}/checkpoints/${checkpoint.id}/files/${name}`);
      assert.equal(missing.status, 404, name);
    }

    // The checkpoint is loaded as the model: its greedy answer is not the base model's.
    const ask = (model: string): Promise<Reply<ChatCompletion>> =>
      call<ChatCompletion>(b, 'POST', '/v1/chat/completions', { json: { model, messages: [{ role: 'user', content: 'q question 1?' }], max_tokens: 8, temperature: 0, seed: 1 } });
    const tuned = await ask(final.fine_tuned_model);
    assert.equal(tuned.status, 200, tuned.text);
    assert.equal(tuned.body.model, final.fine_tuned_model);
    const base = await ask('tiny-qwen2-1m');
    assert.equal(base.status, 200, base.text);
    assert.notEqual(tuned.body.choices[0].message.content, base.body.choices[0].message.content);
  });
});
