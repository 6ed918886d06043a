// Live events of training jobs (issue 6): one `JobEventStream` follows some jobs (or all of a key's jobs) and
// delivers every event exactly once, in seq order per job, plus job snapshots and checkpoints.
//
// - Live: the backend's WebSocket `/v1/events`, the key in the upgrade's Authorization header, a `subscribe`
//   carrying the last seq seen per job. A dropped socket is reopened with exponential backoff (equal jitter,
//   capped) and resubscribed from the last seqs, so the server sends exactly what was missed.
// - Exactly once, in order: whatever arrives (socket or poll) goes through one queue. An event at or below the
//   job's last seq is a duplicate and dropped; one that jumps ahead is held while `events?after=<last seq>`
//   fetches the missing range, which is delivered first.
// - Polling: when the server has no WebSocket (the upgrade is refused with an HTTP status other than 401), or
//   the socket keeps failing while HTTP answers, the stream polls `events?after=<last seq>` and `GET job` (and
//   the checkpoints when the job changed) every `pollIntervalMs`. A refused upgrade means polling for good; a
//   failing socket is tried again every `socketRetryMs`, and takes over once its subscription is in place.
// - A plain OpenAI-compatible service numbers no events (they parse with seq 0, see common/apiGuards.ts) and
//   lists them newest first, with `after=<event id>` paging towards older ones. For such a job the stream reads
//   pages from the newest until it meets an event id it has delivered (or the list ends), dedupes by event id,
//   orders the new ones by `created_at` (the list's order breaking ties), and numbers them itself 1, 2, 3, … in
//   delivery order — so listeners always see increasing seqs, but those seqs are the client's, not the server's.
//
// No `vscode` import: tests run it in plain Node; the extension wraps its listeners in Disposables.
import { WebSocket, type RawData } from 'ws';
import type { IncomingMessage } from 'node:http';
import type { FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, ServerSocketMessage } from '../common/api';
import { FINAL_JOB_STATUSES } from '../common/api';
import { parseServerSocketMessage, ResponseShapeError } from '../common/apiGuards';
import type { BackendClient } from './backendClient';
import { BackendError } from './backendErrors';

/** Where the stream stands. */
export type StreamState = 'connecting' | 'live' | 'polling' | 'reconnecting' | 'stopped';

/** Something a listener can stop listening with. */
export interface Subscription {
  dispose(): void;
}

/** Settings of a stream; only `client` is required. */
export interface JobEventStreamOptions {
  /** Jobs to follow: ids (from their start) or id → the last seq already seen. */
  jobs?: readonly string[] | Readonly<Record<string, number>>;
  /** Follow every job of the key, those created later too. */
  all?: boolean;
  /** Polling interval (default 2 s). */
  pollIntervalMs?: number;
  /** Reconnect delays: the first, and the cap of the doubling (defaults 500 ms and 30 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Socket attempts that fail in a row, while HTTP answers, before the stream polls instead (default 3). */
  failuresBeforePolling?: number;
  /** While polling because the socket kept failing (not because it was refused), try it again this often (default 60 s). */
  socketRetryMs?: number;
  /** For the jitter (tests may fix it); default Math.random. */
  random?: () => number;
}

/** What the stream keeps per followed job. */
interface Track {
  lastSeq: number;
  /** The server numbers no events for this job: dedupe by id (see the file comment). */
  foreign: boolean;
  seenIds: Set<string>;
  checkpoints: Set<string>;
  /** The last snapshot delivered, to deliver only changes when polling. */
  snapshot: string | undefined;
  /** Final, and its events drained: polling leaves it alone. */
  done: boolean;
}

/** A typed listener list. */
class Listeners<T extends unknown[]> {
  private readonly set = new Set<(...args: T) => void>();

  add(listener: (...args: T) => void): Subscription {
    this.set.add(listener);
    return { dispose: () => this.set.delete(listener) };
  }

  /** Calls every listener; one that throws does not keep the others (or the stream) from going on. */
  fire(...args: T): void {
    for (const listener of [...this.set]) {
      try {
        listener(...args);
      } catch (error) {
        console.error('A JobEventStream listener threw:', error);
      }
    }
  }

  clear(): void {
    this.set.clear();
  }
}

const DEFAULT_POLL_MS = 2_000;
const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 };

/** Follows jobs of one backend (see the file comment). */
export class JobEventStream {
  private readonly tracks = new Map<string, Track>();
  private readonly all: boolean;
  private readonly pollIntervalMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly failuresBeforePolling: number;
  private readonly random: () => number;
  private readonly socketRetryMs: number;

