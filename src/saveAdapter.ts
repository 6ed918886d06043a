// "Save to Repository" (issue 7): downloads a checkpoint's files from its backend into
// `<repository>/<run-name>-step<N>/` with a model card and training_args.json, and "Set Repository" picks that
// folder. The save is built in a hidden sibling folder and renamed into place at the end, so a cancelled or failed
// save leaves nothing half-written, and an existing folder is only replaced when the user says so.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import * as vscode from 'vscode';
import type { FileObject, FineTuningJobCheckpoint, SaveAdapterRequest } from '../common/api';
import { BackendError } from './backendErrors';
import { adapterFolderName, modelCard, trainingArgs } from './modelCard';
import { formatBytes } from './runsText';
import { CheckpointNode } from './runsTree';
import type { Config } from './config';
import type { Training } from './training';

/** The setting that names the repository folder (package.json `contributes.configuration`). */

/** The repository's folder inside the first workspace folder when the setting is empty. */
export const DEFAULT_REPOSITORY = 'finetune-adapters';

/** Why a save did not happen. */
export type SaveErrorReason =
  /** The setting is empty and no folder is open, so there is nowhere to save. */
  | 'no-repository'
  /** The backend does not know the job or the checkpoint. */
  | 'not-found'
  /** The backend lists no files for the checkpoint. */
  | 'no-files';

/** A save that could not be done, with its reason. */
export class SaveError extends Error {
  override readonly name = 'SaveError';

  constructor(
    readonly reason: SaveErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static is(error: unknown): error is SaveError {
    return error instanceof SaveError;
  }
}

/** The checkpoint to save. */
export interface SaveTarget {
  backend: string;
  jobId: string;
  checkpointId: string;
}

/** The checkpoint a command was given: a checkpoint node of the tree, or `{ backend, jobId, checkpointId }`. */
export function saveTargetOf(arg: unknown): SaveTarget | undefined {
  if (arg instanceof CheckpointNode) return { backend: arg.backend, jobId: arg.jobId, checkpointId: arg.checkpoint.id };
  if (typeof arg !== 'object' || arg === null) return undefined;
  const { backend, jobId, checkpointId } = arg as Partial<Record<keyof SaveTarget, unknown>>;
  if (typeof backend === 'string' && typeof jobId === 'string' && typeof checkpointId === 'string') return { backend, jobId, checkpointId };
  return undefined;
}

/** Options a caller may pass second: `overwrite` answers the "replace it?" question without the modal. */
export interface SaveOptions {
  overwrite?: boolean;
}

/** The options argument of the command, when it is one. */
export function saveOptionsOf(arg: unknown): SaveOptions {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) return {};
  const overwrite = (arg as { overwrite?: unknown }).overwrite;
  return typeof overwrite === 'boolean' ? { overwrite } : {};
}

/**
 * The repository folder: the setting (absolute, `~/…`, or relative to the first workspace folder), else
 * `finetune-adapters/` in the first workspace folder; undefined when neither can be had.
 */
export function repositoryFolder(config: Config): string | undefined {
  const configured = config.repository;
  const workspace = vscode.workspace.workspaceFolders?.[0]?.uri;
  const base = workspace?.scheme === 'file' ? workspace.fsPath : undefined;
  if (configured === '') return base === undefined ? undefined : join(base, DEFAULT_REPOSITORY);
  if (configured === '~' || configured.startsWith('~/')) return join(homedir(), configured.slice(1));
  if (isAbsolute(configured)) return configured;
  return base === undefined ? undefined : resolve(base, configured);
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(
    () => true,
    () => false,
  );
}

/** The checkpoint, from the runs model when it has it, else from the backend. */
async function findCheckpoint(training: Training, target: SaveTarget): Promise<FineTuningJobCheckpoint> {
  const known = training.model.run(target.backend, target.jobId)?.checkpoints.find((c) => c.id === target.checkpointId);
  if (known) return known;
  const client = await training.backends.client(target.backend);
  let after: string | undefined;
  for (;;) {
    const page = await client.listCheckpoints(target.jobId, { after, limit: 100 });
    const found = page.data.find((c) => c.id === target.checkpointId);
    if (found) return found;
    const last = page.data.at(-1);
    if (!page.has_more || last === undefined) break;
    after = last.id;
  }
  throw new SaveError('not-found', vscode.l10n.t('{0} has no checkpoint {1}.', target.jobId, target.checkpointId));
}

/**
 * Saves a checkpoint into the repository; returns the folder, or undefined when the user cancelled, declined to
 * overwrite, or has no repository yet (each is told).
 */
