import * as vscode from 'vscode';
import type { DatasetClient } from './datasetClient';
import { isDatasetDocument } from './datasets';
import { mergeLineRanges, sameLineRanges, type LineRange } from './lineRanges';

/** Scrolling fires many events a second; the server only needs to know where the user settled. */
const DEBOUNCE_MS = 100;

/**
 * Tells the server which lines of each dataset the user sees (`dataset/visibleRanges`), so that background token
 * counting does those first and the hover and too-long warnings there are ready soonest.
 */
export class VisibleRangesReporter implements vscode.Disposable {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** What the current server was last told, per document, so that an unchanged view is not sent again. */
  private readonly sent = new Map<string, LineRange[]>();
  private readonly scope: vscode.Disposable;

  constructor(private readonly client: DatasetClient) {
    this.scope = vscode.Disposable.from(
      vscode.window.onDidChangeTextEditorVisibleRanges((event) => this.schedule(event.textEditor.document)),
      vscode.window.onDidChangeVisibleTextEditors((editors) => {
        for (const editor of editors) this.schedule(editor.document);
      }),
      vscode.workspace.onDidCloseTextDocument((document) => this.forget(document.uri.toString())),
      client.onDidStart(() => {
        this.sent.clear();
        for (const editor of vscode.window.visibleTextEditors) this.schedule(editor.document);
      }),
      client.onDidStop(() => this.sent.clear()),
    );
  }

  private schedule(document: vscode.TextDocument): void {
    if (!isDatasetDocument(document)) return;
    const key = document.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.send(document.uri);
      }, DEBOUNCE_MS),
    );
  }

  private send(uri: vscode.Uri): void {
    if (!this.client.running) return;
    const key = uri.toString();
    // Every editor on this document (a split view shows two parts of it): one merged list.
    const ranges = mergeLineRanges(
      vscode.window.visibleTextEditors
        .filter((editor) => editor.document.uri.toString() === key)
        .flatMap((editor) => editor.visibleRanges.map((range) => ({ start: range.start.line, end: range.end.line + 1 }))),
    );
    const previous = this.sent.get(key);
    if (ranges.length === 0 || (previous !== undefined && sameLineRanges(previous, ranges))) return;
    this.sent.set(key, ranges);
    this.client.visibleRanges({ uri: key, ranges });
  }

  private forget(key: string): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    this.sent.delete(key);
  }

  dispose(): void {
    this.scope.dispose();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
