// The API's routes over real HTTP: every refused request's status and body (table-driven), job requests
// checked field by field (unknown parameters, values out of range, defaults filled in), the job routes wired to
// the runtime (create, get, list, events, cancel, checkpoints), models, system and chat completions.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChatCompletion, ChatCompletionChunk, CheckpointFile, FileObject, FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, ListObject, ModelObject, SystemInfo } from '../common/api';
import { LORA_TARGET_MODULES } from '../common/api';
import { TINY_MODELS } from '../backend/engines/embedded/catalog';
import { ownerOf } from '../backend/http/auth';
import { call, dataset, type ErrorReply, startTestBackend, type TestBackend, upload, waitForEngine, waitForFinal } from './backend.harness';

let b: TestBackend;
let file: FileObject;
let validation: FileObject;
const jobs: FineTuningJob[] = [];

before(async () => {
  b = await startTestBackend();
  // A Qwen2 model folder under an organisation's name, as the hub has them (no weights: listed, not available).
  const folder = join(b.dir, 'models', 'acme', 'qwen2-folder');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...TINY_MODELS[0].config, hidden_size: 896, num_attention_heads: 14, max_position_embeddings: 32768 }));
  file = (await upload(b, dataset(6))).body as FileObject;
  validation = (await upload(b, dataset(2, 'valid'))).body as FileObject;
});
after(async () => {
  for (const job of jobs) await call(b, 'POST', `/v1/fine_tuning/jobs/${job.id}/cancel`);
  await b.close();
});

/** Creates a job that stays queued behind the first one (one slot) and is cancelled at the end. */
async function createJob(body: Record<string, unknown>): Promise<FineTuningJob> {
  const reply = await call<FineTuningJob>(b, 'POST', '/v1/fine_tuning/jobs', { json: { model: 'tiny-qwen2-1m', training_file: file.id, ...body } });
  assert.equal(reply.status, 200, reply.text);
  jobs.push(reply.body);
  return reply.body;
}

