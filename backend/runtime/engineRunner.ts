// One run of a job on its engine: spawns the engine in `train` mode, sends the spec, and turns what the engine
// reports into the job's events, checkpoints and status (issue 4, "Engines"). Messages are handled one after the
// other, each written to disk before the next, so the log is in the order the engine spoke. The run ends when
// the process has exited; a process that exits without `done` or `error` fails the job with `engine_crashed`
// and its last stderr lines, unless the job was being cancelled or the backend is shutting down.
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ENGINE_PROTOCOL_VERSION, type CheckpointMessage, type EngineMessage, type MetricsMessage, type StartedMessage } from '../../common/engineProtocol';
import type { FineTuningJobCheckpoint } from '../../common/api';
import type { Log } from '../runtime';
import { EngineProcess, type EngineExit } from './engineProcess';
import type { Engine } from './engines';
import { newId } from './ids';
import { ENGINE_DIR, ENGINE_LOG, type EventDraft, type JobEntry, type JobStore, type StoredCheckpoint } from './jobStore';
import { transition } from './transitions';

/** Writes of the job record for progress alone are spaced by at least this (the event log has every step). */
const PROGRESS_SAVE_MS = 1000;

/** The model name of a job's final adapter. */
export function fineTunedModelName(entry: JobEntry): string {
  return `ft:${entry.job.model}:${entry.job.suffix ?? 'finetune'}:${entry.job.id}`;
}

/** The model name of a checkpoint of the job. */
export function checkpointModelName(entry: JobEntry, step: number): string {
  return `${fineTunedModelName(entry)}:ckpt-step-${step}`;
}

/** What a run needs. */
export interface JobRunOptions {
  store: JobStore;
  entry: JobEntry;
  engine: Engine;
  log: Log;
  /** The checkpoint to continue from, after a restart. */
  resumeFrom: StoredCheckpoint | null;
  /** Called once, when the process has exited and everything it reported is on disk. */
  onEnd(): void;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(4);
}

/** One engine process running one job (see the file comment). */
export class JobRun {
  private process: EngineProcess | undefined;
  private chain: Promise<void> = Promise.resolve();
  private cancelling = false;
  private shuttingDown = false;
  private finished = false;
  private startedAtMs = Date.now();
  private startStep = 0;
  private lastSaveMs = 0;
  private saveTimer: NodeJS.Timeout | undefined;
  /** Resolves when the run has ended (process gone, everything written). */
  readonly ended: Promise<void>;
  private resolveEnded!: () => void;

  constructor(private readonly options: JobRunOptions) {
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
  }

  /** The engine process id while it runs. */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  /**
   * Moves the job to `running`, spawns the engine and sends it the spec. Never rejects: a failure ends the run
   * (the slot is freed) with the job failed where that can still be written.
   */
  async start(): Promise<void> {
    try {
      await this.spawn();
    } catch (e) {
      const { entry, store, log } = this.options;
      log.error(`job ${entry.job.id}: could not start: ${(e as Error).message}`);
      await transition(store, log, entry, 'failed', { error: { code: 'engine_error', message: `The job could not start: ${(e as Error).message}`, param: null } }).catch(
        () => undefined,
      );
      this.end();
    }
  }

  private async spawn(): Promise<void> {
    const { entry, engine, store, log, resumeFrom } = this.options;
    await engine.ready?.();
    const command = engine.command('train');
    const label = `job ${entry.job.id}`;
    if (command === undefined) {
      await transition(store, log, entry, 'failed', {
        error: { code: 'model_unavailable', message: `The ${engine.info.id} engine can't run: ${engine.info.reason ?? 'not available'}.`, param: null },
      });
      this.end();
      return;
    }
    await transition(store, log, entry, 'running', {
      message: resumeFrom !== null ? `Resumed from step ${resumeFrom.checkpoint.step_number} after a restart` : undefined,
      data: resumeFrom !== null ? { resumed_from_step: resumeFrom.checkpoint.step_number } : undefined,
    });
    // A cancel or a shutdown that came while the transition was being written: no process to start.
    if (this.cancelling || this.shuttingDown) {
      if (this.cancelling) await transition(store, log, entry, 'cancelled');
      this.end();
      return;
    }
    this.startedAtMs = Date.now();
    this.startStep = resumeFrom?.checkpoint.step_number ?? 0;
    const process = new EngineProcess({
      command,
      label,
      log,
      stderrFile: join(entry.dir, ENGINE_LOG),
      onMessage: (message) => {
        this.chain = this.chain.then(() => this.handle(message)).catch((e: unknown) => log.error(`${label}: ${(e as Error).message}`));
      },
    });
    this.process = process;
    process.send({
      type: 'train',
      protocol: ENGINE_PROTOCOL_VERSION,
      spec: {
        ...entry.spec,
        output_dir: join(entry.dir, ENGINE_DIR),
        resume_from: resumeFrom !== null ? join(entry.dir, resumeFrom.dir) : null,
      },
    });
    void process.exited.then((exit) => {
      this.chain = this.chain.then(() => this.exited(exit)).catch((e: unknown) => log.error(`${label}: ${(e as Error).message}`)).finally(() => this.end());
    });
  }

