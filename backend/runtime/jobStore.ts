// The run store on disk, `{dataDir}/jobs/{jobId}/` (ARCHITECTURE.md, issue 4 "Store and scheduler"):
//   job.json          the job object with its owner and engine spec, written atomically
//   events.jsonl      the append-only event log (eventLog.ts)
//   checkpoints.json  the checkpoint objects with their folders, written atomically
//   engine/           the engine's output (`checkpoints/step-{N}/`)
//   engine.log        the engine's stderr, capped
// Everything is loaded on open and served from memory; every change goes to disk before it is announced.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isIdOf, type FineTuningJob, type FineTuningJobCheckpoint, type FineTuningJobEvent, type EventLevel, type MetricsData } from '../../common/api';
import type { Log, NewJob, Owner } from '../runtime';
import { CoalescingWriter, TMP_SUFFIX, writeFileAtomic } from './atomicFile';
import { EventLog } from './eventLog';
import { newId } from './ids';

const JOB_FILE = 'job.json';
const EVENTS_FILE = 'events.jsonl';
const CHECKPOINTS_FILE = 'checkpoints.json';
/** The engine's output folder inside a job's folder. */
export const ENGINE_DIR = 'engine';
/** The engine's stderr, inside a job's folder. */
export const ENGINE_LOG = 'engine.log';

/** A checkpoint as stored: the API object and its folder, relative to the job's folder. */
export interface StoredCheckpoint {
  checkpoint: FineTuningJobCheckpoint;
  dir: string;
}

/** `job.json`. */
interface JobFile {
  version: 1;
  owner: Owner;
  job: FineTuningJob;
  spec: NewJob['spec'];
  /** Creation time in milliseconds: orders jobs (queue, lists) more finely than `created_at`'s seconds. */
  created_ms: number;
  /** The final adapter's folder relative to the job's folder, once the job succeeded. */
  final_checkpoint: string | null;
}

/** An event before the store numbers it. */
export interface EventDraft {
  type: 'message' | 'metrics';
  level: EventLevel;
  message: string;
  data?: Record<string, unknown> | MetricsData | null;
}

/** One job in memory: its record, its events (index = seq − 1) and its checkpoints. */
export interface JobEntry {
  readonly owner: Owner;
  readonly job: FineTuningJob;
  readonly spec: NewJob['spec'];
  readonly createdMs: number;
  readonly dir: string;
  finalCheckpoint: string | null;
  readonly events: FineTuningJobEvent[];
  readonly eventSeqById: Map<string, number>;
  readonly checkpoints: StoredCheckpoint[];
  /** The seq the next event gets (events numbered but not yet on disk included). */
  nextSeq: number;
  /** The status a transition is writing the event of; the job object shows it once that event is readable. */
  pendingStatus?: FineTuningJob['status'];
  readonly log: EventLog;
  readonly writer: CoalescingWriter;
  readonly checkpointWriter: CoalescingWriter;
}

/** Who hears about changes: the WebSocket hub. Called after the change is on disk (events, checkpoints). */
export interface StoreListener {
  event(entry: JobEntry, event: FineTuningJobEvent): void;
  job(entry: JobEntry): void;
  checkpoint(entry: JobEntry, stored: StoredCheckpoint): void;
}

