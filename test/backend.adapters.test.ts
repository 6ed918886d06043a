// `/v1/adapters` over real HTTP with a job trained on the embedded engine: saving a checkpoint (files copied
// byte for byte, nothing staged left behind), refusals (bad name, unknown model, taken name, another key),
// overwrite (the new copy in place before the old goes), listing newest first and by page, `/v1/models`, chat
// with the adapter's id and name giving the checkpoint's answer (even once the job's folder is gone), delete, and
// a restart: the adapters come back, and what a crash could leave (a staged copy, a folder without a record, two
// of one name) is cleaned up.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChatCompletion, DeletedObject, FileObject, FineTuningJob, FineTuningJobCheckpoint, ListObject, ModelObject, SavedAdapter } from '../common/api';
import { ownerOf } from '../backend/http/auth';
import { call, dataset, type ErrorReply, startTestBackend, type TestBackend, upload, waitForFinal } from './backend.harness';

const KEY_A = 'fs-test-key-adapters-alice-0123456789';
const KEY_B = 'fs-test-key-adapters-bob-0123456789ab';

let b: TestBackend;
let dir: string;
let job: FineTuningJob;
let checkpoints: FineTuningJobCheckpoint[];
const alice = (): { url: string; key: string } => ({ url: b.url, key: KEY_A });
const bob = (): { url: string; key: string } => ({ url: b.url, key: KEY_B });

before(async () => {
  b = await startTestBackend({ apiKeys: [KEY_A, KEY_B] });
  dir = b.dir;
  const file = (await upload(alice(), dataset(8))).body as FileObject;
  const created = await call<FineTuningJob>(alice(), 'POST', '/v1/fine_tuning/jobs', {
    json: {
      model: 'tiny-qwen2-1m',
      training_file: file.id,
      suffix: 'keep',
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 4, max_seq_length: 128, checkpoints: 2, eval_ratio: 0 } } },
    },
  });
  assert.equal(created.status, 200, created.text);
  job = await waitForFinal(b, ownerOf(KEY_A), created.body.id);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  checkpoints = (await call<ListObject<FineTuningJobCheckpoint>>(alice(), 'GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints`)).body.data;
  assert.equal(checkpoints.length, 2);
});
after(async () => {
  await b.close();
});

/** A greedy answer of `model`, whole. */
async function answer(model: string, base = alice()): Promise<ChatCompletion> {
  const reply = await call<ChatCompletion>(base, 'POST', '/v1/chat/completions', {
    json: { model, messages: [{ role: 'user', content: 'question 3?' }], max_tokens: 12, temperature: 0, seed: 7 },
  });
  assert.equal(reply.status, 200, reply.text);
  return reply.body;
}

const adaptersDir = (): string => join(dir, 'adapters');
const listed = (): string[] => readdirSync(adaptersDir()).filter((n) => n.startsWith('adapter-')).sort();

