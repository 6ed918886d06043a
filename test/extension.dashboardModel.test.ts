// The run dashboard's logic (src/dashboardModel.ts): the metrics table built from events and from `…/metrics`
// columns (dedupe by seq, columnar batches, sparse valid_* columns), the history reader against a real backend
// (one metrics request; event pages from a backend without the route, found out once), the ETA, the header's
// settings, the sample split, and the CSV.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { METRICS_COLUMNS, type FileObject, type FineTuningJob, type FineTuningJobCheckpoint, type FineTuningJobEvent, type FineTuningJobMetrics, type MetricsData } from '../common/api';
import { ownerOf } from '../backend/http/auth';
import { BackendClient } from '../src/backendClient';
import { BackendError } from '../src/backendErrors';
import { checkpointView, estimateFinish, exportFileName, headerView, HistoryReader, MetricsTable, metricsCsv, MISSING_ROUTE_MEMORY_MS, sampleView, settingsRows } from '../src/dashboardModel';
import { call, dataset, startTestBackend, type TestBackend, upload, waitForFinal } from './backend.harness';

function metrics(seq: number, step: number, extra: Partial<MetricsData> = {}): FineTuningJobEvent {
  const data: MetricsData = {
    step,
    total_steps: 100,
    epoch: step / 50,
    train_loss: 3 - step / 100,
    train_mean_token_accuracy: step / 200,
    learning_rate: 1e-4,
    grad_norm: 1 + step / 10,
    tokens_per_second: 1000 + step,
    elapsed: step * 0.5,
    ...extra,
  };
  return { id: `ftevent-${seq}`, object: 'fine_tuning.job.event', created_at: 0, level: 'info', message: '', seq, job_id: 'ftjob-x', type: 'metrics', data };
}

function message(seq: number): FineTuningJobEvent {
  return { id: `ftevent-${seq}`, object: 'fine_tuning.job.event', created_at: 0, level: 'info', message: 'hello', seq, job_id: 'ftjob-x', type: 'message' };
}

function job(overrides: Partial<FineTuningJob> = {}): FineTuningJob {
  const hyperparameters = {
    n_epochs: 2,
    batch_size: 4,
    learning_rate: 2e-4,
    learning_rate_multiplier: 1,
    max_seq_length: 1024,
    warmup_ratio: 0.03,
    lr_scheduler: 'cosine' as const,
    training_type: 'lora' as const,
    lora_r: 16,
    lora_alpha: 32,
    lora_dropout: 0.05,
    lora_target_modules: ['q_proj' as const, 'v_proj' as const],
    checkpoints: 3,
    eval_ratio: 0.1,
  };
  return {
    id: 'ftjob-abcdefghijklmnopqrstuvwx',
    object: 'fine_tuning.job',
    created_at: 1000,
    finished_at: null,
    model: 'tiny-qwen2-1m',
    fine_tuned_model: null,
    organization_id: 'org',
    status: 'running',
    training_file: 'file-1',
    validation_file: null,
    hyperparameters,
    method: { type: 'supervised', supervised: { hyperparameters } },
    result_files: [],
    trained_tokens: 12345,
    error: null,
    seed: 42,
    suffix: 'my-run',
    metadata: null,
    estimated_finish: null,
    integrations: [],
    user_provided_suffix: 'my-run',
    started_at: 1010,
    queue_position: null,
    engine: 'embedded',
    gpus: 0,
    progress: { step: 10, total_steps: 100, epoch: 0.2 },
    last_event_seq: 10,
    ...overrides,
  };
}

