import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  TransportKind,
  type ErrorHandler,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import {
  CheckFromDiskNotification,
  ConvertDatasetRequest,
  DatasetStatisticsRequest,
  DatasetStatusNotification,
  StopCheckFromDiskNotification,
  VisibleRangesNotification,
  isConvertDatasetResult,
  isDatasetStatistics,
  isDatasetStatus,
  type ConvertDatasetResult,
  type DatasetStatistics,
  type DatasetStatus,
  type VisibleRangesParams,
} from '../common/lspProtocol';
import type { Config } from './config';
import { DATASET_SECTION } from './datasetSettings';
import { isDatasetDocument } from './datasets';
import { DatasetClientError, describeError } from './errors';

/** What the dataset client needs from the extension. */
export interface DatasetClientDeps {
  extension: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  config: Config;
  /** Shows the user a server failure (once per failure, with a way to the logs). */
  showFailure(message: string): void;
}

/** Disposables that live as long as one thing: released together, in reverse order. */
export class DisposableScope implements vscode.Disposable {
  private readonly items: { dispose(): unknown }[] = [];

  push(...items: { dispose(): unknown }[]): void {
    this.items.push(...items);
  }

  dispose(): void {
    for (const item of this.items.splice(0).reverse()) item.dispose();
  }
}

/** How often a server that crashes is restarted (within 3 minutes) before the client gives up: the library's default. */
const MAX_RESTARTS = 4;
/** `dataset/statistics` waits for the server's full-file work (a big file is checked from disk first). */
const STATISTICS_TIMEOUT_MS = 60_000;
/** `dataset/convert` rewrites the whole document through `workspace/applyEdit`, which VS Code may take a while for. */
const CONVERT_TIMEOUT_MS = 120_000;

/**
 * The dataset language server's client: starts the server when the first dataset opens (never at activation),
 * restarts it on demand, and wraps the custom `dataset/*` messages in typed methods that reject with a
 * `DatasetClientError` (on error and on timeout).
 *
 * Two lifetimes meet here: this object lives as long as the extension; each server connection gets a fresh
 * `LanguageClient` and a `DisposableScope` released when that connection stops, so that a restart begins clean.
 */
export class DatasetClient implements vscode.Disposable {
  /** Every `dataset/status` notification, from whichever connection is current. */
  readonly onDidChangeStatus: vscode.Event<DatasetStatus>;
  /** A connection is running: the first start, a restart, or the client's own restart after a crash. */
  readonly onDidStart: vscode.Event<void>;
  /** The connection stopped: what the server said about documents is stale now. */
  readonly onDidStop: vscode.Event<void>;

  private readonly statusEmitter = new vscode.EventEmitter<DatasetStatus>();
  private readonly startEmitter = new vscode.EventEmitter<void>();
  private readonly stopEmitter = new vscode.EventEmitter<void>();

  private connection: { client: LanguageClient; scope: DisposableScope; started: Promise<LanguageClient> } | undefined;
  private lazyStart: vscode.Disposable | undefined;
  private restarting: Promise<void> | undefined;
  /** Whether this connection's failure was shown already: a start or a crash is reported once, not per document. */
  private failureShown = false;
  private disposed = false;

  constructor(private readonly deps: DatasetClientDeps) {
    this.onDidChangeStatus = this.statusEmitter.event;
    this.onDidStart = this.startEmitter.event;
    this.onDidStop = this.stopEmitter.event;
  }

  /**
   * Starts the server as soon as a dataset document is open (now, or when one opens). Activation happens on
   * `onLanguage:jsonl` and similar events, but a workspace that merely contains datasets costs no process.
   */
  startWhenDatasetOpens(): void {
    if (vscode.workspace.textDocuments.some(isDatasetDocument)) {
      this.ensureStarted();
      return;
    }
    this.lazyStart = vscode.workspace.onDidOpenTextDocument((document) => {
      if (isDatasetDocument(document)) this.ensureStarted();
    });
  }

  /** Whether a connection is up, so that a notification sent now reaches a server. */
  get running(): boolean {
    return this.connection?.client.isRunning() === true;
  }

