// The training backend, composed: the data folder, the API keys, the file store, the model catalogue, the
// runtime (jobs, scheduler, engines, chat, WebSocket hub) and the HTTP server over them. `startBackend` is what
// the tests start; `runBackend` is the command around it (`finetune-studio backend` and dist/backend.js), which
// says where it listens and how to reach it, and stops cleanly on SIGINT and SIGTERM.
import { chmod, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { version } from '../package.json';
import { generateApiKey, KeyRing, ownerOf } from './http/auth';
import { adapterRoutes } from './http/routes/adapters';
import { chatRoutes } from './http/routes/chat';
import { fileRoutes } from './http/routes/files';
import { jobRoutes } from './http/routes/jobs';
import { modelRoutes } from './http/routes/models';
import { Router } from './http/router';
import { createApiServer } from './http/server';
import { ModelCatalogue } from './models';
import { BACKEND_HELP, type BackendOptions, checkApiKey, DEFAULT_MAX_UPLOAD_BYTES, OptionsError, parseBackendArgs, readApiKeysFile } from './options';
import type { JobRuntime, Log } from './runtime';
import { openRuntime, type RuntimeExtraOptions, type RuntimeInternals } from './runtime/runtime';
import { AdapterStore } from './store/adapters';
import { FileStore } from './store/files';

/** What `startBackend` needs; only `dataDir` has no default. */
export interface StartOptions {
  dataDir: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** The keys accepted; none: the key stored in `{dataDir}/api-key`, generated on the first start. */
  apiKeys?: readonly string[];
  gpus?: number;
  maxUploadBytes?: number;
  python?: string;
  /** `--allow-downloads`: the torch engine may download a base model that is not on this machine. */
  allowDownloads?: boolean;
  /** Default: lines with a timestamp on stderr. */
  log?: Log;
  /** Runtime settings beyond the seam's (other engine scripts, hub limits), for tests. */
  runtimeExtra?: Omit<RuntimeExtraOptions, 'dataDir' | 'gpus' | 'log' | 'python'>;
}

/** A running backend. */
export interface RunningBackend {
  /** `http://host:port` (IPv6 hosts in brackets). */
  url: string;
  /** The stored key, when the backend uses `{dataDir}/api-key` (no key was given). */
  key?: string;
  /** Where that key is stored. */
  keyFile?: string;
  /** The runtime, for tests that watch jobs beyond what the API shows. */
  runtime: JobRuntime & RuntimeInternals;
  /** Stops the server and the runtime (running jobs stay `running` on disk, to be resumed on the next start). */
  close(): Promise<void>;
}

/** A log of timestamped lines on stderr. */
export function stderrLog(): Log {
  const line = (level: string, message: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${level} ${message}\n`);
  };
  return { info: (m) => line('info', m), warn: (m) => line('warn', m), error: (m) => line('error', m) };
}

/** Whether binding to `host` keeps the service on this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The key kept in `{dataDir}/api-key`: read when there, else generated and written with mode 0600 (a temp file
 * with that mode renamed into place, so the key is never readable by others, not even for a moment).
 */
export async function storedApiKey(dataDir: string, log: Log): Promise<{ key: string; path: string }> {
  const path = join(dataDir, 'api-key');
  try {
    const key = checkApiKey((await readFile(path, 'utf8')).trim(), path);
    if (((await stat(path)).mode & 0o077) !== 0) {
      log.warn(`${path} was readable by other users; its mode is now 0600.`);
      await chmod(path, 0o600);
    }
    return { key, path };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (OptionsError.is(error)) throw error;
      throw new OptionsError(`cannot read the stored API key ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const key = generateApiKey();
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(`${key}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  log.info(`generated an API key, stored in ${path} (mode 0600)`);
  return { key, path };
}

/** Starts the backend and resolves once it listens. */
export async function startBackend(options: StartOptions): Promise<RunningBackend> {
  const log = options.log ?? stderrLog();
  const host = options.host ?? '127.0.0.1';
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });

  let stored: { key: string; path: string } | undefined;
  let keys = options.apiKeys ?? [];
  if (keys.length === 0) {
    stored = await storedApiKey(options.dataDir, log);
    keys = [stored.key];
  }
  const ring = new KeyRing(keys);

  const files = await FileStore.open(options.dataDir, log);
  const adapters = await AdapterStore.open(options.dataDir, log);
  const runtime = await openRuntime({ ...options.runtimeExtra, dataDir: options.dataDir, gpus: options.gpus, log, python: options.python, allowDownloads: options.allowDownloads });
  const models = new ModelCatalogue(options.dataDir, async () => await runtime.engineInfo?.('torch'));

  const router = new Router();
  modelRoutes(router, { models, runtime, adapters, version });
  fileRoutes(router, { files, runtime, maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES });
  jobRoutes(router, { files, models, runtime });
  adapterRoutes(router, { adapters, models, runtime });
  chatRoutes(router, { models, runtime, adapters, log });
  const server = createApiServer({ router, keys: ring, runtime, log });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await runtime.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shown}:${address.port}`;
  log.info(`listening on ${url} with ${keys.length} API key${keys.length === 1 ? '' : 's'} (owners ${keys.map((k) => ownerOf(k).slice(0, 8)).join(', ')})`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await runtime.close();
      // Streams (chat, downloads) and idle keep-alive sockets end with the process's work.
      server.closeAllConnections();
      await closed;
    })());

  return { url, key: stored?.key, keyFile: stored?.path, runtime, close };
}

/** Where the command writes. */
export interface BackendIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Runs the backend with the arguments after `backend`. Resolves to an exit code when it ends at once (help, a
 * usage mistake), or to undefined once it listens (it then runs until a signal stops it).
 */
export async function runBackend(args: readonly string[], io: BackendIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number | undefined> {
  let options: BackendOptions;
  let apiKeys: string[] | undefined;
  try {
    options = parseBackendArgs(args);
    if (options.help) {
      io.stdout.write(BACKEND_HELP);
      return 0;
    }
    apiKeys = options.apiKey !== undefined ? [options.apiKey] : options.apiKeysFile !== undefined ? await readApiKeysFile(options.apiKeysFile) : undefined;
  } catch (error) {
    if (!OptionsError.is(error)) throw error;
    io.stderr.write(`finetune-studio backend: ${error.message}\nRun 'finetune-studio backend --help' for usage.\n`);
    return 2;
  }
  const log = stderrLog();
  if (isLoopback(options.host)) {
    log.info(`binding to ${options.host} only: the backend is reachable from this machine alone (--host to change)`);
  } else {
    log.warn(`binding to ${options.host}: the backend is reachable from the network; anyone with an API key can use it, and traffic is not encrypted (put it behind TLS or an SSH tunnel)`);
  }
  let backend: RunningBackend;
  try {
    backend = await startBackend({
      dataDir: options.dataDir,
      host: options.host,
      port: options.port,
      apiKeys,
      gpus: options.gpus,
      maxUploadBytes: options.maxUploadBytes,
      python: options.python,
      allowDownloads: options.allowDownloads,
      log,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EADDRINUSE' ? `port ${options.port} is in use (another backend?); pick another with --port` : error instanceof Error ? error.message : String(error);
    io.stderr.write(`finetune-studio backend: cannot start: ${why}\n`);
    return 1;
  }
  if (options.printJson) {
    io.stdout.write(`${JSON.stringify({ url: backend.url, key: backend.key ?? null })}\n`);
  } else {
    io.stdout.write(`Finetune Studio backend listening on ${backend.url}\n`);
    io.stdout.write(`Data folder: ${options.dataDir}\n`);
    if (backend.key !== undefined) io.stdout.write(`API key: ${backend.key}\n(stored in ${backend.keyFile ?? ''}; clients send it as "Authorization: Bearer <key>")\n`);
  }
  const running = backend;
  const stop = (signal: string): void => {
    log.info(`${signal}: stopping`);
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error(`stopping failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return undefined;
}
