// JSON Schemas of the RESPONSES the extension's client reads (common/api.ts), compiled once with ajv, with an
// `is…` guard and a `parse…` function per shape. Request bodies are checked by common/apiSchemas.ts; this is the
// other direction: nothing the backend sends is used before it has passed here.
//
// The schemas require the fields the client reads and tolerate extra ones (a newer backend may add fields). The
// same client also talks to plain OpenAI-compatible services, which do not send our additions: those fields are
// filled with neutral defaults (null, 0, 'unknown') by ajv's `useDefaults`, so the typed object is true to its
// type. An event without a `seq` gets seq 0, which no numbered event has (ours start at 1): the event stream
// takes it as "this server does not number its events" (see src/backendEvents.ts).
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type {
  ApiErrorBody,
  ChatCompletion,
  ChatCompletionChunk,
  CheckpointFile,
  DeletedObject,
  FileObject,
  FineTuningJob,
  FineTuningJobCheckpoint,
  FineTuningJobEvent,
  FineTuningJobMetrics,
  ListObject,
  ModelObject,
  SavedAdapter,
  ServerSocketMessage,
  SystemInfo,
} from './api';
import { ERROR_STATUS, JOB_STATUSES, METRICS_COLUMNS } from './api';

const nullable = (type: string): object => ({ type: [type, 'null'] });

/** `{"error": {...}}`: OpenAI's error body with our dataset findings. */
export const apiErrorBodySchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message'],
      properties: {
        message: { type: 'string' },
        // Other services send their own types; an unknown one is kept as it is (the status tells the rest).
        type: { type: 'string', default: 'server_error' },
        param: { ...nullable('string'), default: null },
        code: { ...nullable('string'), default: null },
        findings: {
          type: 'array',
          items: {
            type: 'object',
            required: ['line', 'column', 'code', 'severity', 'message'],
            properties: {
              line: { type: 'integer', minimum: 1 },
              column: { type: 'integer', minimum: 1 },
              code: { type: 'string' },
              severity: { enum: ['error', 'warning'] },
              message: { type: 'string' },
            },
          },
        },
        total_findings: { type: 'integer', minimum: 0 },
      },
    },
  },
} as const;

/** `/v1/files` objects. */
export const fileObjectSchema = {
  type: 'object',
  required: ['id', 'object', 'bytes', 'created_at', 'filename', 'purpose'],
  properties: {
    id: { type: 'string', minLength: 1 },
    object: { const: 'file' },
    bytes: { type: 'integer', minimum: 0 },
    created_at: { type: 'number' },
    filename: { type: 'string' },
    purpose: { type: 'string' },
    status: { type: 'string', default: 'processed' },
    examples: { type: 'integer', minimum: 0, default: 0 },
    warnings: { type: 'integer', minimum: 0, default: 0 },
    // No default: absent means "not known" (an older backend, or a file stored before it was kept).
    system_prompt: nullable('string'),
  },
} as const;

/** `/v1/adapters` objects (ours only). */
export const savedAdapterSchema = {
  type: 'object',
  required: ['id', 'object', 'name', 'created_at', 'base_model', 'job_id'],
  properties: {
    id: { type: 'string', minLength: 1 },
    object: { const: 'adapter' },
    name: { type: 'string', minLength: 1 },
    created_at: { type: 'number' },
    base_model: { type: 'string' },
    job_id: { type: 'string' },
    checkpoint_id: { ...nullable('string'), default: null },
    step_number: { ...nullable('integer'), default: null },
    source_model: { type: 'string', default: '' },
    location: { ...nullable('string'), default: null },
    bytes: { type: 'integer', minimum: 0, default: 0 },
  },
} as const;

/** `DELETE /v1/files/{id}`. */
export const deletedObjectSchema = {
  type: 'object',
  required: ['id', 'deleted'],
  properties: { id: { type: 'string' }, object: { type: 'string', default: 'file' }, deleted: { type: 'boolean' } },
} as const;

