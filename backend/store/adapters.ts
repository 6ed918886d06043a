// The saved adapters ("Save to Repository", issue 7): checkpoints a user kept, copied out of their job's folder
// into `{data}/adapters/{id}/` so that chat can still serve them once the job is gone. Each folder holds the
// adapter files and `saved_adapter.json` (the record). A save is built under `.staging/` (files copied and
// fsync'd, record written atomically) and renamed into place in one step, so the store never lists a half
// adapter, whatever moment the process dies at. Replacing an adapter of the same name commits the new folder
// first and removes the old one after; a crash in between leaves both, and the next open keeps the newer.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelObject, SavedAdapter } from '../../common/api';
import { isIdOf } from '../../common/api';
import type { ModelRef } from '../../common/engineProtocol';
import { syncDir, writeFileAtomic } from '../runtime/atomicFile';
import { newId } from '../runtime/ids';
import type { ChatTarget, FineTunedSource, Log, Owner, Page } from '../runtime';

/** The record's file name inside an adapter's folder. */
export const ADAPTER_RECORD = 'saved_adapter.json';

/** What `saved_adapter.json` holds. */
interface AdapterRecord {
  version: 1;
  owner: Owner;
  adapter: SavedAdapter;
  /** The engine and base model that serve it (as the job trained it). */
  engine: string;
  model: ModelRef;
  /** Milliseconds, to order adapters saved within the same second. */
  created_ms: number;
}

/** Why a save or delete was refused. */
export class AdapterError extends Error {
  constructor(
    readonly reason: 'exists' | 'no_files',
    message: string,
  ) {
    super(message);
    this.name = 'AdapterError';
  }

  static is(e: unknown): e is AdapterError {
    return e instanceof AdapterError;
  }
}

/** What to save: the checked request's fields and the resolved source. */
export interface AdapterSave {
  owner: Owner;
  name: string;
  location: string | null;
  overwrite: boolean;
  /** The request's `model`. */
  sourceModel: string;
  source: FineTunedSource;
}

