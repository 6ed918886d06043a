// The training API's wire types (ARCHITECTURE.md, "The training API"): what the backend (backend/) sends and
// what the extension's client (src/) reads, declared once. The shape is OpenAI's fine-tuning API (object names,
// id prefixes, field names, list objects, error bodies), plus the fields a self-hosted LoRA backend adds; the
// comments mark ours. JSON Schemas for what crosses the wire are in common/apiSchemas.ts.
import type { FindingCode, Severity } from './dataset/codes';

// ---------------------------------------------------------------------------------------------------------
// Common shapes

/** A page of a list: `GET /v1/files`, `/v1/fine_tuning/jobs`, `…/events`, `…/checkpoints`, `/v1/models`. */
export interface ListObject<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  /** Id of the first and last item of the page (null on an empty page); pass `last_id` as `after` for the next. */
  first_id?: string | null;
  last_id?: string | null;
}

/** Every refused request's body, with the HTTP status that goes with its `type`. */
export interface ApiErrorBody {
  error: ApiError;
}

/** The error types and their HTTP statuses. */
export const ERROR_STATUS = {
  invalid_request_error: 400,
  authentication_error: 401,
  not_found_error: 404,
  conflict_error: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limit_error: 429,
  server_error: 500,
  service_unavailable: 503,
} as const;

export type ApiErrorType = keyof typeof ERROR_STATUS;

export interface ApiError {
  /** What is wrong and where, for a person. */
  message: string;
  type: ApiErrorType;
  /** The request field at fault as a dotted path (`method.supervised.hyperparameters.lora_r`), or null. */
  param: string | null;
  /** A stable machine-readable code (`invalid_value`, `unknown_parameter`, `invalid_dataset`, …), or null. */
  code: string | null;
  /** Ours, with code `invalid_dataset`: the first 100 findings of the refused file. */
  findings?: DatasetFinding[];
  /** Ours, with code `invalid_dataset`: how many findings the file has in all. */
  total_findings?: number;
}

/** One finding of a dataset check, as the backend reports it (1-based line and column, like editors show). */
export interface DatasetFinding {
  line: number;
  column: number;
  code: FindingCode;
  severity: Severity;
  message: string;
}

// ---------------------------------------------------------------------------------------------------------
// Files

/** `POST /v1/files`, `GET /v1/files/{id}`: an uploaded dataset. Ids start with `file-`. */
export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  /** Unix seconds. */
  created_at: number;
  filename: string;
  purpose: 'fine-tune';
  /** Stored files have passed the check; OpenAI's field. */
  status: 'processed';
  /** Ours: examples (lines) of the file, and the warnings its check found (errors refuse the file). */
  examples: number;
  warnings: number;
  /**
   * Ours: the system prompt that every example of the file starts with, when they all share one (the model
   * learned with it, so chat prefills it); null when they differ or have none; absent for files stored before
   * the backend recorded it.
   */
  system_prompt?: string | null;
}

/** `DELETE /v1/files/{id}`, `DELETE /v1/adapters/{id}`. */
export interface DeletedObject {
  id: string;
  object: 'file' | 'model' | 'adapter';
  deleted: boolean;
}

// ---------------------------------------------------------------------------------------------------------
// Saved adapters (ours): the checkpoints a user kept ("Save to Repository"), copied by the backend so that chat
// can serve them after their job's files are gone.

/** `POST /v1/adapters`: keep a checkpoint's (or a fine-tuned model's) adapter under a name. */
export interface SaveAdapterRequest {
  /** A checkpoint's `fine_tuned_model_checkpoint` or a job's `fine_tuned_model`. */
  model: string;
  /** Unique per owner: letters, digits, `_`, `.`, `-`, 1–128 characters (the folder name the client saved to). */
  name: string;
  /** Where the client keeps its own copy (informational: a path on the client's machine). */
  location?: string | null;
  /** Replace an adapter of the same name instead of answering 409. */
  overwrite?: boolean;
}

