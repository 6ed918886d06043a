// The WebSocket hub, `GET /v1/events` (issue 4, "The API"): a client subscribes to jobs with the last seq it saw
// of each (or to all of its jobs), gets `subscribed`, then each job's snapshot and the events it missed, then
// live events. Every event goes out at most once per socket and in seq order: a socket remembers the last seq it
// was sent per job, and a live event that would leave a gap is preceded by the missing ones from the log, so
// the backlog and the live stream can't overlap or leave a hole. The events are the stored objects themselves,
// so polling `events?after=` gives the same ones (same ids, same seqs).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Ajv } from 'ajv';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { isIdOf, type ApiError, type FineTuningJobEvent, type ServerSocketMessage, type ClientSocketMessage } from '../../common/api';
import type { Log, Owner } from '../runtime';
import type { JobEntry, JobStore, StoredCheckpoint } from './jobStore';

/** Largest client message taken; a bigger one closes the socket (1009). */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;
/** Bytes a socket may have waiting to be sent; a client that falls further behind is dropped (1013). */
export const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Above this many bytes waiting, events stop going out to a socket until it has drained (they come from the log later). */
export const HIGH_WATER_BYTES = 256 * 1024;
/** A socket that drains nothing for this long while events wait for it is dropped (1013). */
export const STALL_MS = 30_000;
/** Jobs one subscribe message may name. */
export const MAX_JOBS_PER_SUBSCRIBE = 1000;

/** Settings of the hub (tests shorten them). */
export interface EventHubOptions {
  pingIntervalMs?: number;
  maxBufferedBytes?: number;
  highWaterBytes?: number;
  stallMs?: number;
}

const ajv = new Ajv({ strict: true });
const validateSubscribe = ajv.compile({
  type: 'object',
  properties: {
    type: { type: 'string', const: 'subscribe' },
    jobs: { type: 'object', maxProperties: MAX_JOBS_PER_SUBSCRIBE, additionalProperties: { type: 'integer', minimum: 0 } },
    all: { type: 'boolean' },
  },
  required: ['type'],
  additionalProperties: false,
});
const validateUnsubscribe = ajv.compile({
  type: 'object',
  properties: {
    type: { type: 'string', const: 'unsubscribe' },
    jobs: { type: 'array', maxItems: MAX_JOBS_PER_SUBSCRIBE, items: { type: 'string' } },
  },
  required: ['type', 'jobs'],
  additionalProperties: false,
});

/** Parses a client message, or says what is wrong with it. */
export function parseClientMessage(text: string): ClientSocketMessage | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: 'The message is not JSON.' };
  }
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  const validate = type === 'subscribe' ? validateSubscribe : type === 'unsubscribe' ? validateUnsubscribe : undefined;
  if (validate === undefined) return { error: 'The message needs "type": "subscribe" or "unsubscribe".' };
  if (!validate(value)) {
    const e = validate.errors?.[0];
    const where = e === undefined || e.instancePath === '' ? 'the message' : e.instancePath.slice(1).replace(/\//g, '.');
    return { error: `${where} ${e?.message ?? 'is invalid'}.` };
  }
  return value as ClientSocketMessage;
}

interface Client {
  ws: WebSocket;
  owner: Owner;
  all: boolean;
  /** Followed jobs → the last seq sent on this socket. */
  sent: Map<string, number>;
  /** Jobs the client unsubscribed from: `all` does not bring them back. */
  dropped: Set<string>;
  alive: boolean;
  closed: boolean;
  /** Set while events wait for the socket to drain; the stall timer drops the client if it never does. */
  stalled: NodeJS.Timeout | undefined;
}

function apiError(message: string, code: string, param: string | null = null, type: ApiError['type'] = 'invalid_request_error'): ServerSocketMessage {
  return { type: 'error', error: { message, type, param, code } };
}

