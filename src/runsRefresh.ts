// When the runs tree tells VS Code that a row changed. Every refresh makes VS Code replace the row, and the
// extension host forgets the old row's command before the workbench has drawn the new one: a click or a
// right-click that lands in between does nothing ("Actual command not found"). Refreshing a running run at every
// step made that a matter of luck. So the tree computes what each row shows (its view, below), compares it with
// what VS Code was last handed, and fires only for a real difference: a status, an icon, a menu or a new
// checkpoint at once; a running run's progress (step, ETA, queue position) at most once per interval, the latest
// values always landing at the end of it. Pure (no `vscode`): the unit tests drive it with a fake clock.
import type { FineTuningJobCheckpoint } from '../common/api';
import type { BackendRuns, ModelChange, RunsModel, RunState } from './runsModel';
import { isFinal } from './runsModel';
import { connectionDescription, runDescription, runLabel, statusIcon } from './runsText';

/** Where the backend's URL comes from, for descriptions (the tree's and the refresh's). */
export interface BackendUrls {
  urlOf(backend: string): string | undefined;
  /** Whether the backend's key is one the user can set (remote backends). */
  isRemote(backend: string): boolean;
}

/** What VS Code shows of a run's row: everything getTreeItem sets except the tooltip (resolved on hover). */
export interface RunRowView {
  readonly label: string;
  /** `model · step 12/96 · ETA 3 min`: the one part that changes while a run trains. */
  readonly description: string;
  /** A codicon id. */
  readonly icon: string;
  /** A theme colour id for the icon, when the status has one. */
  readonly color: string | undefined;
  readonly contextValue: string;
  /** Whether the row can expand (it has, or may have, checkpoints). */
  readonly collapsible: boolean;
  /** The checkpoints below it, as the tree lists them (newest first). */
  readonly checkpoints: readonly FineTuningJobCheckpoint[];
}

/** The view of a run's row at `now` (Unix seconds, for the ETA). */
export function runRowView(run: RunState, now: number): RunRowView {
  const job = run.job;
  const color = job.status === 'succeeded' ? 'testing.iconPassed' : job.status === 'failed' ? 'testing.iconFailed' : undefined;
  return {
    label: runLabel(job),
    description: runDescription(job, now, run.lastMessage),
    icon: statusIcon(job.status),
    color,
    contextValue: `run:${job.status}${isFinal(job.status) ? ':final' : ''}`,
    // Checkpoints not read yet are read when the node expands (Training listens), so any run past its queue may have some.
    collapsible: run.checkpoints.length > 0 || (!run.checkpointsLoaded && job.status !== 'queued' && job.status !== 'validating_files'),
    checkpoints: [...run.checkpoints].reverse(),
  };
}

/** One child of a backend's node, as data (the tree makes the nodes). */
export type BackendChild =
  | { kind: 'failed'; message: string; reason: string }
  | { kind: 'connecting' }
  | { kind: 'notConnected' }
  | { kind: 'empty' }
  | { kind: 'run'; jobId: string }
  | { kind: 'datasets' };

/** What a backend's node holds: a message while it is not connected or has no runs, its runs, then its datasets. */
export function backendChildren(model: RunsModel, backend: string): BackendChild[] {
  const entry = model.backend(backend);
  if (!entry) return [];
  const connection = entry.connection;
  if (connection.kind === 'failed') return [{ kind: 'failed', message: connection.message, reason: connection.reason }];
  if (!entry.filled) return [connection.kind === 'connecting' ? { kind: 'connecting' } : { kind: 'notConnected' }];
  const runs = model.runsOf(backend);
  // The runs first (what the view is for), the datasets after them.
  if (runs.length === 0) return [{ kind: 'empty' }, { kind: 'datasets' }];
  return [...runs.map((r): BackendChild => ({ kind: 'run', jobId: r.job.id })), { kind: 'datasets' }];
}

/** What VS Code shows of a backend's row. */
export interface BackendRowView {
  readonly label: string;
  readonly description: string;
  readonly icon: string;
  readonly contextValue: string;
  readonly tooltip: string;
}

/** The view of a backend's row. */
export function backendRowView(backend: string, entry: BackendRuns | undefined, urls: BackendUrls): BackendRowView {
  const connection = entry?.connection ?? { kind: 'idle' as const };
  const url = urls.urlOf(backend);
  return {
    label: backend,
    description: connectionDescription(connection, url),
    icon: connection.kind === 'failed' ? 'debug-disconnect' : 'server',
    contextValue: urls.isRemote(backend) ? 'backend.remote' : 'backend.local',
    tooltip: `${backend}${url ? ` — ${url}` : ''}`,
  };
}