describe('refused requests', () => {
  const big = JSON.stringify({ model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'x'.repeat(1100 * 1024) }] });
  const cases: { name: string; method: string; path: string; options?: Parameters<typeof call>[3]; status: number; type: string; code: string; param?: string | null; allow?: string }[] = [
    { name: 'unknown route', method: 'GET', path: '/v1/nothing', status: 404, type: 'not_found_error', code: 'unknown_route' },
    { name: 'unknown route without a key', method: 'GET', path: '/v2/files', options: { key: null }, status: 404, type: 'not_found_error', code: 'unknown_route' },
    { name: 'wrong method', method: 'PUT', path: '/v1/files', status: 405, type: 'invalid_request_error', code: 'method_not_allowed', allow: 'GET, POST, HEAD' },
    { name: 'wrong method on a job', method: 'DELETE', path: '/v1/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', status: 405, type: 'invalid_request_error', code: 'method_not_allowed', allow: 'GET, HEAD' },
    { name: 'a job body that is not JSON', method: 'POST', path: '/v1/fine_tuning/jobs', options: { body: 'model=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, type: 'unsupported_media_type', code: 'unsupported_media_type' },
    { name: 'a job body without a type', method: 'POST', path: '/v1/fine_tuning/jobs', options: { body: '{}' }, status: 415, type: 'unsupported_media_type', code: 'unsupported_media_type' },
    { name: 'malformed JSON', method: 'POST', path: '/v1/fine_tuning/jobs', options: { body: '{\n  "model": "x",\n  "training_file" "f"\n}', headers: { 'content-type': 'application/json' } }, status: 400, type: 'invalid_request_error', code: 'invalid_json' },
    { name: 'a JSON array', method: 'POST', path: '/v1/fine_tuning/jobs', options: { json: [] }, status: 400, type: 'invalid_request_error', code: 'invalid_json' },
    { name: 'an empty body', method: 'POST', path: '/v1/chat/completions', options: { body: '', headers: { 'content-type': 'application/json' } }, status: 400, type: 'invalid_request_error', code: 'invalid_json' },
    { name: 'a body over 1 MiB', method: 'POST', path: '/v1/chat/completions', options: { body: big, headers: { 'content-type': 'application/json' } }, status: 413, type: 'payload_too_large', code: 'payload_too_large' },
    { name: 'a malformed job id', method: 'GET', path: '/v1/fine_tuning/jobs/ftjob-..%2F..', status: 404, type: 'not_found_error', code: 'job_not_found' },
    { name: 'a missing job', method: 'GET', path: '/v1/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', status: 404, type: 'not_found_error', code: 'job_not_found' },
    { name: 'cancel of a missing job', method: 'POST', path: '/v1/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA/cancel', status: 404, type: 'not_found_error', code: 'job_not_found' },
    { name: 'events of a missing job', method: 'GET', path: '/v1/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA/events', status: 404, type: 'not_found_error', code: 'job_not_found' },
    { name: 'checkpoints of a file id', method: 'GET', path: '/v1/fine_tuning/jobs/file-AAAAAAAAAAAAAAAAAAAAAAAA/checkpoints', status: 404, type: 'not_found_error', code: 'job_not_found' },
    { name: 'an unknown model', method: 'GET', path: '/v1/models/gpt-5', status: 404, type: 'not_found_error', code: 'model_not_found', param: 'model' },
    { name: 'a job list with limit=101', method: 'GET', path: '/v1/fine_tuning/jobs?limit=101', status: 400, type: 'invalid_request_error', code: 'invalid_value', param: 'limit' },
    { name: 'a job list after a non-job id', method: 'GET', path: '/v1/fine_tuning/jobs?after=file-AAAAAAAAAAAAAAAAAAAAAAAA', status: 400, type: 'invalid_request_error', code: 'invalid_value', param: 'after' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.status} ${c.code}`, async () => {
      const reply = await call<ErrorReply>(b, c.method, c.path, c.options);
      assert.equal(reply.status, c.status, reply.text);
      assert.equal(reply.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.deepEqual(Object.keys(reply.body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(reply.body.error.type, c.type);
      assert.equal(reply.body.error.code, c.code);
      assert.ok(reply.body.error.message.length > 10);
      if (c.param !== undefined) assert.equal(reply.body.error.param, c.param);
      if (c.allow !== undefined) assert.equal(reply.headers.get('allow'), c.allow);
    });
  }

  it('says where JSON is broken', async () => {
    const reply = await call<ErrorReply>(b, 'POST', '/v1/fine_tuning/jobs', { body: '{\n  "model": "x",\n  "training_file" "f"\n}', headers: { 'content-type': 'application/json' } });
    assert.match(reply.body.error.message, /line 3, column 19/);
  });
});

describe('job requests', () => {
  const HP = 'method.supervised.hyperparameters';
  const bad: { name: string; body: Record<string, unknown>; param: string; code: string }[] = [
    { name: 'no model', body: { model: undefined }, param: 'model', code: 'missing_required_parameter' },
    { name: 'no training file', body: { training_file: undefined }, param: 'training_file', code: 'missing_required_parameter' },
    { name: 'an unknown top-level parameter', body: { epochs: 3 }, param: 'epochs', code: 'unknown_parameter' },
    { name: 'an unknown hyper-parameter', body: { method: { type: 'supervised', supervised: { hyperparameters: { lora_rank: 8 } } } }, param: `${HP}.lora_rank`, code: 'unknown_parameter' },
    { name: 'an unknown training_type', body: { method: { type: 'supervised', supervised: { hyperparameters: { training_type: 'qlora' } } } }, param: `${HP}.training_type`, code: 'invalid_value' },
    { name: 'an unknown field in method', body: { method: { type: 'supervised', dpo: {} } }, param: 'method.dpo', code: 'unknown_parameter' },
    { name: 'another method', body: { method: { type: 'dpo' } }, param: 'method.type', code: 'invalid_value' },
    { name: 'an unknown model', body: { model: 'gpt-4o' }, param: 'model', code: 'model_not_found' },
    { name: 'a model without weights', body: { model: 'acme/qwen2-folder' }, param: 'model', code: 'model_unavailable' },
    { name: 'a missing training file', body: { training_file: 'file-AAAAAAAAAAAAAAAAAAAAAAAA' }, param: 'training_file', code: 'file_not_found' },
    { name: 'a malformed training file id', body: { training_file: '../../etc/passwd' }, param: 'training_file', code: 'file_not_found' },
    { name: 'a missing validation file', body: { validation_file: 'file-AAAAAAAAAAAAAAAAAAAAAAAA' }, param: 'validation_file', code: 'file_not_found' },
    { name: 'a suffix too long', body: { suffix: 'x'.repeat(65) }, param: 'suffix', code: 'invalid_value' },
    { name: 'a suffix with a space', body: { suffix: 'my model' }, param: 'suffix', code: 'invalid_value' },
    { name: 'a negative seed', body: { seed: -1 }, param: 'seed', code: 'invalid_value' },
    { name: 'metadata with 17 pairs', body: { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, param: 'metadata', code: 'invalid_value' },
    { name: 'a metadata value that is a number', body: { metadata: { run: 1 } }, param: 'metadata.run', code: 'invalid_value' },
    { name: 'GPUs for a CPU engine', body: { gpus: 1 }, param: 'gpus', code: 'invalid_value' },
  ];
  const ranges: [string, unknown][] = [
    ['n_epochs', 0],
    ['n_epochs', 101],
    ['n_epochs', 1.5],
    ['n_epochs', 'three'],
    ['batch_size', 0],
    ['batch_size', 1025],
    ['learning_rate', 0],
    ['learning_rate', 1.5],
    ['learning_rate_multiplier', 0],
    ['learning_rate_multiplier', 1000],
    ['max_seq_length', 15],
    ['max_seq_length', 4097],
    ['warmup_ratio', 0.6],
    ['warmup_ratio', -0.1],
    ['lr_scheduler', 'step'],
    ['lora_r', 0],
    ['lora_r', 257],
    ['lora_alpha', 0],
    ['lora_alpha', 2000],
    ['lora_dropout', 0.6],
    ['lora_target_modules', []],
    ['lora_target_modules', ['q_proj', 'q_proj']],
    ['lora_target_modules', ['lm_head']],
    ['checkpoints', 0],
    ['checkpoints', 101],
    ['eval_ratio', 0.51],
  ];
  for (const [name, value] of ranges) {
    // The schema names the item at fault in a list of modules.
    const param = name === 'lora_target_modules' && Array.isArray(value) && value[0] === 'lm_head' ? `${HP}.${name}[0]` : `${HP}.${name}`;
    bad.push({ name: `${name} = ${JSON.stringify(value)}`, body: { method: { type: 'supervised', supervised: { hyperparameters: { [name]: value } } } }, param, code: 'invalid_value' });
  }
  bad.push({ name: 'lora_r out of range in the top-level hyperparameters', body: { hyperparameters: { lora_r: 0 } }, param: 'hyperparameters.lora_r', code: 'invalid_value' });

  for (const c of bad) {
    it(`refuses ${c.name}: 400 ${c.code} naming ${c.param}`, async () => {
      const body = { model: 'tiny-qwen2-1m', training_file: file.id, ...c.body };
      const reply = await call<ErrorReply>(b, 'POST', '/v1/fine_tuning/jobs', { json: body });
      assert.equal(reply.status, 400, reply.text);
      assert.equal(reply.body.error.type, 'invalid_request_error');
      assert.equal(reply.body.error.param, c.param);
      assert.equal(reply.body.error.code, c.code);
    });
  }

  it('fills in every hyper-parameter from the model\'s defaults and shows them on the job', async () => {
    const job = await createJob({ suffix: 'bikes', metadata: { team: 'shop' } });
    const tiny = TINY_MODELS[0];
    assert.match(job.id, /^ftjob-[A-Za-z0-9]{24}$/);
    assert.equal(job.object, 'fine_tuning.job');
    assert.equal(job.model, tiny.id);
    assert.equal(job.engine, 'embedded');
    assert.equal(job.gpus, 0);
    assert.equal(job.organization_id, 'org-local');
    assert.equal(job.fine_tuned_model, null);
    assert.equal(job.training_file, file.id);
    assert.equal(job.validation_file, null);
    assert.equal(job.suffix, 'bikes');
    assert.equal(job.user_provided_suffix, 'bikes');
    assert.deepEqual(job.metadata, { team: 'shop' });
    assert.ok(Number.isInteger(job.seed));
    assert.ok(['queued', 'running'].includes(job.status), job.status);
    assert.deepEqual(job.hyperparameters, {
      n_epochs: tiny.defaults.n_epochs,
      batch_size: tiny.defaults.batch_size,
      learning_rate: tiny.defaults.learning_rate,
      learning_rate_multiplier: 1,
      max_seq_length: tiny.defaults.max_seq_length,
      warmup_ratio: 0.05,
      lr_scheduler: 'cosine',
      training_type: 'lora',
      lora_r: 16,
      lora_alpha: 32,
      lora_dropout: 0.05,
      lora_target_modules: [...LORA_TARGET_MODULES],
      checkpoints: 3,
      eval_ratio: 0.1,
    });
    assert.deepEqual(job.method, { type: 'supervised', supervised: { hyperparameters: job.hyperparameters } });
  });

  it('takes "auto", scales the default learning rate by the multiplier, makes alpha 2 × r, and lets method win', async () => {
    const job = await createJob({
      seed: 7,
      validation_file: validation.id,
      hyperparameters: { n_epochs: 9, lora_dropout: 0.1 },
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 'auto', batch_size: 'auto', learning_rate_multiplier: 0.5, lora_r: 4, lora_target_modules: ['q_proj', 'v_proj'], lr_scheduler: 'linear' } } },
    });
    const h = job.hyperparameters;
    assert.equal(job.seed, 7);
    assert.equal(job.validation_file, validation.id);
    assert.equal(h.n_epochs, 3);
    assert.equal(h.batch_size, 8);
    assert.equal(h.learning_rate, 1e-3);
    assert.equal(h.learning_rate_multiplier, 0.5);
    assert.equal(h.lora_r, 4);
    assert.equal(h.lora_alpha, 8);
    assert.equal(h.lora_dropout, 0.1);
    assert.deepEqual(h.lora_target_modules, ['q_proj', 'v_proj']);
    assert.equal(h.lr_scheduler, 'linear');
    // A validation file replaces the held-out share.
    assert.equal(h.eval_ratio, 0);
  });

  it('an explicit learning rate wins over the multiplier, which then reports the ratio', async () => {
    const job = await createJob({ hyperparameters: { learning_rate: 4e-3, learning_rate_multiplier: 10 } });
    assert.equal(job.hyperparameters.learning_rate, 4e-3);
    assert.equal(job.hyperparameters.learning_rate_multiplier, 2);
  });
});

describe('job routes', () => {
  it('get, list (newest first, paged), events after a seq or an event id, checkpoints, cancel', async () => {
    const first = await createJob({ suffix: 'first', metadata: { kind: 'a' } });
    const second = await createJob({ suffix: 'second', metadata: { kind: 'b' } });

    const got = await call<FineTuningJob>(b, 'GET', `/v1/fine_tuning/jobs/${first.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.id, first.id);

    const list = await call<ListObject<FineTuningJob>>(b, 'GET', '/v1/fine_tuning/jobs?limit=2');
    assert.deepEqual(
      list.body.data.map((j) => j.id),
      [second.id, first.id],
    );
    assert.equal(list.body.has_more, true);
    const filtered = await call<ListObject<FineTuningJob>>(b, 'GET', '/v1/fine_tuning/jobs?metadata[kind]=a');
    assert.deepEqual(
      filtered.body.data.map((j) => j.id),
      [first.id],
    );

    const events = await call<ListObject<FineTuningJobEvent>>(b, 'GET', `/v1/fine_tuning/jobs/${second.id}/events?limit=1000`);
    assert.equal(events.status, 200);
    assert.ok(events.body.data.length >= 1);
    assert.deepEqual(
      events.body.data.map((e) => e.seq),
      events.body.data.map((_, i) => i + 1),
    );
    const firstEvent = events.body.data[0];
    const afterSeq = await call<ListObject<FineTuningJobEvent>>(b, 'GET', `/v1/fine_tuning/jobs/${second.id}/events?after=1&limit=1000`);
    const afterId = await call<ListObject<FineTuningJobEvent>>(b, 'GET', `/v1/fine_tuning/jobs/${second.id}/events?after=${firstEvent.id}&limit=1000`);
    assert.deepEqual(afterId.body.data, afterSeq.body.data);
    assert.ok(afterSeq.body.data.every((e) => e.seq > 1));
    for (const after of ['ftevent-AAAAAAAAAAAAAAAAAAAAAAAA', 'latest', '-1']) {
      const refused = await call<ErrorReply>(b, 'GET', `/v1/fine_tuning/jobs/${second.id}/events?after=${after}`);
      assert.equal(refused.status, 400, after);
      assert.equal(refused.body.error.param, 'after');
    }

    const checkpoints = await call<ListObject<unknown>>(b, 'GET', `/v1/fine_tuning/jobs/${second.id}/checkpoints`);
    assert.equal(checkpoints.status, 200);
    assert.equal(checkpoints.body.object, 'list');
    const noCheckpoint = await call<ErrorReply>(b, 'GET', `/v1/fine_tuning/jobs/${second.id}/checkpoints/ftckpt-AAAAAAAAAAAAAAAAAAAAAAAA/files`);
    assert.equal(noCheckpoint.status, 404);
    assert.equal(noCheckpoint.body.error.code, 'checkpoint_not_found');

    // The second job waits behind the first (one slot): cancelling it is immediate.
    const cancelled = await call<FineTuningJob>(b, 'POST', `/v1/fine_tuning/jobs/${second.id}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'cancelled');
    assert.ok(cancelled.body.finished_at !== null);
    const again = await call<FineTuningJob>(b, 'POST', `/v1/fine_tuning/jobs/${second.id}/cancel`);
    assert.equal(again.body.status, 'cancelled');
  });
});

describe('models and system', () => {
  it('lists the built-in models with their defaults, and model folders by their hub ids', async () => {
    const reply = await call<ListObject<ModelObject>>(b, 'GET', '/v1/models');
    assert.equal(reply.status, 200);
    const ids = reply.body.data.map((m) => m.id);
    assert.deepEqual(ids.slice(0, TINY_MODELS.length), TINY_MODELS.map((m) => m.id));
    const tiny = reply.body.data[0];
    assert.equal(tiny.kind, 'base');
    assert.equal(tiny.engine, 'embedded');
    assert.equal(tiny.available, true);
    assert.equal(tiny.context_length, 4096);
    assert.ok((tiny.parameters ?? 0) > 500_000);
    assert.ok((tiny.memory_required ?? 0) > (tiny.parameters ?? 0) * 4);
    assert.equal(tiny.default_hyperparameters?.learning_rate, 2e-3);
    const folder = reply.body.data.find((m) => m.id === 'acme/qwen2-folder');
    assert.ok(folder);
    assert.equal(folder.available, false);
    assert.match(folder.unavailable_reason ?? '', /model\.safetensors/);
    assert.equal(folder.context_length, 32768);
    assert.equal(folder.default_hyperparameters?.max_seq_length, 2048);

    const one = await call<ModelObject>(b, 'GET', '/v1/models/acme/qwen2-folder');
    assert.equal(one.status, 200);
    assert.equal(one.body.id, 'acme/qwen2-folder');

    // The torch engine's Qwen2.5 catalogue: every size, with its parameters and the memory LoRA needs in bf16,
    // unavailable here (no GPU engine, no downloaded weights) with the reason.
    const qwen = reply.body.data.filter((m) => m.id.startsWith('Qwen/Qwen2.5-'));
    assert.deepEqual(qwen.map((m) => m.id), ['0.5B', '1.5B', '3B', '7B', '14B', '32B'].map((size) => `Qwen/Qwen2.5-${size}-Instruct`));
    const sizes = [0.49e9, 1.54e9, 3.09e9, 7.62e9, 14.77e9, 32.76e9];
    qwen.forEach((m, i) => {
      assert.equal(m.engine, 'torch');
      assert.ok(Math.abs((m.parameters ?? 0) / sizes[i] - 1) < 0.02, `${m.id}: ${m.parameters} parameters`);
      assert.ok((m.memory_required ?? 0) > (m.parameters ?? 0) * 2, `${m.id}: bf16 weights and more`);
      assert.equal(m.available, false);
      assert.match(m.unavailable_reason ?? '', /torch engine cannot run here|is not on this machine/);
    });
  });

  it('/v1/system reports the engines, slots, queue and the package version', async () => {
    const reply = await call<SystemInfo>(b, 'GET', '/v1/system');
    assert.equal(reply.status, 200);
    const version = (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(reply.body.object, 'system');
    assert.equal(reply.body.version, version);
    assert.ok(reply.body.engines.some((e) => e.id === 'embedded' && e.available));
    assert.ok(reply.body.slots >= 1);
    assert.equal(typeof reply.body.queue.queued, 'number');
    assert.deepEqual(Object.keys(reply.body.chat ?? {}).sort(), ['active', 'completed', 'stopped']);
  });
});

/** `/v1/system`'s chat counters. */
async function chatCounts(): Promise<NonNullable<SystemInfo['chat']>> {
  const reply = await call<SystemInfo>(b, 'GET', '/v1/system');
  assert.ok(reply.body.chat, reply.text);
  return reply.body.chat;
}

/** Polls the chat counters until `done` holds for them, or fails after `timeoutMs` with the last ones seen. */
async function chatCountsUntil(done: (c: NonNullable<SystemInfo['chat']>) => boolean, timeoutMs = 10_000): Promise<NonNullable<SystemInfo['chat']>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await chatCounts();
    if (done(counts)) return counts;
    if (Date.now() > deadline) assert.fail(`the chat counters did not get there within ${timeoutMs} ms: ${JSON.stringify(counts)}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

describe('chat completions', () => {
  const refusals: { name: string; body: Record<string, unknown>; status: number; param: string; code: string }[] = [
    { name: 'no messages', body: { messages: [] }, status: 400, param: 'messages', code: 'invalid_value' },
    { name: 'a bad role', body: { messages: [{ role: 'bot', content: 'hi' }] }, status: 400, param: 'messages[0].role', code: 'invalid_value' },
    { name: 'content parts', body: { messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] }, status: 400, param: 'messages[0].content', code: 'invalid_value' },
    { name: 'five stop strings', body: { stop: ['a', 'b', 'c', 'd', 'e'] }, status: 400, param: 'stop', code: 'invalid_value' },
    { name: 'temperature 3', body: { temperature: 3 }, status: 400, param: 'temperature', code: 'invalid_value' },
    { name: 'top_p 0', body: { top_p: 0 }, status: 400, param: 'top_p', code: 'invalid_value' },
    { name: 'max_tokens 0', body: { max_tokens: 0 }, status: 400, param: 'max_tokens', code: 'invalid_value' },
    { name: 'an unknown parameter', body: { logprobs: true }, status: 400, param: 'logprobs', code: 'unknown_parameter' },
    { name: 'an unknown model', body: { model: 'ft:tiny-qwen2-1m:x:ftjob-AAAAAAAAAAAAAAAAAAAAAAAA' }, status: 404, param: 'model', code: 'model_not_found' },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name}: ${r.status} naming ${r.param}`, async () => {
      const reply = await call<ErrorReply>(b, 'POST', '/v1/chat/completions', { json: { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'hi' }], ...r.body } });
      assert.equal(reply.status, r.status, reply.text);
      assert.equal(reply.body.error.param, r.param);
      assert.equal(reply.body.error.code, r.code);
    });
  }

  it('answers a base model whole, with usage', async () => {
    const reply = await call<ChatCompletion>(b, 'POST', '/v1/chat/completions', {
      json: { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0, seed: 1 },
    });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.body.object, 'chat.completion');
    assert.match(reply.body.id, /^chatcmpl-/);
    assert.equal(reply.body.model, 'tiny-qwen2-1m');
    assert.equal(reply.body.choices[0].message.role, 'assistant');
    assert.ok(['stop', 'length'].includes(reply.body.choices[0].finish_reason));
    assert.ok(reply.body.usage.completion_tokens <= 8);
    assert.equal(reply.body.usage.total_tokens, reply.body.usage.prompt_tokens + reply.body.usage.completion_tokens);
  });

  it('streams server-sent chunks: role first, content deltas, finish reason with usage, then [DONE]', async () => {
    const body = { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0, seed: 1 };
    const whole = await call<ChatCompletion>(b, 'POST', '/v1/chat/completions', { json: body });
    const reply = await call(b, 'POST', '/v1/chat/completions', { json: { ...body, stream: true } });
    assert.equal(reply.status, 200);
    assert.match(reply.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = reply.text.split('\n\n').filter((e) => e !== '');
    assert.ok(events.every((e) => e.startsWith('data: ')));
    assert.equal(events[events.length - 1], 'data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as ChatCompletionChunk);
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
    const last = chunks[chunks.length - 1];
    assert.ok(last.choices[0].finish_reason !== null);
    assert.ok(last.usage);
    const text = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    // Greedy with the same seed: the stream spells the same answer as the whole one.
    assert.equal(text, whole.body.choices[0].message.content);
  });
});

describe('a client that goes away', () => {
  it('closing a streamed answer ends the request on the server, and the engine takes the next one', async () => {
    const abort = new AbortController();
    const closed = b.log.waitFor(/POST \/v1\/chat\/completions 200\(closed\)/, 20_000);
    const response = await fetch(`${b.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${b.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 3000, temperature: 1, seed: 3, stream: true }),
      signal: abort.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader);
    await reader.read();
    abort.abort();
    await reader.cancel().catch(() => undefined);
    await closed;
    const next = await call<ChatCompletion>(b, 'POST', '/v1/chat/completions', { json: { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, seed: 1 } });
    assert.equal(next.status, 200, next.text);
  });
});