  /**
   * Starts the server if it is not started, without waiting: for starts nobody asked for (a dataset opened, a
   * big file's tab). A failure is shown to the user here, once.
   */
  ensureStarted(): void {
    this.start().catch((error: unknown) => this.reportFailure(describeError(error)));
  }

  /**
   * Starts the server, or returns the start in progress or done; rejects with a `DatasetClientError`, shown by
   * whoever awaits it. After a failed start it keeps failing until `restart()`: retrying on every opened document
   * would start a broken server again and again.
   */
  start(): Promise<LanguageClient> {
    this.lazyStart?.dispose();
    this.lazyStart = undefined;
    if (this.disposed) return Promise.reject(new DatasetClientError('not-running', vscode.l10n.t('The extension is shutting down.')));
    if (this.connection !== undefined) return this.connection.started;
    return this.connect();
  }

  /** Stops the server (if it runs) and starts a fresh one: the "Restart Dataset Language Server" command. */
  restart(): Promise<void> {
    this.restarting ??= (async () => {
      try {
        await this.stop();
        // The caller (a command) reports what this start does; a later crash is news again.
        this.failureShown = false;
        await this.start().catch((error: unknown) => {
          this.failureShown = true;
          throw error;
        });
      } finally {
        this.restarting = undefined;
      }
    })();
    return this.restarting;
  }

  /** Stops the server and releases the connection; `start()` begins a new one. */
  async stop(): Promise<void> {
    const connection = this.connection;
    if (connection === undefined) return;
    this.connection = undefined;
    // A client that is still starting cannot be stopped (the library throws): let the start settle first.
    await connection.started.catch(() => undefined);
    const wasRunning = connection.client.isRunning();
    try {
      await connection.client.dispose();
    } catch (error) {
      // A client that is not running throws here, after it has killed a server process left over from a failed
      // start: only a failure to stop a running server is worth a warning.
      if (wasRunning) this.deps.log.warn(`Stopping the dataset language server: ${describeError(error)}`);
    } finally {
      // The state listener in this scope has already fired onDidStop when the client left Running.
      connection.scope.dispose();
    }
  }

  /** `dataset/statistics` for one dataset; null when the server does not know it (yet). */
  async statistics(uri: vscode.Uri): Promise<DatasetStatistics | null> {
    const params = { uri: uri.toString() };
    const result: unknown = await this.request(vscode.l10n.t('Dataset statistics'), STATISTICS_TIMEOUT_MS, (client, token) =>
      client.sendRequest(DatasetStatisticsRequest.type, params, token),
    );
    if (result === null || isDatasetStatistics(result)) return result;
    throw protocolError('dataset/statistics', result);
  }

  /** `dataset/convert`: the server rewrites ShareGPT and Alpaca lines of an open document into messages form. */
  async convert(uri: vscode.Uri): Promise<ConvertDatasetResult> {
    const params = { uri: uri.toString() };
    const result: unknown = await this.request(vscode.l10n.t('Converting the dataset'), CONVERT_TIMEOUT_MS, (client, token) =>
      client.sendRequest(ConvertDatasetRequest.type, params, token),
    );
    if (isConvertDatasetResult(result)) return result;
    throw protocolError('dataset/convert', result);
  }

  /** `dataset/checkFromDisk`, if a server runs (a starting one hears it through `onDidStart`). */
  checkFromDisk(uri: vscode.Uri): void {
    const params = { uri: uri.toString() };
    this.notifyIfRunning(CheckFromDiskNotification.method, (client) =>
      client.sendNotification(CheckFromDiskNotification.type, params),
    );
  }

  /** `dataset/stopCheckFromDisk`, if a server runs (one that does not has nothing to stop). */
  stopCheckFromDisk(uri: vscode.Uri): void {
    const params = { uri: uri.toString() };
    this.notifyIfRunning(StopCheckFromDiskNotification.method, (client) =>
      client.sendNotification(StopCheckFromDiskNotification.type, params),
    );
  }

