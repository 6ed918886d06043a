// Status changes of a job, in one place: each is a `message` event (data `{ status }`), a line in the backend's
// log, and a write of the job's record. Fields that only make sense in some states are cleared on the way out.
import { FINAL_JOB_STATUSES, type EventLevel, type JobError, type JobStatus } from '../../common/api';
import type { Log } from '../runtime';
import type { EventDraft, JobEntry, JobStore } from './jobStore';

/** What goes with a transition: the event's text (a default per status otherwise), an error for `failed`. */
export interface TransitionDetail {
  message?: string;
  error?: JobError;
  /** Extra data for the status event. */
  data?: Record<string, unknown>;
}

const DEFAULT_TEXT: Record<JobStatus, string> = {
  validating_files: 'Validating training file',
  queued: 'Job queued',
  running: 'Fine-tuning job started',
  succeeded: 'The job has successfully completed',
  failed: 'The job failed',
  cancelled: 'The job was cancelled',
};

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Moves a job to `status`: writes the status event, then updates the object and writes the record, and logs the
 * line. The object changes only once its status event is on disk and listed, so that a client that sees the new
 * status (a GET, a socket's `job` message) finds the event that announced it with `events?after=`. Resolves when
 * both are on disk. A final job is never moved again, nor one that a transition is moving to a final status.
 */
export async function transition(store: JobStore, log: Log, entry: JobEntry, status: JobStatus, detail: TransitionDetail = {}): Promise<void> {
  const job = entry.job;
  const from = entry.pendingStatus ?? job.status;
  if (FINAL_JOB_STATUSES.includes(from)) return;
  entry.pendingStatus = status;
  const level: EventLevel = status === 'failed' ? 'error' : 'info';
  const message = detail.message ?? (detail.error !== undefined ? `The job failed: ${detail.error.message}` : DEFAULT_TEXT[status]);
  const data: Record<string, unknown> = { status, ...(detail.error !== undefined ? { code: detail.error.code } : {}), ...detail.data };
  log.info(`job ${job.id} ${from} → ${status}${detail.error !== undefined ? ` (${detail.error.code}: ${detail.error.message})` : ''}`);
  const draft: EventDraft = { type: 'message', level, message, data };
  try {
    await store.appendEvents(entry, [draft]);
  } finally {
    // Applied even when the event could not be written (the disk error is logged by the caller): the job's state
    // must not lag behind what the runtime does with it.
    job.status = status;
    if (status !== 'queued') job.queue_position = null;
    if (status !== 'running') job.estimated_finish = null;
    if (status === 'running' && job.started_at === null) job.started_at = nowSeconds();
    if (FINAL_JOB_STATUSES.includes(status)) job.finished_at = nowSeconds();
    if (detail.error !== undefined) job.error = detail.error;
    if (entry.pendingStatus === status) entry.pendingStatus = undefined;
  }
  await store.saveJob(entry);
}