/** A saved adapter. Ids start with `adapter-`; chat accepts its `id` or its `name` as `model`. */
export interface SavedAdapter {
  id: string;
  object: 'adapter';
  name: string;
  /** Unix seconds. */
  created_at: number;
  base_model: string;
  /** Where it came from. */
  job_id: string;
  checkpoint_id: string | null;
  step_number: number | null;
  source_model: string;
  location: string | null;
  /** Bytes of the adapter files. */
  bytes: number;
}

// ---------------------------------------------------------------------------------------------------------
// Jobs

export const LR_SCHEDULERS = ['cosine', 'linear', 'constant'] as const;
export type LrScheduler = (typeof LR_SCHEDULERS)[number];

/** The projections LoRA can adapt, by their names in Qwen2 (and in peft's `target_modules`). */
export const LORA_TARGET_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTargetModule = (typeof LORA_TARGET_MODULES)[number];

/**
 * What a job trains: `lora` adapters on frozen base weights, or every weight of the model (`full`). Full
 * fine-tuning keeps a gradient and two optimizer moments for every weight, so it is offered for the built-in
 * tiny models only.
 */
export const TRAINING_TYPES = ['lora', 'full'] as const;
export type TrainingType = (typeof TRAINING_TYPES)[number];

/**
 * The hyper-parameters of a supervised job. In a create request every field is optional ("auto" is accepted
 * for OpenAI's three); the job object shows the values actually used, all of them filled in.
 */
export interface Hyperparameters {
  n_epochs: number;
  /** Examples per optimizer step (gradient accumulation makes up what does not fit at once). */
  batch_size: number;
  /** The peak learning rate. */
  learning_rate: number;
  /** OpenAI's: a factor on the base model's default learning rate; used only when `learning_rate` is not given. */
  learning_rate_multiplier: number;
  /** Longer examples are truncated (and counted in an event). */
  max_seq_length: number;
  /** Share of the steps spent warming the learning rate up from 0. */
  warmup_ratio: number;
  lr_scheduler: LrScheduler;
  /**
   * Ours: `lora` (the default) trains adapters, `full` every weight (built-in tiny models only; its checkpoints
   * are whole model folders instead of adapters). The `lora_*` values are still shown under `full`, unused.
   */
  training_type: TrainingType;
  lora_r: number;
  lora_alpha: number;
  lora_dropout: number;
  lora_target_modules: LoraTargetModule[];
  /** How many checkpoints to keep, evenly spaced over the run; the last one is at the final step. */
  checkpoints: number;
  /** Share of the training file held out for evaluation when there is no validation file (0: none). */
  eval_ratio: number;
}

/** What a create request may give: any subset, with "auto" for OpenAI's three. */
export type HyperparametersInput = Partial<Omit<Hyperparameters, 'n_epochs' | 'batch_size' | 'learning_rate_multiplier'>> & {
  n_epochs?: number | 'auto';
  batch_size?: number | 'auto';
  learning_rate_multiplier?: number | 'auto';
};

/** `POST /v1/fine_tuning/jobs`. */
export interface CreateJobRequest {
  /** A base model id from `GET /v1/models`. */
  model: string;
  training_file: string;
  validation_file?: string | null;
  /** Up to 64 characters, in the fine-tuned model's name. */
  suffix?: string | null;
  seed?: number | null;
  /** Up to 16 string pairs, kept with the job. */
  metadata?: Record<string, string> | null;
  method?: { type: 'supervised'; supervised?: { hyperparameters?: HyperparametersInput } };
  /** OpenAI's older place for the same values; `method` wins where both give one. */
  hyperparameters?: HyperparametersInput;
  /** Ours: GPUs the job may use (default 1; 0 on a CPU-only backend). */
  gpus?: number;
}

