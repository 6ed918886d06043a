// The in-host suites inside a real VS Code: code-server with the extension loaded from this folder, driven by
// Debian's Chromium, one fresh host per suite: the dataset integration tests, the training sidebar with the real
// local backend, the New Training Run form, the dashboard, the chat, the local backend's settings. Each in-host
// test is reported as a subtest. FINETUNE_HOST_SUITE picks one suite; the harness's own test runs this file with
// the failing one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runHostSuite } from './host/runHostSuite';
import { isSuiteName } from './host/suites';

const suites = process.env.FINETUNE_HOST_SUITE !== undefined ? [process.env.FINETUNE_HOST_SUITE] : ['integration', 'training', 'newRun', 'dashboard', 'chat', 'localBackend'];

for (const suite of suites) test(`in-host suite "${suite}" in code-server`, { timeout: 300_000 }, async (t) => {
  assert.ok(isSuiteName(suite), `FINETUNE_HOST_SUITE names no suite: ${suite}`);
  const run = await runHostSuite(suite);
  t.diagnostic(`VS Code ${run.report.vscodeVersion} (${run.report.appName}), ${run.report.results.length} in-host tests in ${run.seconds.toFixed(1)} s`);
  assert.ok(run.report.results.length > 0, `the suite ran no test\n${run.diagnosis}`);
  for (const result of run.report.results) {
    await t.test(result.name, (sub) => {
      sub.diagnostic(`${result.durationMs} ms in the extension host`);
      if (result.status === 'skipped') {
        sub.skip(result.detail);
        return;
      }
      if (result.status === 'failed') throw new Error(`in-host test failed: ${result.name}\n${result.detail ?? ''}\n\n${run.diagnosis}`);
    });
  }
});
