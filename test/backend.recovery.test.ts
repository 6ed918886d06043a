// Recovery (issue 4, "Store and scheduler"): a real child process runs the backend's runtime and is killed
// with SIGKILL in the middle of a job, like a crash or a power cut; the runtime reopened on the same folder
// resumes the job from its last checkpoint (or starts it over when it had none, or fails it `interrupted` when
// its engine is gone), and every event written before the kill is still there, in order, seq without gaps. The
// same for the whole service (backend/app.ts) killed and restarted, seen over HTTP and a reconnecting WebSocket.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { FineTuningJob, FineTuningJobEvent, ListObject, ServerSocketMessage } from '../common/api';
import { openRuntime } from '../backend/runtime/runtime';
import { call, dataset, upload } from './backend.harness';
import { FAKE_ENGINES, gone, recordingLog, statusOf, tempDir, waitForJob, writeDataset } from './fixtures/engines/harness';

const OWNER = 'owner-a';
const EMBEDDED = resolve(__dirname, '../backend/engines/embedded/main.ts');

interface Killed {
  dataDir: string;
  /** The first job (the one that ran); the others were queued behind it. */
  jobId: string;
  jobIds: string[];
  /** The events the killed runtime had stored, as it announced them. */
  events: FineTuningJobEvent[];
}

/**
 * Runs a runtime in a child process on a new job and kills it (SIGKILL) when `killWhen` holds for an event;
 * waits until its orphaned engine is gone too.
 */
async function runAndKill(dataDir: string, engine: string, trainingFile: string, epochs: number, killWhen: (e: FineTuningJobEvent) => boolean, jobs = 1): Promise<Killed> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, 'fixtures/engines/runtimeChild.ts'), dataDir, engine, trainingFile, String(epochs), String(jobs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FAKE_ENGINE_STEP_MS: '40' },
  });
  const events: FineTuningJobEvent[] = [];
  const pids: number[] = [];
  const jobIds: string[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    const message = JSON.parse(line) as { job?: string; event?: FineTuningJobEvent; enginePid?: number };
    if (message.job !== undefined) jobIds.push(message.job);
    if (message.enginePid !== undefined) pids.push(message.enginePid);
    if (message.event !== undefined && message.event.job_id === (jobIds[0] ?? message.event.job_id)) {
      events.push(message.event);
      if (jobIds.length === jobs && killWhen(message.event)) {
        child.kill('SIGKILL');
        break;
      }
    }
  }
  await once(child, 'exit');
  // Its engine loses its stdin and stdout with it and stops on its own.
  for (const pid of pids) await gone(pid);
  assert.ok(jobIds.length === jobs && events.length > 0, 'the child ran a job');
  return { dataDir, jobId: jobIds[0]!, jobIds, events };
}

