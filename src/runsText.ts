// What the runs sidebar, the run status-bar item and the run notifications say, as pure functions of the model
// (no `vscode`), so that the wording is unit-tested under plain Node. Icons are codicon ids; the tree wraps them.
import type { FileObject, FineTuningJob, FineTuningJobCheckpoint, JobStatus } from '../common/api';
import { FINAL_JOB_STATUSES } from '../common/api';
import { formatCount } from './format';
import { l10n } from './l10n';
import type { ConnectionState, RunState } from './runsModel';
import { escapeMarkdown } from './statusText';

/** `ftjob-abcdefghijklmnopqrstuvwx` → `ftjob-abcdefgh`: enough to tell runs apart in a list. */
export function shortJobId(id: string): string {
  return id.startsWith('ftjob-') ? id.slice(0, 'ftjob-'.length + 8) : id.slice(0, 14);
}

/** The run's name: its suffix, or the short form of its id. */
export function runLabel(job: FineTuningJob): string {
  return job.suffix !== null && job.suffix.trim() !== '' ? job.suffix : shortJobId(job.id);
}

/** The status in words. */
export function statusWord(status: JobStatus): string {
  switch (status) {
    case 'validating_files':
      return l10n.t('validating files');
    case 'queued':
      return l10n.t('queued');
    case 'running':
      return l10n.t('running');
    case 'succeeded':
      return l10n.t('succeeded');
    case 'failed':
      return l10n.t('failed');
    case 'cancelled':
      return l10n.t('cancelled');
  }
}

/** The codicon of a status (`loading~spin` while running). */
export function statusIcon(status: JobStatus): string {
  switch (status) {
    case 'validating_files':
    case 'queued':
      return 'watch';
    case 'running':
      return 'loading~spin';
    case 'succeeded':
      return 'pass';
    case 'failed':
      return 'error';
    case 'cancelled':
      return 'circle-slash';
  }
}

/** `3 min`, `1 h 05 min`, `less than a minute`: a duration for an ETA. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 60) return l10n.t('less than a minute');
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return l10n.t('{0} min', minutes);
  const hours = Math.floor(minutes / 60);
  return l10n.t('{0} h {1} min', hours, String(minutes % 60).padStart(2, '0'));
}

/**
 * Where the run stands beyond its status: `step 12/96 · ETA 3 min` while running, `queued #2` while queued;
 * undefined otherwise. `now` is Unix seconds.
 */
export function runProgress(job: FineTuningJob, now: number): string | undefined {
  if (job.status === 'queued') return job.queue_position !== null ? l10n.t('queued #{0}', job.queue_position) : undefined;
  if (job.status !== 'running') return undefined;
  const parts: string[] = [];
  if (job.progress) parts.push(l10n.t('step {0}/{1}', job.progress.step, job.progress.total_steps));
  if (job.estimated_finish !== null) parts.push(l10n.t('ETA {0}', formatDuration(job.estimated_finish - now)));
  return parts.length > 0 ? parts.join(' · ') : undefined;
}

/** Longest latest message a row shows (the tooltip has it whole). */
const ROW_MESSAGE_CHARS = 60;

/**
 * The tree item's description: base model, then the status or the progress; a running run with no step yet shows
 * its latest message instead (a base model being downloaded or loaded can take minutes before the first step).
 */
export function runDescription(job: FineTuningJob, now: number, lastMessage?: string): string {
  const progress = runProgress(job, now);
  if (progress === undefined && job.status === 'running' && job.progress === null && lastMessage !== undefined && lastMessage !== '') {
    const line = lastMessage.split('\n', 1)[0];
    return `${job.model} · ${line.length > ROW_MESSAGE_CHARS ? `${line.slice(0, ROW_MESSAGE_CHARS - 1).trimEnd()}…` : line}`;
  }
  return `${job.model} · ${progress ?? statusWord(job.status)}`;
}

/** The run's tooltip, as Markdown: status, model, the settings used, the error when it failed. */
export function runTooltip(run: RunState): string {
  const job = run.job;
  const h = job.hyperparameters;
  const rows: [string, string][] = [
    [l10n.t('Status'), statusWord(job.status)],
    [l10n.t('Base model'), job.model],
    [l10n.t('Run ID'), job.id],
    [l10n.t('Backend'), run.backend],
    [l10n.t('Method'), h.training_type === 'full' ? l10n.t('full fine-tuning') : l10n.t('LoRA (rank {0}, alpha {1}, dropout {2})', h.lora_r, h.lora_alpha, h.lora_dropout)],
    [l10n.t('Epochs'), String(h.n_epochs)],
    [l10n.t('Batch size'), String(h.batch_size)],
    [l10n.t('Learning rate'), `${h.learning_rate} (${h.lr_scheduler}, ${l10n.t('warm-up {0}', h.warmup_ratio)})`],
    [l10n.t('Max sequence length'), formatCount(h.max_seq_length)],
    [l10n.t('Checkpoints'), String(h.checkpoints)],
    [l10n.t('Seed'), String(job.seed)],
  ];
  if (job.trained_tokens !== null) rows.push([l10n.t('Trained tokens'), formatCount(job.trained_tokens)]);
  if (run.lastMessage !== undefined && !FINAL_JOB_STATUSES.includes(job.status)) rows.push([l10n.t('Latest message'), run.lastMessage]);
  if (job.fine_tuned_model !== null) rows.push([l10n.t('Model name'), job.fine_tuned_model]);
  const lines = [`**${escapeMarkdown(runLabel(job))}**`, '', '| | |', '|:--|:--|', ...rows.map(([k, v]) => `| ${k} | ${escapeMarkdown(v)} |`)];
  if (job.error) lines.push('', `$(error) ${escapeMarkdown(job.error.message)} (\`${job.error.code}\`)`);
  return lines.join('\n');
}