const hyperparametersSchema = { type: 'object' } as const;

/** `/v1/fine_tuning/jobs` objects. */
export const jobSchema = {
  type: 'object',
  required: ['id', 'object', 'created_at', 'model', 'status'],
  properties: {
    id: { type: 'string', minLength: 1 },
    object: { const: 'fine_tuning.job' },
    created_at: { type: 'number' },
    finished_at: { ...nullable('number'), default: null },
    model: { type: 'string' },
    fine_tuned_model: { ...nullable('string'), default: null },
    organization_id: { type: 'string', default: '' },
    status: { enum: [...JOB_STATUSES] },
    training_file: { type: 'string', default: '' },
    validation_file: { ...nullable('string'), default: null },
    hyperparameters: hyperparametersSchema,
    method: { type: 'object' },
    result_files: { type: 'array', items: { type: 'string' } },
    trained_tokens: { ...nullable('number'), default: null },
    error: {
      anyOf: [
        { type: 'null' },
        { type: 'object', required: ['message'], properties: { code: nullable('string'), message: { type: 'string' }, param: nullable('string') } },
      ],
      default: null,
    },
    seed: { type: 'integer', default: 0 },
    suffix: { ...nullable('string'), default: null },
    metadata: { anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: { type: 'string' } }], default: null },
    estimated_finish: { ...nullable('number'), default: null },
    user_provided_suffix: { ...nullable('string'), default: null },
    started_at: { ...nullable('number'), default: null },
    queue_position: { ...nullable('integer'), default: null },
    engine: { type: 'string', default: 'unknown' },
    gpus: { type: 'integer', minimum: 0, default: 0 },
    progress: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['step', 'total_steps', 'epoch'],
          properties: { step: { type: 'integer', minimum: 0 }, total_steps: { type: 'integer', minimum: 0 }, epoch: { type: 'number' } },
        },
      ],
      default: null,
    },
    last_event_seq: { type: 'integer', minimum: 0, default: 0 },
  },
} as const;

/** Events: ours carry `seq` and `job_id`; a plain OpenAI service's get seq 0 and job_id '' (filled in by the client). */
export const eventSchema = {
  type: 'object',
  required: ['id', 'object', 'created_at', 'message'],
  properties: {
    id: { type: 'string', minLength: 1 },
    object: { const: 'fine_tuning.job.event' },
    created_at: { type: 'number' },
    level: { type: 'string', default: 'info' },
    message: { type: 'string' },
    seq: { type: 'integer', minimum: 0, default: 0 },
    job_id: { type: 'string', default: '' },
    type: { enum: ['message', 'metrics'], default: 'message' },
    data: { anyOf: [{ type: 'null' }, { type: 'object' }] },
  },
  // A metrics event's data is read by charts: its numbers must be there.
  if: { properties: { type: { const: 'metrics' } }, required: ['type'] },
  then: {
    required: ['data'],
    properties: {
      data: {
        type: 'object',
        required: ['step'],
        properties: {
          step: { type: 'integer', minimum: 0 },
          total_steps: { type: 'integer', minimum: 0 },
          epoch: { type: 'number' },
          train_loss: { type: 'number' },
          train_mean_token_accuracy: { type: 'number' },
          valid_loss: { type: 'number' },
          valid_mean_token_accuracy: { type: 'number' },
          learning_rate: { type: 'number' },
          grad_norm: { type: 'number' },
          tokens_per_second: { type: 'number' },
          elapsed: { type: 'number' },
        },
      },
    },
  },
} as const;

const numberOrNullColumn = { type: 'array', items: { type: ['number', 'null'] } } as const;

/**
 * `…/metrics` (ours): every MetricsData column, each an array (steps are numbers, the rest numbers or null). Equal
 * lengths are checked after the schema (JSON Schema cannot say it); extra columns from a newer backend are kept.
 */
