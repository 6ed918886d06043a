// The `finetune-studio` command (package.json `bin`, bundled to dist/cli.js): `validate` checks datasets, `lsp`
// runs the dataset language server for any LSP client, `backend` runs the training backend. The same bundle
// also runs as a token-counting worker thread for `validate`, so the package ships one file for the command.
import { isMainThread, workerData } from 'node:worker_threads';
import { version } from '../package.json';
import { MAIN_HELP, parseValidateArgs, UsageError, VALIDATE_HELP } from './args';
import { runTokenWorker } from './tokenWorker';
import { isTokenWorkerData } from './tokens';
import { validate } from './validate';

/** Transports that vscode-languageserver's createConnection() picks up from the command line. */
const LSP_TRANSPORTS = ['--stdio', '--node-ipc', '--socket=', '--pipe='];

/**
 * Runs the command with `args` (the arguments after the program). Resolves to the exit code, or to undefined
 * when the command keeps running (the language server lives until its client ends it).
 */
export async function main(args: readonly string[]): Promise<number | undefined> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'validate': {
        const options = parseValidateArgs(rest);
        if (options.help) {
          process.stdout.write(VALIDATE_HELP);
          return 0;
        }
        return await validate(options, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, workerScript: __filename });
      }
      case 'lsp': {
        if (rest.includes('-h') || rest.includes('--help')) {
          process.stdout.write(MAIN_HELP);
          return 0;
        }
        if (!rest.some((arg) => LSP_TRANSPORTS.some((t) => (t.endsWith('=') ? arg.startsWith(t) : arg === t)))) {
          throw new UsageError('lsp needs a transport: --stdio (what most editors use), --node-ipc, --socket=PORT or --pipe=NAME.');
        }
        // Loaded only here: `validate` does not pay for the language server's modules.
        const { startServer } = await import('../server/server.js');
        startServer();
        return undefined;
      }
      case 'backend': {
        // Loaded only here: `validate` does not pay for the backend's modules. The backend reports its own
        // usage mistakes (its options are shared with dist/backend.js).
        const { runBackend } = await import('../backend/app.js');
        return await runBackend(rest);
      }
      case '-v':
      case '--version':
        process.stdout.write(`${version}\n`);
        return 0;
      case '-h':
      case '--help':
        process.stdout.write(MAIN_HELP);
        return 0;
      case undefined:
        process.stderr.write(MAIN_HELP);
        return 2;
      default:
        throw new UsageError(`unknown command '${command}'; expected validate, lsp or backend.`);
    }
  } catch (error) {
    if (!UsageError.is(error)) throw error;
    const where = command === 'validate' || command === 'lsp' ? ` ${command}` : '';
    process.stderr.write(`finetune-studio${where}: ${error.message}\nRun 'finetune-studio${where} --help' for usage.\n`);
    return 2;
  }
}

if (!isMainThread && isTokenWorkerData(workerData)) {
  runTokenWorker(workerData);
} else if (require.main === module) {
  // A reader that goes away (`… | head`) ends the program quietly, with the status of a process killed by
  // SIGPIPE (128 + 13) as other Unix tools have, rather than with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(141);
    throw error;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`finetune-studio: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 70;
    },
  );
}
