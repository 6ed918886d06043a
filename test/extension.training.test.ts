// The runs sidebar's pure parts: the model's updates from fills, snapshots, metrics and checkpoints; the
// once-per-job finish reports (not on the initial fill, not again after a reconnect's snapshots); the wording.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileObject, FineTuningJobCheckpoint, FineTuningJobEvent, MetricsEvent } from '../common/api';
import { RunsModel, runRefOf, type ModelChange, type RunFinished } from '../src/runsModel';
import { checkpointDescription, datasetsDescription, fileDescription, fileInUseMessage, fileTooltip, finishedMessage, formatBytes, runDescription, runLabel, runProgress, runStatusText, runTooltip, shortJobId, statusIcon } from '../src/runsText';
import { FIXTURE_JOB_ID, fixtureJob } from './jobFixture';

const ID = FIXTURE_JOB_ID;
const job = fixtureJob;


function checkpoint(step: number, id = `ftckpt-${String(step).padStart(24, '0')}`): FineTuningJobCheckpoint {
  return {
    id, object: 'fine_tuning.job.checkpoint', created_at: 1, fine_tuned_model_checkpoint: `tiny:ckpt-${step}`, fine_tuning_job_id: ID,
    metrics: { step, train_loss: 1.23456, train_mean_token_accuracy: 0.5, valid_loss: 1.5 }, step_number: step, sample: null,
  };
}

function watch(model: RunsModel): { finished: RunFinished[]; changes: ModelChange[] } {
  const finished: RunFinished[] = [];
  const changes: ModelChange[] = [];
  model.onFinished((f) => finished.push(f));
  model.onChange((c) => changes.push(c));
  return { finished, changes };
}

