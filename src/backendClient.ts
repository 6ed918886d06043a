// The extension's one client of a training backend (issue 6): typed requests over HTTP for every route the
// extension uses, each answer checked by common/apiGuards.ts before anything reads it, every failure a
// BackendError with a reason. Plain requests have a deadline; uploads, downloads and chat streams have an idle
// timeout instead (a 2 GiB upload may take long, but it must keep moving). Live events are in backendEvents.ts.
// No `vscode` import: the extension host runs it, and so do the tests, in plain Node.
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type {
  ChatCompletionRequest,
  ChatUsage,
  CheckpointFile,
  CreateJobRequest,
  DeletedObject,
  FileObject,
  FineTuningJob,
  FineTuningJobCheckpoint,
  FineTuningJobEvent,
  FineTuningJobMetrics,
  FinishReason,
  ListObject,
  ModelObject,
  SaveAdapterRequest,
  SavedAdapter,
  SystemInfo,
} from '../common/api';
import {
  isApiErrorBody,
  parseChatChunk,
  parseChatCompletion,
  parseCheckpointFileList,
  parseCheckpointList,
  parseDeletedObject,
  parseEventList,
  parseFileList,
  parseFileObject,
  parseJob,
  parseJobList,
  parseJobMetrics,
  parseModel,
  parseModelList,
  parseSavedAdapter,
  parseSavedAdapterList,
  parseSystem,
  ResponseShapeError,
} from '../common/apiGuards';
import { BackendError } from './backendErrors';

/** The `fetch` the client uses (tests and proxies may pass another). */
export type FetchLike = typeof fetch;

/** How to reach a backend. */
export interface BackendClientOptions {
  /** `http://host:port`, without `/v1`. */
  url: string;
  apiKey: string;
  fetch?: FetchLike;
  /** Deadline of a plain request, from sending to the whole answer (default 30 s). */
  timeoutMs?: number;
  /** Uploads, downloads and streams fail after this long without a byte moving (default 60 s). */
  idleTimeoutMs?: number;
}

/** Bytes moved so far, of how many (when known). */
export interface Progress {
  bytes: number;
  total: number | undefined;
}

/** Options of the long transfers. */
export interface TransferOptions {
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

/** What to upload: a file on disk (streamed, never read whole) or bytes in memory. */
export type UploadSource = string | { name: string; bytes: Uint8Array };

/** The end of a streamed chat answer. */
export interface ChatResult {
  text: string;
  finishReason: FinishReason | null;
  usage: ChatUsage | null;
}

/** A page request. */
export interface PageOptions {
  after?: string;
  limit?: number;
}

/** Request settings of one call. */
interface Call {
  method: string;
  path: string;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: RequestInit['body'];
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Idle mode: the deadline restarts whenever `touch` is called. */
  idle?: boolean;
}

/**
 * The deadline and cancellation of one call: one AbortController for fetch, fed by the caller's signal and a
 * timer, remembering which of the two fired so that the error says `cancelled` or `timeout`, not a guess.
 */
class Deadline {
  readonly controller = new AbortController();
  fired: 'cancelled' | 'timeout' | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => this.fire('cancelled');

  constructor(
    private readonly ms: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (signal?.aborted) this.fire('cancelled');
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.touch();
  }

  get aborted(): AbortSignal {
    return this.controller.signal;
  }

  /** Restarts the timer (in idle mode, whenever bytes move). */
  touch(): void {
    clearTimeout(this.timer);
    if (this.fired) return;
    this.timer = setTimeout(() => this.fire('timeout'), this.ms);
  }

