// The backend's runtime behind backend/runtime.ts: the job store, the scheduler, one engine run per running
// job, the chat pool and the WebSocket hub, wired together. Jobs change state only through `transition`, and
// the per-job engine run (engineRunner.ts) is the only writer of a running job's events.
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { FINAL_JOB_STATUSES, type CheckpointFile, type EngineInfo, type FineTuningJob, type FineTuningJobCheckpoint, type FineTuningJobEvent, type GpuInfo, type ModelObject } from '../../common/api';
import type { ChatRequestMessage } from '../../common/engineProtocol';
import type { ChatCounts, ChatResult, ChatTarget, FineTunedSource, JobRuntime, Log, NewJob, Owner, Page, RuntimeOptions } from '../runtime';
import { ChatPool } from './chatPool';
import { engineRegistry, type Engine, type EngineScripts } from './engines';
import { JobRun } from './engineRunner';
import { EventHub, type EventHubOptions } from './eventHub';
import { detectGpus } from './gpus';
import { JobStore, type JobEntry, type StoreListener, type StoredCheckpoint } from './jobStore';
import { MetricsCache, type MetricsCacheOptions, type MetricsSlice } from './metricsTable';
import { Scheduler } from './scheduler';
import { ThroughputLog } from './throughput';
import { transition } from './transitions';

/** The files of a LoRA checkpoint that clients may download: the adapter in the format peft loads. */
export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

/**
 * The files of a full fine-tuning checkpoint that clients may download: a model folder in the format
 * transformers' `from_pretrained` loads (generation_config.json too when the base model had one).
 */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'] as const;

/** Options beyond the seam's, for tests and embedding: other engine scripts, hub settings, no GPU probe. */
export interface RuntimeExtraOptions extends RuntimeOptions {
  engineScripts?: EngineScripts;
  hub?: EventHubOptions;
  /** The GPUs to report instead of asking nvidia-smi. */
  detectedGpus?: GpuInfo[];
  /** Limits of the `…/metrics` cache. */
  metricsCache?: MetricsCacheOptions;
}

/** Opens the runtime on `options.dataDir`: loads the store, recovers interrupted jobs, starts the queue. */
export async function openRuntime(options: RuntimeOptions | RuntimeExtraOptions): Promise<JobRuntime & RuntimeInternals> {
  const extra = options as RuntimeExtraOptions;
  const gpus = extra.detectedGpus ?? (await detectGpus());
  const store = await JobStore.open(options.dataDir, options.log);
  const throughput = await ThroughputLog.open(options.dataDir, options.log);
  const engines = engineRegistry(extra.engineScripts, options.python, options.allowDownloads);
  // Jobs that were running on an engine that must first say whether it can run: ask it before recovering them.
  const pending = new Set(store.all().filter((e) => e.job.status === 'running').map((e) => e.job.engine));
  await Promise.all([...pending].map((id) => engines.get(id)?.ready?.() ?? Promise.resolve()));
  const runtime = new Runtime(options, store, throughput, gpus, engines, extra.hub, new MetricsCache(extra.metricsCache));
  await runtime.recover();
  return runtime;
}

/** What tests may look at beyond the seam. */
export interface RuntimeInternals {
  /** The engine process of a running job. */
  enginePid(jobId: string): number | undefined;
  /** The chat processes. */
  chatPids(): number[];
  /** Resolves when the job's current engine run (if any) has ended. */
  runEnded(jobId: string): Promise<void>;
  /** Hears every change of every job (after it is on disk); returns the function that stops listening. */
  watch(listener: StoreListener): () => void;
}

/** The downloadable files of a checkpoint folder: the adapter, or (full fine-tuning) the model; [] when it is gone. */
async function folderFiles(dir: string): Promise<(CheckpointFile & { path: string })[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const files: (CheckpointFile & { path: string })[] = [];
  // A checkpoint holds an adapter or (full fine-tuning) a whole model; never both, so the adapter decides.
  const listed: readonly string[] = names.includes('adapter_config.json') ? ADAPTER_FILES : MODEL_FILES;
  for (const name of listed) {
    if (!names.includes(name)) continue;
    const path = join(dir, name);
    const info = await stat(path);
    if (info.isFile()) files.push({ object: 'fine_tuning.job.checkpoint.file', name, bytes: info.size, path });
  }
  return files;
}

function page<T>(items: T[], start: number, limit: number): Page<T> {
  return { data: items.slice(start, start + limit), has_more: start + limit < items.length };
}

