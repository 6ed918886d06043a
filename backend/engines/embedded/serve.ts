// The chat process of the embedded engine: requests are answered one at a time in arrival order, with the text
// streamed as `token` messages. Models are loaded once and kept: a base model per folder, and a model with its
// LoRA adapter per (folder, adapter) pair (the model holds one adapter set at a time, and tiny models cost
// little memory, so each adapter gets its own copy rather than swapping adapters in and out per request).
// The checkpoint of a full fine-tuning run is a whole model folder (config.json + model.safetensors, no
// adapter_config.json): a chat whose `adapter` names one loads that folder as the model, with the base's tokenizer.
import { join } from 'node:path';
import type { ChatCancelMessage, ChatErrorMessage, ChatRequestMessage, EngineMessage } from '../../../common/engineProtocol';
import { isFullCheckpoint, readAdapterSettings } from './checkpoint';
import { promptIds, type EngineLog } from './data';
import { CancelledError, EngineError, oneLine } from './errors';
import { generate } from './generate';
import { ModelError, Qwen2Model } from './model/qwen2';
import { readSafetensors, SafetensorsError } from './model/safetensors';
import { ensureModelFolder } from './tinyModels';
import { loadTokenizer, TokenBytes, type ModelTokenizer } from './tokenizer';

/** Models with adapters kept loaded at once; the least recently used is dropped beyond this. */
const MAX_LOADED = 4;

interface Loaded extends ModelTokenizer {
  model: Qwen2Model;
  bytes: TokenBytes;
}

interface Running {
  id: string;
  cancelled: boolean;
}

function unavailable(what: string, e: unknown): EngineError {
  if (EngineError.is(e)) return e;
  if (ModelError.is(e) || SafetensorsError.is(e)) return new EngineError('model_unavailable', `${what}: ${oneLine(e)}`);
  return new EngineError('engine_error', `${what}: ${oneLine(e)}`);
}

/** Serves `chat` and `chat_cancel` requests; answers through `send`. */
export class ChatServer {
  private readonly queue: ChatRequestMessage[] = [];
  private running: Running | null = null;
  private busy = false;
  private idleWaiters: (() => void)[] = [];
  private readonly tokenizers = new Map<string, Promise<ModelTokenizer>>();
  private readonly models = new Map<string, Promise<Loaded>>();

  constructor(
    private readonly send: (message: EngineMessage) => void,
    private readonly log: EngineLog,
  ) {}

  /** Queues a chat, or cancels one (queued: answered at once; running: stopped within a token). */
  handle(request: ChatRequestMessage | ChatCancelMessage): void {
    if (request.type === 'chat_cancel') {
      const at = this.queue.findIndex((q) => q.id === request.id);
      if (at >= 0) {
        this.queue.splice(at, 1);
        this.fail(request.id, 'cancelled', 'cancelled before it started');
      } else if (this.running?.id === request.id) {
        this.running.cancelled = true;
      }
      return;
    }
    this.queue.push(request);
    void this.pump();
  }

  /** Cancels everything (queued and running) and resolves once nothing runs. */
  async stop(): Promise<void> {
    for (const q of this.queue.splice(0)) this.fail(q.id, 'cancelled', 'the chat process is stopping');
    if (this.running) this.running.cancelled = true;
    if (!this.busy) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private fail(id: string, code: ChatErrorMessage['code'], message: string): void {
    this.send({ type: 'chat_error', id, code, message });
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) await this.answer(next);
    } finally {
      this.busy = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async answer(request: ChatRequestMessage): Promise<void> {
    const running: Running = { id: request.id, cancelled: false };
    this.running = running;
    try {
      const loaded = await this.load(request);
      if (running.cancelled) throw new CancelledError();
      const { tokenizer, special } = loaded;
      const p = request.params;
      const result = await generate({
        model: loaded.model,
        tokenizer,
        bytes: loaded.bytes,
        prompt: promptIds(tokenizer, special, request.messages),
        stopIds: [special.imEnd, ...(special.endOfText === undefined ? [] : [special.endOfText])],
        stop: p.stop,
        maxTokens: p.max_tokens,
        sampling: { temperature: p.temperature, topP: p.top_p, topK: p.top_k, repetitionPenalty: p.repetition_penalty },
        seed: p.seed,
        onText: (text) => this.send({ type: 'token', id: request.id, text }),
        cancelled: () => running.cancelled,
      });
      this.send({
        type: 'chat_done',
        id: request.id,
        finish_reason: result.finishReason,
        prompt_tokens: result.promptTokens,
        completion_tokens: result.completionTokens,
      });
    } catch (e) {
      if (CancelledError.is(e)) {
        this.fail(request.id, 'cancelled', 'cancelled');
      } else if (EngineError.is(e)) {
        this.fail(request.id, e.code === 'model_unavailable' || e.code === 'out_of_memory' ? e.code : 'engine_error', e.message);
      } else {
        process.stderr.write(`chat ${request.id}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
        this.fail(request.id, 'engine_error', oneLine(e));
      }
    } finally {
      this.running = null;
    }
  }

  /** The model (with the request's adapter) and its tokenizer, loaded once and kept. */
  private load(request: ChatRequestMessage): Promise<Loaded> {
    const key = `${request.model.path}\n${request.adapter ?? ''}`;
    let promise = this.models.get(key);
    if (promise) {
      // Most recently used last: the first entry is the one to drop.
      this.models.delete(key);
    } else {
      promise = this.loadFresh(request);
      promise.catch(() => this.models.delete(key));
      while (this.models.size >= MAX_LOADED) {
        const oldest = this.models.keys().next().value;
        if (oldest === undefined) break;
        this.models.delete(oldest);
      }
    }
    this.models.set(key, promise);
    return promise;
  }

  private async loadFresh(request: ChatRequestMessage): Promise<Loaded> {
    const { model: ref, adapter } = request;
    let tok = this.tokenizers.get(ref.path);
    if (!tok) {
      tok = ensureModelFolder(ref).then(() => loadTokenizer(ref.path));
      tok.catch(() => this.tokenizers.delete(ref.path));
      this.tokenizers.set(ref.path, tok);
    }
    const tokenizer = await tok;
    const whole = adapter !== null && isFullCheckpoint(adapter);
    let model: Qwen2Model;
    try {
      model = await Qwen2Model.load(whole ? adapter : ref.path);
    } catch (e) {
      throw unavailable(whole ? `cannot load the fine-tuned model ${adapter}` : `cannot load ${ref.id}`, e);
    }
    if (whole && tokenizer.tokenizer.vocabSize > model.config.vocab_size) {
      throw new EngineError('model_unavailable', `${adapter}: the tokenizer of ${ref.id} has ${tokenizer.tokenizer.vocabSize} ids but the model only ${model.config.vocab_size} embeddings`);
    }
    if (adapter !== null && !whole) {
      const settings = await readAdapterSettings(adapter);
      try {
        model.loadLora(await readSafetensors(join(adapter, 'adapter_model.safetensors')), settings);
      } catch (e) {
        throw unavailable(`cannot load the adapter ${adapter}`, e);
      }
    }
    this.log('info', whole ? `loaded the fine-tuned model ${adapter} (base ${ref.id})` : `loaded ${ref.id}${adapter === null ? '' : ` with the adapter ${adapter}`}`);
    return { model, ...tokenizer, bytes: new TokenBytes(tokenizer.tokenizer) };
  }
}