describe('recovery after the backend is killed mid-job', () => {
  let tmp: ReturnType<typeof tempDir>;
  let data: string;
  before(() => {
    tmp = tempDir();
    data = writeDataset(tmp.dir, 6);
  });
  after(() => tmp.cleanup());

  it('resumes from the last checkpoint, keeping every event written before the kill; the queued job runs after it', async () => {
    const killed = await runAndKill(join(tmp.dir, 'resume'), FAKE_ENGINES.steady, data, 10, (e) => /^Checkpoint saved at step 12/.test(e.message), 2);
    const rt = await openRuntime({ dataDir: killed.dataDir, gpus: 1, log: recordingLog(), engineScripts: { embedded: FAKE_ENGINES.steady }, detectedGpus: [] });
    try {
      const job = await waitForJob(rt, OWNER, killed.jobId, 'the resumed job to finish', (j) => j.status === 'succeeded' || j.status === 'failed');
      await rt.runEnded(job.id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      const events = (await rt.listEvents(OWNER, job.id, 0, 10_000))!.data;
      assert.deepEqual(events.slice(0, killed.events.length), killed.events, 'what was written before the kill, unchanged and in order');
      assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'no gaps');
      const checkpoints = rt.listCheckpoints(OWNER, job.id, undefined, 100)!.data.map((c) => c.step_number);
      const restart = events.findIndex((e) => /^The backend restarted while the job ran; it continues from its checkpoint at step (\d+)$/.test(e.message));
      assert.ok(restart >= killed.events.length, 'the restart is told after the old events');
      const from = Number(/step (\d+)$/.exec(events[restart]!.message)![1]);
      assert.ok(from >= 12, `resumed from step ${from}`);
      assert.ok(events.some((e) => e.message === `Resumed from step ${from} after a restart`));
      const after = events.slice(restart).filter((e) => e.type === 'metrics').map((e) => (e.type === 'metrics' ? e.data.step : 0));
      assert.equal(after[0], from + 1, 'training continues after the checkpoint');
      assert.equal(after.at(-1), 30);
      assert.deepEqual(checkpoints, [30, 24, 18, 12, 6].filter((s) => s <= 30), 'each checkpoint once');
      assert.equal(events.map(statusOf).filter((s) => s !== undefined).join(' '), 'queued running queued running succeeded');

      const queued = await waitForJob(rt, OWNER, killed.jobIds[1]!, 'the queued job to finish', (j) => j.status === 'succeeded' || j.status === 'failed');
      await rt.runEnded(queued.id);
      assert.equal(queued.status, 'succeeded');
      assert.ok(queued.started_at! >= job.finished_at!, 'the resumed job went first');
      const queuedEvents = (await rt.listEvents(OWNER, queued.id, 0, 10_000))!.data;
      assert.equal(queuedEvents.map(statusOf).filter((s) => s !== undefined).join(' '), 'queued running succeeded', 'still queued after the restart, then run');
    } finally {
      await rt.close();
    }
  });

  it('starts a job over from step 0 when it had no checkpoint yet', async () => {
    const killed = await runAndKill(join(tmp.dir, 'over'), FAKE_ENGINES.steady, data, 10, (e) => e.type === 'metrics' && e.data.step === 2);
    const rt = await openRuntime({ dataDir: killed.dataDir, gpus: 1, log: recordingLog(), engineScripts: { embedded: FAKE_ENGINES.steady }, detectedGpus: [] });
    try {
      const job = await waitForJob(rt, OWNER, killed.jobId, 'the job to finish', (j) => j.status === 'succeeded' || j.status === 'failed');
      await rt.runEnded(job.id);
      assert.equal(job.status, 'succeeded');
      const events = (await rt.listEvents(OWNER, job.id, 0, 10_000))!.data;
      assert.deepEqual(events.slice(0, killed.events.length), killed.events);
      assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
      const restart = events.findIndex((e) => e.message === 'The backend restarted before the job saved a checkpoint; it starts over from step 0');
      assert.ok(restart > 0);
      const steps = events.slice(restart).filter((e) => e.type === 'metrics').map((e) => (e.type === 'metrics' ? e.data.step : 0));
      assert.equal(steps[0], 1);
    } finally {
      await rt.close();
    }
  });

  it('fails the job `interrupted` when its engine is gone after the restart, keeping the old events', async () => {
    const killed = await runAndKill(join(tmp.dir, 'gone'), FAKE_ENGINES.steady, data, 10, (e) => /^Checkpoint saved at step 6/.test(e.message));
    const rt = await openRuntime({ dataDir: killed.dataDir, gpus: 1, log: recordingLog(), engineScripts: { embedded: join(tmp.dir, 'no-such-engine.mjs') }, detectedGpus: [] });
    try {
      const job = rt.getJob(OWNER, killed.jobId)!;
      assert.equal(job.status, 'failed');
      assert.equal(job.error?.code, 'interrupted');
      assert.match(job.error?.message ?? '', /the embedded engine is not available/);
      const events = (await rt.listEvents(OWNER, job.id, 0, 10_000))!.data;
      assert.deepEqual(events.slice(0, killed.events.length), killed.events);
      // The child may have stored an event or two after the one the kill waited for (the kill lands a moment
      // later): those stay too. Then exactly one more, the failure.
      assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
      assert.ok(events.length >= killed.events.length + 1);
      const failures = events.filter((e) => e.type === 'message' && e.data?.status === 'failed');
      assert.equal(failures.length, 1);
      assert.equal(events.at(-1), failures[0]);
      assert.ok(rt.listCheckpoints(OWNER, job.id, undefined, 10)!.data.length >= 1, 'its checkpoints stay');
    } finally {
      await rt.close();
    }
  });

  it('resumes a job on the embedded engine from its checkpoint', { skip: existsSync(EMBEDDED) ? false : 'the embedded engine (backend/engines/embedded/main.ts) does not exist yet' }, async () => {
    const killed = await runAndKill(join(tmp.dir, 'embedded'), EMBEDDED, data, 3, (e) => /^Checkpoint saved at step/.test(e.message));
    const rt = await openRuntime({ dataDir: killed.dataDir, gpus: 1, log: recordingLog(), detectedGpus: [] });
    try {
      const job = await waitForJob(rt, OWNER, killed.jobId, 'the resumed job to finish', (j) => j.status === 'succeeded' || j.status === 'failed', 60_000);
      await rt.runEnded(job.id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      const events = (await rt.listEvents(OWNER, job.id, 0, 10_000))!.data;
      assert.deepEqual(events.slice(0, killed.events.length), killed.events);
      assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
      assert.ok(events.some((e) => /^Resumed from step \d+ after a restart$/.test(e.message)));
    } finally {
      await rt.close();
    }
  });
});

describe('recovery of the whole service, over HTTP and WebSocket', { skip: existsSync(EMBEDDED) ? false : 'the embedded engine does not exist yet' }, () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir();
  });
  after(() => tmp.cleanup());

  /** Starts backend/app.ts in a child process; resolves with its URL, and collects the engine pids it reports. */
  async function startService(dataDir: string, key: string): Promise<{ child: ChildProcess; url: string; pids: number[] }> {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, 'fixtures/engines/backendChild.ts'), dataDir, key], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pids: number[] = [];
    const lines = createInterface({ input: child.stdout! });
    const url = await new Promise<string>((resolveUrl, reject) => {
      lines.on('line', (line) => {
        const message = JSON.parse(line) as { url?: string; enginePid?: number };
        if (message.enginePid !== undefined) pids.push(message.enginePid);
        if (message.url !== undefined) resolveUrl(message.url);
      });
      child.once('exit', (code) => reject(new Error(`the backend exited with ${code} before it listened`)));
    });
    return { child, url, pids };
  }

  it('resumes a job after SIGKILL of the service; a WebSocket reconnecting with its last seq gets exactly the rest', { timeout: 90_000 }, async () => {
    const dataDir = join(tmp.dir, 'service');
    const key = 'test-key-0123456789abcdef';
    const first = await startService(dataDir, key);
    const base = { url: first.url, key };
    const file = await upload(base, dataset(8));
    assert.equal(file.status, 200, file.text);
    const created = await call<FineTuningJob>(base, 'POST', '/v1/fine_tuning/jobs', {
      json: { model: 'tiny-qwen2-1m', training_file: (file.body as { id: string }).id, method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 3, batch_size: 2, checkpoints: 3 } } } },
    });
    assert.equal(created.status, 200, created.text);
    const jobId = created.body.id;

    // Follow it on a WebSocket and kill the service right after the first checkpoint.
    const before = await followUntil(first.url, key, jobId, 0, (e) => /^Checkpoint saved at step/.test(e.message));
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    for (const pid of first.pids) await gone(pid);
    const lastSeen = before.at(-1)!.seq;

    const second = await startService(dataDir, key);
    try {
      const rest = await followUntil(second.url, key, jobId, lastSeen, (e) => ['succeeded', 'failed', 'cancelled'].includes(statusOf(e) ?? ''));
      const job = await call<FineTuningJob>({ url: second.url, key }, 'GET', `/v1/fine_tuning/jobs/${jobId}`);
      assert.equal(job.body.status, 'succeeded', JSON.stringify(job.body.error));
      const polled = (await call<ListObject<FineTuningJobEvent>>({ url: second.url, key }, 'GET', `/v1/fine_tuning/jobs/${jobId}/events?limit=1000`)).body.data;
      assert.deepEqual(polled.map((e) => e.seq), polled.map((_, i) => i + 1), 'no gaps');
      assert.deepEqual(polled.slice(0, before.length), before, 'every event written before the kill, unchanged, in order');
      assert.deepEqual([...before, ...rest], polled, 'the reconnected socket got exactly the missed events');
      assert.ok(rest.some((e) => /^Resumed from step \d+ after a restart$/.test(e.message)));
      const checkpoints = (await call<ListObject<{ step_number: number }>>({ url: second.url, key }, 'GET', `/v1/fine_tuning/jobs/${jobId}/checkpoints`)).body.data;
      assert.equal(new Set(checkpoints.map((c) => c.step_number)).size, checkpoints.length, 'each checkpoint once');
    } finally {
      second.child.kill('SIGKILL');
      await once(second.child, 'exit');
      for (const pid of second.pids) await gone(pid);
    }
  });
});

/** Subscribes to a job from `afterSeq` and collects its events until `stop` holds for one. */
async function followUntil(url: string, key: string, jobId: string, afterSeq: number, stop: (e: FineTuningJobEvent) => boolean): Promise<FineTuningJobEvent[]> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/events`, { headers: { authorization: `Bearer ${key}` } });
  const events: FineTuningJobEvent[] = [];
  const done = new Promise<void>((resolveDone, reject) => {
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as ServerSocketMessage;
      if (message.type !== 'event' || message.job_id !== jobId) return;
      events.push(message.event);
      if (stop(message.event)) resolveDone();
    });
    ws.on('close', (code) => reject(new Error(`the socket closed (${code}) before the awaited event`)));
  });
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'subscribe', jobs: { [jobId]: afterSeq } }));
  await done;
  ws.removeAllListeners('close');
  ws.terminate();
  return events;
}
