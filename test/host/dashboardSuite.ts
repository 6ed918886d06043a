// The run dashboard in a real extension host (issue 7): a tiny run trained on the local backend, its dashboard
// opened while it trains; once it has succeeded, every chart's raw points equal the backend's metrics events (read
// back from the webview), smoothing changes what is drawn (0 draws the raw values; the learning rate is never
// smoothed), the checkpoint markers are the checkpoints' steps, the checkpoint list shows each checkpoint's sample
// as the backend has it; a second run compared with the first shows both runs' series; the CSV export has one row
// per step. Real VS Code, real backend, real engine, real webview.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { FineTuningJobCheckpoint, MetricsData } from '../../common/api';
import type { BackendClient } from '../../src/backendClient';
import type { DashboardsApi } from '../../src/dashboardPanel';
import type { FinetuneApi } from '../../src/extension';
import { RUN_ROW_COMMAND_PREFIX } from '../../src/runRowCommands';
import type { RunRef } from '../../src/runsModel';
import type { TrainingApi } from '../../src/training';
import type { ChartData } from '../../webview/dashboard/chartApi';
import type { InspectResult } from '../../webview/dashboard/protocol';
import { runInHostTests, type InHostTest } from './inHostRunner';
import { ARITHMETIC_SYSTEM_PROMPT, arithmeticDataset } from './tinyDatasets';
import { startLocalBackend, startTinyRun, waitForRun } from './tinyRuns';

const EXTENSION_ID = 'finetune-studio.finetune-studio';

interface State {
  training?: TrainingApi;
  dashboards?: DashboardsApi;
  backend?: string;
  client?: BackendClient;
  fileId?: string;
  first?: RunRef;
  second?: RunRef;
  metrics?: MetricsData[];
  checkpoints?: FineTuningJobCheckpoint[];
  inspected?: InspectResult;
}

function need<T>(value: T | undefined, what: string): T {
  assert.ok(value !== undefined, `${what} is missing: an earlier test failed`);
  return value;
}

function chart(result: InspectResult, id: string): ChartData {
  const found = result.charts.find((c) => c.id === id);
  assert.ok(found, `no chart "${id}" in ${result.charts.map((c) => c.id).join(', ')}`);
  return found;
}

function series(result: InspectResult, chartId: string, key: string): ChartData['series'][number] {
  const found = chart(result, chartId).series.find((s) => s.key === key);
  assert.ok(found, `no series "${key}" on chart "${chartId}"`);
  return found;
}

/** Waits for a run to succeed in the sidebar's model. */
async function succeeded(training: TrainingApi, backend: string, jobId: string): Promise<void> {
  await waitForRun(training, backend, jobId, `${jobId} to succeed`, (r) => r.job.status === 'succeeded', 150_000);
}

/** A run on the dashboard's dataset (uploaded now when `dataset` names it, else the file id). */
async function startRun(client: BackendClient, dataset: string | { name: string; text: string }, suffix: string, epochs: number): Promise<{ fileId: string; jobId: string }> {
  const { fileId, job } = await startTinyRun(client, { dataset, suffix, hyperparameters: { n_epochs: epochs, batch_size: 2, training_type: 'lora', checkpoints: 3, eval_ratio: 0.25 } });
  return { fileId, jobId: job.id };
}

/** The metrics of a run as the backend reports them (every event, all pages). */
async function backendMetrics(client: BackendClient, jobId: string): Promise<MetricsData[]> {
  const events = await client.eventsAfter(jobId, 0, 7);
  return events.flatMap((e) => (e.type === 'metrics' ? [e.data] : []));
}