describe('chat counters in /v1/system', () => {
  it('counts a finished answer as completed, and a stream aborted mid-way as stopped, with nothing left active', async () => {
    const start = await chatCounts();
    assert.equal(start.active, 0);
    const whole = await call(b, 'POST', '/v1/chat/completions', { json: { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, seed: 1 } });
    assert.equal(whole.status, 200, whole.text);
    assert.deepEqual(await chatCounts(), { active: 0, completed: start.completed + 1, stopped: start.stopped });

    const abort = new AbortController();
    const response = await fetch(`${b.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${b.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 4000, temperature: 1, seed: 5, stream: true }),
      signal: abort.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader);
    // The first chunk is written once the engine has produced the first piece: the generation is under way.
    await reader.read();
    const during = await chatCounts();
    assert.equal(during.active, 1, 'the generation is counted while it runs');
    abort.abort();
    await reader.cancel().catch(() => undefined);
    const end = await chatCountsUntil((c) => c.active === 0 && c.stopped === start.stopped + 1);
    assert.equal(end.completed, start.completed + 1, 'the stopped one is not counted as completed');
  });
});

describe('the running job', () => {
  it('the first job runs on the engine and can be cancelled', async () => {
    // The queued ones first, newest first, so that none of them starts when the slot frees up.
    for (const queued of jobs.slice(1).reverse()) {
      assert.equal((await call<FineTuningJob>(b, 'POST', `/v1/fine_tuning/jobs/${queued.id}/cancel`)).body.status, 'cancelled');
    }
    const job = jobs[0];
    await waitForEngine(b, job.id);
    const cancelled = await call<FineTuningJob>(b, 'POST', `/v1/fine_tuning/jobs/${job.id}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'cancelled');
  });
});

