// The run dashboard's logic, free of vscode so that the unit tests load it under plain Node: a run's metrics as a
// columnar table built from its history (one `…/metrics` answer, or `…/events` pages from a backend without that
// route) and its live events (deduplicated by seq, batched for the webview), the header's view (progress, ETA, the
// settings used), the checkpoints' view (the sample split into system prompt, prompt, reference and answer), and
// the CSV export.
import type { FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, FineTuningJobMetrics, MetricsData } from '../common/api';
import type { BackendClient } from './backendClient';
import { BackendError } from './backendErrors';
import { isFinal } from './runsModel';
import { formatCount } from './format';
import { l10n } from './l10n';
import { settingsText } from './newRunModel';
import { formatLoss, runLabel, statusWord } from './runsText';
import { METRIC_FIELDS, type CheckpointView, type InfoRow, type MetricField, type MetricsBatch, type RunHeaderView, type SampleView } from '../webview/dashboard/protocol';

/**
 * One run's metrics, one row per step: the step, the seconds since the start, the epoch, and every metric (NaN
 * where an event does not carry it: valid_* between evaluations, gpu_memory on a CPU engine). Rows are appended
 * as events arrive (history pages, then live events); `takeBatch` hands the rows not yet sent to the webview as
 * columnar batches, `resend` starts over (a reloaded webview).
 */
export class MetricsTable {
  readonly step: number[] = [];
  readonly time: number[] = [];
  readonly epoch: number[] = [];
  readonly values: Record<MetricField, number[]> = Object.fromEntries(METRIC_FIELDS.map((f) => [f, [] as number[]])) as Record<MetricField, number[]>;
  /** The highest event seq applied: events up to it are in the table (or were not metrics). */
  lastSeq = 0;
  /** The last metrics applied. */
  last: MetricsData | undefined;
  /** Rows before this index were handed out by `takeBatch`. */
  private sent = 0;

  /** The number of rows (steps). */
  get length(): number {
    return this.step.length;
  }

  /**
   * Applies one event of the run: a metrics event adds a row, unless its seq was seen already (history and live
   * overlap) or its step does not move forward (a resumed run repeats steps from its checkpoint; the charts need
   * x ascending). Returns whether a row was added.
   */
  apply(event: FineTuningJobEvent): boolean {
    if (event.seq !== 0 && event.seq <= this.lastSeq) return false;
    if (event.seq !== 0) this.lastSeq = event.seq;
    if (event.type !== 'metrics') return false;
    const data = event.data;
    const previous = this.step.at(-1);
    if (previous !== undefined && data.step <= previous) return false;
    this.step.push(data.step);
    this.time.push(data.elapsed);
    this.epoch.push(data.epoch);
    for (const field of METRIC_FIELDS) {
      const value = data[field];
      this.values[field].push(typeof value === 'number' && Number.isFinite(value) ? value : Number.NaN);
    }
    this.last = data;
    return true;
  }

  /**
   * Applies a `…/metrics` answer (its rows, then its `last_seq`) with the same rules as `apply`: rows whose seq
   * was seen already or whose step does not move forward are skipped. The columns are appended as they are, with
   * no event object per row. Returns the rows added.
   */
  applyColumns(metrics: FineTuningJobMetrics): number {
    const { seq, columns } = metrics;
    // First the rows to take, then each column copied in a loop of its own (one source and one target array per
    // loop, rather than eleven of each per row).
    const rows = new Int32Array(metrics.count);
    let added = 0;
    let previous = this.step.at(-1) ?? Number.NEGATIVE_INFINITY;
    for (let i = 0; i < metrics.count; i++) {
      const step = columns.step[i];
      if (seq[i] <= this.lastSeq || step <= previous) continue;
      rows[added++] = i;
      previous = step;
    }
    const copy = (target: number[], source: readonly (number | null)[]): void => {
      for (let r = 0; r < added; r++) target.push(numberOrNaN(source[rows[r]]));
    };
    copy(this.step, columns.step);
    copy(this.time, columns.elapsed);
    copy(this.epoch, columns.epoch);
    for (const field of METRIC_FIELDS) copy(this.values[field], columns[field]);
    this.lastSeq = Math.max(this.lastSeq, metrics.last_seq);
    if (added > 0) this.last = metricsRow(metrics, rows[added - 1]);
    return added;
  }

  /**
   * The rows not handed out yet (at most `maxRows` of them), columnar (see MetricsBatch); undefined when none.
   */
  takeBatch(maxRows = 20_000): Omit<MetricsBatch, 'run'> | undefined {
    if (this.sent >= this.length) return undefined;
    const to = Math.min(this.length, this.sent + maxRows);
    const batch = this.columns(this.sent, to);
    this.sent = to;
    return batch;
  }