export const jobMetricsSchema = {
  type: 'object',
  required: ['object', 'job_id', 'last_seq', 'count', 'columns', 'seq'],
  properties: {
    object: { const: 'fine_tuning.job.metrics' },
    job_id: { type: 'string' },
    last_seq: { type: 'integer', minimum: 0 },
    count: { type: 'integer', minimum: 0 },
    columns: {
      type: 'object',
      required: [...METRICS_COLUMNS],
      properties: {
        ...Object.fromEntries(METRICS_COLUMNS.map((name) => [name, numberOrNullColumn])),
        step: { type: 'array', items: { type: 'integer', minimum: 0 } },
      },
    },
    seq: { type: 'array', items: { type: 'integer', minimum: 1 } },
  },
} as const;

/** `…/checkpoints` objects. */
export const checkpointSchema = {
  type: 'object',
  required: ['id', 'object', 'created_at', 'fine_tuned_model_checkpoint', 'fine_tuning_job_id', 'metrics', 'step_number'],
  properties: {
    id: { type: 'string', minLength: 1 },
    object: { const: 'fine_tuning.job.checkpoint' },
    created_at: { type: 'number' },
    fine_tuned_model_checkpoint: { type: 'string' },
    fine_tuning_job_id: { type: 'string' },
    metrics: { type: 'object' },
    step_number: { type: 'integer', minimum: 0 },
    sample: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['messages', 'reference', 'answer'],
          properties: {
            messages: { type: 'array', items: { type: 'object', required: ['role', 'content'], properties: { role: { type: 'string' }, content: { type: 'string' } } } },
            reference: { type: 'string' },
            answer: { type: 'string' },
          },
        },
      ],
      default: null,
    },
  },
} as const;

/** `…/checkpoints/{ckpt}/files` items. */
export const checkpointFileSchema = {
  type: 'object',
  required: ['name', 'bytes'],
  properties: { object: { type: 'string', default: 'fine_tuning.job.checkpoint.file' }, name: { type: 'string', minLength: 1 }, bytes: { type: 'integer', minimum: 0 } },
} as const;

/** `/v1/models` items. */
export const modelSchema = {
  type: 'object',
  required: ['id', 'object'],
  properties: {
    id: { type: 'string', minLength: 1 },
    object: { const: 'model' },
    created: { type: 'number', default: 0 },
    owned_by: { type: 'string', default: '' },
    // A plain service's models are whatever it serves; the UI offers them as base models.
    kind: { enum: ['base', 'fine-tuned', 'checkpoint', 'adapter'], default: 'base' },
    engine: { type: 'string', default: 'unknown' },
    base_model: { type: 'string' },
    job_id: { type: 'string' },
    parameters: { type: 'number' },
    memory_required: { type: 'number' },
    context_length: { type: 'integer' },
    available: { type: 'boolean' },
    unavailable_reason: { type: 'string' },
    default_hyperparameters: hyperparametersSchema,
    description: { type: 'string' },
    measured_tokens_per_second: { type: 'number', exclusiveMinimum: 0 },
    download_bytes: { type: 'number', minimum: 0 },
  },
} as const;

/** `GET /v1/system`: ours only. */
export const systemSchema = {
  type: 'object',
  required: ['object', 'version', 'engines', 'gpus', 'slots', 'queue'],
  properties: {
    object: { const: 'system' },
    version: { type: 'string' },
    engines: {
      type: 'array',
      items: { type: 'object', required: ['id', 'available', 'resumable'], properties: { id: { type: 'string' }, available: { type: 'boolean' }, reason: { type: 'string' }, resumable: { type: 'boolean' }, downloads_allowed: { type: 'boolean' } } },
    },
    gpus: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'name', 'memory_total'],
        properties: { index: { type: 'integer' }, name: { type: 'string' }, memory_total: { type: 'number' }, memory_free: { type: 'number' } },
      },
    },
    slots: { type: 'integer', minimum: 0 },
    queue: { type: 'object', required: ['running', 'queued'], properties: { running: { type: 'integer' }, queued: { type: 'integer' } } },
    // Optional: backends from before it was added leave it out.
    chat: {
      type: 'object',
      required: ['active', 'completed', 'stopped'],
      properties: { active: { type: 'integer', minimum: 0 }, completed: { type: 'integer', minimum: 0 }, stopped: { type: 'integer', minimum: 0 } },
    },
  },
} as const;