describe('MetricsTable', () => {
  it('keeps one row per metrics event, ignoring repeated seqs, messages and steps that go back', () => {
    const table = new MetricsTable();
    assert.equal(table.apply(message(1)), false);
    assert.equal(table.apply(metrics(2, 1)), true);
    assert.equal(table.apply(metrics(3, 2)), true);
    assert.equal(table.apply(metrics(3, 2)), false, 'the same seq twice (history and live overlap)');
    assert.equal(table.apply(metrics(2, 1)), false, 'an older seq');
    assert.equal(table.apply(metrics(4, 2)), false, 'a repeated step (a resumed run)');
    assert.equal(table.apply(metrics(5, 3)), true);
    assert.deepEqual(table.step, [1, 2, 3]);
    assert.equal(table.lastSeq, 5);
    assert.equal(table.last?.step, 3);
  });

  it('hands out columnar batches once, with sparse columns as NaN and absent metrics left out', () => {
    const table = new MetricsTable();
    table.apply(metrics(1, 1));
    table.apply(metrics(2, 2, { valid_loss: 2.5, valid_mean_token_accuracy: 0.4 }));
    table.apply(metrics(3, 3));
    const batch = table.takeBatch();
    assert.ok(batch);
    assert.deepEqual([...batch.step], [1, 2, 3]);
    assert.deepEqual([...batch.time], [0.5, 1, 1.5]);
    assert.deepEqual([...(batch.values.valid_loss ?? [])], [Number.NaN, 2.5, Number.NaN]);
    assert.deepEqual([...(batch.values.train_loss ?? [])], [2.99, 2.98, 2.97]);
    assert.equal(batch.values.gpu_memory, undefined, 'a CPU run has no GPU memory column');
    assert.equal(table.takeBatch(), undefined, 'nothing new');
    table.apply(metrics(4, 4));
    assert.deepEqual([...(table.takeBatch()?.step ?? [])], [4]);
    table.resend();
    assert.deepEqual([...(table.takeBatch(2)?.step ?? [])], [1, 2], 'at most maxRows per batch');
    assert.deepEqual([...(table.takeBatch(2)?.step ?? [])], [3, 4]);
    assert.equal(table.takeBatch(2), undefined);
  });

  it('takes 100,000 steps and batches them quickly', () => {
    const table = new MetricsTable();
    const started = performance.now();
    for (let i = 1; i <= 100_000; i++) table.apply(metrics(i, i, i % 100 === 0 ? { valid_loss: 1 } : {}));
    let rows = 0;
    for (let batch = table.takeBatch(); batch !== undefined; batch = table.takeBatch()) rows += batch.step.length;
    assert.equal(rows, 100_000);
    assert.ok(performance.now() - started < 2000, `took ${(performance.now() - started).toFixed(0)} ms`);
  });
});

/** A `…/metrics` answer made from events, as the backend makes it (one row per metrics event, null where absent). */
function columnsOf(events: readonly FineTuningJobEvent[], afterSeq = 0): FineTuningJobMetrics {
  const rows = events.filter((e): e is FineTuningJobEvent & { type: 'metrics' } => e.type === 'metrics' && e.seq > afterSeq);
  const columns = Object.fromEntries(METRICS_COLUMNS.map((name) => [name, rows.map((e) => e.data[name] ?? null)])) as FineTuningJobMetrics['columns'];
  return { object: 'fine_tuning.job.metrics', job_id: 'ftjob-x', last_seq: Math.max(afterSeq, ...events.map((e) => e.seq)), count: rows.length, columns, seq: rows.map((e) => e.seq) };
}

/** What a table holds, for comparing two. */
function contents(table: MetricsTable): unknown {
  return { step: table.step, time: table.time, epoch: table.epoch, values: table.values, lastSeq: table.lastSeq, last: table.last };
}

