// The runs sidebar (view `finetune.runs`): backends → runs → checkpoints, and under each connected backend a
// "Datasets" node with its uploaded files; read from the RunsModel only — no I/O in getChildren. A backend that cannot be reached shows one child with the reason and the action that helps. Nodes
// are kept per key so that a change refreshes one node (`onDidChangeTreeData.fire(node)`) and `reveal` finds it.
import * as vscode from 'vscode';
import type { FileObject, FineTuningJobCheckpoint } from '../common/api';
import type { RunsModel } from './runsModel';
import { isFinal } from './runsModel';
import { checkpointDescription, checkpointLabel, connectionDescription, datasetsDescription, fileDescription, fileTooltip, runDescription, runLabel, runTooltip, statusIcon } from './runsText';

// The run reference lives in the pure model module (unit-tested under plain Node); the form imports it from here.
export { runRefOf, type RunRef } from './runsModel';
import type { RunRef } from './runsModel';

/** A backend node. */
export class BackendNode {
  readonly kind = 'backend';
  constructor(readonly backend: string) {}
}

/** A run node; carries `backend` and `jobId` for command handlers (see RunRef). */
export class RunNode implements RunRef {
  readonly kind = 'run';
  constructor(
    readonly backend: string,
    readonly jobId: string,
  ) {}
}

/** A checkpoint node. */
export class CheckpointNode {
  readonly kind = 'checkpoint';
  constructor(
    readonly backend: string,
    readonly jobId: string,
    readonly checkpoint: FineTuningJobCheckpoint,
  ) {}
}

/** A backend's "Datasets" node: its uploaded files below it. */
export class DatasetsNode {
  readonly kind = 'datasets';
  constructor(readonly backend: string) {}
}

/** An uploaded file; carries `backend` and `fileId` for command handlers ("Delete File", "Copy ID"). */
export class FileNode {
  readonly kind = 'file';
  constructor(
    readonly backend: string,
    readonly fileId: string,
    public file: FileObject,
  ) {}
}

/**
 * The one child of a backend that could not be reached (or is starting, or has no runs), or of a Datasets node
 * (loading, empty, or why the files could not be listed) when `underDatasets`.
 */
export class MessageNode {
  readonly kind = 'message';
  constructor(
    readonly backend: string,
    readonly text: string,
    readonly reason: string | undefined,
    readonly underDatasets = false,
  ) {}
}

/** Any node of the tree. */
export type RunsTreeNode = BackendNode | RunNode | CheckpointNode | DatasetsNode | FileNode | MessageNode;

/** A file reference from a command argument (a file node, or anything with those two strings); else undefined. */
export function fileRefOf(arg: unknown): { backend: string; fileId: string } | undefined {
  if (typeof arg !== 'object' || arg === null) return undefined;
  const { backend, fileId } = arg as { backend?: unknown; fileId?: unknown };
  return typeof backend === 'string' && typeof fileId === 'string' ? { backend, fileId } : undefined;
}

/** Where the backend's URL comes from, for descriptions. */
export interface BackendUrls {
  urlOf(backend: string): string | undefined;
  /** Whether the backend's key is one the user can set (remote backends). */
  isRemote(backend: string): boolean;
}

