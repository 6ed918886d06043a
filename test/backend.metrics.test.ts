// `GET /v1/fine_tuning/jobs/{id}/metrics` (ours): a job's metrics events as columns, over real HTTP with jobs
// trained on the embedded engine. The columns equal the metrics events field by field; `after` gives only later
// rows; `last_seq` is the last event's seq (messages included); a running job's columns grow; a restarted backend
// (its cache rebuilt from the event log) answers the same bytes; another key's job is a 404, a bad `after` a 400
// naming it. Then the columnar table itself (backend/runtime/metricsTable.ts) on synthetic events across its
// cached blocks, and the cache's budget and idle limit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { METRICS_COLUMNS, type FileObject, type FineTuningJob, type FineTuningJobEvent, type FineTuningJobMetrics, type ListObject, type MetricsData } from '../common/api';
import { parseJobMetrics } from '../common/apiGuards';
import { ownerOf } from '../backend/http/auth';
import { BLOCK_ROWS, JobMetricsTable, MetricsCache } from '../backend/runtime/metricsTable';
import { call, dataset, type ErrorReply, startTestBackend, type TestBackend, upload, waitForFinal } from './backend.harness';

const KEY_A = 'fs-test-key-metrics-alice-0123456789ab';
const KEY_B = 'fs-test-key-metrics-bob-0123456789abcd';

let b: TestBackend;
const alice = (): { url: string; key: string } => ({ url: b.url, key: KEY_A });
const bob = (): { url: string; key: string } => ({ url: b.url, key: KEY_B });

/** Starts a job on the tiny model; resolves with it as created. */
async function startJob(file: string, epochs: number): Promise<FineTuningJob> {
  const created = await call<FineTuningJob>(alice(), 'POST', '/v1/fine_tuning/jobs', {
    json: {
      model: 'tiny-qwen2-1m',
      training_file: file,
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: epochs, batch_size: 4, max_seq_length: 128, checkpoints: 1, eval_ratio: 0.25 } } },
    },
  });
  assert.equal(created.status, 200, created.text);
  return created.body;
}

/** Every event of a job over HTTP, page by page. */
async function allEvents(jobId: string): Promise<FineTuningJobEvent[]> {
  const events: FineTuningJobEvent[] = [];
  for (;;) {
    const page = await call<ListObject<FineTuningJobEvent>>(alice(), 'GET', `/v1/fine_tuning/jobs/${jobId}/events?after=${events.length}&limit=1000`);
    assert.equal(page.status, 200, page.text);
    events.push(...page.body.data);
    if (!page.body.has_more) return events;
  }
}

/** `…/metrics`, checked by the client's guard; with the raw text for byte comparisons. */
async function metrics(jobId: string, query = ''): Promise<{ body: FineTuningJobMetrics; text: string }> {
  const reply = await call(alice(), 'GET', `/v1/fine_tuning/jobs/${jobId}/metrics${query}`);
  assert.equal(reply.status, 200, reply.text);
  assert.match(reply.headers.get('content-type') ?? '', /^application\/json/);
  return { body: parseJobMetrics(reply.body), text: reply.text };
}

/** The metrics events as the columns must hold them: one row per event, null where a field is absent. */
function expectedColumns(events: readonly FineTuningJobEvent[]): { seq: number[]; columns: Record<string, (number | null)[]> } {
  const rows = events.filter((e): e is FineTuningJobEvent & { type: 'metrics' } => e.type === 'metrics');
  const columns: Record<string, (number | null)[]> = {};
  for (const name of METRICS_COLUMNS) columns[name] = rows.map((e) => (typeof e.data[name] === 'number' && Number.isFinite(e.data[name]) ? (e.data[name] as number) : null));
  return { seq: rows.map((e) => e.seq), columns };
}

/** Resolves once the job has stored at least `n` metrics events (watching the runtime, never a timer). */
async function metricsStored(jobId: string, n: number, timeoutMs = 30_000): Promise<void> {
  const runtime = b.backend.runtime;
  const count = (events: readonly FineTuningJobEvent[]): number => events.filter((e) => e.type === 'metrics').length;
  let stop = (): void => undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      stop = runtime.watch({ event: (entry) => entry.job.id === jobId && count(entry.events) >= n && resolve(), job: () => undefined, checkpoint: () => undefined });
      timer = setTimeout(() => reject(new Error(`${jobId} did not store ${n} metrics events within ${timeoutMs} ms`)), timeoutMs);
      void runtime.listEvents(ownerOf(KEY_A), jobId, 0, 1_000_000).then((page) => count(page?.data ?? []) >= n && resolve());
    });
  } finally {
    clearTimeout(timer);
    stop();
  }
}

