// What the runs sidebar knows, per backend: its connection state, its jobs with their checkpoints, kept current
// from one `listJobs` fill and then from the event stream's snapshots, metrics and checkpoints, and its uploaded
// files (listed on connect and after an upload; the stream says nothing of files). Pure (no
// `vscode`): the tree, the status-bar item and the notifications read it, and the unit tests drive it directly.
import type { FileObject, FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, JobStatus } from '../common/api';
import { FINAL_JOB_STATUSES } from '../common/api';

/** Where a backend's connection stands, as the tree shows it. */
export type ConnectionState =
  | { kind: 'idle' }
  | { kind: 'connecting' }
  | { kind: 'connected' }
  /** `reason` is a BackendError reason (or `stopped` for a local backend that exited). */
  | { kind: 'failed'; reason: string; message: string };

/** One run, as the sidebar keeps it. */
export interface RunState {
  readonly backend: string;
  job: FineTuningJob;
  /** By step, ascending, one per checkpoint id. */
  checkpoints: FineTuningJobCheckpoint[];
  /** Whether the full checkpoint list was read (live checkpoint messages alone may miss older ones). */
  checkpointsLoaded: boolean;
  /** The last metrics' train loss, when a metrics event was seen. */
  lastLoss: number | undefined;
  /**
   * The latest message event (the engine's or the backend's: "Downloading …", "Training 300 steps …"), seen live
   * or recalled after a connect: what a running run is doing before its first step, when the row has no progress
   * to show.
   */
  lastMessage?: string;
  /** The seq of that message event (0 when unknown), so that a recalled message never hides a newer live one. */
  lastMessageSeq?: number;
}

/** One backend's part of the model. */
export interface BackendRuns {
  readonly name: string;
  connection: ConnectionState;
  /** Whether `fill` has run since the last reset: before it, the runs are not known. */
  filled: boolean;
  readonly runs: Map<string, RunState>;
  /** The uploaded files by id, once listed. */
  readonly files: Map<string, FileObject>;
  /** Whether the files were listed since the last reset (before that, `files` is empty for want of knowing). */
  filesListed: boolean;
  /** Why the last listing of the files failed; undefined once one succeeds. */
  filesError: string | undefined;
}

/** A run reached a final status while the sidebar watched it (never for runs first seen final). */
export interface RunFinished {
  run: RunState;
  status: 'succeeded' | 'failed' | 'cancelled';
}

/** What changed, so that the tree refreshes one node rather than the whole view. */
export type ModelChange =
  | { kind: 'backends' }
  | { kind: 'backend'; backend: string }
  | { kind: 'run'; backend: string; jobId: string; added: boolean }
  /** The backend's list of files changed (listed, one added or deleted, or the listing failed). */
  | { kind: 'files'; backend: string };

/** What identifies a run across the extension: the form's "Rerun With Changes" reads this from a run node
 * (src/runsTree.ts re-exports it beside the node classes). */
export interface RunRef {
  backend: string;
  jobId: string;
}

/** A run reference from a command argument (a run node, or anything with those two strings); else undefined. */
export function runRefOf(arg: unknown): RunRef | undefined {
  if (typeof arg !== 'object' || arg === null) return undefined;
  const { backend, jobId } = arg as { backend?: unknown; jobId?: unknown };
  return typeof backend === 'string' && typeof jobId === 'string' ? { backend, jobId } : undefined;
}

/** Whether a status is one a job never leaves. */
export function isFinal(status: JobStatus): boolean {
  return FINAL_JOB_STATUSES.includes(status);
}

/**
 * The sidebar's model (see the file comment). Changes go to `onChange` listeners; runs that finish while
 * watched go to `onFinished` listeners once per job id, whatever reconnects or repeated snapshots follow.
 */
export class RunsModel {
  private readonly backends = new Map<string, BackendRuns>();
  private readonly changeListeners = new Set<(change: ModelChange) => void>();
  private readonly finishedListeners = new Set<(finished: RunFinished) => void>();
  private readonly eventListeners = new Set<(backend: string, event: FineTuningJobEvent) => void>();
  /** Job keys already reported as finished: one report per job, ever (reconnects resend snapshots). */
  private readonly reported = new Set<string>();