function tests(state: State): InHostTest[] {
  return [
    {
      name: 'the local backend starts and a tiny run begins',
      timeoutMs: 90_000,
      async run() {
        const extension = vscode.extensions.getExtension<FinetuneApi>(EXTENSION_ID);
        assert.ok(extension);
        const api = await extension.activate();
        state.training = api.training;
        state.dashboards = api.dashboards;
        const backend = await startLocalBackend(api.training, 60_000);
        state.backend = backend;
        const client = await api.training.backends.client(backend);
        state.client = client;
        const { fileId, jobId } = await startRun(client, { name: 'dashboard.jsonl', text: arithmeticDataset() }, 'dash-one', 2);
        state.fileId = fileId;
        state.first = { backend, jobId };
      },
    },
    {
      name: 'the dashboard opens from the tree row while the run trains, and the run succeeds',
      timeoutMs: 180_000,
      async run() {
        const training = need(state.training, 'the API');
        const first = need(state.first, 'the first run');
        await waitForRun(training, first.backend, first.jobId, 'the run in the tree');
        // The row's click: its TreeItem command.
        const backendNode = training.tree.getChildren(undefined) as unknown as { backend: string }[];
        const rows = (await training.tree.getChildren(backendNode[0] as never)) as { jobId?: string }[];
        const row = rows.find((r) => r.jobId === first.jobId);
        assert.ok(row, 'the run has no row');
        const item = await training.tree.getTreeItem(row as never);
        // A command of the run's own, without arguments, that a refresh of the row does not change or invalidate.
        const command = item.command;
        assert.ok(command !== undefined && command.command.startsWith(RUN_ROW_COMMAND_PREFIX), `the row's command: ${command?.command}`);
        assert.equal(command.arguments, undefined);
        assert.equal((await training.tree.getTreeItem(row as never)).command?.command, command.command, 'the row got another command');
        await vscode.commands.executeCommand(command.command);
        const open = need(state.dashboards, 'the dashboards API').openPanels();
        assert.deepEqual(open, [[first]]);
        await succeeded(training, first.backend, first.jobId);
      },
    },
    {
      name: 'every chart\'s raw points equal the backend\'s metrics events',
      timeoutMs: 60_000,
      async run() {
        const dashboards = need(state.dashboards, 'the dashboards API');
        const client = need(state.client, 'the client');
        const first = need(state.first, 'the first run');
        const metrics = await backendMetrics(client, first.jobId);
        state.metrics = metrics;
        assert.ok(metrics.length >= 10, `only ${metrics.length} metrics events`);
        const result = await dashboards.inspect([first]);
        state.inspected = result;
        assert.equal(result.settings.xAxis, 'step');
        const expect = (chartId: string, field: keyof MetricsData): void => {
          const rows = metrics.filter((m) => typeof m[field] === 'number');
          const s = series(result, chartId, `0/${field}`);
          assert.deepEqual(s.x, rows.map((m) => m.step), `${chartId}/${field}: steps`);
          assert.deepEqual(s.raw, rows.map((m) => m[field]), `${chartId}/${field}: values`);
        };
        expect('loss', 'train_loss');
        expect('loss', 'valid_loss');
        expect('accuracy', 'train_mean_token_accuracy');
        expect('accuracy', 'valid_mean_token_accuracy');
        expect('learning_rate', 'learning_rate');
        expect('grad_norm', 'grad_norm');
        expect('tokens_per_second', 'tokens_per_second');
        assert.ok(metrics.some((m) => m.valid_loss !== undefined), 'the run reported no valid loss');
        assert.ok(!result.charts.some((c) => c.id === 'gpu_memory'), 'a CPU run has no GPU memory chart');
        // The header: name, status, progress and the settings used.
        const last = metrics[metrics.length - 1];
        assert.deepEqual(result.runs.map((r) => [r.name, r.status, r.progress]), [['dash-one', 'succeeded', `step ${last.step} of ${last.total_steps}`]]);
        for (const row of ['Epochs: 2', 'Batch size: 2', 'Checkpoints: 3', 'Eval split: 0.25', 'Method: LoRA']) assert.ok(result.runs[0].settings.includes(row), `the settings miss "${row}": ${result.runs[0].settings.join(' | ')}`);
        assert.ok(result.runs[0].settings.some((r) => /^Seed: \d+$/.test(r)), 'the seed is not shown');
      },
    },
    {
      name: 'the smoothing setting changes the drawn curve (0 draws the raw values, the learning rate never smoothed)',
      async run() {
        const dashboards = need(state.dashboards, 'the dashboards API');
        const first = need(state.first, 'the first run');
        const before = need(state.inspected, 'the first read-out');
        assert.equal(before.settings.smoothing, 0.6, 'TensorBoard\'s default smoothing');
        const smoothed = series(before, 'loss', '0/train_loss');
        assert.notDeepEqual(smoothed.drawn, smoothed.raw, 'smoothing 0.6 draws the raw loss');
        assert.deepEqual(await dashboards.applySettings([first], { smoothing: 0 }), { smoothing: 0, logScale: false, xAxis: 'step' });
        const raw = await dashboards.inspect([first]);
        for (const c of raw.charts) for (const s of c.series) assert.deepEqual(s.drawn, s.raw, `${c.id}/${s.key} with smoothing 0`);
        await dashboards.applySettings([first], { smoothing: 0.95 });
        const heavy = await dashboards.inspect([first]);
        const loss = series(heavy, 'loss', '0/train_loss');
        assert.notDeepEqual(loss.drawn, smoothed.drawn, 'smoothing 0.95 draws what 0.6 drew');
        const lr = series(heavy, 'learning_rate', '0/learning_rate');
        assert.deepEqual(lr.drawn, lr.raw, 'the learning rate is smoothed');
        // The time axis: x is the seconds since the start.
        await dashboards.applySettings([first], { xAxis: 'time' });
        const timed = await dashboards.inspect([first]);
        assert.deepEqual(series(timed, 'loss', '0/train_loss').x, need(state.metrics, 'the metrics').map((m) => m.elapsed));
        await dashboards.applySettings([first], { xAxis: 'step', smoothing: 0.6 });
      },
    },
    {
      name: 'checkpoint markers are the checkpoints\' steps, and the list shows each sample as the backend has it',
      async run() {
        const dashboards = need(state.dashboards, 'the dashboards API');
        const client = need(state.client, 'the client');
        const first = need(state.first, 'the first run');
        const checkpoints = (await client.listCheckpoints(first.jobId, { limit: 100 })).data.sort((a, b) => a.step_number - b.step_number);
        state.checkpoints = checkpoints;
        assert.ok(checkpoints.length >= 2, `only ${checkpoints.length} checkpoints`);
        const result = await dashboards.inspect([first]);
        const steps = checkpoints.map((c) => c.step_number);
        for (const c of result.charts) assert.deepEqual([...c.markers], steps, `markers of ${c.id}`);
        assert.deepEqual(result.checkpoints.map((c) => c.step), steps);
        for (const [i, checkpoint] of checkpoints.entries()) {
          const shown = result.checkpoints[i];
          const sample = checkpoint.sample;
          assert.ok(sample, `checkpoint ${checkpoint.step_number} has no sample`);
          assert.equal(shown.system, ARITHMETIC_SYSTEM_PROMPT, 'the system prompt is shown');
          const lastUser = sample.messages.map((m) => m.role).lastIndexOf('user');
          const prompt = sample.messages.slice(0, lastUser + 1).filter((m, j) => !(j === 0 && m.role === 'system'));
          assert.equal(shown.prompt, prompt.map((m) => m.content).join('\n'));
          assert.equal(shown.reference, sample.reference);
          assert.equal(shown.answer, sample.answer);
        }
        // The same example for every checkpoint.
        assert.equal(new Set(result.checkpoints.map((c) => c.prompt)).size, 1);
      },
    },
    {
      name: 'the CSV export has a header and one row per step',
      async run() {
        const dashboards = need(state.dashboards, 'the dashboards API');
        const first = need(state.first, 'the first run');
        const metrics = need(state.metrics, 'the metrics');
        const dir = await mkdtemp(join(tmpdir(), 'finetune-dashboard-'));
        try {
          const path = join(dir, 'metrics.csv');
          await dashboards.exportCsv([first], path);
          const lines = (await readFile(path, 'utf8')).trimEnd().split('\r\n');
          const header = lines[0].split(',');
          assert.deepEqual(header.slice(0, 5), ['run', 'job_id', 'step', 'epoch', 'elapsed']);
          assert.ok(header.includes('train_loss') && header.includes('valid_loss') && header.includes('learning_rate'));
          assert.equal(lines.length, 1 + metrics.length);
          const stepColumn = header.indexOf('step');
          const lossColumn = header.indexOf('train_loss');
          assert.deepEqual(lines.slice(1).map((l) => Number(l.split(',')[stepColumn])), metrics.map((m) => m.step));
          assert.deepEqual(lines.slice(1).map((l) => Number(l.split(',')[lossColumn])), metrics.map((m) => m.train_loss));
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    },
    {
      name: '"Show Run" (the status bar and the notification) opens the run\'s dashboard; closing it and opening it again reads the history again',
      async run() {
        const dashboards = need(state.dashboards, 'the dashboards API');
        const first = need(state.first, 'the first run');
        for (const tab of vscode.window.tabGroups.all.flatMap((g) => g.tabs)) {
          if (tab.input instanceof vscode.TabInputWebview && tab.input.viewType.endsWith('finetune.dashboard')) await vscode.window.tabGroups.close(tab);
        }
        assert.deepEqual(dashboards.openPanels(), []);
        await vscode.commands.executeCommand('finetune.showRun', first);
        assert.deepEqual(dashboards.openPanels(), [[first]]);
        const result = await dashboards.inspect([first]);
        assert.deepEqual(series(result, 'loss', '0/train_loss').raw, need(state.metrics, 'the metrics').map((m) => m.train_loss), 'a finished run\'s history');
        assert.equal(result.checkpoints.length, need(state.checkpoints, 'the checkpoints').length);
      },
    },
    {
      name: 'a second run and "Compare Runs" on both show both runs\' series in one dashboard',
      timeoutMs: 180_000,
      async run() {
        const training = need(state.training, 'the API');
        const dashboards = need(state.dashboards, 'the dashboards API');
        const client = need(state.client, 'the client');
        const first = need(state.first, 'the first run');
        const second: RunRef = { backend: first.backend, jobId: (await startRun(client, need(state.fileId, 'the file'), 'dash-two', 1)).jobId };
        state.second = second;
        await waitForRun(training, second.backend, second.jobId, 'the second run in the tree');
        await succeeded(training, second.backend, second.jobId);
        // What the tree's context menu passes with two selected rows: the clicked node, then the selection.
        await vscode.commands.executeCommand('finetune.compareRuns', first, [first, second]);
        assert.ok(
          dashboards.openPanels().some((runs) => runs.length === 2),
          `no comparison among ${JSON.stringify(dashboards.openPanels())}`,
        );
        const result = await dashboards.inspect([first, second]);
        const secondMetrics = await backendMetrics(client, second.jobId);
        const loss = chart(result, 'loss');
        assert.deepEqual(loss.series.map((s) => s.key).sort(), ['0/train_loss', '0/valid_loss', '1/train_loss', '1/valid_loss']);
        assert.deepEqual(series(result, 'loss', '0/train_loss').raw, need(state.metrics, 'the metrics').map((m) => m.train_loss));
        assert.deepEqual(series(result, 'loss', '1/train_loss').raw, secondMetrics.map((m) => m.train_loss));
        assert.match(series(result, 'loss', '1/train_loss').label, /dash-two/);
        assert.deepEqual(new Set(result.checkpoints.map((c) => c.run)), new Set([0, 1]), 'checkpoints listed per run');
        // Opening the same set again (in another order) reveals the same dashboard.
        await dashboards.open([second, first]);
        assert.equal(dashboards.openPanels().filter((runs) => runs.length === 2).length, 1);
      },
    },
  ];
}

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('dashboard', tests({}));
}