describe('a finished job', () => {
  it('lists its checkpoints and their files, streams the adapter, and serves its fine-tuned model in chat', async () => {
    const job = await createJob({
      suffix: 'done',
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 8, max_seq_length: 256, checkpoints: 1, eval_ratio: 0 } } },
    });
    const final = await waitForFinal(b, ownerOf(b.key), job.id);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    assert.ok(final.fine_tuned_model);

    const checkpoints = await call<ListObject<FineTuningJobCheckpoint>>(b, 'GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints`);
    assert.equal(checkpoints.status, 200);
    assert.ok(checkpoints.body.data.length >= 1);
    const checkpoint = checkpoints.body.data[0];
    assert.match(checkpoint.id, /^ftckpt-/);

    const files = await call<ListObject<CheckpointFile>>(b, 'GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints/${checkpoint.id}/files`);
    assert.equal(files.status, 200);
    assert.deepEqual(files.body.data.map((f) => f.name).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.ok(files.body.data.every((f) => !('path' in f)));
    const config = await call<{ peft_type: string }>(b, 'GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints/${checkpoint.id}/files/adapter_config.json`);
    assert.equal(config.status, 200);
    assert.equal(config.body.peft_type, 'LORA');
    const weights = await fetch(`${b.url}/v1/fine_tuning/jobs/${job.id}/checkpoints/${checkpoint.id}/files/adapter_model.safetensors`, { headers: { authorization: `Bearer ${b.key}` } });
    assert.equal(weights.status, 200);
    assert.equal(weights.headers.get('content-type'), 'application/octet-stream');
    const bytes = Buffer.from(await weights.arrayBuffer());
    assert.equal(bytes.length, files.body.data.find((f) => f.name === 'adapter_model.safetensors')?.bytes);
    for (const name of ['model.safetensors', '..%2Fjob.json', 'resume_state.json']) {
      const refused = await call<ErrorReply>(b, 'GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints/${checkpoint.id}/files/${name}`);
      assert.equal(refused.status, 404, name);
    }

    const models = await call<ListObject<ModelObject>>(b, 'GET', '/v1/models');
    assert.ok(models.body.data.some((m) => m.id === final.fine_tuned_model && m.kind === 'fine-tuned'));
    const answer = await call<ChatCompletion>(b, 'POST', '/v1/chat/completions', { json: { model: final.fine_tuned_model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, seed: 1 } });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.model, final.fine_tuned_model);
  });
});

describe('chat engine failures (a fault-injecting engine)', () => {
  let faulty: TestBackend;
  before(async () => {
    // The runtime's well-behaved stand-in engine: it echoes, and exits when asked "crash!" — a crash no real request provokes.
    faulty = await startTestBackend({ runtimeExtra: { engineScripts: { embedded: join(__dirname, 'fixtures', 'engines', 'steady.mjs') } } });
  });
  after(async () => {
    await faulty.close();
  });

  it('a client that closes a streamed answer stops the generation on the engine', async () => {
    // 4000 characters at one every 5 ms: 20 s unless the stop reaches the engine.
    const abort = new AbortController();
    const response = await fetch(`${faulty.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${faulty.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'x'.repeat(4000) }], max_tokens: 5000, stream: true }),
      signal: abort.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader);
    let text = '';
    while (!text.includes('"content":"e"')) text += Buffer.from((await reader.read()).value ?? []).toString();
    const stopped = faulty.log.waitFor(/chat chatcmpl-\w+ on tiny-qwen2-1m stopped: the client went away/, 5_000);
    abort.abort();
    await reader.cancel().catch(() => undefined);
    await stopped;
  });

  for (const stream of [false, true]) {
    it(`an engine that crashes before the first token is an HTTP 500 engine_error (stream: ${stream}), and the next request is served`, async () => {
      const reply = await call<ErrorReply>(faulty, 'POST', '/v1/chat/completions', { json: { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'crash!' }], stream } });
      assert.equal(reply.status, 500, reply.text);
      assert.equal(reply.body.error.type, 'server_error');
      assert.equal(reply.body.error.code, 'engine_error');
      const next = await call(faulty, 'POST', '/v1/chat/completions', { json: { model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'hello' }], stream } });
      assert.equal(next.status, 200, next.text);
      assert.match(next.text, stream ? /"content":"o"/ : /echo\(base\): hello/);
    });
  }
});
