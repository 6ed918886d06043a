// `npm run test:desktop`: the same in-host integration suite under @vscode/test-electron, i.e. in VS Code
// desktop (Electron), for machines that can download VS Code. On Linux without a display, run it under
// `xvfb-run -a npm run test:desktop`. VSCODE_VERSION picks the version (default: stable).
// This machine cannot download VS Code; `npm run test:host` runs the same suite in code-server instead.
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runTests } from '@vscode/test-electron';
import { ROOT } from '../../scripts/host/codeServer';
import type { InHostReport } from './inHostRunner';
import { bundleSuite } from './runHostSuite';
import { freshArtifactDir } from './session';
import { RESULTS_ENV } from './suites';

async function main(): Promise<number> {
  if (!existsSync(join(ROOT, 'dist', 'extension.js'))) {
    console.error('dist/extension.js is missing: run `npm run build` first');
    return 1;
  }
  const dir = freshArtifactDir('desktop');
  const workspace = join(dir, 'workspace');
  cpSync(join(ROOT, 'sample'), workspace, { recursive: true });
  const results = join(dir, 'results.json');
  const bundle = await bundleSuite('integration', join(dir, 'suite'));
  let exitCode: number;
  try {
    exitCode = await runTests({
      version: process.env.VSCODE_VERSION ?? 'stable',
      extensionDevelopmentPath: ROOT,
      extensionTestsPath: bundle,
      extensionTestsEnv: { [RESULTS_ENV]: results },
      launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome', '--skip-release-notes'],
    });
  } catch (error) {
    console.error(`test:desktop: VS Code did not run the suite: ${error instanceof Error ? error.message : String(error)}`);
    console.error('(a machine without access to VS Code downloads runs the same suite with `npm run test:host`)');
    return 1;
  }
  // The report is the verdict under code-server; here the exit code is too, and both must agree.
  if (!existsSync(results)) {
    console.error(`test:desktop: no report at ${relative(ROOT, results)} (VS Code exited ${exitCode})`);
    return 1;
  }
  const report = JSON.parse(readFileSync(results, 'utf8')) as InHostReport;
  for (const result of report.results) {
    console.log(`${result.status.padEnd(7)} ${result.name} (${result.durationMs} ms)${result.status === 'passed' ? '' : `\n        ${result.detail ?? ''}`}`);
  }
  const count = (status: string) => report.results.filter((r) => r.status === status).length;
  const failed = count('failed');
  console.log(`VS Code ${report.vscodeVersion}, in-host tests: ${count('passed')} passed, ${failed} failed, ${count('skipped')} skipped`);
  return failed > 0 || exitCode !== 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
