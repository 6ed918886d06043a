// A job's metrics as columns, for `GET /v1/fine_tuning/jobs/{id}/metrics` (common/api.ts FineTuningJobMetrics):
// one growable Float64Array per MetricsData field plus the events' seqs, NaN where an event lacks a field (JSON
// has no NaN, so NaN and "absent" are both `null` on the wire: nothing is lost). A table catches up with the
// job's events (the store keeps them in memory) from where it stopped, so a running job's table grows by the new
// events only. Its JSON is assembled from fragments: every complete block of BLOCK_ROWS rows is serialised once and
// kept, so reading a 100,000-step history again costs string joins, not 1.3 million number-to-text conversions.
//
// MetricsCache keeps the tables of running jobs (fed as their events are recorded) and of the jobs recently asked
// for, within a budget of bytes (and drops those not asked for in a while): a backend with many long runs does
// not hold all of their columns for ever.
import { METRICS_COLUMNS, type FineTuningJobEvent, type MetricsColumn, type MetricsData } from '../../common/api';
import { GrowableColumn, upperBound } from '../../common/columns';

/** Rows per serialised block: small enough that the unfinished tail is cheap to write at every request. */
export const BLOCK_ROWS = 1024;

/** The series of the answer, in order: the seqs, then every MetricsData field (METRICS_COLUMNS). */
const SERIES = 1 + METRICS_COLUMNS.length;

/** Each field's series. */
const AT = Object.fromEntries(METRICS_COLUMNS.map((name, i) => [name, i + 1])) as Record<MetricsColumn, number>;

/** A field's value as stored: a number, else NaN (absent, null, or whatever a bad engine wrote). */
function numberOrNaN(value: unknown): number {
  return typeof value === 'number' ? value : Number.NaN;
}

/** What one request gets: its rows' count, the last seq, and the answer's JSON text. */
export interface MetricsSlice {
  /** The highest seq of any event the table has taken in (messages included). */
  lastSeq: number;
  /** Rows with a seq above the request's `after`. */
  count: number;
  /** The FineTuningJobMetrics answer as JSON text, ready to send. */
  json: string;
}

/** One job's metrics as columns (see the file comment). */
export class JobMetricsTable {
  /** series[0] holds the seqs; series[1 + i] the field METRICS_COLUMNS[i]. */
  private readonly series: GrowableColumn[] = Array.from({ length: SERIES }, () => new GrowableColumn(BLOCK_ROWS));
  /** Serialised complete blocks: blocks[s][b] is rows b·BLOCK_ROWS … (b+1)·BLOCK_ROWS − 1 of series s, comma-separated. */
  private readonly blocks: string[][] = Array.from({ length: SERIES }, () => []);
  /** The highest seq taken in (events up to it are in the table, or were not metrics). */
  lastSeq = 0;
  /** Characters of the cached blocks, for the cache's budget. */
  textChars = 0;

  constructor(readonly jobId: string) {}

  /** Rows. */
  get count(): number {
    return this.series[0].length;
  }

  /**
   * Takes in the events after the last seq taken in. `events` is the job's whole list in seq order, index
   * seq − 1 (JobEntry.events), so catching up starts at `lastSeq` without a search.
   */
  catchUp(events: readonly FineTuningJobEvent[]): void {
    for (let i = this.lastSeq; i < events.length; i++) {
      const event = events[i];
      if (event.type === 'metrics' && typeof event.data === 'object' && event.data !== null) this.push(event.seq, event.data);
      this.lastSeq = Math.max(this.lastSeq, event.seq);
    }
  }

  /** Serialises the complete blocks not serialised yet, so that the next request only joins text. */
  serialiseBlocks(): void {
    const complete = Math.floor(this.count / BLOCK_ROWS);
    for (let s = 0; s < SERIES; s++) for (let block = this.blocks[s].length; block < complete; block++) this.blockText(s, block);
  }

  private push(seq: number, d: MetricsData): void {
    const s = this.series;
    s[0].push(seq);
    // Named reads, not `d[name]` in a loop over the names: a keyed read with a changing key is ~10× slower on a
    // first (cold) build of 100,000 rows. A field missing here stays NaN (null), which the tests would see.
    s[AT.step].push(numberOrNaN(d.step));
    s[AT.total_steps].push(numberOrNaN(d.total_steps));
    s[AT.epoch].push(numberOrNaN(d.epoch));
    s[AT.train_loss].push(numberOrNaN(d.train_loss));
    s[AT.train_mean_token_accuracy].push(numberOrNaN(d.train_mean_token_accuracy));
    s[AT.valid_loss].push(numberOrNaN(d.valid_loss));
    s[AT.valid_mean_token_accuracy].push(numberOrNaN(d.valid_mean_token_accuracy));
    s[AT.learning_rate].push(numberOrNaN(d.learning_rate));
    s[AT.grad_norm].push(numberOrNaN(d.grad_norm));
    s[AT.tokens_per_second].push(numberOrNaN(d.tokens_per_second));
    s[AT.elapsed].push(numberOrNaN(d.elapsed));
    s[AT.gpu_memory].push(numberOrNaN(d.gpu_memory));
  }

  /** The rows after `afterSeq`, as they are now. */
  slice(afterSeq: number): MetricsSlice {
    // Seqs ascend: the first row after `afterSeq` by binary search.
    const from = upperBound(this.series[0].raw(), this.count, afterSeq);
    return { lastSeq: this.lastSeq, count: this.count - from, json: this.json(from, this.count, this.lastSeq) };
  }

