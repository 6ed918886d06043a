/**
 * Which files are datasets, and which of them VS Code will not share with extensions. Pure (no `vscode`), so
 * that the decisions are unit-tested under plain Node.
 */

/**
 * VS Code does not sync a document longer than 50 × 2^20 UTF-16 code units to extensions: no `didOpen`, no
 * `didChange`, so the language server never sees it unless it reads it from disk.
 */
export const SYNC_LIMIT_UTF16_UNITS = 50 * 2 ** 20;

/** `.jsonl` and `.ndjson`, as VS Code's `jsonl` language contributes them (any case). */
export function isDatasetPath(path: string): boolean {
  return /\.(jsonl|ndjson)$/i.test(path);
}

/** What is known about a dataset that is open in a tab. */
export interface TabDatasetFacts {
  /** The document is among `workspace.textDocuments`: VS Code syncs it, the server checks it live. */
  synced: boolean;
  /** The file's size on disk in bytes; undefined when it cannot be read (deleted, not a file). */
  sizeBytes: number | undefined;
}

/**
 * Whether a dataset tab must be checked from disk. A document that VS Code syncs never is. Otherwise the size
 * decides: UTF-8 never takes fewer bytes than UTF-16 takes code units (1–3 bytes for one unit, 4 for two), so a
 * file of at most 50 × 2^20 bytes is always under the limit and is merely not loaded yet (a background tab
 * after a reload); VS Code syncs it as soon as it loads it.
 */
export function needsDiskCheck(facts: TabDatasetFacts): boolean {
  if (facts.synced || facts.sizeBytes === undefined) return false;
  return facts.sizeBytes > SYNC_LIMIT_UTF16_UNITS;
}

/** What to tell the server after the set of open tabs changed. */
export interface DiskCheckChanges {
  /** Tabs to look at (stat and maybe check from disk): shown now, not looked at before. */
  inspect: string[];
  /** Files checked from disk whose last tab closed: `dataset/stopCheckFromDisk`. */
  stop: string[];
}

/**
 * The bookkeeping of disk checks, keyed by uri string: which tabs were looked at, which files the server checks
 * from disk. It only decides; the caller does the I/O and tells it the outcome.
 */
export class DiskCheckTracker {
  /** uri → 'inspecting' (stat in flight), 'inspected' (no disk check needed) or 'checking' (the server checks it from disk). */
  private readonly state = new Map<string, 'inspecting' | 'inspected' | 'checking'>();

  /** Reconciles with the dataset uris that are open in tabs now. */
  update(openTabs: Iterable<string>): DiskCheckChanges {
    const open = new Set(openTabs);
    const inspect: string[] = [];
    const stop: string[] = [];
    for (const [uri, state] of this.state) {
      if (open.has(uri)) continue;
      this.state.delete(uri);
      if (state === 'checking') stop.push(uri);
    }
    for (const uri of open) {
      if (this.state.has(uri)) continue;
      this.state.set(uri, 'inspecting');
      inspect.push(uri);
    }
    return { inspect, stop };
  }

  /**
   * Records what inspecting a tab found. Returns true when the caller should start the disk check: the tab is
   * still open (it may have closed during the stat) and is not checked yet.
   */
  inspected(uri: string, diskCheck: boolean): boolean {
    if (this.state.get(uri) !== 'inspecting') return false;
    this.state.set(uri, diskCheck ? 'checking' : 'inspected');
    return diskCheck;
  }

  /**
   * The editor synced a document that was checked from disk (a big file that fits after all, opened late):
   * returns true when the caller should stop the disk check, since the server now has the live document.
   */
  synced(uri: string): boolean {
    if (this.state.get(uri) !== 'checking') return false;
    this.state.set(uri, 'inspected');
    return true;
  }

  /**
   * The editor closed a document whose tab may stay open (VS Code can unload a document behind a tab, and a
   * change of language closes and reopens it): returns true when the caller should inspect that tab again now.
   */
  unsynced(uri: string): boolean {
    if (this.state.get(uri) !== 'inspected') return false;
    this.state.set(uri, 'inspecting');
    return true;
  }

  /** Every file the server should be checking from disk: re-sent to a freshly started server. */
  checking(): string[] {
    return [...this.state].filter(([, state]) => state === 'checking').map(([uri]) => uri);
  }
}
