// The dashboard in a real extension host (issue 7). PLACEHOLDER: its owner writes the tests.
import { runInHostTests, type InHostTest } from './inHostRunner';

const tests: InHostTest[] = [];

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('dashboard', tests);
}