export const JOB_STATUSES = ['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** States a job never leaves. */
export const FINAL_JOB_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

/** Why a job failed, for a person to act on. */
export const JOB_ERROR_CODES = [
  /** The engine ran out of memory: lower the batch size or the maximum sequence length. */
  'out_of_memory',
  /** The dataset cannot be trained on (no trained tokens, unreadable file, …). */
  'invalid_dataset',
  /** The loss stopped being finite. */
  'nan_loss',
  /** The engine process crashed or exited without finishing. */
  'engine_crashed',
  /** The backend stopped while the job ran and the job could not be resumed. */
  'interrupted',
  /** The base model cannot be loaded. */
  'model_unavailable',
  /** Anything else the engine reports. */
  'engine_error',
] as const;
export type JobErrorCode = (typeof JOB_ERROR_CODES)[number];

export interface JobError {
  code: JobErrorCode;
  message: string;
  param: string | null;
}

/** `GET /v1/fine_tuning/jobs/{id}`. Ids start with `ftjob-`. Times are Unix seconds. */
export interface FineTuningJob {
  id: string;
  object: 'fine_tuning.job';
  created_at: number;
  /** Set when the job reaches a final status. */
  finished_at: number | null;
  model: string;
  /** The model name of the final adapter, for chat; set when the job succeeds. */
  fine_tuned_model: string | null;
  organization_id: string;
  status: JobStatus;
  training_file: string;
  validation_file: string | null;
  /** The values used (OpenAI also reports them here, top level). */
  hyperparameters: Hyperparameters;
  method: { type: 'supervised'; supervised: { hyperparameters: Hyperparameters } };
  result_files: string[];
  /** Tokens trained on so far (all epochs), null before the job runs. */
  trained_tokens: number | null;
  error: JobError | null;
  seed: number;
  suffix: string | null;
  metadata: Record<string, string> | null;
  /** When the job is expected to finish (Unix seconds), while it runs. */
  estimated_finish: number | null;
  integrations: [];
  user_provided_suffix: string | null;
  // Ours:
  /** When the engine started the job. */
  started_at: number | null;
  /** 1-based position in the queue while `queued`, else null. */
  queue_position: number | null;
  /** The engine that runs the job (`embedded`, `torch`). */
  engine: string;
  /** GPUs the job uses (0 for a CPU job). */
  gpus: number;
  /** Progress while running and after: the last metrics' step, of `total_steps`, and epoch. */
  progress: JobProgress | null;
  /** Seq of the job's last event: a client that has seen it is up to date. */
  last_event_seq: number;
}

export interface JobProgress {
  step: number;
  total_steps: number;
  epoch: number;
}

/** The data of a `metrics` event; the valid_* fields only at eval steps. */
export interface MetricsData {
  step: number;
  total_steps: number;
  /** Fractional: 1.5 is half-way through the second epoch. */
  epoch: number;
  train_loss: number;
  train_mean_token_accuracy: number;
  valid_loss?: number;
  valid_mean_token_accuracy?: number;
  learning_rate: number;
  grad_norm: number;
  tokens_per_second: number;
  /** Seconds since the job started (not counting time before a resume). */
  elapsed: number;
  /** Ours, GPU engines: peak memory of the step in bytes. */
  gpu_memory?: number;
}

export type EventLevel = 'info' | 'warn' | 'error';

interface EventBase {
  /** `ftevent-…` */
  id: string;
  object: 'fine_tuning.job.event';
  created_at: number;
  level: EventLevel;
  message: string;
  /** Ours: the job's event sequence number, 1, 2, 3, … without gaps. */
  seq: number;
  /** Ours. */
  job_id: string;
}

export interface MessageEvent extends EventBase {
  type: 'message';
  /** Ours, optional: what the message is about (`status` with the new status, `truncated` with a count, …). */
  data?: Record<string, unknown> | null;
}

export interface MetricsEvent extends EventBase {
  type: 'metrics';
  data: MetricsData;
}

/** `GET /v1/fine_tuning/jobs/{id}/events`: every event of a job, in `seq` order. */
export type FineTuningJobEvent = MessageEvent | MetricsEvent;

/** One column of `…/metrics`: a MetricsData field. */
export type MetricsColumn = keyof MetricsData;

// Every MetricsData field once, in the order `…/metrics` lists them: the compiler refuses a field left out.
const METRICS_COLUMN_ORDER: Record<MetricsColumn, null> = {
  step: null,
  total_steps: null,
  epoch: null,
  train_loss: null,
  train_mean_token_accuracy: null,
  valid_loss: null,
  valid_mean_token_accuracy: null,
  learning_rate: null,
  grad_norm: null,
  tokens_per_second: null,
  elapsed: null,
  gpu_memory: null,
};

/** Every field of MetricsData, in the order `…/metrics` lists its columns. */
export const METRICS_COLUMNS = Object.keys(METRICS_COLUMN_ORDER) as readonly MetricsColumn[];

/**
 * Ours: `GET /v1/fine_tuning/jobs/{id}/metrics?after=`: a job's metrics events after seq `after` (0 or absent:
 * all), as columns rather than event objects: row `i` is the event `seq[i]`, and every MetricsData field has a
 * column with one value per row (null where that event lacks the field: `valid_*` between evaluations,
 * `gpu_memory` on a CPU engine). What a dashboard reads a whole history with, in one request.
 */
export interface FineTuningJobMetrics {
  object: 'fine_tuning.job.metrics';
  job_id: string;
  /**
   * The highest seq of any event considered (messages included): a client that has read this answer continues
   * its live stream (or `events?after=`) from here.
   */
  last_seq: number;
  /** Rows: the length of `seq` and of every column. */
  count: number;
  columns: { step: number[] } & Record<Exclude<MetricsColumn, 'step'>, (number | null)[]>;
  /** The seq of each row's event, ascending. */
  seq: number[];
}

/** The checkpoint's metrics, OpenAI's names. */
export interface CheckpointMetrics {
  step: number;
  train_loss: number;
  train_mean_token_accuracy: number;
  valid_loss?: number;
  valid_mean_token_accuracy?: number;
  full_valid_loss?: number;
  full_valid_mean_token_accuracy?: number;
}

/** The example the run shows at every checkpoint: taken from the user's data (held out when there is an eval split). */
export interface CheckpointSample {
  /** The conversation up to the answer (system and user turns, earlier turns included). */
  messages: { role: string; content: string }[];
  /** The assistant answer in the dataset. */
  reference: string;
  /** What this checkpoint generated for it (greedy). */
  answer: string;
}

/** `GET /v1/fine_tuning/jobs/{id}/checkpoints`. Ids start with `ftckpt-`. */
export interface FineTuningJobCheckpoint {
  id: string;
  object: 'fine_tuning.job.checkpoint';
  created_at: number;
  /** The model name of this checkpoint, for chat. */
  fine_tuned_model_checkpoint: string;
  fine_tuning_job_id: string;
  metrics: CheckpointMetrics;
  step_number: number;
  /** Ours. */
  sample: CheckpointSample | null;
}

/** `GET …/checkpoints/{ckpt}/files`: the adapter's files, downloadable by name. */
export interface CheckpointFile {
  object: 'fine_tuning.job.checkpoint.file';
  name: string;
  bytes: number;
}

// ---------------------------------------------------------------------------------------------------------
// Models and system

/** `GET /v1/models`: base models the backend can train and fine-tuned models it can serve. */
export interface ModelObject {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  // Ours:
  kind: 'base' | 'fine-tuned' | 'checkpoint' | 'adapter';
  /** The engine that trains and serves it. */
  engine: string;
  /** For fine-tuned models and checkpoints: the base model and the job. */
  base_model?: string;
  job_id?: string;
  /** Base models: parameters, memory LoRA training needs (bytes), context length, and whether it is ready. */
  parameters?: number;
  memory_required?: number;
  context_length?: number;
  available?: boolean;
  /** Why a base model is not available (not downloaded, engine missing). */
  unavailable_reason?: string;
  /** The hyper-parameters a job on this base model gets by default. */
  default_hyperparameters?: Hyperparameters;
  description?: string;
  /**
   * Base models, ours: the training throughput (tokens a second, the median of a step's rate) of this
   * backend's most recent successful job on this model and engine; absent until one has finished. What a
   * client estimates a run's duration from.
   */
  measured_tokens_per_second?: number;
  /**
   * Base models, ours: present when the model is not on the backend's machine but the backend may download it
   * (`--allow-downloads`): the size of its weights (bytes, bf16), fetched from the Hugging Face hub when a job or a
   * chat first needs it. Such a model is `available`.
   */
  download_bytes?: number;
}

export interface GpuInfo {
  index: number;
  name: string;
  /** Bytes. */
  memory_total: number;
  memory_free?: number;
}

export interface EngineInfo {
  id: string;
  available: boolean;
  /** Why not, when not. */
  reason?: string;
  /** Whether an interrupted job can continue from its last checkpoint. */
  resumable: boolean;
  /** Engines that load hub models (torch): whether the backend lets them download a base model that is not here. */
  downloads_allowed?: boolean;
}

/** `GET /v1/system`. Its absence tells a client that it talks to a plain OpenAI-compatible service. */
export interface SystemInfo {
  object: 'system';
  version: string;
  engines: EngineInfo[];
  gpus: GpuInfo[];
  /** Jobs that may run at once. */
  slots: number;
  queue: { running: number; queued: number };
  /**
   * Ours: chat generations since the backend started: in progress now, finished (stop or length), and stopped
   * because the client went away or asked to stop. Absent from backends that predate it.
   */
  chat?: { active: number; completed: number; stopped: number };
}

// ---------------------------------------------------------------------------------------------------------
// Chat

export interface ChatMessageInput {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** `POST /v1/chat/completions`. */
export interface ChatCompletionRequest {
  /** A checkpoint's `fine_tuned_model_checkpoint`, a job's `fine_tuned_model`, a saved adapter's id or name, or a base model id. */
  model: string;
  messages: ChatMessageInput[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  max_tokens?: number;
  repetition_penalty?: number;
  seed?: number;
  stop?: string | string[];
  stream?: boolean;
}

export type FinishReason = 'stop' | 'length';

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string }; finish_reason: FinishReason }[];
  usage: ChatUsage;
}

