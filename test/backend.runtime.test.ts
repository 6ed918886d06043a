// The backend's runtime (backend/runtime/) with real engine processes: fake engines from test/fixtures/engines/
// that behave or misbehave on purpose. A job runs from queued to succeeded with its events and checkpoints, the
// queue keeps its order and positions, cancel works queued and running (a process that ignores its cues is
// killed), garbage from an engine is ignored, a crash fails the job with the engine's last words, chat streams
// and survives its engine's crash.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FINAL_JOB_STATUSES, isIdOf, type FineTuningJob, type FineTuningJobEvent } from '../common/api';
import { parseEngineMessage } from '../common/engineSchemas';
import { ChatError, type JobRuntime } from '../backend/runtime';
import { openRuntime, type RuntimeInternals } from '../backend/runtime/runtime';
import { parseNvidiaSmi } from '../backend/runtime/gpus';
import { FAKE_ENGINES, alive, newJob, recordingLog, tempDir, waitForJob, writeDataset, statusOf, type RecordingLog } from './fixtures/engines/harness';

const OWNER = 'owner-a';
const OTHER = 'owner-b';
const final = (job: { status: string }): boolean => (FINAL_JOB_STATUSES as readonly string[]).includes(job.status);

async function allEvents(rt: JobRuntime, jobId: string): Promise<FineTuningJobEvent[]> {
  const page = await rt.listEvents(OWNER, jobId, 0, 100_000);
  assert.ok(page, 'the job has events');
  return page.data;
}

/** Waits for the job to reach a final status and for its run to end (its last events on disk). */
async function finished(rt: JobRuntime & RuntimeInternals, jobId: string): Promise<FineTuningJob> {
  await waitForJob(rt, OWNER, jobId, 'the job to finish', final);
  await rt.runEnded(jobId);
  return rt.getJob(OWNER, jobId)!;
}

function assertGapless(events: FineTuningJobEvent[]): void {
  assert.deepEqual(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
    'seq runs 1, 2, 3 … without gaps',
  );
}

describe('engine messages are checked before they are trusted', () => {
  const cases: [string, string, RegExp | null][] = [
    ['a log line', '{"type":"log","level":"warn","message":"hi"}', null],
    ['done', '{"type":"done","trained_tokens":5,"final_checkpoint":"/x"}', null],
    ['not JSON', 'oops', /not JSON/],
    ['an array', '[1]', /not a JSON object/],
    ['no type', '{"a":1}', /no "type"/],
    ['an unknown type', '{"type":"nope"}', /unknown message type "nope"/],
    ['a wrong level', '{"type":"log","level":"loud","message":"x"}', /level must be equal to one of the allowed values/],
    ['a negative step', '{"type":"metrics","data":{"step":-1,"total_steps":3,"epoch":0,"train_loss":1,"train_mean_token_accuracy":0,"learning_rate":0,"grad_norm":0,"tokens_per_second":0,"elapsed":0},"trained_tokens":0}', /data\.step must be >= 0/],
    ['an unknown error code', '{"type":"error","code":"boom","message":"x"}', /code must be equal to one of the allowed values/],
    ['a missing field', '{"type":"chat_done","id":"c","finish_reason":"stop","prompt_tokens":1}', /must have required property 'completion_tokens'/],
  ];
  for (const [name, line, error] of cases) {
    it(name, () => {
      const result = parseEngineMessage(line);
      if (error === null) assert.ok(!('error' in result && typeof result.error === 'string' && !('type' in result)), JSON.stringify(result));
      else {
        assert.ok('error' in result && !('type' in result), `refused: ${JSON.stringify(result)}`);
        assert.match(result.error as string, error);
      }
    });
  }
});

describe('GPU detection', () => {
  it('parses nvidia-smi output in MiB into bytes, skipping junk', () => {
    assert.deepEqual(parseNvidiaSmi('0, NVIDIA H100 80GB HBM3, 81559, 80000\nNo devices\n1, NVIDIA A10, 23028, [N/A]\n'), [
      { index: 0, name: 'NVIDIA H100 80GB HBM3', memory_total: 81559 * 1024 * 1024, memory_free: 80000 * 1024 * 1024 },
      { index: 1, name: 'NVIDIA A10', memory_total: 23028 * 1024 * 1024 },
    ]);
  });
});

