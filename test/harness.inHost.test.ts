// The in-host harness's own tests. The extension host exits 0 even when the test module throws, so a harness
// that trusted it would pass on any failure: here a deliberately failing in-host suite must make the very test
// file that `npm test` runs (test/host.inHost.test.ts) exit non-zero and name the failing test.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CODE_SERVER_VERSION, ROOT } from '../scripts/host/codeServer';
import { waitForFile } from './host/runHostSuite';
import { DELIBERATE_FAILURE } from './host/suites';

/** Runs a test file under Node's test runner as `npm test` does, as a separate run (not a subtest of this one). */
function runTestFile(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const childEnv = { ...process.env, ...env };
  // Inherited, it would make the child report to this runner instead of running as a test run of its own.
  delete childEnv.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], { cwd: ROOT, env: childEnv });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('in-host test harness', () => {
  it('fails the run, naming the test, when an in-host test fails', { timeout: 300_000 }, async () => {
    const { code, output } = await runTestFile(join('test', 'host.inHost.test.ts'), { FINETUNE_HOST_SUITE: 'failing' });
    assert.equal(code, 1, `the runner should exit 1 on a failing in-host test; it exited ${code}:\n${output}`);
    assert.match(output, /\bok \d+ - a passing in-host test/, output);
    assert.match(output, new RegExp(`not ok \\d+ - ${DELIBERATE_FAILURE.test}`), output);
    assert.ok(output.includes(DELIBERATE_FAILURE.message), `the failure's message is not in the output:\n${output}`);
    // The failure points a person at the logs.
    assert.match(output, /extension host log: test-artifacts\/in-host-failing\//, output);
  });

  it('waits for the report to appear whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-harness-'));
    try {
      const file = join(dir, 'results.json');
      const waiting = waitForFile(file, 10_000, { exited: new Promise<string>(() => undefined) });
      writeFileSync(`${file}.partial`, '{}');
      renameSync(`${file}.partial`, file);
      await waiting;
      assert.equal(readFileSync(file, 'utf8'), '{}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails instead of waiting forever when the host exits without a report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-harness-'));
    try {
      const exited = Promise.resolve('code-server exited (code 0) before the suite reported');
      await assert.rejects(waitForFile(join(dir, 'results.json'), 10_000, { exited }), /before the suite reported/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts the code-server version that the installer installs', () => {
    const installer = readFileSync(join(ROOT, 'scripts', 'host', 'install.mjs'), 'utf8');
    assert.match(installer, new RegExp(`const CODE_SERVER_VERSION = '${CODE_SERVER_VERSION.replace(/\./g, '\\.')}'`));
  });
});
