// The command behind a click on a run's row, one per run and without arguments. VS Code keeps a tree item's
// command that has arguments in a cache of the extension host under a fresh id, and drops that entry when the row
// is refreshed; the workbench still holds the old id until it draws the new row, and a click in between runs
// nothing ("Actual command not found" in the host's log). A running run's row refreshes once a second, so now and
// then a click on it was lost. A command without arguments travels by its own id, which no refresh invalidates:
// each run gets one, registered when its row is first drawn and unregistered when the run leaves the tree.
import * as vscode from 'vscode';
import type { RunRef } from './runsModel';

/**
 * The prefix of the per-run command ids: not contributed, so never in the command palette, and private by VS Code's
 * convention (a leading `_`), so never listed in the Keyboard Shortcuts editor either.
 */
export const RUN_ROW_COMMAND_PREFIX = '_finetune.runRow.';

export class RunRowCommands implements vscode.Disposable {
  private readonly commands = new Map<string, { id: string; run: RunRef; registration: vscode.Disposable }>();
  private counter = 0;

  /** `open` is what a click on the row does (the tree passes the run's dashboard). */
  constructor(private readonly open: (run: RunRef) => unknown) {}

  /** The command id of this run's row, registered on first use. */
  idOf(run: RunRef): string {
    const key = keyOf(run);
    const known = this.commands.get(key);
    if (known) return known.id;
    const id = `${RUN_ROW_COMMAND_PREFIX}${++this.counter}`;
    const ref: RunRef = { backend: run.backend, jobId: run.jobId };
    this.commands.set(key, { id, run: ref, registration: vscode.commands.registerCommand(id, () => this.open(ref)) });
    return id;
  }

  /** Unregisters the commands of the runs that `keep` no longer wants. */
  prune(keep: (run: RunRef) => boolean): void {
    for (const [key, command] of this.commands) {
      if (keep(command.run)) continue;
      command.registration.dispose();
      this.commands.delete(key);
    }
  }

  dispose(): void {
    for (const command of this.commands.values()) command.registration.dispose();
    this.commands.clear();
  }
}

function keyOf(run: RunRef): string {
  return `${run.backend}\u0000${run.jobId}`;
}
