import * as vscode from 'vscode';
import { DATASET_SECTION, readDatasetSettings, type DatasetSettings } from './datasetSettings';
import { resolvePythonSetting } from './localBackend';

/** The setting that names the folder of saved adapters. */
export const REPOSITORY_SETTING = 'finetune.repository';
/** The settings section of the remote backends. */
export const BACKENDS_SETTING = 'finetune.backends';
/** The settings section of the embedded local backend (how it is started). */
export const LOCAL_BACKEND_SECTION = 'finetune.localBackend';

/** How the local backend is started: `finetune.localBackend.*`, cleaned up. */
export interface LocalBackendSettings {
  /** The Python of the torch engine (`--python`); undefined: the backend's default, `python3`. */
  python: string | undefined;
  /** `--allow-downloads`: the torch engine may download a base model that is not on this machine. */
  allowModelDownloads: boolean;
}


/**
 * The extension's settings, read through typed getters (never `getConfiguration(...).get('…')` elsewhere), so
 * that a setting's name and default live in one place besides package.json.
 */
export class Config {
  /** Fires when a `finetune.dataset` setting changes. */
  readonly onDidChangeDataset: vscode.Event<void>;
  /** Fires when `finetune.backends` changes. */
  readonly onDidChangeBackends: vscode.Event<void>;
  /** Fires when a `finetune.localBackend` setting changes. */
  readonly onDidChangeLocalBackend: vscode.Event<void>;

  private readonly changed = new vscode.EventEmitter<void>();
  private readonly backendsChanged = new vscode.EventEmitter<void>();
  private readonly localChanged = new vscode.EventEmitter<void>();
  private readonly listener: vscode.Disposable;

  constructor() {
    this.onDidChangeDataset = this.changed.event;
    this.onDidChangeBackends = this.backendsChanged.event;
    this.onDidChangeLocalBackend = this.localChanged.event;
    this.listener = vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(DATASET_SECTION)) this.changed.fire();
      if (event.affectsConfiguration(BACKENDS_SETTING)) this.backendsChanged.fire();
      if (event.affectsConfiguration(LOCAL_BACKEND_SECTION)) this.localChanged.fire();
    });
  }

  /** `finetune.backends` as the settings hold it (every scope merged); src/backends.ts checks each item. */
  get backends(): unknown {
    return vscode.workspace.getConfiguration().get<unknown>(BACKENDS_SETTING);
  }

  /** `finetune.backends` of the user settings alone, as stored (malformed items kept: editing one must not drop others). */
  get userBackends(): unknown[] {
    const value = vscode.workspace.getConfiguration().inspect<unknown>(BACKENDS_SETTING)?.globalValue;
    return Array.isArray(value) ? [...(value as unknown[])] : [];
  }

  /** Writes `finetune.backends` of the user settings. */
  async setUserBackends(items: readonly unknown[]): Promise<void> {
    await vscode.workspace.getConfiguration().update(BACKENDS_SETTING, items, vscode.ConfigurationTarget.Global);
  }

  /** `finetune.localBackend.python` and `.allowModelDownloads`: how the local backend is started. */
  get localBackend(): LocalBackendSettings {
    const section = vscode.workspace.getConfiguration(LOCAL_BACKEND_SECTION);
    return {
      python: resolvePythonSetting(section.get<unknown>('python'), vscode.workspace.workspaceFolders?.[0]?.uri.fsPath),
      allowModelDownloads: section.get<unknown>('allowModelDownloads') === true,
    };
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
    this.backendsChanged.dispose();
    this.localChanged.dispose();
  }
}
