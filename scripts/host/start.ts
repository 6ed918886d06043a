// `npm start`: VS Code (code-server) on loopback with the extension loaded from this folder and the sample
// workspace open, until Ctrl+C. `npm start` builds and installs first (package.json); this file only starts.
//
//   npm start                           the sample workspace, a free port
//   npm start -- FOLDER                 another workspace folder
//   npm start -- --port 8080            a fixed port (e.g. to forward it from a remote machine)
//   npm start -- --state DIR            another folder for the host's user data (default .vscode-host/state)
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CODE_SERVER_VERSION, HOST_DIR, HOST_SETTINGS, HostError, ROOT, startCodeServer, tail, type CodeServer } from './codeServer';

interface Options {
  folder: string;
  port: number;
  stateDir: string;
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { port: { type: 'string' }, state: { type: 'string' } },
  });
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new HostError(`--port wants a port number, not ${values.port}`);
  const folder = resolve(positionals[0] ?? join(ROOT, 'sample'));
  if (!existsSync(folder)) throw new HostError(`no such folder: ${folder}`);
  return { folder, port, stateDir: resolve(values.state ?? join(HOST_DIR, 'state')) };
}

/**
 * The user's settings with ours as defaults: a person who changed a setting in this host keeps it across
 * starts. A settings file that is not plain JSON (VS Code allows comments) is left alone.
 */
function mergedSettings(stateDir: string): Record<string, unknown> | undefined {
  const file = join(stateDir, 'user-data', 'User', 'settings.json');
  if (!existsSync(file)) return { ...HOST_SETTINGS };
  try {
    return { ...HOST_SETTINGS, ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) };
  } catch {
    return undefined;
  }
}

/** A process `npm start` runs beside the host, and how to stop it. */
interface Companion {
  description: string;
  /** Environment the extension host needs to reach it (e.g. the backend's URL and key). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * The embedded training backend: `dist/backend.js` on a loopback port, its data under `.vscode-host/backend`.
 * It prints one JSON line (`{"url","key"}`) once it listens; the URL and key reach the extension host through
 * `env` (the extension host inherits code-server's environment), so the key never lands in a settings file.
 */
async function startTrainingBackend(): Promise<Companion | undefined> {
  const script = join(ROOT, 'dist', 'backend.js');
  if (!existsSync(script)) return undefined;
  const dataDir = join(HOST_DIR, 'backend');
  const logFile = join(HOST_DIR, 'backend.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [script, '--port', '0', '--data', dataDir, '--print-json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(log);
  const started = await new Promise<{ url: string; key: string }>((resolvePromise, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new HostError(`the training backend did not start within 30 s; see ${logFile}`)), 30_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new HostError(`the training backend exited (${signal ?? `code ${code}`}) before it listened; see ${logFile}`));
    });
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        const parsed = JSON.parse(buffered.slice(0, newline)) as { url?: unknown; key?: unknown };
        if (typeof parsed.url !== 'string' || typeof parsed.key !== 'string') throw new Error('no url/key');
        resolvePromise({ url: parsed.url, key: parsed.key });
      } catch {
        reject(new HostError(`the training backend printed an unexpected first line: ${buffered.slice(0, newline)}`));
      }
    });
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  child.removeAllListeners('exit');
  return {
    description: `${started.url} (embedded engine; data in ${relative(process.cwd(), dataDir)}, log ${relative(process.cwd(), logFile)})`,
    env: { FINETUNE_BACKEND_URL: started.url, FINETUNE_BACKEND_KEY: started.key },
    stop: () =>
      new Promise<void>((resolvePromise) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolvePromise();
        child.once('exit', () => resolvePromise());
        child.kill('SIGTERM');
      }),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'extension.js'))) throw new HostError('dist/extension.js is missing: run `npm run build` (npm start does)');

  const backend = await startTrainingBackend();
  let server: CodeServer;
  try {
    server = await startCodeServer({
      stateDir: options.stateDir,
      port: options.port,
      settings: mergedSettings(options.stateDir),
      env: backend?.env,
    });
  } catch (error) {
    await backend?.stop();
    throw error;
  }

  let stopping = false;
  const stop = async (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${why}: stopping…`);
    await Promise.all([server.stop(), backend?.stop()]);
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal, 0));
  server.process.once('exit', (code, signal) => {
    if (stopping) return;
    console.error(`code-server exited (${signal ?? `code ${code}`}); the last lines of its log:\n${tail(server.logFile, 20)}`);
    void stop('code-server exited', 1);
  });

  const dataset = join(options.folder, 'dataset.jsonl');
  const url = server.workbenchUrl({
    folder: options.folder,
    extensionDevelopmentPath: ROOT,
    openFile: existsSync(dataset) ? dataset : undefined,
  });
  const shown = (path: string) => relative(process.cwd(), path) || '.';
  console.log(
    [
      '',
      `Finetune Studio in VS Code (code-server ${CODE_SERVER_VERSION})`,
      `  workspace:         ${shown(options.folder)}`,
      `  extension:         loaded from ${ROOT} (dist/; run \`npm run watch\` beside this and reload the page to pick up changes)`,
      `  training backend:  ${backend?.description ?? 'not built (dist/backend.js is missing)'}`,
      `  log:               ${shown(server.logFile)}; the extension's own log: the Output panel, "Finetune Studio"`,
      '',
      'Open this URL in a browser on this machine:',
      '',
      `  ${url}`,
      '',
      `(From another machine: forward the port first, e.g. \`ssh -L ${server.port}:127.0.0.1:${server.port} THIS_MACHINE\`; \`npm start -- --port N\` fixes the port.)`,
      '',
      'Ctrl+C stops it.',
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof HostError ? `npm start: ${error.message}` : error);
  process.exit(1);
});