  /** Hands every row out again (a reloaded webview has none of them). */
  resend(): void {
    this.sent = 0;
  }

  private columns(from: number, to: number): Omit<MetricsBatch, 'run'> {
    const values: MetricsBatch['values'] = {};
    for (const field of METRIC_FIELDS) {
      const column = this.values[field].slice(from, to);
      if (column.every((y) => Number.isNaN(y))) continue;
      values[field] = Float64Array.from(column);
    }
    return { step: Float64Array.from(this.step.slice(from, to)), time: Float64Array.from(this.time.slice(from, to)), values };
  }
}

function numberOrNaN(value: number | null | undefined): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : Number.NaN;
}

/** Row `i` of a `…/metrics` answer as the metrics event's data it came from (optional fields only where given). */
function metricsRow(metrics: FineTuningJobMetrics, i: number): MetricsData {
  const c = metrics.columns;
  const data: MetricsData = {
    step: c.step[i],
    total_steps: c.total_steps[i] ?? 0,
    epoch: numberOrNaN(c.epoch[i]),
    train_loss: numberOrNaN(c.train_loss[i]),
    train_mean_token_accuracy: numberOrNaN(c.train_mean_token_accuracy[i]),
    learning_rate: numberOrNaN(c.learning_rate[i]),
    grad_norm: numberOrNaN(c.grad_norm[i]),
    tokens_per_second: numberOrNaN(c.tokens_per_second[i]),
    elapsed: numberOrNaN(c.elapsed[i]),
  };
  const validLoss = c.valid_loss[i];
  const validAccuracy = c.valid_mean_token_accuracy[i];
  const gpuMemory = c.gpu_memory[i];
  if (validLoss !== null) data.valid_loss = validLoss;
  if (validAccuracy !== null) data.valid_mean_token_accuracy = validAccuracy;
  if (gpuMemory !== null) data.gpu_memory = gpuMemory;
  return data;
}

/** What reading a run's history needs of a backend's client. */
export type HistoryClient = Pick<BackendClient, 'url' | 'getMetrics' | 'listEvents'>;

/** How a history (or a catch-up after a gap) was read. */
export interface HistoryRead {
  /** One `…/metrics` answer, or `…/events` pages (a backend without the metrics route). */
  via: 'metrics' | 'events';
  /** Metrics rows (via metrics) or events (via events) that came. */
  read: number;
  /** This read found out that the backend has no metrics route (it is not asked again). */
  fellBack: boolean;
}

/** What a history read is told. */
export interface HistoryReadOptions {
  /** The job's last seq as last known (its `last_event_seq`): events pages up to it are asked for a few at once. */
  knownLastSeq: number;
  /** Whether to stop between pages (the dashboard closed). */
  stopped: () => boolean;
  /** Called whenever rows were added (the dashboard sends them on). */
  onRows: () => void;
}

/** Events per page (the backend's maximum), and pages read at once while catching up on a long history. */
export const EVENTS_PAGE_SIZE = 1000;
const PARALLEL_PAGES = 4;

/** How long a backend found without the metrics route is read through event pages before it is asked again. */
export const MISSING_ROUTE_MEMORY_MS = 10 * 60_000;

/**
 * Reads runs' histories into their tables: everything after the table's last seq in ONE `…/metrics` request, or,
 * from a backend that answers that route with a 404 other than "no such job" (one from before the route, or
 * another OpenAI-compatible service), in `…/events` pages. Which backends lack the route is found out per backend
 * (by URL) and remembered for MISSING_ROUTE_MEMORY_MS, so an older backend costs one 404 now and then, not one per
 * dashboard, and one upgraded meanwhile is read the fast way again without a reload.
 */
export class HistoryReader {
  /** When each backend (by URL) was found without the route (`now()` ms). */
  private readonly withoutMetrics = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Reads what `table` lacks of the job's history (everything the first time). */
  async read(client: HistoryClient, jobId: string, table: MetricsTable, options: HistoryReadOptions): Promise<HistoryRead> {
    let fellBack = false;
    if (!this.lacksMetrics(client.url)) {
      try {
        const metrics = await client.getMetrics(jobId, table.lastSeq);
        if (table.applyColumns(metrics) > 0) options.onRows();
        return { via: 'metrics', read: metrics.count, fellBack };
      } catch (error) {
        if (!isMissingRoute(error)) throw error;
        this.withoutMetrics.set(client.url, this.now());
        fellBack = true;
      }
    }
    return { via: 'events', read: await readEventPages(client, jobId, table, options), fellBack };
  }

