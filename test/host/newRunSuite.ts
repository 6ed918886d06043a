// The "New Training Run" form in a real extension host (issue 6, "Done when"): a dataset with errors is
// blocked and its errors listed; a good dataset with a tiny model starts a run on the backend. The form is
// driven through the same host methods the webview's messages call (setValues, start); the panels come from
// the extension's internal `_finetune.newRun.panels` command. Register it in suites.ts as `newRun`.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as vscode from 'vscode';
import type { NewRunPanel } from '../../src/newRunPanel';
import type { ViewModel } from '../../webview/protocol';
import { runInHostTests, waitForEvent, type InHostTest } from './inHostRunner';

const EXTENSION_ID = 'finetune-studio.finetune-studio';
const PANELS_COMMAND = '_finetune.newRun.panels';

function workspaceFile(name: string): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the host was opened without a workspace folder');
  return vscode.Uri.joinPath(folder.uri, name);
}

async function openForm(dataset: vscode.Uri): Promise<NewRunPanel> {
  const before = (await vscode.commands.executeCommand<NewRunPanel[]>(PANELS_COMMAND)) ?? [];
  await vscode.commands.executeCommand('finetune.newTrainingRun', dataset);
  const after = (await vscode.commands.executeCommand<NewRunPanel[]>(PANELS_COMMAND)) ?? [];
  const panel = after.find((p) => !before.includes(p));
  assert.ok(panel, 'finetune.newTrainingRun opened no form');
  return panel;
}

function waitForView(panel: NewRunPanel, what: string, probe: (view: ViewModel) => boolean, timeoutMs = 60_000): Promise<ViewModel> {
  return waitForEvent(
    panel.onDidUpdate,
    () => (probe(panel.view) ? panel.view : undefined),
    what,
    timeoutMs,
    () => JSON.stringify({ dataset: panel.view.dataset?.state, blocked: panel.view.blockedReason, errors: panel.view.fieldErrors, models: panel.view.models.length }),
  );
}

const tests: InHostTest[] = [
  {
    name: 'a backend is there (the local one when nothing is configured)',
    timeoutMs: 60_000,
    async run() {
      await vscode.extensions.getExtension(EXTENSION_ID)?.activate();
      // Accepting the offer to start the local backend, without the prompt.
      if (process.env.FINETUNE_BACKEND_URL === undefined) await vscode.commands.executeCommand('finetune.startLocalBackend');
    },
  },
  {
    name: 'a dataset with errors is blocked and its errors are listed with their lines',
    timeoutMs: 90_000,
    async run() {
      const panel = await openForm(workspaceFile('dataset.jsonl'));
      const view = await waitForView(panel, 'the checked dataset', (v) => v.dataset?.state === 'ready' && v.models.length > 0);
      assert.ok((view.dataset?.errors ?? 0) > 0, 'the sample dataset has errors');
      assert.equal(view.canStart, false);
      assert.match(view.blockedReason ?? '', /errors/);
      assert.ok(view.dataset?.findings.some((f) => f.severity === 'error' && f.line === 7 && f.code === 'json-syntax'), JSON.stringify(view.dataset?.findings));
      await assert.rejects(panel.start(), /errors/);
      panel.close();
    },
  },
  {
    name: 'a good dataset with a tiny model: Start Training creates the job on the backend',
    timeoutMs: 120_000,
    async run() {
      const file = workspaceFile('newRun-good.jsonl');
      const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `Question ${i}?` }, { role: 'assistant', content: `Answer ${i}.` }] }));
      writeFileSync(file.fsPath, `${lines.join('\n')}\n`);
      const panel = await openForm(file);
      const loaded = await waitForView(panel, 'models and the dataset', (v) => v.dataset?.state === 'ready' && v.models.length > 0);
      const tiny = loaded.models.find((m) => m.value.startsWith('tiny-') && m.disabled !== true);
      assert.ok(tiny, `no tiny model among ${loaded.models.map((m) => m.value).join(', ')}`);
      panel.setValues({ ...loaded.values, name: 'host-test', model: tiny.value });
      const ready = await waitForView(panel, 'a form that can start', (v) => v.values.model === tiny.value && v.canStart);
      assert.equal(ready.dataset?.examples, 12);
      assert.ok(ready.summary.rows.some((r) => r.label === 'Total steps'));
      const { jobId } = await panel.start({ ...ready.values, settings: { ...ready.values.settings, n_epochs: '1' }, touched: [...ready.values.touched, 'n_epochs'] });
      assert.match(jobId, /^ftjob-/);
      const url = process.env.FINETUNE_BACKEND_URL;
      const key = process.env.FINETUNE_BACKEND_KEY;
      if (url !== undefined && key !== undefined) {
        const response = await fetch(`${url}/v1/fine_tuning/jobs/${jobId}`, { headers: { authorization: `Bearer ${key}` } });
        assert.equal(response.status, 200);
        const job = (await response.json()) as { model: string; suffix: string | null; hyperparameters: { n_epochs: number } };
        assert.equal(job.model, tiny.value);
        assert.equal(job.suffix, 'host-test');
        assert.equal(job.hyperparameters.n_epochs, 1);
      }
      const left = (await vscode.commands.executeCommand<NewRunPanel[]>(PANELS_COMMAND)) ?? [];
      assert.ok(!left.includes(panel), 'the form closes once the run is created');
    },
  },
];

/** What VS Code calls: runs the tests and writes the report. */
export async function run(): Promise<void> {
  await runInHostTests('newRun', tests);
}
