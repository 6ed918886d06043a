import * as vscode from 'vscode';
import { DATASET_SECTION, readDatasetSettings, type DatasetSettings } from './datasetSettings';

/** The setting that names the folder of saved adapters. */
export const REPOSITORY_SETTING = 'finetune.repository';

/**
 * The extension's settings, read through typed getters (never `getConfiguration(...).get('…')` elsewhere), so
 * that a setting's name and default live in one place besides package.json.
 */
export class Config {
  /** Fires when a `finetune.dataset` setting changes. */
  readonly onDidChangeDataset: vscode.Event<void>;

  private readonly changed = new vscode.EventEmitter<void>();
  private readonly listener: vscode.Disposable;

  constructor() {
    this.onDidChangeDataset = this.changed.event;
    this.listener = vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(DATASET_SECTION)) this.changed.fire();
    });
  }

  /** All `finetune.dataset` settings, cleaned up: what the language server is configured with. */
  dataset(scope?: vscode.Uri): DatasetSettings {
    const section = vscode.workspace.getConfiguration(DATASET_SECTION, scope);
    return readDatasetSettings((key) => section.get(key));
  }

  /** `finetune.dataset.maxSequenceLength`: the longest conversation, in tokens, that training does not truncate. */
  get maxSequenceLength(): number {
    return this.dataset().maxSequenceLength;
  }

  /** `finetune.dataset.maxDiagnostics`: the most diagnostics shown per file. */
  get maxDiagnostics(): number {
    return this.dataset().maxDiagnostics;
  }

  /** `finetune.dataset.countTokens`: whether tokens are counted at all. */
  get countTokens(): boolean {
    return this.dataset().countTokens;
  }

  /**
   * `finetune.repository`: where saved adapters go, as the user wrote it (absolute, `~/…`, or relative to the
   * first workspace folder); empty means `finetune-adapters/` in the first workspace folder.
   */
  get repository(): string {
    return (vscode.workspace.getConfiguration().get<string>(REPOSITORY_SETTING) ?? '').trim();
  }

  /** Sets `finetune.repository` in the workspace's settings (the user's when no folder is open). */
  async setRepository(folder: string): Promise<void> {
    const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await vscode.workspace.getConfiguration().update(REPOSITORY_SETTING, folder, target);
  }

  dispose(): void {
    this.listener.dispose();
    this.changed.dispose();
  }
}