  private json(from: number, to: number, lastSeq: number): string {
    const columns = METRICS_COLUMNS.map((name, i) => `${JSON.stringify(name)}:[${this.seriesText(i + 1, from, to)}]`).join(',');
    return `{"object":"fine_tuning.job.metrics","job_id":${JSON.stringify(this.jobId)},"last_seq":${lastSeq},"count":${to - from},"columns":{${columns}},"seq":[${this.seriesText(0, from, to)}]}`;
  }

  /** Rows from … to − 1 of one series, comma-separated: cached blocks where whole, written afresh at the edges. */
  private seriesText(s: number, from: number, to: number): string {
    const pieces: string[] = [];
    let row = from;
    while (row < to) {
      const block = Math.floor(row / BLOCK_ROWS);
      const blockStart = block * BLOCK_ROWS;
      const blockEnd = blockStart + BLOCK_ROWS;
      if (row === blockStart && blockEnd <= to) {
        pieces.push(this.blockText(s, block));
        row = blockEnd;
      } else {
        const end = Math.min(to, blockEnd);
        pieces.push(this.rowsText(s, row, end));
        row = end;
      }
    }
    return pieces.join(',');
  }

  private blockText(s: number, block: number): string {
    let text = this.blocks[s][block];
    if (text === undefined) {
      // Blocks are cached in order of use; one below a cached one may be missing (an `after` in the middle).
      text = this.rowsText(s, block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS);
      this.blocks[s][block] = text;
      this.textChars += text.length;
    }
    return text;
  }

  private rowsText(s: number, from: number, to: number): string {
    // JSON.stringify writes a plain array of doubles faster than a loop of String() and join (about 1.5×), and
    // writes NaN and the infinities as null, as JSON has it; the brackets are cut off.
    return JSON.stringify(Array.from(this.series[s].raw().subarray(from, to))).slice(1, -1);
  }

  /** Rough bytes held: the columns' capacity and the cached text (two bytes a character at most). */
  get bytes(): number {
    return this.series[0].capacity * SERIES * 8 + this.textChars * 2;
  }
}

/** The cache's limits. */
export interface MetricsCacheOptions {
  /** Most bytes (JobMetricsTable.bytes) held over all tables; the least recently used go first. Default 256 MiB. */
  maxBytes?: number;
  /** A table not asked for in this long is dropped at the next request. Default 10 minutes. */
  idleMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** What the cache needs of a job: its id, its status and its events in seq order (JobEntry). */
export interface MetricsSource {
  readonly job: { readonly id: string; readonly status: string };
  readonly events: readonly FineTuningJobEvent[];
}

/** The tables of the jobs asked for lately (see the file comment). */
export class MetricsCache {
  /** In order of last use, oldest first (a Map keeps insertion order; a used table is moved to the end). */
  private readonly tables = new Map<string, { table: JobMetricsTable; used: number }>();
  private readonly maxBytes: number;
  private readonly idleMs: number;
  private readonly now: () => number;

  constructor(options: MetricsCacheOptions = {}) {
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.idleMs = options.idleMs ?? 10 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /** The job's rows after `afterSeq`: its table, built on first use and caught up with the events since. */
  slice(source: MetricsSource, afterSeq: number): MetricsSlice {
    const now = this.now();
    const id = source.job.id;
    let held = this.tables.get(id);
    if (held !== undefined) this.tables.delete(id);
    held ??= { table: new JobMetricsTable(id), used: now };
    held.used = now;
    this.tables.set(id, held);
    held.table.catchUp(source.events);
    const slice = held.table.slice(afterSeq);
    this.enforce(now, id);
    return slice;
  }

  /**
   * A job recorded events (the store's listener): a running job's table, or one that is held already, takes them
   * in now, complete blocks serialised as they fill, so that a dashboard opened on a running job (or one that ran
   * since the backend started) is answered from text already written. Tables of other jobs are made on request.
   */
  recorded(source: MetricsSource): void {
    const held = this.tables.get(source.job.id);
    if (held === undefined && source.job.status !== 'running') return;
    const table = held?.table ?? new JobMetricsTable(source.job.id);
    if (held === undefined) {
      // Counts as a use: a new run's table is not the first to go.
      this.tables.set(source.job.id, { table, used: this.now() });
    }
    table.catchUp(source.events);
    table.serialiseBlocks();
    if (held === undefined) this.enforce(this.now(), source.job.id);
  }

  /** Drops idle tables, then the least recently used ones while over the budget; never `keep`'s. */
  private enforce(now: number, keep: string): void {
    let bytes = 0;
    for (const [id, held] of this.tables) {
      if (id !== keep && now - held.used > this.idleMs) this.tables.delete(id);
      else bytes += held.table.bytes;
    }
    for (const [id, held] of this.tables) {
      if (bytes <= this.maxBytes) break;
      if (id === keep) continue;
      this.tables.delete(id);
      bytes -= held.table.bytes;
    }
  }

  /** The jobs whose tables are held, least recently used first (tests). */
  heldJobs(): string[] {
    return [...this.tables.keys()];
  }

  /** Bytes held (tests). */
  heldBytes(): number {
    let bytes = 0;
    for (const held of this.tables.values()) bytes += held.table.bytes;
    return bytes;
  }
}
