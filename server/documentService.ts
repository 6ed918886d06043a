import type {
  CodeAction,
  CodeActionParams,
  Diagnostic,
  DidChangeTextDocumentParams,
  DidCloseTextDocumentParams,
  DidOpenTextDocumentParams,
  Hover,
  HoverParams,
  WorkspaceEdit,
} from 'vscode-languageserver';
import type { ConvertDatasetResult, DatasetStatistics, DatasetStatus, VisibleRangesParams } from '../common/lspProtocol';
import { DatasetDocument } from './datasetDocument';
import { cappedDiagnostics } from './diagnostics';
import { lineHover } from './hover';
import { t } from './l10n';
import { collectGarbage } from './memory';
import { KIND_EXAMPLE } from './lineModel';
import { codeActions, convertAll, documentEdit, type EditOptions } from './quickFixes';
import type { ServerSettings } from './settings';
import { buildStatistics, IntList } from './statistics';
import type { TokenCounter } from './tokenCounter';
import { TokenScheduler } from './tokenScheduler';

/** What the services send to the client; server.ts implements it over the connection, tests in memory. */
export interface ClientSink {
  publishDiagnostics(uri: string, version: number | undefined, diagnostics: Diagnostic[]): void;
  sendStatus(status: DatasetStatus): void;
  /** The server's own time from receiving a change to having published its diagnostics (when timings are on). */
  sendTiming?(uri: string, ms: number): void;
  showInfo(message: string): void;
  /** Whether messages to the client are still waiting to be written (background work then waits too). */
  outputBusy?(): boolean;
  applyEdit(label: string, edit: WorkspaceEdit): Promise<boolean>;
  log(message: string): void;
  error(message: string): void;
}

