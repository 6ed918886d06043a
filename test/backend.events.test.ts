// The WebSocket hub (backend/runtime/eventHub.ts) over a real WebSocket on loopback. The HTTP server here only
// hands upgrades over with an owner taken from a header (the real one authenticates first, see backend/http):
// what is tested is what the hub sends. A subscriber gets the backlog then live events, exactly the stored
// events (same ids, same seqs) that polling returns; a reconnect with the last seq gets exactly the missed ones;
// another owner's job is `not_found`; bad and oversized messages are refused; a client that does not read is
// dropped with 1013 rather than buffered forever.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { FineTuningJobEvent, ServerSocketMessage } from '../common/api';
import type { JobRuntime } from '../backend/runtime';
import { openRuntime, type RuntimeInternals } from '../backend/runtime/runtime';
import { FAKE_ENGINES, newJob, recordingLog, statusOf, tempDir, waitForJob, writeDataset } from './fixtures/engines/harness';

const OWNER = 'owner-a';
const OTHER = 'owner-b';

/** A WebSocket client that keeps what it receives and can wait for a message. */
class Client {
  readonly messages: ServerSocketMessage[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<[number, string]>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as ServerSocketMessage);
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve([code, reason.toString()])));
  }

  static async connect(url: string, owner: string): Promise<Client> {
    const ws = new WebSocket(url, { headers: { 'x-test-owner': owner } });
    const client = new Client(ws);
    await once(ws, 'open');
    return client;
  }

  send(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }

  /** Events received for a job, in order. */
  events(jobId: string): FineTuningJobEvent[] {
    return this.messages.flatMap((m) => (m.type === 'event' && m.job_id === jobId ? [m.event] : []));
  }

  /** Resolves when `check` holds for the messages so far; rejects after `timeoutMs`. */
  until(what: string, check: (messages: ServerSocketMessage[]) => boolean, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== test);
        reject(new Error(`timed out waiting for ${what}; got ${this.messages.length} messages`));
      }, timeoutMs);
      const test = (): void => {
        if (!check(this.messages)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== test);
        resolve();
      };
      this.waiters.push(test);
      test();
    });
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.closed;
  }
}

const finalStatus = (jobId: string) => (messages: ServerSocketMessage[]): boolean =>
  messages.some((m) => m.type === 'event' && m.job_id === jobId && ['succeeded', 'failed', 'cancelled'].includes(String(statusOf(m.event))));