  private stateNow: StreamState = 'stopped';
  private started = false;
  private disposed = false;
  private ws: WebSocket | undefined;
  /** Socket attempts that failed since the last good subscription. */
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Everything that delivers runs on this chain, one step at a time, so order holds across awaits. */
  private queue: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();

  private readonly eventListeners = new Listeners<[FineTuningJobEvent]>();
  private readonly jobListeners = new Listeners<[FineTuningJob]>();
  private readonly checkpointListeners = new Listeners<[string, FineTuningJobCheckpoint]>();
  private readonly stateListeners = new Listeners<[StreamState]>();
  private readonly errorListeners = new Listeners<[BackendError]>();

  constructor(
    private readonly client: BackendClient,
    options: JobEventStreamOptions = {},
  ) {
    this.all = options.all === true;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.failuresBeforePolling = options.failuresBeforePolling ?? 3;
    this.random = options.random ?? Math.random;
    this.socketRetryMs = options.socketRetryMs ?? 60_000;
    const jobs = options.jobs ?? [];
    const entries: [string, number][] = Array.isArray(jobs) ? (jobs as readonly string[]).map((id) => [id, 0]) : Object.entries(jobs as Record<string, number>);
    for (const [id, seq] of entries) this.tracks.set(id, newTrack(seq));
  }

  /** Every event, once, in seq order per job. */
  onEvent(listener: (event: FineTuningJobEvent) => void): Subscription {
    return this.eventListeners.add(listener);
  }

  /** A followed job's snapshot (on subscribing, and when it changes). */
  onJob(listener: (job: FineTuningJob) => void): Subscription {
    return this.jobListeners.add(listener);
  }

  /** A checkpoint saved, once per checkpoint id. */
  onCheckpoint(listener: (jobId: string, checkpoint: FineTuningJobCheckpoint) => void): Subscription {
    return this.checkpointListeners.add(listener);
  }

  /** connecting → live; reconnecting after a drop; polling without a socket; stopped once disposed. */
  onStateChange(listener: (state: StreamState) => void): Subscription {
    return this.stateListeners.add(listener);
  }

  /** Problems the stream lives through (a refused subscription, a failed poll, an unusable message), for the log. */
  onError(listener: (error: BackendError) => void): Subscription {
    return this.errorListeners.add(listener);
  }

  /** Where the stream stands now. */
  get state(): StreamState {
    return this.stateNow;
  }

  /** The last seq delivered for a job (0: none). */
  lastSeq(jobId: string): number {
    return this.tracks.get(jobId)?.lastSeq ?? 0;
  }

  /** Opens the socket (or starts polling); listeners should be in place first. */
  start(): void {
    if (this.started || this.disposed) return;
    this.started = true;
    this.connect();
  }