class Runtime implements JobRuntime, RuntimeInternals {
  private readonly scheduler: Scheduler;
  private readonly runs = new Map<string, JobRun>();
  /** Jobs found running at open, with the checkpoint they continue from. */
  private readonly resumeFrom = new Map<string, StoredCheckpoint | null>();
  private readonly chats: ChatPool;
  private readonly hub: EventHub;
  private readonly log: Log;
  private closed = false;

  constructor(
    options: RuntimeOptions,
    private readonly store: JobStore,
    private readonly throughput: ThroughputLog,
    private readonly gpus: GpuInfo[],
    private readonly engines: Map<string, Engine>,
    hubOptions: EventHubOptions | undefined,
    /** The `…/metrics` columns of the jobs asked for lately, caught up with their events at each request. */
    private readonly metricsCache: MetricsCache,
  ) {
    this.log = options.log;
    const slots = options.gpus ?? (gpus.length > 0 ? gpus.length : 1);
    this.scheduler = new Scheduler(Math.max(1, slots), {
      start: (jobId) => this.startRun(jobId),
      positions: (queue) => this.positions(queue),
    });
    this.chats = new ChatPool(engines, options.dataDir, options.log);
    this.hub = new EventHub(store, options.log, hubOptions);
    // Measured when the job turns `succeeded`, in the same tick as the status change, so that a client that sees
    // the success sees the new throughput in `/v1/models` too. Only succeeded jobs: a cancelled or failed one may
    // have stopped in its warm-up.
    const measured = new Set<string>();
    store.listen({
      event: (entry) => this.metricsCache.recorded(entry),
      checkpoint: () => undefined,
      job: (entry) => {
        const job = entry.job;
        if (job.status !== 'succeeded' || measured.has(job.id)) return;
        measured.add(job.id);
        void this.throughput.record(job.engine, job.model, job.id, entry.events, job.finished_at ?? Math.floor(Date.now() / 1000));
      },
    });
  }

  /** Puts the jobs of the last session back on track (issue 4, "Store and scheduler"). */
  async recover(): Promise<void> {
    const entries = this.store.all();
    for (const entry of entries.filter((e) => e.job.status === 'running')) {
      const engine = this.engines.get(entry.job.engine);
      // The newest checkpoint whose folder is still there (one removed by hand is skipped, not trusted).
      const last = [...entry.checkpoints].sort((a, b) => b.checkpoint.step_number - a.checkpoint.step_number).find((c) => existsSync(join(entry.dir, c.dir)));
      const usable = last !== undefined;
      if (engine === undefined || !engine.info.available || (usable && !engine.info.resumable)) {
        const why = engine === undefined || !engine.info.available ? `the ${entry.job.engine} engine is not available` : `the ${entry.job.engine} engine can't resume a job`;
        await transition(this.store, this.log, entry, 'failed', {
          error: { code: 'interrupted', message: `The backend stopped while the job ran, and ${why}. Start the job again.`, param: null },
        });
        continue;
      }
      this.resumeFrom.set(entry.job.id, usable ? last : null);
      await transition(this.store, this.log, entry, 'queued', {
        message: usable
          ? `The backend restarted while the job ran; it continues from its checkpoint at step ${last.checkpoint.step_number}`
          : 'The backend restarted before the job saved a checkpoint; it starts over from step 0',
        data: { restarted: true, resume_from_step: usable ? last.checkpoint.step_number : null },
      });
      await this.enqueue(entry, true);
    }
    for (const entry of entries.filter((e) => e.job.status === 'validating_files' || e.job.status === 'queued')) {
      await this.validateAndQueue(entry);
    }
  }

  /** Queues a job, or fails it when it needs more slots than this backend has (it would wait forever). */
  private async enqueue(entry: JobEntry, front = false): Promise<void> {
    const need = Scheduler.need(entry.job.gpus);
    if (need > this.scheduler.slots) {
      await transition(this.store, this.log, entry, 'failed', {
        error: { code: 'engine_error', message: `The job needs ${need} GPUs; this backend has ${this.scheduler.slots} slot${this.scheduler.slots === 1 ? '' : 's'}.`, param: 'gpus' },
      });
      return;
    }
    this.scheduler.enqueue(entry.job.id, entry.job.gpus, front);
  }

  /** `validating_files` → `queued` when the files are still there, else `failed`. */
  private async validateAndQueue(entry: JobEntry): Promise<void> {
    const files: [string, string | null][] = [
      ['training_file', entry.spec.training_file],
      ['validation_file', entry.spec.validation_file],
    ];
    const missing = files.filter((f): f is [string, string] => f[1] !== null && !existsSync(f[1]));
    if (missing.length > 0) {
      const [param, path] = missing[0]!;
      await transition(this.store, this.log, entry, 'failed', {
        error: { code: 'invalid_dataset', message: `The job's ${param.replace('_', ' ')} is gone (${path}). Upload it again and start a new job.`, param },
      });
      return;
    }
    if (entry.job.status !== 'queued') await transition(this.store, this.log, entry, 'queued');
    await this.enqueue(entry);
  }

