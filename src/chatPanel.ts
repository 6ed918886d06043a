// "Finetune: Test Checkpoint" (issue 7): a chat panel bound to a checkpoint (or a fine-tuned model, or a saved
// adapter) of a backend, with generation settings, streamed Markdown answers, stop, retry, compare with a second
// checkpoint or the base model, and export of the conversation as a dataset line (webview/chat/).
//
// The host owns the conversation and the generations (it holds the backend client and the abort controllers);
// the webview renders the views and deltas it is sent and keeps the last state with setState, which the
// serializer hands back after a window reload. Logic that needs no vscode is in chatModel.ts.
import { appendFile, open as openFile } from 'node:fs/promises';
import { basename } from 'node:path';
import * as vscode from 'vscode';
import type { FineTuningJob, FineTuningJobCheckpoint } from '../common/api';
import {
  ChatClearRequest,
  ChatCompareRequest,
  ChatCopyRequest,
  ChatDeltaNotification,
  ChatEditNotification,
  ChatExportRequest,
  ChatReadyRequest,
  ChatRetryRequest,
  ChatSendRequest,
  ChatSnapshotRequest,
  ChatStopNotification,
  ChatViewNotification,
  type Answer,
  type ChatSnapshot,
  type ChatState,
  type ChatTarget,
  type ChatView,
  type CompareChoice,
  type GenerationTexts,
  type Side,
} from '../webview/chat/protocol';
import { IpcEndpoint } from '../webview/protocol';
import { BackendError } from './backendErrors';
import type { BackendRegistry } from './backendRegistry';
import {
  answerStats,
  appendedText,
  chatRequest,
  chatTitle,
  checkpointName,
  compareChoices,
  defaultGenerationTexts,
  exportLine,
  finalTarget,
  isChatState,
  messagesFor,
  parseGenerationSettings,
  pendingAnswer,
  prefillSystem,
  randomSeed,
  type GenerationSettings,
} from './chatModel';
import { chatWebviewStrings } from './chatStrings';
import type { CommandFactory } from './commands';
import type { RunsModel } from './runsModel';
import { pickChatTarget } from './testCheckpoint';
import { webviewPageHtml, webviewPanelOptions } from './webviewPage';

/** What the chat panels need from the extension. */
export interface ChatDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  backends: BackendRegistry;
  model: RunsModel;
}

/** A model to chat with: a checkpoint of a run (`checkpointId`), or a model name the backend serves. */
export interface ChatTargetRef {
  backend: string;
  /** The chat `model`: a checkpoint's `fine_tuned_model_checkpoint`, a job's `fine_tuned_model`, a base model id,
   * or a saved adapter's id. */
  model: string;
  jobId?: string;
  checkpointId?: string;
}

/** What the extension's API exposes of the chat panels, for the in-host tests. */
export interface ChatApi {
  /** Opens a chat panel bound to that model (resolves with the panel once its webview is set up). */
  open(target: ChatTargetRef): Promise<ChatPanel>;
  /** The open panels, oldest first. */
  panels(): readonly ChatPanel[];
  /** Fires when a panel opens (from a command, the tree, the dashboard or a reload). */
  readonly onDidOpen: vscode.Event<ChatPanel>;
}

/** A chat failure shown in the panel: `settings` (a field is wrong), `busy`, `empty`, `backend`. */
class ChatError extends Error {
  constructor(
    readonly code: 'settings' | 'busy' | 'empty' | 'backend' | 'export',
    message: string,
  ) {
    super(message);
  }
}

/** Every chat panel of the window. */
export class ChatPanels implements vscode.Disposable {
  static readonly viewType = 'finetune.chat';
  readonly api: ChatApi;
  private readonly open_ = new Set<ChatPanel>();
  private readonly opened = new vscode.EventEmitter<ChatPanel>();
  private readonly registrations: vscode.Disposable[] = [];

  constructor(readonly deps: ChatDeps) {
    this.api = { open: (target) => this.open(target), panels: () => [...this.open_], onDidOpen: this.opened.event };
    this.registrations.push(
      this.opened,
      vscode.window.registerWebviewPanelSerializer(ChatPanels.viewType, {
        deserializeWebviewPanel: (panel, state: unknown) => {
          // Without its state the panel cannot know what it talked to: nothing to bring back.
          if (!isChatState(state)) panel.dispose();
          else this.adopt(panel, revivedState(state), []);
          return Promise.resolve();
        },
      }),
    );
  }

