// The in-host integration tests: run inside a real VS Code extension host (code-server in `npm test`,
// @vscode/test-electron in `npm run test:desktop`), against a copy of the sample workspace, with the real
// language server. Bundled by test/host/runHostSuite.ts; VS Code calls `run()`.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { runInHostTests, waitForEvent, type InHostTest } from './inHostRunner';
import type { FinetuneApi } from '../../src/extension';

const EXTENSION_ID = 'finetune-studio.finetune-studio';

/** The findings the sample dataset must show (0-based lines), from its deliberate mistakes. */
const EXPECTED: readonly { line: number; code: string; severity: vscode.DiagnosticSeverity }[] = [
  { line: 4, code: 'system-not-first', severity: vscode.DiagnosticSeverity.Error },
  { line: 5, code: 'no-pair', severity: vscode.DiagnosticSeverity.Error },
  { line: 6, code: 'role-order', severity: vscode.DiagnosticSeverity.Error },
  { line: 7, code: 'json-syntax', severity: vscode.DiagnosticSeverity.Error },
  { line: 8, code: 'role-unknown', severity: vscode.DiagnosticSeverity.Error },
  { line: 9, code: 'messages-missing', severity: vscode.DiagnosticSeverity.Error },
  { line: 10, code: 'messages-missing', severity: vscode.DiagnosticSeverity.Error },
  { line: 11, code: 'line-blank', severity: vscode.DiagnosticSeverity.Warning },
  { line: 12, code: 'duplicate', severity: vscode.DiagnosticSeverity.Warning },
  { line: 13, code: 'content-empty', severity: vscode.DiagnosticSeverity.Warning },
];
const BLANK_LINE = 11;

/** What the tests share: the dataset, once it is open. */
interface State {
  uri?: vscode.Uri;
  document?: vscode.TextDocument;
}

function datasetUri(): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the host was opened without a workspace folder');
  return vscode.Uri.joinPath(folder.uri, 'dataset.jsonl');
}

function codeOf(diagnostic: vscode.Diagnostic): string | undefined {
  const code = diagnostic.code;
  if (code === undefined) return undefined;
  return typeof code === 'object' ? String(code.value) : String(code);
}

/** The language server's diagnostics for `uri` (other extensions' are not ours to test). */
function finetuneDiagnostics(uri: vscode.Uri): vscode.Diagnostic[] {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'finetune');
}

function summarise(diagnostics: readonly vscode.Diagnostic[]): string {
  return diagnostics.map((d) => `${d.range.start.line}:${codeOf(d)}`).join(', ') || 'none';
}

/** Resolves once the server has published every expected finding for `uri`. */
function waitForSampleDiagnostics(uri: vscode.Uri): Promise<vscode.Diagnostic[]> {
  return waitForEvent(
    vscode.languages.onDidChangeDiagnostics,
    () => {
      const diagnostics = finetuneDiagnostics(uri);
      const complete = EXPECTED.every((e) => diagnostics.some((d) => d.range.start.line === e.line && codeOf(d) === e.code));
      return complete ? diagnostics : undefined;
    },
    'the language server to publish the sample\'s diagnostics',
    30_000,
    () => summarise(finetuneDiagnostics(uri)),
  );
}

function hoverText(hovers: readonly vscode.Hover[]): string {
  return hovers
    .flatMap((h) => h.contents)
    .map((c) => (typeof c === 'string' ? c : c.value))
    .join('\n');
}