describe('MetricsTable from columns', () => {
  // A run resumed from its checkpoint at step 2 repeats steps 3 and 4; messages come between and after.
  const history = [
    message(1),
    metrics(2, 1),
    metrics(3, 2, { valid_loss: 2.5, valid_mean_token_accuracy: 0.4 }),
    metrics(4, 3),
    message(5),
    metrics(6, 4, { gpu_memory: 123 }),
    message(7),
    metrics(8, 3),
    metrics(9, 4),
    metrics(10, 5, { valid_loss: 2.25 }),
    message(11),
  ];

  it('holds exactly what the same history as events gives: rows, sparse columns, last seq and last metrics', () => {
    const fromEvents = new MetricsTable();
    for (const event of history) fromEvents.apply(event);
    const fromColumns = new MetricsTable();
    assert.equal(fromColumns.applyColumns(columnsOf(history)), 5, 'the repeated steps are skipped');
    assert.deepEqual(contents(fromColumns), contents(fromEvents));
    assert.equal(fromColumns.lastSeq, 11, 'the last event, a message');
    assert.deepEqual(fromColumns.last, (history[9] as { data: MetricsData }).data);
    assert.deepEqual([...(fromColumns.takeBatch()?.values.valid_loss ?? [])], [Number.NaN, 2.5, Number.NaN, Number.NaN, 2.25]);
  });

  it('takes live events after the history only once: those up to last_seq are dropped, later ones added', () => {
    const table = new MetricsTable();
    table.applyColumns(columnsOf(history.slice(0, 6)));
    assert.equal(table.lastSeq, 6);
    // The live stream overlaps the history (buffered while it was read), then goes on.
    for (const event of history.slice(3, 6)) assert.equal(table.apply(event), false, `seq ${event.seq} was in the history`);
    for (const event of history.slice(6)) table.apply(event);
    const whole = new MetricsTable();
    for (const event of history) whole.apply(event);
    assert.deepEqual(contents(table), contents(whole));
  });

  it('fills a gap from columns after the rows it has, skipping what it has already', () => {
    const table = new MetricsTable();
    for (const event of history.slice(0, 4)) table.apply(event);
    // The answer starts at an earlier seq than the table's last: the overlap is not added twice.
    assert.equal(table.applyColumns(columnsOf(history, 2)), 2, 'seq 6 (step 4) and 10 (step 5); 8 and 9 repeat steps');
    const whole = new MetricsTable();
    for (const event of history) whole.apply(event);
    assert.deepEqual(contents(table), contents(whole));
    assert.equal(new MetricsTable().applyColumns(columnsOf([message(1), message(2)])), 0, 'no metrics yet');
  });

  it('takes a 100,000-step history from columns quickly', () => {
    const events: FineTuningJobEvent[] = [];
    for (let i = 1; i <= 100_000; i++) events.push(metrics(i, i, i % 100 === 0 ? { valid_loss: 1 } : {}));
    const answer = columnsOf(events);
    const table = new MetricsTable();
    const started = performance.now();
    assert.equal(table.applyColumns(answer), 100_000);
    const ms = performance.now() - started;
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    assert.equal(table.values.train_loss.length, 100_000);
  });
});

/**
 * A loopback proxy in front of a real backend that counts the requests by route; `old: true` makes it a backend
 * from before `…/metrics`: that path is passed on renamed, so the 404 is the real router's answer to a route it
 * does not know.
 */
