// Runs an in-host suite inside code-server: bundles it, opens a workbench whose payload names it as
// extensionTestsPath, and waits for the report file it writes. The extension host exits 0 whether the suite
// passed or not, so the report is the verdict; a missing report is a failure too.
import { existsSync, mkdirSync, readFileSync, watch } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ROOT } from '../../scripts/host/codeServer';
import * as esbuild from 'esbuild';
import type { InHostReport } from './inHostRunner';
import { ARTIFACTS_DIR, openHostSession } from './session';
import { RESULTS_ENV, SUITE_SETTINGS, SUITES, type SuiteName } from './suites';

/** A suite's outcome, with where its artefacts are. */
export interface HostSuiteRun {
  report: InHostReport;
  /** Paths and log tails for failure messages. */
  diagnosis: string;
  seconds: number;
}

/** Bundles a suite into one CommonJS file for the extension host (`vscode` is the host's own). */
export async function bundleSuite(suite: SuiteName, outDir: string): Promise<string> {
  const outfile = join(outDir, `${suite}.js`);
  await esbuild.build({
    entryPoints: [SUITES[suite]],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['vscode'],
    sourcemap: 'inline',
    logLevel: 'warning',
  });
  return outfile;
}

/** Resolves when `file` exists (it is renamed into place whole); rejects if `process` exits first or on timeout. */
export function waitForFile(file: string, timeoutMs: number, failWhen: { exited: Promise<string> }): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  return new Promise<void>((resolve, reject) => {
    const watcher = watch(dirname(file), () => {
      if (existsSync(file)) finish();
    });
    const timer = setTimeout(() => finish(new Error(`no report after ${timeoutMs / 1000} s: ${file}`)), timeoutMs);
    void failWhen.exited.then((why) => finish(new Error(why)));
    function finish(error?: Error) {
      clearTimeout(timer);
      watcher.close();
      if (error === undefined) resolve();
      else reject(error);
    }
    if (existsSync(file)) finish();
  });
}

/** Thrown when the suite could not run to its report: the message carries the logs. */
export class HostRunError extends Error {
  override readonly name = 'HostRunError';
}

/** Runs `suite` in a fresh code-server + Chromium and returns its report (whatever the tests' outcome). */
export async function runHostSuite(suite: SuiteName, timeoutMs = 180_000): Promise<HostSuiteRun> {
  const started = Date.now();
  const name = `in-host-${suite}`;
  const resultsFile = join(ARTIFACTS_DIR, name, 'results.json');
  const session = await openHostSession(name, { env: { [RESULTS_ENV]: resultsFile }, settings: SUITE_SETTINGS[suite] });
  try {
    // The bundle goes next to the other artefacts, after the session has made their folder afresh.
    const bundle = await bundleSuite(suite, join(session.dir, 'suite'));
    const serverExited = new Promise<string>((resolve) =>
      session.server.process.once('exit', (code, signal) => resolve(`code-server exited (${signal ?? `code ${code}`}) before the suite reported`)),
    );
    const pageCrashed = new Promise<string>((resolve) => session.page.once('crash', () => resolve('the browser page crashed before the suite reported')));
    const reported = waitForFile(resultsFile, timeoutMs, { exited: Promise.race([serverExited, pageCrashed]) });
    // Awaited below; if navigation fails first, its later rejection (the server stops) is not a crash.
    reported.catch(() => undefined);
    try {
      // The extension host, and so the suite, starts only once a page connects to the workbench.
      await session.page.goto(session.workbenchUrl(bundle));
      await reported;
    } catch (error) {
      const screenshot = join(session.dir, 'no-report.png');
      await session.page.screenshot({ path: screenshot }).catch(() => undefined);
      throw new HostRunError(`in-host suite "${suite}" did not report: ${(error as Error).message}\nscreenshot: ${relative(ROOT, screenshot)}\n${session.diagnose()}`);
    }
    const report = JSON.parse(readFileSync(resultsFile, 'utf8')) as InHostReport;
    return { report, diagnosis: session.diagnose(), seconds: (Date.now() - started) / 1000 };
  } finally {
    await session.close();
  }
}