  private positions(queue: readonly { jobId: string; position: number }[]): void {
    for (const { jobId, position } of queue) {
      const entry = this.store.get(jobId);
      if (entry === undefined || entry.job.queue_position === position) continue;
      entry.job.queue_position = position;
      this.store.saveJob(entry).catch((e: unknown) => this.log.error(`job ${jobId}: record not written: ${(e as Error).message}`));
    }
  }

  private startRun(jobId: string): void {
    const entry = this.store.get(jobId);
    const engine = entry !== undefined ? this.engines.get(entry.job.engine) : undefined;
    if (entry === undefined || this.closed) {
      this.scheduler.release(jobId);
      return;
    }
    const resumeFrom = this.resumeFrom.get(jobId) ?? null;
    this.resumeFrom.delete(jobId);
    const run = new JobRun({
      store: this.store,
      entry,
      engine: engine ?? { info: { id: entry.job.engine, available: false, resumable: false, reason: 'no such engine' }, command: () => undefined },
      log: this.log,
      resumeFrom,
      onEnd: () => {
        if (this.runs.get(jobId) === run) this.runs.delete(jobId);
        this.scheduler.release(jobId);
      },
    });
    this.runs.set(jobId, run);
    void run.start();
  }

  async createJob(newJob: NewJob): Promise<FineTuningJob> {
    const entry = await this.store.create(newJob.owner, { ...newJob.job, status: 'validating_files' }, newJob.spec);
    this.log.info(`job ${entry.job.id} created (${entry.job.model}, ${entry.job.engine} engine)`);
    await this.validateAndQueue(entry);
    return entry.job;
  }

  private owned(owner: Owner, id: string): JobEntry | undefined {
    const entry = this.store.get(id);
    return entry !== undefined && entry.owner === owner ? entry : undefined;
  }

  getJob(owner: Owner, id: string): FineTuningJob | undefined {
    return this.owned(owner, id)?.job;
  }

  listJobs(owner: Owner, after: string | undefined, limit: number): Page<FineTuningJob> {
    const jobs = this.store.all().filter((e) => e.owner === owner).reverse().map((e) => e.job);
    const start = after === undefined ? 0 : jobs.findIndex((j) => j.id === after) + 1;
    // An unknown `after` gives an empty page rather than the first one again, so a client never loops.
    if (after !== undefined && start === 0) return { data: [], has_more: false };
    return page(jobs, start, limit);
  }

  async cancelJob(owner: Owner, id: string): Promise<FineTuningJob | undefined> {
    const entry = this.owned(owner, id);
    if (entry === undefined) return undefined;
    if (FINAL_JOB_STATUSES.includes(entry.job.status)) return entry.job;
    const run = this.runs.get(id);
    if (run !== undefined) {
      await run.cancel();
      return entry.job;
    }
    this.scheduler.remove(id);
    this.resumeFrom.delete(id);
    await transition(this.store, this.log, entry, 'cancelled');
    return entry.job;
  }

  async listEvents(owner: Owner, id: string, afterSeq: number, limit: number): Promise<Page<FineTuningJobEvent> | undefined> {
    const entry = this.owned(owner, id);
    if (entry === undefined) return undefined;
    return page(entry.events, Math.max(0, Math.min(afterSeq, entry.events.length)), limit);
  }

  metrics(owner: Owner, id: string, afterSeq: number): MetricsSlice | undefined {
    const entry = this.owned(owner, id);
    return entry === undefined ? undefined : this.metricsCache.slice(entry, afterSeq);
  }

  async eventSeq(owner: Owner, jobId: string, eventId: string): Promise<number | undefined> {
    return this.owned(owner, jobId)?.eventSeqById.get(eventId);
  }

  listCheckpoints(owner: Owner, id: string, after: string | undefined, limit: number): Page<FineTuningJobCheckpoint> | undefined {
    const entry = this.owned(owner, id);
    if (entry === undefined) return undefined;
    const all = entry.checkpoints.map((c) => c.checkpoint).reverse();
    const start = after === undefined ? 0 : all.findIndex((c) => c.id === after) + 1;
    if (after !== undefined && start === 0) return { data: [], has_more: false };
    return page(all, start, limit);
  }

  async checkpointFiles(owner: Owner, jobId: string, checkpointId: string): Promise<(CheckpointFile & { path: string })[] | undefined> {
    const entry = this.owned(owner, jobId);
    const stored = entry?.checkpoints.find((c) => c.checkpoint.id === checkpointId);
    if (entry === undefined || stored === undefined) return undefined;
    return await folderFiles(join(entry.dir, stored.dir));
  }

