// The runs tree's refresh policy (src/runsRefresh.ts), without VS Code: a row is refreshed only when what it
// shows changes; a running run's progress at most once per interval (leading and trailing edge, the latest values
// landing), a status, a menu or a new checkpoint at once. A fake clock drives the timers. The last case measures
// the refreshes of a real 200-step run on a real backend, against what the tree did before (one per change).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FineTuningJob, FineTuningJobCheckpoint, JobStatus, MetricsEvent } from '../common/api';
import { BackendClient } from '../src/backendClient';
import { JobEventStream } from '../src/backendEvents';
import { RunsModel } from '../src/runsModel';
import { RowRefresher, RunsTreeRefresh, type RefreshClock, type RefreshTarget, type RowSignature } from '../src/runsRefresh';
import { startTestBackend, type TestBackend } from './backend.harness';
import { FIXTURE_JOB_ID as ID, fixtureJob } from './jobFixture';

/** Timers that run when the test advances the time. */
class FakeClock implements RefreshClock {
  private time = 1_000_000;
  private next = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.time + ms, callback });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  pending(): number {
    return this.timers.size;
  }

  /** Moves the time on, running the timers that fall due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = end;
  }
}

const sig = (fixed: string, progress = ''): RowSignature => ({ fixed, progress });

describe('RowRefresher', () => {
  function setup(): { clock: FakeClock; rows: RowRefresher; fired: { key: string; at: number }[] } {
    const clock = new FakeClock();
    const fired: { key: string; at: number }[] = [];
    const rows = new RowRefresher((key) => fired.push({ key, at: clock.now() }), { clock, intervalMs: 1000 });
    return { clock, rows, fired };
  }

  it('refreshes a row never handed over at once, and not again for the same view', () => {
    const { rows, fired } = setup();
    assert.equal(rows.changed('a', sig('x', '1')), 'now');
    assert.equal(rows.changed('a', sig('x', '1')), 'none');
    assert.deepEqual(fired.map((f) => f.key), ['a']);
  });

  it('compares with what getTreeItem handed to VS Code', () => {
    const { rows, fired } = setup();
    rows.rendered('a', sig('x', '1'));
    assert.equal(rows.changed('a', sig('x', '1')), 'none');
    assert.equal(fired.length, 0);
  });

  it('throttles progress to one refresh per interval: leading edge, then the latest values at its end', () => {
    const { clock, rows, fired } = setup();
    rows.rendered('a', sig('running', 'step 0'));
    clock.advance(5000);
    // Leading edge: the interval since the last render has passed.
    assert.equal(rows.changed('a', sig('running', 'step 1')), 'now');
    const start = clock.now();
    for (let step = 2; step <= 20; step++) {
      clock.advance(50);
      assert.equal(rows.changed('a', sig('running', `step ${step}`)), 'later');
    }
    assert.equal(fired.length, 1);
    clock.advance(1000);
    // Trailing edge: one refresh, one interval after the leading one.
    assert.deepEqual(fired.map((f) => f.at - start), [0, 1000]);
    assert.equal(clock.pending(), 0);
    // What it handed over is step 20: the same again needs nothing.
    assert.equal(rows.changed('a', sig('running', 'step 20')), 'none');
  });

  it('lands a fixed change (status, menu, children) at once, and drops the pending progress refresh', () => {
    const { clock, rows, fired } = setup();
    rows.changed('a', sig('running', 'step 1'));
    clock.advance(100);
    assert.equal(rows.changed('a', sig('running', 'step 2')), 'later');
    clock.advance(100);
    assert.equal(rows.changed('a', sig('succeeded', 'done')), 'now');
    assert.equal(clock.pending(), 0);
    clock.advance(5000);
    assert.deepEqual(fired.map((f) => f.at), [1_000_000, 1_000_200]);
  });

  it('drops a pending refresh when VS Code rendered the same values meanwhile (a parent refresh) or they came back', () => {
    const { clock, rows, fired } = setup();
    rows.changed('a', sig('running', 'step 1'));
    clock.advance(100);
    rows.changed('a', sig('running', 'step 2'));
    rows.rendered('a', sig('running', 'step 2'));
    assert.equal(clock.pending(), 0);
    clock.advance(100);
    rows.changed('a', sig('running', 'step 3'));
    assert.equal(clock.pending(), 1);
    assert.equal(rows.changed('a', sig('running', 'step 2')), 'none');
    assert.equal(clock.pending(), 0);
    clock.advance(5000);
    assert.equal(fired.length, 1);
  });

  it('forgets a row with its pending refresh; dispose drops every timer', () => {
    const { clock, rows, fired } = setup();
    rows.changed('a', sig('x', '1'));
    rows.changed('b', sig('x', '1'));
    rows.changed('a', sig('x', '2'));
    rows.changed('b', sig('x', '2'));
    assert.equal(clock.pending(), 2);
    rows.forget('a');
    assert.equal(clock.pending(), 1);
    assert.deepEqual(rows.keys(), ['b']);
    rows.dispose();
    assert.equal(clock.pending(), 0);
    clock.advance(5000);
    assert.equal(fired.length, 2);
  });
});

/** The fixture job, named and started (the sidebar shows its suffix). */
const job = (status: JobStatus, extra: Partial<FineTuningJob> = {}): FineTuningJob => fixtureJob(status, { suffix: 'my-run', started_at: 1000, ...extra });