/** A list object around items of the given schema. */
function listSchema(items: object): object {
  return {
    type: 'object',
    required: ['object', 'data'],
    properties: {
      object: { const: 'list' },
      data: { type: 'array', items },
      has_more: { type: 'boolean', default: false },
      first_id: { ...nullable('string'), default: null },
      last_id: { ...nullable('string'), default: null },
    },
  };
}

const usageSchema = {
  type: 'object',
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
  properties: { prompt_tokens: { type: 'integer' }, completion_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } },
} as const;

/** One `data:` chunk of a streamed chat answer. */
export const chatChunkSchema = {
  type: 'object',
  required: ['id', 'object', 'choices'],
  properties: {
    id: { type: 'string' },
    object: { const: 'chat.completion.chunk' },
    created: { type: 'number', default: 0 },
    model: { type: 'string', default: '' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['delta'],
        properties: {
          index: { type: 'integer', default: 0 },
          delta: { type: 'object', properties: { role: { type: 'string' }, content: { ...nullable('string') } } },
          finish_reason: { anyOf: [{ type: 'null' }, { type: 'string' }], default: null },
        },
      },
    },
    usage: { anyOf: [{ type: 'null' }, usageSchema] },
  },
} as const;

/** A whole (not streamed) chat answer. */
export const chatCompletionSchema = {
  type: 'object',
  required: ['id', 'object', 'choices'],
  properties: {
    id: { type: 'string' },
    object: { const: 'chat.completion' },
    created: { type: 'number', default: 0 },
    model: { type: 'string', default: '' },
    choices: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['message'],
        properties: {
          index: { type: 'integer', default: 0 },
          message: { type: 'object', required: ['content'], properties: { role: { type: 'string' }, content: { type: 'string' } } },
          finish_reason: { anyOf: [{ type: 'null' }, { type: 'string' }], default: null },
        },
      },
    },
    usage: usageSchema,
  },
} as const;

/** Server → client WebSocket messages (`/v1/events`). */
export const serverSocketMessageSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { enum: ['event', 'job', 'checkpoint', 'subscribed', 'error'] } },
  allOf: [
    { if: { properties: { type: { const: 'event' } } }, then: { required: ['job_id', 'event'], properties: { job_id: { type: 'string' }, event: eventSchema } } },
    { if: { properties: { type: { const: 'job' } } }, then: { required: ['job'], properties: { job: jobSchema } } },
    { if: { properties: { type: { const: 'checkpoint' } } }, then: { required: ['job_id', 'checkpoint'], properties: { job_id: { type: 'string' }, checkpoint: checkpointSchema } } },
    {
      if: { properties: { type: { const: 'subscribed' } } },
      then: { required: ['jobs', 'all'], properties: { jobs: { type: 'array', items: { type: 'string' } }, all: { type: 'boolean' } } },
    },
    { if: { properties: { type: { const: 'error' } } }, then: { required: ['error'], properties: { error: apiErrorBodySchema.properties.error } } },
  ],
} as const;

/** Why a response does not fit its schema: where (a dotted path from the body's root) and what. */
export class ResponseShapeError extends Error {
  override readonly name = 'ResponseShapeError';
  readonly reason = 'protocol' as const;

  constructor(
    /** What was expected (`a fine-tuning job`). */
    readonly expected: string,
    /** The field at fault as a dotted path, '' for the body itself. */
    readonly path: string,
    message: string,
  ) {
    super(message);
  }