/** Why the store refused to open or write (the reason names what, the message says where). */
export class StoreError extends Error {
  constructor(
    readonly reason: 'unreadable' | 'exists',
    message: string,
  ) {
    super(message);
  }
  static is(e: unknown): e is StoreError {
    return e instanceof StoreError;
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function isJobFile(value: unknown): value is JobFile {
  const v = value as Partial<JobFile> | null;
  return (
    typeof v === 'object' && v !== null && v.version === 1 && typeof v.owner === 'string' && typeof v.created_ms === 'number' &&
    typeof v.job === 'object' && v.job !== null && isIdOf('job', v.job.id) && typeof v.spec === 'object' && v.spec !== null
  );
}

function isEvent(value: unknown): value is FineTuningJobEvent {
  const v = value as Partial<FineTuningJobEvent> | null;
  return typeof v === 'object' && v !== null && typeof v.seq === 'number' && typeof v.id === 'string' && (v.type === 'message' || v.type === 'metrics');
}

/** The jobs of one data folder (see the file comment). */
export class JobStore {
  private readonly jobs = new Map<string, JobEntry>();
  private readonly listeners = new Set<StoreListener>();

  private constructor(
    private readonly jobsDir: string,
    private readonly log: Log,
  ) {}

  /** Loads every job under `{dataDir}/jobs/`. A job folder that can't be read is logged and left alone. */
  static async open(dataDir: string, log: Log): Promise<JobStore> {
    const jobsDir = join(dataDir, 'jobs');
    await mkdir(jobsDir, { recursive: true, mode: 0o700 });
    const store = new JobStore(jobsDir, log);
    for (const name of (await readdir(jobsDir)).sort()) {
      if (!isIdOf('job', name)) continue;
      try {
        const entry = await store.load(join(jobsDir, name));
        if (entry.job.id !== name) throw new StoreError('unreadable', `${join(jobsDir, name, JOB_FILE)} holds job ${entry.job.id}`);
        store.jobs.set(name, entry);
      } catch (e) {
        log.error(`job ${name} not loaded (its folder is left as it is): ${(e as Error).message}`);
      }
    }
    return store;
  }

  private async load(dir: string): Promise<JobEntry> {
    // A temporary file is what a crash during an atomic write leaves; the record it was replacing is intact.
    for (const name of await readdir(dir)) if (name.endsWith(TMP_SUFFIX)) await rm(join(dir, name), { force: true });
    let file: unknown;
    try {
      file = JSON.parse(await readFile(join(dir, JOB_FILE), 'utf8'));
    } catch (e) {
      throw new StoreError('unreadable', `${join(dir, JOB_FILE)}: ${(e as Error).message}`);
    }
    if (!isJobFile(file)) throw new StoreError('unreadable', `${join(dir, JOB_FILE)} is not a job record`);
    let checkpoints: StoredCheckpoint[] = [];
    try {
      const parsed = JSON.parse(await readFile(join(dir, CHECKPOINTS_FILE), 'utf8')) as { checkpoints?: StoredCheckpoint[] };
      checkpoints = Array.isArray(parsed.checkpoints) ? parsed.checkpoints : [];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError('unreadable', `${join(dir, CHECKPOINTS_FILE)}: ${(e as Error).message}`);
    }
    const { log, records } = await EventLog.open(join(dir, EVENTS_FILE), this.log);
    const events: FineTuningJobEvent[] = [];
    for (const record of records) {
      if (!isEvent(record) || record.seq !== events.length + 1) {
        this.log.warn(`${join(dir, EVENTS_FILE)}: record ${events.length + 1} is not the next event; skipped`);
        continue;
      }
      events.push(record);
    }
    const job = file.job;
    job.last_event_seq = events.length;
    // The record is written less often than events on purpose (not at every step); the log has the latest.
    const lastMetrics = [...events].reverse().find((e) => e.type === 'metrics');
    if (lastMetrics?.type === 'metrics') {
      job.progress = { step: lastMetrics.data.step, total_steps: lastMetrics.data.total_steps, epoch: lastMetrics.data.epoch };
    }
    return this.entry(dir, file, events, checkpoints, log);
  }

  private entry(dir: string, file: JobFile, events: FineTuningJobEvent[], checkpoints: StoredCheckpoint[], log: EventLog): JobEntry {
    const entry: JobEntry = {
      owner: file.owner,
      job: file.job,
      spec: file.spec,
      createdMs: file.created_ms,
      dir,
      finalCheckpoint: file.final_checkpoint,
      events,
      eventSeqById: new Map(events.map((e) => [e.id, e.seq])),
      checkpoints,
      nextSeq: events.length + 1,
      log,
      writer: new CoalescingWriter(join(dir, JOB_FILE), () => JSON.stringify(this.jobFile(entry))),
      checkpointWriter: new CoalescingWriter(join(dir, CHECKPOINTS_FILE), () => JSON.stringify({ version: 1, checkpoints: entry.checkpoints })),
    };
    return entry;
  }

  private jobFile(entry: JobEntry): JobFile {
    return { version: 1, owner: entry.owner, job: entry.job, spec: entry.spec, created_ms: entry.createdMs, final_checkpoint: entry.finalCheckpoint };
  }

  /** Stores a new job: its folder, its record and an empty log. */
  async create(owner: Owner, job: FineTuningJob, spec: NewJob['spec']): Promise<JobEntry> {
    if (this.jobs.has(job.id)) throw new StoreError('exists', `job ${job.id} exists already`);
    const dir = join(this.jobsDir, job.id);
    await mkdir(join(dir, ENGINE_DIR), { recursive: true, mode: 0o700 });
    const file: JobFile = { version: 1, owner, job: { ...job, last_event_seq: 0 }, spec, created_ms: Date.now(), final_checkpoint: null };
    await writeFileAtomic(join(dir, JOB_FILE), JSON.stringify(file));
    const { log } = await EventLog.open(join(dir, EVENTS_FILE), this.log);
    const entry = this.entry(dir, file, [], [], log);
    this.jobs.set(job.id, entry);
    return entry;
  }

  get(id: string): JobEntry | undefined {
    return this.jobs.get(id);
  }

  /** Every job, oldest first. */
  all(): JobEntry[] {
    return [...this.jobs.values()].sort((a, b) => a.createdMs - b.createdMs || a.job.id.localeCompare(b.job.id));
  }

  /** Listens to changes; returns the function that stops listening. */
  listen(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The job object changed in memory: tell the listeners now, and write the record (resolves when written). */
  saveJob(entry: JobEntry): Promise<void> {
    for (const l of this.listeners) l.job(entry);
    return entry.writer.write();
  }

  /**
   * Numbers the events (the job's next seqs, no gaps), appends them to the log and, once they are on disk,
   * adds them to the job and tells the listeners. Resolves to the events as stored.
   */
  async appendEvents(entry: JobEntry, drafts: readonly EventDraft[]): Promise<FineTuningJobEvent[]> {
    const created = nowSeconds();
    const events = drafts.map(
      (d) =>
        ({
          object: 'fine_tuning.job.event',
          id: newId('event'),
          created_at: created,
          level: d.level,
          message: d.message,
          type: d.type,
          data: d.data ?? null,
          seq: entry.nextSeq++,
          job_id: entry.job.id,
        }) as FineTuningJobEvent,
    );
    await entry.log.append(events);
    for (const event of events) {
      // Appends resolve in the order they were made, so the events array stays in seq order.
      entry.events.push(event);
      entry.eventSeqById.set(event.id, event.seq);
      entry.job.last_event_seq = event.seq;
      for (const l of this.listeners) l.event(entry, event);
    }
    return events;
  }

  /** Adds a checkpoint, writes checkpoints.json, then tells the listeners. */
  async addCheckpoint(entry: JobEntry, stored: StoredCheckpoint): Promise<void> {
    entry.checkpoints.push(stored);
    await entry.checkpointWriter.write();
    for (const l of this.listeners) l.checkpoint(entry, stored);
  }

  /** Waits for pending writes and closes the logs. */
  async close(): Promise<void> {
    for (const entry of this.jobs.values()) {
      await entry.writer.idle();
      await entry.checkpointWriter.idle();
      await entry.log.close();
    }
  }
}
