import * as vscode from 'vscode';
import { BigFileWatcher } from './bigFiles';
import { ChatPanels } from './chatPanel';
import { Config } from './config';
import { DatasetClient } from './datasetClient';
import { DashboardPanels } from './dashboardPanel';
import { DatasetClientError, describeError } from './errors';
import { NewRunPanels } from './newRunPanel';
import { StatisticsPanels } from './statistics';
import { DatasetStatusBar } from './statusBar';
import { Training } from './training';
import { VisibleRangesReporter } from './visibleRanges';

/** The name of the one output channel: the extension's log and the language client's. */
export const LOG_CHANNEL_NAME = 'Finetune Studio';

/**
 * Everything the extension holds, built once in `activate` and handed to every command factory. Its own
 * lifetime is the extension's (`pushExtCleanup`); what lives only as long as one server connection is scoped
 * inside `DatasetClient`.
 */
export class Ctx {
  readonly log: vscode.LogOutputChannel;
  readonly config: Config;
  readonly client: DatasetClient;
  readonly statistics: StatisticsPanels;
  readonly statusBar: DatasetStatusBar;
  /** Backends, runs tree, run status bar (issue 6); connects lazily, when the view is shown or a command needs it. */
  readonly training: Training;
  /** The "New Training Run" form panels. */
  readonly newRun: NewRunPanels;
  /** The run dashboards (charts, checkpoints with samples, compared runs). */
  readonly dashboards: DashboardPanels;
  /** The "Test Checkpoint" chat panels. */
  readonly chat: ChatPanels;

  constructor(readonly extension: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel(LOG_CHANNEL_NAME, { log: true });
    this.pushExtCleanup(this.log);
    this.config = new Config();
    this.pushExtCleanup(this.config);
    this.client = new DatasetClient({
      extension,
      log: this.log,
      config: this.config,
      showFailure: (message) => this.showError(message),
    });
    this.pushExtCleanup(this.client);
    this.statistics = new StatisticsPanels({
      extensionUri: extension.extensionUri,
      client: this.client,
      config: this.config,
      log: this.log,
    });
    this.statusBar = new DatasetStatusBar(this.client, this.config);
    this.pushExtCleanup(
      this.statistics,
      this.statusBar,
      new VisibleRangesReporter(this.client),
      new BigFileWatcher(this.client, this.log),
    );
    this.training = new Training({ extension, log: this.log, config: this.config, showError: (message) => this.showError(message) });
    this.newRun = new NewRunPanels({ extension, log: this.log, backends: this.training.backends, datasets: this.client });
    this.dashboards = new DashboardPanels({ extension, log: this.log, backends: this.training.backends, model: this.training.model });
    this.chat = new ChatPanels({ extension, log: this.log, backends: this.training.backends, model: this.training.model });
    this.pushExtCleanup(this.training, this.newRun, this.dashboards, this.chat);
  }

  /** Ties disposables to the extension's lifetime (released on deactivation, in reverse order by VS Code). */
  pushExtCleanup(...disposables: vscode.Disposable[]): void {
    this.extension.subscriptions.push(...disposables);
  }

  /**
   * Reports a command's failure to the user, once, at the command boundary: a missing dataset is a hint, any
   * other error a message with "Show Logs". The detail goes to the log.
   */
  reportError(command: string, error: unknown): void {
    if (DatasetClientError.is(error) && error.reason === 'no-dataset') {
      void vscode.window.showInformationMessage(error.message);
      return;
    }
    this.log.error(`${command}: ${describeError(error)}`);
    if (error instanceof Error && error.cause !== undefined) this.log.error(`  caused by: ${describeError(error.cause)}`);
    this.showError(describeError(error));
  }

  /** An error message with the one action that helps: the logs. */
  showError(message: string): void {
    const showLogs = vscode.l10n.t('Show Logs');
    void vscode.window.showErrorMessage(vscode.l10n.t('Finetune Studio: {0}', message), showLogs).then((action) => {
      if (action === showLogs) this.log.show(true);
    });
  }
}
