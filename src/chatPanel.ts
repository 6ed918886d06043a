// "Finetune: Test Checkpoint" (issue 7): a chat panel bound to a checkpoint (or a fine-tuned model, or a saved
// adapter) of a backend, with generation settings, streamed Markdown answers, stop, retry, compare with a second
// checkpoint or the base model, and export of the conversation as a dataset line (webview/chat/).
//
// SKELETON: the contract that Ctx, the commands and the other parts rely on; the chat's owner fills it in.
import * as vscode from 'vscode';
import type { BackendRegistry } from './backendRegistry';
import type { CommandFactory } from './commands';
import type { RunsModel } from './runsModel';

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
  /** Opens a chat panel bound to that model. */
  open(target: ChatTargetRef): Promise<void>;
}

/** Every chat panel of the window. */
export class ChatPanels implements vscode.Disposable {
  static readonly viewType = 'finetune.chat';
  readonly api: ChatApi;

  constructor(readonly deps: ChatDeps) {
    this.api = { open: (target) => this.open(target) };
  }

  /** Opens a chat panel bound to that model. */
  async open(target: ChatTargetRef): Promise<void> {
    void target;
    throw new Error('The chat panel is not built yet.');
  }

  dispose(): void {}
}

/** The chat's commands, by id (merged into commands.ts's table). */
export const chatCommandFactories: Readonly<Record<string, CommandFactory>> = {};