/** Whether a document is a dataset: VS Code's `jsonl` language, or a `.jsonl` / `.ndjson` file in any editor. */
export function isDatasetDocument(uri: string, languageId?: string): boolean {
  if (languageId === 'jsonl') return true;
  const path = uri.replace(/[?#].*$/, '');
  return /\.(jsonl|ndjson)$/i.test(path);
}

/** While tokens are counted, re-publish and update the status at most this often. */
const PROGRESS_MS = 250;

/**
 * Token counting pauses while changes come in quicker than this: each keystroke's diagnostics then go out
 * without waiting behind a slice of counting, and counting catches up when the user pauses.
 */
const TYPING_PAUSE_MS = 60;

/** Documents of at least this many UTF-16 units are followed by a full garbage collection once opened. */
const BIG_DOCUMENT = 16 << 20;

interface OpenDocument {
  doc: DatasetDocument;
  /** Token counting changed findings since the last publish. */
  stale: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The open datasets: live diagnostics, hover, quick fixes, statistics and conversion for every document the
 * client syncs. The server's handlers (server.ts) call one method each; structural diagnostics are published
 * within the handler of the change, token counts follow from the background scheduler.
 */
export class DocumentService {
  private readonly open = new Map<string, OpenDocument>();
  private readonly scheduler: TokenScheduler;
  /**
   * Whether the client's settings are known. Until then nothing is tokenized: a client with
   * `workspace/configuration` sends the first document before it answers, and `countTokens` may be off.
   */
  private settingsKnown = false;
  /** When the last change arrived: counting waits until the user pauses. */
  private lastChange = -Infinity;

  constructor(
    private readonly sink: ClientSink,
    private readonly counter: TokenCounter,
    private settings: ServerSettings,
    private readonly editOptions: () => EditOptions,
    private readonly timings = false,
  ) {
    this.scheduler = new TokenScheduler(
      counter,
      () => [...this.open.values()].map((o) => o.doc),
      (doc, changed) => this.onTokenProgress(doc, changed),
      (error) => sink.error(`Token counting failed: ${describe(error)}`),
      () => this.holdOff(),
    );
  }

  /**
   * How long background counting should wait before its next slice (see TokenScheduler); the disk checker's
   * counting asks too.
   */
  holdOff(): number {
    const sinceChange = performance.now() - this.lastChange;
    if (sinceChange < TYPING_PAUSE_MS) return TYPING_PAUSE_MS - sinceChange;
    return this.sink.outputBusy?.() ? 1 : 0;
  }

  /** `textDocument/didOpen`: checks the whole document and publishes. Non-datasets are ignored. */
  didOpen(params: DidOpenTextDocumentParams): void {
    const { uri, languageId, version, text } = params.textDocument;
    if (!isDatasetDocument(uri, languageId)) return;
    this.close(uri);
    const started = performance.now();
    const doc = new DatasetDocument(uri, version, text, this.documentSettings(), this.counter);
    this.open.set(uri, { doc, stale: false, timer: undefined });
    this.publish(doc);
    this.sink.log(`Checked ${uri}: ${doc.model.lineCount} lines in ${Math.round(performance.now() - started)} ms.`);
    // Once the message that carried a big document is gone, give its copies back (see collectGarbage).
    if (text.length >= BIG_DOCUMENT) {
      setImmediate(() => {
        collectGarbage();
        this.sink.log(`Memory after opening ${uri}: ${Math.round(process.memoryUsage().rss / 2 ** 20)} MB resident.`);
      });
    }
    this.wakeTokens();
  }

  /** `textDocument/didChange`: applies the incremental changes, re-checks their lines and publishes at once. */
  didChange(params: DidChangeTextDocumentParams): void {
    const started = performance.now();
    this.lastChange = started;
    const entry = this.open.get(params.textDocument.uri);
    if (!entry) return;
    entry.doc.applyChanges(params.contentChanges, params.textDocument.version);
    this.publish(entry.doc);
    if (this.timings) this.sink.sendTiming?.(entry.doc.uri, performance.now() - started);
    this.wakeTokens();
  }

  /** `textDocument/didClose`: forgets the document and clears its diagnostics. */
  didClose(params: DidCloseTextDocumentParams): void {
    if (this.close(params.textDocument.uri)) this.sink.publishDiagnostics(params.textDocument.uri, undefined, []);
  }

  /** `textDocument/hover`. */
  hover(params: HoverParams): Hover | null {
    const entry = this.open.get(params.textDocument.uri);
    return entry ? lineHover(entry.doc, params.position.line, this.counter.state) : null;
  }

  /** `textDocument/codeAction`. */
  codeActions(params: CodeActionParams): CodeAction[] {
    const entry = this.open.get(params.textDocument.uri);
    return entry ? codeActions(entry.doc, params, this.editOptions()) : [];
  }

  /** `dataset/convert` and the convert command: converts every ShareGPT/Alpaca line with `workspace/applyEdit`. */
  async convert(uri: string): Promise<ConvertDatasetResult> {
    const entry = this.open.get(uri);
    if (!entry) return { converted: 0, unrecognised: 0 };
    const { edits, converted, unrecognised } = convertAll(entry.doc);
    if (edits.length === 0) return { converted: 0, unrecognised };
    const applied = await this.sink.applyEdit(t('fix/convert-dataset'), documentEdit(entry.doc, edits, this.editOptions()));
    return applied ? { converted, unrecognised } : { converted: 0, unrecognised: unrecognised + converted };
  }

  /** `dataset/visibleRanges`: count the tokens of these lines first. */
  visibleRanges(params: VisibleRangesParams): void {
    const entry = this.open.get(params.uri);
    if (!entry) return;
    entry.doc.setVisible(params.ranges);
    this.wakeTokens();
  }

  /** Whether the service has this document open (a live document wins over a check from disk). */
  has(uri: string): boolean {
    return this.open.has(uri);
  }

  /** `dataset/statistics` of an open document; null when it is not open. */
  statistics(uri: string): DatasetStatistics | null {
    const entry = this.open.get(uri);
    if (!entry) return null;
    const doc = entry.doc;
    const counts = doc.counts();
    const messages = new IntList();
    const tokens = new IntList();
    const trained = new IntList();
    for (const line of doc.allLines()) {
      if (!line.counted || line.kind !== KIND_EXAMPLE || line.errors > 0) continue;
      messages.push(line.messages);
      if (line.tokens >= 0) {
        tokens.push(line.tokens);
        trained.push(line.trained);
      }
    }
    return buildStatistics({
      ...counts,
      uri,
      live: true,
      maxSequenceLength: doc.maxSequenceLength,
      messages: messages.values(),
      tokens: doc.countsTokens ? tokens.values() : [],
      trained: doc.countsTokens ? trained.values() : [],
    });
  }

  /**
   * New settings: re-check what depends on them and re-publish every document. `final` says that these are
   * the client's settings (not defaults while they are asked for), so token counting may start.
   */
  configure(settings: ServerSettings, final = true): void {
    const before = this.settings;
    this.settings = settings;
    for (const { doc } of this.open.values()) {
      const changed = doc.configure(this.documentSettings());
      if (changed || before.maxDiagnostics !== settings.maxDiagnostics) this.publish(doc);
    }
    if (final) this.settingsKnown = true;
    this.wakeTokens();
  }

  /** Stops background work (the connection is closing). */
  dispose(): void {
    this.scheduler.dispose();
    for (const uri of [...this.open.keys()]) this.close(uri);
  }

  private wakeTokens(): void {
    if (this.settingsKnown) this.scheduler.wake();
  }

  private documentSettings(): { maxSequenceLength: number; countTokens: boolean } {
    return { maxSequenceLength: this.settings.maxSequenceLength, countTokens: this.settings.countTokens };
  }

  private close(uri: string): boolean {
    const entry = this.open.get(uri);
    if (!entry) return false;
    clearTimeout(entry.timer);
    this.open.delete(uri);
    return true;
  }

  /** Publishes the document's diagnostics (capped) and its status. */
  private publish(doc: DatasetDocument): void {
    const entry = this.open.get(doc.uri);
    if (entry) entry.stale = false;
    const counts = doc.counts();
    const diagnostics = cappedDiagnostics((visit) => doc.forEachFinding(visit), counts.errors + counts.warnings, this.settings.maxDiagnostics);
    this.sink.publishDiagnostics(doc.uri, doc.version, diagnostics);
    this.sendStatus(doc);
  }

  private sendStatus(doc: DatasetDocument): void {
    const counts = doc.counts();
    this.sink.sendStatus({
      uri: doc.uri,
      examples: counts.examples,
      errors: counts.errors,
      warnings: counts.warnings,
      tokens: counts.tokens,
      counting: doc.counting && this.counter.state !== 'failed',
      live: true,
    });
  }

  /** The scheduler counted some lines: re-publish when findings changed, update the status; throttled. */
  private onTokenProgress(doc: DatasetDocument, findingsChanged: boolean): void {
    const entry = this.open.get(doc.uri);
    if (!entry || entry.doc !== doc) return;
    if (findingsChanged) entry.stale = true;
    if (!doc.counting) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
      this.flush(entry);
      return;
    }
    entry.timer ??= setTimeout(() => {
      entry.timer = undefined;
      if (this.open.get(doc.uri) === entry) this.flush(entry);
    }, PROGRESS_MS);
  }

  private flush(entry: OpenDocument): void {
    try {
      if (entry.stale) this.publish(entry.doc);
      else this.sendStatus(entry.doc);
    } catch (error) {
      this.sink.error(`Publishing ${entry.doc.uri} failed: ${describe(error)}`);
    }
  }
}

/** An error's message with its stack, for the log. */
export function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
