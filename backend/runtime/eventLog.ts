// A job's append-only event log, `events.jsonl`: one JSON event a line. Appends made in the same tick go out as
// one write followed by one fsync, and the caller's promise resolves only then: an event is durable before
// anyone sees it. A crash can leave a half-written last line (no newline, or cut JSON); opening the log detects
// it, says so in the backend's log and truncates it away, so the next append starts on a clean line.
import { type FileHandle, open, readFile, truncate } from 'node:fs/promises';
import type { Log } from '../runtime';

/** What `EventLog.open` found: the log, ready for appends, and the records already in it, in file order. */
export interface OpenedLog {
  log: EventLog;
  records: unknown[];
}

/** Appends JSON records to one file, in batches, each batch fsync'd (see the file comment). */
export class EventLog {
  private batch: { text: string; waiters: { resolve: () => void; reject: (e: unknown) => void }[] } | undefined;
  private flushing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly handle: FileHandle,
    /** Bytes known to be whole lines; a failed write is cut back to it. */
    private size: number,
  ) {}

  /** Reads the log at `path` (creating it when missing), drops a half-written last line, and opens it for appends. */
  static async open(path: string, log: Log): Promise<OpenedLog> {
    let content: Buffer;
    try {
      content = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      content = Buffer.alloc(0);
    }
    const records: unknown[] = [];
    let start = 0;
    let good = 0;
    while (start < content.length) {
      const end = content.indexOf(0x0a, start);
      if (end < 0) break;
      const line = content.subarray(start, end).toString('utf8');
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        record = undefined;
      }
      if (record === undefined) {
        // Only the last line can be torn by a crash; a bad line before it is damage from elsewhere, skipped but
        // kept on disk, so that nothing is thrown away that a person might want to look at.
        if (end + 1 >= content.length) break;
        log.warn(`${path}: line ${records.length + 1} is not JSON; skipped`);
      } else {
        records.push(record);
      }
      start = end + 1;
      good = start;
    }
    if (good < content.length) {
      log.warn(`${path}: dropped a half-written last line (${content.length - good} bytes) left by a crash`);
      await truncate(path, good);
    }
    const handle = await open(path, 'a', 0o600);
    return { log: new EventLog(path, handle, good), records };
  }

  /** Appends records; resolves when they are on disk. Records appended in one tick share a write and an fsync. */
  append(records: readonly unknown[]): Promise<void> {
    const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
    return new Promise<void>((resolve, reject) => {
      if (this.batch === undefined) {
        const batch = { text: '', waiters: [] as { resolve: () => void; reject: (e: unknown) => void }[] };
        this.batch = batch;
        this.flushing = this.flushing.then(() => this.flush(batch));
      }
      this.batch.text += text;
      this.batch.waiters.push({ resolve, reject });
    });
  }

  private async flush(batch: { text: string; waiters: { resolve: () => void; reject: (e: unknown) => void }[] }): Promise<void> {
    if (this.batch === batch) this.batch = undefined;
    const bytes = Buffer.from(batch.text, 'utf8');
    try {
      await this.handle.write(bytes);
      await this.handle.datasync();
      this.size += bytes.length;
      for (const w of batch.waiters) w.resolve();
    } catch (e) {
      // Cut a partly written batch back off, so that the next batch does not start in the middle of a line.
      await truncate(this.path, this.size).catch(() => undefined);
      for (const w of batch.waiters) w.reject(e);
    }
  }

  /** Waits for pending appends and closes the file. */
  async close(): Promise<void> {
    await this.flushing;
    await this.handle.close();
  }
}
