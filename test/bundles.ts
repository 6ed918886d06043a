// Test-private bundles of the project's Node processes, with esbuild.mjs's options, written into a test's own
// folder: tests that start a bundle never race `npm run build` or each other.
import { join } from 'node:path';
import * as esbuild from 'esbuild';

const ROOT = join(__dirname, '..');

/** Bundles `entry` (relative to the repository) into `outfile` as esbuild.mjs bundles a Node process. */
export async function bundleNodeEntry(entry: string, outfile: string, banner?: string): Promise<void> {
  await esbuild.build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'warning',
    ...(banner === undefined ? {} : { banner: { js: banner } }),
  });
}

/** The `finetune-studio` command (cli/main.ts) as a test-private bundle. */
export function bundleCli(outfile: string): Promise<void> {
  return bundleNodeEntry(join('cli', 'main.ts'), outfile, '#!/usr/bin/env node');
}