  /** Follows one more job, from after `afterSeq`. */
  follow(jobId: string, afterSeq = 0): void {
    if (this.tracks.has(jobId)) return;
    this.tracks.set(jobId, newTrack(afterSeq));
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'subscribe', jobs: { [jobId]: afterSeq } }));
  }

  /** Stops following a job. */
  unfollow(jobId: string): void {
    if (!this.tracks.delete(jobId)) return;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'unsubscribe', jobs: [jobId] }));
  }

  /** Closes the socket, stops polling and retries, and drops every listener. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.abort.abort();
    clearTimeout(this.retryTimer);
    clearTimeout(this.pollTimer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
    }
    this.setState('stopped');
    for (const l of [this.eventListeners, this.jobListeners, this.checkpointListeners, this.stateListeners, this.errorListeners]) l.clear();
  }

  // -------------------------------------------------------------------------------------------------------
  // The socket

  private connect(): void {
    if (this.disposed) return;
    // While polling, a connect is a trial: the stream keeps polling until the trial's subscription is in place.
    if (this.stateNow !== 'polling') this.setState(this.failures === 0 && this.stateNow === 'stopped' ? 'connecting' : 'reconnecting');
    const url = `${this.client.url.replace(/^http/, 'ws')}/v1/events`;
    const ws = new WebSocket(url, { headers: { authorization: this.client.authorization }, handshakeTimeout: 15_000 });
    this.ws = ws;
    let opened = false;
    let refusedStatus: number | undefined;

    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      refusedStatus = res.statusCode;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      opened = true;
      const jobs: Record<string, number> = {};
      for (const [id, track] of this.tracks) if (!track.foreign) jobs[id] = track.lastSeq;
      ws.send(JSON.stringify({ type: 'subscribe', jobs, all: this.all }));
    });
    ws.on('message', (data: RawData) => {
      const text = rawText(data);
      this.enqueue(() => this.onMessage(text));
    });
    ws.on('error', () => {
      // The close that follows decides what to do; the error itself says no more than the close code.
    });
    ws.on('close', () => {
      if (this.ws !== ws || this.disposed) return;
      this.ws = undefined;
      if (refusedStatus === 401) {
        this.fail(new BackendError('unauthorized', `The backend at ${this.client.url} refused the API key for live events; set the right key for it.`, { status: 401 }));
        this.dispose();
        return;
      }
      if (refusedStatus !== undefined) {
        // The server answers HTTP but has no event socket: a plain OpenAI-compatible service. No more trials.
        clearTimeout(this.retryTimer);
        if (this.stateNow !== 'polling') this.startPolling(false);
        return;
      }
      if (this.stateNow === 'polling') {
        // A failed trial: keep polling, try again later.
        this.retryTimer = setTimeout(() => this.connect(), this.socketRetryMs);
        return;
      }
      if (!opened || this.stateNow !== 'live') this.failures++;
      void this.afterDrop();
    });
  }

  /** After a socket failure: retry with backoff, or poll when the socket keeps failing but HTTP answers. */
  private async afterDrop(): Promise<void> {
    if (this.failures >= this.failuresBeforePolling && (await this.httpAnswers())) {
      if (!this.disposed) this.startPolling(true);
      return;
    }
    if (this.disposed) return;
    this.setState('reconnecting');
    const exp = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.max(0, this.failures - 1));
    const delay = exp / 2 + (exp / 2) * this.random();
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Whether the server answers HTTP at all (any HTTP answer, even a refusal, counts). */
  private async httpAnswers(): Promise<boolean> {
    try {
      await this.client.hasSystem({ signal: this.abort.signal });
      return true;
    } catch (error) {
      return BackendError.is(error) && (error.reason === 'http' || error.reason === 'unauthorized' || error.reason === 'protocol');
    }
  }

  private async onMessage(text: string): Promise<void> {
    let message: ServerSocketMessage;
    try {
      message = parseServerSocketMessage(JSON.parse(text));
    } catch (error) {
      const detail = ResponseShapeError.is(error) ? error.message : 'the message is not JSON';
      this.fail(new BackendError('protocol', `An event-socket message was unusable: ${detail}`, { cause: error }));
      return;
    }
    switch (message.type) {
      case 'subscribed':
        this.failures = 0;
        // A trial from polling succeeded: the socket takes over (what the last poll delivered is deduped).
        clearTimeout(this.pollTimer);
        this.setState('live');
        return;
      case 'event':
        await this.deliver(message.job_id, message.event);
        return;
      case 'job':
        this.deliverJob(message.job);
        return;
      case 'checkpoint':
        this.deliverCheckpoint(message.job_id, message.checkpoint);
        return;
      case 'error':
        this.fail(new BackendError('http', `The event socket refused a request: ${message.error.message}`, { apiError: message.error }));
        return;
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Polling

  /** Polls; `retrySocket` when the socket failed (rather than was refused), so it may work again later. */
  private startPolling(retrySocket: boolean): void {
    clearTimeout(this.retryTimer);
    this.setState('polling');
    this.enqueue(() => this.poll());
    if (retrySocket) this.retryTimer = setTimeout(() => this.connect(), this.socketRetryMs);
  }

  private async poll(): Promise<void> {
    if (this.disposed || this.stateNow !== 'polling') return;
    try {
      if (this.all) {
        for (const job of (await this.client.listJobs({ limit: 100 }, { signal: this.abort.signal })).data) {
          if (!this.tracks.has(job.id)) this.tracks.set(job.id, newTrack(0));
        }
      }
      for (const [id, track] of [...this.tracks]) {
        if (track.done || this.disposed) continue;
        await this.pollJob(id, track);
      }
    } catch (error) {
      if (this.disposed) return;
      this.fail(BackendError.is(error) ? error : new BackendError('protocol', String(error), { cause: error }));
      // A refused key stays refused: polling on would only repeat the error.
      if (BackendError.is(error) && error.reason === 'unauthorized') {
        this.dispose();
        return;
      }
    }
    if (this.disposed || this.stateNow !== 'polling') return;
    this.pollTimer = setTimeout(() => this.enqueue(() => this.poll()), this.pollIntervalMs);
  }

  private async pollJob(id: string, track: Track): Promise<void> {
    const signal = this.abort.signal;
    // The snapshot first: if it is final, the events read after it are all there are.
    const job = await this.client.getJob(id, { signal });
    const changed = this.deliverJob(job);
    let delivered = 0;
    if (!track.foreign) {
      const events = await this.client.eventsAfter(id, track.lastSeq, 1000, { signal });
      if (events.some((e) => e.seq === 0)) track.foreign = true;
      else for (const event of events) delivered += (await this.deliver(id, event)) ? 1 : 0;
    }
    if (track.foreign) delivered += await this.pollForeign(id, track);
    if (changed || delivered > 0) {
      const checkpoints = (await this.client.listCheckpoints(id, { limit: 100 }, { signal })).data;
      for (const checkpoint of [...checkpoints].sort((a, b) => a.step_number - b.step_number)) this.deliverCheckpoint(id, checkpoint);
    }
    if (FINAL_JOB_STATUSES.includes(job.status)) track.done = true;
  }

  /** A job of a server that numbers no events: newest-first pages until a known id (see the file comment). */
  private async pollForeign(id: string, track: Track): Promise<number> {
    const fresh: FineTuningJobEvent[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.client.listEvents(id, after, 100, { signal: this.abort.signal });
      let metKnown = false;
      for (const event of page.data) {
        if (track.seenIds.has(event.id)) {
          metKnown = true;
          break;
        }
        fresh.push(event);
      }
      const last = page.data.at(-1)?.id;
      if (metKnown || !page.has_more || last === undefined) break;
      after = last;
    }
    // Newest first as listed: reversed, then a stable sort by time.
    const ordered = fresh.reverse().sort((a, b) => a.created_at - b.created_at);
    for (const event of ordered) {
      track.seenIds.add(event.id);
      track.lastSeq++;
      this.eventListeners.fire({ ...event, seq: track.lastSeq, job_id: id });
    }
    return ordered.length;
  }

  // -------------------------------------------------------------------------------------------------------
  // Delivery

  /** Delivers one event once and in order, filling a gap first; whether it was new. */
  private async deliver(jobId: string, event: FineTuningJobEvent): Promise<boolean> {
    let track = this.tracks.get(jobId);
    if (!track) {
      // A job `all` brought in; any other unknown job was unfollowed while its events were on the way.
      if (!this.all) return false;
      track = newTrack(0);
      this.tracks.set(jobId, track);
    }
    if (event.seq <= track.lastSeq) return false;
    if (event.seq > track.lastSeq + 1) {
      const missing = await this.client.eventsAfter(jobId, track.lastSeq, 1000, { signal: this.abort.signal });
      for (const m of missing) {
        if (m.seq !== track.lastSeq + 1 || m.seq >= event.seq) continue;
        this.emitEvent(track, m);
      }
      if (event.seq !== track.lastSeq + 1) {
        this.fail(new BackendError('protocol', `Events ${track.lastSeq + 1}–${event.seq - 1} of job ${jobId} are missing on the backend too; later events are still delivered.`));
      }
    }
    this.emitEvent(track, event);
    return true;
  }

  private emitEvent(track: Track, event: FineTuningJobEvent): void {
    track.lastSeq = event.seq;
    track.seenIds.add(event.id);
    this.eventListeners.fire(event);
  }

  /** Delivers a snapshot when it differs from the last one; whether it did. */
  private deliverJob(job: FineTuningJob): boolean {
    let track = this.tracks.get(job.id);
    if (!track) {
      if (!this.all) return false;
      track = newTrack(0);
      this.tracks.set(job.id, track);
    }
    const text = JSON.stringify(job);
    if (text === track.snapshot) return false;
    track.snapshot = text;
    this.jobListeners.fire(job);
    return true;
  }

  private deliverCheckpoint(jobId: string, checkpoint: FineTuningJobCheckpoint): void {
    const track = this.tracks.get(jobId);
    if (!track || track.checkpoints.has(checkpoint.id)) return;
    track.checkpoints.add(checkpoint.id);
    this.checkpointListeners.fire(jobId, checkpoint);
  }

  private enqueue(step: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (this.disposed) return;
      try {
        await step();
      } catch (error) {
        if (this.disposed) return;
        this.fail(BackendError.is(error) ? error : new BackendError('protocol', String(error), { cause: error }));
      }
    });
  }

  private fail(error: BackendError): void {
    this.errorListeners.fire(error);
  }

  private setState(state: StreamState): void {
    if (state === this.stateNow) return;
    this.stateNow = state;
    this.stateListeners.fire(state);
  }
}

function newTrack(lastSeq: number): Track {
  return { lastSeq, foreign: false, seenIds: new Set(), checkpoints: new Set(), snapshot: undefined, done: false };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString('utf8');
}
