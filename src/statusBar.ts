import * as vscode from 'vscode';
import type { DatasetStatus } from '../common/lspProtocol';
import type { Config } from './config';
import type { DatasetClient } from './datasetClient';
import { activeDatasetUri, statusKey } from './datasets';
import { statusLabel, statusText, statusTooltip } from './statusText';

/** What the extension's API exposes of its status-bar item (VS Code offers no way to read another's items). */
export interface StatusBarView {
  readonly text: string;
  readonly visible: boolean;
  readonly onDidChange: vscode.Event<void>;
}

/**
 * The status-bar item for the dataset in front of the user: examples, errors, warnings and tokens, from the
 * server's `dataset/status` notifications (no polling). Hidden unless the active editor or tab is a dataset the
 * server has reported on; a click opens that dataset's statistics.
 */
export class DatasetStatusBar implements vscode.Disposable, StatusBarView {
  private readonly item: vscode.StatusBarItem;
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires after every render, so that tests in the extension host can wait for what users see. */
  readonly onDidChange = this.changed.event;
  private shown = false;
  /** The latest status per dataset, keyed by normalised uri string. */
  private readonly statuses = new Map<string, DatasetStatus>();
  private readonly scope: vscode.Disposable;

  constructor(
    client: DatasetClient,
    private readonly config: Config,
  ) {
    this.item = vscode.window.createStatusBarItem('finetune.datasetStatus', vscode.StatusBarAlignment.Left, 0);
    this.item.name = vscode.l10n.t('Finetune Studio: Dataset');
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

  private render(): void {
    const uri = activeDatasetUri();
    const status = uri === undefined ? undefined : this.statuses.get(uri.toString());
    if (uri === undefined || status === undefined) {
      this.item.hide();
      this.shown = false;
      this.changed.fire();
      return;
    }
    const options = { countTokens: this.config.countTokens };
    this.item.text = statusText(status, options);
    this.item.tooltip = new vscode.MarkdownString(statusTooltip(status, options), true);
    this.item.command = {
      title: vscode.l10n.t('Show Dataset Statistics'),
      command: 'finetune.showDatasetStatistics',
      arguments: [uri],
    };
    this.item.accessibilityInformation = { label: statusLabel(status, options) };
    this.item.show();
    this.shown = true;
    this.changed.fire();
  }

  /** The item's text as the user sees it. */
  get text(): string {
    return this.item.text;
  }

  /** Whether the item is shown. */
  get visible(): boolean {
    return this.shown;
  }

  dispose(): void {
    this.scope.dispose();
    this.changed.dispose();
    this.item.dispose();
  }
}
