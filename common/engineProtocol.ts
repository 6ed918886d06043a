// The engine protocol (ARCHITECTURE.md, "Engines"): JSON lines on stdio between the backend and an engine
// process, one JSON object a line, UTF-8. Both engines speak it (embedded: TypeScript, torch: Python), so the
// backend does not know which one it drives. Everything an engine writes is `unknown` to the backend until
// `parseEngineMessage` (common/apiSchemas.ts) has checked it; a line that fails is logged and ignored.
//
// An engine process runs in one of two modes, chosen by its command line:
//   train: the backend writes one `train` message; the engine answers with `started`, then `metrics`, `log`,
//          `checkpoint`, … and ends with exactly one `done` or `error`, then exits (0 after `done`). The backend
//          stops a job by closing stdin or, after a grace period, by killing the process.
//   serve: a long-lived chat process; the backend writes `chat` and `chat_cancel` messages and the engine
//          answers with `token`, `chat_done` and `chat_error` carrying the request's id. It writes `ready`
//          once it can take requests.
import type { ChatMessageInput, Hyperparameters, JobErrorCode, MetricsData } from './api';

/** Bump when a message changes shape; an engine with another version is refused with a clear error. */
export const ENGINE_PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------------------
// Backend → engine

/** The base model of a job or a chat: a built-in tiny model, or a model folder on disk. */
export interface ModelRef {
  /** The id in `/v1/models` (`tiny-qwen2-1m`, `Qwen/Qwen2.5-0.5B-Instruct`, …). */
  id: string;
  /**
   * A folder with `config.json`, `model.safetensors` (or sharded, with the index) and `tokenizer.json`. For
   * built-in tiny models the backend gives the folder where the engine keeps (or makes) them.
   */
  path: string;
}

/** Everything an engine needs to run one job. Paths are absolute. */
export interface TrainSpec {
  job_id: string;
  model: ModelRef;
  /** The stored training file (`.jsonl`, already checked with common/dataset). */
  training_file: string;
  validation_file: string | null;
  /** The values to use, all filled in by the backend. */
  hyperparameters: Hyperparameters;
  seed: number;
  /** The job's folder for the engine's output: checkpoints go to `{output_dir}/checkpoints/step-{N}/`. */
  output_dir: string;
  /** A checkpoint folder (with its resume state) to continue from, after an interrupted run. */
  resume_from: string | null;
  gpus: number;
}

export interface TrainMessage {
  type: 'train';
  protocol: number;
  spec: TrainSpec;
}

/** Generation settings; the backend fills in Qwen2.5's defaults for what a request leaves out. */
export interface GenerationParams {
  temperature: number;
  top_p: number;
  top_k: number;
  max_tokens: number;
  repetition_penalty: number;
  /** Sampling seed; greedy decoding when `temperature` is 0. */
  seed: number;
  stop: string[];
}

export interface ChatRequestMessage {
  type: 'chat';
  /** The backend's id of this request; every answer carries it. */
  id: string;
  model: ModelRef;
  /**
   * A checkpoint folder holding `adapter_config.json` + `adapter_model.safetensors`, or null for the base model.
   * A full fine-tuning checkpoint holds `config.json` + `model.safetensors` instead: the engine loads that folder
   * as the model (with the base model's tokenizer).
   */
  adapter: string | null;
  messages: ChatMessageInput[];
  params: GenerationParams;
}

export interface ChatCancelMessage {
  type: 'chat_cancel';
  id: string;
}

export type EngineRequest = TrainMessage | ChatRequestMessage | ChatCancelMessage;

// ---------------------------------------------------------------------------------------------------------
// Engine → backend

/** train: the job is prepared (data read, model loaded) and the first step is about to run. */
export interface StartedMessage {
  type: 'started';
  total_steps: number;
  /** Examples trained on per epoch, and held out for evaluation. */
  train_examples: number;
  eval_examples: number;
  /** Tokens of one epoch (after truncation), and the trained (assistant) ones among them. */
  tokens_per_epoch: number;
  trained_tokens_per_epoch: number;
  /** Examples longer than `max_seq_length`, truncated. */
  truncated_examples: number;
  /** Set when the job continues from a checkpoint: the step it starts after. */
  resumed_from_step: number | null;
}

/** train: one optimizer step's metrics. */
export interface MetricsMessage {
  type: 'metrics';
  data: MetricsData;
  /** Tokens trained on since the job started (all steps so far). */
  trained_tokens: number;
}

/** train: a checkpoint is complete on disk (adapter files and resume state written, folder renamed into place). */
export interface CheckpointMessage {
  type: 'checkpoint';
  step: number;
  /** Absolute path of the checkpoint folder. */
  path: string;
  /** Its metrics (train at that step, and eval on the held-out split when there is one). */
  train_loss: number;
  train_mean_token_accuracy: number;
  valid_loss: number | null;
  valid_mean_token_accuracy: number | null;
  /** The run's sample example with this checkpoint's answer, or null when the data has no example for it. */
  sample: { messages: ChatMessageInput[]; reference: string; answer: string } | null;
}

/** Both modes: a line for the job's event log (train) or the backend's log (serve). */
export interface LogMessage {
  type: 'log';
  level: 'info' | 'warn' | 'error';
  message: string;
  /** Optional structured detail (e.g. `{ truncated: 3 }`). */
  data?: Record<string, unknown>;
}

/** train: the job finished; the last checkpoint is the final adapter. */
export interface DoneMessage {
  type: 'done';
  trained_tokens: number;
  /** The final checkpoint's folder. */
  final_checkpoint: string;
}

/** train: the job failed; the engine exits after writing it. */
export interface ErrorMessage {
  type: 'error';
  code: JobErrorCode;
  /** What happened and what to do, for a person (no stack trace). */
  message: string;
}

/** serve: ready for chat requests. */
export interface ReadyMessage {
  type: 'ready';
  protocol: number;
}

/** serve: the next piece of an answer (decoded text; may be empty while a multi-byte character is incomplete). */
export interface TokenMessage {
  type: 'token';
  id: string;
  text: string;
}

export interface ChatDoneMessage {
  type: 'chat_done';
  id: string;
  finish_reason: 'stop' | 'length';
  prompt_tokens: number;
  completion_tokens: number;
}

export interface ChatErrorMessage {
  type: 'chat_error';
  id: string;
  code: 'model_unavailable' | 'cancelled' | 'engine_error' | 'out_of_memory';
  message: string;
}

export type EngineMessage =
  | StartedMessage
  | MetricsMessage
  | CheckpointMessage
  | LogMessage
  | DoneMessage
  | ErrorMessage
  | ReadyMessage
  | TokenMessage
  | ChatDoneMessage
  | ChatErrorMessage;
