import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { DatasetStatus } from '../common/lspProtocol';
import type { Config } from './config';
import type { DatasetClient } from './datasetClient';
import { describeError } from './errors';
import { baseName } from './format';
import { renderMessageHtml, renderStatisticsHtml, type StatisticsPage } from './statisticsHtml';
import { statusKey } from './datasets';

/** What the statistics panels need from the extension. */
export interface StatisticsPanelsDeps {
  extensionUri: vscode.Uri;
  client: DatasetClient;
  config: Config;
  log: vscode.LogOutputChannel;
}

/** While tokens are being counted, statuses arrive often; the panel asks for full statistics at most this often. */
const MIN_REFRESH_INTERVAL_MS = 1000;

/**
 * The "Dataset Statistics" panels: one per dataset, reused when asked again, refreshed when the server reports
 * a new status for that dataset (while visible; a hidden panel catches up when shown). The page is static HTML
 * built by `renderStatisticsHtml`.
 */
export class StatisticsPanels implements vscode.Disposable {
  static readonly viewType = 'finetune.datasetStatistics';

  private readonly panels = new Map<string, StatisticsPanel>();
  private readonly scope: vscode.Disposable;

  constructor(private readonly deps: StatisticsPanelsDeps) {
    this.scope = vscode.Disposable.from(
      deps.client.onDidChangeStatus((status) => this.panels.get(statusKey(status.uri))?.statusChanged(status)),
      deps.config.onDidChangeDataset(() => {
        for (const panel of this.panels.values()) panel.scheduleRefresh();
      }),
    );
  }

  /** Shows the statistics of a dataset, creating its panel or revealing the one there is. */
  show(uri: vscode.Uri): void {
    const key = uri.toString();
    const existing = this.panels.get(key);
    if (existing !== undefined) {
      existing.reveal();
      existing.scheduleRefresh();
      return;
    }
    const webviewPanel = vscode.window.createWebviewPanel(
      StatisticsPanels.viewType,
      vscode.l10n.t('Statistics: {0}', baseName(key)),
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
      {
        enableScripts: false,
        enableFindWidget: true,
        localResourceRoots: [vscode.Uri.joinPath(this.deps.extensionUri, 'media')],
      },
    );
    const panel = new StatisticsPanel(uri, webviewPanel, this.deps);
    this.panels.set(key, panel);
    webviewPanel.onDidDispose(() => {
      this.panels.delete(key);
      panel.dispose();
    });
    panel.scheduleRefresh();
  }

  dispose(): void {
    this.scope.dispose();
    for (const panel of [...this.panels.values()]) panel.close();
  }
}

/** One dataset's panel: asks the server for statistics and renders them, one request at a time. */
class StatisticsPanel {
  private latestStatus: DatasetStatus | undefined;
  private inFlight = false;
  /** Something changed while a request was out or the panel was hidden: refresh again when possible. */
  private stale = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private disposed = false;
  private readonly viewState: vscode.Disposable;

  constructor(
    private readonly uri: vscode.Uri,
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: StatisticsPanelsDeps,
  ) {
    this.render(renderMessageHtml(baseName(uri.toString()), vscode.l10n.t('Checking the dataset…'), this.page()));
    this.viewState = panel.onDidChangeViewState(() => {
      if (panel.visible && this.stale) this.scheduleRefresh();
    });
  }

  reveal(): void {
    this.panel.reveal(undefined, false);
  }

  statusChanged(status: DatasetStatus): void {
    this.latestStatus = status;
    this.scheduleRefresh();
  }

  /** Refreshes soon: at once if the last refresh is old enough, else when it is; never two requests at a time. */
  scheduleRefresh(): void {
    this.stale = true;
    if (this.disposed || this.timer !== undefined || this.inFlight || !this.panel.visible) return;
    const wait = Math.max(0, this.lastRefresh + MIN_REFRESH_INTERVAL_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, wait);
  }

  private async refresh(): Promise<void> {
    if (this.disposed) return;
    this.inFlight = true;
    this.stale = false;
    this.lastRefresh = Date.now();
    const name = baseName(this.uri.toString());
    try {
      const stats = await this.deps.client.statistics(this.uri);
      if (this.disposed) return;
      if (stats === null) {
        this.render(
          renderMessageHtml(
            name,
            vscode.l10n.t('The language server has no statistics for this file yet. They appear here as soon as its check is done.'),
            this.page(),
          ),
        );
      } else {
        const options = { countTokens: this.deps.config.countTokens, counting: this.latestStatus?.counting };
        this.render(renderStatisticsHtml(stats, this.page(), options));
      }
    } catch (error) {
      this.deps.log.error(`Dataset statistics for ${this.uri.toString()}: ${describeError(error)}`);
      if (!this.disposed) this.render(renderMessageHtml(name, vscode.l10n.t('No statistics: {0}', describeError(error)), this.page()));
    } finally {
      this.inFlight = false;
    }
    if (this.stale) this.scheduleRefresh();
  }

  private page(): StatisticsPage {
    const webview = this.panel.webview;
    return {
      cspSource: webview.cspSource,
      nonce: randomBytes(16).toString('base64'),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(this.deps.extensionUri, 'media', 'statistics.css')).toString(),
    };
  }

  private render(html: string): void {
    if (!this.disposed) this.panel.webview.html = html;
  }

  /** Closes the panel (extension shutdown); `onDidDispose` then calls `dispose`. */
  close(): void {
    this.panel.dispose();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.viewState.dispose();
  }
}