function metrics(step: number, total: number): MetricsEvent {
  return {
    id: `ftevent-${String(step).padStart(24, '0')}`, object: 'fine_tuning.job.event', created_at: 1000 + step, level: 'info', message: `step ${step}`,
    seq: step, job_id: ID, type: 'metrics', data: { step, total_steps: total, epoch: step / total, train_loss: 2 - step / total, train_mean_token_accuracy: 0.5, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 100, elapsed: step / 20 },
  };
}

function checkpoint(step: number): FineTuningJobCheckpoint {
  return {
    id: `ftckpt-${String(step).padStart(24, '0')}`, object: 'fine_tuning.job.checkpoint', created_at: 1, fine_tuned_model_checkpoint: `tiny:ckpt-${step}`,
    fine_tuning_job_id: ID, metrics: { step, train_loss: 1.2, train_mean_token_accuracy: 0.5 }, step_number: step, sample: null,
  };
}

const URLS = { urlOf: () => 'http://127.0.0.1:1', isRemote: () => false };

describe('RunsTreeRefresh over the model', () => {
  function setup(): { clock: FakeClock; model: RunsModel; fired: (RefreshTarget & { at: number })[]; refresh: RunsTreeRefresh } {
    const clock = new FakeClock();
    const model = new RunsModel();
    const fired: (RefreshTarget & { at: number })[] = [];
    const refresh = new RunsTreeRefresh(model, URLS, (target) => fired.push({ ...target, at: clock.now() }), { clock, intervalMs: 1000 });
    model.setBackends(['local']);
    model.setConnection('local', { kind: 'connecting' });
    model.fill('local', [job('queued')]);
    return { clock, model, fired, refresh };
  }

  const kinds = (fired: RefreshTarget[]): string[] => fired.map((f) => f.kind);

  it('a 200-step run, 20 steps a second: a handful of refreshes, status and checkpoints at once', () => {
    const { clock, model, fired } = setup();
    fired.length = 0;
    let changes = 0;
    model.onChange((c) => {
      if (c.kind === 'run') changes++;
    });
    model.applyJob('local', job('running'));
    const statusAt = clock.now();
    for (let step = 1; step <= 200; step++) {
      clock.advance(50);
      model.applyEvent('local', metrics(step, 200));
      // The backend's snapshots: the same job with its progress (and trained tokens, which only the tooltip shows).
      if (step % 10 === 0) model.applyJob('local', job('running', { progress: { step, total_steps: 200, epoch: step / 200 }, trained_tokens: step * 100 }));
      if (step === 100) {
        model.applyCheckpoint('local', ID, checkpoint(100));
        assert.deepEqual(fired.at(-1), { kind: 'run', backend: 'local', jobId: ID, at: clock.now() }, 'the checkpoint waited');
      }
    }
    model.applyCheckpoint('local', ID, checkpoint(200));
    model.applyJob('local', job('succeeded', { progress: { step: 200, total_steps: 200, epoch: 1 } }));
    assert.equal(fired.at(-1)?.at, clock.now(), 'the final status waited');
    clock.advance(5000);
    const runFires = fired.filter((f) => f.kind === 'run');
    assert.deepEqual(kinds(fired), kinds(runFires), 'only the run row refreshed');
    assert.equal(fired[0].at, statusAt, '"running" landed at once');
    // 10 s of training: about one refresh a second, plus the two checkpoints and the two statuses.
    assert.ok(runFires.length <= 15, `${runFires.length} refreshes`);
    assert.ok(runFires.length >= 10, `${runFires.length} refreshes: the progress never landed`);
    console.log(`# a simulated 200-step run: ${changes} model changes (before: one refresh each), ${runFires.length} row refreshes`);
    // No two progress refreshes closer than the interval.
    const gaps = runFires.slice(1).map((f, i) => f.at - runFires[i].at);
    assert.ok(gaps.filter((g) => g < 1000).length <= 3, `gaps ${gaps.join(',')}`);
  });

  it('lands the latest progress within the interval after the last step', () => {
    const { clock, model, fired, refresh } = setup();
    model.applyJob('local', job('running'));
    clock.advance(2000);
    model.applyEvent('local', metrics(1, 10));
    clock.advance(10);
    model.applyEvent('local', metrics(2, 10));
    const run = model.run('local', ID);
    assert.ok(run);
    assert.match(refresh.runView(run).description, /step 2\/10/);
    const before = fired.length;
    clock.advance(990);
    assert.equal(fired.length, before + 1);
    assert.deepEqual(fired.at(-1), { kind: 'run', backend: 'local', jobId: ID, at: clock.now() });
  });

  it('a reconnect that fills the same runs refreshes no row; a fill with a new status refreshes only that run', () => {
    const { model, fired } = setup();
    model.applyJob('local', job('running'));
    fired.length = 0;
    // A repeated snapshot, then a reconnect's fill with the same runs.
    model.applyJob('local', job('running'));
    model.fill('local', [job('running')]);
    assert.deepEqual(fired, []);
    model.fill('local', [job('cancelled')]);
    assert.deepEqual(kinds(fired), ['run']);
  });

  it('a connect refreshes the backend once with its runs: the fill is also the connection, so no second refresh replaces the rows', () => {
    const clock = new FakeClock();
    const model = new RunsModel();
    const shown: string[] = [];
    const refresh = new RunsTreeRefresh(model, URLS, (target) => {
      const { view, children } = refresh.backendView('local');
      shown.push(`${target.kind}: ${view.description} [${children.map((c) => c.kind).join(',')}]`);
    }, { clock });
    model.setBackends(['local']);
    model.setConnection('local', { kind: 'connecting' });
    model.fill('local', [job('succeeded')]);
    // VS Code delivers a refresh that follows another within 200 ms 200 ms later, re-reading every run row under
    // the backend: the runs must arrive with the backend's final description, in one refresh.
    assert.deepEqual(shown, ['all: http://127.0.0.1:1 [notConnected]', 'backend: connecting… [connecting]', 'backend: http://127.0.0.1:1 [run,datasets]']);
    assert.equal(model.backend('local')?.connection.kind, 'connected');
    refresh.dispose();
  });

  it('refreshes the backend for its own changes: a new run, a lost connection, a reset; files refresh Datasets', () => {
    const { model, fired } = setup();
    fired.length = 0;
    model.applyJob('local', job('queued', { id: 'ftjob-bbbbbbbbbbbbbbbbbbbbbbbb', created_at: 2000 }));
    assert.deepEqual(kinds(fired), ['backend']);
    model.reset('local');
    model.setConnection('local', { kind: 'failed', reason: 'unreachable', message: 'gone' });
    // A reset of a backend that shows only its failure changes nothing that shows.
    model.reset('local');
    model.setFiles('local', []);
    model.setBackends(['local', 'other']);
    assert.deepEqual(kinds(fired), ['backend', 'backend', 'backend', 'datasets', 'all']);
  });

  it('expanding a run whose checkpoints turn out to be none drops its twistie at once', () => {
    const { model, fired, refresh } = setup();
    model.applyJob('local', job('running'));
    const run = model.run('local', ID);
    assert.ok(run);
    assert.equal(refresh.runView(run).collapsible, true);
    fired.length = 0;
    model.setCheckpoints('local', ID, []);
    assert.equal(refresh.runView(run).collapsible, false);
    assert.deepEqual(kinds(fired), ['run']);
  });
});