describe('GET …/metrics over HTTP', () => {
  let file: string;
  let finished: FineTuningJob;
  let finishedText: string;

  before(async () => {
    b = await startTestBackend({ apiKeys: [KEY_A, KEY_B] });
    file = ((await upload(alice(), dataset(16))).body as FileObject).id;
  });
  after(async () => {
    await b.close();
  });

  it('gives a finished run\'s metrics events as columns, field by field, with last_seq the last event\'s', async () => {
    finished = await waitForFinal(b, ownerOf(KEY_A), (await startJob(file, 2)).id);
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error));
    const events = await allEvents(finished.id);
    const { body, text } = await metrics(finished.id);
    finishedText = text;
    const expected = expectedColumns(events);
    assert.ok(expected.seq.length >= 6, `a run with a few steps (${expected.seq.length})`);
    assert.equal(body.object, 'fine_tuning.job.metrics');
    assert.equal(body.job_id, finished.id);
    assert.equal(body.count, expected.seq.length);
    assert.deepEqual(body.seq, expected.seq);
    assert.deepEqual(body.columns, expected.columns);
    assert.equal(body.last_seq, events.at(-1)?.seq, 'the last event, a message after the last metrics');
    assert.ok(body.last_seq > body.seq.at(-1)!, 'the run ends with messages (status, …)');
    assert.equal(body.last_seq, (await call<FineTuningJob>(alice(), 'GET', `/v1/fine_tuning/jobs/${finished.id}`)).body.last_event_seq);
    // The evaluation split gives valid_* at some steps and null between them; a CPU run has no GPU memory.
    assert.ok(body.columns.valid_loss.some((v) => v !== null), 'valid_loss at eval steps');
    assert.ok(body.columns.gpu_memory.every((v) => v === null), 'no gpu_memory on the CPU');
  });

  it('gives only the rows after `after` (a seq or an event id), and the same last_seq', async () => {
    const all = (await metrics(finished.id)).body;
    const middle = all.seq[Math.floor(all.count / 2)];
    const later = (await metrics(finished.id, `?after=${middle}`)).body;
    const rest = all.seq.findIndex((s) => s > middle);
    assert.deepEqual(later.seq, all.seq.slice(rest));
    for (const name of METRICS_COLUMNS) assert.deepEqual(later.columns[name], all.columns[name].slice(rest), name);
    assert.equal(later.count, all.count - rest);
    assert.equal(later.last_seq, all.last_seq);
    const events = await allEvents(finished.id);
    const byId = (await metrics(finished.id, `?after=${events[middle - 1].id}`)).body;
    assert.deepEqual(byId, later, 'an event id as the cursor');
    const none = (await metrics(finished.id, `?after=${all.last_seq}`)).body;
    assert.equal(none.count, 0);
    assert.deepEqual(none.seq, []);
    assert.deepEqual(none.columns.train_loss, []);
    assert.equal(none.last_seq, all.last_seq, 'nothing new: still where the stream goes on');
  });

  it('grows with a running job: each answer extends the one before', async () => {
    const job = await startJob(file, 40);
    await metricsStored(job.id, 3);
    const first = (await metrics(job.id)).body;
    await metricsStored(job.id, first.count + 3);
    const second = (await metrics(job.id)).body;
    assert.ok(second.count >= first.count + 3, `${first.count} rows, then ${second.count}`);
    assert.ok(second.last_seq > first.last_seq);
    assert.deepEqual(second.seq.slice(0, first.count), first.seq);
    for (const name of METRICS_COLUMNS) assert.deepEqual(second.columns[name].slice(0, first.count), first.columns[name], name);
    // After the first answer's last_seq: the rows the first answer did not have, and nothing else.
    const tail = (await metrics(job.id, `?after=${first.last_seq}`)).body;
    const third = (await metrics(job.id)).body;
    const newer = third.seq.findIndex((s) => s > first.last_seq);
    assert.equal(newer, first.count, 'the first answer had every row up to its last_seq');
    assert.deepEqual(tail.seq, third.seq.slice(newer, newer + tail.count));
    assert.deepEqual(tail.columns.train_loss, third.columns.train_loss.slice(newer, newer + tail.count));
    assert.equal((await call(alice(), 'POST', `/v1/fine_tuning/jobs/${job.id}/cancel`)).status, 200);
    const cancelled = await waitForFinal(b, ownerOf(KEY_A), job.id);
    assert.equal(cancelled.status, 'cancelled');
    await b.backend.runtime.runEnded(job.id);
    const events = await allEvents(job.id);
    const final = (await metrics(job.id)).body;
    assert.deepEqual({ seq: final.seq, columns: final.columns }, expectedColumns(events));
    assert.equal(final.last_seq, events.at(-1)?.seq);
  });

  it('refuses another key\'s job and a missing one with 404, and a bad `after` with 400 naming it', async () => {
    const theirs = await call<ErrorReply>(bob(), 'GET', `/v1/fine_tuning/jobs/${finished.id}/metrics`);
    assert.equal(theirs.status, 404);
    assert.equal(theirs.body.error.code, 'job_not_found');
    const missing = await call<ErrorReply>(alice(), 'GET', '/v1/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA/metrics');
    assert.equal(missing.status, 404);
    assert.equal((await call(alice(), 'GET', '/v1/fine_tuning/jobs/not-a-job/metrics')).status, 404);
    for (const bad of ['-1', 'abc', '1.5', 'ftevent-AAAAAAAAAAAAAAAAAAAAAAAA']) {
      const reply = await call<ErrorReply>(alice(), 'GET', `/v1/fine_tuning/jobs/${finished.id}/metrics?after=${bad}`);
      assert.equal(reply.status, 400, bad);
      assert.equal(reply.body.error.param, 'after', bad);
      assert.match(reply.body.error.message, /'after'/);
    }
    assert.equal((await call(alice(), 'GET', `/v1/fine_tuning/jobs/${finished.id}/metrics`, { key: null })).status, 401);
    assert.equal((await call(alice(), 'POST', `/v1/fine_tuning/jobs/${finished.id}/metrics`)).status, 405);
  });

  it('answers the same after a restart (the columns rebuilt from the event log), a resumed job\'s rows kept', async () => {
    const running = await startJob(file, 40);
    await metricsStored(running.id, 3);
    const before = (await metrics(running.id)).body;
    const dir = b.dir;
    await b.backend.close();
    b = await startTestBackend({ apiKeys: [KEY_A, KEY_B] }, dir);
    const again = await metrics(finished.id);
    assert.equal(again.text, finishedText, 'byte for byte');
    // The interrupted job resumes (its rows repeat steps from its checkpoint on); what it had stored is unchanged.
    const resumed = (await metrics(running.id)).body;
    assert.ok(resumed.last_seq >= before.last_seq);
    assert.deepEqual(resumed.seq.slice(0, before.count), before.seq);
    for (const name of METRICS_COLUMNS) assert.deepEqual(resumed.columns[name].slice(0, before.count), before.columns[name], name);
    assert.equal((await call(alice(), 'POST', `/v1/fine_tuning/jobs/${running.id}/cancel`)).status, 200);
    await waitForFinal(b, ownerOf(KEY_A), running.id);
    await b.backend.runtime.runEnded(running.id);
  });
});

