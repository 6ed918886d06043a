import * as vscode from 'vscode';
import { chatCommandFactories } from './chatPanel';
import type { Ctx } from './ctx';
import { dashboardCommandFactories } from './dashboardPanel';
import { chooseDataset, isSynced } from './datasets';
import { DatasetClientError } from './errors';
import { baseName, convertSummary } from './format';
import { newRunCommandFactories } from './newRunPanel';
import { trainingCommandFactories } from './training';

/** A command's handler, made from the context once at activation. */
export type CommandFactory = (ctx: Ctx) => (...args: unknown[]) => unknown;

/**
 * Every command the extension contributes (package.json's `contributes.commands`), by id. Each factory returns
 * a short handler that calls a service; failures are reported once, at the boundary, by `registerCommands`.
 */
export const commandFactories: Readonly<Record<string, CommandFactory>> = {
  'finetune.showDatasetStatistics': (ctx) => async (uri?: unknown) => {
    const target = await chooseDataset(uri, vscode.l10n.t('Which dataset?'));
    if (target !== undefined) ctx.statistics.show(target);
  },

  'finetune.convertDataset': (ctx) => async (uri?: unknown) => {
    const target = await chooseDataset(uri, vscode.l10n.t('Convert which dataset?'));
    if (target === undefined) return;
    // The server edits the open document through workspace/applyEdit: a file VS Code does not sync has none.
    if (!isSynced(target)) {
      throw new DatasetClientError(
        'too-large',
        vscode.l10n.t(
          '{0} is too large for VS Code to share with extensions, so it cannot be converted in the editor.',
          baseName(target.toString()),
        ),
      );
    }
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: vscode.l10n.t('Converting {0}…', baseName(target.toString())) },
      () => ctx.client.convert(target),
    );
    void vscode.window.showInformationMessage(convertSummary(result));
  },

  'finetune.restartLanguageServer': (ctx) => async () => {
    await ctx.client.restart();
    ctx.log.info('Dataset language server restarted.');
  },

  'finetune.showLogs': (ctx) => () => ctx.log.show(),

  // The training workflow's commands live beside their services.
  ...trainingCommandFactories,
  ...newRunCommandFactories,
  ...dashboardCommandFactories,
  ...chatCommandFactories,
};

/** Registers every command for the extension's lifetime, each behind one error boundary. */
export function registerCommands(ctx: Ctx): void {
  for (const [id, factory] of Object.entries(commandFactories)) {
    const handler = factory(ctx);
    ctx.pushExtCleanup(
      vscode.commands.registerCommand(id, async (...args: unknown[]) => {
        try {
          await handler(...args);
        } catch (error) {
          ctx.reportError(id, error);
        }
      }),
    );
  }
}
