// Notifications when a watched run finishes: once per job (the model reports each job once, never for runs first
// seen final, never again after a reconnect), with the reason when it failed and the actions that help.
import * as vscode from 'vscode';
import type { FineTuningJob } from '../common/api';
import type { RunFinished, RunsModel } from './runsModel';
import { finishedMessage } from './runsText';

/** A notification as shown, for the extension's API (VS Code has no API to read notifications). */
export interface ShownNotification {
  backend: string;
  jobId: string;
  status: FineTuningJob['status'];
  message: string;
}

/** What the notifications need from the extension. */
export interface RunNotificationsDeps {
  model: RunsModel;
  log: vscode.LogOutputChannel;
  showRun(backend: string, jobId: string): Promise<void>;
}

/** The notifier (see the file comment). */
export class RunNotifications implements vscode.Disposable {
  private readonly shownEmitter = new vscode.EventEmitter<ShownNotification>();
  /** Fires for every notification shown. */
  readonly onDidShow = this.shownEmitter.event;
  /** Every notification shown so far, in order. */
  readonly shown: ShownNotification[] = [];
  private readonly stopListening: () => void;

  constructor(private readonly deps: RunNotificationsDeps) {
    this.stopListening = deps.model.onFinished((finished) => this.notify(finished));
  }

  private notify({ run, status }: RunFinished): void {
    const message = finishedMessage(run.job);
    const showRun = vscode.l10n.t('Show Run');
    const showLogs = vscode.l10n.t('Show Logs');
    const reveal = (action: string | undefined): void => {
      if (action === showRun) void this.deps.showRun(run.backend, run.job.id);
      if (action === showLogs) this.deps.log.show(true);
    };
    if (status === 'failed') {
      this.deps.log.error(`${run.backend}: ${message}`);
      void vscode.window.showErrorMessage(message, showRun, showLogs).then(reveal);
    } else {
      this.deps.log.info(`${run.backend}: ${message}`);
      void vscode.window.showInformationMessage(message, showRun).then(reveal);
    }
    const record: ShownNotification = { backend: run.backend, jobId: run.job.id, status, message };
    this.shown.push(record);
    this.shownEmitter.fire(record);
  }

  dispose(): void {
    this.stopListening();
    this.shownEmitter.dispose();
  }
}