describe('runs model', () => {
  it('reports no finish for runs the fill shows already final, nor when their snapshots come again', () => {
    const model = new RunsModel();
    model.setBackends(['local']);
    const { finished } = watch(model);
    model.fill('local', [job('succeeded'), job('failed', { id: 'ftjob-bbbbbbbbbbbbbbbbbbbbbbbb' })]);
    model.applyJob('local', job('succeeded'));
    model.applyJob('local', job('failed', { id: 'ftjob-bbbbbbbbbbbbbbbbbbbbbbbb' }));
    assert.deepEqual(finished, []);
  });

  it('reports a watched run that finishes once, however often the final snapshot arrives (reconnects)', () => {
    const model = new RunsModel();
    model.setBackends(['local']);
    const { finished } = watch(model);
    model.fill('local', [job('running')]);
    model.applyJob('local', job('succeeded'));
    model.applyJob('local', job('succeeded'));
    // A reconnect refills from the listing and resends snapshots.
    model.fill('local', [job('succeeded')]);
    model.applyJob('local', job('succeeded'));
    assert.deepEqual(finished.map((f) => f.status), ['succeeded']);
  });

  it('reports a run that finished while disconnected, when the refill shows it final', () => {
    const model = new RunsModel();
    model.setBackends(['local']);
    const { finished } = watch(model);
    model.fill('local', [job('queued')]);
    model.fill('local', [job('failed')]);
    assert.deepEqual(finished.map((f) => f.status), ['failed']);
  });

  it('reports a run created after the fill (first seen queued) when it finishes, and never steps back from final', () => {
    const model = new RunsModel();
    model.setBackends(['local']);
    const { finished, changes } = watch(model);
    model.fill('local', []);
    model.applyJob('local', job('queued'));
    assert.deepEqual(changes.at(-1), { kind: 'run', backend: 'local', jobId: ID, added: true });
    model.applyJob('local', job('cancelled'));
    // A late "running" snapshot (a request's answer racing the stream) must not undo the final status.
    model.applyJob('local', job('running'));
    assert.equal(model.run('local', ID)?.job.status, 'cancelled');
    assert.deepEqual(finished.map((f) => f.status), ['cancelled']);
    assert.deepEqual(changes.at(-1), { kind: 'run', backend: 'local', jobId: ID, added: false });
  });

  it('keeps checkpoints once per id, by step, and merges a later full listing', () => {
    const model = new RunsModel();
    model.setBackends(['b']);
    model.fill('b', [job('running')]);
    model.applyCheckpoint('b', ID, checkpoint(20));
    model.applyCheckpoint('b', ID, checkpoint(10));
    model.applyCheckpoint('b', ID, checkpoint(20));
    assert.deepEqual(model.run('b', ID)?.checkpoints.map((c) => c.step_number), [10, 20]);
    model.setCheckpoints('b', ID, [checkpoint(5), checkpoint(10)]);
    const run = model.run('b', ID);
    assert.deepEqual(run?.checkpoints.map((c) => c.step_number), [5, 10, 20]);
    assert.equal(run?.checkpointsLoaded, true);
  });

  it('follows metrics for progress and loss, and picks the most recently started running job', () => {
    const model = new RunsModel();
    model.setBackends(['a', 'b']);
    model.fill('a', [job('running', { started_at: 100 })]);
    model.fill('b', [job('running', { id: 'ftjob-cccccccccccccccccccccccc', started_at: 200, suffix: 'newer' }), job('queued', { id: 'ftjob-dddddddddddddddddddddddd' })]);
    assert.equal(model.currentRun()?.job.suffix, 'newer');
    const metrics: MetricsEvent = {
      id: 'ftevent-1', object: 'fine_tuning.job.event', created_at: 1, level: 'info', message: '', seq: 3, job_id: 'ftjob-cccccccccccccccccccccccc', type: 'metrics',
      data: { step: 12, total_steps: 96, epoch: 0.1, train_loss: 1.2345, train_mean_token_accuracy: 0.4, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 10, elapsed: 3 },
    };
    model.applyEvent('b', metrics);
    const current = model.currentRun();
    assert.ok(current);
    assert.equal(runStatusText(current), '$(sync~spin) newer 12/96 · loss 1.23');
    model.applyJob('b', job('succeeded', { id: 'ftjob-cccccccccccccccccccccccc', started_at: 200 }));
    assert.equal(model.currentRun()?.backend, 'a');
  });

  it('keeps a running run\'s latest message, which its row shows until the first step', () => {
    const model = new RunsModel();
    model.setBackends(['a']);
    model.fill('a', [job('running', { started_at: 100 })]);
    const changes: ModelChange[] = [];
    model.onChange((c) => changes.push(c));
    const message = (seq: number, text: string): FineTuningJobEvent => ({ id: `ftevent-${seq}`, object: 'fine_tuning.job.event', created_at: 1, level: 'info', message: text, seq, job_id: ID, type: 'message', data: null });
    model.applyEvent('a', message(1, 'Downloading Qwen/Qwen2.5-7B-Instruct from the Hugging Face hub: 3.1 of 15.2 GB (20%)'));
    model.applyEvent('a', message(1, 'Downloading Qwen/Qwen2.5-7B-Instruct from the Hugging Face hub: 3.1 of 15.2 GB (20%)'));
    assert.equal(changes.length, 1, 'the same message again changes nothing');
    const run = model.run('a', ID);
    assert.ok(run);
    const description = runDescription(run.job, 0, run.lastMessage);
    assert.equal(description, 'tiny-qwen2-1m · Downloading Qwen/Qwen2.5-7B-Instruct from the Hugging Face…');
    assert.match(runTooltip(run), /Latest message \| Downloading .*20%/);
    // Once steps are counted, the row shows them; a finished run's tooltip drops the message.
    const stepped = { ...run.job, progress: { step: 1, total_steps: 10, epoch: 0.1 } };
    assert.equal(runDescription(stepped, 0, run.lastMessage), 'tiny-qwen2-1m · step 1/10');
    assert.equal(runDescription(job('failed'), 0, run.lastMessage), 'tiny-qwen2-1m · failed');
    assert.doesNotMatch(runTooltip({ ...run, job: job('succeeded') }), /Latest message/);
  });

  it('takes a recalled message after a connect unless a newer one came live, and tells no event listener', () => {
    const model = new RunsModel();
    model.setBackends(['a']);
    model.fill('a', [job('running', { started_at: 100 })]);
    const heard: FineTuningJobEvent[] = [];
    model.onEvent((_, event) => heard.push(event));
    const message = (seq: number, text: string): FineTuningJobEvent => ({ id: `ftevent-${seq}`, object: 'fine_tuning.job.event', created_at: 1, level: 'info', message: text, seq, job_id: ID, type: 'message', data: null });
    model.recallMessage('a', message(4, 'The backend restarted while the job ran; it continues from its checkpoint at step 40'));
    assert.equal(model.run('a', ID)?.lastMessage, 'The backend restarted while the job ran; it continues from its checkpoint at step 40');
    assert.deepEqual(heard, [], 'a recalled event went to the dashboards');
    // The stream's newer message wins over a recall that answers later.
    model.applyEvent('a', message(6, 'Resumed from step 40 after a restart'));
    model.recallMessage('a', message(4, 'The backend restarted while the job ran; it continues from its checkpoint at step 40'));
    assert.equal(model.run('a', ID)?.lastMessage, 'Resumed from step 40 after a restart');
    assert.equal(heard.length, 1);
    // A reconnect's fill keeps what was known.
    model.fill('a', [job('running', { started_at: 100 })]);
    assert.equal(model.run('a', ID)?.lastMessageSeq, 6);
  });

  it('keeps the state of backends that stay when the list changes, and drops the others', () => {
    const model = new RunsModel();
    model.setBackends(['a', 'b']);
    model.fill('a', [job('queued')]);
    model.setBackends(['b', 'a']);
    assert.equal(model.runsOf('a').length, 1);
    model.setBackends(['b']);
    assert.equal(model.backend('a'), undefined);
  });
});

