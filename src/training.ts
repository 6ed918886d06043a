// The training side of the extension (issue 6): the backends (settings, keys, the local backend), the runs
// sidebar, the status-bar item of the run in progress, and notifications when runs finish. It connects lazily:
// when the runs view is shown or a command needs a backend. Failures reach the user once per backend and
// reason, with the action that helps; details go to the log.
import * as vscode from 'vscode';
import { BackendError } from './backendErrors';
import type { BackendRegistry } from './backendRegistry';
import { Backends } from './backends';
import type { CommandFactory } from './commands';
import type { Config } from './config';
import { RunNotifications, type ShownNotification } from './runNotifications';
import { RunsModel } from './runsModel';
import { RunStatusBar, type RunStatusBarView } from './runStatusBar';
import { fileInUseMessage } from './runsText';
import { CheckpointNode, fileRefOf, RunNode, RunsTreeProvider, runRefOf, type RunsTreeNode } from './runsTree';
import { saveOptionsOf, saveTargetOf, saveToRepository, setRepository } from './saveAdapter';

/** What the training side needs from the extension. */
export interface TrainingDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  config: Config;
  showError(message: string): void;
}

/** What "Delete File" told the user, kept for the in-host tests (as notifications keep theirs). */
export interface ShownFileMessage {
  backend: string;
  fileId: string;
  /** `deleted`; `in_use` when the backend refused because a run that has not finished uses the file; `failed`. */
  outcome: 'deleted' | 'in_use' | 'failed';
  message: string;
}

/** What the extension's API exposes of the training side, for the in-host tests and other extensions. */
export interface TrainingApi {
  readonly backends: BackendRegistry;
  readonly model: RunsModel;
  readonly tree: vscode.TreeDataProvider<RunsTreeNode> & { readonly onDidChangeTreeData: vscode.Event<RunsTreeNode | undefined> };
  readonly statusBar: RunStatusBarView;
  readonly notifications: { readonly shown: readonly ShownNotification[]; readonly onDidShow: vscode.Event<ShownNotification> };
  /** The outcomes of "Delete File", in order. */
  readonly fileMessages: { readonly shown: readonly ShownFileMessage[]; readonly onDidShow: vscode.Event<ShownFileMessage> };
}

/** The id of the runs view (package.json `contributes.views`). */
export const RUNS_VIEW_ID = 'finetune.runs';

/** Backends, the runs tree, the status-bar item of the run in progress, notifications. */
export class Training implements vscode.Disposable {
  readonly backends: Backends;
  readonly model = new RunsModel();
  readonly api: TrainingApi;
  private readonly tree: RunsTreeProvider;
  private readonly view: vscode.TreeView<RunsTreeNode>;
  private readonly statusBar: RunStatusBar;
  private readonly notifications: RunNotifications;
  /** The reason last shown to the user per backend: a failure is shown once until the backend connects again. */
  private readonly shownFailures = new Map<string, string>();
  private readonly scope: vscode.Disposable[] = [];
  private readonly fileShown: ShownFileMessage[] = [];
  private readonly fileShownEmitter = new vscode.EventEmitter<ShownFileMessage>();

  constructor(readonly deps: TrainingDeps) {
    this.backends = new Backends({
      extension: deps.extension,
      log: deps.log,
      config: deps.config,
      model: this.model,
      onFailure: (backend, error) => this.reportFailure(backend, error),
    });
    this.tree = new RunsTreeProvider(this.model, {
      urlOf: (backend) => this.backends.entries().find((e) => e.name === backend)?.url,
      isRemote: (backend) => this.backends.isRemote(backend),
    });
    // Several runs may be selected: "Compare Runs" takes the selection.
    this.view = vscode.window.createTreeView(RUNS_VIEW_ID, { treeDataProvider: this.tree, showCollapseAll: true, canSelectMany: true });
    this.backends.revealer = (backend, jobId) => this.reveal(backend, jobId);
    this.statusBar = new RunStatusBar(this.model);
    // "Show Run" opens the run's dashboard and reveals it in the tree (the command does both).
    this.notifications = new RunNotifications({
      model: this.model,
      log: deps.log,
      showRun: async (backend, jobId) => {
        await vscode.commands.executeCommand('finetune.showRun', { backend, jobId });
      },
    });
    this.scope.push(
      this.view.onDidChangeVisibility((event) => {
        if (event.visible) this.backends.connectAll();
      }),
      this.view.onDidExpandElement((event) => {
        if (event.element instanceof RunNode) void this.loadCheckpoints(event.element.backend, event.element.jobId);
      }),
      // A newly added backend shows up while the view is open: connect it too.
      this.backends.onDidChange(() => {
        if (this.view.visible) this.backends.connectAll();
      }),
    );
    this.model.onChange((change) => {
      if (change.kind === 'backend' && this.model.backend(change.backend)?.connection.kind === 'connected') this.shownFailures.delete(change.backend);
    });
    if (this.view.visible) this.backends.connectAll();
    this.api = {
      backends: this.backends,
      model: this.model,
      tree: this.tree,
      statusBar: this.statusBar,
      notifications: this.notifications,
      fileMessages: { shown: this.fileShown, onDidShow: this.fileShownEmitter.event },
    };
  }