  /** Whether the backend at `url` was found to lack the metrics route, lately. */
  lacksMetrics(url: string): boolean {
    const found = this.withoutMetrics.get(url);
    if (found === undefined) return false;
    if (this.now() - found < MISSING_ROUTE_MEMORY_MS) return true;
    this.withoutMetrics.delete(url);
    return false;
  }
}

/** A 404 that is about the route, not the job: the backend does not know `…/metrics`. */
function isMissingRoute(error: unknown): boolean {
  return BackendError.is(error) && error.reason === 'http' && error.status === 404 && error.details.apiError?.code !== 'job_not_found';
}

/**
 * Reads the events after the table's last seq, in `…/events` pages, into the table; returns how many came. What
 * HistoryReader falls back to, exported for the benchmark that compares the two (bench/metrics.bench.ts).
 */
export async function readEventPages(client: HistoryClient, jobId: string, table: MetricsTable, options: HistoryReadOptions): Promise<number> {
  let after = table.lastSeq;
  let read = 0;
  const applyPage = (events: readonly FineTuningJobEvent[]): void => {
    for (const event of events) table.apply(event);
    read += events.length;
    options.onRows();
  };
  // A numbering backend numbers events 1, 2, 3… without gaps, so the pages up to the job's last seq can be asked
  // for at once (a few at a time) rather than one after the other; they are applied in order.
  const known = options.knownLastSeq;
  while (!options.stopped() && known - after > EVENTS_PAGE_SIZE) {
    const starts: number[] = [];
    for (let k = 0; k < PARALLEL_PAGES && after + k * EVENTS_PAGE_SIZE < known; k++) starts.push(after + k * EVENTS_PAGE_SIZE);
    const pages = await Promise.all(starts.map((start) => client.listEvents(jobId, start, EVENTS_PAGE_SIZE)));
    for (const page of pages) applyPage(page.data);
    const last = pages.at(-1)?.data.at(-1)?.seq;
    if (last === undefined || last <= after) break;
    after = last;
  }
  for (;;) {
    const page = await client.listEvents(jobId, after, EVENTS_PAGE_SIZE);
    applyPage(page.data);
    const last = page.data.at(-1);
    if (options.stopped() || !page.has_more || last === undefined || last.seq <= after) break;
    after = last.seq;
  }
  return read;
}

/**
 * When the run is expected to finish (Unix seconds): the backend's estimate when it gives one, else extrapolated
 * from the last metrics (the seconds per step so far, over the steps left); null when there is nothing to go on
 * or the run is final.
 */
export function estimateFinish(job: FineTuningJob, last: MetricsData | undefined): number | null {
  if (isFinal(job.status)) return null;
  if (job.estimated_finish !== null) return job.estimated_finish;
  if (job.status !== 'running' || last === undefined || last.step <= 0 || job.started_at === null) return null;
  const total = last.total_steps;
  if (total <= last.step) return null;
  return job.started_at + (last.elapsed * total) / last.step;
}

/** The header's settings rows: every hyper-parameter the run used, its seed, and the training file. */
export function settingsRows(job: FineTuningJob, trainingFile: string | undefined): InfoRow[] {
  const h = job.hyperparameters;
  const text = settingsText(h, job.seed);
  const rows: InfoRow[] = [
    { label: l10n.t('Method'), value: h.training_type === 'full' ? l10n.t('Full fine-tuning') : l10n.t('LoRA') },
    { label: l10n.t('Epochs'), value: text.n_epochs },
    { label: l10n.t('Learning rate'), value: text.learning_rate },
    { label: l10n.t('Batch size'), value: text.batch_size },
    { label: l10n.t('Max sequence length'), value: text.max_seq_length },
    { label: l10n.t('Warm-up ratio'), value: text.warmup_ratio },
    { label: l10n.t('Scheduler'), value: text.lr_scheduler },
  ];
  if (h.training_type !== 'full') {
    rows.push(
      { label: l10n.t('LoRA rank'), value: text.lora_r },
      { label: l10n.t('LoRA alpha'), value: text.lora_alpha },
      { label: l10n.t('LoRA dropout'), value: text.lora_dropout },
      { label: l10n.t('LoRA target modules'), value: h.lora_target_modules.join(', ') },
    );
  }
  rows.push(
    { label: l10n.t('Checkpoints'), value: text.checkpoints },
    { label: l10n.t('Eval split'), value: text.eval_ratio },
    { label: l10n.t('Seed'), value: text.seed },
    { label: l10n.t('Training file'), value: trainingFile === undefined ? job.training_file : `${trainingFile} (${job.training_file})` },
  );
  if (job.validation_file !== null) rows.push({ label: l10n.t('Validation file'), value: job.validation_file });
  return rows;
}