  /** Opens a chat panel bound to that model: reads the run (title, system prompt, compare choices) first. */
  async open(ref: ChatTargetRef): Promise<ChatPanel> {
    const client = await this.deps.backends.client(ref.backend);
    let job: FineTuningJob | undefined;
    let checkpoints: FineTuningJobCheckpoint[] = [];
    if (ref.jobId !== undefined) {
      [job, checkpoints] = await Promise.all([client.getJob(ref.jobId), client.listCheckpoints(ref.jobId, { limit: 100 }).then((page) => page.data)]);
    }
    const checkpoint = checkpoints.find((c) => c.id === ref.checkpointId || c.fine_tuned_model_checkpoint === ref.model);
    let label = ref.model;
    if (job !== undefined && checkpoint !== undefined) label = checkpointName(job, checkpoint);
    else if (job !== undefined && job.fine_tuned_model === ref.model) label = finalTarget(ref.backend, job)?.label ?? label;
    const target: ChatTarget = { backend: ref.backend, model: ref.model, label };
    if (ref.jobId !== undefined) target.jobId = ref.jobId;
    if (checkpoint !== undefined || ref.checkpointId !== undefined) target.checkpointId = checkpoint?.id ?? ref.checkpointId;
    // The dataset's shared system prompt (a backend that predates it leaves it out): else the sample's.
    const file = job === undefined ? undefined : await client.getFile(job.training_file).catch((error: unknown) => this.deps.log.warn(`Chat: the training file of ${job?.id ?? ''}: ${String(error)}`));
    const system = prefillSystem(file?.system_prompt, checkpoint ?? checkpoints.at(-1));
    const state: ChatState = { target, compare: null, system: system.text, settings: defaultGenerationTexts(), turns: [] };
    const note = system.source === 'dataset' ? vscode.l10n.t('From the dataset: all its examples share this system prompt.') : system.source === 'sample' ? vscode.l10n.t('From the checkpoint\'s sample conversation.') : '';
    const panel = vscode.window.createWebviewPanel(ChatPanels.viewType, chatTitle(target), vscode.ViewColumn.Active, this.webviewOptions());
    return this.adopt(panel, state, compareChoices(target, job, checkpoints), note);
  }

  /** The options of the chat's webview: scripts, and only dist/webview and media/ as local resources. */
  webviewOptions(): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return webviewPanelOptions(this.deps.extension.extensionUri);
  }

  private adopt(webviewPanel: vscode.WebviewPanel, state: ChatState, choices: CompareChoice[], note = ''): ChatPanel {
    webviewPanel.webview.options = this.webviewOptions();
    webviewPanel.title = chatTitle(state.target);
    const panel = new ChatPanel(webviewPanel, this.deps, state, choices, note);
    this.open_.add(panel);
    webviewPanel.onDidDispose(() => {
      this.open_.delete(panel);
      panel.dispose();
    });
    if (choices.length === 0 && state.target.jobId !== undefined) void panel.loadCompareChoices();
    this.opened.fire(panel);
    return panel;
  }

  dispose(): void {
    for (const registration of this.registrations) registration.dispose();
    for (const panel of [...this.open_]) panel.close();
  }
}

/** A state kept across a reload: what was streaming then was cut off by it. */
function revivedState(state: ChatState): ChatState {
  for (const turn of state.turns) {
    for (const answer of turn.answers) {
      if (answer.state === 'streaming') {
        answer.state = 'stopped';
        answer.stats = answerStats(answer);
      }
    }
  }
  return { ...state, settings: { ...defaultGenerationTexts(), ...state.settings } };
}

/** One chat panel: its conversation, its generations, and its webview. */
export class ChatPanel {
  private readonly ipc: IpcEndpoint;
  private seq = 0;
  private readonly streams = new Map<Answer, AbortController>();
  private readonly running = new Set<Promise<void>>();
  private settingsErrors: ChatView['settingsErrors'] = {};
  private readonly updates = new vscode.EventEmitter<ChatView>();
  private readonly pieces = new vscode.EventEmitter<{ turn: number; side: Side; piece: string }>();
  private readonly readied = new vscode.EventEmitter<void>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private disposed = false;
  private webviewReady = false;
  /** Fires with every view sent to the webview (the in-host tests wait on it). */
  readonly onDidUpdate = this.updates.event;
  /** Fires with every streamed piece of an answer. */
  readonly onDidStream = this.pieces.event;
  /** Fires when the webview has loaded and asked for its snapshot (again after a reload or when shown again). */
  readonly onDidBecomeReady = this.readied.event;

  constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: ChatDeps,
    private readonly chat: ChatState,
    private choices: CompareChoice[],
    private readonly systemNote: string,
  ) {
    this.ipc = new IpcEndpoint((message) => void this.panel.webview.postMessage(message));
    this.ipc.onRequest(ChatReadyRequest, () => {
      this.webviewReady = true;
      queueMicrotask(() => this.readied.fire());
      return this.snapshot();
    });
    this.ipc.onRequest(ChatSnapshotRequest, () => this.buildView());
    this.ipc.onNotification(ChatEditNotification, ({ system, settings }) => this.edit(system, settings));
    this.ipc.onRequest(ChatSendRequest, async ({ text, system, settings }) => {
      this.edit(system, settings);
      await this.send(text);
      return null;
    });
    this.ipc.onNotification(ChatStopNotification, () => this.stop());
    this.ipc.onRequest(ChatClearRequest, () => (this.clear(), null));
    this.ipc.onRequest(ChatRetryRequest, async () => (await this.retry(), null));
    this.ipc.onRequest(ChatCompareRequest, ({ model }) => (this.setCompare(model), null));
    this.ipc.onRequest(ChatExportRequest, ({ side, action }) => this.export(side, action));
    this.ipc.onRequest(ChatCopyRequest, async ({ text }) => (await vscode.env.clipboard.writeText(text), null));
    this.subscriptions.push(this.panel.webview.onDidReceiveMessage((message: unknown) => this.ipc.receive(message)));
    this.panel.webview.html = this.html();
  }

  /** The conversation as it stands (a copy). */
  get state(): ChatState {
    return structuredClone(this.chat);
  }

  /** The view as the webview last got it (built now). */
  get view(): ChatView {
    return this.buildView();
  }

  /** Whether the webview has asked for its snapshot. */
  get isReady(): boolean {
    return this.webviewReady;
  }

  /** The panel's title. */
  get title(): string {
    return this.panel.title;
  }

  /** Whether an answer is streaming. */
  get busy(): boolean {
    return this.streams.size > 0;
  }

  /** Sets the system prompt and the settings as if the user had typed them. */
  edit(system: string, settings: GenerationTexts): void {
    this.chat.system = system;
    this.chat.settings = { ...settings };
    const parsed = parseGenerationSettings(settings);
    this.settingsErrors = parsed.ok ? {} : parsed.errors;
    this.postView();
  }

  /** Sends a prompt to the panel's model (and the compared one); resolves once the answers started streaming. */
  async send(text: string): Promise<void> {
    if (text.trim() === '') throw new ChatError('empty', vscode.l10n.t('Type a prompt first.'));
    if (this.busy) throw new ChatError('busy', vscode.l10n.t('Wait for the answer, or stop it, before sending another prompt.'));
    const settings = this.settings();
    this.chat.turns.push({ user: text, answers: [] });
    this.startTurn(this.chat.turns.length - 1, settings);
  }

  /** Answers the last prompt again (both sides when comparing). */
  async retry(): Promise<void> {
    if (this.busy) throw new ChatError('busy', vscode.l10n.t('Wait for the answer, or stop it, before retrying.'));
    if (this.chat.turns.length === 0) throw new ChatError('empty', vscode.l10n.t('There is no prompt to answer again.'));
    const settings = this.settings();
    this.startTurn(this.chat.turns.length - 1, settings);
    return Promise.resolve();
  }

  /** Stops every answer that streams: the request is aborted, and the backend stops the generation. */
  stop(): void {
    for (const controller of this.streams.values()) controller.abort();
  }

  /** Forgets the conversation (what streams is stopped first). */
  clear(): void {
    this.stop();
    this.chat.turns = [];
    this.postView();
  }

  /** Compares with that model (one of the choices, or any model the backend serves), or stops comparing (null). */
  setCompare(model: string | null): void {
    if (model === null || model === '') {
      this.chat.compare = null;
    } else {
      const choice = this.choices.find((c) => c.model === model);
      this.chat.compare = { backend: this.chat.target.backend, model, label: choice?.label ?? model };
    }
    this.postView();
  }

  /** Resolves when no answer streams. */
  async whenIdle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /**
   * Exports a side's conversation as a dataset line: to the clipboard, or appended to a `.jsonl` file (`file`, or
   * the one the user picks). Null when the user dismissed the dialog.
   */
  async export(side: Side, action: 'copy' | 'append', file?: vscode.Uri): Promise<{ line: string; file?: string } | null> {
    let line: string;
    try {
      line = exportLine(this.chat, side);
    } catch (error) {
      throw new ChatError('export', error instanceof Error ? error.message : String(error));
    }
    if (action === 'copy') {
      await vscode.env.clipboard.writeText(line);
      return { line };
    }
    const target = file ?? (await this.pickAppendFile());
    if (target === undefined) return null;
    await appendLine(target.fsPath, line);
    this.deps.log.info(`Chat: appended the conversation with ${this.chat.target.model} to ${target.fsPath}.`);
    return { line, file: basename(target.fsPath) };
  }

  /** Reads the run's other checkpoints for "Compare with…" (a revived panel has none yet). */
  async loadCompareChoices(): Promise<void> {
    const { backend, jobId } = this.chat.target;
    if (jobId === undefined) return;
    try {
      const client = await this.deps.backends.client(backend);
      const [job, checkpoints] = await Promise.all([client.getJob(jobId), client.listCheckpoints(jobId, { limit: 100 })]);
      this.choices = compareChoices(this.chat.target, job, checkpoints.data);
      this.postView();
    } catch (error) {
      this.deps.log.warn(`Chat: the checkpoints of ${jobId}: ${String(error)}`);
    }
  }

  /** Closes the panel. */
  close(): void {
    this.panel.dispose();
  }

  /** Releases what the panel holds (its webview is gone): streams are stopped. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stop();
    this.ipc.close();
    for (const s of this.subscriptions) s.dispose();
    this.updates.dispose();
    this.pieces.dispose();
    this.readied.dispose();
  }

  private settings(): GenerationSettings {
    const parsed = parseGenerationSettings(this.chat.settings);
    if (!parsed.ok) {
      this.settingsErrors = parsed.errors;
      this.postView();
      throw new ChatError('settings', vscode.l10n.t('Some generation settings need a fix: {0}', Object.values(parsed.errors).join(' ')));
    }
    return parsed.settings;
  }

  /** Starts the answers of a turn: one per side, each with its own seed when the field is empty. */
  private startTurn(index: number, settings: GenerationSettings): void {
    const turn = this.chat.turns[index];
    const sides: { side: Side; target: ChatTarget }[] = [{ side: 0, target: this.chat.target }];
    if (this.chat.compare !== null) sides.push({ side: 1, target: this.chat.compare });
    // Both sides use the same seed, so that a difference between them is the models', not the sampling's.
    const seed = settings.seed ?? randomSeed();
    turn.answers = sides.map(() => pendingAnswer(seed));
    for (const { side, target } of sides) {
      const answer = turn.answers[side];
      const controller = new AbortController();
      this.streams.set(answer, controller);
      const done = this.generate(index, side, target, answer, settings, controller.signal).finally(() => {
        this.streams.delete(answer);
        this.running.delete(done);
        this.postView();
      });
      this.running.add(done);
    }
    this.postView();
  }

  private async generate(turnIndex: number, side: Side, target: ChatTarget, answer: Answer, settings: GenerationSettings, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    let pieces = 0;
    try {
      const client = await this.deps.backends.client(target.backend);
      const request = chatRequest(target.model, messagesFor(this.chat, turnIndex, side), settings, answer.seed);
      const result = await client.chat(request, {
        signal,
        onText: (piece) => {
          if (piece === '') return;
          if (answer.ttftMs === null) answer.ttftMs = performance.now() - started;
          answer.text += piece;
          pieces++;
          answer.tokens = pieces;
          this.seq++;
          this.ipc.notify(ChatDeltaNotification, { seq: this.seq, turn: turnIndex, side, piece, ttftMs: answer.ttftMs });
          this.pieces.fire({ turn: turnIndex, side, piece });
        },
      });
      answer.text = result.text;
      answer.finishReason = result.finishReason;
      answer.tokens = result.usage?.completion_tokens ?? pieces;
      answer.tokensFromUsage = result.usage !== null;
      answer.state = 'done';
    } catch (error) {
      if (signal.aborted || (BackendError.is(error) && error.reason === 'cancelled')) {
        answer.state = 'stopped';
      } else {
        answer.state = 'failed';
        answer.error = error instanceof Error ? error.message : String(error);
        this.deps.log.warn(`Chat with ${target.model} on ${target.backend}: ${answer.error}`);
      }
    } finally {
      answer.durationMs = performance.now() - started;
      answer.stats = answerStats(answer);
    }
  }

  private async pickAppendFile(): Promise<vscode.Uri | undefined> {
    const picked = await vscode.window.showOpenDialog({
      canSelectMany: false,
      filters: { [vscode.l10n.t('Datasets')]: ['jsonl', 'ndjson'] },
      openLabel: vscode.l10n.t('Append Here'),
      title: vscode.l10n.t('Append the conversation to which dataset?'),
    });
    return picked?.[0];
  }

  private snapshot(): ChatSnapshot {
    return { strings: chatWebviewStrings(), view: this.buildView() };
  }

  private postView(): void {
    if (this.disposed) return;
    this.seq++;
    const view = this.buildView();
    this.ipc.notify(ChatViewNotification, { view });
    this.updates.fire(view);
  }

  /** The view at the current `seq` (a snapshot answer carries the seq of the last message sent before it). */
  private buildView(): ChatView {
    return {
      seq: this.seq,
      state: this.state,
      compareChoices: this.choices,
      busy: this.busy,
      settingsErrors: this.settingsErrors,
      systemNote: this.systemNote,
      defaults: defaultGenerationTexts(),
    };
  }

  private html(): string {
    return webviewPageHtml({
      webview: this.panel.webview,
      extensionUri: this.deps.extension.extensionUri,
      script: 'dist/webview/chat.js',
      styles: ['media/chat.css'],
      title: chatTitle(this.chat.target),
      lang: vscode.env.language,
    });
  }
}


