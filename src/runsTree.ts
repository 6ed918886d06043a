// The runs sidebar (view `finetune.runs`): backends → runs → checkpoints, and under each connected backend a
// "Datasets" node with its uploaded files; read from the RunsModel only — no I/O in getChildren. A backend that cannot be reached shows one child with the reason and the action that helps. Nodes
// are kept per key so that a change refreshes one node (`onDidChangeTreeData.fire(node)`) and `reveal` finds it;
// which nodes, and when, is src/runsRefresh.ts's decision (a row is refreshed only when what it shows changes, a
// running run's progress at most once a second), because every refresh can cost the user a click on that row.
import * as vscode from 'vscode';
import type { FileObject, FineTuningJobCheckpoint } from '../common/api';
import type { RunsModel } from './runsModel';
import { RunRowCommands } from './runRowCommands';
import { backendChildren, RunsTreeRefresh, type BackendChild, type BackendUrls, type RefreshTarget } from './runsRefresh';
import { checkpointDescription, checkpointLabel, datasetsDescription, fileDescription, fileTooltip, runTooltip } from './runsText';

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

export type { BackendUrls } from './runsRefresh';

/** The tree's data (see the file comment). */
export class RunsTreeProvider implements vscode.TreeDataProvider<RunsTreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<RunsTreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly backendNodes = new Map<string, BackendNode>();
  private readonly runNodes = new Map<string, RunNode>();
  private readonly checkpointNodes = new Map<string, CheckpointNode>();
  private readonly datasetsNodes = new Map<string, DatasetsNode>();
  private readonly fileNodes = new Map<string, FileNode>();
  private readonly refresh: RunsTreeRefresh;
  /** The click command of each run's row (see src/runRowCommands.ts). */
  private readonly rowCommands = new RunRowCommands((run) => vscode.commands.executeCommand('finetune.openDashboard', run));
  private readonly stopListening: () => void;

  constructor(
    private readonly model: RunsModel,
    private readonly urls: BackendUrls,
  ) {
    this.refresh = new RunsTreeRefresh(model, urls, (target) => this.changed.fire(this.nodeOf(target)));
    // A run gone from the model (a reset, a removed backend) takes its row's command with it.
    this.stopListening = model.onChange((change) => {
      if (change.kind === 'backend' || change.kind === 'backends') this.rowCommands.prune((run) => model.run(run.backend, run.jobId) !== undefined);
    });
  }

  private nodeOf(target: RefreshTarget): RunsTreeNode | undefined {
    switch (target.kind) {
      case 'all':
        return undefined;
      case 'backend':
        return this.backendNode(target.backend);
      case 'datasets':
        return this.datasetsNode(target.backend);
      case 'run':
        return this.runNode(target.backend, target.jobId);
    }
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
    if (node instanceof BackendNode) return backendChildren(this.model, node.backend).map((child) => this.backendChild(node.backend, child));
    if (node instanceof DatasetsNode) return this.datasetChildren(node.backend);
    if (node instanceof RunNode) {
      const run = this.model.run(node.backend, node.jobId);
      return run ? this.refresh.runView(run).checkpoints.map((c) => this.checkpointNode(node.backend, node.jobId, c)) : [];
    }
    return [];
  }

  private backendChild(backend: string, child: BackendChild): RunsTreeNode {
    switch (child.kind) {
      case 'failed':
        return new MessageNode(backend, child.message, child.reason);
      case 'connecting':
        return new MessageNode(backend, vscode.l10n.t('Connecting…'), undefined);
      case 'notConnected':
        return new MessageNode(backend, vscode.l10n.t('Not connected yet'), undefined);
      case 'empty':
        return new MessageNode(backend, vscode.l10n.t('No training runs yet'), 'empty');
      case 'run':
        return this.runNode(backend, child.jobId);
      case 'datasets':
        return this.datasetsNode(backend);
    }
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
   * Hovering a file or a run computes its tooltip afresh: which runs use a file changes with the runs, and a
   * run's trained tokens change at every step; refreshing the rows for that would repaint them for nothing.
   */
  resolveTreeItem(item: vscode.TreeItem, node: RunsTreeNode): vscode.TreeItem {
    if (node instanceof FileNode) item.tooltip = new vscode.MarkdownString(fileTooltip(node.file, this.model.runsUsingFile(node.backend, node.fileId)), true);
    if (node instanceof RunNode) {
      const run = this.model.run(node.backend, node.jobId);
      if (run) item.tooltip = new vscode.MarkdownString(runTooltip(run), true);
    }
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
    const { view } = this.refresh.backendView(node.backend);
    this.refresh.renderedBackend(node.backend, view);
    const item = new vscode.TreeItem(view.label, vscode.TreeItemCollapsibleState.Expanded);
    item.id = `backend:${node.backend}`;
    item.description = view.description;
    item.iconPath = new vscode.ThemeIcon(view.icon);
    item.contextValue = view.contextValue;
    item.tooltip = view.tooltip;
    return item;
  }

  /** Built from the same view that the refresh compares, so that what is compared is what VS Code shows. */
  private runItem(node: RunNode): vscode.TreeItem {
    const run = this.model.run(node.backend, node.jobId);
    if (!run) return new vscode.TreeItem(node.jobId);
    const view = this.refresh.runView(run);
    this.refresh.renderedRun(node.backend, node.jobId, view);
    const item = new vscode.TreeItem(view.label, view.collapsible ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    item.id = `run:${node.backend}:${node.jobId}`;
    item.description = view.description;
    item.iconPath = new vscode.ThemeIcon(view.icon, view.color === undefined ? undefined : new vscode.ThemeColor(view.color));
    // The tooltip comes from resolveTreeItem, when the user hovers.
    item.contextValue = view.contextValue;
    // A click opens the run's dashboard (expanding stays on the twistie), through a command of the run's own that
    // carries no arguments, so that no refresh of the row invalidates it.
    item.command = { title: vscode.l10n.t('Open Dashboard'), command: this.rowCommands.idOf(node) };
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
    this.rowCommands.dispose();
    this.refresh.dispose();
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
