import {
  CodeActionKind,
  type Connection,
  createConnection,
  DidChangeConfigurationNotification,
  type InitializeResult,
  MessageType,
  ProposedFeatures,
  ShowMessageNotification,
  TextDocumentSyncKind,
} from 'vscode-languageserver/node';
import {
  CheckFromDiskNotification,
  ConvertDatasetRequest,
  DatasetStatisticsRequest,
  DatasetStatusNotification,
  StopCheckFromDiskNotification,
  VisibleRangesNotification,
} from '../common/lspProtocol';
import { DiskDatasetService } from './diskCheck';
import { type ClientSink, describe, DocumentService } from './documentService';
import { chooseLocale } from './l10n';
import { CONVERT_COMMAND, CONVERT_SOURCE_KIND } from './quickFixes';
import { ConfigurationService, DEFAULT_SETTINGS, SETTINGS_SECTION } from './settings';
import { TokenCounter } from './tokenCounter';
import { loadQwenTokenizer } from './tokenizerFile';

/**
 * `$/finetune/timing` (server → client, only when the environment has FINETUNE_LSP_TIMINGS=1): the server's
 * own time from receiving a `didChange` to having published its diagnostics. The benchmark listens for it;
 * clients that do not know it ignore it, as the protocol says for `$/` messages.
 */
export const TIMING_METHOD = '$/finetune/timing';

/** Parameters of `$/finetune/timing`. */
export interface TimingParams {
  uri: string;
  ms: number;
}

/**
 * Starts the dataset language server on this process's stdio or IPC channel (createConnection reads
 * `--stdio`, `--node-ipc` or `--socket=` from argv). Called by server/main.ts (the bundle VS Code's client
 * starts) and by the command line's `finetune-studio lsp --stdio`.
 */
export function startServer(): Connection {
  const connection = createConnection(ProposedFeatures.all);
  wireServer(connection);
  connection.listen();
  return connection;
}

/**
 * Registers every handler on a connection: each is one dispatch to a service, wrapped so that an exception
 * becomes a logged error and an empty answer rather than a dead server.
 */