  /** Stops the engine for a cancel; the job becomes `cancelled` once the process has exited. */
  async cancel(): Promise<void> {
    this.cancelling = true;
    // Without a process yet, the start sees the flag and ends the run itself.
    if (this.process !== undefined) void this.process.stop();
    await this.ended;
  }

  /** Stops the engine because the backend stops: the job stays `running` on disk, to be resumed on the next start. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    // A short grace period: the backend is going away, and what the engine does after stdin closes is ignored
    // (the exit handler sees `shuttingDown`); the job stays `running` on disk.
    if (this.process !== undefined) void this.process.stop(500, 3000);
    await this.ended;
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.saveTimer);
    this.resolveEnded();
    this.options.onEnd();
  }

  private async handle(message: EngineMessage): Promise<void> {
    const { entry, store, log } = this.options;
    if (this.shuttingDown || entry.job.status !== 'running') return;
    switch (message.type) {
      case 'started':
        return this.started(message);
      case 'metrics':
        return this.metrics(message);
      case 'checkpoint':
        return this.checkpoint(message);
      case 'log':
        await store.appendEvents(entry, [{ type: 'message', level: message.level, message: message.message, data: message.data ?? null }]);
        return;
      case 'done': {
        const final = this.insideOutput(message.final_checkpoint);
        if (final === undefined) {
          log.warn(`job ${entry.job.id}: final checkpoint ${message.final_checkpoint} is outside the job's folder; ignored`);
        } else {
          entry.finalCheckpoint = final;
        }
        entry.job.trained_tokens = message.trained_tokens;
        entry.job.fine_tuned_model = fineTunedModelName(entry);
        await transition(store, log, entry, 'succeeded', { data: { fine_tuned_model: entry.job.fine_tuned_model } });
        // The engine exits on its own after `done`; one that lingers is stopped.
        void this.process?.stop(5000, 8000);
        return;
      }
      case 'error':
        await transition(store, log, entry, 'failed', { error: { code: message.code, message: message.message, param: null } });
        void this.process?.stop(5000, 8000);
        return;
      default:
        log.warn(`job ${entry.job.id}: ignored a ${message.type} message (not part of training)`);
    }
  }

  private async started(message: StartedMessage): Promise<void> {
    const { entry, store } = this.options;
    const resumed = message.resumed_from_step;
    entry.job.progress = { step: resumed ?? 0, total_steps: message.total_steps, epoch: entry.job.progress?.epoch ?? 0 };
    const held = message.eval_examples > 0 ? `, ${message.eval_examples} held out for evaluation` : '';
    const from = resumed !== null ? ` (continuing after step ${resumed})` : '';
    const { type: _type, ...facts } = message;
    const drafts: EventDraft[] = [
      { type: 'message', level: 'info', message: `Training ${message.total_steps} steps on ${message.train_examples} examples${held}${from}`, data: facts },
    ];
    if (message.truncated_examples > 0) {
      drafts.push({
        type: 'message',
        level: 'warn',
        message: `${message.truncated_examples} examples are longer than max_seq_length (${entry.spec.hyperparameters.max_seq_length} tokens) and were truncated`,
        data: { truncated: message.truncated_examples },
      });
    }
    await store.appendEvents(entry, drafts);
    await store.saveJob(entry);
  }

  private async metrics(message: MetricsMessage): Promise<void> {
    const { entry, store } = this.options;
    const d = message.data;
    const job = entry.job;
    job.progress = { step: d.step, total_steps: d.total_steps, epoch: d.epoch };
    job.trained_tokens = message.trained_tokens;
    const seconds = (Date.now() - this.startedAtMs) / 1000;
    const done = d.step - this.startStep;
    if (done > 0 && seconds > 0) job.estimated_finish = Math.round(Date.now() / 1000 + (d.total_steps - d.step) / (done / seconds));
    const valid = d.valid_loss !== undefined ? `, validation loss=${fmt(d.valid_loss)}` : '';
    await store.appendEvents(entry, [{ type: 'metrics', level: 'info', message: `Step ${d.step}/${d.total_steps}: training loss=${fmt(d.train_loss)}${valid}`, data: d }]);
    this.saveProgress();
  }

  /** Writes the record for a progress change now, or at most once per PROGRESS_SAVE_MS. */
  private saveProgress(): void {
    const { entry, store, log } = this.options;
    const wait = this.lastSaveMs + PROGRESS_SAVE_MS - Date.now();
    const save = (): void => {
      this.saveTimer = undefined;
      this.lastSaveMs = Date.now();
      store.saveJob(entry).catch((e: unknown) => log.error(`job ${entry.job.id}: record not written: ${(e as Error).message}`));
    };
    if (wait <= 0) save();
    else if (this.saveTimer === undefined) this.saveTimer = setTimeout(save, wait);
  }

