// What the in-host suites do before they look at anything: start the local backend and wait until the tree shows
// it connected, upload a small dataset, create a run of the tiny model, and wait until the sidebar's model shows
// the run (or the state a test needs). Waits follow the tree's change event, as the sidebar itself does.
import * as vscode from 'vscode';
import type { FineTuningJob, HyperparametersInput } from '../../common/api';
import type { BackendClient } from '../../src/backendClient';
import type { RunState } from '../../src/runsModel';
import type { TrainingApi } from '../../src/training';
import { waitForEvent } from './inHostRunner';
import { bytesOf } from './tinyDatasets';

/** The model the tiny runs train: 1M parameters, seconds on a CPU. */
export const TINY_MODEL = 'tiny-qwen2-1m';

/** Runs "Start Local Backend" and resolves with the backend's name once the tree shows it connected. */
export async function startLocalBackend(training: TrainingApi, timeoutMs = 60_000): Promise<string> {
  await vscode.commands.executeCommand('finetune.startLocalBackend');
  const local = training.backends.entries().find((e) => e.local);
  if (!local) throw new Error('no local backend after "Start Local Backend"');
  await waitForEvent(
    training.tree.onDidChangeTreeData,
    () => (training.model.backend(local.name)?.connection.kind === 'connected' ? true : undefined),
    'the local backend to connect',
    timeoutMs,
    () => JSON.stringify(training.model.backend(local.name)?.connection),
  );
  return local.name;
}

/** A run of the tiny model to create: on a file uploaded before, or on a dataset uploaded now. */
export interface TinyRun {
  /** A file id, or a dataset to upload under `name`. */
  dataset: string | { name: string; text: string };
  suffix: string;
  hyperparameters: HyperparametersInput;
}

/** Uploads the dataset when one is given, and creates the run; resolves with the file and the created job. */
export async function startTinyRun(client: BackendClient, run: TinyRun): Promise<{ fileId: string; job: FineTuningJob }> {
  const fileId = typeof run.dataset === 'string' ? run.dataset : (await client.uploadFile({ name: run.dataset.name, bytes: bytesOf(run.dataset.text) })).id;
  const job = await client.createJob({
    model: TINY_MODEL,
    training_file: fileId,
    suffix: run.suffix,
    method: { type: 'supervised', supervised: { hyperparameters: run.hyperparameters } },
  });
  return { fileId, job };
}

/**
 * Resolves with the run once the sidebar's model shows it in the state `until` accepts (by default: there at
 * all); rejects after `timeoutMs`, saying the status it last had.
 */
export function waitForRun(
  training: TrainingApi,
  backend: string,
  jobId: string,
  what: string,
  until: (run: RunState) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<RunState> {
  return waitForEvent(
    training.tree.onDidChangeTreeData,
    () => {
      const run = training.model.run(backend, jobId);
      return run !== undefined && until(run) ? run : undefined;
    },
    what,
    timeoutMs,
    () => String(training.model.run(backend, jobId)?.job.status ?? 'not in the model'),
  );
}