/** One server-sent event of a streamed answer; the stream ends with `data: [DONE]`. */
export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null }[];
  /** On the last chunk only. */
  usage?: ChatUsage | null;
}

// ---------------------------------------------------------------------------------------------------------
// WebSocket `/v1/events`

/** Client → server: follow jobs from after the given seq (0: from the start); `all` also follows new jobs. */
export interface SubscribeMessage {
  type: 'subscribe';
  /** Job id → the last seq the client has seen. */
  jobs?: Record<string, number>;
  /** Follow every job of this key, those created later too; jobs not in `jobs` are sent from their start. */
  all?: boolean;
}

export interface UnsubscribeMessage {
  type: 'unsubscribe';
  jobs: string[];
}

export type ClientSocketMessage = SubscribeMessage | UnsubscribeMessage;

/** Server → client: one event of a followed job (in seq order per job, no gaps, no repeats). */
export interface EventSocketMessage {
  type: 'event';
  job_id: string;
  event: FineTuningJobEvent;
}

/** Server → client: a followed job's object changed (status, queue position, progress, checkpoints). */
export interface JobSocketMessage {
  type: 'job';
  job: FineTuningJob;
}

/** Server → client: a checkpoint was saved. */
export interface CheckpointSocketMessage {
  type: 'checkpoint';
  job_id: string;
  checkpoint: FineTuningJobCheckpoint;
}

