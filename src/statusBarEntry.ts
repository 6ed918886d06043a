// The plumbing both of our status-bar items share (the dataset's, src/statusBar.ts, and the run's,
// src/runStatusBar.ts): one VS Code item, shown with text, tooltip, command and an accessible label or hidden, and
// an event after every change, because VS Code offers no way to read another extension's items and the in-host
// tests wait on what users see.
import * as vscode from 'vscode';

/** What the extension's API exposes of one of its status-bar items. */
export interface StatusItemView {
  /** The item's text as the user sees it (kept while hidden). */
  readonly text: string;
  /** Whether the item is shown. */
  readonly visible: boolean;
  /** Fires after every show and hide. */
  readonly onDidChange: vscode.Event<void>;
}

/** What a shown item holds. */
export interface StatusItemContent {
  text: string;
  tooltip: string | vscode.MarkdownString;
  command: vscode.Command;
  /** What a screen reader says: the text without its icons. */
  accessibilityLabel: string;
}

/** The base of our status-bar items (see the file comment); subclasses decide what to show, and when. */
export abstract class StatusBarEntry implements vscode.Disposable, StatusItemView {
  private readonly item: vscode.StatusBarItem;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private shown = false;

  constructor(id: string, name: string, priority: number) {
    this.item = vscode.window.createStatusBarItem(id, vscode.StatusBarAlignment.Left, priority);
    this.item.name = name;
  }

  get text(): string {
    return this.item.text;
  }

  get visible(): boolean {
    return this.shown;
  }

  /** Shows the item with this content, and tells the listeners. */
  protected show(content: StatusItemContent): void {
    this.item.text = content.text;
    this.item.tooltip = content.tooltip;
    this.item.command = content.command;
    this.item.accessibilityInformation = { label: content.accessibilityLabel };
    this.item.show();
    this.shown = true;
    this.changed.fire();
  }

  /** Hides the item, and tells the listeners. */
  protected hide(): void {
    this.item.hide();
    this.shown = false;
    this.changed.fire();
  }

  dispose(): void {
    this.changed.dispose();
    this.item.dispose();
  }
}
