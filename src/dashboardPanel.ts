// The run dashboard (issue 7): one webview panel per run (or per set of compared runs) with the run's header,
// live charts of every metric (webview/dashboard/), and its checkpoints with their samples. History comes from the
// backend (`eventsAfter`), what follows from the sidebar's live stream (`RunsModel.onEvent`).
//
// SKELETON: the contract that Ctx, the commands and the other parts rely on; the dashboard's owner fills it in.
import * as vscode from 'vscode';
import type { BackendRegistry } from './backendRegistry';
import type { CommandFactory } from './commands';
import type { RunRef, RunsModel } from './runsModel';

/** What the dashboards need from the extension. */
export interface DashboardDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  backends: BackendRegistry;
  model: RunsModel;
}

/** What the extension's API exposes of the dashboards, for the in-host tests. */
export interface DashboardsApi {
  /** Opens (or reveals) the dashboard of these runs (one run, or several compared). */
  open(runs: readonly RunRef[]): Promise<void>;
}

/** Every dashboard panel of the window. */
export class DashboardPanels implements vscode.Disposable {
  static readonly viewType = 'finetune.dashboard';
  readonly api: DashboardsApi;

  constructor(readonly deps: DashboardDeps) {
    this.api = { open: (runs) => this.open(runs) };
  }

  /** Opens (or reveals) the dashboard of these runs. */
  async open(runs: readonly RunRef[]): Promise<void> {
    void runs;
    throw new Error('The run dashboard is not built yet.');
  }

  dispose(): void {}
}

/** The dashboard's commands, by id (merged into commands.ts's table). */
export const dashboardCommandFactories: Readonly<Record<string, CommandFactory>> = {};
