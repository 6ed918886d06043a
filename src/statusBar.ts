import * as vscode from 'vscode';
import type { DatasetStatus } from '../common/lspProtocol';
import type { Config } from './config';
import type { DatasetClient } from './datasetClient';
import { activeDatasetUri, statusKey } from './datasets';
import { StatusBarEntry, type StatusItemView } from './statusBarEntry';
import { statusLabel, statusText, statusTooltip } from './statusText';

/** What the extension's API exposes of its status-bar item (VS Code offers no way to read another's items). */
export type StatusBarView = StatusItemView;

/**
 * The status-bar item for the dataset in front of the user: examples, errors, warnings and tokens, from the
 * server's `dataset/status` notifications (no polling). Hidden unless the active editor or tab is a dataset the
 * server has reported on; a click opens that dataset's statistics.
 */
export class DatasetStatusBar extends StatusBarEntry implements StatusBarView {
  /** The latest status per dataset, keyed by normalised uri string. */
  private readonly statuses = new Map<string, DatasetStatus>();
  private readonly scope: vscode.Disposable;

  constructor(
    client: DatasetClient,
    private readonly config: Config,
  ) {
    super('finetune.datasetStatus', vscode.l10n.t('Finetune Studio: Dataset'), 0);
    this.scope = vscode.Disposable.from(
      client.onDidChangeStatus((status) => {
        const key = statusKey(status.uri);
        this.statuses.set(key, status);
        if (key === activeDatasetUri()?.toString()) this.render();
      }),
      // A stopped server's figures are stale; the next server reports afresh.
      client.onDidStop(() => {
        this.statuses.clear();
        this.render();
      }),
      // A closed document's figures would only go stale; the server reports again when it reopens.
      vscode.workspace.onDidCloseTextDocument((document) => this.statuses.delete(document.uri.toString())),
      vscode.window.onDidChangeActiveTextEditor(() => this.render()),
      // A file too large to sync has a tab but no editor: follow tabs too.
      vscode.window.tabGroups.onDidChangeTabs(() => this.render()),
      vscode.window.tabGroups.onDidChangeTabGroups(() => this.render()),
      config.onDidChangeDataset(() => this.render()),
    );
  }

  /** Renders at every call (and fires onDidChange), so that tests in the extension host can wait for what users see. */
  private render(): void {
    const uri = activeDatasetUri();
    const status = uri === undefined ? undefined : this.statuses.get(uri.toString());
    if (uri === undefined || status === undefined) {
      this.hide();
      return;
    }
    const options = { countTokens: this.config.countTokens };
    this.show({
      text: statusText(status, options),
      tooltip: new vscode.MarkdownString(statusTooltip(status, options), true),
      command: { title: vscode.l10n.t('Show Dataset Statistics'), command: 'finetune.showDatasetStatistics', arguments: [uri] },
      accessibilityLabel: statusLabel(status, options),
    });
  }

  override dispose(): void {
    this.scope.dispose();
    super.dispose();
  }
}
