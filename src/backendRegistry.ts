// The seam between the extension's backends (src/training.ts: settings, keys, the local backend, the runs tree)
// and whatever needs a backend (the New Training Run form, later the dashboards and chat): which backends there
// are, and a connected client for one of them.
import type * as vscode from 'vscode';
import type { BackendClient } from './backendClient';

/** One configured backend: from `finetune.backends`, or the embedded local one the extension starts itself. */
export interface BackendEntry {
  /** Unique among the entries; what the tree and pickers show. */
  readonly name: string;
  /** Base URL (`http://127.0.0.1:8742`); for the local backend, known once it has started. */
  readonly url: string | undefined;
  /** The embedded local backend (a child process of the extension). */
  readonly local: boolean;
}

/** The backends the extension knows, and connected clients for them. */
export interface BackendRegistry {
  /** Fires when the list of entries changes (settings, the local backend starting or stopping). */
  readonly onDidChange: vscode.Event<void>;
  entries(): readonly BackendEntry[];
  /**
   * The client of a backend, ready to use: starts the local backend when it is the one asked for and is not
   * running; asks for the API key (SecretStorage) when a remote one has none. Rejects with a BackendError
   * (reason `cancelled` when the user dismissed a prompt).
   */
  client(name: string): Promise<BackendClient>;
  /**
   * Lets the user choose a backend (no prompt when there is one); with none configured, offers to start the local
   * backend or to add a remote one. Undefined when the user dismissed it.
   */
  pick(placeHolder?: string): Promise<BackendEntry | undefined>;
  /** Shows a run in the runs tree (after the form created it), expanding its backend. */
  revealRun(backend: string, jobId: string): Promise<void>;
}
