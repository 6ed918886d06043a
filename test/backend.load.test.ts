// Load (issue 4, "Done when"): the real backend on loopback with the embedded engine training a job, while 50
// clients each poll `events?after=` and hold a WebSocket subscription, and a few chats stream from the same
// backend. No request may fail, and every client must end up with exactly the job's events, in order, once
// each, by both routes. Prints the request latency p50/p99. Bounded: it stops when the job has finished.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { FINAL_JOB_STATUSES, type FineTuningJob, type FineTuningJobEvent, type ListObject, type ServerSocketMessage } from '../common/api';
import { call, dataset, startTestBackend, upload, type TestBackend } from './backend.harness';
import { statusOf } from './fixtures/engines/harness';

const EMBEDDED = resolve(__dirname, '../backend/engines/embedded/main.ts');
const CLIENTS = 50;
const CHATS = 4;
const CHAT_ROUNDS = 3;
/** Between one client's polls: a dashboard's cadence, not a wait for something. */
const POLL_INTERVAL_MS = 100;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('backend under load', { skip: existsSync(EMBEDDED) ? false : 'the embedded engine does not exist yet' }, () => {
  let b: TestBackend;
  before(async () => {
    b = await startTestBackend();
  });
  after(async () => {
    await b.close();
  });

  it(`${CLIENTS} clients poll and hold WebSockets, ${CHATS} chats stream, while a job trains: nothing fails, nothing is lost or repeated`, { timeout: 60_000 }, async () => {
    const file = await upload(b, dataset(8));
    assert.equal(file.status, 200, file.text);
    const created = await call<FineTuningJob>(b, 'POST', '/v1/fine_tuning/jobs', {
      json: {
        model: 'tiny-qwen2-1m',
        training_file: (file.body as { id: string }).id,
        method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 3, batch_size: 2, checkpoints: 2 } } },
      },
    });
    assert.equal(created.status, 200, created.text);
    const jobId = created.body.id;

    const latencies: number[] = [];
    const failures: string[] = [];
    let done = false;

    /** One request, timed; a failure is recorded, never thrown, so that every client runs to the end. */
    async function timed<T>(method: string, path: string, json?: unknown): Promise<T | undefined> {
      const t0 = performance.now();
      try {
        const reply = await call<T>(b, method, path, json === undefined ? {} : { json });
        latencies.push(performance.now() - t0);
        if (reply.status !== 200) failures.push(`${method} ${path}: ${reply.status} ${reply.text.slice(0, 200)}`);
        return reply.status === 200 ? reply.body : undefined;
      } catch (e) {
        failures.push(`${method} ${path}: ${(e as Error).message}`);
        return undefined;
      }
    }

    /** A client polling events after the last seq it has, until the job is final and it has caught up. */
    async function poller(): Promise<FineTuningJobEvent[]> {
      const events: FineTuningJobEvent[] = [];
      for (;;) {
        const finished = done;
        const last = events.at(-1)?.seq ?? 0;
        const page = await timed<ListObject<FineTuningJobEvent>>('GET', `/v1/fine_tuning/jobs/${jobId}/events?after=${last}&limit=1000`);
        if (page !== undefined) events.push(...page.data);
        if (finished && page !== undefined && !page.has_more) return events;
        if (page?.has_more !== true) await pause(POLL_INTERVAL_MS);
      }
    }

    /** A client on the WebSocket, from seq 0, until the job's final status event. */
    async function subscriber(): Promise<FineTuningJobEvent[]> {
      const ws = new WebSocket(`${b.url.replace(/^http/, 'ws')}/v1/events`, { headers: { authorization: `Bearer ${b.key}` } });
      const events: FineTuningJobEvent[] = [];
      const ended = new Promise<void>((resolveEnded, reject) => {
        ws.on('message', (data) => {
          const message = JSON.parse(String(data)) as ServerSocketMessage;
          if (message.type === 'error') failures.push(`websocket: ${message.error.message}`);
          if (message.type !== 'event' || message.job_id !== jobId) return;
          events.push(message.event);
          if (FINAL_JOB_STATUSES.includes(statusOf(message.event) as FineTuningJob['status'])) resolveEnded();
        });
        ws.on('close', (code) => reject(new Error(`websocket closed early (${code})`)));
        ws.on('error', reject);
      });
      await once(ws, 'open');
      ws.send(JSON.stringify({ type: 'subscribe', jobs: { [jobId]: 0 } }));
      try {
        await ended;
      } catch (e) {
        failures.push((e as Error).message);
      }
      ws.removeAllListeners('close');
      ws.close();
      return events;
    }

    /** Streamed chats on the base model, one after the other, while the job runs (a few: they share the CPU). */
    async function chatter(): Promise<number> {
      let answers = 0;
      for (let i = 0; i < CHAT_ROUNDS && !done; i++) {
        const t0 = performance.now();
        try {
          const response = await fetch(`${b.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${b.key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'tiny-qwen2-1m', messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 16, stream: true }),
          });
          const text = await response.text();
          latencies.push(performance.now() - t0);
          if (response.status !== 200 || !text.trimEnd().endsWith('data: [DONE]')) failures.push(`chat: ${response.status} ${text.slice(-200)}`);
          else answers++;
        } catch (e) {
          failures.push(`chat: ${(e as Error).message}`);
        }
      }
      return answers;
    }

    const t0 = performance.now();
    const pollers = Array.from({ length: CLIENTS }, () => poller());
    const subscribers = Array.from({ length: CLIENTS }, () => subscriber());
    const chatters = Array.from({ length: CHATS }, () => chatter());
    // The job's end, seen the way a client sees it.
    let job: FineTuningJob | undefined;
    while (job === undefined || !FINAL_JOB_STATUSES.includes(job.status)) {
      job = await timed<FineTuningJob>('GET', `/v1/fine_tuning/jobs/${jobId}`);
      if (job === undefined) break;
      await pause(POLL_INTERVAL_MS);
    }
    await b.backend.runtime.runEnded(jobId);
    done = true;
    const [polled, streamed, answers] = await Promise.all([Promise.all(pollers), Promise.all(subscribers), Promise.all(chatters)]);
    const seconds = (performance.now() - t0) / 1000;

    assert.deepEqual(failures, [], 'no request failed');
    assert.equal(job?.status, 'succeeded', JSON.stringify(job?.error));
    const truth = (await call<ListObject<FineTuningJobEvent>>(b, 'GET', `/v1/fine_tuning/jobs/${jobId}/events?limit=1000`)).body.data;
    assert.deepEqual(truth.map((e) => e.seq), truth.map((_, i) => i + 1));
    for (const [i, events] of polled.entries()) assert.deepEqual(events, truth, `poller ${i} has exactly the job's events`);
    for (const [i, events] of streamed.entries()) assert.deepEqual(events, truth, `subscriber ${i} has exactly the job's events`);
    const chats = answers.reduce((a, n) => a + n, 0);
    assert.ok(chats >= CHATS, `every chatter got an answer (${chats} in all)`);

    latencies.sort((a, c) => a - c);
    console.log(
      `backend load: ${CLIENTS} pollers + ${CLIENTS} websockets + ${CHATS} chat streams over ${seconds.toFixed(1)} s while the job trained: ` +
        `${latencies.length} requests, latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms; ` +
        `${truth.length} events per client, ${chats} chat answers`,
    );
  });
});
