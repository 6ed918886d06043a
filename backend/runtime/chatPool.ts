// Chat on fine-tuned models and base models: one long-lived `serve` process per engine, started on first use,
// shared by every request to that engine (the engine keeps the base model loaded and swaps adapters). Requests
// are multiplexed by id over the one stdin/stdout pair. A process that dies fails its open requests with a
// ChatError and is started again by the next request.
import { join } from 'node:path';
import { ENGINE_PROTOCOL_VERSION, type ChatRequestMessage, type EngineMessage } from '../../common/engineProtocol';
import { type ChatCounts, ChatError, type ChatResult, type ChatTarget, type Log } from '../runtime';
import { EngineProcess } from './engineProcess';
import type { Engine } from './engines';
import { newId } from './ids';

/** How long a chat process may take to load before `ready` (a big base model from disk takes a while). */
export const CHAT_READY_TIMEOUT_MS = 120_000;

interface Pending {
  onText(text: string): void;
  resolve(result: ChatResult): void;
  reject(error: ChatError): void;
}

/** One serve process and its open requests. */
class ChatServer {
  readonly process: EngineProcess;
  readonly ready: Promise<void>;
  readonly pending = new Map<string, Pending>();
  private readyState: { resolve: () => void; reject: (e: ChatError) => void } | undefined;

  constructor(engine: Engine, dataDir: string, log: Log, onExit: () => void, closing: () => boolean) {
    const command = engine.command('serve');
    if (command === undefined) throw new ChatError('model_unavailable', `The ${engine.info.id} engine is not available: ${engine.info.reason ?? 'unknown reason'}.`);
    const label = `chat engine ${engine.info.id}`;
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyState = { resolve, reject };
    });
    // Nobody may be waiting yet when it fails; the rejection is seen by the requests that await it.
    this.ready.catch(() => undefined);
    this.process = new EngineProcess({ command, label, log, stderrFile: join(dataDir, `chat-${engine.info.id}.log`), onMessage: (m) => this.message(m, log, label) });
    const timer = setTimeout(() => {
      this.readyState?.reject(new ChatError('engine_error', `The ${engine.info.id} chat engine did not get ready within ${CHAT_READY_TIMEOUT_MS / 1000} s.`));
      void this.process.stop(0, 2000);
    }, CHAT_READY_TIMEOUT_MS);
    void this.process.exited.then((exit) => {
      clearTimeout(timer);
      onExit();
      const tail = this.process.stderrTail();
      const how = exit.spawnError ?? (exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`);
      const error = new ChatError('engine_error', `The ${engine.info.id} chat engine stopped (${how}).${tail.length > 0 ? ` Its last output: ${tail.slice(-5).join(' | ')}` : ''}`);
      if (closing()) log.info(`${label}: stopped`);
      else log.warn(`${label}: stopped (${how})`);
      this.readyState?.reject(error);
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    });
    void this.ready.then(() => clearTimeout(timer), () => clearTimeout(timer));
  }

  private message(message: EngineMessage, log: Log, label: string): void {
    switch (message.type) {
      case 'ready':
        if (message.protocol !== ENGINE_PROTOCOL_VERSION) {
          this.readyState?.reject(new ChatError('engine_error', `The chat engine speaks protocol ${message.protocol}; this backend speaks ${ENGINE_PROTOCOL_VERSION}.`));
          void this.process.stop(0, 2000);
          return;
        }
        this.readyState?.resolve();
        return;
      case 'token':
        this.pending.get(message.id)?.onText(message.text);
        return;
      case 'chat_done': {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        p?.resolve({ finish_reason: message.finish_reason, prompt_tokens: message.prompt_tokens, completion_tokens: message.completion_tokens });
        return;
      }
      case 'chat_error': {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        p?.reject(new ChatError(message.code, message.message));
        return;
      }
      case 'log':
        log[message.level](`${label}: ${message.message}`);
        return;
      default:
        log.warn(`${label}: ignored a ${message.type} message (not part of chat)`);
    }
  }
}

/** The chat processes of the backend's engines (see the file comment). */
export class ChatPool {
  private readonly servers = new Map<string, ChatServer>();
  private closed = false;
  private readonly counters: ChatCounts = { active: 0, completed: 0, stopped: 0 };

  constructor(
    private readonly engines: ReadonlyMap<string, Engine>,
    private readonly dataDir: string,
    private readonly log: Log,
  ) {}

  /** Chat generations since the pool was made: in progress, completed, and stopped by their client. */
  counts(): ChatCounts {
    return { ...this.counters };
  }

  /**
   * Generates an answer, streaming pieces to `onText`; rejects with a ChatError. Counted from the call (waiting
   * for the engine to load included) to its end: a generation that fails for another reason is neither completed
   * nor stopped.
   */
  async chat(
    target: ChatTarget,
    request: Omit<ChatRequestMessage, 'type' | 'id' | 'model' | 'adapter'>,
    onText: (text: string) => void,
    signal: AbortSignal,
  ): Promise<ChatResult> {
    this.counters.active++;
    try {
      const result = await this.generate(target, request, onText, signal);
      this.counters.completed++;
      return result;
    } catch (error) {
      if (signal.aborted || (ChatError.is(error) && error.code === 'cancelled')) this.counters.stopped++;
      throw error;
    } finally {
      this.counters.active--;
    }
  }

  private async generate(
    target: ChatTarget,
    request: Omit<ChatRequestMessage, 'type' | 'id' | 'model' | 'adapter'>,
    onText: (text: string) => void,
    signal: AbortSignal,
  ): Promise<ChatResult> {
    if (signal.aborted) throw new ChatError('cancelled', 'The request was cancelled.');
    if (this.closed) throw new ChatError('engine_error', 'The backend is shutting down.');
    const engine = this.engines.get(target.engine);
    if (engine === undefined) throw new ChatError('model_unavailable', `No engine "${target.engine}" on this backend.`);
    await engine.ready?.();
    const server = this.server(engine);
    await Promise.race([server.ready, aborted(signal)]);
    const id = newId('chat');
    return new Promise<ChatResult>((resolve, reject) => {
      const onAbort = (): void => {
        if (!server.pending.delete(id)) return;
        // The engine stops generating; its answer to the cancel (chat_error cancelled) finds no request any more.
        server.process.send({ type: 'chat_cancel', id });
        reject(new ChatError('cancelled', 'The request was cancelled.'));
      };
      const settle = (): void => signal.removeEventListener('abort', onAbort);
      server.pending.set(id, {
        onText,
        resolve: (r) => {
          settle();
          resolve(r);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
      const sent = server.process.send({ type: 'chat', id, model: target.model, adapter: target.adapter, ...request });
      if (!sent) {
        server.pending.delete(id);
        settle();
        reject(new ChatError('engine_error', 'The chat engine stopped before it got the request.'));
      }
    });
  }

  private server(engine: Engine): ChatServer {
    const id = engine.info.id;
    let server = this.servers.get(id);
    if (server === undefined || server.process.done) {
      const created: ChatServer = new ChatServer(
        engine,
        this.dataDir,
        this.log,
        () => {
          if (this.servers.get(id) === created) this.servers.delete(id);
        },
        () => this.closed,
      );
      server = created;
      this.servers.set(id, server);
    }
    return server;
  }

  /** The process ids of the running chat processes (for tests). */
  pids(): number[] {
    return [...this.servers.values()].map((s) => s.process.pid).filter((p): p is number => p !== undefined);
  }

  /** Stops every chat process. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.servers.values()].map((s) => s.process.stop(500, 2000)));
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    const fail = (): void => reject(new ChatError('cancelled', 'The request was cancelled.'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