export async function saveToRepository(training: Training, target: SaveTarget, options: SaveOptions = {}): Promise<string | undefined> {
  const repository = repositoryFolder(training.deps.config);
  if (repository === undefined) {
    const setRepository = vscode.l10n.t('Set Repository');
    const action = await vscode.window.showWarningMessage(
      vscode.l10n.t('There is no repository to save to: open a folder, or set one with "Finetune: Set Repository".'),
      setRepository,
    );
    if (action === setRepository) await vscode.commands.executeCommand('finetune.setRepository');
    return undefined;
  }
  const client = await training.backends.client(target.backend);
  const job = await client.getJob(target.jobId).catch((error: unknown) => {
    if (BackendError.is(error) && error.status === 404) throw new SaveError('not-found', vscode.l10n.t('{0} has no run {1}.', target.backend, target.jobId), { cause: error });
    throw error;
  });
  const checkpoint = await findCheckpoint(training, target);
  const files = await client.checkpointFiles(target.jobId, target.checkpointId);
  if (files.length === 0) throw new SaveError('no-files', vscode.l10n.t('The backend lists no files for checkpoint {0}.', target.checkpointId));
  // The dataset's name and size for the card; a file deleted since is named by its id only.
  const trainingFile: FileObject | undefined = await client.getFile(job.training_file).catch((error: unknown) => {
    if (BackendError.is(error) && error.status === 404) return undefined;
    throw error;
  });

  const name = adapterFolderName(job, checkpoint);
  const folder = join(repository, name);
  // Whether the user (or the caller) agreed to replace what is there: the backend's copy is replaced alike.
  let replacing = options.overwrite === true;
  if (await exists(folder)) {
    let overwrite = options.overwrite;
    if (overwrite === undefined) {
      const replace = vscode.l10n.t('Overwrite');
      const answer = await vscode.window.showWarningMessage(
        vscode.l10n.t('{0} exists already. Overwrite it?', folder),
        { modal: true, detail: vscode.l10n.t('The files in it are replaced by the checkpoint\'s.') },
        replace,
      );
      overwrite = answer === replace;
    }
    if (!overwrite) {
      void vscode.window.showInformationMessage(vscode.l10n.t('Not saved: {0} exists already.', folder));
      return undefined;
    }
    replacing = true;
  }

  await mkdir(repository, { recursive: true });
  const staging = join(repository, `.${name}.saving-${randomBytes(4).toString('hex')}`);
  await mkdir(staging);
  try {
    const saved = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: vscode.l10n.t('Saving {0}', name), cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        const cancelled = token.onCancellationRequested(() => abort.abort());
        try {
          const total = files.reduce((sum, f) => sum + f.bytes, 0);
          let done = 0;
          for (const file of files) {
            let before = 0;
            progress.report({ message: `${file.name} (${formatBytes(file.bytes)})` });
            await client.downloadCheckpointFile(target.jobId, target.checkpointId, file.name, join(staging, file.name), {
              signal: abort.signal,
              onProgress: ({ bytes }) => {
                if (total > 0) progress.report({ increment: ((bytes - before) / total) * 100 });
                before = bytes;
              },
            });
            done += before;
          }
          if (abort.signal.aborted) return false;
          const input = { job, checkpoint, trainingFile, files };
          await writeFile(join(staging, 'README.md'), modelCard(input, name));
          await writeFile(join(staging, 'training_args.json'), `${JSON.stringify(trainingArgs(input), null, 2)}\n`);
          training.deps.log.info(`Saved ${target.checkpointId} of ${target.jobId} (${formatBytes(done)}) to ${folder}.`);
          return true;
        } catch (error) {
          if (abort.signal.aborted) return false;
          throw error;
        } finally {
          cancelled.dispose();
        }
      },
    );
    if (!saved) {
      void vscode.window.showInformationMessage(vscode.l10n.t('Saving {0} was cancelled; nothing was written.', name));
      return undefined;
    }
    await replaceFolder(staging, folder);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }

  const registered = await registerWithBackend(training, target, { model: checkpoint.fine_tuned_model_checkpoint, name, location: folder, overwrite: replacing });
  const reveal = vscode.l10n.t('Reveal');
  const shown = registered
    ? vscode.window.showInformationMessage(vscode.l10n.t('Saved to {0}', folder), reveal)
    : vscode.window.showWarningMessage(vscode.l10n.t('Saved to {0}, but the backend could not keep a copy, so chat cannot use it by the name {1}. See the log for why.', folder, name), reveal);
  void shown.then(async (action) => {
    if (action === reveal) await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(folder));
  });
  return folder;
}

/**
 * Asks the backend to keep its own copy of the adapter under the folder's name, so that chat can use it by that
 * name later. The local save is done by then and stays whatever happens here: a failure is logged and reported
 * as false.
 */
async function registerWithBackend(training: Training, target: SaveTarget, request: SaveAdapterRequest): Promise<boolean> {
  try {
    const client = await training.backends.client(target.backend);
    const adapter = await client.saveAdapter(request);
    training.deps.log.info(`${target.backend} keeps ${request.model} as adapter ${adapter.id} ('${adapter.name}').`);
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    training.deps.log.warn(`${target.backend} did not keep a copy of ${request.model} as '${request.name}': ${why}`);
    return false;
  }
}

/**
 * Moves the finished staging folder to `folder`. An existing folder is moved aside first and removed only after the
 * new one is in place, so a failure in between leaves the old one (moved back) rather than nothing.
 */
async function replaceFolder(staging: string, folder: string): Promise<void> {
  if (!(await exists(folder))) {
    await rename(staging, folder);
    return;
  }
  const aside = `${folder}.old-${randomBytes(4).toString('hex')}`;
  await rename(folder, aside);
  try {
    await rename(staging, folder);
  } catch (error) {
    await rename(aside, folder);
    throw error;
  }
  await rm(aside, { recursive: true, force: true });
}

/** "Finetune: Set Repository": a folder picker; the choice goes to the workspace's settings. */
export async function setRepository(config: Config): Promise<string | undefined> {
  const current = repositoryFolder(config);
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    openLabel: vscode.l10n.t('Use as Repository'),
    title: vscode.l10n.t('The folder where saved adapters go'),
    defaultUri: current === undefined ? undefined : vscode.Uri.file(current),
  });
  const folder = picked?.[0];
  if (folder === undefined) return undefined;
  // Workspace scope: the repository belongs to the project; without a workspace there is only the user's.
  await config.setRepository(folder.fsPath);
  return folder.fsPath;
}
