// "Test Checkpoint" from the command palette: a quick pick of backends → runs → checkpoints, newest first. The
// backend step is skipped when there is one (BackendRegistry.pick); the run step shows each run's status and base
// model; the checkpoint step shows step and metrics, the run's final model when it succeeded, and the backend's
// saved adapters of that run. The items come from chatModel.ts (pure, unit-tested).
import * as vscode from 'vscode';
import type { FineTuningJob, SavedAdapter } from '../common/api';
import type { BackendClient } from './backendClient';
import type { BackendRegistry } from './backendRegistry';
import type { ChatTargetRef } from './chatPanel';
import { checkpointPickItems, runPickItems, type PickItem } from './chatModel';

/** What the quick pick needs. */
export interface PickDeps {
  backends: BackendRegistry;
  log: vscode.LogOutputChannel;
}

/** The most runs the run step lists (newest first). */
const MAX_RUNS = 200;

/**
 * Shows one step of the quick pick: busy while its items load, then the items; resolves with the chosen value,
 * or undefined when the user dismissed it. A failed load is shown in the pick and rethrown.
 */
async function pickStep<T>(title: string, placeHolder: string, load: () => Promise<PickItem<T>[]>, empty: string): Promise<T | undefined> {
  type Item = vscode.QuickPickItem & { value?: T };
  const pick = vscode.window.createQuickPick<Item>();
  pick.title = title;
  pick.placeholder = placeHolder;
  pick.matchOnDescription = true;
  pick.matchOnDetail = true;
  pick.busy = true;
  pick.enabled = true;
  const chosen = new Promise<T | undefined>((resolve) => {
    pick.onDidAccept(() => {
      const value = pick.selectedItems[0]?.value;
      if (value !== undefined) resolve(value);
      pick.hide();
    });
    pick.onDidHide(() => resolve(undefined));
  });
  pick.show();
  try {
    const items = await load();
    pick.items = items.length > 0 ? items.map((i) => ({ label: i.label, description: i.description, detail: i.detail, value: i.value })) : [{ label: empty }];
    pick.busy = false;
    return await chosen;
  } catch (error) {
    pick.hide();
    throw error;
  } finally {
    pick.dispose();
  }
}

/** The saved adapters of a backend; none from a backend that keeps no list (an older one, or a plain OpenAI one). */
async function savedAdapters(client: BackendClient, log: vscode.LogOutputChannel): Promise<SavedAdapter[]> {
  try {
    return await client.listAdapters();
  } catch (error) {
    log.warn(`Test Checkpoint: the saved adapters: ${String(error)}`);
    return [];
  }
}

/** Walks backends → runs → checkpoints; undefined when the user dismissed a step. */
export async function pickChatTarget(deps: PickDeps): Promise<ChatTargetRef | undefined> {
  const title = vscode.l10n.t('Test Checkpoint');
  const entry = await deps.backends.pick(vscode.l10n.t('Test a checkpoint of which backend?'));
  if (entry === undefined) return undefined;
  const client = await deps.backends.client(entry.name);
  const job = await pickStep<FineTuningJob>(
    title,
    vscode.l10n.t('Which run? (newest first)'),
    async () => {
      const jobs: FineTuningJob[] = [];
      for await (const job of client.allJobs(100)) {
        jobs.push(job);
        if (jobs.length >= MAX_RUNS) break;
      }
      return runPickItems(jobs);
    },
    vscode.l10n.t('No runs on this backend yet.'),
  );
  if (job === undefined) return undefined;
  const target = await pickStep(
    title,
    vscode.l10n.t('Which checkpoint of {0}? (newest first)', job.suffix ?? job.id),
    async () => {
      const [checkpoints, adapters] = await Promise.all([client.listCheckpoints(job.id, { limit: 100 }), savedAdapters(client, deps.log)]);
      return checkpointPickItems(entry.name, job, checkpoints.data, adapters);
    },
    vscode.l10n.t('This run has no checkpoints yet.'),
  );
  if (target === undefined) return undefined;
  const ref: ChatTargetRef = { backend: target.backend, model: target.model };
  if (target.jobId !== undefined) ref.jobId = target.jobId;
  if (target.checkpointId !== undefined) ref.checkpointId = target.checkpointId;
  return ref;
}