describe('runs wording', () => {
  it('labels a run by its suffix, else the short id', () => {
    assert.equal(runLabel(job('queued', { suffix: 'my-run' })), 'my-run');
    assert.equal(runLabel(job('queued')), shortJobId(ID));
    assert.equal(shortJobId(ID), 'ftjob-abcdefgh');
  });

  it('describes progress and ETA while running, the queue position while queued', () => {
    const running = job('running', { progress: { step: 12, total_steps: 96, epoch: 0.2 }, estimated_finish: 1000 + 180 });
    assert.equal(runProgress(running, 1000), 'step 12/96 · ETA 3 min');
    assert.equal(runDescription(running, 1000), 'tiny-qwen2-1m · step 12/96 · ETA 3 min');
    assert.equal(runDescription(job('queued', { queue_position: 2 }), 0), 'tiny-qwen2-1m · queued #2');
    assert.equal(runDescription(job('succeeded'), 0), 'tiny-qwen2-1m · succeeded');
    assert.equal(runProgress(job('running', { estimated_finish: 1000 + 3 * 3600 + 5 * 60 }), 1000), 'ETA 3 h 05 min');
  });

  it('has an icon per status', () => {
    assert.deepEqual(
      (['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const).map(statusIcon),
      ['watch', 'watch', 'loading~spin', 'pass', 'error', 'circle-slash'],
    );
  });

  it('puts the settings used in the tooltip, and the error of a failed run', () => {
    const failed = job('failed', { error: { code: 'out_of_memory', message: 'Out of memory at batch 8', param: null } });
    const tooltip = runTooltip({ backend: 'gpu', job: failed, checkpoints: [], checkpointsLoaded: false, lastLoss: undefined });
    assert.match(tooltip, /\| Method \| LoRA \\\(rank 16, alpha 32, dropout 0\\\) \|/);
    assert.match(tooltip, /\| Learning rate \| 0\\\.002 \\\(cosine, warm\\-up 0\\\.05\\\) \|/);
    assert.match(tooltip, /Out of memory at batch 8/);
    assert.equal(finishedMessage(failed), `Training run ${shortJobId(ID)} failed: Out of memory at batch 8`);
  });

  it('describes a checkpoint by its losses', () => {
    assert.equal(checkpointDescription(checkpoint(10)), 'train 1.235 · valid 1.500');
  });

  it('reads a run reference from any argument with backend and jobId strings', () => {
    assert.deepEqual(runRefOf({ backend: 'b', jobId: ID, extra: 1 }), { backend: 'b', jobId: ID });
    assert.equal(runRefOf({ backend: 'b' }), undefined);
    assert.equal(runRefOf(undefined), undefined);
  });
});

function file(id: string, created: number, extra: Partial<FileObject> = {}): FileObject {
  return { id, object: 'file', bytes: 4300, created_at: created, filename: `${id}.jsonl`, purpose: 'fine-tune', status: 'processed', examples: 12, warnings: 0, ...extra };
}

describe('uploaded files in the model', () => {
  it('lists files newest first, replaces them on a new listing, removes a deleted one, and forgets them on reset', () => {
    const model = new RunsModel();
    model.setBackends(['b']);
    const { changes } = watch(model);
    assert.equal(model.backend('b')?.filesListed, false);
    model.setFiles('b', [file('file-old', 10), file('file-new', 20)]);
    assert.deepEqual(changes.at(-1), { kind: 'files', backend: 'b' });
    assert.deepEqual(model.filesOf('b').map((f) => f.id), ['file-new', 'file-old']);
    assert.equal(model.backend('b')?.filesListed, true);
    model.removeFile('b', 'file-old');
    assert.deepEqual(model.filesOf('b').map((f) => f.id), ['file-new']);
    const count = changes.length;
    model.removeFile('b', 'file-unknown');
    assert.equal(changes.length, count, 'removing an unknown file changes nothing');
    model.setFilesError('b', 'unreachable');
    assert.equal(model.backend('b')?.filesError, 'unreachable');
    assert.deepEqual(model.filesOf('b').map((f) => f.id), ['file-new'], 'a failed listing keeps what was listed');
    model.setFiles('b', [file('file-3', 30)]);
    assert.equal(model.backend('b')?.filesError, undefined);
    assert.deepEqual(model.filesOf('b').map((f) => f.id), ['file-3']);
    model.reset('b');
    assert.deepEqual(model.filesOf('b'), []);
    assert.equal(model.backend('b')?.filesListed, false);
  });

  it('knows which runs train or evaluate on a file', () => {
    const model = new RunsModel();
    model.setBackends(['b']);
    model.fill('b', [
      job('running', { id: 'ftjob-1', training_file: 'file-a', suffix: 'first' }),
      job('succeeded', { id: 'ftjob-2', training_file: 'file-b', validation_file: 'file-a', created_at: 2000 }),
      job('queued', { id: 'ftjob-3', training_file: 'file-c' }),
    ]);
    assert.deepEqual(model.runsUsingFile('b', 'file-a').map((r) => r.job.id), ['ftjob-2', 'ftjob-1']);
    assert.deepEqual(model.runsUsingFile('b', 'file-z'), []);
  });
});

describe('file wording', () => {
  it('describes a file by examples, size and upload time', () => {
    const created = Date.UTC(2026, 0, 31, 14, 5) / 1000;
    const description = fileDescription(file('file-a', created, { examples: 1234, bytes: 4300 }));
    assert.match(description, /^1,234 examples · 4\.2 KB · 2026-01-3[01] \d{2}:\d{2}$/);
    assert.match(fileDescription(file('file-a', created, { examples: 1 })), /^1 example · /);
    assert.equal(formatBytes(812), '812 B');
    assert.equal(formatBytes(3 * 1024 * 1024), '3.0 MB');
    assert.equal(datasetsDescription(undefined), '');
    assert.equal(datasetsDescription(1), '1 file');
    assert.equal(datasetsDescription(3), '3 files');
  });

  it('puts the id and the runs that use the file in the tooltip', () => {
    const model = new RunsModel();
    model.setBackends(['b']);
    model.fill('b', [job('running', { training_file: 'file-a', suffix: 'my_run' })]);
    const tooltip = fileTooltip(file('file-a', 10), model.runsUsingFile('b', 'file-a'));
    // Markdown-escaped: names may hold `_`, `*`, `-`.
    assert.match(tooltip, /\*\*file\\-a\\\.jsonl\*\*/);
    assert.match(tooltip, /\| File ID \| file\\-a \|/);
    assert.match(tooltip, /Used by: my\\_run \\\(running\\\)/);
    assert.match(fileTooltip(file('file-b', 10), []), /No run of this backend uses it/);
  });

  it('says which unfinished run keeps a file from being deleted, else the backend\'s words', () => {
    const model = new RunsModel();
    model.setBackends(['b']);
    model.fill('b', [job('running', { training_file: 'file-a', suffix: 'busy' }), job('succeeded', { id: 'ftjob-done', training_file: 'file-a', suffix: 'done' })]);
    const message = fileInUseMessage({ filename: 'a.jsonl', id: 'file-a' }, model.runsUsingFile('b', 'file-a'), 'File is used by a job');
    assert.match(message, /^a\.jsonl was not deleted: it is used by busy, which has not finished\. Cancel the run/);
    assert.doesNotMatch(message, /done/);
    assert.equal(fileInUseMessage({ filename: 'a.jsonl', id: 'file-a' }, [], 'File is used by a job'), 'a.jsonl was not deleted: File is used by a job');
  });
});