/** Server → client: the subscription is in place; the backlog it asked for follows, then live events. */
export interface SubscribedSocketMessage {
  type: 'subscribed';
  jobs: string[];
  all: boolean;
}

/** Server → client: a message was refused (the socket stays open unless the error says otherwise). */
export interface ErrorSocketMessage {
  type: 'error';
  error: ApiError;
}

export type ServerSocketMessage = EventSocketMessage | JobSocketMessage | CheckpointSocketMessage | SubscribedSocketMessage | ErrorSocketMessage;

// ---------------------------------------------------------------------------------------------------------
// Id prefixes

export const ID_PREFIX = { file: 'file-', job: 'ftjob-', event: 'ftevent-', checkpoint: 'ftckpt-', chat: 'chatcmpl-', adapter: 'adapter-' } as const;

/**
 * Ids are a prefix and 24 letters or digits: a path built from a checked id cannot leave its folder. The
 * backend refuses anything else with 404 before touching the disk.
 */
export const ID_BODY = /^[A-Za-z0-9]{24}$/;

/** Whether `id` is a well-formed id of that kind. */
export function isIdOf(kind: keyof typeof ID_PREFIX, id: unknown): id is string {
  const prefix = ID_PREFIX[kind];
  return typeof id === 'string' && id.startsWith(prefix) && ID_BODY.test(id.slice(prefix.length));
}
