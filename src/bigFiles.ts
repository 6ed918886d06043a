import * as vscode from 'vscode';
import type { DatasetClient } from './datasetClient';
import { datasetTabUris, isDatasetDocument, isSynced } from './datasets';
import { DiskCheckTracker, needsDiskCheck } from './datasetFiles';
import { describeError } from './errors';

/**
 * Datasets too large for VS Code to sync (over 50 × 2^20 UTF-16 units: no `didOpen`, no `didChange`) are still
 * checked: for each tab that shows one, the server is told `dataset/checkFromDisk` (once), and
 * `dataset/stopCheckFromDisk` when the file's last tab closes. The server tells the user why live checking is
 * off for that file; this class says nothing itself.
 */
export class BigFileWatcher implements vscode.Disposable {
  private readonly tracker = new DiskCheckTracker();
  private readonly scope: vscode.Disposable;

  constructor(
    private readonly client: DatasetClient,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.scope = vscode.Disposable.from(
      vscode.window.tabGroups.onDidChangeTabs(() => this.reconcile()),
      vscode.workspace.onDidOpenTextDocument((document) => {
        // A file just over the byte threshold may fit in 50 × 2^20 UTF-16 units after all (Chinese text takes
        // 3 bytes a unit): once VS Code syncs it, the live document is the better source.
        if (isDatasetDocument(document) && this.tracker.synced(document.uri.toString())) {
          this.log.info(`Checking ${document.uri.toString()} live again: the editor syncs it.`);
          client.stopCheckFromDisk(document.uri);
        }
      }),
      vscode.workspace.onDidCloseTextDocument((document) => {
        if (isDatasetDocument(document) && this.tracker.unsynced(document.uri.toString())) void this.inspect(document.uri);
      }),
      // A new server knows nothing: tell it every file it should check from disk.
      client.onDidStart(() => {
        for (const key of this.tracker.checking()) client.checkFromDisk(vscode.Uri.parse(key, true));
      }),
    );
    this.reconcile();
  }

  /** Compares the dataset tabs open now with what the server was told. */
  private reconcile(): void {
    const tabs = new Map(datasetTabUris().map((uri) => [uri.toString(), uri]));
    const { inspect, stop } = this.tracker.update(tabs.keys());
    for (const key of stop) this.client.stopCheckFromDisk(vscode.Uri.parse(key, true));
    for (const key of inspect) {
      const uri = tabs.get(key);
      if (uri !== undefined) void this.inspect(uri);
    }
  }

  /** Looks at one dataset tab: is it synced, and if not, is it too large to ever be? */
  private async inspect(uri: vscode.Uri): Promise<void> {
    let sizeBytes: number | undefined;
    try {
      sizeBytes = (await vscode.workspace.fs.stat(uri)).size;
    } catch (error) {
      this.log.debug(`Cannot stat ${uri.toString()}: ${describeError(error)}`);
    }
    // Looked up after the stat: VS Code often syncs a small file while the stat is out.
    const diskCheck = needsDiskCheck({ synced: isSynced(uri), sizeBytes });
    if (!this.tracker.inspected(uri.toString(), diskCheck)) return;
    this.log.info(`Checking ${uri.toString()} from disk (${sizeBytes} bytes): too large for the editor to sync.`);
    if (this.client.running) this.client.checkFromDisk(uri);
    // Otherwise the start below ends in onDidStart, which sends every disk check, this one included.
    else this.client.ensureStarted();
  }

  dispose(): void {
    this.scope.dispose();
  }
}
