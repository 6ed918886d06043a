// The status-bar item of the run in progress: the most recently started running job among the connected
// backends, `$(sync~spin) my-run 12/96 · loss 1.23`; a click reveals the run in the sidebar. Hidden when none runs.
import * as vscode from 'vscode';
import type { RunsModel } from './runsModel';
import { runLabel, runStatusText } from './runsText';
import { StatusBarEntry, type StatusItemView } from './statusBarEntry';

/** What the extension's API exposes of the item (VS Code offers no way to read another's items). */
export type RunStatusBarView = StatusItemView;

/** The item (see the file comment). */
export class RunStatusBar extends StatusBarEntry implements RunStatusBarView {
  private readonly stopListening: () => void;

  constructor(private readonly model: RunsModel) {
    super('finetune.runStatus', vscode.l10n.t('Finetune Studio: Training Run'), -1);
    this.stopListening = model.onChange(() => this.render());
    this.render();
  }

  /** Renders only what changed: the model changes at every step of every run, most of them not this item's. */
  private render(): void {
    const run = this.model.currentRun();
    if (!run) {
      if (this.visible) this.hide();
      return;
    }
    const text = runStatusText(run);
    if (this.visible && text === this.text) return;
    this.show({
      text,
      tooltip: vscode.l10n.t('Training run {0} on {1}: click to show it', runLabel(run.job), run.backend),
      command: { title: vscode.l10n.t('Show Run'), command: 'finetune.showRun', arguments: [{ backend: run.backend, jobId: run.job.id }] },
      accessibilityLabel: text.replace(/\$\([\w~-]+\)\s*/g, ''),
    });
  }

  override dispose(): void {
    this.stopListening();
    super.dispose();
  }
}