  /** `dataset/visibleRanges`, if a server runs. */
  visibleRanges(params: VisibleRangesParams): void {
    this.notifyIfRunning(VisibleRangesNotification.method, (client) =>
      client.sendNotification(VisibleRangesNotification.type, params),
    );
  }

  /**
   * Sends a notification if a connection is up and drops it otherwise: the callers' notifications describe the
   * editor's state, and they send it all again on `onDidStart`.
   */
  private notifyIfRunning(method: string, send: (client: LanguageClient) => Promise<void>): void {
    const client = this.connection?.client;
    if (client === undefined || !client.isRunning()) return;
    send(client).catch((error: unknown) => {
      this.deps.log.warn(`Sending ${method}: ${describeError(error)}`);
    });
  }

  dispose(): void {
    this.disposed = true;
    this.lazyStart?.dispose();
    void this.stop();
    this.statusEmitter.dispose();
    this.startEmitter.dispose();
    this.stopEmitter.dispose();
  }

  private connect(): Promise<LanguageClient> {
    const serverModule = this.deps.extension.asAbsolutePath('dist/server.js');
    if (!existsSync(serverModule)) {
      return Promise.reject(
        new DatasetClientError(
          'server-missing',
          vscode.l10n.t('The dataset language server is missing ({0}). Build the extension with "npm run build".', serverModule),
        ),
      );
    }
    const scope = new DisposableScope();
    let starting = true;
    let everRunning = false;
    let defaults: ErrorHandler | undefined;
    const errorHandler: ErrorHandler = {
      error: (error, message, count) => defaults?.error(error, message, count) ?? { action: ErrorAction.Shutdown },
      // A server that never got through `initialize` will not do better on a retry: the library would
      // otherwise restart it four more times behind the failed start.
      closed: async () => {
        if (!everRunning || defaults === undefined) {
          return { action: CloseAction.DoNotRestart, message: vscode.l10n.t('The dataset language server exited while starting.'), handled: true };
        }
        const result = await defaults.closed();
        return result.action === CloseAction.DoNotRestart
          ? {
              ...result,
              message: vscode.l10n.t(
                'The dataset language server crashed {0} times in 3 minutes and was not restarted. Run "Finetune: Restart Dataset Language Server" to try again.',
                MAX_RESTARTS + 1,
              ),
            }
          : result;
      },
    };
    const client = new DatasetLanguageClient(serverModule, this.clientOptions(errorHandler), (message) => {
      // A failed start rejects `started`, and whoever awaits it reports it.
      if (!starting) this.reportFailure(message);
    });
    defaults = client.createDefaultErrorHandler(MAX_RESTARTS);
    scope.push(
      client.onNotification(DatasetStatusNotification.method, (status: unknown) => {
        if (isDatasetStatus(status)) this.statusEmitter.fire(status);
        else this.deps.log.warn(`Ignored a malformed dataset/status notification: ${JSON.stringify(status)?.slice(0, 200)}`);
      }),
      client.onDidChangeState(({ oldState, newState }) => {
        if (newState === State.Running) {
          everRunning = true;
          this.failureShown = false;
          this.deps.log.info('Dataset language server running.');
          this.startEmitter.fire();
        } else if (oldState === State.Running) {
          this.stopEmitter.fire();
        }
      }),
    );
    this.deps.log.info(`Starting the dataset language server: ${serverModule}`);
    const failed = (reason: unknown): DatasetClientError =>
      new DatasetClientError('start-failed', vscode.l10n.t('The dataset language server did not start: {0}', describeError(reason)), {
        cause: reason,
      });
    const started = client.start().then(
      () => {
        starting = false;
        // When the server exits during `initialize`, the library's start() resolves instead of rejecting (it
        // returns a start promise that its close handler has already cleared): only the state tells.
        if (!client.isRunning()) throw failed(vscode.l10n.t('it exited during initialization (see the logs).'));
        return client;
      },
      (error: unknown) => {
        starting = false;
        throw failed(error);
      },
    );
    this.connection = { client, scope, started };
    return started;
  }