async function proxyTo(target: string, old: boolean): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const to = new URL(target);
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.push(path.split('?')[0].replace(/ftjob-[A-Za-z0-9]+/, 'ftjob-…'));
    const forwarded = old ? path.replace(/\/metrics(\?|$)/, '/metrics-unknown$1') : path;
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: forwarded, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('HistoryReader against a real backend', () => {
  let b: TestBackend;
  let jobId: string;
  let events: FineTuningJobEvent[];
  const options = { knownLastSeq: 0, stopped: () => false, onRows: () => undefined };

  before(async () => {
    b = await startTestBackend();
    const file = ((await upload(b, dataset(16))).body as FileObject).id;
    const created = await call<FineTuningJob>(b, 'POST', '/v1/fine_tuning/jobs', {
      json: { model: 'tiny-qwen2-1m', training_file: file, method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 3, batch_size: 4, max_seq_length: 128, checkpoints: 1, eval_ratio: 0.25 } } } },
    });
    assert.equal(created.status, 200, created.text);
    const job = await waitForFinal(b, ownerOf(b.key), created.body.id);
    assert.equal(job.status, 'succeeded');
    jobId = job.id;
    await b.backend.runtime.runEnded(jobId);
    events = (await b.backend.runtime.listEvents(ownerOf(b.key), jobId, 0, 100_000))?.data ?? [];
  });
  after(async () => {
    await b.close();
  });

  const fromEvents = (upTo = Number.POSITIVE_INFINITY): MetricsTable => {
    const table = new MetricsTable();
    for (const event of events) if (event.seq <= upTo) table.apply(event);
    return table;
  };

  it('reads a history with one metrics request, the same table as its events give', async () => {
    const proxy = await proxyTo(b.url, false);
    try {
      const table = new MetricsTable();
      let flushes = 0;
      const read = await new HistoryReader().read(new BackendClient({ url: proxy.url, apiKey: b.key }), jobId, table, { ...options, onRows: () => flushes++ });
      assert.deepEqual(read, { via: 'metrics', read: fromEvents().length, fellBack: false });
      assert.deepEqual(proxy.hits, ['/v1/fine_tuning/jobs/ftjob-…/metrics']);
      assert.deepEqual(contents(table), contents(fromEvents()));
      assert.equal(table.lastSeq, events.at(-1)?.seq);
      assert.equal(flushes, 1);
    } finally {
      await proxy.close();
    }
  });

  it('catches up after a gap with the rows after the table\'s last seq', async () => {
    const table = fromEvents(8);
    const read = await new HistoryReader().read(new BackendClient({ url: b.url, apiKey: b.key }), jobId, table, options);
    assert.equal(read.via, 'metrics');
    assert.equal(read.read, events.filter((e) => e.type === 'metrics' && e.seq > 8).length);
    assert.deepEqual(contents(table), contents(fromEvents()));
  });

  it('falls back to event pages on a backend without the route, quietly, finding that out once in a while', async () => {
    const proxy = await proxyTo(b.url, true);
    try {
      let now = 1_000_000;
      const reader = new HistoryReader(() => now);
      const client = new BackendClient({ url: proxy.url, apiKey: b.key });
      const table = new MetricsTable();
      const read = await reader.read(client, jobId, table, options);
      assert.deepEqual(read, { via: 'events', read: events.length, fellBack: true });
      assert.deepEqual(contents(table), contents(fromEvents()));
      assert.equal(reader.lacksMetrics(proxy.url), true);
      // Another dashboard of the same backend: straight to the events.
      const again = new MetricsTable();
      assert.deepEqual(await reader.read(client, jobId, again, options), { via: 'events', read: events.length, fellBack: false });
      assert.deepEqual(contents(again), contents(fromEvents()));
      assert.deepEqual(proxy.hits.filter((h) => h.endsWith('/metrics')), ['/v1/fine_tuning/jobs/ftjob-…/metrics'], 'asked once');
      assert.ok(proxy.hits.filter((h) => h.endsWith('/events')).length >= 2);
      // The real backend is still asked for metrics by the same reader.
      assert.equal((await reader.read(new BackendClient({ url: b.url, apiKey: b.key }), jobId, new MetricsTable(), options)).via, 'metrics');
      // Ten minutes on, the backend (which may have been upgraded) is asked again.
      now += MISSING_ROUTE_MEMORY_MS - 1;
      assert.equal(reader.lacksMetrics(proxy.url), true);
      now += 1;
      assert.equal(reader.lacksMetrics(proxy.url), false);
      assert.deepEqual(await reader.read(client, jobId, new MetricsTable(), options), { via: 'events', read: events.length, fellBack: true });
      assert.equal(proxy.hits.filter((h) => h.endsWith('/metrics')).length, 2, 'asked again');
    } finally {
      await proxy.close();
    }
  });

  it('does not take a missing job for a missing route', async () => {
    const reader = new HistoryReader();
    const client = new BackendClient({ url: b.url, apiKey: b.key });
    await assert.rejects(reader.read(client, 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', new MetricsTable(), options), (error: unknown) => {
      assert.ok(BackendError.is(error));
      assert.equal(error.status, 404);
      assert.equal(error.details.apiError?.code, 'job_not_found');
      return true;
    });
    assert.equal(reader.lacksMetrics(b.url), false);
  });
});

