// One VS Code host for a test: code-server with its own state, a copy of the sample workspace, and Debian's
// Chromium (driven by playwright-core) on a fresh profile. Everything a person needs to see what happened lands
// in test-artifacts/<name>/: screenshots, code-server's and the extension host's logs, the browser console.
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { extensionHostLogs, HOST_SETTINGS, ROOT, startCodeServer, tail, type CodeServer } from '../../scripts/host/codeServer';

/** Where screenshots and logs are kept for a person to look at (gitignored; the README names it). */
export const ARTIFACTS_DIR = join(ROOT, 'test-artifacts');
export const CHROMIUM = '/usr/bin/chromium';
/** Without the networking flags Chromium keeps dialling out on a closed network (measured here). */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface HostSession {
  /** test-artifacts/<name>/ */
  readonly dir: string;
  /** The copy of sample/ that the workbench opens: tests may change it. */
  readonly workspace: string;
  readonly server: CodeServer;
  readonly browser: Browser;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Everything the page printed, the extension host's console included (it is forwarded to the page). */
  readonly consoleLog: string;
  /** The URL of a workbench on the workspace with the extension loaded (and a test module, when given). */
  workbenchUrl(extensionTestsPath?: string): string;
  /** Paths and log tails for a failure message: what a person reads first. */
  diagnose(): string;
  close(): Promise<void>;
}

export interface SessionOptions {
  /** Environment for code-server and so for the extension host. */
  env?: NodeJS.ProcessEnv;
  /** User settings on top of the hosts' defaults (HOST_SETTINGS), e.g. a colour theme for screenshots. */
  settings?: Readonly<Record<string, unknown>>;
  /** The display language (`zh-cn` for the Chinese screenshots); code-server's default otherwise. */
  locale?: string;
}

/** Debian's Chromium on a fresh profile, and how to close it (and remove the profile). */
export interface LaunchedChromium {
  browser: Browser;
  close(): Promise<void>;
}

/** Launches Debian's Chromium headless, its profile, caches and HOME in a scratch folder. */
export async function launchChromium(): Promise<LaunchedChromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`node scripts/host/install.mjs\` (as root)`);
  const scratch = mkdtempSync(join(tmpdir(), 'finetune-chromium-'));
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      env: {
        ...process.env,
        HOME: scratch,
        XDG_CONFIG_HOME: join(scratch, 'config'),
        XDG_CACHE_HOME: join(scratch, 'cache'),
        XDG_DATA_HOME: join(scratch, 'data'),
      },
      timeout: 60_000,
    });
    return {
      browser,
      async close() {
        await browser.close().catch(() => undefined);
        rmSync(scratch, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
}

/** A fresh artefact folder for one test (its previous run's is removed). */
export function freshArtifactDir(name: string): string {
  const dir = join(ARTIFACTS_DIR, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Starts code-server and Chromium for test `name`; the caller navigates (see `workbenchUrl`). */
export async function openHostSession(name: string, options: SessionOptions = {}): Promise<HostSession> {
  if (!existsSync(join(ROOT, 'dist', 'extension.js')) || !existsSync(join(ROOT, 'dist', 'server.js'))) {
    throw new Error('dist/extension.js or dist/server.js is missing: run `npm run build` first');
  }
  const dir = freshArtifactDir(name);
  const workspace = join(dir, 'workspace');
  cpSync(join(ROOT, 'sample'), workspace, { recursive: true });
  const consoleLog = join(dir, 'browser-console.log');
  const server = await startCodeServer({
    stateDir: join(dir, 'host'),
    isolateHome: true,
    // No extension gallery: nothing to fetch on a closed network, and no lookups of hosts that do not resolve.
    env: { EXTENSIONS_GALLERY: '{}', ...options.env },
    settings: options.settings === undefined ? undefined : { ...HOST_SETTINGS, ...options.settings },
    locale: options.locale,
  });
  let launched: LaunchedChromium;
  try {
    launched = await launchChromium();
  } catch (error) {
    await server.stop();
    throw error;
  }
  const browser = launched.browser;
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const record = (line: string) => appendFileSync(consoleLog, `${line}\n`);
  page.on('console', (message) => record(`[${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => record(`[pageerror] ${error.stack ?? error.message}`));
  page.on('crash', () => record('[crash] the page crashed'));

  let closing: Promise<void> | undefined;
  return {
    dir,
    workspace,
    server,
    browser,
    context,
    page,
    consoleLog,
    workbenchUrl(extensionTestsPath?: string): string {
      return server.workbenchUrl({ folder: workspace, extensionDevelopmentPath: ROOT, extensionTestsPath });
    },
    diagnose(): string {
      const logs = extensionHostLogs(server.userDataDir);
      const shown = (path: string) => relative(ROOT, path);
      const lines = [`artefacts: ${shown(dir)}/`, `code-server log: ${shown(server.logFile)}`, `browser console: ${shown(consoleLog)}`];
      for (const log of logs) lines.push(`extension host log: ${shown(log)}`);
      const hostLog = logs.find((l) => /exthost\.log$/.test(l));
      if (hostLog !== undefined) lines.push(`--- last lines of ${shown(hostLog)} ---`, tail(hostLog, 30));
      const ownLog = logs.find((l) => /Finetune Studio\.log$/.test(l));
      if (ownLog !== undefined) lines.push(`--- last lines of ${shown(ownLog)} ---`, tail(ownLog, 20));
      lines.push(`--- last lines of ${shown(consoleLog)} ---`, tail(consoleLog, 20));
      return lines.join('\n');
    },
    close(): Promise<void> {
      closing ??= (async () => {
        await launched.close();
        await server.stop();
      })();
      return closing;
    },
  };
}