  fileInUse(owner: Owner, fileId: string): boolean {
    return this.store
      .all()
      .some((e) => e.owner === owner && !FINAL_JOB_STATUSES.includes(e.job.status) && (e.job.training_file === fileId || e.job.validation_file === fileId));
  }

  measuredThroughput(engine: string, model: string): number | undefined {
    return this.throughput.get(engine, model);
  }

  fineTunedModels(owner: Owner): ModelObject[] {
    const models: ModelObject[] = [];
    for (const entry of this.store.all()) {
      if (entry.owner !== owner) continue;
      const base = { object: 'model' as const, owned_by: 'user', engine: entry.job.engine, base_model: entry.job.model, job_id: entry.job.id };
      if (entry.job.fine_tuned_model !== null && entry.finalCheckpoint !== null) {
        models.push({ ...base, id: entry.job.fine_tuned_model, created: entry.job.finished_at ?? entry.job.created_at, kind: 'fine-tuned' });
      }
      for (const { checkpoint } of entry.checkpoints) {
        models.push({ ...base, id: checkpoint.fine_tuned_model_checkpoint, created: checkpoint.created_at, kind: 'checkpoint' });
      }
    }
    return models;
  }

  resolveFineTuned(owner: Owner, name: string): ChatTarget | undefined {
    for (const entry of this.store.all()) {
      if (entry.owner !== owner) continue;
      const target = (dir: string): ChatTarget => ({ engine: entry.job.engine, model: entry.spec.model, adapter: join(entry.dir, dir) });
      if (entry.job.fine_tuned_model === name && entry.finalCheckpoint !== null) return target(entry.finalCheckpoint);
      const stored = entry.checkpoints.find((c) => c.checkpoint.fine_tuned_model_checkpoint === name);
      if (stored !== undefined) return target(stored.dir);
    }
    return undefined;
  }

  async fineTunedSource(owner: Owner, name: string): Promise<FineTunedSource | undefined> {
    for (const entry of this.store.all()) {
      if (entry.owner !== owner) continue;
      const final = entry.job.fine_tuned_model === name && entry.finalCheckpoint !== null ? entry.finalCheckpoint : undefined;
      // The final adapter is the last checkpoint's folder; when it is listed, its id and step say where it came from.
      const stored = entry.checkpoints.find((c) => (final !== undefined ? c.dir === final : c.checkpoint.fine_tuned_model_checkpoint === name));
      const dir = final ?? stored?.dir;
      if (dir === undefined) continue;
      const folder = join(entry.dir, dir);
      return {
        target: { engine: entry.job.engine, model: entry.spec.model, adapter: folder },
        base_model: entry.job.model,
        job_id: entry.job.id,
        checkpoint_id: stored?.checkpoint.id ?? null,
        step_number: stored?.checkpoint.step_number ?? null,
        files: await folderFiles(folder),
      };
    }
    return undefined;
  }

  chat(target: ChatTarget, request: Omit<ChatRequestMessage, 'type' | 'id' | 'model' | 'adapter'>, onText: (text: string) => void, signal: AbortSignal): Promise<ChatResult> {
    return this.chats.chat(target, request, onText, signal);
  }

  async engineInfo(id: string): Promise<EngineInfo | undefined> {
    const engine = this.engines.get(id);
    await engine?.ready?.();
    return engine?.info;
  }

  async enginesReady(): Promise<void> {
    await Promise.all([...this.engines.values()].map((e) => e.ready?.() ?? Promise.resolve()));
  }

  system(): { engines: EngineInfo[]; gpus: GpuInfo[]; slots: number; queue: { running: number; queued: number }; chat: ChatCounts } {
    return { engines: [...this.engines.values()].map((e) => e.info), gpus: this.gpus, slots: this.scheduler.slots, queue: this.scheduler.counts(), chat: this.chats.counts() };
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, owner: Owner): void {
    this.hub.handleUpgrade(request, socket, head, owner);
  }

  enginePid(jobId: string): number | undefined {
    return this.runs.get(jobId)?.pid;
  }

  chatPids(): number[] {
    return this.chats.pids();
  }

  watch(listener: StoreListener): () => void {
    return this.store.listen(listener);
  }

  async runEnded(jobId: string): Promise<void> {
    await this.runs.get(jobId)?.ended;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.close();
    await Promise.all([...this.runs.values()].map((r) => r.shutdown()));
    await this.chats.close();
    await this.store.close();
    await this.throughput.idle();
  }
}
