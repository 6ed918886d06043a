// JobEventStream (src/backendEvents.ts) against the real backend on loopback, jobs trained on the embedded
// engine. Faults go through a relay in front of the backend (the one fake here, to inject what a healthy
// backend never does): it forwards HTTP and relays WebSocket messages, and can cut every socket, go down (drop
// every connection), refuse upgrades with 404 like a server without a socket, and drop or repeat messages. In
// every case the delivered events must equal `events?after=0` — same objects, same seqs, none twice.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { FINAL_JOB_STATUSES, type FineTuningJob, type FineTuningJobCheckpoint, type FineTuningJobEvent } from '../common/api';
import { ownerOf } from '../backend/http/auth';
import { BackendClient } from '../src/backendClient';
import type { BackendError } from '../src/backendErrors';
import { JobEventStream, type StreamState } from '../src/backendEvents';
import { dataset, startTestBackend, type TestBackend } from './backend.harness';

const isFinal = (e: FineTuningJobEvent): boolean => e.type === 'message' && FINAL_JOB_STATUSES.some((s) => s === e.data?.status);

/** A relay in front of a server (see the file comment). */
class Relay {
  /** `noSocket`: HTTP passes, upgrades are dropped (a proxy that breaks WebSockets). */
  mode: 'relay' | 'refuse' | 'down' | 'noSocket' = 'relay';
  /** Server → client socket messages pass through this: the messages to forward instead (none drops it). */
  filter: (text: string) => string[] = (text) => [text];
  /** HTTP requests for `…/events` seen. */
  eventRequests = 0;
  private readonly pairs = new Set<[WebSocket, WebSocket]>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly server: Server;
  url = '';

  constructor(private readonly target: string) {
    this.server = createServer((req, res) => this.forward(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Terminates every relayed socket pair at once. */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.terminate();
      b.terminate();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    if (this.mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (/\/events(\?|$)/.test(req.url ?? '')) this.eventRequests++;
    const target = new URL(this.target);
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (this.mode === 'down' || this.mode === 'noSocket') {
      socket.destroy();
      return;
    }
    if (this.mode === 'refuse') {
      const body = JSON.stringify({ error: { message: 'Not found', type: 'not_found_error', param: null, code: null } });
      socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (client) => {
      const upstream = new WebSocket(`${this.target.replace(/^http/, 'ws')}${req.url ?? ''}`, { headers: { authorization: String(req.headers.authorization) } });
      const pair: [WebSocket, WebSocket] = [client, upstream];
      this.pairs.add(pair);
      const waiting: string[] = [];
      client.on('message', (data) => {
        if (upstream.readyState === WebSocket.OPEN) upstream.send(String(data));
        else waiting.push(String(data));
      });
      upstream.on('open', () => {
        for (const m of waiting.splice(0)) upstream.send(m);
      });
      upstream.on('message', (data) => {
        for (const m of this.filter(String(data))) if (client.readyState === WebSocket.OPEN) client.send(m);
      });
      const end = (): void => {
        this.pairs.delete(pair);
        client.terminate();
        upstream.terminate();
      };
      client.on('close', end);
      upstream.on('close', end);
      client.on('error', end);
      upstream.on('error', end);
    });
  }
}

/** What a stream delivered, and a way to wait for it. */
class Collected {
  readonly events: FineTuningJobEvent[] = [];
  readonly jobs: FineTuningJob[] = [];
  readonly checkpoints: FineTuningJobCheckpoint[] = [];
  readonly states: StreamState[] = [];
  readonly errors: BackendError[] = [];
  private waiters: (() => void)[] = [];

  constructor(stream: JobEventStream) {
    const changed = (): void => {
      for (const w of [...this.waiters]) w();
    };
    const keep =
      <T>(list: T[]) =>
      (item: T): void => {
        list.push(item);
        changed();
      };
    stream.onEvent(keep(this.events));
    stream.onJob(keep(this.jobs));
    stream.onCheckpoint((_, checkpoint) => keep(this.checkpoints)(checkpoint));
    stream.onStateChange(keep(this.states));
    stream.onError(keep(this.errors));
  }

  /** Events of one job, in delivery order. */
  of(jobId: string): FineTuningJobEvent[] {
    return this.events.filter((e) => e.job_id === jobId);
  }

  /** Resolves when `check` holds; rejects after `timeoutMs` saying what it waited for. */
  until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const test = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== test);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== test);
        reject(new Error(`timed out waiting for ${what}; states ${this.states.join(' → ')}, ${this.events.length} events, errors: ${this.errors.map((e) => e.message).join('; ')}`));
      }, timeoutMs);
      this.waiters.push(test);
      test();
    });
  }
}

