// A language client for the server tests and the benchmark: it starts dist/server.js as VS Code's client
// would (a child process on stdio), speaks real JSON-RPC to it, keeps its own copy of each document (the
// standard full-text model, as an oracle), and lets tests wait on events with a timeout instead of sleeping.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { TextDocument } from 'vscode-languageserver-textdocument';
import {
  ApplyWorkspaceEditRequest,
  type CodeAction,
  CodeActionRequest,
  ConfigurationRequest,
  createProtocolConnection,
  type Diagnostic,
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  type Hover,
  HoverRequest,
  InitializedNotification,
  InitializeRequest,
  LogMessageNotification,
  type ProtocolConnection,
  PublishDiagnosticsNotification,
  type PublishDiagnosticsParams,
  RegistrationRequest,
  ShowMessageNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type TextDocumentContentChangeEvent,
  type TextEdit,
  type WorkspaceEdit,
} from 'vscode-languageserver-protocol/node';
import { compareFindings, type Finding } from '../common/dataset/codes';
import { DatasetStreamChecker } from '../common/dataset/fileCheck';
import {
  type DatasetStatistics,
  DatasetStatisticsRequest,
  type DatasetStatus,
  DatasetStatusNotification,
} from '../common/lspProtocol';

const ROOT = join(__dirname, '..');
export const SERVER_BUNDLE = join(ROOT, 'dist', 'server.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (name.endsWith('.ts')) newest = Math.max(newest, stat.mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/server.js when it is missing or older than a source of server/ or common/, so that a test run
 * by itself tests the current code. Written to a temporary file and renamed: test files run in parallel,
 * and a half-written bundle must never be started.
 */
export async function ensureServerBuilt(): Promise<void> {
  const built = existsSync(SERVER_BUNDLE) ? statSync(SERVER_BUNDLE).mtimeMs : 0;
  if (built >= Math.max(newestSource(join(ROOT, 'server')), newestSource(join(ROOT, 'common')))) return;
  const result = await esbuild.build({
    entryPoints: [join(ROOT, 'server', 'main.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    write: false,
    outfile: SERVER_BUNDLE,
    logLevel: 'silent',
  });
  const code = result.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!code) throw new Error('esbuild produced no server bundle');
  const temp = `${SERVER_BUNDLE}.${process.pid}.tmp`;
  writeFileSync(temp, code.contents);
  renameSync(temp, SERVER_BUNDLE);
}

/** A pending `waitFor`: its condition, re-checked on every message from the server. */
type Waiter = { check: () => boolean; resolve: () => void };

/** Settings as the test client answers `workspace/configuration`. */
export interface ClientSettings {
  maxSequenceLength?: number;
  maxDiagnostics?: number;
  countTokens?: boolean;
}

export interface ClientOptions {
  settings?: ClientSettings;
  /** Answer `workspace/configuration` (default true); false makes a client that only has initializationOptions. */
  configuration?: boolean;
  initializationOptions?: unknown;
  env?: Record<string, string>;
  /**
   * Keep a full-text copy of each document to compare with (default true). The benchmark turns it off, so
   * that the client's own work on a huge document does not weigh on the figures.
   */
  mirror?: boolean;
  /** Do not echo the server's error log lines (for tests that provoke them). */
  quiet?: boolean;
  /** Extra arguments for node (e.g. --max-old-space-size). */
  nodeArgs?: string[];
}

/** A test client connected to a freshly started server. */
export class TestClient {
  readonly diagnostics = new Map<string, PublishDiagnosticsParams>();
  readonly statuses = new Map<string, DatasetStatus>();
  readonly messages: string[] = [];
  readonly logs: string[] = [];
  readonly timings: { uri: string; ms: number }[] = [];
  readonly docs = new Map<string, TextDocument>();
  /** The version of each open document, mirrored or not. */
  readonly versions = new Map<string, number>();
  settings: ClientSettings;
  private readonly mirror: boolean;
  private readonly waiters = new Set<Waiter>();

  private constructor(
    readonly child: ChildProcess,
    readonly connection: ProtocolConnection,
    options: ClientOptions,
  ) {
    this.settings = options.settings ?? {};
    this.mirror = options.mirror !== false;
  }

  /** Starts the server and initializes it. */
  static async start(options: ClientOptions = {}): Promise<TestClient> {
    await ensureServerBuilt();
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), SERVER_BUNDLE, '--stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[server] ${d.toString()}`));
    const connection = createProtocolConnection(
      new StreamMessageReader(child.stdout as NodeJS.ReadableStream),
      new StreamMessageWriter(child.stdin as NodeJS.WritableStream),
    );
    const client = new TestClient(child, connection, options);
    client.listen(options);
    connection.listen();
    const configuration = options.configuration !== false;
    await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: null,
      capabilities: {
        workspace: { configuration, applyEdit: true, workspaceEdit: { documentChanges: true }, didChangeConfiguration: { dynamicRegistration: true } },
        textDocument: { codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ['quickfix', 'source'] } } }, hover: { contentFormat: ['markdown'] } },
      },
      initializationOptions: options.initializationOptions,
    });
    await connection.sendNotification(InitializedNotification.type, {});
    return client;
  }

  private listen(options: ClientOptions): void {
    const c = this.connection;
    c.onRequest(ConfigurationRequest.type, (params) => params.items.map(() => ({ ...this.settings })));
    c.onRequest(RegistrationRequest.type, () => undefined);
    c.onRequest(ApplyWorkspaceEditRequest.type, async (params) => {
      await this.applyEdit(params.edit);
      return { applied: true };
    });
    c.onNotification(PublishDiagnosticsNotification.type, (params) => {
      this.diagnostics.set(params.uri, params);
      this.notify();
    });
    c.onNotification(DatasetStatusNotification.type, (status) => {
      this.statuses.set(status.uri, status);
      this.notify();
    });
    c.onNotification(ShowMessageNotification.type, (params) => {
      this.messages.push(params.message);
      this.notify();
    });
    c.onNotification(LogMessageNotification.type, (params) => {
      this.logs.push(params.message);
      if (params.type === 1 && !options.quiet) process.stderr.write(`[server error] ${params.message}\n`);
    });
    c.onNotification('$/finetune/timing', (params: { uri: string; ms: number }) => {
      this.timings.push(params);
      this.notify();
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.check()) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Waits until `check` holds (checked now and after every message from the server); fails after `ms`. */
  waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Waits for the diagnostics of the document's current version (or, for a disk check, any that satisfy `check`). */
  async diagnosticsOf(uri: string, check: (d: Diagnostic[]) => boolean = () => true, ms = 10_000): Promise<Diagnostic[]> {
    const version = this.versions.get(uri);
    await this.waitFor(`diagnostics of ${uri} v${version}`, () => {
      const p = this.diagnostics.get(uri);
      return p !== undefined && (version === undefined || p.version === version) && check(p.diagnostics);
    }, ms);
    return (this.diagnostics.get(uri) as PublishDiagnosticsParams).diagnostics;
  }

  async open(uri: string, text: string, languageId = 'jsonl'): Promise<void> {
    if (this.mirror) this.docs.set(uri, TextDocument.create(uri, languageId, 1, text));
    this.versions.set(uri, 1);
    await this.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId, version: 1, text } });
  }

  /** Sends incremental changes (and applies them to the client's copy). */
  async change(uri: string, changes: TextDocumentContentChangeEvent[]): Promise<void> {
    const current = this.versions.get(uri);
    if (current === undefined) throw new Error(`${uri} is not open`);
    const version = current + 1;
    this.versions.set(uri, version);
    const doc = this.docs.get(uri);
    if (doc) this.docs.set(uri, TextDocument.update(doc, changes, version));
    await this.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version }, contentChanges: changes });
  }

  async close(uri: string): Promise<void> {
    this.docs.delete(uri);
    this.versions.delete(uri);
    await this.connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri } });
  }

  text(uri: string): string {
    return (this.docs.get(uri) as TextDocument).getText();
  }

  /** Applies a workspace edit to the client's copy and sends it to the server as one change, as an editor does. */
  async applyEdit(edit: WorkspaceEdit): Promise<void> {
    const byUri = new Map<string, TextEdit[]>();
    for (const [uri, edits] of Object.entries(edit.changes ?? {})) byUri.set(uri, edits);
    for (const change of edit.documentChanges ?? []) {
      if ('edits' in change) byUri.set(change.textDocument.uri, change.edits.filter((e): e is TextEdit => 'range' in e && 'newText' in e));
    }
    for (const [uri, edits] of byUri) {
      const doc = this.docs.get(uri);
      if (!doc) throw new Error(`edit for ${uri}, which is not open`);
      // Editors send the edits of one workspace edit as changes in reverse document order, so positions hold.
      const sorted = [...edits].sort((a, b) => doc.offsetAt(b.range.start) - doc.offsetAt(a.range.start));
      await this.change(uri, sorted.map((e) => ({ range: e.range, text: e.newText })));
    }
  }

  hover(uri: string, line: number, character = 0): Promise<Hover | null> {
    return this.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: { line, character } });
  }

  async codeActions(uri: string, line: number, diagnostics: Diagnostic[] = []): Promise<CodeAction[]> {
    const result = await this.connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri },
      range: { start: { line, character: 0 }, end: { line, character: 0 } },
      context: { diagnostics },
    });
    // The server answers with code actions only (never bare commands).
    return (result ?? []).filter((a): a is CodeAction => typeof a.command !== 'string');
  }

  statistics(uri: string): Promise<DatasetStatistics | null> {
    return this.connection.sendRequest(DatasetStatisticsRequest.type, { uri });
  }

  /** Shuts the server down and waits for its process to end. */
  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    try {
      await Promise.race([this.connection.sendRequest(ShutdownRequest.type), new Promise((r) => setTimeout(r, 2000))]);
      await this.connection.sendNotification(ExitNotification.type);
    } catch {
      // A server that is already gone needs no shutdown.
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    this.connection.dispose();
  }
}

/** The findings that common/dataset's file checker gives for a whole text: the oracle for incremental edits. */
export function expectedFindings(text: string): Finding[] {
  const out: Finding[] = [];
  const checker = new DatasetStreamChecker({ onFinding: (f) => out.push(f) });
  checker.push(Buffer.from(text, 'utf8'));
  checker.end();
  return out.sort(compareFindings);
}

/** Diagnostics and findings in one comparable form: "line:start-end code". */
export function brief(items: readonly (Diagnostic | Finding)[]): string[] {
  return items.map((d) =>
    'range' in d ? `${d.range.start.line}:${d.range.start.character}-${d.range.end.character} ${String(d.code)}` : `${d.line}:${d.start}-${d.end} ${d.code}`,
  );
}

/** A diagnostic's message as text (protocol 3.18 allows markup there; this server sends plain strings). */
export function messageOf(d: Diagnostic): string {
  return typeof d.message === 'string' ? d.message : d.message.value;
}

/** A valid example line. */
export function example(user: string, assistant: string, system?: string): string {
  const messages = [
    ...(system === undefined ? [] : [{ role: 'system', content: system }]),
    { role: 'user', content: user },
    { role: 'assistant', content: assistant },
  ];
  return JSON.stringify({ messages });
}