describe('runtime with a well-behaved engine', () => {
  let tmp: ReturnType<typeof tempDir>;
  let rt: JobRuntime & RuntimeInternals;
  let log: RecordingLog;
  let data: string;

  before(async () => {
    tmp = tempDir();
    log = recordingLog();
    data = writeDataset(tmp.dir, 6);
    rt = await openRuntime({ dataDir: tmp.dir, gpus: 1, log, engineScripts: { embedded: FAKE_ENGINES.steady }, detectedGpus: [] });
  });
  after(async () => {
    await rt.close();
    tmp.cleanup();
  });

  it('reports its engines, slots and queue', async () => {
    // The torch engine says whether it can run once asked (here: no torch, or no GPU).
    await rt.enginesReady?.();
    const system = rt.system();
    assert.equal(system.slots, 1);
    assert.deepEqual(system.gpus, []);
    assert.deepEqual(system.engines.map((e) => [e.id, e.available]), [['embedded', true], ['torch', false]]);
    assert.match(system.engines[1]?.reason ?? '', /missing Python packages|no NVIDIA GPU|cannot run|Python 3\.10/);
  });

  it('runs a job from queued to succeeded, with events, checkpoints and a fine-tuned model', async () => {
    const created = await rt.createJob(newJob(OWNER, data, { suffix: 'mine' }));
    assert.ok(created.status === 'queued' || created.status === 'running', created.status);
    const job = await finished(rt, created.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.equal(job.fine_tuned_model, `ft:tiny-qwen2-1m:mine:${job.id}`);
    assert.equal(job.trained_tokens, 6 * 40);
    assert.deepEqual(job.progress, { step: 6, total_steps: 6, epoch: 2 });
    assert.ok(job.finished_at !== null && job.started_at !== null);
    assert.equal(job.estimated_finish, null);

    const events = await allEvents(rt, job.id);
    assertGapless(events);
    assert.equal(job.last_event_seq, events.length);
    assert.ok(events.every((e) => isIdOf('event', e.id) && e.job_id === job.id && e.object === 'fine_tuning.job.event'));
    const statuses = events.map(statusOf).filter((s) => s !== undefined);
    assert.deepEqual(statuses, ['queued', 'running', 'succeeded']);
    const metrics = events.filter((e) => e.type === 'metrics');
    assert.deepEqual(metrics.map((e) => e.data.step), [1, 2, 3, 4, 5, 6]);
    assert.match(metrics[0]!.message, /^Step 1\/6: training loss=/);
    assert.ok(events.some((e) => e.message === 'Training 6 steps on 6 examples'), 'the started message');
    assert.ok(events.some((e) => e.level === 'warn' && /2 examples are longer than max_seq_length \(256 tokens\)/.test(e.message)), 'truncation counted');
    assert.ok(events.some((e) => e.message === 'fake engine at step 5'), 'engine log lines become events');

    const checkpoints = rt.listCheckpoints(OWNER, job.id, undefined, 10);
    assert.deepEqual(checkpoints?.data.map((c) => c.step_number), [6, 3], 'newest first');
    const [last, firstCk] = checkpoints!.data;
    assert.equal(last!.fine_tuned_model_checkpoint, `ft:tiny-qwen2-1m:mine:${job.id}:ckpt-step-6`);
    assert.ok(isIdOf('checkpoint', last!.id));
    assert.equal(last!.metrics.step, 6);
    assert.deepEqual(last!.sample, { messages: [{ role: 'user', content: 'question 0' }], reference: 'answer 0', answer: 'answer at step 6' });
    assert.deepEqual(rt.listCheckpoints(OWNER, job.id, last!.id, 10)?.data.map((c) => c.id), [firstCk!.id], 'paging after a checkpoint id');

    const files = await rt.checkpointFiles(OWNER, job.id, last!.id);
    assert.deepEqual(files?.map((f) => f.name), ['adapter_config.json', 'adapter_model.safetensors'], 'the resume state is not offered');
    assert.equal(files?.[1]?.bytes, 64 + 6);

    const models = rt.fineTunedModels(OWNER);
    assert.deepEqual(models.map((m) => [m.id, m.kind]), [
      [job.fine_tuned_model, 'fine-tuned'],
      [firstCk!.fine_tuned_model_checkpoint, 'checkpoint'],
      [last!.fine_tuned_model_checkpoint, 'checkpoint'],
    ]);
    const target = rt.resolveFineTuned(OWNER, job.fine_tuned_model!);
    assert.match(target?.adapter ?? '', /engine[/\\]checkpoints[/\\]step-6$/);
    assert.equal(rt.resolveFineTuned(OWNER, firstCk!.fine_tuned_model_checkpoint)?.adapter?.endsWith('step-3'), true);

    // Another key sees none of it.
    assert.equal(rt.getJob(OTHER, job.id), undefined);
    assert.equal(await rt.listEvents(OTHER, job.id, 0, 10), undefined);
    assert.equal(rt.listCheckpoints(OTHER, job.id, undefined, 10), undefined);
    assert.equal(await rt.checkpointFiles(OTHER, job.id, last!.id), undefined);
    assert.deepEqual(rt.fineTunedModels(OTHER), []);
    assert.equal(rt.resolveFineTuned(OTHER, job.fine_tuned_model!), undefined);
    assert.equal(await rt.cancelJob(OTHER, job.id), undefined);
    assert.equal(rt.listJobs(OTHER, undefined, 10).data.length, 0);

    // Paging events by seq, and the seq of an event id.
    const second = await rt.listEvents(OWNER, job.id, 2, 3);
    assert.deepEqual(second?.data.map((e) => e.seq), [3, 4, 5]);
    assert.equal(second?.has_more, true);
    assert.equal(await rt.eventSeq(OWNER, job.id, events[4]!.id), 5);
  });

  it('keeps the queue in order with one slot, with positions, and cancels a queued job at once', async () => {
    const slow = { hyperparameters: { n_epochs: 4 } };
    const a = await rt.createJob(newJob(OWNER, data, slow));
    const b = await rt.createJob(newJob(OWNER, data, slow));
    const c = await rt.createJob(newJob(OWNER, data, slow));
    assert.equal(rt.getJob(OWNER, a.id)?.status, 'running');
    assert.equal(rt.getJob(OWNER, b.id)?.queue_position, 1);
    assert.equal(rt.getJob(OWNER, c.id)?.queue_position, 2);
    assert.deepEqual(rt.system().queue, { running: 1, queued: 2 });
    assert.equal(rt.fileInUse(OWNER, b.training_file), true);
    assert.equal(rt.fileInUse(OTHER, b.training_file), false);

    const cancelled = await rt.cancelJob(OWNER, b.id);
    assert.equal(cancelled?.status, 'cancelled');
    assert.equal(cancelled?.queue_position, null);
    assert.equal(rt.getJob(OWNER, c.id)?.queue_position, 1, 'the job behind moves up');

    const doneA = await finished(rt, a.id);
    assert.equal(doneA.status, 'succeeded');
    const doneC = await finished(rt, c.id);
    assert.equal(doneC.status, 'succeeded');
    assert.ok(doneC.started_at! >= doneA.finished_at!, 'c started after a ended');
    assert.deepEqual(rt.listJobs(OWNER, undefined, 3).data.map((j) => j.id), [c.id, b.id, a.id], 'newest first');
    assert.deepEqual(rt.listJobs(OWNER, b.id, 10).data.map((j) => j.id).slice(0, 1), [a.id], 'paging after a job id');
    const bEvents = await allEvents(rt, b.id);
    assert.deepEqual(bEvents.map(statusOf), ['queued', 'cancelled']);
    assert.equal(rt.fileInUse(OWNER, b.training_file), false);
  });

  it('streams a chat on a checkpoint, stops a generation on abort, and restarts a crashed chat engine', async () => {
    const job = rt.listJobs(OWNER, undefined, 100).data.filter((j) => j.status === 'succeeded').at(-1);
    const target = rt.resolveFineTuned(OWNER, job!.fine_tuned_model!)!;
    const params = { temperature: 0, top_p: 1, top_k: 0, max_tokens: 100, repetition_penalty: 1, seed: 1, stop: [] };
    let text = '';
    const result = await rt.chat(target, { messages: [{ role: 'user', content: 'hello' }], params }, (t) => (text += t), new AbortController().signal);
    assert.equal(text, 'echo(step-6): hello');
    assert.deepEqual(result, { finish_reason: 'stop', prompt_tokens: 10, completion_tokens: text.length });

    const short = await rt.chat(target, { messages: [{ role: 'user', content: 'hello' }], params: { ...params, max_tokens: 3 } }, () => undefined, new AbortController().signal);
    assert.equal(short.finish_reason, 'length');

    const abort = new AbortController();
    let pieces = 0;
    const long = rt.chat(target, { messages: [{ role: 'user', content: 'x'.repeat(2000) }], params: { ...params, max_tokens: 5000 } }, () => {
      if (++pieces === 3) abort.abort();
    }, abort.signal);
    await assert.rejects(long, (e: unknown) => ChatError.is(e) && e.code === 'cancelled');

    const [pid] = rt.chatPids();
    await assert.rejects(
      rt.chat(target, { messages: [{ role: 'user', content: 'crash!' }], params }, () => undefined, new AbortController().signal),
      (e: unknown) => ChatError.is(e) && e.code === 'engine_error' && /exit code 7/.test(e.message) && /asked to crash/.test(e.message),
    );
    text = '';
    await rt.chat({ ...target, adapter: null }, { messages: [{ role: 'user', content: 'again' }], params }, (t) => (text += t), new AbortController().signal);
    assert.equal(text, 'echo(base): again');
    assert.notEqual(rt.chatPids()[0], pid, 'a new chat process');

    await assert.rejects(
      rt.chat({ ...target, engine: 'torch' }, { messages: [{ role: 'user', content: 'hi' }], params }, () => undefined, new AbortController().signal),
      (e: unknown) => ChatError.is(e) && e.code === 'model_unavailable' && /torch engine is not available/.test(e.message),
    );
  });

  it('cancels a job in the moment it is starting (before its engine is spawned)', async () => {
    const created = await rt.createJob(newJob(OWNER, data));
    // createJob resolves with the job queued and its start under way: the cancel lands before the spawn.
    const job = await rt.cancelJob(OWNER, created.id);
    assert.equal(job?.status, 'cancelled');
    await rt.runEnded(created.id);
    assert.equal(rt.enginePid(created.id), undefined);
    assert.deepEqual(rt.system().queue, { running: 0, queued: 0 });
    assert.deepEqual((await allEvents(rt, created.id)).map(statusOf), ['queued', 'running', 'cancelled']);
  });

  it('fails a job whose training file is gone before it is queued', async () => {
    const created = await rt.createJob(newJob(OWNER, `${tmp.dir}/missing.jsonl`));
    assert.equal(created.status, 'failed');
    assert.equal(created.error?.code, 'invalid_dataset');
    assert.match(created.error?.message ?? '', /training file is gone \(.*missing\.jsonl\)/);
    assert.equal(created.error?.param, 'training_file');
  });

  it('fails a job that needs more GPUs than the backend has slots, rather than queueing it forever', async () => {
    const created = await rt.createJob(newJob(OWNER, data, { gpus: 2 }));
    assert.equal(created.status, 'failed');
    assert.deepEqual(created.error, { code: 'engine_error', message: 'The job needs 2 GPUs; this backend has 1 slot.', param: 'gpus' });
  });
});

describe('runtime with misbehaving engines', () => {
  let tmp: ReturnType<typeof tempDir>;
  let data: string;
  const opened: JobRuntime[] = [];

  before(() => {
    tmp = tempDir();
    data = writeDataset(tmp.dir, 6);
  });
  after(async () => {
    await Promise.all(opened.map((rt) => rt.close()));
    tmp.cleanup();
  });

  async function runtimeWith(engine: string, log = recordingLog()): Promise<JobRuntime & RuntimeInternals> {
    const rt = await openRuntime({ dataDir: mkdtempSync(join(tmp.dir, 'rt-')), gpus: 2, log, engineScripts: { embedded: engine }, detectedGpus: [] });
    opened.push(rt);
    return rt;
  }

  it('ignores malformed lines (logging them) and still finishes the job', async () => {
    const log = recordingLog();
    const rt = await runtimeWith(FAKE_ENGINES.malformed, log);
    const created = await rt.createJob(newJob(OWNER, data));
    const job = await finished(rt, created.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const events = await allEvents(rt, job.id);
    assertGapless(events);
    assert.deepEqual(events.filter((e) => e.type === 'metrics').map((e) => e.data.step), [1, 2, 3, 4, 5, 6], 'no bogus metrics');
    assert.ok(events.some((e) => e.message === 'after the garbage'), 'a good line after the garbage is taken');
    assert.ok(!events.some((e) => /not a real error|x{100}/.test(e.message)));
    assert.deepEqual(rt.listCheckpoints(OWNER, job.id, undefined, 10)?.data.map((c) => c.step_number), [6, 3], 'the checkpoint outside the folder is refused');
    const warned = log.lines.filter((l) => l.startsWith('warn'));
    assert.ok(warned.some((l) => /malformed engine line \(not JSON/.test(l)), warned.join('\n'));
    assert.ok(warned.some((l) => /unknown message type "launch_missiles"/.test(l)));
    assert.ok(warned.some((l) => /metrics: data must have required property/.test(l)));
    assert.ok(warned.some((l) => /ignored an engine line of \d+ bytes/.test(l)));
    assert.ok(warned.some((l) => /\/etc is outside the job's folder/.test(l)));
  });

  it('fails a job whose engine crashes with engine_crashed and its last stderr lines', async () => {
    const rt = await runtimeWith(FAKE_ENGINES.crash);
    const created = await rt.createJob(newJob(OWNER, data));
    const job = await finished(rt, created.id);
    assert.equal(job.status, 'failed');
    assert.equal(job.error?.code, 'engine_crashed');
    assert.match(job.error?.message ?? '', /exited with code 139/);
    assert.match(job.error?.message ?? '', /Segmentation fault \(pretend\)$/);
    assert.match(job.error?.message ?? '', /noise line 30/);
    assert.doesNotMatch(job.error?.message ?? '', /noise line 5\n/, 'only the last lines');
    const events = await allEvents(rt, job.id);
    assertGapless(events);
    assert.deepEqual(events.filter((e) => e.type === 'metrics').map((e) => e.data.step), [1, 2], 'what it reported before the crash is kept');
    assert.equal(events.at(-1)?.level, 'error');
    // The backend is still fine: the next job runs.
    assert.equal(rt.system().queue.running, 0);
  });

  it('fails a job whose engine exits without a word', async () => {
    const rt = await runtimeWith(FAKE_ENGINES.exitSilently);
    const created = await rt.createJob(newJob(OWNER, data));
    const job = await finished(rt, created.id);
    assert.equal(job.error?.code, 'engine_crashed');
    assert.match(job.error?.message ?? '', /exited with code 0 before finishing\.$/);
  });

  it('cancels a running job whose engine ignores stdin and SIGTERM: killed within seconds, job cancelled', async () => {
    const log = recordingLog();
    const rt = await runtimeWith(FAKE_ENGINES.hang, log);
    const created = await rt.createJob(newJob(OWNER, data, { hyperparameters: { n_epochs: 100 } }));
    await waitForJob(rt, OWNER, created.id, 'the first step', (j) => (j.progress?.step ?? 0) >= 1);
    const pid = rt.enginePid(created.id);
    assert.ok(pid !== undefined && alive(pid));
    const t0 = Date.now();
    const job = await rt.cancelJob(OWNER, created.id);
    const took = Date.now() - t0;
    assert.equal(job?.status, 'cancelled');
    assert.ok(took >= 4500 && took < 8000, `stopped by SIGKILL after ~5 s (took ${took} ms)`);
    assert.equal(alive(pid), false, 'the engine process is gone');
    assert.ok(log.lines.some((l) => /sending SIGTERM/.test(l)) && log.lines.some((l) => /sending SIGKILL/.test(l)));
    const events = await allEvents(rt, created.id);
    assertGapless(events);
    assert.equal(statusOf(events.at(-1)!), 'cancelled');
    assert.equal(rt.system().queue.running, 0);
  });

  it('cancels a running job on a cooperative engine quickly, keeping its checkpoints', async () => {
    const rt = await runtimeWith(FAKE_ENGINES.steady);
    const created = await rt.createJob(newJob(OWNER, data, { hyperparameters: { n_epochs: 60, checkpoints: 60 } }));
    await waitForJob(rt, OWNER, created.id, 'a checkpoint', (j) => (j.progress?.step ?? 0) >= 3);
    const pid = rt.enginePid(created.id)!;
    const t0 = Date.now();
    const job = await rt.cancelJob(OWNER, created.id);
    assert.ok(Date.now() - t0 < 1500, 'stdin closing is enough');
    assert.equal(job?.status, 'cancelled');
    assert.equal(alive(pid), false);
    assert.ok((rt.listCheckpoints(OWNER, created.id, undefined, 100)?.data.length ?? 0) >= 1, 'checkpoints kept');
    assert.equal((await rt.cancelJob(OWNER, created.id))?.status, 'cancelled', 'cancelling again changes nothing');
  });
});