  private clientOptions(errorHandler: ErrorHandler): LanguageClientOptions {
    return {
      documentSelector: [
        { scheme: 'file', language: 'jsonl' },
        { scheme: 'untitled', language: 'jsonl' },
        { scheme: 'file', pattern: '**/*.{jsonl,ndjson}' },
        { scheme: 'untitled', pattern: '**/*.{jsonl,ndjson}' },
      ],
      diagnosticCollectionName: 'finetune-dataset',
      outputChannel: this.deps.log,
      // The server's own window/showMessage reaches the user; the client's internal errors go to the log only.
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      errorHandler,
      initializationFailedHandler: (error) => {
        this.deps.log.error(`Dataset language server initialization failed: ${describeError(error)}`);
        // false: do not retry, and keep the library from showing a message of its own (ours says more).
        return false;
      },
      // Settings reach the server by pull: it asks for `finetune.dataset` after `initialized` and again on each
      // `workspace/didChangeConfiguration`, which it registers for dynamically (the library then sends one per
      // change of that section).
      middleware: {
        workspace: {
          // `workspace/configuration` for `finetune.dataset` gets the cleaned-up settings (defaults for values
          // of the wrong type), so that the server never sees a string where it expects a number.
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) return answers;
            return params.items.map((item, i): unknown =>
              item.section === DATASET_SECTION
                ? this.deps.config.dataset(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
                : answers[i],
            );
          },
        },
      },
    };
  }

  private async request<R>(
    what: string,
    timeoutMs: number,
    send: (client: LanguageClient, token: vscode.CancellationToken) => Promise<R>,
  ): Promise<R> {
    const client = await this.start();
    const cancel = new vscode.CancellationTokenSource();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        cancel.cancel();
        reject(
          new DatasetClientError('timeout', vscode.l10n.t('{0}: the language server did not answer in {1} s.', what, timeoutMs / 1000)),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([send(client, cancel.token), timeout]);
    } catch (error) {
      if (DatasetClientError.is(error)) throw error;
      const reason = client.isRunning() ? 'request-failed' : 'not-running';
      throw new DatasetClientError(reason, vscode.l10n.t('{0} failed: {1}', what, describeError(error)), { cause: error });
    } finally {
      clearTimeout(timer);
      cancel.dispose();
    }
  }

  private reportFailure(message: string): void {
    this.deps.log.error(message);
    if (this.failureShown || this.disposed) return;
    this.failureShown = true;
    this.deps.showFailure(message);
  }
}

/**
 * A `LanguageClient` whose forced error notifications (start failed, crashed too often, connection broken)
 * go to one handler instead of the library's own "Go to output" message, so that the user sees each failure
 * once, worded by us, with "Show Logs". Everything is still logged.
 */
class DatasetLanguageClient extends LanguageClient {
  private fatal: ((message: string) => void) | undefined;

  constructor(serverModule: string, clientOptions: LanguageClientOptions, onFatal: (message: string) => void) {
    const serverOptions: ServerOptions = {
      run: { module: serverModule, transport: TransportKind.ipc },
      debug: {
        module: serverModule,
        transport: TransportKind.ipc,
        options: { execArgv: ['--nolazy', '--inspect=6019'] },
      },
    };
    super('finetune.dataset', 'Finetune Studio Dataset', serverOptions, clientOptions);
    this.fatal = onFatal;
  }

  override error(message: string, data?: unknown, showNotification?: boolean | 'force'): void {
    super.error(message, data, false);
    // Assigned after super(): the base constructor may log before there is anyone to tell.
    if (showNotification === 'force') this.fatal?.(data === undefined ? message : `${message} ${describeError(data)}`);
  }
}

/** The error for an answer that does not have the declared shape. */
function protocolError(method: string, result: unknown): DatasetClientError {
  return new DatasetClientError(
    'protocol',
    vscode.l10n.t(
      "The language server's answer to {0} does not have the expected shape: {1}",
      method,
      JSON.stringify(result)?.slice(0, 200) ?? String(result),
    ),
  );
}
