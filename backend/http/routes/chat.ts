// `POST /v1/chat/completions`: a base model, a fine-tuned one (a job's `fine_tuned_model`, a checkpoint's
// `fine_tuned_model_checkpoint`) or a saved adapter (by id or name), answered whole or streamed as server-sent
// events in OpenAI's chunk format. A client that closes the connection aborts the generation on the engine.
import { randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { ChatCompletion, ChatCompletionChunk, ChatUsage, FinishReason } from '../../../common/api';
import { checkChatCompletionRequest, type ChatCompletionInput } from '../../../common/apiSchemas';
import type { GenerationParams } from '../../../common/engineProtocol';
import type { ModelCatalogue } from '../../models';
import { ChatError, type ChatResult, type ChatTarget, type JobRuntime, type Log, type Owner } from '../../runtime';
import type { AdapterStore } from '../../store/adapters';
import { newId } from '../../store/files';
import { readJson } from '../body';
import { HttpError, invalid, notFound, sendJson } from '../errors';
import type { Router } from '../router';

/** Qwen2.5 Instruct's generation_config.json values, used for what a request leaves out. */
export const QWEN_GENERATION_DEFAULTS = { temperature: 0.7, top_p: 0.8, top_k: 20, repetition_penalty: 1.05, max_tokens: 512 } as const;

/** What the chat route uses. */
export interface ChatRouteDeps {
  models: ModelCatalogue;
  runtime: JobRuntime;
  adapters: AdapterStore;
  log: Log;
}

/** The generation settings of a request, defaults filled in. */
export function generationParams(request: ChatCompletionInput): GenerationParams {
  const stop = request.stop ?? [];
  return {
    temperature: request.temperature ?? QWEN_GENERATION_DEFAULTS.temperature,
    top_p: request.top_p ?? QWEN_GENERATION_DEFAULTS.top_p,
    top_k: request.top_k ?? QWEN_GENERATION_DEFAULTS.top_k,
    max_tokens: request.max_tokens ?? request.max_completion_tokens ?? QWEN_GENERATION_DEFAULTS.max_tokens,
    repetition_penalty: request.repetition_penalty ?? QWEN_GENERATION_DEFAULTS.repetition_penalty,
    seed: request.seed ?? randomInt(0, 2147483647),
    stop: typeof stop === 'string' ? [stop] : stop,
  };
}

/** A chat failure as the HTTP error it is before anything was sent. */
export function chatHttpError(error: ChatError): HttpError {
  switch (error.code) {
    case 'model_unavailable':
      return new HttpError('service_unavailable', `The model cannot be served: ${error.message}`, 'model_unavailable', 'model');
    case 'out_of_memory':
      return new HttpError('service_unavailable', `The engine ran out of memory: ${error.message}`, 'out_of_memory');
    case 'cancelled':
      return new HttpError('service_unavailable', `The generation was stopped: ${error.message}`, 'cancelled');
    default:
      return new HttpError('server_error', `The engine failed: ${error.message}`, 'engine_error');
  }
}

async function resolveTarget(owner: Owner, name: string, deps: ChatRouteDeps): Promise<ChatTarget> {
  const base = await deps.models.find(name);
  if (base) {
    if (base.object.available === false) throw new HttpError('service_unavailable', `The model '${name}' is not available: ${base.object.unavailable_reason ?? ''}`, 'model_unavailable', 'model');
    return { engine: base.engine, model: base.ref, adapter: null };
  }
  // Then the owner's fine-tuned models and checkpoints, then saved adapters by id or name.
  const tuned = deps.runtime.resolveFineTuned(owner, name) ?? deps.adapters.resolve(owner, name);
  if (!tuned) throw notFound(`The model '${name}' does not exist; GET /v1/models lists those this backend serves.`, 'model_not_found', 'model');
  return tuned;
}

/** Writes one server-sent event. */
function sse(res: ServerResponse, data: unknown): void {
  res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

/** Adds the chat route. */
export function chatRoutes(router: Router, deps: ChatRouteDeps): void {
  router.add('POST', '/v1/chat/completions', async ({ req, res, owner }) => {
    const checked = checkChatCompletionRequest(await readJson(req, res));
    if (!checked.ok) throw invalid(checked.error.message, checked.error.param, checked.error.code);
    const request = checked.value;
    const target = await resolveTarget(owner, request.model, deps);
    const params = generationParams(request);
    const messages = request.messages.map(({ role, content }) => ({ role, content }));
    const id = newId('chat');
    const created = Math.floor(Date.now() / 1000);
    const model = request.model;

    // The client going away (the response closing before it ended) stops the generation on the engine.
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    // A generation that ends in an error (or is stopped because its client left) gets a line of its own.
    const failed = (error: ChatError): void => {
      const why = abort.signal.aborted ? 'stopped: the client went away' : `failed (${error.code}): ${error.message}`;
      deps.log.info(`chat ${id} on ${model} ${why}`);
    };

    if (request.stream !== true) {
      let text = '';
      let result: ChatResult;
      try {
        result = await deps.runtime.chat(target, { messages, params }, (piece) => (text += piece), abort.signal);
      } catch (error) {
        if (!ChatError.is(error)) throw error;
        failed(error);
        throw chatHttpError(error);
      }
      const answer: ChatCompletion = {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: result.finish_reason }],
        usage: usage(result.prompt_tokens, result.completion_tokens),
      };
      sendJson(res, 200, answer);
      return;
    }

    const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null, use?: ChatUsage): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
      ...(use ? { usage: use } : {}),
    });
    // Headers wait for the first piece, so that a failure before it is still a proper HTTP error.
    const start = (): void => {
      if (res.headersSent) return;
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
      sse(res, chunk({ role: 'assistant', content: '' }, null));
    };
    try {
      const result = await deps.runtime.chat(
        target,
        { messages, params },
        (piece) => {
          start();
          if (piece !== '') sse(res, chunk({ content: piece }, null));
        },
        abort.signal,
      );
      start();
      sse(res, chunk({}, result.finish_reason, usage(result.prompt_tokens, result.completion_tokens)));
      sse(res, '[DONE]');
      res.end();
    } catch (error) {
      if (!ChatError.is(error)) throw error;
      failed(error);
      if (!res.headersSent) throw chatHttpError(error);
      if (!res.writable) return;
      sse(res, chatHttpError(error).body());
      sse(res, '[DONE]');
      res.end();
    }
  });
}

function usage(prompt: number, completion: number): ChatUsage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