export function wireServer(connection: Connection): void {
  let documentChanges = false;
  const sink = connectionSink(connection);
  // FINETUNE_TOKENIZER names another tokenizer.json(.gz), for a moved install and for the tests of a missing one.
  const tokenizerPath = process.env.FINETUNE_TOKENIZER || undefined;
  const counter = new TokenCounter(
    (message) => sink.log(message),
    () => loadQwenTokenizer(tokenizerPath),
  );
  const timings = process.env.FINETUNE_LSP_TIMINGS === '1';
  const documents = new DocumentService(sink, counter, { ...DEFAULT_SETTINGS }, () => ({ documentChanges }), timings);
  const disk = new DiskDatasetService(sink, counter, { ...DEFAULT_SETTINGS }, () => documents.holdOff());
  const configuration = new ConfigurationService(
    {
      pull: () => connection.workspace.getConfiguration({ section: SETTINGS_SECTION }),
      register: async () => {
        await connection.client.register(DidChangeConfigurationNotification.type, { section: SETTINGS_SECTION });
      },
      error: (message) => sink.error(message),
    },
    (settings, final) => {
      documents.configure(settings, final);
      disk.configure(settings);
    },
  );

  const guard =
    <P, R>(name: string, fallback: R, handler: (params: P) => R) =>
    (params: P): R => {
      try {
        return handler(params);
      } catch (error) {
        sink.error(`${name} failed: ${describe(error)}`);
        return fallback;
      }
    };
  const guardAsync =
    <P, R>(name: string, fallback: R, handler: (params: P) => Promise<R>) =>
    async (params: P): Promise<R> => {
      try {
        return await handler(params);
      } catch (error) {
        sink.error(`${name} failed: ${describe(error)}`);
        return fallback;
      }
    };

  process.on('uncaughtException', (error) => sink.error(`Uncaught exception: ${describe(error)}`));
  process.on('unhandledRejection', (error) => sink.error(`Unhandled rejection: ${describe(error)}`));

  connection.onInitialize((params): InitializeResult => {
    // Once, before any document arrives: every message from here on is in this language.
    // (Not logged here: a notification before the initialize answer confuses minimal clients.)
    chooseLocale(params.locale, process.env);
    const workspace = params.capabilities.workspace;
    documentChanges = workspace?.workspaceEdit?.documentChanges === true;
    configuration.initialize(
      { pull: workspace?.configuration === true, register: workspace?.didChangeConfiguration?.dynamicRegistration === true },
      params.initializationOptions,
    );
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental },
        hoverProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix, CONVERT_SOURCE_KIND] },
        executeCommandProvider: { commands: [CONVERT_COMMAND] },
      },
      serverInfo: { name: 'Finetune Studio dataset server' },
    };
  });
  connection.onInitialized(guard('initialized', undefined, () => configuration.initialized()));
  connection.onDidChangeConfiguration(guard('workspace/didChangeConfiguration', undefined, (params) => configuration.changed(params.settings)));

  connection.onDidOpenTextDocument(guard('textDocument/didOpen', undefined, (params) => documents.didOpen(params)));
  connection.onDidChangeTextDocument(guard('textDocument/didChange', undefined, (params) => documents.didChange(params)));
  connection.onDidCloseTextDocument(guard('textDocument/didClose', undefined, (params) => documents.didClose(params)));
  connection.onHover(guard('textDocument/hover', null, (params) => documents.hover(params)));
  connection.onCodeAction(guard('textDocument/codeAction', [], (params) => documents.codeActions(params)));
  connection.onExecuteCommand(
    guardAsync('workspace/executeCommand', null, async (params) => {
      const uri: unknown = params.arguments?.[0];
      if (params.command !== CONVERT_COMMAND || typeof uri !== 'string') return null;
      return documents.convert(uri);
    }),
  );

  connection.onRequest(
    DatasetStatisticsRequest.type,
    guard('dataset/statistics', null, (params) => documents.statistics(params.uri) ?? disk.statistics(params.uri)),
  );
  connection.onRequest(
    ConvertDatasetRequest.type,
    guardAsync('dataset/convert', { converted: 0, unrecognised: 0 }, (params) => documents.convert(params.uri)),
  );
  connection.onNotification(CheckFromDiskNotification.type, guard('dataset/checkFromDisk', undefined, (params) => disk.check(params.uri)));
  connection.onNotification(StopCheckFromDiskNotification.type, guard('dataset/stopCheckFromDisk', undefined, (params) => disk.stop(params.uri)));
  connection.onNotification(VisibleRangesNotification.type, guard('dataset/visibleRanges', undefined, (params) => documents.visibleRanges(params)));

  connection.onShutdown(() => {
    documents.dispose();
    disk.dispose();
  });
}

/** The services' view of the client: notifications and requests over the connection. */
function connectionSink(connection: Connection): ClientSink {
  // Over stdio, a big publish takes several turns of the event loop to reach the client; background work
  // waits for it (other transports simply do not report it).
  const stdio = process.argv.includes('--stdio');
  return {
    outputBusy: () => stdio && process.stdout.writableNeedDrain,
    publishDiagnostics: (uri, version, diagnostics) => void connection.sendDiagnostics({ uri, version, diagnostics }),
    sendStatus: (status) => void connection.sendNotification(DatasetStatusNotification.type, status),
    sendTiming: (uri, ms) => void connection.sendNotification(TIMING_METHOD, { uri, ms } satisfies TimingParams),
    // A notification, not window/showMessageRequest: nothing to answer, and every client shows it.
    showInfo: (message) => void connection.sendNotification(ShowMessageNotification.type, { type: MessageType.Info, message }),
    applyEdit: async (label, edit) => (await connection.workspace.applyEdit({ label, edit })).applied,
    log: (message) => connection.console.log(message),
    error: (message) => connection.console.error(message),
  };
}
