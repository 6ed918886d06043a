// JSON Schemas of the request bodies of the training API (common/api.ts), compiled once with ajv. They check
// shapes and types and refuse unknown fields (`additionalProperties: false`), so a misspelt hyper-parameter
// is an error rather than a silent default; value ranges that depend on the model are checked by the backend
// after this. A failure comes back as the field at fault (a dotted path) and a stable code.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { ChatCompletionRequest, CreateJobRequest, SaveAdapterRequest } from './api';
import { LORA_TARGET_MODULES, LR_SCHEDULERS, TRAINING_TYPES } from './api';
import { SEED_MAX } from './hyperparameters';

/** Why a body does not fit its schema: the field as a dotted path (`method.supervised.hyperparameters.lora_r`). */
export interface SchemaError {
  param: string | null;
  /** `unknown_parameter`, `missing_required_parameter` or `invalid_value`. */
  code: 'unknown_parameter' | 'missing_required_parameter' | 'invalid_value';
  message: string;
}

/** The result of checking a body. */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: SchemaError };

/** Most characters of a suffix (OpenAI's limit). */
export const SUFFIX_MAX = 64;
/** What a suffix may hold: it becomes part of a model name. */
export const SUFFIX_PATTERN = '^[A-Za-z0-9_.-]*$';

/** Most pairs of `metadata` (OpenAI's limits: 16 pairs, keys up to 64 and values up to 512 characters). */
export const METADATA_MAX_PAIRS = 16;

/** OpenAI's three that take "auto" for "let the backend choose". */
const autoOr = (type: 'integer' | 'number'): object => ({ anyOf: [{ const: 'auto' }, { type }] });

const hyperparametersSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    n_epochs: autoOr('integer'),
    batch_size: autoOr('integer'),
    learning_rate_multiplier: autoOr('number'),
    learning_rate: { type: 'number' },
    max_seq_length: { type: 'integer' },
    warmup_ratio: { type: 'number' },
    lr_scheduler: { enum: [...LR_SCHEDULERS] },
    training_type: { enum: [...TRAINING_TYPES] },
    lora_r: { type: 'integer' },
    lora_alpha: { type: 'number' },
    lora_dropout: { type: 'number' },
    lora_target_modules: { type: 'array', items: { enum: [...LORA_TARGET_MODULES] } },
    checkpoints: { type: 'integer' },
    eval_ratio: { type: 'number' },
  },
} as const;

/** `POST /v1/fine_tuning/jobs`. */
export const createJobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['model', 'training_file'],
  properties: {
    model: { type: 'string', minLength: 1 },
    training_file: { type: 'string', minLength: 1 },
    validation_file: { type: ['string', 'null'] },
    suffix: { type: ['string', 'null'], maxLength: SUFFIX_MAX, pattern: SUFFIX_PATTERN },
    seed: { type: ['integer', 'null'], minimum: 0, maximum: SEED_MAX },
    metadata: {
      type: ['object', 'null'],
      maxProperties: METADATA_MAX_PAIRS,
      propertyNames: { maxLength: 64 },
      additionalProperties: { type: 'string', maxLength: 512 },
    },
    method: {
      type: 'object',
      additionalProperties: false,
      required: ['type'],
      properties: {
        type: { const: 'supervised' },
        supervised: {
          type: 'object',
          additionalProperties: false,
          properties: { hyperparameters: hyperparametersSchema },
        },
      },
    },
    hyperparameters: hyperparametersSchema,
    gpus: { type: 'integer', minimum: 0, maximum: 64 },
  },
} as const;

/** `POST /v1/chat/completions`: Qwen2.5's sampling settings, and the OpenAI fields clients commonly send. */
export const chatCompletionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 10000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['role', 'content'],
        properties: {
          role: { enum: ['system', 'user', 'assistant'] },
          content: { type: 'string' },
          name: { type: 'string' },
        },
      },
    },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0, maximum: 1000000 },
    max_tokens: { type: 'integer', minimum: 1, maximum: 131072 },
    max_completion_tokens: { type: 'integer', minimum: 1, maximum: 131072 },
    repetition_penalty: { type: 'number', exclusiveMinimum: 0, maximum: 10 },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
    stop: { type: ['string', 'array', 'null'], minLength: 1, maxItems: 4, items: { type: 'string', minLength: 1 } },
    stream: { type: ['boolean', 'null'] },
    stream_options: { type: ['object', 'null'], additionalProperties: false, properties: { include_usage: { type: 'boolean' } } },
    n: { const: 1 },
    user: { type: 'string' },
  },
} as const;

