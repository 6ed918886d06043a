// The in-host training tests: with no backend configured, start the local backend through its command, see it in
// the runs tree, train a tiny LoRA run created through the BackendClient to success (checkpoints, status bar,
// notification), cancel a second run from the tree's command, see uploaded files under Datasets and delete one
// (and be refused for a file a running job uses). Real VS Code, real backend, real engine.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { tinyModel } from '../../backend/engines/embedded/catalog';
import { readSafetensors } from '../../backend/engines/embedded/model/safetensors';
import type { FineTuningJob } from '../../common/api';
import type { BackendClient } from '../../src/backendClient';
import type { FinetuneApi } from '../../src/extension';
import type { TrainingApi } from '../../src/training';
import { runInHostTests, waitForEvent, type InHostTest } from './inHostRunner';
import { RESULTS_ENV } from './suites';
import { bytesOf, doublingDataset } from './tinyDatasets';
import { startLocalBackend, startTinyRun, waitForRun } from './tinyRuns';

const EXTENSION_ID = 'finetune-studio.finetune-studio';

interface State {
  api?: TrainingApi;
  backend?: string;
  fileId?: string;
  /** The tiny LoRA run that succeeded. */
  jobId?: string;
  statusTexts: string[];
}

function training(state: State): TrainingApi {
  assert.ok(state.api, 'the extension API was not read');
  return state.api;
}

