// The in-host suites the Node-side runner can bundle and run (plain data: imported on both sides).
import { join } from 'node:path';

const HERE = __dirname;

/** Each suite's entry module; its `run()` is what the extension host calls. */
export const SUITES = {
  integration: join(HERE, 'integrationSuite.ts'),
  failing: join(HERE, 'failingSuite.ts'),
  training: join(HERE, 'trainingSuite.ts'),
  newRun: join(HERE, 'newRunSuite.ts'),
  dashboard: join(HERE, 'dashboardSuite.ts'),
  chat: join(HERE, 'chatSuite.ts'),
  localBackend: join(HERE, 'localBackendSuite.ts'),
} as const;

/** A Python that is not there: the backend's torch check names it, which shows that the setting reached it. */
export const MISSING_PYTHON = '/nonexistent/finetune-python';

/** User settings a suite's host opens with (the others open with the defaults). */
export const SUITE_SETTINGS: Partial<Record<keyof typeof SUITES, Record<string, unknown>>> = {
  localBackend: { 'finetune.localBackend.python': MISSING_PYTHON, 'finetune.localBackend.allowModelDownloads': true },
};

/** The environment variable that names the report file; the Node-side runner sets it for the host. */
export const RESULTS_ENV = 'FINETUNE_HOST_TEST_RESULTS';

export type SuiteName = keyof typeof SUITES;

export function isSuiteName(name: string): name is SuiteName {
  return Object.hasOwn(SUITES, name);
}

/** The failing suite's deliberate failure, which the harness test looks for in the runner's output. */
export const DELIBERATE_FAILURE = {
  test: 'a deliberately failing in-host test',
  message: 'deliberate failure: the harness must report this',
} as const;