  /**
   * Deletes an uploaded file after a modal confirmation naming it (`confirm: false` skips it, for callers that
   * asked already). The backend refuses (409) while a run that has not finished uses the file: the user is told
   * which run, and the file stays in the tree.
   */
  async deleteFile(backend: string, fileId: string, confirm: boolean): Promise<void> {
    const file = this.model.file(backend, fileId);
    const name = file?.filename ?? fileId;
    if (confirm) {
      const remove = vscode.l10n.t('Delete');
      const answer = await vscode.window.showWarningMessage(
        vscode.l10n.t('Delete the dataset {0} from {1}?', name, backend),
        { modal: true, detail: vscode.l10n.t('The file is removed from the backend; runs that finished with it keep their results. This cannot be undone.') },
        remove,
      );
      if (answer !== remove) return;
    }
    const client = await this.backends.client(backend);
    try {
      await client.deleteFile(fileId);
    } catch (error) {
      if (!BackendError.is(error)) throw error;
      const inUse = error.status === 409;
      const message = inUse
        ? fileInUseMessage({ filename: name, id: fileId }, this.model.runsUsingFile(backend, fileId), error.message)
        : vscode.l10n.t('{0} was not deleted: {1}', name, error.message);
      this.deps.log.warn(`${backend}: DELETE ${fileId}: ${error.message}`);
      this.showFileMessage({ backend, fileId, outcome: inUse ? 'in_use' : 'failed', message });
      // A file someone else deleted already is gone: the listing says so.
      if (error.status === 404) await this.backends.refreshFiles(backend);
      return;
    }
    this.model.removeFile(backend, fileId);
    this.deps.log.info(`${backend}: deleted ${fileId} (${name}).`);
    const shown: ShownFileMessage = { backend, fileId, outcome: 'deleted', message: name };
    this.fileShown.push(shown);
    this.fileShownEmitter.fire(shown);
  }

  private showFileMessage(shown: ShownFileMessage): void {
    this.fileShown.push(shown);
    this.fileShownEmitter.fire(shown);
    const showLogs = vscode.l10n.t('Show Logs');
    void vscode.window.showErrorMessage(shown.message, ...(shown.outcome === 'failed' ? [showLogs] : [])).then((action) => {
      if (action === showLogs) this.deps.log.show(true);
    });
  }

