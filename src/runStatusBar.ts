// The status-bar item of the run in progress: the most recently started running job among the connected
// backends, `$(sync~spin) my-run 12/96 · loss 1.23`; a click reveals the run in the sidebar. Hidden when none runs.
import * as vscode from 'vscode';
import type { RunsModel } from './runsModel';
import { runLabel, runStatusText } from './runsText';

/** What the extension's API exposes of the item (VS Code offers no way to read another's items). */
export interface RunStatusBarView {
  readonly text: string;
  readonly visible: boolean;
  /** Fires after every render. */
  readonly onDidChange: vscode.Event<void>;
}

/** The item (see the file comment). */
export class RunStatusBar implements vscode.Disposable, RunStatusBarView {
  private readonly item: vscode.StatusBarItem;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private shown = false;
  private readonly stopListening: () => void;

  constructor(private readonly model: RunsModel) {
    this.item = vscode.window.createStatusBarItem('finetune.runStatus', vscode.StatusBarAlignment.Left, -1);
    this.item.name = vscode.l10n.t('Finetune Studio: Training Run');
    this.stopListening = model.onChange(() => this.render());
    this.render();
  }

  private render(): void {
    const run = this.model.currentRun();
    if (!run) {
      if (this.shown) {
        this.item.hide();
        this.shown = false;
        this.changed.fire();
      }
      return;
    }
    const text = runStatusText(run);
    if (this.shown && text === this.item.text) return;
    this.item.text = text;
    this.item.tooltip = vscode.l10n.t('Training run {0} on {1}: click to show it', runLabel(run.job), run.backend);
    this.item.command = { title: vscode.l10n.t('Show Run'), command: 'finetune.showRun', arguments: [{ backend: run.backend, jobId: run.job.id }] };
    this.item.accessibilityInformation = { label: text.replace(/\$\([\w~-]+\)\s*/g, '') };
    this.item.show();
    this.shown = true;
    this.changed.fire();
  }

  get text(): string {
    return this.item.text;
  }

  get visible(): boolean {
    return this.shown;
  }

  dispose(): void {
    this.stopListening();
    this.changed.dispose();
    this.item.dispose();
  }
}
