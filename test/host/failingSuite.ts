// A deliberately failing in-host suite, for the harness's own test (test/harness.inHost.test.ts): one test
// passes and one fails, so that the harness must report the failure, by name, even though the extension host
// itself exits 0.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { runInHostTests } from './inHostRunner';
import { DELIBERATE_FAILURE } from './suites';

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('failing', [
    {
      name: 'a passing in-host test',
      run() {
        assert.ok(vscode.version.length > 0);
      },
    },
    {
      name: DELIBERATE_FAILURE.test,
      run() {
        assert.fail(DELIBERATE_FAILURE.message);
      },
    },
  ]);
}