/** What a row's refresh is decided on: `fixed` lands at once when it changes, `progress` at most once per interval. */
export interface RowSignature {
  readonly fixed: string;
  readonly progress: string;
}

/** A run row's signature. */
export function runSignature(view: RunRowView): RowSignature {
  const { description, checkpoints, ...rest } = view;
  // A checkpoint's row shows its step and losses; its id tells it apart.
  const children = checkpoints.map((c) => [c.id, c.step_number, c.metrics.train_loss, c.metrics.full_valid_loss ?? c.metrics.valid_loss ?? null]);
  return { fixed: JSON.stringify([rest, children]), progress: description };
}

/** A backend row's signature: its row and its list of children (a refresh of the node re-reads both). */
export function backendSignature(view: BackendRowView, children: readonly BackendChild[]): RowSignature {
  return { fixed: JSON.stringify([view, children]), progress: '' };
}

/** Time and timers, injected so that tests drive them. */
export interface RefreshClock {
  /** Milliseconds. */
  now(): number;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** The real clock. */
export const systemClock: RefreshClock = {
  now: () => Date.now(),
  setTimer: (callback, ms) => setTimeout(callback, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** How often a running run's progress may refresh its row, by default. */
export const PROGRESS_INTERVAL_MS = 1000;

/** What {@link RowRefresher.changed} did. */
export type RefreshDecision = 'now' | 'later' | 'none';

interface RowState {
  /** What VS Code was last handed (or is about to be: a refresh was fired for it); undefined before the first. */
  shown: RowSignature | undefined;
  /** When that was (clock ms). */
  at: number;
  /** The signature the pending trailing refresh is for. */
  pending: RowSignature | undefined;
  timer: unknown;
}

/**
 * Decides, row by row, whether a change is handed to VS Code now, later or never (see the file comment). A row
 * never handed over is refreshed at once on its first change: the view may be hidden, and the tree's event is
 * also what the in-host tests wait on.
 */
export class RowRefresher {
  private readonly rows = new Map<string, RowState>();
  private readonly clock: RefreshClock;
  private readonly intervalMs: number;

  constructor(
    private readonly fire: (key: string) => void,
    options: { clock?: RefreshClock; intervalMs?: number } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.intervalMs = options.intervalMs ?? PROGRESS_INTERVAL_MS;
  }

  /** VS Code read the row (getTreeItem): this is what it shows now. */
  rendered(key: string, signature: RowSignature): void {
    const row = this.row(key);
    row.shown = signature;
    row.at = this.clock.now();
    if (row.pending !== undefined && same(row.pending, signature)) this.cancel(row);
  }

  /**
   * The row's model changed: `signature` is what it would show now. Returns whether the row was refreshed now,
   * will be at the end of the interval, or needs nothing.
   */
  changed(key: string, signature: RowSignature): RefreshDecision {
    const row = this.row(key);
    const shown = row.shown;
    if (shown === undefined || shown.fixed !== signature.fixed) {
      this.fireNow(key, row, signature);
      return 'now';
    }
    if (shown.progress === signature.progress) {
      // Back to what is shown: a trailing refresh would change nothing.
      this.cancel(row);
      return 'none';
    }
    const wait = row.at + this.intervalMs - this.clock.now();
    if (wait <= 0) {
      this.fireNow(key, row, signature);
      return 'now';
    }
    row.pending = signature;
    if (row.timer === undefined) {
      row.timer = this.clock.setTimer(() => {
        row.timer = undefined;
        const latest = row.pending;
        row.pending = undefined;
        if (latest !== undefined && this.rows.get(key) === row) this.fireNow(key, row, latest);
      }, wait);
    }
    return 'later';
  }

  /** Forgets a row (gone from the tree), with its pending refresh. */
  forget(key: string): void {
    const row = this.rows.get(key);
    if (!row) return;
    this.cancel(row);
    this.rows.delete(key);
  }

  /** The keys of the rows known. */
  keys(): string[] {
    return [...this.rows.keys()];
  }

  /** Drops every pending refresh. */
  dispose(): void {
    for (const row of this.rows.values()) this.cancel(row);
    this.rows.clear();
  }

  private fireNow(key: string, row: RowState, signature: RowSignature): void {
    this.cancel(row);
    row.shown = signature;
    row.at = this.clock.now();
    this.fire(key);
  }

  private cancel(row: RowState): void {
    if (row.timer !== undefined) this.clock.clearTimer(row.timer);
    row.timer = undefined;
    row.pending = undefined;
  }

  private row(key: string): RowState {
    let row = this.rows.get(key);
    if (!row) {
      row = { shown: undefined, at: -Infinity, pending: undefined, timer: undefined };
      this.rows.set(key, row);
    }
    return row;
  }
}

function same(a: RowSignature, b: RowSignature): boolean {
  return a.fixed === b.fixed && a.progress === b.progress;
}

/** A node of the tree to refresh; `all` is the whole tree. */
export type RefreshTarget =
  | { kind: 'all' }
  | { kind: 'backend'; backend: string }
  | { kind: 'datasets'; backend: string }
  | { kind: 'run'; backend: string; jobId: string };

/**
 * The runs tree's refresh policy over the model's changes: which nodes to hand to VS Code again, and when. The
 * tree reports what it handed over (`renderedRun`, `renderedBackend`) and maps targets to its nodes.
 */
export class RunsTreeRefresh {
  private readonly rows: RowRefresher;
  private readonly stopListening: () => void;
  private readonly nowSeconds: () => number;

  constructor(
    private readonly model: RunsModel,
    private readonly urls: BackendUrls,
    private readonly fire: (target: RefreshTarget) => void,
    options: { clock?: RefreshClock; intervalMs?: number } = {},
  ) {
    const clock = options.clock ?? systemClock;
    this.nowSeconds = () => clock.now() / 1000;
    this.rows = new RowRefresher((key) => this.fire(targetOf(key)), options);
    this.stopListening = model.onChange((change) => this.onChange(change));
  }

  /** The view of a run's row now. */
  runView(run: RunState): RunRowView {
    return runRowView(run, this.nowSeconds());
  }

  /** The view of a backend's row now, with its children. */
  backendView(backend: string): { view: BackendRowView; children: BackendChild[] } {
    return { view: backendRowView(backend, this.model.backend(backend), this.urls), children: backendChildren(this.model, backend) };
  }

  /** getTreeItem handed this run row to VS Code. */
  renderedRun(backend: string, jobId: string, view: RunRowView): void {
    this.rows.rendered(runKey(backend, jobId), runSignature(view));
  }

  /** getTreeItem handed this backend row to VS Code. */
  renderedBackend(backend: string, view: BackendRowView): void {
    this.rows.rendered(backendKey(backend), backendSignature(view, backendChildren(this.model, backend)));
  }

  dispose(): void {
    this.stopListening();
    this.rows.dispose();
  }

  private onChange(change: ModelChange): void {
    switch (change.kind) {
      case 'backends':
        this.prune();
        this.fire({ kind: 'all' });
        return;
      case 'files':
        this.fire({ kind: 'datasets', backend: change.backend });
        return;
      case 'backend':
        this.backendChanged(change.backend);
        return;
      case 'run':
        // A new run changes its backend's children; a known one only itself.
        if (change.added) this.backendChanged(change.backend);
        else this.runChanged(change.backend, change.jobId);
    }
  }

  /**
   * A backend's row or children may have changed (a fill, a reset, its connection): refreshing its node re-reads
   * every run below it, so that happens only when the node itself differs; otherwise each run is looked at alone
   * (a reconnect's fill usually brings the same runs).
   */
  private backendChanged(backend: string): void {
    const { view, children } = this.backendView(backend);
    if (this.rows.changed(backendKey(backend), backendSignature(view, children)) === 'now') {
      this.prune();
      return;
    }
    for (const run of this.model.runsOf(backend)) this.runChanged(backend, run.job.id);
  }

  private runChanged(backend: string, jobId: string): void {
    const run = this.model.run(backend, jobId);
    if (!run) return;
    this.rows.changed(runKey(backend, jobId), runSignature(this.runView(run)));
  }

  /** Drops the state of rows whose run or backend is gone. */
  private prune(): void {
    for (const key of this.rows.keys()) {
      const target = targetOf(key);
      const gone = target.kind === 'run' ? this.model.run(target.backend, target.jobId) === undefined : target.kind === 'backend' && this.model.backend(target.backend) === undefined;
      if (gone) this.rows.forget(key);
    }
  }
}

function runKey(backend: string, jobId: string): string {
  return `run\u0000${backend}\u0000${jobId}`;
}

function backendKey(backend: string): string {
  return `backend\u0000${backend}`;
}

function targetOf(key: string): RefreshTarget {
  const [kind, backend, jobId] = key.split('\u0000');
  return kind === 'run' ? { kind: 'run', backend, jobId } : { kind: 'backend', backend };
}
