// Builds the page of the chart's browser test and benchmark: webview/dashboard/chartHarness.ts bundled as the
// webview bundles are (esbuild.mjs: browser, IIFE, es2022), with its CSS (uPlot's and media/chart.css), into a
// folder of the caller's; the page is then opened from a file: URL in Chromium.
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import type { ChartHarness } from '../../webview/dashboard/chartHarnessApi';

const ROOT = join(__dirname, '..', '..');

/** The page's globals that the Node side reads (it has no DOM types). */
export interface ChartPageGlobals {
  chartHarness: ChartHarness;
}

/** Bundles the harness into `dir` and writes its page; returns the page's file: URL. */
export async function buildChartPage(dir: string, options: { minify?: boolean } = {}): Promise<string> {
  await esbuild.build({
    entryPoints: { chartHarness: join(ROOT, 'webview', 'dashboard', 'chartHarness.ts') },
    outdir: dir,
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    minify: options.minify ?? false,
    sourcemap: false,
    logLevel: 'warning',
  });
  const html = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<link rel="stylesheet" href="chartHarness.css">',
    '<title>charts</title></head>',
    '<body class="vscode-light"><script src="chartHarness.js"></script></body></html>',
  ].join('\n');
  const page = join(dir, 'index.html');
  writeFileSync(page, html);
  return pathToFileURL(page).href;
}

/** Whether the real dashboard app exists (webview/dashboard/main.ts, another part of issue 7) to benchmark. */
export function hasDashboardApp(): boolean {
  return existsSync(join(ROOT, 'webview', 'dashboard', 'main.ts'));
}

/**
 * Bundles the real dashboard app behind a stand-in for VS Code's webview API (chartBenchApp.ts) into `dir` with its
 * styles; returns the page's file: URL. The page records `appFirstPaint` (ms since navigation) once the history
 * of a finished run of `?steps=` steps is drawn.
 */
export async function buildAppPage(dir: string): Promise<string> {
  await esbuild.build({
    entryPoints: { app: join(ROOT, 'webview', 'dashboard', 'chartBenchApp.ts') },
    outdir: dir,
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    minify: true,
    logLevel: 'warning',
  });
  const styles = ['<link rel="stylesheet" href="app.css">'];
  const panelCss = join(ROOT, 'media', 'dashboard.css');
  if (existsSync(panelCss)) {
    copyFileSync(panelCss, join(dir, 'panel.css'));
    styles.unshift('<link rel="stylesheet" href="panel.css">');
  }
  const html = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    ...styles,
    '<title>dashboard</title></head>',
    '<body class="vscode-light" style="--vscode-foreground:#3b3b3b;--vscode-editor-background:#fff;--vscode-font-family:system-ui,sans-serif;--vscode-charts-blue:#1a85ff;--vscode-charts-orange:#d18616;--vscode-charts-green:#388a34;--vscode-charts-purple:#652d90;--vscode-charts-red:#e51400;--vscode-charts-yellow:#bf8803">',
    '<main id="app" aria-busy="true"></main><script src="app.js"></script></body></html>',
  ].join('\n');
  const page = join(dir, 'app.html');
  writeFileSync(page, html);
  return pathToFileURL(page).href;
}