/** The saved adapters of every owner, indexed in memory on open. */
export class AdapterStore {
  /** Oldest first. */
  private readonly records: AdapterRecord[] = [];
  /** Saves and deletes one at a time, so that a name check and the commit that follows it cannot interleave. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly root: string,
    private readonly log: Log,
  ) {}

  /** Opens (creating) `{dataDir}/adapters/`: indexes the adapters and clears what crashed saves left. */
  static async open(dataDir: string, log: Log): Promise<AdapterStore> {
    const store = new AdapterStore(join(dataDir, 'adapters'), log);
    await rm(store.staging, { recursive: true, force: true });
    await rm(store.trash, { recursive: true, force: true });
    await mkdir(store.staging, { recursive: true, mode: 0o700 });
    const found: AdapterRecord[] = [];
    for (const name of await readdir(store.root)) {
      if (!isIdOf('adapter', name)) continue;
      try {
        const record = JSON.parse(await readFile(join(store.root, name, ADAPTER_RECORD), 'utf8')) as AdapterRecord;
        if (record.adapter?.id !== name || typeof record.owner !== 'string') throw new Error('the record does not match its folder');
        found.push(record);
      } catch (error) {
        log.warn(`adapters: skipping ${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    found.sort((a, b) => a.created_ms - b.created_ms || (a.adapter.id < b.adapter.id ? -1 : 1));
    for (const record of found) {
      // Two of one name: a replace was cut short after the new one was in place; the older goes now.
      const older = store.records.find((r) => r.owner === record.owner && r.adapter.name === record.adapter.name);
      if (older !== undefined) await store.remove(older, 'replaced before the backend stopped');
      store.records.push(record);
    }
    return store;
  }

  private get staging(): string {
    return join(this.root, '.staging');
  }

  private get trash(): string {
    return join(this.root, '.trash');
  }

  /** The owner's adapters, newest first, from after the adapter `after` (undefined: an unknown `after`). */
  list(owner: Owner, after: string | undefined, limit: number): Page<SavedAdapter> | undefined {
    const mine = this.records.filter((r) => r.owner === owner).reverse();
    let start = 0;
    if (after !== undefined) {
      const at = mine.findIndex((r) => r.adapter.id === after);
      if (at < 0) return undefined;
      start = at + 1;
    }
    return { data: mine.slice(start, start + limit).map((r) => r.adapter), has_more: mine.length > start + limit };
  }

  /** The owner's adapter with that id (undefined for a malformed id, a missing one, or another owner's). */
  get(owner: Owner, id: string): SavedAdapter | undefined {
    return this.record(owner, id)?.adapter;
  }

  private record(owner: Owner, id: string): AdapterRecord | undefined {
    if (!isIdOf('adapter', id)) return undefined;
    return this.records.find((r) => r.owner === owner && r.adapter.id === id);
  }

  /** The owner's adapter with that id or name, for chat. */
  private byIdOrName(owner: Owner, model: string): AdapterRecord | undefined {
    return this.record(owner, model) ?? this.records.find((r) => r.owner === owner && r.adapter.name === model);
  }

  /** The chat target of the owner's adapter named by id or name; undefined when there is none. */
  resolve(owner: Owner, model: string): ChatTarget | undefined {
    const record = this.byIdOrName(owner, model);
    return record && { engine: record.engine, model: record.model, adapter: join(this.root, record.adapter.id) };
  }

  /** The owner's adapters as `/v1/models` lists them. */
  models(owner: Owner): ModelObject[] {
    return this.records
      .filter((r) => r.owner === owner)
      .map((r) => ({
        id: r.adapter.id,
        object: 'model',
        created: r.adapter.created_at,
        owned_by: 'user',
        kind: 'adapter',
        engine: r.engine,
        base_model: r.adapter.base_model,
        job_id: r.adapter.job_id,
        description: r.adapter.name,
      }));
  }

  /**
   * Copies the source's files into a new adapter and lists it. An adapter of the same name is refused
   * (`exists`) unless `overwrite`, in which case it is removed once the new one is in place.
   */
  save(request: AdapterSave): Promise<SavedAdapter> {
    return this.serial(() => this.doSave(request));
  }

  private async doSave(request: AdapterSave): Promise<SavedAdapter> {
    const { owner, name, source } = request;
    const existing = this.records.find((r) => r.owner === owner && r.adapter.name === name);
    if (existing !== undefined && !request.overwrite) {
      throw new AdapterError('exists', `An adapter named '${name}' exists already (${existing.adapter.id}); pass "overwrite": true to replace it, or choose another name.`);
    }
    if (source.files.length === 0) throw new AdapterError('no_files', `The model '${request.sourceModel}' has no adapter files on this backend any more.`);

    const id = newId('adapter');
    const folder = join(this.staging, id);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    let adapter: SavedAdapter;
    try {
      let bytes = 0;
      for (const file of source.files) {
        const to = join(folder, file.name);
        await copyFile(file.path, to);
        await fsync(to);
        bytes += file.bytes;
      }
      const now = Date.now();
      adapter = {
        id,
        object: 'adapter',
        name,
        created_at: Math.floor(now / 1000),
        base_model: source.base_model,
        job_id: source.job_id,
        checkpoint_id: source.checkpoint_id,
        step_number: source.step_number,
        source_model: request.sourceModel,
        location: request.location,
        bytes,
      };
      const record: AdapterRecord = { version: 1, owner, adapter, engine: source.target.engine, model: source.target.model, created_ms: now };
      await writeFileAtomic(join(folder, ADAPTER_RECORD), JSON.stringify(record));
      await rename(folder, join(this.root, id));
      await syncDir(this.root);
      this.records.push(record);
      this.log.info(`adapters: saved ${id} '${name}' from ${request.sourceModel} (${bytes} bytes) for ${owner.slice(0, 8)}`);
    } catch (error) {
      await rm(folder, { recursive: true, force: true });
      throw error;
    }
    if (existing !== undefined) {
      // The new one is saved: failing to remove the old one now must not turn the save into an error. It is
      // unlisted already; should its folder stay, the next open sees two of one name and keeps the newer.
      await this.remove(existing, `replaced by ${id}`).catch((error: unknown) =>
        this.log.warn(`adapters: ${existing.adapter.id} was replaced by ${id} but not removed: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
    return adapter;
  }

  /** Deletes the owner's adapter and its files; false when there is none. */
  delete(owner: Owner, id: string): Promise<boolean> {
    return this.serial(async () => {
      const record = this.record(owner, id);
      if (record === undefined) return false;
      await this.remove(record, 'deleted');
      return true;
    });
  }

  /** Unlists a record and removes its folder: out of the store in one rename, then removed. */
  private async remove(record: AdapterRecord, why: string): Promise<void> {
    const at = this.records.indexOf(record);
    if (at >= 0) this.records.splice(at, 1);
    const id = record.adapter.id;
    await mkdir(this.trash, { recursive: true });
    const gone = join(this.trash, `${id}-${randomBytes(4).toString('hex')}`);
    await rename(join(this.root, id), gone);
    await rm(gone, { recursive: true, force: true });
    this.log.info(`adapters: ${id} '${record.adapter.name}' ${why}`);
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/** Flushes a copied file to disk, so that the rename that lists it never points at data still in a cache. */
async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
