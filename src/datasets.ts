import * as vscode from 'vscode';
import { DatasetClientError } from './errors';
import { baseName } from './format';
import { isDatasetPath } from './datasetFiles';

/**
 * Where the open datasets are: documents VS Code syncs, and tabs that show files too large to be synced (those
 * have a tab but no `TextDocument` and no `TextEditor`).
 */

/** The `jsonl` language, or a file named `*.jsonl` / `*.ndjson` whatever language the user picked for it. */
export function isDatasetDocument(document: vscode.TextDocument): boolean {
  return (
    (document.uri.scheme === 'file' || document.uri.scheme === 'untitled') &&
    (document.languageId === 'jsonl' || isDatasetPath(document.uri.path))
  );
}

/** The dataset a tab shows, if it is a plain text tab on a `.jsonl`/`.ndjson` file. */
export function tabDatasetUri(tab: vscode.Tab | undefined): vscode.Uri | undefined {
  const input = tab?.input;
  return input instanceof vscode.TabInputText && input.uri.scheme === 'file' && isDatasetPath(input.uri.path)
    ? input.uri
    : undefined;
}

/** The dataset in front of the user: the active editor's document, or the active tab (a big file has no editor). */
export function activeDatasetUri(): vscode.Uri | undefined {
  const document = vscode.window.activeTextEditor?.document;
  if (document !== undefined && isDatasetDocument(document)) return document.uri;
  return tabDatasetUri(vscode.window.tabGroups.activeTabGroup.activeTab);
}

/** Every dataset file open in a tab, once each (a file shown in two groups has two tabs). */
export function datasetTabUris(): vscode.Uri[] {
  const byKey = new Map<string, vscode.Uri>();
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) {
      const uri = tabDatasetUri(tab);
      if (uri !== undefined) byKey.set(uri.toString(), uri);
    }
  }
  return [...byKey.values()];
}

/** Every open dataset: synced documents first, then tabs of files too large to sync. */
export function openDatasetUris(): vscode.Uri[] {
  const byKey = new Map<string, vscode.Uri>();
  for (const document of vscode.workspace.textDocuments) {
    if (isDatasetDocument(document)) byKey.set(document.uri.toString(), document.uri);
  }
  for (const uri of datasetTabUris()) byKey.set(uri.toString(), uri);
  return [...byKey.values()];
}

/** Whether VS Code syncs this document to extensions (and so to the language server). */
export function isSynced(uri: vscode.Uri): boolean {
  const key = uri.toString();
  return vscode.workspace.textDocuments.some((document) => document.uri.toString() === key);
}

/**
 * The dataset a command works on: the one given (a menu or the status bar passes it), else the active one,
 * else the only open one, else the one the user picks. Rejects with reason `no-dataset` when none is open and
 * resolves undefined when the user dismisses the pick.
 */
export async function chooseDataset(given: unknown, placeHolder: string): Promise<vscode.Uri | undefined> {
  if (given instanceof vscode.Uri) return given;
  const active = activeDatasetUri();
  if (active !== undefined) return active;
  const open = openDatasetUris();
  if (open.length === 0) {
    throw new DatasetClientError('no-dataset', vscode.l10n.t('Open a .jsonl dataset first.'));
  }
  if (open.length === 1) return open[0];
  const picked = await vscode.window.showQuickPick(
    open.map((uri) => ({ label: baseName(uri.toString()), description: vscode.workspace.asRelativePath(uri), uri })),
    { placeHolder },
  );
  return picked?.uri;
}

/** The uri string VS Code produces for a document, whatever encoding the server used in a notification. */
export function statusKey(uri: string): string {
  try {
    return vscode.Uri.parse(uri, true).toString();
  } catch {
    return uri;
  }
}