/** What the header needs beside the job. */
export interface HeaderInput {
  index: number;
  backend: string;
  job: FineTuningJob;
  last: MetricsData | undefined;
  trainingFile: string | undefined;
  loading: boolean;
  loadError: string | null;
  /** The run's latest message event (RunState.lastMessage). */
  lastMessage?: string;
}

/** A run's header (see RunHeaderView). */
export function headerView(input: HeaderInput): RunHeaderView {
  const { job, last } = input;
  const progress = job.progress;
  const step = Math.max(progress?.step ?? 0, last?.step ?? 0);
  return {
    index: input.index,
    backend: input.backend,
    jobId: job.id,
    name: runLabel(job),
    model: job.model,
    status: job.status,
    statusText: statusWord(job.status),
    final: isFinal(job.status),
    step,
    totalSteps: progress?.total_steps ?? last?.total_steps ?? 0,
    epoch: last?.epoch ?? progress?.epoch ?? 0,
    startedAt: job.started_at,
    finishedAt: job.finished_at,
    etaAt: estimateFinish(job, last),
    tokens: job.trained_tokens === null ? '—' : formatCount(job.trained_tokens),
    settings: settingsRows(job, input.trainingFile),
    error: job.error === null ? null : `${job.error.message} (${job.error.code})`,
    note: job.status === 'running' && step === 0 && input.lastMessage !== undefined && input.lastMessage !== '' ? input.lastMessage : null,
    loading: input.loading,
    loadError: input.loadError,
  };
}

/** A checkpoint as the list shows it: its metrics formatted, its sample split (see SampleView). */
export function checkpointView(checkpoint: FineTuningJobCheckpoint): CheckpointView {
  const m = checkpoint.metrics;
  const metrics: InfoRow[] = [{ label: l10n.t('train loss'), value: formatLoss(m.train_loss) }];
  const valid = m.full_valid_loss ?? m.valid_loss;
  if (valid !== undefined) metrics.push({ label: l10n.t('valid loss'), value: formatLoss(valid) });
  metrics.push({ label: l10n.t('token accuracy'), value: percent(m.train_mean_token_accuracy) });
  const validAccuracy = m.full_valid_mean_token_accuracy ?? m.valid_mean_token_accuracy;
  if (validAccuracy !== undefined) metrics.push({ label: l10n.t('valid accuracy'), value: percent(validAccuracy) });
  return { id: checkpoint.id, step: checkpoint.step_number, model: checkpoint.fine_tuned_model_checkpoint, metrics, sample: sampleView(checkpoint.sample) };
}

/** The sample split for the three columns: a leading system prompt apart, the turns up to the last user turn. */
export function sampleView(sample: FineTuningJobCheckpoint['sample']): SampleView | null {
  if (sample === null) return null;
  const messages = sample.messages;
  const system = messages[0]?.role === 'system' ? messages[0].content : null;
  const rest = system === null ? messages : messages.slice(1);
  let lastUser = -1;
  for (let i = rest.length - 1; i >= 0; i--) {
    if (rest[i].role === 'user') {
      lastUser = i;
      break;
    }
  }
  const prompt = lastUser < 0 ? rest : rest.slice(0, lastUser + 1);
  return { system, prompt: prompt.map((m) => ({ role: m.role, content: m.content })), reference: sample.reference, answer: sample.answer };
}

function percent(value: number): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : '—';
}

/** One run's part of the CSV. */
export interface CsvRun {
  name: string;
  jobId: string;
  table: MetricsTable;
}

/** The CSV's columns, in order. */
export const CSV_COLUMNS = ['run', 'job_id', 'step', 'epoch', 'elapsed', ...METRIC_FIELDS] as const;

/**
 * Every metric of every run as CSV (RFC 4180): a header row, then one row per step and run (runs in order, steps
 * ascending); an empty cell where a step has no value (valid_* between evaluations).
 */
export function metricsCsv(runs: readonly CsvRun[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const run of runs) {
    const t = run.table;
    const name = csvCell(run.name);
    const id = csvCell(run.jobId);
    for (let i = 0; i < t.length; i++) {
      const cells = [name, id, String(t.step[i]), numberCell(t.epoch[i]), numberCell(t.time[i])];
      for (const field of METRIC_FIELDS) cells.push(numberCell(t.values[field][i]));
      lines.push(cells.join(','));
    }
  }
  return `${lines.join('\r\n')}\r\n`;
}

function numberCell(value: number): string {
  return Number.isFinite(value) ? String(value) : '';
}

function csvCell(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A file name for an export: the runs' names, safe on every file system. */
export function exportFileName(names: readonly string[], extension: string, suffix = ''): string {
  const base = names.join('-vs-').replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 80) || 'run';
  return `${base}${suffix === '' ? '' : `-${suffix}`}.${extension}`;
}
