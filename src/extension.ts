import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { Ctx } from './ctx';
import { useTranslator } from './l10n';
import type { ChatApi } from './chatPanel';
import type { DashboardsApi } from './dashboardPanel';
import type { StatusBarView } from './statusBar';
import type { TrainingApi } from './training';

/** What `activate` returns to other extensions and to the in-host tests. */
export interface FinetuneApi {
  readonly statusBar: StatusBarView;
  /** Backends, the runs model and tree, the run status-bar item, the notifications shown. */
  readonly training: TrainingApi;
  /** The run dashboards. */
  readonly dashboards: DashboardsApi;
  /** The "Test Checkpoint" chat panels. */
  readonly chat: ChatApi;
}

let ctx: Ctx | undefined;

/**
 * Activation builds the context and registers the commands; it starts no process. The language server starts
 * when the first dataset opens.
 */
export function activate(context: vscode.ExtensionContext): FinetuneApi {
  // The pure modules (status-bar text, statistics HTML) translate through this from now on.
  useTranslator(vscode.l10n, vscode.env.language);
  ctx = new Ctx(context);
  registerCommands(ctx);
  ctx.client.startWhenDatasetOpens();
  return { statusBar: ctx.statusBar, training: ctx.training.api, dashboards: ctx.dashboards.api, chat: ctx.chat.api };
}

/** Stops the language server cleanly; VS Code waits for the returned promise, then disposes the rest. */
export async function deactivate(): Promise<void> {
  await Promise.all([ctx?.client.stop(), ctx?.training.stop()]);
  ctx = undefined;
}