let b: TestBackend;
let client: BackendClient;
let fileId: string;

/** Resolves once the backend has stored an event of the job for which `check` holds (or already had one). */
async function stored(jobId: string, what: string, check: (e: FineTuningJobEvent) => boolean, timeoutMs = 60_000): Promise<void> {
  const runtime = b.backend.runtime;
  let stop = (): void => undefined;
  let timer: NodeJS.Timeout | undefined;
  const seen = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no stored event of ${jobId} for ${what} in ${timeoutMs} ms`)), timeoutMs);
    stop = runtime.watch({
      event: (entry, event) => {
        if (entry.job.id === jobId && check(event)) resolve();
      },
      job: () => undefined,
      checkpoint: () => undefined,
    });
  });
  try {
    const events = (await runtime.listEvents(ownerOf(b.key), jobId, 0, 10_000))?.data ?? [];
    if (!events.some(check)) await seen;
  } finally {
    stop();
    clearTimeout(timer);
  }
}

async function newJob(nEpochs: number): Promise<FineTuningJob> {
  return client.createJob({
    model: 'tiny-qwen2-1m',
    training_file: fileId,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: nEpochs, batch_size: 2, max_seq_length: 128, checkpoints: 2, eval_ratio: 0 } } },
  });
}

/** The job's events and checkpoints as polling them from the start gives them, once its final event is stored. */
async function truth(jobId: string): Promise<{ events: FineTuningJobEvent[]; checkpoints: string[] }> {
  await stored(jobId, 'the final status', isFinal);
  return { events: await client.eventsAfter(jobId, 0), checkpoints: (await client.listCheckpoints(jobId)).data.map((c) => c.id).sort() };
}

before(async () => {
  b = await startTestBackend();
  client = new BackendClient({ url: b.url, apiKey: b.key });
  fileId = (await client.uploadFile({ name: 'train.jsonl', bytes: Buffer.from(dataset(8)) })).id;
});
after(async () => {
  await b.close();
});

describe('JobEventStream', () => {
  let finishedJob: string | undefined;

  it('resumes after the socket drops while a job runs: no event lost, none twice', async () => {
    const relay = await new Relay(b.url).start();
    const job = await newJob(4);
    // However many reconnects fail while the relay is down (a loaded machine takes a while to store three more
    // events), the stream keeps to the socket: this test is about resubscribing, not the fall-back to polling.
    const stream = new JobEventStream(new BackendClient({ url: relay.url, apiKey: b.key }), { jobs: [job.id], backoff: { initialMs: 20, maxMs: 200 }, failuresBeforePolling: 1_000_000 });
    const got = new Collected(stream);
    try {
      stream.start();
      await got.until('two metrics events', () => got.events.filter((e) => e.type === 'metrics').length >= 2);
      const seenBefore = stream.lastSeq(job.id);
      relay.mode = 'down';
      relay.cut();
      await got.until('reconnecting', () => got.states.includes('reconnecting'));
      await stored(job.id, 'three more events (or the end)', (e) => e.seq >= seenBefore + 3 || isFinal(e));
      assert.equal(stream.lastSeq(job.id), seenBefore, 'nothing arrives while the relay is down');
      relay.mode = 'relay';
      await got.until('the final event', () => got.events.some(isFinal));

      const expected = await truth(job.id);
      assert.deepEqual(got.of(job.id), expected.events, 'exactly the stored events, in order');
      assert.deepEqual(got.events.map((e) => e.seq), expected.events.map((_, i) => i + 1));
      assert.equal(relay.eventRequests, 0, 'the resubscription brought the missed events; no gap needed fetching');
      assert.deepEqual(got.states.slice(0, 3), ['connecting', 'live', 'reconnecting']);
      assert.equal(got.states.at(-1), 'live');
      await got.until('the final snapshot', () => got.jobs.at(-1)?.status === 'succeeded');
      await got.until('both checkpoints', () => got.checkpoints.length === expected.checkpoints.length);
      assert.deepEqual(got.checkpoints.map((c) => c.id).sort(), expected.checkpoints);
      finishedJob = job.id;
    } finally {
      stream.dispose();
      await relay.close();
    }
    assert.equal(stream.state, 'stopped');
  });

  it('drops repeated events and fetches a missing range before delivering more', async () => {
    assert.ok(finishedJob, 'needs the job of the previous test');
    const jobId = finishedJob;
    const relay = await new Relay(b.url).start();
    // The backlog of a finished job, with seq 3 lost and 5 and 6 sent twice; and two unusable messages.
    relay.filter = (text) => {
      const m = JSON.parse(text) as { type: string; event?: { seq: number } };
      if (m.type === 'subscribed') return [text, 'not json', JSON.stringify({ type: 'event', job_id: jobId })];
      if (m.type !== 'event') return [text];
      if (m.event?.seq === 3) return [];
      if (m.event?.seq === 5 || m.event?.seq === 6) return [text, text];
      return [text];
    };
    const stream = new JobEventStream(new BackendClient({ url: relay.url, apiKey: b.key }), { jobs: { [jobId]: 1 } });
    const got = new Collected(stream);
    try {
      stream.start();
      await got.until('the final event', () => got.events.some(isFinal));
      const expected = await truth(jobId);
      assert.deepEqual(got.of(jobId), expected.events.slice(1), 'from after seq 1, every event once');
      assert.ok(relay.eventRequests >= 1, 'the gap was filled from events?after=');
      assert.deepEqual(got.errors.map((e) => [e.reason, /not JSON|'event' is missing/.test(e.message)]), [['protocol', true], ['protocol', true]], 'unusable messages are reported and skipped');
    } finally {
      stream.dispose();
      await relay.close();
    }
  });

  it('falls back to polling when the server refuses the upgrade, and still delivers exactly the events', async () => {
    const relay = await new Relay(b.url).start();
    relay.mode = 'refuse';
    const job = await newJob(1);
    const stream = new JobEventStream(new BackendClient({ url: relay.url, apiKey: b.key }), { jobs: [job.id], pollIntervalMs: 100 });
    const got = new Collected(stream);
    try {
      stream.start();
      await got.until('the final event', () => got.events.some(isFinal));
      const expected = await truth(job.id);
      assert.deepEqual(got.states, ['connecting', 'polling']);
      assert.deepEqual(got.of(job.id), expected.events);
      await got.until('the final snapshot', () => got.jobs.at(-1)?.status === 'succeeded');
      await got.until('the checkpoints', () => got.checkpoints.length === expected.checkpoints.length);
      assert.deepEqual(got.checkpoints.map((c) => c.id).sort(), expected.checkpoints);
      assert.ok(relay.eventRequests >= 1);
    } finally {
      stream.dispose();
      await relay.close();
    }
  });

  it('polls while the socket fails but HTTP answers, and goes back to the socket once it works', async () => {
    const relay = await new Relay(b.url).start();
    relay.mode = 'noSocket';
    const job = await newJob(2);
    const stream = new JobEventStream(new BackendClient({ url: relay.url, apiKey: b.key }), {
      jobs: [job.id],
      pollIntervalMs: 100,
      socketRetryMs: 100,
      failuresBeforePolling: 2,
      backoff: { initialMs: 10, maxMs: 20 },
    });
    const got = new Collected(stream);
    try {
      stream.start();
      await got.until('polling and a few events', () => stream.state === 'polling' && got.events.length >= 2);
      relay.mode = 'relay';
      await got.until('live again', () => stream.state === 'live');
      await got.until('the final event', () => got.events.some(isFinal));
      assert.deepEqual(got.states, ['connecting', 'reconnecting', 'polling', 'live']);
      assert.deepEqual(got.of(job.id), (await truth(job.id)).events);
    } finally {
      stream.dispose();
      await relay.close();
    }
  });

  it('follows every job of the key with `all`, those created after it started too', async () => {
    const stream = new JobEventStream(client, { all: true });
    const got = new Collected(stream);
    try {
      stream.start();
      await got.until('live', () => stream.state === 'live');
      const job = await newJob(1);
      await got.until('the new job\'s final event', () => got.of(job.id).some(isFinal));
      assert.deepEqual(got.of(job.id), (await truth(job.id)).events);
      if (finishedJob) assert.equal(got.of(finishedJob).length, (await client.getJob(finishedJob)).last_event_seq, 'older jobs from their start');
    } finally {
      stream.dispose();
    }
  });

  it('stops with an unauthorized error when the key is refused', async () => {
    const stream = new JobEventStream(new BackendClient({ url: b.url, apiKey: 'not-the-key-at-all' }), { all: true });
    const got = new Collected(stream);
    stream.start();
    // dispose() drops listeners, so the error is caught before it.
    await got.until('the error', () => got.errors.length > 0);
    assert.equal(got.errors[0].reason, 'unauthorized');
    assert.equal(stream.state, 'stopped');
  });
});

describe('JobEventStream against a plain OpenAI-compatible service', () => {
  it('polls when there is no socket, orders by created_at, dedupes by id and numbers the events itself', async () => {
    // OpenAI's shapes: no seq, newest first, `after=<event id>` pages towards older events, no /v1/system.
    const jobId = 'ftjob-openai';
    const events: { id: string; object: string; created_at: number; level: string; message: string; type: string }[] = [];
    let status = 'running';
    const add = (n: number, at: number): void => {
      for (let i = 0; i < n; i++) events.unshift({ id: `ftevent-${events.length + 1}`, object: 'fine_tuning.job.event', created_at: at, level: 'info', message: `m${events.length + 1}`, type: 'message' });
    };
    add(3, 100);
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (code: number, body: unknown): void => void res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (url.pathname === `/v1/fine_tuning/jobs/${jobId}`) {
        json(200, { id: jobId, object: 'fine_tuning.job', created_at: 1, model: 'gpt-4o-mini', status, finished_at: null, fine_tuned_model: null, hyperparameters: { n_epochs: 3 } });
      } else if (url.pathname === `/v1/fine_tuning/jobs/${jobId}/events`) {
        const afterId = url.searchParams.get('after');
        const limit = Number(url.searchParams.get('limit') ?? 20);
        const start = afterId ? events.findIndex((e) => e.id === afterId) + 1 : 0;
        // Pages of 2 at most, to make the client walk them.
        const page = events.slice(start, start + Math.min(limit, 2));
        json(200, { object: 'list', data: page, has_more: start + page.length < events.length });
      } else if (url.pathname === `/v1/fine_tuning/jobs/${jobId}/checkpoints`) {
        json(200, { object: 'list', data: [], has_more: false });
      } else {
        json(404, { error: { message: 'Unknown request URL', type: 'invalid_request_error', param: null, code: 'unknown_url' } });
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const stream = new JobEventStream(new BackendClient({ url, apiKey: 'sk-x' }), { jobs: [jobId], pollIntervalMs: 50, backoff: { initialMs: 10, maxMs: 20 } });
    const got = new Collected(stream);
    try {
      stream.start();
      await got.until('the first three', () => got.events.length === 3);
      assert.equal(stream.state, 'polling', 'a server without a socket but with HTTP is polled');
      add(4, 101);
      await got.until('four more', () => got.events.length === 7);
      status = 'succeeded';
      add(1, 102);
      await got.until('the final snapshot', () => got.jobs.at(-1)?.status === 'succeeded' && got.events.length === 8);
      assert.deepEqual(got.events.map((e) => e.message), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8'], 'oldest first, ties in the list\'s order');
      assert.deepEqual(got.events.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8], 'numbered by the client');
      assert.ok(got.events.every((e) => e.job_id === jobId));
      assert.equal(got.jobs.at(-1)?.engine, 'unknown', 'our fields are filled with neutral values');
    } finally {
      stream.dispose();
      server.closeAllConnections();
      server.close();
    }
  });
});