// -----------------------------------------------------------------------------------------------------------
// The table and the cache, on synthetic events

function metricsEvent(seq: number, data: Partial<Record<keyof MetricsData, unknown>>): FineTuningJobEvent {
  return { id: `ftevent-${seq}`, object: 'fine_tuning.job.event', created_at: 0, level: 'info', message: '', seq, job_id: 'ftjob-x', type: 'metrics', data: data as MetricsData };
}

function messageEvent(seq: number): FineTuningJobEvent {
  return { id: `ftevent-${seq}`, object: 'fine_tuning.job.event', created_at: 0, level: 'info', message: 'note', seq, job_id: 'ftjob-x', type: 'message', data: null };
}

/** `n` events: mostly metrics with sparse valid_* and gpu_memory, a message every 7th, an odd value or two. */
function syntheticEvents(n: number, from = 1): FineTuningJobEvent[] {
  const events: FineTuningJobEvent[] = [];
  for (let seq = from; seq < from + n; seq++) {
    if (seq % 7 === 0) {
      events.push(messageEvent(seq));
      continue;
    }
    const data: Partial<Record<keyof MetricsData, unknown>> = {
      step: seq,
      total_steps: 99_999,
      epoch: seq / 333,
      train_loss: 3 / (1 + seq / 1000) + seq * 1e-9,
      train_mean_token_accuracy: 0.1 + seq / 1e5,
      learning_rate: 2e-4 * Math.cos(seq / 1e4),
      grad_norm: 1 + (seq % 13) / 7,
      tokens_per_second: 1234.5 + seq,
      elapsed: seq * 0.37,
    };
    if (seq % 50 === 0) Object.assign(data, { valid_loss: 2.5 - seq / 1e5, valid_mean_token_accuracy: 0.4 });
    if (seq % 3 === 0) data.gpu_memory = 1_000_000 + seq;
    if (seq === 11) data.train_loss = 'NaN';
    events.push(metricsEvent(seq, data));
  }
  return events;
}