  private fire(why: 'cancelled' | 'timeout'): void {
    if (this.fired) return;
    this.fired = why;
    clearTimeout(this.timer);
    this.controller.abort(new Error(why));
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const CHUNK_BYTES = 64 * 1024;

/** The client (see the file comment). */
export class BackendClient {
  readonly url: string;
  private readonly apiKey: string;
  private readonly fetchImpl: FetchLike;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;

  constructor(options: BackendClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.fetchImpl = options.fetch ?? fetch;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /** The key, for the event socket's Authorization header. */
  get authorization(): string {
    return `Bearer ${this.apiKey}`;
  }

  // -------------------------------------------------------------------------------------------------------
  // System and models

  /** `GET /v1/system`; a plain OpenAI-compatible service answers 404 (see hasSystem). */
  async system(options: { signal?: AbortSignal } = {}): Promise<SystemInfo> {
    return await this.json({ method: 'GET', path: '/v1/system', signal: options.signal }, parseSystem);
  }

  /** Whether the server is a Finetune Studio backend (it has `/v1/system`) rather than a plain OpenAI-compatible one. */
  async hasSystem(options: { signal?: AbortSignal } = {}): Promise<boolean> {
    try {
      await this.system(options);
      return true;
    } catch (error) {
      if (BackendError.is(error) && error.reason === 'http' && error.status === 404) return false;
      throw error;
    }
  }

  /** `GET /v1/models`: base models and this key's fine-tuned models and checkpoints. */
  async models(options: { signal?: AbortSignal } = {}): Promise<ModelObject[]> {
    return (await this.json({ method: 'GET', path: '/v1/models', signal: options.signal }, parseModelList)).data;
  }

  /** `GET /v1/models/{id}` (ids may hold a slash). */
  async model(id: string, options: { signal?: AbortSignal } = {}): Promise<ModelObject> {
    const path = `/v1/models/${id.split('/').map(encodeURIComponent).join('/')}`;
    return await this.json({ method: 'GET', path, signal: options.signal }, parseModel);
  }

  // -------------------------------------------------------------------------------------------------------
  // Files

  /** `GET /v1/files`: one page, newest first. */
  async listFiles(page: PageOptions = {}, options: { signal?: AbortSignal } = {}): Promise<ListObject<FileObject>> {
    return await this.json({ method: 'GET', path: '/v1/files', query: { ...page }, signal: options.signal }, parseFileList);
  }

  /** `GET /v1/files/{id}`. */
  async getFile(id: string, options: { signal?: AbortSignal } = {}): Promise<FileObject> {
    return await this.json({ method: 'GET', path: `/v1/files/${encodeURIComponent(id)}`, signal: options.signal }, parseFileObject);
  }

  /** `DELETE /v1/files/{id}` (a 409 `http` error while an unfinished job uses it). */
  async deleteFile(id: string, options: { signal?: AbortSignal } = {}): Promise<DeletedObject> {
    return await this.json({ method: 'DELETE', path: `/v1/files/${encodeURIComponent(id)}`, signal: options.signal }, parseDeletedObject);
  }

  /**
   * `POST /v1/files` with `purpose=fine-tune`: the dataset as multipart, streamed from disk, `onProgress` as the
   * request takes the bytes. Aborting the signal aborts the request, and the backend keeps nothing of it. A
   * dataset with errors is an `http` error whose `apiError.findings` list them.
   */
  async uploadFile(source: UploadSource, options: TransferOptions = {}): Promise<FileObject> {
    const boundary = `----finetune-${randomBytes(12).toString('hex')}`;
    const name = typeof source === 'string' ? basename(source) : source.name;
    const safeName = name.replace(/["\\\r\n]/g, '_');
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${safeName}"\r\nContent-Type: application/jsonl\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);

    let handle: FileHandle | undefined;
    let size: number;
    if (typeof source === 'string') {
      // A dataset that cannot be read is a local failure, not the backend's: the file system's error goes up as it is.
      handle = await open(source, 'r');
      try {
        size = (await handle.stat()).size;
      } catch (error) {
        await handle.close();
        throw error;
      }
    } else {
      size = source.bytes.length;
    }
    const file = handle;
    const closeFile = async (): Promise<void> => {
      handle = undefined;
      await file?.close().catch(() => undefined);
    };

    let deadline: Deadline | undefined;
    let sent = 0;
    let offset = 0;
    let stage: 'head' | 'file' | 'tail' | 'done' = 'head';
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        deadline?.touch();
        if (stage === 'head') {
          controller.enqueue(head);
          stage = 'file';
          return;
        }
        if (stage === 'file') {
          let chunk: Uint8Array;
          if (file) {
            const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
            const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, offset);
            chunk = buffer.subarray(0, bytesRead);
          } else {
            chunk = (source as { bytes: Uint8Array }).bytes.subarray(offset, offset + CHUNK_BYTES);
          }
          if (chunk.length === 0) {
            stage = 'tail';
            controller.enqueue(tail);
            return;
          }
          offset += chunk.length;
          sent += chunk.length;
          controller.enqueue(chunk);
          options.onProgress?.({ bytes: sent, total: size });
          return;
        }
        if (stage === 'tail') {
          stage = 'done';
          await closeFile();
          controller.close();
        }
      },
      cancel: closeFile,
    });
    try {
      return await this.json(
        {
          method: 'POST',
          path: '/v1/files',
          body,
          headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) },
          signal: options.signal,
          idle: true,
        },
        parseFileObject,
        (d) => (deadline = d),
      );
    } finally {
      await closeFile();
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Jobs

  /** `POST /v1/fine_tuning/jobs`. */
  async createJob(request: CreateJobRequest, options: { signal?: AbortSignal } = {}): Promise<FineTuningJob> {
    return await this.json({ method: 'POST', path: '/v1/fine_tuning/jobs', json: request, signal: options.signal }, parseJob);
  }

  /** `GET /v1/fine_tuning/jobs`: one page, newest first. */
  async listJobs(page: PageOptions = {}, options: { signal?: AbortSignal } = {}): Promise<ListObject<FineTuningJob>> {
    return await this.json({ method: 'GET', path: '/v1/fine_tuning/jobs', query: { ...page }, signal: options.signal }, parseJobList);
  }

  /** Every job of this key, newest first, walking the pages with `after`. */
  async *allJobs(pageSize = 100, options: { signal?: AbortSignal } = {}): AsyncGenerator<FineTuningJob> {
    let after: string | undefined;
    for (;;) {
      const page = await this.listJobs({ after, limit: pageSize }, options);
      yield* page.data;
      const last = page.data.at(-1)?.id;
      if (!page.has_more || last === undefined) return;
      after = last;
    }
  }

  /** `GET /v1/fine_tuning/jobs/{id}`. */
  async getJob(id: string, options: { signal?: AbortSignal } = {}): Promise<FineTuningJob> {
    return await this.json({ method: 'GET', path: `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`, signal: options.signal }, parseJob);
  }

  /** `POST /v1/fine_tuning/jobs/{id}/cancel`: the job as it is after the cancel. */
  async cancelJob(id: string, options: { signal?: AbortSignal } = {}): Promise<FineTuningJob> {
    return await this.json({ method: 'POST', path: `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/cancel`, signal: options.signal }, parseJob);
  }

  /**
   * `GET …/events?after=&limit=`: `after` is a seq (our backend) or an event id (OpenAI's cursor). Events of a
   * server that does not number them come with seq 0; `job_id` is filled in from the request.
   */
  async listEvents(jobId: string, after?: number | string, limit?: number, options: { signal?: AbortSignal } = {}): Promise<ListObject<FineTuningJobEvent>> {
    const list = await this.json({ method: 'GET', path: `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events`, query: { after, limit }, signal: options.signal }, parseEventList);
    for (const event of list.data) if (event.job_id === '') event.job_id = jobId;
    return list;
  }

  /** Every event of a numbering backend after `afterSeq`, in seq order, walking pages of `pageSize`. */
  async eventsAfter(jobId: string, afterSeq: number, pageSize = 1000, options: { signal?: AbortSignal } = {}): Promise<FineTuningJobEvent[]> {
    const all: FineTuningJobEvent[] = [];
    let after = afterSeq;
    for (;;) {
      const page = await this.listEvents(jobId, after, pageSize, options);
      all.push(...page.data);
      const last = page.data.at(-1);
      if (!page.has_more || last === undefined || last.seq <= after) return all;
      after = last.seq;
    }
  }

  /**
   * `GET …/metrics?after=` (ours): the job's metrics events after seq `after` (all when absent) as columns, and the
   * last seq the backend had, in one answer. A backend from before the route answers 404 with the code
   * `unknown_route` (a missing job's 404 has `job_not_found`): read `…/events` pages from such a one.
   */
  async getMetrics(jobId: string, after?: number, options: { signal?: AbortSignal } = {}): Promise<FineTuningJobMetrics> {
    return await this.json({ method: 'GET', path: `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/metrics`, query: { after }, signal: options.signal }, parseJobMetrics);
  }

  /** `GET …/checkpoints`: one page. */
  async listCheckpoints(jobId: string, page: PageOptions = {}, options: { signal?: AbortSignal } = {}): Promise<ListObject<FineTuningJobCheckpoint>> {
    return await this.json({ method: 'GET', path: `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/checkpoints`, query: { ...page }, signal: options.signal }, parseCheckpointList);
  }

  /** `GET …/checkpoints/{ckpt}/files`: the adapter's files. */
  async checkpointFiles(jobId: string, checkpointId: string, options: { signal?: AbortSignal } = {}): Promise<CheckpointFile[]> {
    const path = `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/checkpoints/${encodeURIComponent(checkpointId)}/files`;
    return (await this.json({ method: 'GET', path, signal: options.signal }, parseCheckpointFileList)).data;
  }

  /**
   * Downloads one of a checkpoint's files to `destination`: streamed into a temp file beside it, renamed into
   * place once complete, so that `destination` is never a partial file. Returns the bytes written.
   */
  async downloadCheckpointFile(jobId: string, checkpointId: string, name: string, destination: string, options: TransferOptions = {}): Promise<number> {
    const path = `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/checkpoints/${encodeURIComponent(checkpointId)}/files/${encodeURIComponent(name)}`;
    const call: Call = { method: 'GET', path, signal: options.signal, idle: true };
    const deadline = new Deadline(this.idleTimeoutMs, options.signal);
    const temp = join(dirname(destination), `.${basename(destination)}.${randomBytes(6).toString('hex')}.partial`);
    let out: FileHandle | undefined;
    try {
      const response = await this.send(call, deadline);
      if (!response.ok) throw await this.httpError(call, response, deadline);
      const declared = response.headers.get('content-length');
      const total = declared === null ? undefined : Number(declared);
      out = await open(temp, 'wx');
      let bytes = 0;
      if (response.body) {
        // A reader rather than `for await`: the DOM typing of ReadableStream (which this file compiles against) has no async iterator.
        const reader = response.body.getReader();
        try {
          for (let next = await reader.read(); !next.done; next = await reader.read()) {
            deadline.touch();
            await out.write(next.value);
            bytes += next.value.length;
            options.onProgress?.({ bytes, total });
          }
        } finally {
          reader.releaseLock();
        }
      }
      if (total !== undefined && bytes !== total) throw new BackendError('protocol', `The download of '${name}' ended after ${bytes} of ${total} bytes.`, { request: describeCall(call) });
      await out.close();
      out = undefined;
      await rename(temp, destination);
      return bytes;
    } catch (error) {
      await out?.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw this.classify(error, call, deadline);
    } finally {
      deadline.dispose();
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Saved adapters (ours)

  /**
   * `POST /v1/adapters`: the backend copies the adapter of `request.model` (a checkpoint's or a job's model name)
   * and keeps it under `request.name`, so that chat can use it by that name. A 409 `http` error (`adapter_exists`)
   * when the name is taken and `overwrite` is not set.
   */
  async saveAdapter(request: SaveAdapterRequest, options: { signal?: AbortSignal } = {}): Promise<SavedAdapter> {
    return await this.json({ method: 'POST', path: '/v1/adapters', json: request, signal: options.signal }, parseSavedAdapter);
  }

  /**
   * Every saved adapter of this key, newest first (all pages). A plain OpenAI-compatible service has no
   * `/v1/adapters` and answers 404: it keeps no adapters, so the list is empty.
   */
  async listAdapters(options: { signal?: AbortSignal } = {}): Promise<SavedAdapter[]> {
    const all: SavedAdapter[] = [];
    let after: string | undefined;
    try {
      for (;;) {
        const page = await this.json({ method: 'GET', path: '/v1/adapters', query: { after, limit: 1000 }, signal: options.signal }, parseSavedAdapterList);
        all.push(...page.data);
        const last = page.data.at(-1)?.id;
        if (!page.has_more || last === undefined) return all;
        after = last;
      }
    } catch (error) {
      if (after === undefined && BackendError.is(error) && error.reason === 'http' && error.status === 404) return [];
      throw error;
    }
  }

  /** `GET /v1/adapters/{id}`. */
  async getAdapter(id: string, options: { signal?: AbortSignal } = {}): Promise<SavedAdapter> {
    return await this.json({ method: 'GET', path: `/v1/adapters/${encodeURIComponent(id)}`, signal: options.signal }, parseSavedAdapter);
  }

  /** `DELETE /v1/adapters/{id}`: the backend's copy is removed (the client's own copy is not touched). */
  async deleteAdapter(id: string, options: { signal?: AbortSignal } = {}): Promise<DeletedObject> {
    return await this.json({ method: 'DELETE', path: `/v1/adapters/${encodeURIComponent(id)}`, signal: options.signal }, parseDeletedObject);
  }

  // -------------------------------------------------------------------------------------------------------
  // Chat

  /**
   * `POST /v1/chat/completions` streamed: `onText` with each piece as it arrives. Aborting the signal closes the
   * connection, which stops the generation on the backend. An error the backend reports mid-stream is an `http`
   * error with its body.
   */
  async chat(request: ChatCompletionRequest, options: { onText?: (piece: string) => void; signal?: AbortSignal } = {}): Promise<ChatResult> {
    const call: Call = { method: 'POST', path: '/v1/chat/completions', json: { ...request, stream: true }, signal: options.signal, idle: true };
    const deadline = new Deadline(this.idleTimeoutMs, options.signal);
    try {
      const response = await this.send(call, deadline);
      if (!response.ok) throw await this.httpError(call, response, deadline);
      const type = response.headers.get('content-type') ?? '';
      if (!type.startsWith('text/event-stream')) {
        // A service that ignores `stream` answers whole.
        const whole = parseChatCompletion(parseJsonText(await response.text(), call));
        const choice = whole.choices[0];
        options.onText?.(choice.message.content);
        return { text: choice.message.content, finishReason: (choice.finish_reason as FinishReason | null) ?? null, usage: whole.usage ?? null };
      }
      return await this.readChatStream(call, response, deadline, options.onText);
    } catch (error) {
      throw this.classify(error, call, deadline);
    } finally {
      deadline.dispose();
    }
  }

  private async readChatStream(call: Call, response: Response, deadline: Deadline, onText?: (piece: string) => void): Promise<ChatResult> {
    const result: ChatResult = { text: '', finishReason: null, usage: null };
    if (!response.body) throw new BackendError('protocol', 'The chat answer has no body.', { request: describeCall(call) });
    const decoder = new TextDecoder();
    let pending = '';
    let data: string[] = [];
    // Server-sent events: `data:` lines accumulate until a blank line ends the event; `:` lines are comments.
    const dispatch = (): boolean => {
      if (data.length === 0) return false;
      const payload = data.join('\n');
      data = [];
      if (payload.trim() === '[DONE]') return true;
      const value = parseJsonText(payload, call);
      if (typeof value === 'object' && value !== null && 'error' in value) {
        if (isApiErrorBody(value)) {
          throw new BackendError('http', `The backend stopped the answer: ${value.error.message}`, { status: response.status, apiError: value.error, request: describeCall(call) });
        }
      }
      const chunk = parseChatChunk(value);
      for (const choice of chunk.choices) {
        const piece = choice.delta.content;
        if (typeof piece === 'string' && piece !== '') {
          result.text += piece;
          onText?.(piece);
        }
        if (choice.finish_reason !== null) result.finishReason = choice.finish_reason;
      }
      if (chunk.usage) result.usage = chunk.usage;
      return false;
    };
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        deadline.touch();
        pending += decoder.decode(value, { stream: !done });
        const lines = pending.split(/\r\n|\r|\n/);
        pending = done ? '' : (lines.pop() ?? '');
        for (const line of lines) {
          if (line === '') {
            if (dispatch()) return result;
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
        }
        if (done) {
          if (dispatch()) return result;
          throw new BackendError('protocol', 'The chat answer ended before its last event ([DONE]); the connection may have been cut.', { request: describeCall(call) });
        }
      }
    } finally {
      // Leaving early (done, error, abort) closes the connection, which stops the generation.
      await reader.cancel().catch(() => undefined);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // The plumbing

  /** Sends a call and returns its JSON answer checked by `parse` (a common/apiGuards.ts parser). */
  private async json<T>(call: Call, parse: (value: unknown) => T, onDeadline?: (deadline: Deadline) => void): Promise<T> {
    const deadline = new Deadline(call.idle ? this.idleTimeoutMs : this.timeoutMs, call.signal);
    onDeadline?.(deadline);
    try {
      const response = await this.send(call, deadline);
      if (!response.ok) throw await this.httpError(call, response, deadline);
      return parse(parseJsonText(await response.text(), call));
    } catch (error) {
      throw this.classify(error, call, deadline);
    } finally {
      deadline.dispose();
    }
  }

  private async send(call: Call, deadline: Deadline): Promise<Response> {
    const url = new URL(`${this.url}${call.path}`);
    for (const [name, value] of Object.entries(call.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value));
    const headers: Record<string, string> = { authorization: this.authorization, accept: 'application/json', ...call.headers };
    let body = call.body;
    if (call.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(call.json);
    }
    if (deadline.fired) throw new BackendError(deadline.fired, cancelledOrTimeout(deadline.fired, call, this.url), { request: describeCall(call) });
    // `duplex` is declared by Node's RequestInit but not by the DOM's, which a dependency's types may pull in.
    const init: RequestInit & { duplex?: 'half' } = { method: call.method, headers, body, signal: deadline.aborted };
    // A streamed body needs half-duplex (Node's fetch insists).
    if (body instanceof ReadableStream) init.duplex = 'half';
    return this.fetchImpl(url, init);
  }

  /** The BackendError of a refused request: 401 is `unauthorized`, the rest `http` with the API's error body. */
  private async httpError(call: Call, response: Response, deadline: Deadline): Promise<BackendError> {
    let text = '';
    try {
      text = await response.text();
    } catch (error) {
      if (deadline.fired) throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const apiError = isApiErrorBody(parsed) ? parsed.error : undefined;
    const request = describeCall(call);
    if (response.status === 401) {
      return new BackendError('unauthorized', `The backend at ${this.url} refused the API key${apiError ? ` (${apiError.message})` : ''}; set the right key for it.`, {
        status: 401,
        apiError,
        request,
      });
    }
    const why = apiError?.message ?? (text.trim().slice(0, 200) || response.statusText || 'no reason given');
    return new BackendError('http', `${request} failed with HTTP ${response.status}: ${why}`, { status: response.status, apiError, request });
  }

  /** Any failure of a call as a BackendError: the deadline says cancelled/timeout; a shape error is `protocol`; the rest `unreachable`. */
  private classify(error: unknown, call: Call, deadline: Deadline): BackendError {
    if (BackendError.is(error)) return error;
    const request = describeCall(call);
    if (deadline.fired) return new BackendError(deadline.fired, cancelledOrTimeout(deadline.fired, call, this.url), { request, cause: error });
    if (ResponseShapeError.is(error)) return new BackendError('protocol', `${request}: ${error.message}`, { request, cause: error });
    const code = networkCode(error);
    return new BackendError('unreachable', `Cannot reach the backend at ${this.url}${code ? ` (${code})` : ''}; check that it runs and that the URL is right.`, { request, cause: error });
  }
}

/** `GET /v1/files` for messages and logs (the query is left out: it may carry ids the log does not need). */
function describeCall(call: Call): string {
  return `${call.method} ${call.path}`;
}

function cancelledOrTimeout(why: 'cancelled' | 'timeout', call: Call, url: string): string {
  return why === 'cancelled'
    ? `${describeCall(call)} was cancelled.`
    : call.idle
      ? `${describeCall(call)} stalled: nothing moved for too long; the backend at ${url} may be overloaded or the network down.`
      : `${describeCall(call)} got no answer in time from the backend at ${url}.`;
}

/** Parses a body that must be JSON; anything else is a `protocol` error. */
function parseJsonText(text: string, call: Call): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const start = text.trim().slice(0, 80);
    throw new BackendError('protocol', `${describeCall(call)}: the answer is not JSON${start ? ` (it starts with ${JSON.stringify(start)})` : ' (it is empty)'}; is the URL a Finetune Studio or OpenAI-compatible backend?`, {
      request: describeCall(call),
    });
  }
}

/** The system error code under fetch's "fetch failed" (ECONNREFUSED, ENOTFOUND, …), for the message. */
function networkCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
