// The in-host training tests: with no backend configured, start the local backend through its command, see it in
// the runs tree, train a tiny LoRA run created through the BackendClient to success (checkpoints, status bar,
// notification), cancel a second run from the tree's command, see uploaded files under Datasets and delete one
// (and be refused for a file a running job uses). Real VS Code, real backend, real engine.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { FinetuneApi } from '../../src/extension';
import type { TrainingApi } from '../../src/training';
import { runInHostTests, waitForEvent, type InHostTest } from './inHostRunner';

const EXTENSION_ID = 'finetune-studio.finetune-studio';

interface State {
  api?: TrainingApi;
  backend?: string;
  fileId?: string;
  statusTexts: string[];
}

/** A small dataset: twelve short conversations. */
function dataset(): Uint8Array {
  const lines: string[] = [];
  for (let i = 0; i < 12; i++) {
    lines.push(JSON.stringify({ messages: [{ role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: `${i + i}.` }] }));
  }
  return new TextEncoder().encode(`${lines.join('\n')}\n`);
}

function training(state: State): TrainingApi {
  assert.ok(state.api, 'the extension API was not read');
  return state.api;
}

function tests(state: State): InHostTest[] {
  return [
    {
      name: 'the extension exports its training API, and no backend is configured',
      async run() {
        const extension = vscode.extensions.getExtension<FinetuneApi>(EXTENSION_ID);
        assert.ok(extension);
        const api = await extension.activate();
        assert.ok(api.training, 'FinetuneApi.training is missing');
        state.api = api.training;
        assert.deepEqual(vscode.workspace.getConfiguration().get('finetune.backends'), []);
        assert.deepEqual(api.training.tree.getChildren(undefined), [], 'the welcome view needs an empty tree');
      },
    },
    {
      name: '"Start Local Backend" starts it and the tree shows it connected',
      timeoutMs: 60_000,
      async run() {
        const api = training(state);
        state.api?.statusBar.onDidChange(() => {
          if (api.statusBar.visible) state.statusTexts.push(api.statusBar.text);
        });
        await vscode.commands.executeCommand('finetune.startLocalBackend');
        const local = api.backends.entries().find((e) => e.local);
        assert.ok(local, 'no local entry after the command');
        assert.match(local.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
        state.backend = local.name;
        await waitForEvent(
          api.tree.onDidChangeTreeData,
          () => (api.model.backend(local.name)?.connection.kind === 'connected' ? true : undefined),
          'the local backend to connect',
          30_000,
          () => JSON.stringify(api.model.backend(local.name)?.connection),
        );
        const roots = api.tree.getChildren(undefined) as { backend?: string }[];
        assert.deepEqual(roots.map((r) => r.backend), [local.name]);
      },
    },
    {
      name: 'a tiny LoRA run goes to succeeded in the tree, with checkpoints, the status bar and a notification',
      timeoutMs: 120_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        assert.ok(backend);
        const client = await api.backends.client(backend);
        const file = await client.uploadFile({ name: 'tiny.jsonl', bytes: dataset() });
        state.fileId = file.id;
        const job = await client.createJob({
          model: 'tiny-qwen2-1m',
          training_file: file.id,
          suffix: 'host-run',
          method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 2, training_type: 'lora', checkpoints: 2, eval_ratio: 0 } } },
        });
        const notified = waitForEvent(
          api.notifications.onDidShow,
          () => api.notifications.shown.find((n) => n.jobId === job.id),
          'the notification of the finished run',
          100_000,
        );
        const run = await waitForEvent(
          api.tree.onDidChangeTreeData,
          () => {
            const r = api.model.run(backend, job.id);
            return r?.job.status === 'succeeded' && r.checkpoints.length >= 1 ? r : undefined;
          },
          'the run to succeed with checkpoints in the tree',
          100_000,
          () => JSON.stringify(api.model.run(backend, job.id)?.job.status),
        );
        const notification = await notified;
        assert.equal(notification.status, 'succeeded');
        assert.match(notification.message, /host-run/);
        assert.equal(api.notifications.shown.filter((n) => n.jobId === job.id).length, 1, 'one notification per run');
        // The tree shows the run under its backend, and its checkpoints under it.
        const backendNode = (api.tree.getChildren(undefined) as { backend: string }[])[0];
        const runs = (await api.tree.getChildren(backendNode as never)) as { jobId?: string }[];
        const runNode = runs.find((r) => r.jobId === job.id);
        assert.ok(runNode, 'the run is not in the tree');
        const item = await api.tree.getTreeItem(runNode as never);
        assert.equal(item.label, 'host-run');
        assert.match(String(item.description), /tiny-qwen2-1m · succeeded/);
        const checkpoints = (await api.tree.getChildren(runNode as never)) ?? [];
        assert.equal(checkpoints.length, run.checkpoints.length);
        assert.ok(state.statusTexts.some((t) => /host-run/.test(t)), `the status bar never showed the run: ${state.statusTexts.join(' | ') || 'nothing'}`);
      },
    },
    {
      name: '"Cancel Run" on a run node cancels it',
      timeoutMs: 60_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        assert.ok(backend && state.fileId);
        const client = await api.backends.client(backend);
        const job = await client.createJob({
          model: 'tiny-qwen2-1m',
          training_file: state.fileId,
          suffix: 'to-cancel',
          method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 50, batch_size: 1 } } },
        });
        await waitForEvent(api.tree.onDidChangeTreeData, () => api.model.run(backend, job.id), 'the second run in the tree');
        const backendNode = (api.tree.getChildren(undefined) as { backend: string }[])[0];
        const node = ((await api.tree.getChildren(backendNode as never)) as { jobId?: string }[]).find((r) => r.jobId === job.id);
        assert.ok(node);
        await vscode.commands.executeCommand('finetune.cancelRun', node);
        await waitForEvent(
          api.tree.onDidChangeTreeData,
          () => (api.model.run(backend, job.id)?.job.status === 'cancelled' ? true : undefined),
          'the run to be cancelled',
          30_000,
          () => String(api.model.run(backend, job.id)?.job.status),
        );
      },
    },
    {
      name: 'an uploaded file shows under Datasets after Refresh; "Delete File" deletes it and it goes',
      timeoutMs: 60_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        assert.ok(backend);
        const client = await api.backends.client(backend);
        const file = await client.uploadFile({ name: 'to-delete.jsonl', bytes: dataset() });
        await vscode.commands.executeCommand('finetune.refreshBackend', { backend });
        await waitForEvent(api.tree.onDidChangeTreeData, () => api.model.file(backend, file.id), 'the file in the model after Refresh', 30_000);
        const backendNode = (api.tree.getChildren(undefined) as { backend: string }[])[0];
        const datasets = ((await api.tree.getChildren(backendNode as never)) as { kind?: string }[]).find((n) => n.kind === 'datasets');
        assert.ok(datasets, 'the backend has no Datasets node');
        assert.equal((await api.tree.getTreeItem(datasets as never)).label, 'Datasets');
        const fileNodes = () => api.tree.getChildren(datasets as never) as { fileId?: string }[];
        const node = fileNodes().find((n) => n.fileId === file.id);
        assert.ok(node, 'the file is not under Datasets');
        const item = await api.tree.getTreeItem(node as never);
        assert.equal(item.label, 'to-delete.jsonl');
        assert.equal(item.contextValue, 'file');
        assert.match(String(item.description), /^12 examples · /);

        const shown = waitForEvent(api.fileMessages.onDidShow, () => api.fileMessages.shown.find((m) => m.fileId === file.id), 'the outcome of Delete File', 30_000);
        await vscode.commands.executeCommand('finetune.deleteFile', node, { confirm: false });
        assert.equal((await shown).outcome, 'deleted');
        assert.equal(api.model.file(backend, file.id), undefined);
        assert.equal(fileNodes().find((n) => n.fileId === file.id), undefined, 'the file is still in the tree');
        await client.getFile(file.id).then(
          () => assert.fail('the backend still has the file'),
          (error: unknown) => assert.equal((error as { status?: number }).status, 404),
        );
      },
    },
    {
      name: '"Delete File" on a file a running job uses is refused with the reason, and the file stays',
      timeoutMs: 60_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        assert.ok(backend);
        const client = await api.backends.client(backend);
        const file = await client.uploadFile({ name: 'in-use.jsonl', bytes: dataset() });
        const job = await client.createJob({
          model: 'tiny-qwen2-1m',
          training_file: file.id,
          suffix: 'uses-file',
          method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 50, batch_size: 1 } } },
        });
        try {
          // The form's path: revealing the created run lists the files again.
          await api.backends.revealRun(backend, job.id);
          assert.ok(api.model.file(backend, file.id), 'revealRun did not list the new file');
          const shown = waitForEvent(api.fileMessages.onDidShow, () => api.fileMessages.shown.find((m) => m.fileId === file.id), 'the outcome of Delete File', 30_000);
          await vscode.commands.executeCommand('finetune.deleteFile', { backend, fileId: file.id }, { confirm: false });
          const outcome = await shown;
          assert.equal(outcome.outcome, 'in_use');
          assert.match(outcome.message, /in-use\.jsonl was not deleted: it is used by uses-file, which has not finished/);
          assert.ok(api.model.file(backend, file.id), 'the refused file left the tree');
          assert.equal((await client.getFile(file.id)).id, file.id);
        } finally {
          await client.cancelJob(job.id);
        }
      },
    },
  ];
}

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('training', tests({ statusTexts: [] }));
}
