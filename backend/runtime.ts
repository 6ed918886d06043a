// The seam between the backend's HTTP layer (backend/http/) and its runtime (backend/runtime/): what the
// routes ask of the job store, the scheduler, the engines and the WebSocket hub. The HTTP layer checks every
// request (auth, ids, bodies) before it calls here; the runtime trusts its arguments and owns the disk layout of
// jobs, events and checkpoints.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type {
  CheckpointFile,
  EngineInfo,
  FineTuningJob,
  FineTuningJobCheckpoint,
  FineTuningJobEvent,
  GpuInfo,
  ModelObject,
} from '../common/api';
import type { ChatRequestMessage, ModelRef, TrainSpec } from '../common/engineProtocol';
import type { MetricsSlice } from './runtime/metricsTable';

/** The backend's log: one line per request (HTTP layer) and per job transition (runtime), to stderr. */
export interface Log {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Who makes a request: derived from the API key (a hash of it), never the key itself. */
export type Owner = string;

/** A page of a list, before the HTTP layer wraps it in a `ListObject`. */
export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/** What the HTTP layer hands over to create a job: the job object as created, and the engine's spec. */
export interface NewJob {
  owner: Owner;
  /** Status `validating_files`, every hyper-parameter filled in, ids assigned. */
  job: FineTuningJob;
  /** The spec without what the runtime decides (the job's folder, a resume point). */
  spec: Omit<TrainSpec, 'output_dir' | 'resume_from'>;
}

/** A model name that chat can serve, resolved. */
export interface ChatTarget {
  engine: string;
  model: ModelRef;
  /** The checkpoint folder of a fine-tuned model or checkpoint; null for a base model. */
  adapter: string | null;
}

/**
 * A fine-tuned model name resolved to where it came from, for `POST /v1/adapters`: the chat target, the job and
 * checkpoint behind it, and the files that make up the adapter (what `checkpointFiles` lists).
 */
export interface FineTunedSource {
  target: ChatTarget;
  /** The base model's id. */
  base_model: string;
  job_id: string;
  /** Null for a job's `fine_tuned_model` whose folder is not one of its listed checkpoints. */
  checkpoint_id: string | null;
  step_number: number | null;
  files: (CheckpointFile & { path: string })[];
}

/** Chat generations since the backend started (`/v1/system`'s `chat`). */
export interface ChatCounts {
  /** In progress now. */
  active: number;
  /** Ended with `stop` or `length`. */
  completed: number;
  /** Ended because the client went away or asked to stop. */
  stopped: number;
}

/** How a chat generation ended. */
export interface ChatResult {
  finish_reason: 'stop' | 'length';
  prompt_tokens: number;
  completion_tokens: number;
}

/** Why a chat failed (mapped to an HTTP error by the routes, or to an error chunk once streaming). */
export class ChatError extends Error {
  constructor(
    readonly code: 'model_unavailable' | 'cancelled' | 'engine_error' | 'out_of_memory',
    message: string,
  ) {
    super(message);
  }
  static is(e: unknown): e is ChatError {
    return e instanceof ChatError;
  }
}

/** What the routes ask of the runtime. Every method that takes an owner answers only for that owner's things. */
export interface JobRuntime {
  /** Stores the job, moves it to `queued` and schedules it; resolves to the job as stored. */
  createJob(job: NewJob): Promise<FineTuningJob>;
  getJob(owner: Owner, id: string): FineTuningJob | undefined;
  /** Newest first; `after` is a job id (the page starts after it). */
  listJobs(owner: Owner, after: string | undefined, limit: number): Page<FineTuningJob>;
  /** Cancels in any state (a final job is returned unchanged); undefined when the owner has no such job. */
  cancelJob(owner: Owner, id: string): Promise<FineTuningJob | undefined>;
  /** In `seq` order, those after `afterSeq` (0: from the first); undefined when no such job. */
  listEvents(owner: Owner, id: string, afterSeq: number, limit: number): Promise<Page<FineTuningJobEvent> | undefined>;
  /**
   * Ours, `…/metrics`: the job's metrics events after `afterSeq` as columns, the answer's JSON text ready to send
   * (served from a per-job columnar cache, see backend/runtime/metricsTable.ts); undefined when no such job.
   */
  metrics(owner: Owner, id: string, afterSeq: number): MetricsSlice | undefined;
  /** Seq of the event with that id, for `after=ftevent-…`; undefined when the job has none such. */
  eventSeq(owner: Owner, jobId: string, eventId: string): Promise<number | undefined>;
  /** Newest first (OpenAI's order); `after` is a checkpoint id. */
  listCheckpoints(owner: Owner, id: string, after: string | undefined, limit: number): Page<FineTuningJobCheckpoint> | undefined;
  /** The adapter files of a checkpoint (`adapter_config.json`, `adapter_model.safetensors`), with their paths. */
  checkpointFiles(owner: Owner, jobId: string, checkpointId: string): Promise<(CheckpointFile & { path: string })[] | undefined>;
  /** Whether a job that is not final uses the file (such a file may not be deleted). */
  fileInUse(owner: Owner, fileId: string): boolean;
  /**
   * Training tokens a second of this backend's latest succeeded job on that engine and base model (any owner's:
   * it measures the machine, not the user), for a base model's `measured_tokens_per_second`; undefined when none
   * has finished. Optional: a runtime that measures nothing leaves it out.
   */
  measuredThroughput?(engine: string, model: string): number | undefined;
  /** Fine-tuned models and checkpoints of this owner, for `/v1/models`. */
  fineTunedModels(owner: Owner): ModelObject[];
  /** A job's `fine_tuned_model` or a checkpoint's `fine_tuned_model_checkpoint`, resolved; undefined otherwise. */
  resolveFineTuned(owner: Owner, name: string): ChatTarget | undefined;
  /** The same name with its job, checkpoint and adapter files, for saving it; undefined when the owner has none such. */
  fineTunedSource(owner: Owner, name: string): Promise<FineTunedSource | undefined>;
  /**
   * Generates an answer on the engine's chat process, calling `onText` with each piece as it comes. Aborting
   * `signal` (the client went away, or asked to stop) stops the generation on the engine.
   * Rejects with a ChatError.
   */
  chat(target: ChatTarget, request: Omit<ChatRequestMessage, 'type' | 'id' | 'model' | 'adapter'>, onText: (text: string) => void, signal: AbortSignal): Promise<ChatResult>;
  /** An engine's state once it knows whether it can run (see Engine.ready); undefined for an unknown id. Optional. */
  engineInfo?(id: string): Promise<EngineInfo | undefined>;
  /** Resolves once every engine knows whether it can run (before `/v1/system` answers). Optional. */
  enginesReady?(): Promise<void>;
  /** Engines, GPUs, slots and the queue, for `/v1/system`. */
  system(): { engines: EngineInfo[]; gpus: GpuInfo[]; slots: number; queue: { running: number; queued: number }; chat: ChatCounts };
  /** Takes over an authenticated `GET /v1/events` upgrade request for the WebSocket hub. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, owner: Owner): void;
  /** Stops accepting work, stops engines (running jobs stay `running` on disk, to be resumed), closes sockets. */
  close(): Promise<void>;
}

/** What `openRuntime` (backend/runtime/runtime.ts) needs. */
export interface RuntimeOptions {
  /** The data folder: the runtime owns `{dataDir}/jobs/`. */
  dataDir: string;
  /** Concurrent jobs: `--gpus N`; undefined means the GPUs found, or one CPU slot when there are none. */
  gpus: number | undefined;
  log: Log;
  /** Python for the torch engine (issue 8); unused by the embedded engine. */
  python?: string;
  /** `--allow-downloads`: the torch engine may download a base model that is not on this machine (issue 8). */
  allowDownloads?: boolean;
}
