// The extension's BackendClient (src/backendClient.ts) against the real backend on loopback, with a job trained
// on the embedded engine: every method, upload progress and cancel (nothing kept), download with progress, chat
// streaming and abort. Then every error reason, each provoked for real: a closed port, a wrong key, a 404 and a
// refused dataset, tiny servers that answer malformed JSON or a wrong shape, and one that never answers.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FINAL_JOB_STATUSES, type FineTuningJob, type FineTuningJobEvent } from '../common/api';
import { ownerOf } from '../backend/http/auth';
import { BackendClient, type Progress } from '../src/backendClient';
import { BackendError, type BackendErrorReason } from '../src/backendErrors';
import { dataset, startTestBackend, type TestBackend, waitForFinal } from './backend.harness';

let b: TestBackend;
let client: BackendClient;
let work: string;

before(async () => {
  b = await startTestBackend();
  client = new BackendClient({ url: b.url, apiKey: b.key });
  work = mkdtempSync(join(tmpdir(), 'finetune-client-test-'));
});
after(async () => {
  await b.close();
  rmSync(work, { recursive: true, force: true });
});

/** Resolves with the BackendError a promise rejects with; fails the test if it resolves or throws anything else. */
async function failure(promise: Promise<unknown>, reason: BackendErrorReason): Promise<BackendError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(BackendError.is(error), `expected a BackendError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    return error;
  }
  assert.fail(`expected a '${reason}' failure, but the call succeeded`);
}

/** A server on 127.0.0.1:0 with the given handler; closed by the returned function. */
async function tinyServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Resolves once `dir` is empty (or absent), re-checking on every change the file system reports in it. */
async function emptied(dir: string, timeoutMs: number): Promise<void> {
  const isEmpty = (): boolean => !existsSync(dir) || readdirSync(dir).length === 0;
  if (isEmpty()) return;
  const watcher = watch(dir);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${dir} still holds ${readdirSync(dir).join(', ')} after ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        if (!isEmpty()) return;
        clearTimeout(timer);
        resolve();
      };
      watcher.on('change', check);
      watcher.on('error', check);
      check();
    });
  } finally {
    watcher.close();
  }
}

/**
 * Resolves once the job's final status event is stored. The job object turns final a moment before that event
 * is readable (waitForFinal watches the object), and this test compares whole event lists.
 */
async function finalEventStored(backend: TestBackend, jobId: string, timeoutMs = 30_000): Promise<void> {
  const runtime = backend.backend.runtime;
  const owner = ownerOf(backend.key);
  const isFinal = (e: FineTuningJobEvent): boolean => e.type === 'message' && FINAL_JOB_STATUSES.some((s) => s === e.data?.status);
  let stop = (): void => undefined;
  const seen = new Promise<void>((resolve) => {
    stop = runtime.watch({ event: (entry, event) => entry.job.id === jobId && isFinal(event) && resolve(), job: () => undefined, checkpoint: () => undefined });
  });
  try {
    const stored = (await runtime.listEvents(owner, jobId, 0, 10_000))?.data ?? [];
    if (stored.some(isFinal)) return;
    await Promise.race([seen, new Promise((_, reject) => setTimeout(() => reject(new Error(`no final event of ${jobId} in ${timeoutMs} ms`)), timeoutMs).unref())]);
  } finally {
    stop();
  }
}

const HYPERPARAMETERS = { n_epochs: 1, batch_size: 4, max_seq_length: 128, checkpoints: 2, eval_ratio: 0 };

describe('a job from upload to succeeded, through the client', () => {
  it('answers every route with checked, typed objects', async () => {
    const system = await client.system();
    assert.equal(system.object, 'system');
    assert.ok(system.engines.some((e) => e.id === 'embedded' && e.available));
    assert.equal(await client.hasSystem(), true);
    const models = await client.models();
    const tiny = models.find((m) => m.id === 'tiny-qwen2-1m');
    assert.equal(tiny?.kind, 'base');
    assert.equal((await client.model('tiny-qwen2-1m')).id, 'tiny-qwen2-1m');

    // Upload from disk, with progress as the bytes go.
    const path = join(work, 'train.jsonl');
    writeFileSync(path, dataset(12));
    const size = statSync(path).size;
    const progress: Progress[] = [];
    const file = await client.uploadFile(path, { onProgress: (p) => progress.push(p) });
    assert.equal(file.bytes, size);
    assert.equal(file.filename, 'train.jsonl');
    assert.equal(file.examples, 12);
    assert.deepEqual(progress.at(-1), { bytes: size, total: size });
    assert.ok(progress.every((p, i) => i === 0 || p.bytes > progress[i - 1].bytes), 'progress only grows');
    assert.deepEqual(await client.getFile(file.id), file);
    assert.ok((await client.listFiles()).data.some((f) => f.id === file.id));

    const job = await client.createJob({ model: 'tiny-qwen2-1m', training_file: file.id, suffix: 'client', method: { type: 'supervised', supervised: { hyperparameters: HYPERPARAMETERS } } });
    assert.match(job.id, /^ftjob-/);
    const second = await client.createJob({ model: 'tiny-qwen2-1m', training_file: file.id, method: { type: 'supervised', supervised: { hyperparameters: { ...HYPERPARAMETERS, n_epochs: 50 } } } });
    const cancelled = await client.cancelJob(second.id);
    assert.equal(cancelled.status, 'cancelled');
    const inUse = await failure(client.deleteFile(file.id), 'http');
    assert.equal(inUse.status, 409, 'the file of an unfinished job stays');

    // The pagination helper walks every page (one job per page here).
    const walked: FineTuningJob[] = [];
    for await (const j of client.allJobs(1)) walked.push(j);
    assert.deepEqual(walked.map((j) => j.id), [second.id, job.id]);
    assert.equal((await client.listJobs({ limit: 1 })).has_more, true);

    const final = await waitForFinal(b, ownerOf(b.key), job.id);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    await finalEventStored(b, job.id);
    const got = await client.getJob(job.id);
    assert.equal(got.status, 'succeeded');
    assert.ok(got.fine_tuned_model);

    const events = (await client.listEvents(job.id, 0, 1000)).data;
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
    assert.equal(events.length, (await client.getJob(job.id)).last_event_seq, 'the list ends at the job\'s last seq');
    assert.deepEqual(await client.eventsAfter(job.id, 0, 3), events, 'pages of 3, walked by seq');
    assert.deepEqual(await client.eventsAfter(job.id, 4, 2), events.slice(4));
    assert.deepEqual((await client.listEvents(job.id, events[1].id, 2)).data, events.slice(2, 4), 'an event id as the cursor');

    const checkpoints = (await client.listCheckpoints(job.id)).data;
    assert.equal(checkpoints.length, 2);
    const files = await client.checkpointFiles(job.id, checkpoints[0].id);
    assert.deepEqual(files.map((f) => f.name).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    const weights = files.find((f) => f.name === 'adapter_model.safetensors');
    assert.ok(weights);

    // Download: progress, then the file in place and nothing partial beside it.
    const downloads = join(work, 'downloads');
    rmSync(downloads, { recursive: true, force: true });
    mkdirSync(downloads);
    const destination = join(downloads, 'adapter_model.safetensors');
    const got2: Progress[] = [];
    const bytes = await client.downloadCheckpointFile(job.id, checkpoints[0].id, weights.name, destination, { onProgress: (p) => got2.push(p) });
    assert.equal(bytes, weights.bytes);
    assert.equal(statSync(destination).size, weights.bytes);
    assert.deepEqual(got2.at(-1), { bytes: weights.bytes, total: weights.bytes });
    assert.deepEqual(readdirSync(downloads), ['adapter_model.safetensors']);
    const missing = await failure(client.downloadCheckpointFile(job.id, checkpoints[0].id, 'nope.bin', join(downloads, 'nope.bin')), 'http');
    assert.equal(missing.status, 404);
    assert.deepEqual(readdirSync(downloads), ['adapter_model.safetensors'], 'a refused download leaves nothing');

    // Chat with the fine-tuned model, streamed.
    const pieces: string[] = [];
    const answer = await client.chat({ model: got.fine_tuned_model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, seed: 1 }, { onText: (p) => pieces.push(p) });
    assert.equal(pieces.join(''), answer.text);
    assert.ok(answer.finishReason === 'length' || answer.finishReason === 'stop');
    assert.ok(answer.usage && answer.usage.completion_tokens >= 1);

    assert.deepEqual(await client.deleteFile(file.id), { id: file.id, object: 'file', deleted: true });
    const gone = await failure(client.getFile(file.id), 'http');
    assert.equal(gone.status, 404);
    assert.equal(gone.apiError?.code, 'file_not_found');
  });

  it('cancels an upload: the request is aborted and the backend keeps nothing', async () => {
    const before = (await client.listFiles()).data.length;
    // ~8 MB, so that the abort lands while bytes are still going.
    const bytes = Buffer.from(dataset(120_000, 'big'));
    const abort = new AbortController();
    let seen = 0;
    const closed = b.log.waitFor(/POST \/v1\/files \d+\(closed\)|POST \/v1\/files 4\d\d/, 20_000);
    const error = await failure(
      client.uploadFile({ name: 'big.jsonl', bytes }, {
        signal: abort.signal,
        onProgress: (p) => {
          seen = p.bytes;
          if (p.bytes >= 1024 * 1024) abort.abort();
        },
      }),
      'cancelled',
    );
    assert.ok(seen < bytes.length, 'aborted before the end');
    assert.match(error.message, /cancelled/);
    await closed;
    assert.equal((await client.listFiles()).data.length, before);
    // The backend removes the partial upload once it has seen the request end: wait for the folder to empty.
    await emptied(join(b.dir, 'files', '.incoming'), 10_000);
  });

  it('aborts a streamed chat answer, which stops the generation on the backend', async () => {
    const abort = new AbortController();
    const pieces: string[] = [];
    const stopped = b.log.waitFor(/chat chatcmpl-\w+ on tiny-qwen2-1m stopped: the client went away/, 20_000);
    await failure(
      client.chat({ model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 3000, temperature: 1, seed: 3 }, {
        signal: abort.signal,
        onText: (p) => {
          pieces.push(p);
          abort.abort();
        },
      }),
      'cancelled',
    );
    assert.ok(pieces.length >= 1);
    await stopped;
  });
});

describe('saved adapters and the chat counters, through the client', () => {
  it('saves, lists, gets, chats with and deletes an adapter; the dataset\'s system prompt comes back', async () => {
    const prompt = 'You answer in one short sentence.';
    const lines = Array.from({ length: 8 }, (_, i) =>
      JSON.stringify({ messages: [{ role: 'system', content: prompt }, { role: 'user', content: `s question ${i}?` }, { role: 'assistant', content: `Answer ${i}.` }] }),
    );
    const file = await client.uploadFile({ name: 'system.jsonl', bytes: Buffer.from(`${lines.join('\n')}\n`) });
    assert.equal(file.system_prompt, prompt);
    assert.equal((await client.getFile(file.id)).system_prompt, prompt);

    const job = await client.createJob({ model: 'tiny-qwen2-1m', training_file: file.id, method: { type: 'supervised', supervised: { hyperparameters: HYPERPARAMETERS } } });
    const final = await waitForFinal(b, ownerOf(b.key), job.id);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    const [checkpoint] = (await client.listCheckpoints(job.id)).data;
    assert.ok(checkpoint);

    const before = await client.listAdapters();
    const saved = await client.saveAdapter({ model: checkpoint.fine_tuned_model_checkpoint, name: 'client-step', location: '/tmp/somewhere/client-step' });
    assert.equal(saved.object, 'adapter');
    assert.equal(saved.name, 'client-step');
    assert.equal(saved.checkpoint_id, checkpoint.id);
    assert.deepEqual(await client.getAdapter(saved.id), saved);
    assert.deepEqual(await client.listAdapters(), [saved, ...before]);
    const model = (await client.models()).find((m) => m.id === saved.id);
    assert.equal(model?.kind, 'adapter');
    assert.equal(model?.base_model, 'tiny-qwen2-1m');

    const taken = await failure(client.saveAdapter({ model: checkpoint.fine_tuned_model_checkpoint, name: 'client-step' }), 'http');
    assert.equal(taken.status, 409);
    assert.equal(taken.apiError?.code, 'adapter_exists');
    const badName = await failure(client.saveAdapter({ model: checkpoint.fine_tuned_model_checkpoint, name: 'a b' }), 'http');
    assert.equal(badName.apiError?.param, 'name');
    const replaced = await client.saveAdapter({ model: checkpoint.fine_tuned_model_checkpoint, name: 'client-step', overwrite: true });
    assert.notEqual(replaced.id, saved.id);
    assert.equal((await failure(client.getAdapter(saved.id), 'http')).status, 404);

    // Chat by name, counted as completed in /v1/system.
    const counts = (await client.system()).chat;
    assert.ok(counts);
    const greedy = { messages: [{ role: 'user' as const, content: 's question 2?' }], max_tokens: 6, temperature: 0, seed: 2 };
    const byName = await client.chat({ model: 'client-step', ...greedy });
    assert.equal(byName.text, (await client.chat({ model: checkpoint.fine_tuned_model_checkpoint, ...greedy })).text);
    const after = (await client.system()).chat;
    assert.deepEqual(after, { active: 0, completed: counts.completed + 2, stopped: counts.stopped });

    assert.deepEqual(await client.deleteAdapter(replaced.id), { id: replaced.id, object: 'adapter', deleted: true });
    assert.deepEqual(await client.listAdapters(), before);
    const gone = await failure(client.deleteAdapter(replaced.id), 'http');
    assert.equal(gone.apiError?.code, 'adapter_not_found');
  });

  it('a plain OpenAI-compatible service keeps no adapters (404 is an empty list); other failures still throw', async () => {
    let status = 404;
    const s = await tinyServer((req, res) => {
      if (req.url?.startsWith('/v1/system')) {
        // A backend from before the chat counters: the field is optional.
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'system', version: '0.1.0', engines: [], gpus: [], slots: 1, queue: { running: 0, queued: 0 } }));
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } }));
    });
    try {
      const plain = new BackendClient({ url: s.url, apiKey: 'k' });
      assert.deepEqual(await plain.listAdapters(), []);
      assert.equal((await plain.system()).chat, undefined);
      status = 500;
      assert.equal((await failure(plain.listAdapters(), 'http')).status, 500);
    } finally {
      await s.close();
    }
  });
});

describe('every error reason', () => {
  it('unreachable: a closed port', async () => {
    const s = await tinyServer((_, res) => res.end());
    await s.close();
    const error = await failure(new BackendClient({ url: s.url, apiKey: 'k' }).system(), 'unreachable');
    assert.match(error.message, /ECONNREFUSED/);
  });

  it('unauthorized: a wrong key, on requests and uploads', async () => {
    const wrong = new BackendClient({ url: b.url, apiKey: 'not-the-key-at-all' });
    const error = await failure(wrong.listJobs(), 'unauthorized');
    assert.equal(error.status, 401);
    assert.equal(error.apiError?.type, 'authentication_error');
    await failure(wrong.uploadFile({ name: 'a.jsonl', bytes: Buffer.from(dataset(2)) }), 'unauthorized');
  });

  it('http: a 404 with its body, and a refused dataset with its findings', async () => {
    const missing = await failure(client.getJob('ftjob-AAAAAAAAAAAAAAAAAAAAAAAA'), 'http');
    assert.equal(missing.status, 404);
    assert.equal(missing.apiError?.type, 'not_found_error');
    assert.equal(missing.apiError?.code, 'job_not_found');

    const bad = `${dataset(2)}{"messages": [}\n`;
    const refused = await failure(client.uploadFile({ name: 'bad.jsonl', bytes: Buffer.from(bad) }), 'http');
    assert.equal(refused.status, 400);
    assert.equal(refused.apiError?.code, 'invalid_dataset');
    assert.equal(refused.apiError?.param, 'file');
    assert.equal(refused.apiError?.findings?.[0]?.line, 3);
    assert.ok((refused.apiError?.total_findings ?? 0) >= 1);

    const badRequest = await failure(client.createJob({ model: 'tiny-qwen2-1m', training_file: 'file-AAAAAAAAAAAAAAAAAAAAAAAA' }), 'http');
    assert.equal(badRequest.apiError?.param, 'training_file');
  });

  it('http (404) from a plain OpenAI-compatible service tells hasSystem that it has no /v1/system', async () => {
    const s = await tinyServer((_, res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } })));
    try {
      assert.equal(await new BackendClient({ url: s.url, apiKey: 'k' }).hasSystem(), false);
    } finally {
      await s.close();
    }
  });

  it('protocol: malformed JSON, a wrong shape, a broken chat stream', async () => {
    const s = await tinyServer((req, res) => {
      if (req.url?.startsWith('/v1/system')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"object": "system", ');
      else if (req.url?.startsWith('/v1/fine_tuning/jobs')) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'ftjob-x', object: 'fine_tuning.job', created_at: 1, model: 'm', status: 'sleeping' }] }));
      else res.writeHead(200, { 'content-type': 'text/event-stream' }).end('data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"a"}}]}\n\n');
    });
    try {
      const odd = new BackendClient({ url: s.url, apiKey: 'k' });
      assert.match((await failure(odd.system(), 'protocol')).message, /not JSON/);
      const shape = await failure(odd.listJobs(), 'protocol');
      assert.match(shape.message, /'data\[0\]\.status' must be one of/);
      const pieces: string[] = [];
      assert.match((await failure(odd.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { onText: (p) => pieces.push(p) }), 'protocol')).message, /\[DONE\]/);
      assert.deepEqual(pieces, ['a']);
    } finally {
      await s.close();
    }
  });

  it('timeout and cancelled: a server that never answers', async () => {
    const s = await tinyServer(() => undefined);
    try {
      const slow = new BackendClient({ url: s.url, apiKey: 'k', timeoutMs: 200, idleTimeoutMs: 200 });
      assert.match((await failure(slow.getJob('ftjob-x'), 'timeout')).message, /no answer in time/);
      assert.match((await failure(slow.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }), 'timeout')).message, /stalled/);
      const patient = new BackendClient({ url: s.url, apiKey: 'k', timeoutMs: 60_000 });
      const abort = new AbortController();
      const pending = patient.listFiles({}, { signal: abort.signal });
      abort.abort();
      await failure(pending, 'cancelled');
      await failure(patient.listFiles({}, { signal: AbortSignal.abort() }), 'cancelled');
    } finally {
      await s.close();
    }
  });
});