/** Most characters of a saved adapter's name (it is the folder name the client saved to). */
export const ADAPTER_NAME_MAX = 128;
/**
 * What a saved adapter's name may hold: letters, digits, `_`, `.`, `-`, and not only dots. Checked by the backend
 * after the schema, so that the refusal can say what is allowed.
 */
export const ADAPTER_NAME_PATTERN = /^(?!\.+$)[A-Za-z0-9_.-]{1,128}$/;

/** `POST /v1/adapters`. */
export const saveAdapterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['model', 'name'],
  properties: {
    model: { type: 'string', minLength: 1 },
    name: { type: 'string' },
    location: { type: ['string', 'null'], maxLength: 4096 },
    overwrite: { type: 'boolean' },
  },
} as const;

/** A chat request as the schema lets it through: the API's fields plus the OpenAI extras it tolerates. */
export type ChatCompletionInput = ChatCompletionRequest & {
  max_completion_tokens?: number;
  stop?: string | string[] | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  n?: 1;
  user?: string;
};

let ajv: Ajv | undefined;
const compiled = new Map<object, ValidateFunction>();

/** Compiles a schema the first time it is used, and never again. */
function validator(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    ajv ??= new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** `/method/supervised/hyperparameters/lora_r` → `method.supervised.hyperparameters.lora_r`; `/messages/0` → `messages[0]`. */
export function dottedPath(pointer: string, last?: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (last !== undefined) parts.push(last);
  let out = '';
  for (const part of parts) out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

/** Turns ajv's first error into the field at fault and a sentence. */
function explain(errors: readonly ErrorObject[]): SchemaError {
  // "auto"-or-number fields fail both branches; their anyOf error names the field itself.
  const error = errors.find((e) => e.keyword === 'anyOf') ?? errors[0];
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const param = dottedPath(error.instancePath, String(params.additionalProperty));
      return { param, code: 'unknown_parameter', message: `Unknown parameter: '${param}'.` };
    }
    case 'required': {
      const param = dottedPath(error.instancePath, String(params.missingProperty));
      return { param, code: 'missing_required_parameter', message: `Missing required parameter: '${param}'.` };
    }
    default: {
      const param = dottedPath(error.instancePath) || null;
      let what = error.message ?? 'is not valid';
      if (error.keyword === 'anyOf') what = 'must be a number or "auto"';
      else if (error.keyword === 'enum') what = `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      else if (error.keyword === 'const') what = `must be ${JSON.stringify(params.allowedValue)}`;
      else if (error.keyword === 'propertyNames') what = 'has a key longer than 64 characters';
      else if (error.keyword === 'type') what = `must be of type ${String(params.type).replace(/,/g, ' or ')}`;
      return { param, code: 'invalid_value', message: param ? `Invalid value for '${param}': ${what}.` : `The request body ${what}.` };
    }
  }
}

function check<T>(schema: object, body: unknown): Checked<T> {
  const validate = validator(schema);
  if (validate(body)) return { ok: true, value: body as T };
  return { ok: false, error: explain(validate.errors ?? []) };
}

/** Checks a `POST /v1/fine_tuning/jobs` body. */
export function checkCreateJobRequest(body: unknown): Checked<CreateJobRequest> {
  return check<CreateJobRequest>(createJobSchema, body);
}

/** Checks a `POST /v1/chat/completions` body. */
export function checkChatCompletionRequest(body: unknown): Checked<ChatCompletionInput> {
  return check<ChatCompletionInput>(chatCompletionSchema, body);
}

/** Checks a `POST /v1/adapters` body (the name's characters are checked by the backend after this). */
export function checkSaveAdapterRequest(body: unknown): Checked<SaveAdapterRequest> {
  return check<SaveAdapterRequest>(saveAdapterSchema, body);
}