function tests(state: State): InHostTest[] {
  return [
    {
      name: 'the extension is loaded',
      run() {
        const extension = vscode.extensions.getExtension(EXTENSION_ID);
        assert.ok(extension, `${EXTENSION_ID} is not loaded; extensionDevelopmentPath must point at the repository`);
      },
    },
    {
      name: 'opening the sample dataset activates the extension',
      async run() {
        const uri = datasetUri();
        state.uri = uri;
        state.document = await vscode.workspace.openTextDocument(uri);
        await vscode.window.showTextDocument(state.document);
        assert.equal(state.document.languageId, 'jsonl');
        const extension = vscode.extensions.getExtension(EXTENSION_ID);
        assert.ok(extension);
        // Already activated by `onLanguage:jsonl` / `workspaceContains`; activate() just waits for that to finish.
        await extension.activate();
        assert.equal(extension.isActive, true);
      },
    },
    {
      name: 'the language server reports each of the sample\'s mistakes on its line',
      timeoutMs: 45_000,
      async run() {
        assert.ok(state.uri, 'the dataset was not opened');
        const diagnostics = await waitForSampleDiagnostics(state.uri);
        for (const expected of EXPECTED) {
          const found = diagnostics.find((d) => d.range.start.line === expected.line && codeOf(d) === expected.code);
          assert.ok(found, `no ${expected.code} on line ${expected.line + 1}; got ${summarise(diagnostics)}`);
          assert.equal(found.severity, expected.severity, `${expected.code} on line ${expected.line + 1} has the wrong severity`);
          assert.ok(found.message.length > 0);
        }
        // The narrowest range: the misplaced system message is one value inside the line, not the whole line.
        const system = diagnostics.find((d) => codeOf(d) === 'system-not-first');
        assert.ok(system && system.range.start.character > 0, 'system-not-first should point at the message, not the line start');
        assert.match(diagnostics.find((d) => codeOf(d) === 'duplicate')?.message ?? '', /line 2\b/);
        const errors = diagnostics.filter((d) => d.severity === vscode.DiagnosticSeverity.Error).length;
        const warnings = diagnostics.filter((d) => d.severity === vscode.DiagnosticSeverity.Warning).length;
        assert.deepEqual({ errors, warnings }, { errors: 7, warnings: 3 }, `unexpected findings: ${summarise(diagnostics)}`);
      },
    },
    {
      name: 'every contributed command is registered',
      async run() {
        const extension = vscode.extensions.getExtension(EXTENSION_ID);
        assert.ok(extension);
        const manifest = extension.packageJSON as { contributes?: { commands?: { command: string }[] } };
        const contributed = (manifest.contributes?.commands ?? []).map((c) => c.command);
        assert.ok(contributed.includes('finetune.showDatasetStatistics'), 'the manifest lost its commands');
        const registered = new Set(await vscode.commands.getCommands(true));
        const missing = contributed.filter((id) => !registered.has(id));
        assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
      },
    },
    {
      name: 'the status-bar item shows the dataset\'s counts',
      async run() {
        const extension = vscode.extensions.getExtension<unknown>(EXTENSION_ID);
        assert.ok(extension);
        // VS Code has no API to read another component's status-bar items; the extension must expose its own.
        const api = (await extension.activate()) as Partial<FinetuneApi> | undefined;
        assert.ok(api?.statusBar, 'the extension exports its status-bar item as `statusBar`');
        const statusBar = api.statusBar;
        const shown = await waitForEvent(
          statusBar.onDidChange,
          () => (statusBar.visible && /7 errors/.test(statusBar.text) ? statusBar.text : undefined),
          'the status-bar item to show the dataset\'s counts',
          20_000,
          () => `${statusBar.visible ? 'visible' : 'hidden'}: ${statusBar.text}`,
        );
        assert.match(shown, /3 warnings/);
        assert.match(shown, /10 examples/);
      },
    },
    {
      name: 'hovering over a line describes the conversation',
      async run() {
        assert.ok(state.uri);
        const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', state.uri, new vscode.Position(0, 3));
        const text = hoverText(hovers);
        assert.match(text, /\*\*Example\*\*/, `hover on line 1: ${text}`);
        assert.match(text, /[Tt]okens/, `hover on line 1 says nothing about tokens: ${text}`);
      },
    },
    {
      name: '"Show Dataset Statistics" opens the statistics panel',
      async run() {
        assert.ok(state.uri);
        const isPanel = (tab: vscode.Tab) => tab.input instanceof vscode.TabInputWebview && tab.input.viewType.endsWith('finetune.datasetStatistics');
        const openPanel = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).find(isPanel);
        const opened = waitForEvent(vscode.window.tabGroups.onDidChangeTabs, openPanel, 'the statistics panel to open');
        await vscode.commands.executeCommand('finetune.showDatasetStatistics', state.uri);
        const tab = await opened;
        assert.match(tab.label, /dataset\.jsonl/);
        // Back to the dataset for the next test.
        await vscode.window.showTextDocument(state.document!);
      },
    },
    {
      name: 'the blank-line quick fix removes the line and its warning',
      timeoutMs: 45_000,
      async run() {
        assert.ok(state.uri && state.document);
        const document = state.document;
        const linesBefore = document.lineCount;
        const range = new vscode.Range(BLANK_LINE, 0, BLANK_LINE, 0);
        const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', state.uri, range, vscode.CodeActionKind.QuickFix.value);
        const fix = actions.find((a) => a.title === 'Remove the blank line');
        assert.ok(fix, `no "Remove the blank line" on line ${BLANK_LINE + 1}; offered: ${actions.map((a) => a.title).join(' | ') || 'nothing'}`);
        assert.ok(fix.edit, 'the quick fix carries no edit');
        const cleared = waitForEvent(
          vscode.languages.onDidChangeDiagnostics,
          () => {
            const diagnostics = finetuneDiagnostics(document.uri);
            return document.lineCount === linesBefore - 1 && !diagnostics.some((d) => codeOf(d) === 'line-blank') && diagnostics.length > 0
              ? diagnostics
              : undefined;
          },
          'the line-blank warning to go after the fix',
          20_000,
          () => summarise(finetuneDiagnostics(document.uri)),
        );
        assert.equal(await vscode.workspace.applyEdit(fix.edit), true);
        const after = await cleared;
        assert.equal(document.lineAt(BLANK_LINE).text.trim().length > 0, true, 'line 12 should now be the next example');
        // The later findings moved up one line with the text: the duplicate is now on line 12.
        assert.ok(after.some((d) => codeOf(d) === 'duplicate' && d.range.start.line === BLANK_LINE), summarise(after));
        // Leave the file as it was on disk.
        await vscode.commands.executeCommand('workbench.action.files.revert');
      },
    },
  ];
}

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('integration', tests({}));
}