  private async checkpoint(message: CheckpointMessage): Promise<void> {
    const { entry, store, log } = this.options;
    const dir = this.insideOutput(message.path);
    if (dir === undefined) {
      log.warn(`job ${entry.job.id}: checkpoint folder ${message.path} is outside the job's folder; ignored`);
      return;
    }
    const metrics: FineTuningJobCheckpoint['metrics'] = {
      step: message.step,
      train_loss: message.train_loss,
      train_mean_token_accuracy: message.train_mean_token_accuracy,
    };
    if (message.valid_loss !== null) metrics.valid_loss = metrics.full_valid_loss = message.valid_loss;
    if (message.valid_mean_token_accuracy !== null) {
      metrics.valid_mean_token_accuracy = metrics.full_valid_mean_token_accuracy = message.valid_mean_token_accuracy;
    }
    const checkpoint: FineTuningJobCheckpoint = {
      id: newId('checkpoint'),
      object: 'fine_tuning.job.checkpoint',
      created_at: Math.floor(Date.now() / 1000),
      fine_tuned_model_checkpoint: checkpointModelName(entry, message.step),
      fine_tuning_job_id: entry.job.id,
      metrics,
      step_number: message.step,
      sample: message.sample,
    };
    await store.addCheckpoint(entry, { checkpoint, dir });
    const valid = message.valid_loss !== null ? `, validation loss=${fmt(message.valid_loss)}` : '';
    await store.appendEvents(entry, [
      {
        type: 'message',
        level: 'info',
        message: `Checkpoint saved at step ${message.step} (training loss=${fmt(message.train_loss)}${valid})`,
        data: { checkpoint: checkpoint.id, step: message.step, fine_tuned_model_checkpoint: checkpoint.fine_tuned_model_checkpoint },
      },
    ]);
  }

  /** A path the engine named, relative to the job's folder, when it lies inside the engine's output folder. */
  private insideOutput(path: string): string | undefined {
    const { entry } = this.options;
    const output = join(entry.dir, ENGINE_DIR);
    const absolute = isAbsolute(path) ? resolve(path) : resolve(output, path);
    if (!absolute.startsWith(output + sep)) return undefined;
    return relative(entry.dir, absolute);
  }

  private async exited(exit: EngineExit): Promise<void> {
    const { entry, store, log } = this.options;
    if (this.shuttingDown) return;
    if (this.cancelling) {
      await transition(store, log, entry, 'cancelled');
      return;
    }
    if (entry.job.status !== 'running') return;
    const how = exit.spawnError !== undefined ? `could not start (${exit.spawnError})` : exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const tail = this.process?.stderrTail() ?? [];
    const message = `The engine ${how} before finishing.${tail.length > 0 ? ` Its last output:\n${tail.join('\n')}` : ''}`;
    await transition(store, log, entry, 'failed', { error: { code: 'engine_crashed', message, param: null } });
  }
}