describe('saving an adapter', () => {
  let saved: SavedAdapter;

  it('copies the checkpoint\'s files into the backend\'s own folder and answers 201 with the record', async () => {
    const checkpoint = checkpoints[0];
    const reply = await call<SavedAdapter>(alice(), 'POST', '/v1/adapters', {
      json: { model: checkpoint.fine_tuned_model_checkpoint, name: 'run-step4', location: '/home/me/finetune-adapters/run-step4' },
    });
    assert.equal(reply.status, 201, reply.text);
    saved = reply.body;
    assert.match(saved.id, /^adapter-[A-Za-z0-9]{24}$/);
    assert.equal(saved.object, 'adapter');
    assert.equal(saved.name, 'run-step4');
    assert.equal(saved.base_model, 'tiny-qwen2-1m');
    assert.equal(saved.job_id, job.id);
    assert.equal(saved.checkpoint_id, checkpoint.id);
    assert.equal(saved.step_number, checkpoint.step_number);
    assert.equal(saved.source_model, checkpoint.fine_tuned_model_checkpoint);
    assert.equal(saved.location, '/home/me/finetune-adapters/run-step4');

    // The same bytes as the checkpoint's downloadable files, and nothing half-made beside them.
    const files = (await call<ListObject<{ name: string; bytes: number }>>(alice(), 'GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints/${checkpoint.id}/files`)).body.data;
    assert.equal(saved.bytes, files.reduce((sum, f) => sum + f.bytes, 0));
    for (const f of files) {
      const original = Buffer.from(await (await fetch(`${b.url}/v1/fine_tuning/jobs/${job.id}/checkpoints/${checkpoint.id}/files/${f.name}`, { headers: { authorization: `Bearer ${KEY_A}` } })).arrayBuffer());
      assert.deepEqual(readFileSync(join(adaptersDir(), saved.id, f.name)), original, f.name);
    }
    assert.deepEqual(readdirSync(join(adaptersDir(), '.staging')), []);
    assert.deepEqual(listed(), [saved.id]);

    assert.deepEqual((await call<SavedAdapter>(alice(), 'GET', `/v1/adapters/${saved.id}`)).body, saved);
  });

  it('saves a job\'s fine-tuned model too (its final checkpoint)', async () => {
    const reply = await call<SavedAdapter>(alice(), 'POST', '/v1/adapters', { json: { model: job.fine_tuned_model, name: 'final.v1' } });
    assert.equal(reply.status, 201, reply.text);
    const last = checkpoints[0].step_number > checkpoints[1].step_number ? checkpoints[0] : checkpoints[1];
    assert.equal(reply.body.checkpoint_id, last.id);
    assert.equal(reply.body.step_number, last.step_number);
    assert.equal(reply.body.location, null);
  });

  const refusals: { name: string; body: () => Record<string, unknown>; status: number; param: string; code: string; key?: () => { url: string; key: string } }[] = [
    { name: 'a name with a slash', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: '../evil' }), status: 400, param: 'name', code: 'invalid_value' },
    { name: 'an empty name', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: '' }), status: 400, param: 'name', code: 'invalid_value' },
    { name: 'a name of dots', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: '..' }), status: 400, param: 'name', code: 'invalid_value' },
    { name: 'a name of 129 characters', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: 'a'.repeat(129) }), status: 400, param: 'name', code: 'invalid_value' },
    { name: 'a base model\'s id as the name', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: 'tiny-qwen2-1m' }), status: 400, param: 'name', code: 'invalid_value' },
    { name: 'no name', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint }), status: 400, param: 'name', code: 'missing_required_parameter' },
    { name: 'an unknown field', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: 'x', keep: true }), status: 400, param: 'keep', code: 'unknown_parameter' },
    { name: 'an unknown model', body: () => ({ model: 'ft:tiny-qwen2-1m:x:ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', name: 'x' }), status: 404, param: 'model', code: 'model_not_found' },
    { name: 'a base model', body: () => ({ model: 'tiny-qwen2-1m', name: 'x' }), status: 404, param: 'model', code: 'model_not_found' },
    { name: 'another key\'s checkpoint', body: () => ({ model: checkpoints[0].fine_tuned_model_checkpoint, name: 'x' }), status: 404, param: 'model', code: 'model_not_found', key: bob },
    { name: 'a taken name', body: () => ({ model: checkpoints[1].fine_tuned_model_checkpoint, name: 'run-step4' }), status: 409, param: 'name', code: 'adapter_exists' },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name}: ${r.status} naming ${r.param}`, async () => {
      const before = listed();
      const reply = await call<ErrorReply>((r.key ?? alice)(), 'POST', '/v1/adapters', { json: r.body() });
      assert.equal(reply.status, r.status, reply.text);
      assert.equal(reply.body.error.param, r.param);
      assert.equal(reply.body.error.code, r.code);
      assert.deepEqual(listed(), before, 'nothing stored');
    });
  }

  it('says what a name may hold', async () => {
    const reply = await call<ErrorReply>(alice(), 'POST', '/v1/adapters', { json: { model: checkpoints[0].fine_tuned_model_checkpoint, name: 'my adapter' } });
    assert.match(reply.body.error.message, /letters, digits, '_', '\.' or '-'/);
    assert.match(reply.body.error.message, /"my adapter"/);
  });

  it('replaces an adapter of the same name with overwrite: the new one listed, the old one gone', async () => {
    const other = checkpoints[1];
    const reply = await call<SavedAdapter>(alice(), 'POST', '/v1/adapters', { json: { model: other.fine_tuned_model_checkpoint, name: 'run-step4', overwrite: true } });
    assert.equal(reply.status, 201, reply.text);
    assert.notEqual(reply.body.id, saved.id);
    assert.equal(reply.body.checkpoint_id, other.id);
    assert.equal((await call(alice(), 'GET', `/v1/adapters/${saved.id}`)).status, 404);
    assert.equal(existsSync(join(adaptersDir(), saved.id)), false);
    const list = (await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters')).body.data;
    assert.deepEqual(list.filter((a) => a.name === 'run-step4').map((a) => a.id), [reply.body.id]);
    saved = reply.body;
  });

  it('lists newest first, by pages, and only to its owner', async () => {
    const list = await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.data.map((a) => a.name), ['run-step4', 'final.v1']);
    assert.equal(list.body.has_more, false);
    const first = await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters?limit=1');
    assert.equal(first.body.has_more, true);
    const second = await call<ListObject<SavedAdapter>>(alice(), 'GET', `/v1/adapters?limit=1&after=${first.body.last_id ?? ''}`);
    assert.deepEqual([...first.body.data, ...second.body.data], list.body.data);
    assert.equal(second.body.has_more, false);
    assert.equal((await call(alice(), 'GET', '/v1/adapters?after=adapter-AAAAAAAAAAAAAAAAAAAAAAAA')).status, 400);

    assert.deepEqual((await call<ListObject<SavedAdapter>>(bob(), 'GET', '/v1/adapters')).body.data, []);
    for (const method of ['GET', 'DELETE']) {
      const reply = await call<ErrorReply>(bob(), method, `/v1/adapters/${saved.id}`);
      assert.equal(reply.status, 404, method);
      assert.equal(reply.body.error.code, 'adapter_not_found');
    }
    assert.equal((await call(bob(), 'POST', '/v1/chat/completions', { json: { model: saved.id, messages: [{ role: 'user', content: 'hi' }] } })).status, 404);
    assert.ok(existsSync(join(adaptersDir(), saved.id)), 'another key\'s delete removed nothing');
  });

  it('takes two saves of one new name at once as one save and one 409', async () => {
    const body = { model: checkpoints[0].fine_tuned_model_checkpoint, name: 'raced' };
    const replies = await Promise.all([call(alice(), 'POST', '/v1/adapters', { json: body }), call(alice(), 'POST', '/v1/adapters', { json: body })]);
    assert.deepEqual(replies.map((r) => r.status).sort(), [201, 409]);
    const raced = (await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters')).body.data.filter((a) => a.name === 'raced');
    assert.equal(raced.length, 1);
    assert.equal((await call(alice(), 'DELETE', `/v1/adapters/${raced[0].id}`)).status, 200);
  });

  it('appears in /v1/models as kind "adapter"', async () => {
    const models = (await call<ListObject<ModelObject>>(alice(), 'GET', '/v1/models')).body.data;
    const model = models.find((m) => m.id === saved.id);
    assert.equal(model?.kind, 'adapter');
    assert.equal(model?.base_model, 'tiny-qwen2-1m');
    assert.equal(model?.job_id, job.id);
    assert.equal(model?.engine, 'embedded');
    assert.equal((await call<ModelObject>(alice(), 'GET', `/v1/models/${saved.id}`)).body.kind, 'adapter');
    assert.ok(!(await call<ListObject<ModelObject>>(bob(), 'GET', '/v1/models')).body.data.some((m) => m.kind === 'adapter'));
  });

  it('serves chat by its id and its name with the checkpoint\'s answer, from its own copy', async () => {
    const checkpoint = checkpoints.find((c) => c.id === saved.checkpoint_id);
    assert.ok(checkpoint);
    const expected = (await answer(checkpoint.fine_tuned_model_checkpoint)).choices[0].message.content;
    const base = (await answer('tiny-qwen2-1m')).choices[0].message.content;
    assert.notEqual(expected, base, 'the fine-tuned answer differs from the base model\'s, so the comparison means something');
    // The job's folder goes: the adapter is served from the backend's copy.
    rmSync(join(dir, 'jobs', job.id, 'engine'), { recursive: true, force: true });
    const byId = await answer(saved.id);
    assert.equal(byId.choices[0].message.content, expected);
    assert.equal(byId.model, saved.id);
    assert.equal((await answer('run-step4')).choices[0].message.content, expected);
    assert.equal((await call(alice(), 'POST', '/v1/adapters', { json: { model: checkpoint.fine_tuned_model_checkpoint, name: 'gone' } })).status, 404, 'no files left to copy');
  });
});

describe('authentication', () => {
  for (const [method, path] of [
    ['POST', '/v1/adapters'],
    ['GET', '/v1/adapters'],
    ['GET', '/v1/adapters/adapter-AAAAAAAAAAAAAAAAAAAAAAAA'],
    ['DELETE', '/v1/adapters/adapter-AAAAAAAAAAAAAAAAAAAAAAAA'],
  ] as const) {
    it(`${method} ${path} needs a key: 401`, async () => {
      const reply = await call<ErrorReply>(alice(), method, path, { key: null, ...(method === 'POST' ? { json: { model: 'x', name: 'y' } } : {}) });
      assert.equal(reply.status, 401, reply.text);
      assert.equal(reply.body.error.type, 'authentication_error');
    });
  }
});

describe('after a restart', () => {
  it('lists the same adapters, serves them, and clears what a crash left', async () => {
    const before = (await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters')).body.data;
    const kept = before.find((a) => a.name === 'run-step4');
    assert.ok(kept);
    const expected = (await answer(kept.id)).choices[0].message.content;
    await b.backend.close();

    // A copy cut short in staging; a folder without its record; a replace cut short (two of one name, the newer kept).
    mkdirSync(join(adaptersDir(), '.staging', 'adapter-BBBBBBBBBBBBBBBBBBBBBBBB'), { recursive: true });
    writeFileSync(join(adaptersDir(), '.staging', 'adapter-BBBBBBBBBBBBBBBBBBBBBBBB', 'adapter_model.safetensors'), 'partial');
    mkdirSync(join(adaptersDir(), 'adapter-CCCCCCCCCCCCCCCCCCCCCCCC'));
    const older = before.find((a) => a.name === 'final.v1');
    assert.ok(older);
    const newerId = 'adapter-DDDDDDDDDDDDDDDDDDDDDDDD';
    cpSync(join(adaptersDir(), older.id), join(adaptersDir(), newerId), { recursive: true });
    const record = JSON.parse(readFileSync(join(adaptersDir(), newerId, 'saved_adapter.json'), 'utf8')) as { adapter: SavedAdapter; created_ms: number };
    record.adapter.id = newerId;
    record.created_ms += 1;
    writeFileSync(join(adaptersDir(), newerId, 'saved_adapter.json'), JSON.stringify(record));

    b = await startTestBackend({ apiKeys: [KEY_A, KEY_B] }, dir);
    const after = (await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters')).body.data;
    // run-step4 was replaced after final.v1 was saved, so it stays the newest; the copy takes final.v1's place.
    assert.deepEqual(after.map((a) => a.id), [kept.id, newerId]);
    assert.deepEqual(after.find((a) => a.id === kept.id), kept);
    // A folder without a record is skipped (and left for a person to look at, never deleted blindly).
    assert.deepEqual(listed(), ['adapter-CCCCCCCCCCCCCCCCCCCCCCCC', newerId, kept.id].sort());
    assert.equal(existsSync(join(adaptersDir(), older.id)), false, 'the replaced one is removed');
    assert.deepEqual(readdirSync(join(adaptersDir(), '.staging')), []);
    assert.match(b.log.lines.join('\n'), /adapters: skipping adapter-CCCCCCCCCCCCCCCCCCCCCCCC/);
    assert.equal((await answer(kept.id)).choices[0].message.content, expected);
  });

  it('deletes an adapter: its files go, chat no longer finds it', async () => {
    const list = (await call<ListObject<SavedAdapter>>(alice(), 'GET', '/v1/adapters')).body.data;
    const target = list.find((a) => a.name === 'run-step4');
    assert.ok(target);
    const reply = await call<DeletedObject>(alice(), 'DELETE', `/v1/adapters/${target.id}`);
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(reply.body, { id: target.id, object: 'adapter', deleted: true });
    assert.equal(existsSync(join(adaptersDir(), target.id)), false);
    assert.equal((await call(alice(), 'GET', `/v1/adapters/${target.id}`)).status, 404);
    assert.equal((await call(alice(), 'DELETE', `/v1/adapters/${target.id}`)).status, 404);
    const chat = await call<ErrorReply>(alice(), 'POST', '/v1/chat/completions', { json: { model: 'run-step4', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(chat.status, 404);
    assert.equal(chat.body.error.code, 'model_not_found');
  });
});