/** A tiny run on the suite's backend and dataset, started through the backend's API (not the form). */
async function startRunHere(state: State, suffix: string, hyperparameters: Record<string, number>): Promise<{ api: TrainingApi; backend: string; client: BackendClient; job: FineTuningJob }> {
  const api = training(state);
  const backend = state.backend;
  assert.ok(backend && state.fileId);
  const client = await api.backends.client(backend);
  const { job } = await startTinyRun(client, { dataset: state.fileId, suffix, hyperparameters });
  return { api, backend, client, job };
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
        state.backend = await startLocalBackend(api, 30_000);
        const local = api.backends.entries().find((e) => e.name === state.backend);
        assert.ok(local?.local, 'the started backend is not the local one');
        assert.match(local.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
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
        const { fileId, job } = await startTinyRun(client, {
          dataset: { name: 'tiny.jsonl', text: doublingDataset() },
          suffix: 'host-run',
          hyperparameters: { n_epochs: 1, batch_size: 2, training_type: 'lora', checkpoints: 2, eval_ratio: 0 },
        });
        state.fileId = fileId;
        const notified = waitForEvent(
          api.notifications.onDidShow,
          () => api.notifications.shown.find((n) => n.jobId === job.id),
          'the notification of the finished run',
          100_000,
        );
        const run = await waitForRun(api, backend, job.id, 'the run to succeed with checkpoints in the tree', (r) => r.job.status === 'succeeded' && r.checkpoints.length >= 1, 100_000);
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
        // The tooltip changes at every step (trained tokens): it is computed on hover, not with the row.
        assert.equal(item.tooltip, undefined);
        const resolved = await api.tree.resolveTreeItem?.(item, runNode as never, new vscode.CancellationTokenSource().token);
        const tooltip = resolved?.tooltip;
        assert.ok(tooltip instanceof vscode.MarkdownString, 'hovering the run shows no tooltip');
        assert.match(tooltip.value, /\| Status \| succeeded \|/);
        assert.ok(tooltip.value.includes(`| Run ID | ${job.id.replace(/[-_]/g, '\\$&')} |`), tooltip.value);
        assert.match(tooltip.value, /\| Trained tokens \| [\d,]+ \|/);
        const checkpoints = (await api.tree.getChildren(runNode as never)) ?? [];
        assert.equal(checkpoints.length, run.checkpoints.length);
        state.jobId = job.id;
        assert.ok(state.statusTexts.some((t) => /host-run/.test(t)), `the status bar never showed the run: ${state.statusTexts.join(' | ') || 'nothing'}`);
      },
    },
    {
      name: '"Save to Repository" on the last checkpoint writes a loadable peft adapter, a model card and training_args.json, and refuses to overwrite unless asked',
      timeoutMs: 60_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        const jobId = state.jobId;
        assert.ok(backend && jobId, 'the LoRA run did not succeed');
        const run = api.model.run(backend, jobId);
        assert.ok(run);
        const backendNode = (api.tree.getChildren(undefined) as { backend: string }[])[0];
        const runNode = ((await api.tree.getChildren(backendNode as never)) as { jobId?: string }[]).find((r) => r.jobId === jobId);
        const nodes = (await api.tree.getChildren(runNode as never)) as { kind?: string; checkpoint?: { step_number: number; id: string } }[];
        // The tree lists checkpoints newest first.
        const last = nodes[0];
        assert.equal(last.kind, 'checkpoint');
        assert.ok(last.checkpoint);
        assert.equal((await api.tree.getTreeItem(last as never)).contextValue, 'checkpoint');
        const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        assert.ok(workspace, 'the host has no workspace folder');
        const repository = join(workspace, 'finetune-adapters');
        const folder = join(repository, `host-run-step${last.checkpoint.step_number}`);
        await rm(repository, { recursive: true, force: true });
        try {
          await vscode.commands.executeCommand('finetune.saveToRepository', last, { overwrite: false });
          assert.ok(existsSync(folder), `${folder} was not written`);
          // The backend keeps its own copy under the folder's name, so that chat can use it by that name.
          const client = await api.backends.client(backend);
          const adapterName = `host-run-step${last.checkpoint.step_number}`;
          const registered = (await client.listAdapters()).filter((a) => a.name === adapterName);
          assert.equal(registered.length, 1, `the backend lists ${registered.length} adapters named ${adapterName}`);
          assert.equal(registered[0].checkpoint_id, last.checkpoint.id);
          assert.equal(registered[0].location, folder);

          const job = run.job;
          const hp = job.hyperparameters;
          const config = tinyModel(job.model)?.config;
          assert.ok(config, `${job.model} is not a tiny model`);
          const head = config.hidden_size / config.num_attention_heads;
          const sizes: Record<string, [number, number]> = {
            q_proj: [config.hidden_size, config.num_attention_heads * head],
            k_proj: [config.hidden_size, config.num_key_value_heads * head],
            v_proj: [config.hidden_size, config.num_key_value_heads * head],
            o_proj: [config.num_attention_heads * head, config.hidden_size],
            gate_proj: [config.hidden_size, config.intermediate_size],
            up_proj: [config.hidden_size, config.intermediate_size],
            down_proj: [config.intermediate_size, config.hidden_size],
          };
          const tensors = await readSafetensors(join(folder, 'adapter_model.safetensors'));
          assert.ok(hp.lora_target_modules.length > 0);
          assert.equal(tensors.size, config.num_hidden_layers * hp.lora_target_modules.length * 2, `keys: ${[...tensors.keys()].join(', ')}`);
          for (let i = 0; i < config.num_hidden_layers; i++) {
            for (const module of hp.lora_target_modules) {
              const part = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(module) ? 'self_attn' : 'mlp';
              const prefix = `base_model.model.model.layers.${i}.${part}.${module}`;
              const [inSize, outSize] = sizes[module];
              assert.deepEqual(tensors.get(`${prefix}.lora_A.weight`)?.shape, [hp.lora_r, inSize], `${prefix}.lora_A`);
              assert.deepEqual(tensors.get(`${prefix}.lora_B.weight`)?.shape, [outSize, hp.lora_r], `${prefix}.lora_B`);
            }
          }
          const adapterConfig = JSON.parse(await readFile(join(folder, 'adapter_config.json'), 'utf8')) as { r?: number };
          assert.equal(adapterConfig.r, hp.lora_r);
          const card = await readFile(join(folder, 'README.md'), 'utf8');
          assert.match(card, /base_model: tiny-qwen2-1m/);
          assert.match(card, /tiny\.jsonl` \(12 examples/);
          assert.match(card, /PeftModel\.from_pretrained/);
          assert.match(card, /vllm serve tiny-qwen2-1m --enable-lora/);
          const args = JSON.parse(await readFile(join(folder, 'training_args.json'), 'utf8')) as { step?: number; hyperparameters?: unknown; seed?: number };
          assert.equal(args.step, last.checkpoint.step_number);
          assert.deepEqual(args.hyperparameters, hp);
          assert.equal(args.seed, job.seed);

          // A second save into the same folder is refused unless asked: a file of the user's stays.
          const mark = join(folder, 'notes.txt');
          await writeFile(mark, 'mine');
          await vscode.commands.executeCommand('finetune.saveToRepository', { backend, jobId, checkpointId: last.checkpoint.id }, { overwrite: false });
          assert.equal(await readFile(mark, 'utf8'), 'mine', 'a refused save changed the folder');
          await vscode.commands.executeCommand('finetune.saveToRepository', { backend, jobId, checkpointId: last.checkpoint.id }, { overwrite: true });
          assert.ok(!existsSync(mark), 'overwrite kept the old folder');
          const replaced = (await client.listAdapters()).filter((a) => a.name === adapterName);
          assert.equal(replaced.length, 1, 'the overwrite replaced the backend\'s copy too');
          assert.notEqual(replaced[0].id, registered[0].id);
          assert.ok(existsSync(join(folder, 'adapter_model.safetensors')));
          assert.ok(existsSync(join(folder, 'README.md')));
          // Nothing but the saved folder is left in the repository (no staging or moved-aside folders).
          assert.deepEqual(await readdir(repository), [`host-run-step${last.checkpoint.step_number}`]);
        } finally {
          await rm(repository, { recursive: true, force: true });
        }
      },
    },
    {
      name: '"Cancel Run" on a run node cancels it',
      timeoutMs: 60_000,
      async run() {
        const { api, backend, job } = await startRunHere(state, 'to-cancel', { n_epochs: 50, batch_size: 1 });
        await waitForRun(api, backend, job.id, 'the second run in the tree');
        const backendNode = (api.tree.getChildren(undefined) as { backend: string }[])[0];
        const node = ((await api.tree.getChildren(backendNode as never)) as { jobId?: string }[]).find((r) => r.jobId === job.id);
        assert.ok(node);
        await vscode.commands.executeCommand('finetune.cancelRun', node);
        await waitForRun(api, backend, job.id, 'the run to be cancelled', (r) => r.job.status === 'cancelled', 30_000);
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
        const file = await client.uploadFile({ name: 'to-delete.jsonl', bytes: bytesOf(doublingDataset()) });
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
      name: 'Refresh hands the backend\'s runs to VS Code in one refresh of its node (a second would replace the rows under a click)',
      timeoutMs: 60_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        assert.ok(backend);
        // What the backend's node showed at each of its refreshes: VS Code re-reads every run row below it each time.
        const refreshes: string[] = [];
        const listener = api.tree.onDidChangeTreeData((node) => {
          if ((node as { kind?: string } | undefined)?.kind !== 'backend') return;
          const entry = api.model.backend(backend);
          refreshes.push(`${entry?.connection.kind}${entry?.filled ? ` with ${api.model.runsOf(backend).length} runs` : ''}`);
        });
        // The rows' click commands (src/runRowCommands.ts): the listing forgets the runs, and their commands go.
        const runRows = async (): Promise<string[]> => {
          const node = (api.tree.getChildren(undefined) as { backend: string }[]).find((b) => b.backend === backend);
          const rows = (await api.tree.getChildren(node as never)) as { kind?: string }[];
          const ids: string[] = [];
          for (const row of rows.filter((r) => r.kind === 'run')) ids.push((await api.tree.getTreeItem(row as never)).command?.command ?? 'none');
          return ids;
        };
        const before = await runRows();
        try {
          await vscode.commands.executeCommand('finetune.refreshBackend', { backend });
          await waitForEvent(api.tree.onDidChangeTreeData, () => (api.model.backend(backend)?.filesListed ? true : undefined), 'the backend listed again', 30_000);
          // getCommands(false): the row commands are private (a leading `_`), which getCommands(true) leaves out.
          const registered = new Set(await vscode.commands.getCommands(false));
          assert.ok(before.length > 0 && before.every((id) => !registered.has(id)), `commands of the forgotten rows are still registered: ${before.join(', ')}`);
          const after = await runRows();
          assert.equal(after.length, before.length);
          const registeredNow = new Set(await vscode.commands.getCommands(false));
          assert.ok(after.every((id) => registeredNow.has(id)), `the rows' commands are not registered: ${after.join(', ')}`);
          const withRuns = refreshes.filter((r) => r.includes(' with '));
          assert.equal(withRuns.length, 1, `the backend's node was refreshed ${withRuns.length} times with its runs: ${refreshes.join(' → ')}`);
          assert.match(withRuns[0], /^connected with [1-9]\d* runs$/);
          assert.equal(refreshes.at(-1), withRuns[0], `refreshes after the runs: ${refreshes.join(' → ')}`);
        } finally {
          listener.dispose();
        }
      },
    },
    {
      name: 'after a Refresh a running run shows its latest message again (the listing does not carry it)',
      timeoutMs: 60_000,
      async run() {
        // One checkpoint, at the end: no message comes while it trains, so the latest is the one from its start.
        const { api, backend, client, job } = await startRunHere(state, 'recalled', { n_epochs: 100, batch_size: 1, checkpoints: 1 });
        try {
          await waitForRun(api, backend, job.id, 'the run training', (r) => (r.job.progress?.step ?? 0) > 0, 30_000);
          await vscode.commands.executeCommand('finetune.refreshBackend', { backend });
          const run = await waitForRun(api, backend, job.id, 'the latest message recalled', (r) => r.lastMessage !== undefined, 30_000);
          const messages = (await client.eventsAfter(job.id, 0)).filter((e) => e.type === 'message');
          assert.ok(messages.length > 0, 'the run has no message events');
          assert.equal(run.lastMessage, messages.at(-1)?.message);
          assert.match(run.lastMessage ?? '', /^Training \d+ steps on \d+ examples/);
        } finally {
          await client.cancelJob(job.id);
        }
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
        const { fileId, job } = await startTinyRun(client, { dataset: { name: 'in-use.jsonl', text: doublingDataset() }, suffix: 'uses-file', hyperparameters: { n_epochs: 50, batch_size: 1 } });
        try {
          // The form's path: revealing the created run lists the files again.
          await api.backends.revealRun(backend, job.id);
          assert.ok(api.model.file(backend, fileId), 'revealRun did not list the new file');
          const shown = waitForEvent(api.fileMessages.onDidShow, () => api.fileMessages.shown.find((m) => m.fileId === fileId), 'the outcome of Delete File', 30_000);
          await vscode.commands.executeCommand('finetune.deleteFile', { backend, fileId }, { confirm: false });
          const outcome = await shown;
          assert.equal(outcome.outcome, 'in_use');
          assert.match(outcome.message, /in-use\.jsonl was not deleted: it is used by uses-file, which has not finished/);
          assert.ok(api.model.file(backend, fileId), 'the refused file left the tree');
          assert.equal((await client.getFile(fileId)).id, fileId);
        } finally {
          await client.cancelJob(job.id);
        }
      },
    },
    {
      name: 'a 200-step run refreshes its tree row about once a second, not at every step',
      timeoutMs: 150_000,
      async run() {
        const api = training(state);
        const backend = state.backend;
        assert.ok(backend);
        const client = await api.backends.client(backend);
        let jobId = '';
        let changes = 0;
        let rowRefreshes = 0;
        const stopChanges = api.model.onChange((c) => {
          if (c.kind === 'run' && c.jobId === jobId) changes++;
        });
        const rows = api.tree.onDidChangeTreeData((node) => {
          if ((node as { kind?: string; jobId?: string } | undefined)?.jobId === jobId) rowRefreshes++;
        });
        try {
          // 25 examples, batch 1, 8 epochs, nothing held out: 200 steps.
          const { job } = await startTinyRun(client, {
            dataset: { name: 'steps.jsonl', text: doublingDataset(25) },
            suffix: 'two-hundred',
            hyperparameters: { n_epochs: 8, batch_size: 1, checkpoints: 2, eval_ratio: 0 },
          });
          jobId = job.id;
          const run = await waitForRun(api, backend, job.id, 'the 200-step run to succeed', (r) => r.job.status === 'succeeded', 140_000);
          assert.equal(run.job.progress?.total_steps, 200);
          const seconds = Math.max(1, (run.job.finished_at ?? 0) - (run.job.started_at ?? 0));
          // The figures go beside the suite's report (the host's console is not kept to the end).
          const figures = `a 200-step run in the extension host (${seconds} s): ${changes} model changes (the tree refreshed the row at each before), ${rowRefreshes} row refreshes now\n`;
          await writeFile(join(dirname(process.env[RESULTS_ENV] ?? join(tmpdir(), 'x')), 'row-refreshes.txt'), figures);
          assert.ok(changes >= 200, `only ${changes} model changes`);
          assert.ok(rowRefreshes <= seconds + 8, `${rowRefreshes} row refreshes in ${seconds} s`);
        } finally {
          stopChanges();
          rows.dispose();
        }
      },
    },
  ];
}

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('training', tests({ statusTexts: [] }));
}