describe('the header', () => {
  it('takes the backend\'s estimate when it gives one, else extrapolates from the last metrics', () => {
    const last = (metrics(1, 20) as { data: MetricsData }).data;
    assert.equal(estimateFinish(job({ estimated_finish: 5000 }), last), 5000);
    // 20 steps in 10 s: 100 steps take 50 s from the start at 1010.
    assert.equal(estimateFinish(job(), last), 1060);
    assert.equal(estimateFinish(job({ status: 'succeeded' }), last), null);
    assert.equal(estimateFinish(job(), undefined), null);
    assert.equal(estimateFinish(job({ status: 'queued', started_at: null }), last), null);
  });

  it('lists the settings used, the seed and the training file', () => {
    const rows = settingsRows(job(), 'data.jsonl');
    const byLabel = new Map(rows.map((r) => [r.label, r.value]));
    assert.equal(byLabel.get('Learning rate'), '2e-4');
    assert.equal(byLabel.get('LoRA rank'), '16');
    assert.equal(byLabel.get('LoRA target modules'), 'q_proj, v_proj');
    assert.equal(byLabel.get('Seed'), '42');
    assert.equal(byLabel.get('Training file'), 'data.jsonl (file-1)');
  });

  it('shows name, progress, tokens and the error of a failed run', () => {
    const view = headerView({ index: 0, backend: 'local', job: job({ status: 'failed', error: { code: 'nan_loss', message: 'The loss is NaN.', param: null } }), last: undefined, trainingFile: undefined, loading: false, loadError: null });
    assert.equal(view.name, 'my-run');
    assert.equal(view.step, 10);
    assert.equal(view.totalSteps, 100);
    assert.equal(view.tokens, '12,345');
    assert.equal(view.final, true);
    assert.equal(view.error, 'The loss is NaN. (nan_loss)');
    assert.equal(view.note, null);
  });

  it('shows a running run\'s latest message until its first step', () => {
    const base = { index: 0, backend: 'local', last: undefined, trainingFile: undefined, loading: false, loadError: null };
    const downloading = 'downloading Qwen/Qwen2.5-7B-Instruct: 3.1 GB of 15.2 GB';
    const starting = job({ status: 'running', progress: null });
    assert.equal(headerView({ ...base, job: starting, lastMessage: downloading }).note, downloading);
    assert.equal(headerView({ ...base, job: starting }).note, null);
    assert.equal(headerView({ ...base, job: job({ status: 'running' }), lastMessage: downloading }).note, null, 'steps are counted: no note');
    assert.equal(headerView({ ...base, job: job({ status: 'cancelled', progress: null }), lastMessage: downloading }).note, null);
  });
});

describe('checkpoints', () => {
  const checkpoint: FineTuningJobCheckpoint = {
    id: 'ftckpt-1',
    object: 'fine_tuning.job.checkpoint',
    created_at: 0,
    fine_tuned_model_checkpoint: 'ft:tiny:ckpt-step-4',
    fine_tuning_job_id: 'ftjob-x',
    metrics: { step: 4, train_loss: 1.23456, train_mean_token_accuracy: 0.5, valid_loss: 1.5 },
    step_number: 4,
    sample: {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'Add 1 and 2' },
      ],
      reference: '3',
      answer: '4',
    },
  };

  it('splits the sample into the system prompt, the turns up to the last user turn, the reference and the answer', () => {
    const view = checkpointView(checkpoint);
    assert.equal(view.step, 4);
    assert.deepEqual(view.sample, {
      system: 'Be brief.',
      prompt: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'Add 1 and 2' },
      ],
      reference: '3',
      answer: '4',
    });
    assert.deepEqual(view.metrics.map((m) => m.value), ['1.235', '1.500', '50.0%']);
    assert.equal(sampleView(null), null);
    assert.equal(sampleView({ messages: [{ role: 'user', content: 'x' }], reference: 'r', answer: 'a' })?.system, null);
  });
});

describe('CSV', () => {
  it('has a header row and one row per step and run, empty cells where a step has no value', () => {
    const one = new MetricsTable();
    one.apply(metrics(1, 1));
    one.apply(metrics(2, 2, { valid_loss: 2.5 }));
    const two = new MetricsTable();
    two.apply(metrics(1, 1, { train_loss: 0.5 }));
    const csv = metricsCsv([
      { name: 'a,"b"', jobId: 'ftjob-1', table: one },
      { name: 'two', jobId: 'ftjob-2', table: two },
    ]);
    const lines = csv.trimEnd().split('\r\n');
    assert.equal(lines[0], 'run,job_id,step,epoch,elapsed,train_loss,valid_loss,train_mean_token_accuracy,valid_mean_token_accuracy,learning_rate,grad_norm,tokens_per_second,gpu_memory');
    assert.equal(lines.length, 4);
    assert.equal(lines[1], '"a,""b""",ftjob-1,1,0.02,0.5,2.99,,0.005,,0.0001,1.1,1001,');
    assert.equal(lines[2].split(',')[6 + 1], '2.5', 'valid_loss (the quoted name holds a comma)');
    assert.match(lines[3], /^two,ftjob-2,1,/);
    assert.ok(csv.endsWith('\r\n'));
  });

  it('names exports after the runs, safely', () => {
    assert.equal(exportFileName(['my run', 'b/c'], 'csv', 'metrics'), 'my_run-vs-b_c-metrics.csv');
    assert.equal(exportFileName([], 'png'), 'run.png');
  });
});