  /** Listens for changes; returns a function that stops listening. */
  onChange(listener: (change: ModelChange) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Listens for runs that finish while watched; returns a function that stops listening. */
  onFinished(listener: (finished: RunFinished) => void): () => void {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }

  /**
   * Listens for every live job event of every connected backend (metrics and messages, once each, in seq order
   * per job), as the sidebar's stream delivers them; returns a function that stops listening. The dashboards
   * read a run's history from the backend and these for what comes after.
   */
  onEvent(listener: (backend: string, event: FineTuningJobEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Makes the model hold exactly these backends, in this order (state kept for names that stay). */
  setBackends(names: readonly string[]): void {
    const before = [...this.backends.keys()];
    const kept = new Map<string, BackendRuns>();
    for (const name of names) {
      kept.set(name, this.backends.get(name) ?? { name, connection: { kind: 'idle' }, filled: false, runs: new Map(), files: new Map(), filesListed: false, filesError: undefined });
    }
    this.backends.clear();
    for (const [name, runs] of kept) this.backends.set(name, runs);
    if (before.join('\n') !== names.join('\n')) this.emit({ kind: 'backends' });
  }

  /** The backends, in order. */
  backendList(): BackendRuns[] {
    return [...this.backends.values()];
  }

  backend(name: string): BackendRuns | undefined {
    return this.backends.get(name);
  }

  run(backend: string, jobId: string): RunState | undefined {
    return this.backends.get(backend)?.runs.get(jobId);
  }

  /** A backend's runs, newest first. */
  runsOf(backend: string): RunState[] {
    const runs = [...(this.backends.get(backend)?.runs.values() ?? [])];
    return runs.sort((a, b) => b.job.created_at - a.job.created_at || (a.job.id < b.job.id ? 1 : -1));
  }

  setConnection(backend: string, connection: ConnectionState): void {
    const entry = this.backends.get(backend);
    if (!entry) return;
    entry.connection = connection;
    this.emit({ kind: 'backend', backend });
  }

  /** Forgets a backend's runs (before a fresh fill after its URL or key changed). */
  reset(backend: string): void {
    const entry = this.backends.get(backend);
    if (!entry) return;
    entry.runs.clear();
    entry.filled = false;
    entry.files.clear();
    entry.filesListed = false;
    entry.filesError = undefined;
    this.emit({ kind: 'backend', backend });
  }

  /** The backend's files as a listing gave them: replaces what was known. */
  setFiles(backend: string, files: readonly FileObject[]): void {
    const entry = this.backends.get(backend);
    if (!entry) return;
    entry.files.clear();
    for (const file of files) entry.files.set(file.id, file);
    entry.filesListed = true;
    entry.filesError = undefined;
    this.emit({ kind: 'files', backend });
  }

  /** The listing of the files failed: the tree says why (what was listed before stays). */
  setFilesError(backend: string, message: string): void {
    const entry = this.backends.get(backend);
    if (!entry) return;
    entry.filesError = message;
    this.emit({ kind: 'files', backend });
  }

  /** A file the backend deleted. */
  removeFile(backend: string, fileId: string): void {
    const entry = this.backends.get(backend);
    if (!entry?.files.delete(fileId)) return;
    this.emit({ kind: 'files', backend });
  }

  /** A backend's files, newest first. */
  filesOf(backend: string): FileObject[] {
    const files = [...(this.backends.get(backend)?.files.values() ?? [])];
    return files.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  }

  file(backend: string, fileId: string): FileObject | undefined {
    return this.backends.get(backend)?.files.get(fileId);
  }

  /** The runs the sidebar knows that train or evaluate on the file, newest first. */
  runsUsingFile(backend: string, fileId: string): RunState[] {
    return this.runsOf(backend).filter((r) => r.job.training_file === fileId || r.job.validation_file === fileId);
  }

  /**
   * The backend answered its listing: it is connected, and these are its runs (one change, so that the tree
   * refreshes the backend's node once). Replaces what was known. A job that is final here is never reported as
   * finished; one that was watched as unfinished and is final now is (it finished while the sidebar looked away).
   */
  fill(backend: string, jobs: readonly FineTuningJob[]): void {
    const entry = this.backends.get(backend);
    if (!entry) return;
    const previous = new Map(entry.runs);
    entry.runs.clear();
    for (const job of jobs) {
      const old = previous.get(job.id);
      entry.runs.set(job.id, { backend, job, checkpoints: old?.checkpoints ?? [], checkpointsLoaded: old?.checkpointsLoaded ?? false, lastLoss: old?.lastLoss, lastMessage: old?.lastMessage, lastMessageSeq: old?.lastMessageSeq });
      if (old) this.maybeFinished(entry.runs.get(job.id)!, old.job.status);
      else if (isFinal(job.status)) this.reported.add(key(backend, job.id));
    }
    entry.filled = true;
    entry.connection = { kind: 'connected' };
    this.emit({ kind: 'backend', backend });
  }

  /** A job snapshot (from the stream, or a request's answer such as create or cancel). */
  applyJob(backend: string, job: FineTuningJob): void {
    const entry = this.backends.get(backend);
    if (!entry) return;
    const existing = entry.runs.get(job.id);
    if (existing) {
      // Snapshots can arrive out of order between the stream and a request's answer: never step back from final.
      if (isFinal(existing.job.status) && !isFinal(job.status)) return;
      const before = existing.job.status;
      existing.job = job;
      this.emit({ kind: 'run', backend, jobId: job.id, added: false });
      this.maybeFinished(existing, before);
      return;
    }
    const run: RunState = { backend, job, checkpoints: [], checkpointsLoaded: false, lastLoss: undefined };
    entry.runs.set(job.id, run);
    this.emit({ kind: 'run', backend, jobId: job.id, added: true });
    // A job first seen already final finished before the sidebar watched it: no report.
    if (isFinal(job.status)) this.reported.add(key(backend, job.id));
  }

  /** A job event: metrics keep the last loss and the progress for the status bar; a message is the latest news. */
  applyEvent(backend: string, event: FineTuningJobEvent): void {
    for (const listener of [...this.eventListeners]) listener(backend, event);
    const run = this.run(backend, event.job_id);
    if (!run) return;
    if (event.type === 'message') {
      this.setLastMessage(run, event);
      return;
    }
    run.lastLoss = event.data.train_loss;
    const progress = run.job.progress;
    if (!progress || progress.step < event.data.step) {
      run.job = { ...run.job, progress: { step: event.data.step, total_steps: event.data.total_steps, epoch: event.data.epoch } };
    }
    this.emit({ kind: 'run', backend, jobId: run.job.id, added: false });
  }

  /**
   * A run's latest message read back after a connect (the listing does not carry it, and the stream brings only
   * newer events): kept unless a newer one arrived meanwhile. Not passed to the event listeners (the dashboards
   * read their history themselves).
   */
  recallMessage(backend: string, event: FineTuningJobEvent): void {
    const run = this.run(backend, event.job_id);
    if (run && event.type === 'message') this.setLastMessage(run, event);
  }

  private setLastMessage(run: RunState, event: FineTuningJobEvent): void {
    if (event.seq > 0 && event.seq < (run.lastMessageSeq ?? 0)) return;
    run.lastMessageSeq = event.seq;
    if (run.lastMessage === event.message) return;
    run.lastMessage = event.message;
    this.emit({ kind: 'run', backend: run.backend, jobId: run.job.id, added: false });
  }

  /** One checkpoint (live, or from a listing); kept once per id, ordered by step. */
  applyCheckpoint(backend: string, jobId: string, checkpoint: FineTuningJobCheckpoint): void {
    const run = this.run(backend, jobId);
    if (!run || run.checkpoints.some((c) => c.id === checkpoint.id)) return;
    run.checkpoints = [...run.checkpoints, checkpoint].sort((a, b) => a.step_number - b.step_number);
    this.emit({ kind: 'run', backend, jobId, added: false });
  }

  /** The full checkpoint list of a run, read once when the run is first expanded. */
  setCheckpoints(backend: string, jobId: string, checkpoints: readonly FineTuningJobCheckpoint[]): void {
    const run = this.run(backend, jobId);
    if (!run) return;
    const byId = new Map(run.checkpoints.map((c) => [c.id, c]));
    for (const c of checkpoints) byId.set(c.id, c);
    run.checkpoints = [...byId.values()].sort((a, b) => a.step_number - b.step_number);
    run.checkpointsLoaded = true;
    this.emit({ kind: 'run', backend, jobId, added: false });
  }

  /**
   * The run the status bar follows: the most recently started running job among the backends (undefined when
   * none runs).
   */
  currentRun(): RunState | undefined {
    let best: RunState | undefined;
    for (const entry of this.backends.values()) {
      for (const run of entry.runs.values()) {
        if (run.job.status !== 'running') continue;
        const started = run.job.started_at ?? run.job.created_at;
        const bestStarted = best ? (best.job.started_at ?? best.job.created_at) : -Infinity;
        if (started > bestStarted) best = run;
      }
    }
    return best;
  }

  private maybeFinished(run: RunState, before: JobStatus): void {
    const status = run.job.status;
    if (!isFinal(status) || isFinal(before)) return;
    const k = key(run.backend, run.job.id);
    if (this.reported.has(k)) return;
    this.reported.add(k);
    for (const listener of [...this.finishedListeners]) listener({ run, status: status as RunFinished['status'] });
  }

  private emit(change: ModelChange): void {
    for (const listener of [...this.changeListeners]) listener(change);
  }
}

function key(backend: string, jobId: string): string {
  return `${backend}\u0000${jobId}`;
}