describe('a real 200-step run on the embedded backend', { timeout: 240_000 }, () => {
  let backend: TestBackend;

  before(async () => {
    backend = await startTestBackend();
  });

  after(async () => {
    await backend?.close();
  });

  it('refreshes its row about once a second instead of at every change', async () => {
    const client = new BackendClient({ url: backend.url, apiKey: backend.key });
    // 25 examples, batch 1, 8 epochs, nothing held out: 200 steps.
    const lines: string[] = [];
    for (let i = 0; i < 25; i++) lines.push(JSON.stringify({ messages: [{ role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: `${i + i}.` }] }));
    const file = await client.uploadFile({ name: 'steps.jsonl', bytes: new TextEncoder().encode(`${lines.join('\n')}\n`) });
    const model = new RunsModel();
    model.setBackends(['local']);
    const fired: RefreshTarget[] = [];
    const refresh = new RunsTreeRefresh(model, URLS, (target) => fired.push(target));
    model.fill('local', []);
    const stream = new JobEventStream(client, { all: true });
    stream.onJob((j) => model.applyJob('local', j));
    stream.onEvent((e) => model.applyEvent('local', e));
    stream.onCheckpoint((jobId, c) => model.applyCheckpoint('local', jobId, c));
    let changes = 0;
    let jobId = '';
    model.onChange((c) => {
      if (c.kind === 'run' && c.jobId === jobId) changes++;
    });
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the run did not finish: ${model.run('local', jobId)?.job.status}`)), 200_000);
      model.onFinished(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    fired.length = 0;
    stream.start();
    try {
      const created = await client.createJob({
        model: 'tiny-qwen2-1m',
        training_file: file.id,
        suffix: 'two-hundred',
        method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 8, batch_size: 1, checkpoints: 2, eval_ratio: 0 } } },
      });
      jobId = created.id;
      await done;
    } finally {
      stream.dispose();
      refresh.dispose();
    }
    const run = model.run('local', jobId);
    assert.equal(run?.job.status, 'succeeded');
    assert.equal(run?.job.progress?.total_steps, 200);
    const rowFires = fired.filter((f) => f.kind === 'run' && f.jobId === jobId).length;
    const backendFires = fired.filter((f) => f.kind === 'backend').length;
    const seconds = ((run?.job.finished_at ?? 0) - (run?.job.started_at ?? 0)) || 1;
    console.log(`# a real 200-step run (${seconds} s): ${changes} run changes (before: ${changes} row refreshes), after: ${rowFires} row refreshes + ${backendFires} of its backend`);
    assert.ok(changes >= 200, `only ${changes} changes`);
    assert.ok(rowFires <= seconds + 8, `${rowFires} row refreshes in ${seconds} s`);
    assert.ok(rowFires < changes / 4, `${rowFires} row refreshes for ${changes} changes`);
  });
});
