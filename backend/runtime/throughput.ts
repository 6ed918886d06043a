// What this backend has measured of its own speed: per engine and base model, the training throughput (tokens a
// second) of the most recent job that succeeded, kept in `{dataDir}/throughput.json` so that a client's duration
// estimate survives a restart. The median of the job's steps rather than the mean: the first steps pay for warm-up
// (kernels compiled, caches filled) and a busy machine gives the odd slow step, neither of which says much about
// the next run.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FineTuningJobEvent } from '../../common/api';
import type { Log } from '../runtime';
import { CoalescingWriter } from './atomicFile';

/** One measurement, as stored. */
export interface ThroughputRecord {
  engine: string;
  model: string;
  tokens_per_second: number;
  /** The job it was measured on, and when it finished (Unix seconds). */
  job_id: string;
  measured_at: number;
}

/** The file's content. */
interface ThroughputFile {
  version: 1;
  records: ThroughputRecord[];
}

/** The median of the positive, finite `tokens_per_second` of a job's metrics events; undefined when it has none. */
export function medianTokensPerSecond(events: readonly FineTuningJobEvent[]): number | undefined {
  const rates = events
    .filter((e) => e.type === 'metrics')
    .map((e) => e.data.tokens_per_second)
    .filter((r) => Number.isFinite(r) && r > 0)
    .sort((a, b) => a - b);
  if (rates.length === 0) return undefined;
  const mid = Math.floor(rates.length / 2);
  return rates.length % 2 === 1 ? rates[mid] : (rates[mid - 1]! + rates[mid]!) / 2;
}

function isRecord(value: unknown): value is ThroughputRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    typeof r.engine === 'string' &&
    typeof r.model === 'string' &&
    typeof r.tokens_per_second === 'number' &&
    Number.isFinite(r.tokens_per_second) &&
    r.tokens_per_second > 0 &&
    typeof r.job_id === 'string' &&
    typeof r.measured_at === 'number'
  );
}

const key = (engine: string, model: string): string => `${engine}\u0000${model}`;

/** The measured throughputs of a backend, in memory and on disk. */
export class ThroughputLog {
  private readonly records = new Map<string, ThroughputRecord>();
  private readonly writer: CoalescingWriter;

  private constructor(
    readonly path: string,
    private readonly log: Log,
  ) {
    const content = (): string => JSON.stringify({ version: 1, records: [...this.records.values()] } satisfies ThroughputFile, null, 2) + '\n';
    this.writer = new CoalescingWriter(path, content);
  }

  /**
   * Loads `{dataDir}/throughput.json`. A missing file is an empty log; an unreadable or malformed one is logged
   * and treated as empty (estimates are a convenience: they must never keep the backend from starting). It is
   * only replaced by the next measurement.
   */
  static async open(dataDir: string, log: Log): Promise<ThroughputLog> {
    const store = new ThroughputLog(join(dataDir, 'throughput.json'), log);
    let text: string;
    try {
      text = await readFile(store.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn(`${store.path}: not read (${(e as Error).message}); no throughput known`);
      return store;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text) as unknown;
    } catch (e) {
      log.warn(`${store.path}: not JSON (${(e as Error).message}); no throughput known`);
      return store;
    }
    const records = (parsed as Partial<ThroughputFile> | null)?.records;
    if (!Array.isArray(records)) {
      log.warn(`${store.path}: no "records" list; no throughput known`);
      return store;
    }
    for (const [i, r] of records.entries()) {
      if (isRecord(r)) store.records.set(key(r.engine, r.model), r);
      else log.warn(`${store.path}: records[${i}] is not a throughput record; skipped`);
    }
    return store;
  }

  /** Tokens a second of the latest measured job on this engine and base model. */
  get(engine: string, model: string): number | undefined {
    return this.records.get(key(engine, model))?.tokens_per_second;
  }

  /**
   * Remembers a job's throughput at once (what `get` answers from now on) and writes the file; resolves when it
   * is on disk. A job without usable metrics changes nothing.
   */
  record(engine: string, model: string, jobId: string, events: readonly FineTuningJobEvent[], measuredAt: number): Promise<void> {
    const rate = medianTokensPerSecond(events);
    const known = this.records.get(key(engine, model));
    // An older job saved again (after a restart) must not replace what a newer one measured.
    if (rate === undefined || (known !== undefined && known.measured_at > measuredAt)) return Promise.resolve();
    this.records.set(key(engine, model), { engine, model, tokens_per_second: rate, job_id: jobId, measured_at: measuredAt });
    return this.writer.write().catch((e: unknown) => this.log.error(`${this.path}: not written: ${(e as Error).message}`));
  }

  /** Resolves when the writes asked for so far are done. */
  idle(): Promise<void> {
    return this.writer.idle();
  }
}