/** The WebSocket hub (see the file comment). */
export class EventHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE_BYTES, clientTracking: false });
  private readonly clients = new Set<Client>();
  private readonly pingTimer: NodeJS.Timeout;
  private readonly maxBuffered: number;
  private readonly highWater: number;
  private readonly stallMs: number;
  private readonly unlisten: () => void;

  constructor(
    private readonly store: JobStore,
    private readonly log: Log,
    options: EventHubOptions = {},
  ) {
    this.maxBuffered = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.highWater = options.highWaterBytes ?? HIGH_WATER_BYTES;
    this.stallMs = options.stallMs ?? STALL_MS;
    this.pingTimer = setInterval(() => this.ping(), options.pingIntervalMs ?? 30_000);
    this.pingTimer.unref();
    this.unlisten = store.listen({
      event: (entry, event) => this.onEvent(entry, event),
      job: (entry) => this.onJob(entry),
      checkpoint: (entry, stored) => this.onCheckpoint(entry, stored),
    });
  }

  /** Sockets open now. */
  get size(): number {
    return this.clients.size;
  }

  /** Takes over an upgrade request that the HTTP layer has authenticated as `owner`. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, owner: Owner): void {
    this.wss.handleUpgrade(request, socket, head, (ws) => this.attach(ws, owner));
  }

  private attach(ws: WebSocket, owner: Owner): void {
    const client: Client = { ws, owner, all: false, sent: new Map(), dropped: new Set(), alive: true, closed: false, stalled: undefined };
    this.clients.add(client);
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(client, data, isBinary));
    ws.on('close', () => {
      client.closed = true;
      clearTimeout(client.stalled);
      this.clients.delete(client);
    });
    // A broken connection ends in 'close' too; the error itself needs no more than a log line.
    ws.on('error', (e) => this.log.warn(`websocket: ${e.message}`));
  }

  private onMessage(client: Client, data: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.send(client, apiError('Messages are JSON text.', 'invalid_message'));
      return;
    }
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const message = parseClientMessage(text);
    if ('error' in message) {
      this.send(client, apiError(message.error, 'invalid_message'));
      return;
    }
    if (message.type === 'unsubscribe') {
      for (const id of message.jobs) {
        client.sent.delete(id);
        client.dropped.add(id);
      }
      return;
    }
    this.subscribe(client, message.jobs ?? {}, message.all === true);
  }

  private subscribe(client: Client, jobs: Record<string, number>, all: boolean): void {
    const wanted: [JobEntry, number][] = [];
    for (const [id, seq] of Object.entries(jobs)) {
      const entry = isIdOf('job', id) ? this.store.get(id) : undefined;
      // Another key's job is answered exactly like a job that does not exist.
      if (entry === undefined || entry.owner !== client.owner) {
        this.send(client, apiError(`No job with id ${id}.`, 'job_not_found', `jobs.${id}`, 'not_found_error'));
        continue;
      }
      wanted.push([entry, seq]);
    }
    if (all) {
      client.all = true;
      const named = new Set(wanted.map(([e]) => e.job.id));
      for (const entry of this.store.all()) {
        if (entry.owner === client.owner && !named.has(entry.job.id)) wanted.push([entry, 0]);
      }
    }
    for (const [entry] of wanted) client.dropped.delete(entry.job.id);
    this.send(client, { type: 'subscribed', jobs: wanted.map(([e]) => e.job.id), all: client.all });
    // Synchronously, with nothing in between: a live event can only come after this loop, and is number-checked.
    for (const [entry, seq] of wanted) {
      client.sent.set(entry.job.id, seq);
      this.send(client, { type: 'job', job: entry.job });
      this.catchUp(client, entry, entry.events.length);
    }
  }

  /**
   * Sends the job's stored events after the last one sent, up to `upTo` (a seq). Stops while the socket has more
   * than the high-water mark waiting: a backlog of megabytes goes out as fast as the client reads it, and the
   * rest follows from the log once it has drained (`drained`).
   */
  private catchUp(client: Client, entry: JobEntry, upTo: number): void {
    if (client.stalled !== undefined) return;
    const id = entry.job.id;
    let last = client.sent.get(id) ?? 0;
    while (last < upTo && !client.closed) {
      if (client.ws.bufferedAmount > this.highWater) {
        client.stalled = setTimeout(() => this.drop(client, `read nothing for ${this.stallMs} ms`), this.stallMs);
        client.stalled.unref();
        break;
      }
      const event = entry.events[last];
      if (event === undefined) break;
      this.send(client, { type: 'event', job_id: id, event });
      last = event.seq;
    }
    client.sent.set(id, last);
  }

  /** A send went out to the kernel: resume a client that was waiting, once it is below the high-water mark. */
  private drained(client: Client): void {
    if (client.stalled === undefined || client.closed || client.ws.bufferedAmount > this.highWater / 2) return;
    clearTimeout(client.stalled);
    client.stalled = undefined;
    for (const id of [...client.sent.keys()]) {
      const entry = this.store.get(id);
      if (entry !== undefined) this.catchUp(client, entry, entry.events.length);
    }
  }

  private follows(client: Client, entry: JobEntry): boolean {
    if (client.closed || client.owner !== entry.owner) return false;
    if (client.sent.has(entry.job.id)) return true;
    if (client.all && !client.dropped.has(entry.job.id)) {
      client.sent.set(entry.job.id, 0);
      return true;
    }
    return false;
  }

  private onEvent(entry: JobEntry, event: FineTuningJobEvent): void {
    for (const client of this.clients) {
      if (!this.follows(client, entry)) continue;
      // Up to and including this one; events already sent are skipped, missing ones come from the log first.
      this.catchUp(client, entry, event.seq);
    }
  }

  private onJob(entry: JobEntry): void {
    for (const client of this.clients) if (this.follows(client, entry)) this.send(client, { type: 'job', job: entry.job });
  }

  private onCheckpoint(entry: JobEntry, stored: StoredCheckpoint): void {
    for (const client of this.clients) {
      if (this.follows(client, entry)) this.send(client, { type: 'checkpoint', job_id: entry.job.id, checkpoint: stored.checkpoint });
    }
  }

  private send(client: Client, message: ServerSocketMessage): void {
    if (client.closed || client.ws.readyState !== WebSocket.OPEN) return;
    client.ws.send(JSON.stringify(message), () => this.drained(client));
    // Events pause at the high-water mark; what still piles up is job and checkpoint messages for a client that
    // does not read. Buffering them without bound would let it exhaust the backend's memory.
    if (client.ws.bufferedAmount > this.maxBuffered) this.drop(client, `fell ${client.ws.bufferedAmount} bytes behind`);
  }

  /** Closes a client's socket with 1013; it reconnects with its last seq and gets what it missed. */
  private drop(client: Client, why: string): void {
    if (client.closed) return;
    client.closed = true;
    clearTimeout(client.stalled);
    this.log.warn(`websocket: dropped a client that ${why}`);
    client.ws.close(1013, 'too far behind; reconnect with your last seq');
    // The close frame waits behind what is buffered; a client that reads nothing would never get it.
    setTimeout(() => client.ws.terminate(), 1000).unref();
  }

  private ping(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }

  /** Closes every socket (1001) and stops listening. */
  close(): void {
    clearInterval(this.pingTimer);
    this.unlisten();
    for (const client of this.clients) {
      client.closed = true;
      clearTimeout(client.stalled);
      client.ws.close(1001, 'the backend is shutting down');
    }
    this.wss.close();
  }
}
