// Crash-safe writes of small records (job.json, checkpoints.json): a reader after a crash at any moment sees
// either the old content or the new one, never a mix. The content goes to a temporary file in the same folder,
// is fsync'd, renamed over the target (atomic on POSIX file systems), and the folder is fsync'd so that the
// rename itself survives a power loss.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The suffix of temporary files; a file with it left behind by a crash is ignored and removed on open. */
export const TMP_SUFFIX = '.tmp';

/** Writes `data` to `path` atomically (see the file comment). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`);
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}

/** Fsyncs a folder, so that entries created or renamed in it are durable. Some platforms can't; that is fine. */
export async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Windows cannot open a folder for fsync; its renames are journaled anyway.
  } finally {
    await handle?.close();
  }
}

/**
 * Runs writes of one record one after the other and coalesces bursts: while a write runs, later requests wait,
 * and all of them are answered by one more write of the newest content. A job's record is written at most twice
 * per fsync however often it changes.
 */
export class CoalescingWriter {
  private running: Promise<void> | undefined;
  private pending: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | undefined;

  constructor(
    private readonly path: string,
    /** Called when the write starts, so that the newest content is the one written. */
    private readonly content: () => string,
  ) {}

  /** Resolves when content at least as new as the one at the time of the call is on disk. */
  write(): Promise<void> {
    if (this.running === undefined) {
      this.running = this.run();
      return this.running;
    }
    if (this.pending === undefined) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.pending = { promise, resolve, reject };
    }
    return this.pending.promise;
  }

  /** Resolves when the writes asked for so far are done (failed ones included). */
  async idle(): Promise<void> {
    await (this.pending?.promise ?? this.running)?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    try {
      await writeFileAtomic(this.path, this.content());
    } finally {
      const next = this.pending;
      this.pending = undefined;
      this.running = undefined;
      if (next !== undefined) {
        this.running = this.run();
        this.running.then(next.resolve, next.reject);
      }
    }
  }
}