  static is(error: unknown): error is ResponseShapeError {
    return error instanceof ResponseShapeError;
  }
}

let ajv: Ajv | undefined;
const compiled = new Map<object, ValidateFunction>();

/** Compiles a schema the first time it is used, and never again. */
function validator(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    // strictTuple etc. stay strict; `default` inside anyOf is ignored by ajv, so defaults sit beside it.
    ajv ??= new Ajv({ allErrors: false, strict: false, allowUnionTypes: true, useDefaults: true });
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** `/data/3/seq` → `data[3].seq`. */
function dotted(pointer: string): string {
  let out = '';
  for (const part of pointer.split('/').slice(1)) out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

function describe(expected: string, errors: readonly ErrorObject[]): ResponseShapeError {
  // The deepest error names the field at fault; `if`/`anyOf` wrappers only say that a branch failed.
  const error = [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length).find((e) => e.keyword !== 'if') ?? errors[0];
  let path = error ? dotted(error.instancePath) : '';
  let what = error?.message ?? 'is not valid';
  if (error?.keyword === 'required') {
    const missing = String((error.params as { missingProperty?: unknown }).missingProperty);
    path = path === '' ? missing : `${path}.${missing}`;
    what = 'is missing';
  } else if (error?.keyword === 'const') {
    what = `must be ${JSON.stringify((error.params as { allowedValue?: unknown }).allowedValue)}`;
  } else if (error?.keyword === 'enum') {
    what = `must be one of ${((error.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return new ResponseShapeError(expected, path, `The backend's answer is not ${expected}: ${path === '' ? 'the body' : `'${path}'`} ${what}.`);
}

function parser<T>(schema: object, expected: string): { is(value: unknown): value is T; parse(value: unknown): T } {
  return {
    is: (value: unknown): value is T => validator(schema)(value),
    parse: (value: unknown): T => {
      const validate = validator(schema);
      if (validate(value)) return value as T;
      throw describe(expected, validate.errors ?? []);
    },
  };
}

const apiErrorBody = parser<ApiErrorBody>(apiErrorBodySchema, 'an error body');
const fileObject = parser<FileObject>(fileObjectSchema, 'a file');
const deletedObject = parser<DeletedObject>(deletedObjectSchema, 'a deletion result');
const job = parser<FineTuningJob>(jobSchema, 'a fine-tuning job');
const event = parser<FineTuningJobEvent>(eventSchema, 'a fine-tuning event');
const checkpoint = parser<FineTuningJobCheckpoint>(checkpointSchema, 'a checkpoint');
const model = parser<ModelObject>(modelSchema, 'a model');
const system = parser<SystemInfo>(systemSchema, 'system information');
const fileList = parser<ListObject<FileObject>>(listSchema(fileObjectSchema), 'a list of files');
const jobList = parser<ListObject<FineTuningJob>>(listSchema(jobSchema), 'a list of fine-tuning jobs');
const eventList = parser<ListObject<FineTuningJobEvent>>(listSchema(eventSchema), 'a list of fine-tuning events');
const checkpointList = parser<ListObject<FineTuningJobCheckpoint>>(listSchema(checkpointSchema), 'a list of checkpoints');
const checkpointFileList = parser<ListObject<CheckpointFile>>(listSchema(checkpointFileSchema), 'a list of checkpoint files');
const modelList = parser<ListObject<ModelObject>>(listSchema(modelSchema), 'a list of models');
const chatChunk = parser<ChatCompletionChunk>(chatChunkSchema, 'a chat completion chunk');
const chatCompletion = parser<ChatCompletion>(chatCompletionSchema, 'a chat completion');
const savedAdapter = parser<SavedAdapter>(savedAdapterSchema, 'a saved adapter');
const savedAdapterList = parser<ListObject<SavedAdapter>>(listSchema(savedAdapterSchema), 'a list of saved adapters');
const socketMessage = parser<ServerSocketMessage>(serverSocketMessageSchema, 'an event-socket message');
const jobMetrics = parser<FineTuningJobMetrics>(jobMetricsSchema, "a job's metrics");

/** Whether `value` is an error body (`{"error": {"message", …}}`); fills `type`, `param`, `code` when absent. */
export const isApiErrorBody = apiErrorBody.is;
/** Whether the body's error type is one this API declares (others come from other services). */
export function isKnownErrorType(type: string): type is keyof typeof ERROR_STATUS {
  return Object.prototype.hasOwnProperty.call(ERROR_STATUS, type);
}
/** Checks a file object; throws ResponseShapeError naming the field at fault. */
export const parseFileObject = fileObject.parse;
/** Checks a `DELETE` answer. */
export const parseDeletedObject = deletedObject.parse;
/** Checks a job object. */
export const parseJob = job.parse;
/** Whether `value` is a job object. */
export const isJob = job.is;
/** Checks an event object. */
export const parseEvent = event.parse;
/** Whether `value` is an event object. */
export const isEvent = event.is;
/** Checks a checkpoint object. */
export const parseCheckpoint = checkpoint.parse;
/** Checks a model object. */
export const parseModel = model.parse;
/** Checks `GET /v1/system`'s answer. */
export const parseSystem = system.parse;
/** Whether `value` is `GET /v1/system`'s answer. */
export const isSystem = system.is;
/** Checks a list of files. */
export const parseFileList = fileList.parse;
/** Checks a list of jobs. */
export const parseJobList = jobList.parse;
/** Checks a list of events. */
export const parseEventList = eventList.parse;
/** Checks a list of checkpoints. */
export const parseCheckpointList = checkpointList.parse;
/** Checks a list of a checkpoint's files. */
export const parseCheckpointFileList = checkpointFileList.parse;
/** Checks a list of models. */
export const parseModelList = modelList.parse;
/** Checks one streamed chat chunk. */
export const parseChatChunk = chatChunk.parse;
/** Checks a whole chat answer. */
export const parseChatCompletion = chatCompletion.parse;
/** Checks a saved adapter. */
export const parseSavedAdapter = savedAdapter.parse;
/** Checks a list of saved adapters. */
export const parseSavedAdapterList = savedAdapterList.parse;
/** Checks a message from the `/v1/events` socket. */
export const parseServerSocketMessage = socketMessage.parse;
/** Whether `value` is a message from the `/v1/events` socket. */
export const isServerSocketMessage = socketMessage.is;

/**
 * Checks a job's metrics (`…/metrics`): the schema, then what it cannot say: every column and `seq` hold `count`
 * rows, and the seqs ascend up to `last_seq`. Throws ResponseShapeError naming the field at fault.
 */
export function parseJobMetrics(value: unknown): FineTuningJobMetrics {
  const metrics = jobMetrics.parse(value);
  const expected = "a job's metrics";
  const { count } = metrics;
  const wrong = (path: string, what: string): ResponseShapeError => new ResponseShapeError(expected, path, `The backend's answer is not ${expected}: '${path}' ${what}.`);
  if (metrics.seq.length !== count) throw wrong('seq', `has ${metrics.seq.length} rows, not count (${count})`);
  for (const name of METRICS_COLUMNS) {
    const length = metrics.columns[name].length;
    if (length !== count) throw wrong(`columns.${name}`, `has ${length} rows, not count (${count})`);
  }
  const seq = metrics.seq;
  for (let i = 1; i < count; i++) if (seq[i] <= seq[i - 1]) throw wrong(`seq[${i}]`, 'does not ascend');
  if (count > 0 && seq[count - 1] > metrics.last_seq) throw wrong('last_seq', `is below the last row's seq (${seq[count - 1]})`);
  return metrics;
}