describe('WebSocket event hub', () => {
  let tmp: ReturnType<typeof tempDir>;
  let rt: JobRuntime & RuntimeInternals;
  let server: Server;
  let url: string;
  let data: string;

  before(async () => {
    tmp = tempDir();
    data = writeDataset(tmp.dir, 6);
    rt = await openRuntime({ dataDir: tmp.dir, gpus: 2, log: recordingLog(), engineScripts: { embedded: FAKE_ENGINES.steady }, detectedGpus: [], hub: { pingIntervalMs: 200 } });
    server = createServer((_, res) => res.writeHead(404).end());
    server.on('upgrade', (req, socket, head) => rt.handleUpgrade(req, socket, head, String(req.headers['x-test-owner'])));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/events`;
  });
  after(async () => {
    await rt.close();
    server.closeAllConnections();
    server.close();
    tmp.cleanup();
  });

  it('sends the backlog then live events: exactly the stored events, as polling gives them', async () => {
    const job = await rt.createJob(newJob(OWNER, data, { hyperparameters: { n_epochs: 6 } }));
    await waitForJob(rt, OWNER, job.id, 'a few steps', (j) => (j.progress?.step ?? 0) >= 3);
    const client = await Client.connect(url, OWNER);
    client.send({ type: 'subscribe', jobs: { [job.id]: 0 } });
    await client.until('the job to end', finalStatus(job.id));
    assert.deepEqual(client.messages[0], { type: 'subscribed', jobs: [job.id], all: false });
    assert.equal(client.messages[1]?.type, 'job');
    const polled = (await rt.listEvents(OWNER, job.id, 0, 10_000))!.data;
    assert.deepEqual(client.events(job.id), polled);
    assert.ok(client.messages.some((m) => m.type === 'checkpoint' && m.job_id === job.id), 'checkpoint messages');
    const jobs = client.messages.flatMap((m) => (m.type === 'job' ? [m.job] : []));
    assert.equal(jobs.at(-1)?.status, 'succeeded', 'job messages follow the status');
    await client.close();
  });

  it('gives a reconnecting client exactly the events it missed', async () => {
    const job = await rt.createJob(newJob(OWNER, data, { hyperparameters: { n_epochs: 8 } }));
    const first = await Client.connect(url, OWNER);
    first.send({ type: 'subscribe', jobs: { [job.id]: 0 } });
    await first.until('some metrics', (ms) => ms.some((m) => m.type === 'event' && m.event.type === 'metrics' && m.event.data.step >= 4));
    await first.close();
    const seen = first.events(job.id);
    const last = seen.at(-1)!.seq;
    await waitForJob(rt, OWNER, job.id, 'more steps while disconnected', (j) => j.last_event_seq >= last + 3);

    const second = await Client.connect(url, OWNER);
    second.send({ type: 'subscribe', jobs: { [job.id]: last } });
    await second.until('the job to end', finalStatus(job.id));
    const missed = second.events(job.id);
    assert.equal(missed[0]?.seq, last + 1, 'starts right after the last seen');
    const polled = (await rt.listEvents(OWNER, job.id, 0, 10_000))!.data;
    assert.deepEqual([...seen, ...missed], polled, 'no gap, no duplicate, the same objects as polling');
    assert.deepEqual(missed, (await rt.listEvents(OWNER, job.id, last, 10_000))!.data, 'equal to events?after=last');
    await second.close();
  });

  it('answers a subscription to another owner\'s job (or a bad id) with not_found and sends none of its events', async () => {
    const theirs = await rt.createJob(newJob(OTHER, data));
    const client = await Client.connect(url, OWNER);
    client.send({ type: 'subscribe', jobs: { [theirs.id]: 0, 'ftjob-../../etc': 0 } });
    await client.until('two errors and subscribed', (ms) => ms.some((m) => m.type === 'subscribed'));
    const errors = client.messages.filter((m) => m.type === 'error');
    assert.deepEqual(errors.map((m) => (m.type === 'error' ? [m.error.type, m.error.code, m.error.param] : [])), [
      ['not_found_error', 'job_not_found', `jobs.${theirs.id}`],
      ['not_found_error', 'job_not_found', 'jobs.ftjob-../../etc'],
    ]);
    await waitForJob(rt, OTHER, theirs.id, 'their job to end', (j) => j.status === 'succeeded');
    await rt.runEnded(theirs.id);
    // A message round trip: everything the hub would have sent before it is in.
    client.send({ type: 'bogus' });
    await client.until('the answer to a bogus message', (ms) => ms.filter((m) => m.type === 'error').length === 3);
    assert.equal(client.events(theirs.id).length, 0);
    assert.ok(!client.messages.some((m) => m.type === 'job' && m.job.id === theirs.id));
    await client.close();
  });

  it('follows every job of its owner with `all`, those created later too', async () => {
    const client = await Client.connect(url, OWNER);
    client.send({ type: 'subscribe', all: true });
    await client.until('subscribed', (ms) => ms.some((m) => m.type === 'subscribed'));
    const mine = await rt.createJob(newJob(OWNER, data));
    const theirs = await rt.createJob(newJob(OTHER, data));
    await client.until('the new job to end', finalStatus(mine.id));
    await waitForJob(rt, OTHER, theirs.id, 'their job to end', (j) => j.status === 'succeeded');
    await rt.runEnded(theirs.id);
    assert.deepEqual(client.events(mine.id), (await rt.listEvents(OWNER, mine.id, 0, 10_000))!.data);
    assert.equal(client.events(theirs.id).length, 0, 'never another owner\'s');
    const subscribed = client.messages[0];
    assert.ok(subscribed?.type === 'subscribed' && subscribed.all && subscribed.jobs.length >= 2, 'the jobs that existed are listed');
    await client.close();
  });

  it('refuses bad messages with an error and keeps the socket; closes it on a message over 64 KiB', async () => {
    const client = await Client.connect(url, OWNER);
    client.ws.send('not json');
    client.send({ type: 'subscribe', jobs: { x: -1 } });
    client.send({ type: 'subscribe', extra: 1 });
    await client.until('three errors', (ms) => ms.length === 3);
    assert.deepEqual(client.messages.map((m) => (m.type === 'error' ? m.error.message : m.type)), [
      'The message is not JSON.',
      'jobs.x must be >= 0.',
      'the message must NOT have additional properties.',
    ]);
    client.ws.send('x'.repeat(64 * 1024 + 1));
    const [code] = await client.closed;
    assert.equal(code, 1009);
  });

  it('pings: a client that answers stays, one that does not is cut off', async () => {
    const deaf = new WebSocket(url, { headers: { 'x-test-owner': OWNER }, autoPong: false });
    const deafClosed = once(deaf, 'close') as Promise<[number]>;
    const answering = await Client.connect(url, OWNER);
    const [code] = await deafClosed;
    assert.equal(code, 1006, 'terminated without a close frame');
    // The answering client has lived through the same pings: it still gets answers.
    answering.send({ type: 'subscribe', jobs: {} });
    await answering.until('subscribed', (ms) => ms.some((m) => m.type === 'subscribed'));
    await answering.close();
  });

  it('drops a client that does not read (1013) instead of buffering without bound; a reader of the same backlog gets all of it', async () => {
    // The chatty engine's log lines are 100 KB: 90 steps give a backlog of ~9 MB.
    const chattyDir = tempDir();
    const log = recordingLog();
    const dropped = new Promise<string>((resolve) => {
      const warn = log.warn;
      log.warn = (m) => {
        warn(m);
        if (m.includes('dropped a client')) resolve(m);
      };
    });
    const chattyRt = await openRuntime({ dataDir: chattyDir.dir, gpus: 1, log, engineScripts: { embedded: FAKE_ENGINES.chatty }, detectedGpus: [], hub: { stallMs: 1000 } });
    const chattyServer = createServer();
    chattyServer.on('upgrade', (req, socket, head) => chattyRt.handleUpgrade(req, socket, head, OWNER));
    chattyServer.listen(0, '127.0.0.1');
    await once(chattyServer, 'listening');
    const chattyUrl = `ws://127.0.0.1:${(chattyServer.address() as AddressInfo).port}/`;
    try {
      const big = await chattyRt.createJob(newJob(OWNER, data, { hyperparameters: { n_epochs: 30 } }));
      await waitForJob(chattyRt, OWNER, big.id, 'the job to end', (j) => j.status === 'succeeded', 30_000);
      await chattyRt.runEnded(big.id);
      const reader = await Client.connect(chattyUrl, OWNER);
      const sleeper = await Client.connect(chattyUrl, OWNER);
      // The sleeper's TCP socket stops reading: what the hub sends piles up in the kernel, then in the hub. Its
      // close frame never arrives; the hub ends the connection, which the client sees as 1006 or the 1013.
      (sleeper.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      sleeper.send({ type: 'subscribe', jobs: { [big.id]: 0 } });
      reader.send({ type: 'subscribe', jobs: { [big.id]: 0 } });
      await reader.until('the whole backlog', finalStatus(big.id));
      assert.deepEqual(reader.events(big.id), (await chattyRt.listEvents(OWNER, big.id, 0, 100_000))!.data, 'the reader gets it all');
      assert.match(await dropped, /dropped a client that read nothing for 1000 ms/);
      // Reading again, the sleeper sees the end of its connection.
      (sleeper.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      const [code, reason] = await sleeper.closed;
      assert.ok(sleeper.events(big.id).length < reader.events(big.id).length, 'it got only part of the backlog');
      assert.ok(code === 1013 || code === 1006, `closed with ${code} ${reason}`);
      await reader.close();
    } finally {
      await chattyRt.close();
      chattyServer.closeAllConnections();
      chattyServer.close();
      chattyDir.cleanup();
    }
  });
});
