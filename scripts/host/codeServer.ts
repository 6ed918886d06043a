// Starts code-server (a complete VS Code, installed into .vscode-host/ by scripts/host/install.mjs) on loopback
// with the extension loaded from its folder, for `npm start` and for the in-host and UI tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository root: the extension's folder (its package.json is the manifest). */
export const ROOT = resolve(__dirname, '..', '..');
/** Must match scripts/host/install.mjs, which installs this version. */
export const CODE_SERVER_VERSION = '4.100.3';
export const HOST_DIR = join(ROOT, '.vscode-host');
export const CODE_SERVER_ENTRY = join(HOST_DIR, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const INSTALL_MARKER = join(HOST_DIR, 'installed.json');

/** The user settings of every host we start: nothing in the way of the dataset, nothing that phones home. */
export const HOST_SETTINGS: Readonly<Record<string, unknown>> = {
  // The walkthrough and welcome tabs would cover the editor (and the screenshots).
  'workbench.startupEditor': 'none',
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.tips.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'security.workspace.trust.enabled': false,
  'chat.disableAIFeatures': true,
  'chat.commandCenter.enabled': false,
  'workbench.enableExperiments': false,
  // The sample lies inside this repository: no prompt to open the parent repository over the editor.
  'git.openRepositoryInParentFolders': 'never',
};

export interface StartOptions {
  /** The folder that holds this host's user data, extensions dir and XDG folders (created if missing). */
  stateDir: string;
  /** Extra environment for code-server and so for the extension host it forks (e.g. a results file). */
  env?: NodeJS.ProcessEnv;
  /** Also isolate HOME (tests do; `npm start` keeps the user's). */
  isolateHome?: boolean;
  /** User settings; written on every start when given, else only when the host has none yet. */
  settings?: Readonly<Record<string, unknown>>;
  /** Called with each line code-server prints (it is always written to `logFile` too). */
  onLine?: (line: string) => void;
  /** The loopback port; default 0, a free one that the kernel picks (no race with other processes). */
  port?: number;
  /** How long to wait for code-server to listen. */
  timeoutMs?: number;
  /**
   * The display language (`--locale`, e.g. `zh-cn`): what `vscode.env.language` reports to extensions (a stand-in
   * language pack entry is written so that it takes effect; see emulateLanguagePack).
   */
  locale?: string;
}

/**
 * Makes `--locale` take effect without a language pack. code-server (like VS Code) resolves the display language
 * through `<user-data-dir>/languagepacks.json`, which installing a language pack writes: with no entry for the
 * locale it falls back to English, and `vscode.env.language` reports `en` whatever `--locale` said. An entry whose
 * core translations are empty makes the locale resolve — the workbench's own words stay English, the extension's
 * follow the locale, which is what a user with that language pack sees of our strings. The workbench lists the
 * installed languages from the entry's `extensions[0]`, so it needs one.
 */
function emulateLanguagePack(userDataDir: string, locale: string): void {
  const folder = join(userDataDir, 'finetune-test-language-pack');
  mkdirSync(folder, { recursive: true });
  const translations = join(folder, 'main.i18n.json');
  writeFileSync(translations, JSON.stringify({ version: '1.0.0', contents: {} }));
  const extensions = [{ extensionIdentifier: { id: `finetune-test.language-pack-${locale}` }, version: '1.0.0' }];
  const packs = { [locale]: { hash: `finetune-test-${locale}`, extensions, translations: { vscode: translations }, label: locale } };
  writeFileSync(join(userDataDir, 'languagepacks.json'), JSON.stringify(packs));
}

/** What to open in a workbench page. */
export interface WorkbenchOptions {
  /** The workspace folder (absolute path). */
  folder: string;
  /** A file to open in an editor (absolute path). */
  openFile?: string;
  /** The extension under development, loaded from its folder without packaging (absolute path). */
  extensionDevelopmentPath?: string;
  /** A CommonJS module whose `run()` the extension host calls instead of waiting for a person (absolute path). */
  extensionTestsPath?: string;
}

/** A running code-server. */
export interface CodeServer {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  readonly process: ChildProcess;
  /** code-server's own output. */
  readonly logFile: string;
  /** The user data folder; logs/ in it holds the extension host's logs. */
  readonly userDataDir: string;
  /** The page that opens `options` with this server. */
  workbenchUrl(options: WorkbenchOptions): string;
  /** Stops code-server and everything it started (extension hosts, language servers); idempotent. */
  stop(): Promise<void>;
}

/** Thrown when the host is missing or will not start, with what to do about it. */
export class HostError extends Error {
  override readonly name = 'HostError';
}

/** Fails with the install command when code-server is not (completely) installed. */
export function assertInstalled(): void {
  let version: unknown;
  try {
    version = (JSON.parse(readFileSync(INSTALL_MARKER, 'utf8')) as { version?: unknown }).version;
  } catch {
    version = undefined;
  }
  if (version !== CODE_SERVER_VERSION || !existsSync(CODE_SERVER_ENTRY)) {
    throw new HostError(
      `code-server ${CODE_SERVER_VERSION} is not installed in .vscode-host/: run \`node scripts/host/install.mjs\` (as root: it also installs Debian packages).`,
    );
  }
}

/** A folder URI on the code-server's machine, as the browser's workbench names it. */
function remoteUri(origin: string, path: string): string {
  const authority = new URL(origin).host;
  return `vscode-remote://${authority}${encodeURI(path)}`;
}

/** Starts code-server on a free loopback port and resolves once it listens. */
export async function startCodeServer(options: StartOptions): Promise<CodeServer> {
  assertInstalled();
  const stateDir = resolve(options.stateDir);
  const userDataDir = join(stateDir, 'user-data');
  const extensionsDir = join(stateDir, 'extensions');
  for (const dir of [userDataDir, extensionsDir, join(stateDir, 'config'), join(stateDir, 'data'), join(stateDir, 'cache')]) {
    mkdirSync(dir, { recursive: true });
  }
  const settingsFile = join(userDataDir, 'User', 'settings.json');
  if (options.settings !== undefined || !existsSync(settingsFile)) {
    mkdirSync(join(userDataDir, 'User'), { recursive: true });
    writeFileSync(settingsFile, `${JSON.stringify(options.settings ?? HOST_SETTINGS, null, 2)}\n`);
  }
  if (options.locale !== undefined && options.locale !== 'en') emulateLanguagePack(userDataDir, options.locale);
  const logFile = join(stateDir, 'code-server.log');
  const log = createWriteStream(logFile, { flags: 'a' });

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // code-server writes its config and state under the home folder otherwise.
    XDG_CONFIG_HOME: join(stateDir, 'config'),
    XDG_DATA_HOME: join(stateDir, 'data'),
    XDG_CACHE_HOME: join(stateDir, 'cache'),
    ...(options.isolateHome === true ? { HOME: stateDir } : {}),
    ...options.env,
  };
  // A password from the environment would switch authentication back on.
  delete env.PASSWORD;
  delete env.HASHED_PASSWORD;
  const args = [
    CODE_SERVER_ENTRY,
    // Port 0: the kernel picks a free port, which code-server prints.
    '--bind-addr', `127.0.0.1:${options.port ?? 0}`,
    '--auth', 'none',
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    ...(options.locale === undefined ? [] : ['--locale', options.locale]),
  ];
  // Its own process group, so that stop() reaches the extension hosts and language servers it forks.
  const child = spawn(process.execPath, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));

  const port = await new Promise<number>((resolvePort, reject) => {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => fail(`code-server did not listen within ${timeoutMs / 1000} s`), timeoutMs);
    let buffered = '';
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        options.onLine?.(line);
        const listening = /HTTP server listening on https?:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (listening !== null) {
          clearTimeout(timer);
          resolvePort(Number(listening[1]));
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) => fail(`code-server could not start: ${error.message}`));
    child.once('exit', (code, signal) => fail(`code-server exited (${signal ?? `code ${code}`}) before it listened`));
    function fail(message: string) {
      clearTimeout(timer);
      killGroup(child, 'SIGKILL');
      reject(new HostError(`${message}; its log: ${logFile}`));
    }
  });

  const origin = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  return {
    port,
    origin,
    process: child,
    logFile,
    userDataDir,
    workbenchUrl(open: WorkbenchOptions): string {
      const payload: [string, string][] = [];
      if (open.extensionDevelopmentPath !== undefined) {
        payload.push(['extensionDevelopmentPath', remoteUri(origin, resolve(open.extensionDevelopmentPath))]);
      }
      if (open.extensionTestsPath !== undefined) {
        payload.push(['extensionTestsPath', remoteUri(origin, resolve(open.extensionTestsPath))]);
      }
      if (open.openFile !== undefined) payload.push(['openFile', remoteUri(origin, resolve(open.openFile))]);
      const query = new URLSearchParams({ folder: resolve(open.folder) });
      if (payload.length > 0) query.set('payload', JSON.stringify(payload));
      return `${origin}/?${query.toString()}`;
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          killGroup(child, 'SIGTERM');
          // code-server shuts its extension hosts down on SIGTERM; one that hangs is killed.
          const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5_000);
          await exited;
          clearTimeout(timer);
        }
        // Whatever of the group outlived code-server itself (a language server, a file watcher).
        killGroup(child, 'SIGKILL');
        await new Promise<void>((done) => log.end(done));
      })();
      return stopping;
    },
  };
}

/** Signals the child's whole process group (it was spawned detached, so the group id is its pid). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/**
 * The extension host's logs under a user data folder, newest session first: code-server's remote extension
 * host log, and the extension's own "Finetune Studio" output channel.
 */
export function extensionHostLogs(userDataDir: string): string[] {
  const logsDir = join(userDataDir, 'logs');
  if (!existsSync(logsDir)) return [];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/^(remoteexthost|exthost)\.log$/.test(name) || /Finetune Studio\.log$/.test(name)) found.push(path);
    }
  };
  walk(logsDir);
  return found.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
}

/** The last `lines` lines of a text file, for failure messages. */
export function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
