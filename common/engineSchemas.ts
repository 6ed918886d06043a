// JSON Schemas of what an engine writes (common/engineProtocol.ts), compiled once with ajv. An engine is a
// separate program (TypeScript or Python), so every line it prints is untrusted until it has passed here: the
// backend acts only on messages of a known type with every field of the right type and range.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { JOB_ERROR_CODES } from './api';
import type { EngineMessage } from './engineProtocol';

type Schema = Record<string, unknown>;

const count: Schema = { type: 'integer', minimum: 0 };
const finite: Schema = { type: 'number' };
const text: Schema = { type: 'string' };
const id: Schema = { type: 'string', minLength: 1, maxLength: 200 };

function object(properties: Record<string, Schema>, optional: readonly string[] = []): Schema {
  return {
    type: 'object',
    properties,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    // Unknown fields are tolerated: a newer engine may add some, and the backend ignores them.
    additionalProperties: true,
  };
}

const chatMessage: Schema = object({ role: { type: 'string', enum: ['system', 'user', 'assistant'] }, content: text });

const metricsData: Schema = object(
  {
    step: count,
    total_steps: count,
    epoch: { type: 'number', minimum: 0 },
    train_loss: finite,
    train_mean_token_accuracy: finite,
    valid_loss: finite,
    valid_mean_token_accuracy: finite,
    learning_rate: finite,
    grad_norm: finite,
    tokens_per_second: { type: 'number', minimum: 0 },
    elapsed: { type: 'number', minimum: 0 },
    gpu_memory: count,
  },
  ['valid_loss', 'valid_mean_token_accuracy', 'gpu_memory'],
);

/** One schema per message type; the `type` field picks it, so an error names the fields of that type only. */
const SCHEMAS: Record<EngineMessage['type'], Schema> = {
  started: object(
    {
      total_steps: count,
      train_examples: count,
      eval_examples: count,
      tokens_per_epoch: count,
      trained_tokens_per_epoch: count,
      truncated_examples: count,
      resumed_from_step: { type: ['integer', 'null'], minimum: 0 },
    },
    ['resumed_from_step'],
  ),
  metrics: object({ data: metricsData, trained_tokens: count }),
  checkpoint: object({
    step: count,
    path: { type: 'string', minLength: 1 },
    train_loss: finite,
    train_mean_token_accuracy: finite,
    valid_loss: { type: ['number', 'null'] },
    valid_mean_token_accuracy: { type: ['number', 'null'] },
    sample: {
      anyOf: [{ type: 'null' }, object({ messages: { type: 'array', items: chatMessage }, reference: text, answer: text })],
    },
  }),
  log: object({ level: { type: 'string', enum: ['info', 'warn', 'error'] }, message: text, data: { type: 'object' } }, ['data']),
  done: object({ trained_tokens: count, final_checkpoint: { type: 'string', minLength: 1 } }),
  error: object({ code: { type: 'string', enum: [...JOB_ERROR_CODES] }, message: text }),
  ready: object({ protocol: count }),
  token: object({ id, text }),
  chat_done: object({ id, finish_reason: { type: 'string', enum: ['stop', 'length'] }, prompt_tokens: count, completion_tokens: count }),
  chat_error: object({ id, code: { type: 'string', enum: ['model_unavailable', 'cancelled', 'engine_error', 'out_of_memory'] }, message: text }),
};

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const VALIDATORS = new Map<string, ValidateFunction>(Object.entries(SCHEMAS).map(([type, schema]) => [type, ajv.compile(schema)]));

function describe(error: ErrorObject): string {
  const where = error.instancePath === '' ? 'the message' : error.instancePath.slice(1).replace(/\//g, '.');
  return `${where} ${error.message ?? 'is invalid'}`;
}

/**
 * Parses one line an engine wrote. Resolves to the message when it is a JSON object of a known type whose fields
 * all check out, or to `{ error }` saying what is wrong (for the backend's log; the line is then ignored).
 */
export function parseEngineMessage(line: string): EngineMessage | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return { error: `not JSON: ${(e as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'not a JSON object' };
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return { error: 'no "type" field' };
  const validate = VALIDATORS.get(type);
  if (validate === undefined) return { error: `unknown message type "${type.slice(0, 40)}"` };
  if (!validate(value)) return { error: `${type}: ${validate.errors?.map(describe).join('; ') ?? 'invalid'}` };
  return value as EngineMessage;
}

/** Whether a parse result is a refusal rather than a message. */
export function isEngineParseError(result: EngineMessage | { error: string }): result is { error: string } {
  return !('type' in result);
}