  /** Reads a run's checkpoint list once (the live stream adds the later ones). */
  private async loadCheckpoints(backend: string, jobId: string): Promise<void> {
    const run = this.model.run(backend, jobId);
    if (!run || run.checkpointsLoaded) return;
    try {
      const client = await this.backends.client(backend);
      this.model.setCheckpoints(backend, jobId, (await client.listCheckpoints(jobId, { limit: 100 })).data);
    } catch (error) {
      this.deps.log.warn(`${backend}: the checkpoints of ${jobId} could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async reveal(backend: string, jobId: string): Promise<void> {
    if (this.model.run(backend, jobId) === undefined) return;
    await this.view.reveal(this.tree.runNode(backend, jobId), { select: true, focus: true, expand: false });
  }

  /** Shows a backend's failure once per reason, with the action that helps. */
  private reportFailure(backend: string, error: BackendError): void {
    if (this.shownFailures.get(backend) === error.reason) return;
    this.shownFailures.set(backend, error.reason);
    const message = `${backend}: ${error.message}`;
    const setKey = vscode.l10n.t('Set API Key');
    const retry = vscode.l10n.t('Retry');
    const showLogs = vscode.l10n.t('Show Logs');
    const actions = error.reason === 'unauthorized' && this.backends.isRemote(backend) ? [setKey] : [retry, showLogs];
    void vscode.window.showErrorMessage(message, ...actions).then(async (action) => {
      if (action === setKey) await vscode.commands.executeCommand('finetune.setApiKey', { backend });
      if (action === retry) await this.backends.refresh(backend);
      if (action === showLogs) this.deps.log.show(true);
    });
  }

  /** Stops the local backend; deactivation awaits this. */
  async stop(): Promise<void> {
    await this.backends.stop();
  }

  dispose(): void {
    for (const d of this.scope) d.dispose();
    this.notifications.dispose();
    this.fileShownEmitter.dispose();
    this.statusBar.dispose();
    this.view.dispose();
    this.tree.dispose();
    this.backends.dispose();
  }
}

/** The backend a command was given (any node of the tree), or the one the user picks. */
async function backendArg(training: Training, arg: unknown, placeHolder: string, remoteOnly = false): Promise<string | undefined> {
  if (typeof arg === 'object' && arg !== null && typeof (arg as { backend?: unknown }).backend === 'string') return (arg as { backend: string }).backend;
  const entries = training.backends.entries().filter((e) => !remoteOnly || training.backends.isRemote(e.name));
  if (entries.length === 0) {
    void vscode.window.showInformationMessage(remoteOnly ? vscode.l10n.t('No remote backend is configured.') : vscode.l10n.t('No backend is configured.'));
    return undefined;
  }
  if (entries.length === 1) return entries[0].name;
  const picked = await vscode.window.showQuickPick(
    entries.map((e) => ({ label: e.name, description: e.url ?? '' })),
    { placeHolder },
  );
  return picked?.label;
}

/** The commands of the training side, by id (merged into commands.ts's table). */
export const trainingCommandFactories: Readonly<Record<string, CommandFactory>> = {
  'finetune.startLocalBackend': (ctx) => async () => {
    await ctx.training.backends.chooseLocal();
    await vscode.commands.executeCommand(`${RUNS_VIEW_ID}.focus`);
  },

  'finetune.addBackend': (ctx) => async () => {
    const name = await ctx.training.backends.addInteractively();
    if (name !== undefined) await ctx.training.backends.connect(name, true);
  },

  'finetune.removeBackend': (ctx) => async (arg?: unknown) => {
    const name = await backendArg(ctx.training, arg, vscode.l10n.t('Remove which backend?'));
    if (name === undefined) return;
    const remove = vscode.l10n.t('Remove');
    const answer = await vscode.window.showWarningMessage(
      vscode.l10n.t('Remove the backend {0} from the sidebar? Its runs stay on the backend.', name),
      { modal: true },
      remove,
    );
    if (answer === remove) await ctx.training.backends.remove(name);
  },

  'finetune.setApiKey': (ctx) => async (arg?: unknown) => {
    const name = await backendArg(ctx.training, arg, vscode.l10n.t('Set the API key of which backend?'), true);
    if (name === undefined) return;
    if (!ctx.training.backends.isRemote(name)) {
      void vscode.window.showInformationMessage(vscode.l10n.t('{0} needs no API key: the extension hands it over itself.', name));
      return;
    }
    if ((await ctx.training.backends.askKey(name)) !== undefined) await ctx.training.backends.refresh(name);
  },

  'finetune.refreshBackend': (ctx) => async (arg?: unknown) => {
    const given = typeof arg === 'object' && arg !== null ? (arg as { backend?: unknown }).backend : undefined;
    const names = typeof given === 'string' ? [given] : ctx.training.backends.entries().map((e) => e.name);
    await Promise.all(names.map((name) => ctx.training.backends.refresh(name)));
  },

  'finetune.cancelRun': (ctx) => async (arg?: unknown) => {
    const ref = runRefOf(arg);
    if (!ref) return;
    const client = await ctx.training.backends.client(ref.backend);
    ctx.training.model.applyJob(ref.backend, await client.cancelJob(ref.jobId));
  },

  'finetune.copyRunId': () => async (arg?: unknown) => {
    const ref = runRefOf(arg);
    if (ref) await vscode.env.clipboard.writeText(ref.jobId);
  },

  'finetune.copyModelName': () => async (arg?: unknown) => {
    if (arg instanceof CheckpointNode) await vscode.env.clipboard.writeText(arg.checkpoint.fine_tuned_model_checkpoint);
  },

  // From a file node's context menu (VS Code passes the node, then the selection). A caller that confirmed already
  // passes `{ confirm: false }` second.
  'finetune.deleteFile': (ctx) => async (arg?: unknown, options?: unknown) => {
    const ref = fileRefOf(arg);
    if (!ref) return;
    const confirm = !(typeof options === 'object' && options !== null && !Array.isArray(options) && (options as { confirm?: unknown }).confirm === false);
    await ctx.training.deleteFile(ref.backend, ref.fileId, confirm);
  },

  'finetune.copyFileId': () => async (arg?: unknown) => {
    const ref = fileRefOf(arg);
    if (ref) await vscode.env.clipboard.writeText(ref.fileId);
  },

  // From a checkpoint node's context menu, or with `{ backend, jobId, checkpointId }`; a caller that answered the
  // overwrite question already passes `{ overwrite: true | false }` second.
  'finetune.saveToRepository': (ctx) => async (arg?: unknown, options?: unknown) => {
    const target = saveTargetOf(arg);
    if (target) await saveToRepository(ctx.training, target, saveOptionsOf(options));
  },

  'finetune.setRepository': (ctx) => async () => {
    await setRepository(ctx.config);
  },

  // The status-bar item and the "Show Run" notification: the run's dashboard, and the run revealed in the tree.
  'finetune.showRun': (ctx) => async (arg?: unknown) => {
    const ref = runRefOf(arg);
    if (!ref) return;
    await ctx.training.backends.revealRun(ref.backend, ref.jobId);
    await ctx.dashboards.open([ref]);
  },
};