/** The tree's data (see the file comment). */
export class RunsTreeProvider implements vscode.TreeDataProvider<RunsTreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<RunsTreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly backendNodes = new Map<string, BackendNode>();
  private readonly runNodes = new Map<string, RunNode>();
  private readonly checkpointNodes = new Map<string, CheckpointNode>();
  private readonly datasetsNodes = new Map<string, DatasetsNode>();
  private readonly fileNodes = new Map<string, FileNode>();
  private readonly stopListening: () => void;

  constructor(
    private readonly model: RunsModel,
    private readonly urls: BackendUrls,
  ) {
    this.stopListening = model.onChange((change) => {
      if (change.kind === 'backends') this.changed.fire(undefined);
      else if (change.kind === 'backend') this.changed.fire(this.backendNode(change.backend));
      else if (change.kind === 'files') this.changed.fire(this.datasetsNode(change.backend));
      // A new run changes its backend's children; a known one only itself.
      else if (change.added) this.changed.fire(this.backendNode(change.backend));
      else this.changed.fire(this.runNode(change.backend, change.jobId));
    });
  }

  backendNode(backend: string): BackendNode {
    let node = this.backendNodes.get(backend);
    if (!node) {
      node = new BackendNode(backend);
      this.backendNodes.set(backend, node);
    }
    return node;
  }

  runNode(backend: string, jobId: string): RunNode {
    const k = `${backend}\u0000${jobId}`;
    let node = this.runNodes.get(k);
    if (!node) {
      node = new RunNode(backend, jobId);
      this.runNodes.set(k, node);
    }
    return node;
  }

  datasetsNode(backend: string): DatasetsNode {
    let node = this.datasetsNodes.get(backend);
    if (!node) {
      node = new DatasetsNode(backend);
      this.datasetsNodes.set(backend, node);
    }
    return node;
  }

  /** The node of a file the model holds (the same node object while the file stays, so `reveal` finds it). */
  fileNode(backend: string, file: FileObject): FileNode {
    const k = `${backend}\u0000${file.id}`;
    const existing = this.fileNodes.get(k);
    if (existing) {
      existing.file = file;
      return existing;
    }
    const node = new FileNode(backend, file.id, file);
    this.fileNodes.set(k, node);
    return node;
  }

  private checkpointNode(backend: string, jobId: string, checkpoint: FineTuningJobCheckpoint): CheckpointNode {
    const k = `${backend}\u0000${checkpoint.id}`;
    const existing = this.checkpointNodes.get(k);
    if (existing && existing.checkpoint === checkpoint) return existing;
    const node = existing ? Object.assign(existing, { checkpoint }) : new CheckpointNode(backend, jobId, checkpoint);
    this.checkpointNodes.set(k, node);
    return node;
  }

  getChildren(node?: RunsTreeNode): RunsTreeNode[] {
    if (node === undefined) return this.model.backendList().map((b) => this.backendNode(b.name));
    if (node instanceof BackendNode) {
      const backend = this.model.backend(node.backend);
      if (!backend) return [];
      const connection = backend.connection;
      if (connection.kind === 'failed') return [new MessageNode(node.backend, connection.message, connection.reason)];
      if (!backend.filled) {
        const text = connection.kind === 'connecting' ? vscode.l10n.t('Connecting…') : vscode.l10n.t('Not connected yet');
        return [new MessageNode(node.backend, text, undefined)];
      }
      const runs = this.model.runsOf(node.backend);
      // The runs first (what the view is for), the datasets after them.
      const datasets = this.datasetsNode(node.backend);
      if (runs.length === 0) return [new MessageNode(node.backend, vscode.l10n.t('No training runs yet'), 'empty'), datasets];
      return [...runs.map((r) => this.runNode(node.backend, r.job.id)), datasets];
    }
    if (node instanceof DatasetsNode) return this.datasetChildren(node.backend);
    if (node instanceof RunNode) {
      const run = this.model.run(node.backend, node.jobId);
      return (run?.checkpoints ?? []).map((c) => this.checkpointNode(node.backend, node.jobId, c)).reverse();
    }
    return [];
  }

  private datasetChildren(backend: string): RunsTreeNode[] {
    const entry = this.model.backend(backend);
    if (!entry) return [];
    const files = this.model.filesOf(backend).map((f) => this.fileNode(backend, f));
    if (files.length > 0) return files;
    if (entry.filesError !== undefined) return [new MessageNode(backend, entry.filesError, 'files', true)];
    const text = entry.filesListed ? vscode.l10n.t('No datasets uploaded yet') : vscode.l10n.t('Loading…');
    return [new MessageNode(backend, text, 'empty', true)];
  }

  getParent(node: RunsTreeNode): RunsTreeNode | undefined {
    if (node instanceof BackendNode) return undefined;
    if (node instanceof CheckpointNode) return this.runNode(node.backend, node.jobId);
    if (node instanceof FileNode || (node instanceof MessageNode && node.underDatasets)) return this.datasetsNode(node.backend);
    return this.backendNode(node.backend);
  }

  getTreeItem(node: RunsTreeNode): vscode.TreeItem {
    if (node instanceof BackendNode) return this.backendItem(node);
    if (node instanceof RunNode) return this.runItem(node);
    if (node instanceof CheckpointNode) return checkpointItem(node);
    if (node instanceof DatasetsNode) return this.datasetsItem(node);
    if (node instanceof FileNode) return fileItem(node);
    return this.messageItem(node);
  }

  /**
   * Hovering a file computes its tooltip afresh: which runs use it changes with the runs, and refreshing every
   * file on every run change would repaint the Datasets node for nothing.
   */
  resolveTreeItem(item: vscode.TreeItem, node: RunsTreeNode): vscode.TreeItem {
    if (node instanceof FileNode) item.tooltip = new vscode.MarkdownString(fileTooltip(node.file, this.model.runsUsingFile(node.backend, node.fileId)), true);
    return item;
  }

  private datasetsItem(node: DatasetsNode): vscode.TreeItem {
    const entry = this.model.backend(node.backend);
    const item = new vscode.TreeItem(vscode.l10n.t('Datasets'), vscode.TreeItemCollapsibleState.Collapsed);
    item.id = `datasets:${node.backend}`;
    item.description = datasetsDescription(entry?.filesListed === true ? entry.files.size : undefined);
    item.iconPath = new vscode.ThemeIcon('database');
    item.tooltip = vscode.l10n.t('The datasets uploaded to {0}', node.backend);
    item.contextValue = 'datasets';
    return item;
  }

  private backendItem(node: BackendNode): vscode.TreeItem {
    const backend = this.model.backend(node.backend);
    const item = new vscode.TreeItem(node.backend, vscode.TreeItemCollapsibleState.Expanded);
    item.id = `backend:${node.backend}`;
    const connection = backend?.connection ?? { kind: 'idle' as const };
    item.description = connectionDescription(connection, this.urls.urlOf(node.backend));
    item.iconPath = new vscode.ThemeIcon(connection.kind === 'failed' ? 'debug-disconnect' : 'server');
    item.contextValue = this.urls.isRemote(node.backend) ? 'backend.remote' : 'backend.local';
    item.tooltip = `${node.backend}${this.urls.urlOf(node.backend) ? ` — ${this.urls.urlOf(node.backend)}` : ''}`;
    return item;
  }

  private runItem(node: RunNode): vscode.TreeItem {
    const run = this.model.run(node.backend, node.jobId);
    if (!run) return new vscode.TreeItem(node.jobId);
    const job = run.job;
    // Checkpoints not read yet are read when the node expands (Training listens), so any run past its queue may have some.
    const hasCheckpoints = run.checkpoints.length > 0 || (!run.checkpointsLoaded && job.status !== 'queued' && job.status !== 'validating_files');
    const item = new vscode.TreeItem(runLabel(job), hasCheckpoints ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    item.id = `run:${node.backend}:${node.jobId}`;
    item.description = runDescription(job, Date.now() / 1000);
    const icon = statusIcon(job.status);
    const color = job.status === 'succeeded' ? 'testing.iconPassed' : job.status === 'failed' ? 'testing.iconFailed' : undefined;
    item.iconPath = new vscode.ThemeIcon(icon, color === undefined ? undefined : new vscode.ThemeColor(color));
    item.tooltip = new vscode.MarkdownString(runTooltip(run), true);
    item.contextValue = `run:${job.status}${isFinal(job.status) ? ':final' : ''}`;
    // A click opens the run's dashboard (expanding stays on the twistie).
    item.command = { title: vscode.l10n.t('Open Dashboard'), command: 'finetune.openDashboard', arguments: [node] };
    return item;
  }

  private messageItem(node: MessageNode): vscode.TreeItem {
    const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
    item.tooltip = node.text;
    if (node.reason === 'unauthorized' && this.urls.isRemote(node.backend)) {
      item.iconPath = new vscode.ThemeIcon('key');
      item.contextValue = 'message.unauthorized';
      item.command = { title: vscode.l10n.t('Set API Key'), command: 'finetune.setApiKey', arguments: [this.backendNode(node.backend)] };
    } else if (node.reason === 'files') {
      item.iconPath = new vscode.ThemeIcon('warning');
      item.contextValue = 'message.files';
      item.command = { title: vscode.l10n.t('Retry'), command: 'finetune.refreshBackend', arguments: [this.backendNode(node.backend)] };
    } else if (node.reason !== undefined && node.reason !== 'empty') {
      item.iconPath = new vscode.ThemeIcon('warning');
      item.contextValue = 'message.failed';
      item.command = { title: vscode.l10n.t('Retry'), command: 'finetune.refreshBackend', arguments: [this.backendNode(node.backend)] };
    } else {
      item.contextValue = 'message';
    }
    return item;
  }

  dispose(): void {
    this.stopListening();
    this.changed.dispose();
  }
}

function checkpointItem(node: CheckpointNode): vscode.TreeItem {
  const item = new vscode.TreeItem(checkpointLabel(node.checkpoint), vscode.TreeItemCollapsibleState.None);
  item.id = `checkpoint:${node.backend}:${node.checkpoint.id}`;
  item.description = checkpointDescription(node.checkpoint);
  item.iconPath = new vscode.ThemeIcon('package');
  item.tooltip = node.checkpoint.fine_tuned_model_checkpoint;
  item.contextValue = 'checkpoint';
  return item;
}

function fileItem(node: FileNode): vscode.TreeItem {
  const item = new vscode.TreeItem(node.file.filename, vscode.TreeItemCollapsibleState.None);
  item.id = `file:${node.backend}:${node.fileId}`;
  item.description = fileDescription(node.file);
  item.iconPath = new vscode.ThemeIcon('file');
  // The tooltip comes from resolveTreeItem, when the user hovers.
  item.contextValue = 'file';
  return item;
}
