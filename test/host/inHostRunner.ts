// A small test runner for inside the VS Code extension host: runs named tests one after another, each with a
// timeout, and writes a JSON report. The report file is the only channel that counts, because code-server's
// extension host exits 0 even when the test module throws; under @vscode/test-electron the thrown error also
// sets the exit code. No mocha: a dozen lines of runner need no dependency and no global state.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { RESULTS_ENV } from './suites';

/** One test inside the host. */
export interface InHostTest {
  name: string;
  /** Default 30 s: the language server's first start on 2 busy cores takes a few seconds. */
  timeoutMs?: number;
  run(): Promise<void> | void;
}

export type InHostStatus = 'passed' | 'failed' | 'skipped';

/** One test's outcome, as the report file stores it. */
export interface InHostResult {
  name: string;
  status: InHostStatus;
  durationMs: number;
  /** The failure's message and stack, or why the test was skipped. */
  detail?: string;
}

/** The report file's content. */
export interface InHostReport {
  suite: string;
  vscodeVersion: string;
  appName: string;
  startedAt: string;
  finishedAt: string;
  results: InHostResult[];
}

/** Thrown by a test that cannot run here (not a failure): the report says why. */
export class SkipTest extends Error {
  override readonly name = 'SkipTest';
}

/**
 * Runs the tests in order (they share one window, so order is meaningful), writes the report, and throws when
 * any failed so that @vscode/test-electron exits non-zero too.
 */
export async function runInHostTests(suite: string, tests: readonly InHostTest[]): Promise<void> {
  const startedAt = new Date().toISOString();
  const results: InHostResult[] = [];
  for (const test of tests) {
    const started = Date.now();
    try {
      await withTimeout(Promise.resolve().then(() => test.run()), test.timeoutMs ?? 30_000, test.name);
      results.push({ name: test.name, status: 'passed', durationMs: Date.now() - started });
    } catch (error) {
      const skipped = error instanceof SkipTest;
      results.push({
        name: test.name,
        status: skipped ? 'skipped' : 'failed',
        durationMs: Date.now() - started,
        detail: skipped ? error.message : describe(error),
      });
    }
    const last = results[results.length - 1];
    console.log(`[in-host ${suite}] ${last.status}: ${test.name} (${last.durationMs} ms)${last.status === 'passed' ? '' : `\n${last.detail}`}`);
  }
  const report: InHostReport = {
    suite,
    vscodeVersion: vscode.version,
    appName: vscode.env.appName,
    startedAt,
    finishedAt: new Date().toISOString(),
    results,
  };
  const file = process.env[RESULTS_ENV] ?? join(tmpdir(), `finetune-host-${suite}-results.json`);
  mkdirSync(dirname(file), { recursive: true });
  // Written whole, then renamed: the Node side reacts to the file appearing and must never read half of it.
  writeFileSync(`${file}.partial`, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(`${file}.partial`, file);
  console.log(`[in-host ${suite}] report: ${file}`);
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length > 0) throw new Error(`${failed.length} in-host test(s) failed: ${failed.map((r) => r.name).join('; ')}`);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

function withTimeout<T>(promise: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${name}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves with the first value `probe` returns that is not undefined, probing now and after each `event`;
 * rejects after `timeoutMs` with `what` (and the last state `describeLast` gives, to say how far it got).
 */
export function waitForEvent<T>(
  event: vscode.Event<unknown>,
  probe: () => T | undefined,
  what: string,
  timeoutMs = 20_000,
  describeLast?: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const now = probe();
    if (now !== undefined) {
      resolve(now);
      return;
    }
    const timer = setTimeout(() => {
      subscription.dispose();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describeLast ? `; last seen: ${describeLast()}` : ''}`));
    }, timeoutMs);
    const subscription = event(() => {
      let value: T | undefined;
      try {
        value = probe();
      } catch (error) {
        clearTimeout(timer);
        subscription.dispose();
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (value === undefined) return;
      clearTimeout(timer);
      subscription.dispose();
      resolve(value);
    });
  });
}
