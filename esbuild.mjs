// Builds every process of the project into dist/: one esbuild context per entry point.
//   node esbuild.mjs               one build
//   node esbuild.mjs --watch       rebuild on change
//   node esbuild.mjs --production  minified, no source maps (what `npm run package` ships)
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** Node-side bundles: CommonJS, because the VS Code extension host loads `main` with require(). */
const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

const entries = [
  { name: 'extension', entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js', external: ['vscode'] },
  { name: 'language server', entryPoints: ['server/main.ts'], outfile: 'dist/server.js' },
  // The training backend, and the embedded engine that it starts as a child process per job and for chat.
  { name: 'backend', entryPoints: ['backend/main.ts'], outfile: 'dist/backend.js', optional: true },
  { name: 'embedded engine', entryPoints: ['backend/engines/embedded/main.ts'], outfile: 'dist/engine-embedded.js', optional: true },
  { name: 'command-line tool', entryPoints: ['cli/main.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
];

const contexts = [];
for (const { name, optional, ...options } of entries) {
  if (optional && !existsSync(options.entryPoints[0])) continue;
  contexts.push({ name, context: await esbuild.context({ ...node, ...options }) });
}

// The webview apps run in the webview (a browser): one script each, no module loader there.
const webviews = [
  { name: 'New Training Run webview', entryPoints: ['webview/newRun/main.ts'], outfile: 'dist/webview/newRun.js' },
  { name: 'run dashboard webview', entryPoints: ['webview/dashboard/main.ts'], outfile: 'dist/webview/dashboard.js' },
  { name: 'chat webview', entryPoints: ['webview/chat/main.ts'], outfile: 'dist/webview/chat.js' },
];
for (const { name, ...options } of webviews) {
  if (!existsSync(options.entryPoints[0])) continue;
  const browser = { bundle: true, platform: 'browser', format: 'iife', target: 'es2022', sourcemap: !production, minify: production, logLevel: 'warning' };
  contexts.push({ name, context: await esbuild.context({ ...browser, ...options }) });
}

if (watch) {
  await Promise.all(contexts.map(({ context }) => context.watch()));
  console.log(`watching ${contexts.map((c) => c.name).join(', ')}`);
} else {
  try {
    await Promise.all(contexts.map(({ context }) => context.rebuild()));
  } finally {
    await Promise.all(contexts.map(({ context }) => context.dispose()));
  }
}