/** Appends one line to a file, adding a newline first when the file does not end with one. */
async function appendLine(path: string, line: string): Promise<void> {
  let last: number | undefined;
  const handle = await openFile(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > 0) {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, size - 1);
      last = byte[0];
    }
  } finally {
    await handle.close();
  }
  await appendFile(path, appendedText(last, line), 'utf8');
}

/**
 * What "Test Checkpoint" was given: a checkpoint node or the dashboard's `{ backend, jobId, checkpoint }` (the
 * checkpoint object, or its id), or a target `{ backend, model }`. Undefined: ask with the quick pick.
 */
export function chatArgument(arg: unknown): ChatTargetRef | undefined {
  if (typeof arg !== 'object' || arg === null) return undefined;
  const { backend, jobId, checkpoint, model, checkpointId } = arg as Record<string, unknown>;
  if (typeof backend !== 'string') return undefined;
  if (typeof checkpoint === 'object' && checkpoint !== null) {
    const c = checkpoint as Partial<FineTuningJobCheckpoint>;
    if (typeof c.fine_tuned_model_checkpoint === 'string' && typeof c.id === 'string') {
      return { backend, model: c.fine_tuned_model_checkpoint, jobId: typeof jobId === 'string' ? jobId : c.fine_tuning_job_id, checkpointId: c.id };
    }
  }
  if (typeof model === 'string') {
    const ref: ChatTargetRef = { backend, model };
    if (typeof jobId === 'string') ref.jobId = jobId;
    if (typeof checkpointId === 'string') ref.checkpointId = checkpointId;
    else if (typeof checkpoint === 'string') ref.checkpointId = checkpoint;
    return ref;
  }
  return undefined;
}