describe('the columnar table', () => {
  it('gives exactly the events\' fields for any `after`, from cached blocks and fresh edges alike', () => {
    const events = syntheticEvents(3 * BLOCK_ROWS + 500);
    const table = new JobMetricsTable('ftjob-x');
    table.catchUp(events.slice(0, 10));
    table.catchUp(events);
    table.catchUp(events);
    assert.equal(table.lastSeq, events.length);
    for (const afterSeq of [0, 1, BLOCK_ROWS - 1, BLOCK_ROWS, BLOCK_ROWS + 3, 2 * BLOCK_ROWS + 1, events.length - 1, events.length, events.length + 5, 0]) {
      const expected = expectedColumns(events.filter((e) => e.seq > afterSeq));
      const text = table.slice(afterSeq).json;
      const body = parseJobMetrics(JSON.parse(text));
      assert.deepEqual(body.seq, expected.seq, `after ${afterSeq}`);
      assert.deepEqual(body.columns, expected.columns, `after ${afterSeq}`);
      assert.equal(body.count, expected.seq.length);
      assert.equal(body.last_seq, events.length);
    }
    // Catching up after more events extends the table; the text of the old rows is unchanged.
    const before = table.slice(0).json;
    const more = [...events, ...syntheticEvents(BLOCK_ROWS, events.length + 1)];
    table.catchUp(more);
    const grown = parseJobMetrics(JSON.parse(table.slice(0).json));
    assert.deepEqual(grown.seq, expectedColumns(more).seq);
    assert.deepEqual(grown.columns, expectedColumns(more).columns);
    assert.equal(grown.last_seq, more.length);
    const old = parseJobMetrics(JSON.parse(before));
    assert.deepEqual(grown.seq.slice(0, old.count), old.seq);
  });

  it('serves 100,000 steps again from its cached blocks much faster than the first time', () => {
    const events = syntheticEvents(100_000);
    const table = new JobMetricsTable('ftjob-x');
    let started = performance.now();
    table.catchUp(events);
    const first = table.slice(0).json;
    const firstMs = performance.now() - started;
    // The best of three: a garbage collection in one of them says nothing about the cache.
    let secondMs = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      started = performance.now();
      const again = table.slice(0).json;
      secondMs = Math.min(secondMs, performance.now() - started);
      assert.equal(again, first);
    }
    assert.ok(secondMs < firstMs / 3, `first ${firstMs.toFixed(0)} ms, again ${secondMs.toFixed(0)} ms`);
  });
});

describe('the cache', () => {
  const source = (id: string, n: number, status = 'succeeded'): { job: { id: string; status: string }; events: FineTuningJobEvent[] } => ({ job: { id, status }, events: syntheticEvents(n) });

  it('keeps tables within its budget, the least recently used going first, never the one asked for', () => {
    const a = source('ftjob-a', 3000);
    const b2 = source('ftjob-b', 3000);
    const c = source('ftjob-c', 3000);
    const probe = new MetricsCache();
    probe.slice(a, 0);
    const one = probe.heldBytes();
    const cache = new MetricsCache({ maxBytes: Math.floor(one * 2.5) });
    cache.slice(a, 0);
    cache.slice(b2, 0);
    assert.deepEqual(cache.heldJobs(), ['ftjob-a', 'ftjob-b']);
    cache.slice(a, 0);
    cache.slice(c, 0);
    assert.deepEqual(cache.heldJobs(), ['ftjob-a', 'ftjob-c'], 'b was the least recently used');
    const tiny = new MetricsCache({ maxBytes: 1 });
    assert.equal(tiny.slice(a, 0).count, expectedColumns(a.events).seq.length, 'over budget on its own: still answered');
    assert.deepEqual(tiny.heldJobs(), ['ftjob-a']);
  });

  it('takes in a running job\'s events as they are recorded, and leaves other jobs\' to their first request', () => {
    const cache = new MetricsCache();
    const running = source('ftjob-r', 10, 'running');
    const events = syntheticEvents(2 * BLOCK_ROWS + 10);
    for (let n = 1; n <= events.length; n += 97) {
      running.events = events.slice(0, n);
      cache.recorded(running);
    }
    running.events = events;
    cache.recorded(running);
    cache.recorded(source('ftjob-done', 10));
    assert.deepEqual(cache.heldJobs(), ['ftjob-r'], 'only the running job');
    const body = parseJobMetrics(JSON.parse(cache.slice(running, 0).json));
    assert.deepEqual(body.seq, expectedColumns(events).seq);
    assert.deepEqual(body.columns, expectedColumns(events).columns);
  });

  it('drops a table not asked for in a while', () => {
    let now = 0;
    const cache = new MetricsCache({ idleMs: 1000, now: () => now });
    cache.slice(source('ftjob-a', 10), 0);
    now = 500;
    cache.slice(source('ftjob-b', 10), 0);
    now = 1200;
    cache.slice(source('ftjob-c', 10), 0);
    assert.deepEqual(cache.heldJobs(), ['ftjob-b', 'ftjob-c']);
  });
});