/** `step 48`: the checkpoint's label. */
export function checkpointLabel(checkpoint: FineTuningJobCheckpoint): string {
  return l10n.t('step {0}', checkpoint.step_number);
}

/** `train 1.234 · valid 1.456`: the checkpoint's losses. */
export function checkpointDescription(checkpoint: FineTuningJobCheckpoint): string {
  const m = checkpoint.metrics;
  const parts = [l10n.t('train {0}', formatLoss(m.train_loss))];
  const valid = m.full_valid_loss ?? m.valid_loss;
  if (valid !== undefined) parts.push(l10n.t('valid {0}', formatLoss(valid)));
  return parts.join(' · ');
}

/** A loss with three significant decimals (`1.234`), `—` when not finite. */
export function formatLoss(loss: number): string {
  return Number.isFinite(loss) ? loss.toFixed(Math.abs(loss) >= 100 ? 1 : 3) : '—';
}

/** The status-bar item's text: `$(sync~spin) my-run 12/96 · loss 1.23`. */
export function runStatusText(run: RunState): string {
  const parts = [`$(sync~spin) ${runLabel(run.job)}`];
  const progress = run.job.progress;
  if (progress) parts[0] += ` ${progress.step}/${progress.total_steps}`;
  if (run.lastLoss !== undefined) parts.push(l10n.t('loss {0}', run.lastLoss.toFixed(2)));
  return parts.join(' · ');
}

/** The backend node's description: where it stands. */
export function connectionDescription(connection: ConnectionState, url: string | undefined): string {
  switch (connection.kind) {
    case 'idle':
      return url ?? l10n.t('not started');
    case 'connecting':
      return l10n.t('connecting…');
    case 'connected':
      return url ?? '';
    case 'failed':
      return l10n.t('not connected');
  }
}

/** What the user is told when a run finishes while they watch. */
export function finishedMessage(job: FineTuningJob): string {
  const name = runLabel(job);
  switch (job.status) {
    case 'succeeded':
      return l10n.t('Training run {0} succeeded.', name);
    case 'cancelled':
      return l10n.t('Training run {0} was cancelled.', name);
    default:
      return job.error ? l10n.t('Training run {0} failed: {1}', name, job.error.message) : l10n.t('Training run {0} failed.', name);
  }
}

/** Bytes as `812 B`, `4.2 KB`, `1.3 MB`, `2.0 GB` (powers of 1024, as file managers show sizes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Unix seconds as `2026-01-31 14:05` in local time: a date that sorts and reads the same in every language. */
export function formatTimestamp(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** A file node's description: `12 examples · 4.2 KB · 2026-01-31 14:05`. */
export function fileDescription(file: FileObject): string {
  const examples = file.examples === 1 ? l10n.t('1 example') : l10n.t('{0} examples', formatCount(file.examples));
  return `${examples} · ${formatBytes(file.bytes)} · ${formatTimestamp(file.created_at)}`;
}

/** The "Datasets" node's description: how many files, once listed. */
export function datasetsDescription(count: number | undefined): string {
  if (count === undefined) return '';
  return count === 1 ? l10n.t('1 file') : l10n.t('{0} files', count);
}

/** A file's tooltip, as Markdown: name, id, size, examples, warnings, upload time, and the runs that use it. */
export function fileTooltip(file: FileObject, runs: readonly RunState[]): string {
  const rows: [string, string][] = [
    [l10n.t('File ID'), file.id],
    [l10n.t('Size'), formatBytes(file.bytes)],
    [l10n.t('Examples'), formatCount(file.examples)],
    [l10n.t('Warnings'), formatCount(file.warnings)],
    [l10n.t('Uploaded'), formatTimestamp(file.created_at)],
  ];
  const used = runs.length === 0 ? l10n.t('No run of this backend uses it.') : l10n.t('Used by: {0}', runs.map((r) => `${runLabel(r.job)} (${statusWord(r.job.status)})`).join(', '));
  const lines = [`**${escapeMarkdown(file.filename)}**`, '', '| | |', '|:--|:--|', ...rows.map(([k, v]) => `| ${k} | ${escapeMarkdown(v)} |`), '', escapeMarkdown(used)];
  return lines.join('\n');
}

/**
 * Why a file cannot be deleted now, for the user: the backend refused (409) because a run that has not finished
 * uses it. Names those runs when the sidebar knows them; the backend's own words otherwise.
 */
export function fileInUseMessage(file: Pick<FileObject, 'filename' | 'id'>, runs: readonly RunState[], backendMessage: string): string {
  const unfinished = runs.filter((r) => !FINAL_JOB_STATUSES.includes(r.job.status));
  if (unfinished.length === 0) return l10n.t('{0} was not deleted: {1}', file.filename, backendMessage);
  return l10n.t(
    '{0} was not deleted: it is used by {1}, which has not finished. Cancel the run or wait for it to finish, then delete the file.',
    file.filename,
    unfinished.map((r) => runLabel(r.job)).join(', '),
  );
}