/** Resolves a `{ backend, jobId, checkpoint: "<id>" }` argument (no model name in it) through the backend. */
async function refOfCheckpointId(backends: BackendRegistry, arg: unknown): Promise<ChatTargetRef | undefined> {
  if (typeof arg !== 'object' || arg === null) return undefined;
  const { backend, jobId, checkpoint, checkpointId } = arg as Record<string, unknown>;
  const id = typeof checkpoint === 'string' ? checkpoint : checkpointId;
  if (typeof backend !== 'string' || typeof jobId !== 'string' || typeof id !== 'string') return undefined;
  const client = await backends.client(backend);
  const found = (await client.listCheckpoints(jobId, { limit: 100 })).data.find((c) => c.id === id);
  if (found === undefined) throw new Error(vscode.l10n.t('The checkpoint {0} of {1} is not on the backend {2}.', id, jobId, backend));
  return { backend, model: found.fine_tuned_model_checkpoint, jobId, checkpointId: id };
}

/** The chat's commands, by id (merged into commands.ts's table). */
export const chatCommandFactories: Readonly<Record<string, CommandFactory>> = {
  'finetune.testCheckpoint': (ctx) => async (arg?: unknown) => {
    const ref = chatArgument(arg) ?? (await refOfCheckpointId(ctx.chat.deps.backends, arg)) ?? (await pickChatTarget(ctx.chat.deps));
    if (ref === undefined) return;
    await ctx.chat.open(ref);
  },
};
