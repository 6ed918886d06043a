import { FINDING_CODES, SEVERITY, type FindingCode } from '../common/dataset/codes';
import type { DatasetStatistics, Distribution } from '../common/lspProtocol';
import { baseName, formatCount, formatMean, plural } from './format';

/**
 * The HTML of the "Dataset Statistics" webview, as pure functions of the statistics, so that what the panel
 * shows is unit-tested without VS Code. The page is static: no script runs in it, and the Content-Security-Policy
 * allows only the extension's stylesheet and scripts that carry the nonce (there are none today).
 */

/** What the page needs from the webview that shows it. */
export interface StatisticsPage {
  /** `webview.cspSource`: the origin of the extension's resources inside the webview. */
  cspSource: string;
  /** A fresh random value per render, for the CSP's `script-src`. */
  nonce: string;
  /** `webview.asWebviewUri(media/statistics.css)`, as a string. */
  styleUri: string;
}

/** Settings that change what is shown. */
export interface StatisticsOptions {
  /** `finetune.dataset.countTokens`: without counting there are no token figures to show. */
  countTokens: boolean;
  /**
   * Whether tokens are still being counted, from the latest `dataset/status`; without it, inferred from
   * `tokenizedExamples < validExamples`.
   */
  counting?: boolean;
}

/** The full page for one dataset's statistics. */
export function renderStatisticsHtml(stats: DatasetStatistics, page: StatisticsPage, options: StatisticsOptions): string {
  const name = baseName(stats.uri);
  const counting = options.countTokens && (options.counting ?? stats.tokenizedExamples < stats.validExamples);
  const body = [
    `<header><h1>${esc(name)}</h1><p class="muted">${esc(describeUri(stats.uri))}</p>`,
    `<p class="muted">${stats.live ? 'Checked as you type.' : 'Checked from disk: the file is too large for VS Code to share with extensions, so it is re-checked whenever it changes on disk.'}</p></header>`,
    counting ? countingNotice(stats) : '',
    summarySection(stats),
    findingsSection(stats),
    distributionsSection(stats, options, counting),
    options.countTokens ? trainingSection(stats, counting) : '',
  ].join('\n');
  return document(`Statistics: ${name}`, body, page);
}

/** A page with one message instead of statistics: the server is starting, does not know the file, or failed. */
export function renderMessageHtml(title: string, message: string, page: StatisticsPage): string {
  return document(title, `<header><h1>${esc(title)}</h1></header>\n<p class="message">${esc(message)}</p>`, page);
}

function document(title: string, body: string, page: StatisticsPage): string {
  const csp = [
    "default-src 'none'",
    `style-src ${page.cspSource}`,
    `font-src ${page.cspSource}`,
    `img-src ${page.cspSource}`,
    `script-src 'nonce-${page.nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${esc(page.styleUri)}">
<title>${esc(title)}</title>
</head>
<body>
${body}
</body>
</html>
`;
}

function countingNotice(stats: DatasetStatistics): string {
  return `<section class="notice" aria-live="polite">
<p>Counting tokens: ${formatCount(stats.tokenizedExamples)} of ${plural(stats.validExamples, 'valid example')} so far. Token figures below cover those and grow as counting goes on.</p>
<progress value="${num(stats.tokenizedExamples)}" max="${num(Math.max(stats.validExamples, 1))}"></progress>
</section>`;
}

function summarySection(stats: DatasetStatistics): string {
  const rows: [string, number, string][] = [
    ['Lines', stats.lines, ''],
    ['Examples', stats.examples, ''],
    ['Valid examples', stats.validExamples, 'without errors: what training uses'],
    ['Blank lines', stats.blank, ''],
    ['Errors', stats.errors, ''],
    ['Warnings', stats.warnings, ''],
  ];
  return `<section>
<h2>Counts</h2>
<table class="counts">
<tbody>
${rows.map(([label, value, note]) => `<tr><th scope="row">${label}</th><td class="num">${formatCount(value)}</td><td class="muted">${note}</td></tr>`).join('\n')}
</tbody>
</table>
</section>`;
}

function findingsSection(stats: DatasetStatistics): string {
  const byCode: Partial<Record<FindingCode, number>> = stats.byCode ?? {};
  const found = FINDING_CODES.filter((code) => (byCode[code] ?? 0) > 0).sort(
    (a, b) => severityRank(a) - severityRank(b) || FINDING_CODES.indexOf(a) - FINDING_CODES.indexOf(b),
  );
  if (found.length === 0) return `<section>\n<h2>Findings</h2>\n<p>No errors or warnings.</p>\n</section>`;
  return `<section>
<h2>Findings</h2>
<table class="findings">
<thead><tr><th scope="col">Code</th><th scope="col">Severity</th><th scope="col" class="num">Count</th></tr></thead>
<tbody>
${found.map((code) => `<tr class="${SEVERITY[code]}"><td><code>${code}</code></td><td><span class="severity ${SEVERITY[code]}">${SEVERITY[code]}</span></td><td class="num">${formatCount(byCode[code] ?? 0)}</td></tr>`).join('\n')}
</tbody>
</table>
</section>`;
}

function severityRank(code: FindingCode): number {
  return SEVERITY[code] === 'error' ? 0 : 1;
}

function distributionsSection(stats: DatasetStatistics, options: StatisticsOptions, counting: boolean): string {
  const soFar = counting ? ' <span class="muted">(so far)</span>' : '';
  const rows: [string, Distribution | undefined][] = [['Messages per example', stats.messagesPerExample]];
  if (options.countTokens) {
    rows.push([`Tokens per example${soFar}`, stats.tokensPerExample]);
    rows.push([`Trained tokens per example${soFar}`, stats.trainedTokensPerExample]);
  }
  const note = options.countTokens
    ? '<p class="muted">Over valid examples. Tokens as the Qwen2.5 chat template renders the conversation; trained tokens are what the assistant says, the only tokens the loss is taken on.</p>'
    : '<p class="muted">Over valid examples. Token counting is off (setting <code>finetune.dataset.countTokens</code>).</p>';
  return `<section>
<h2>Distributions</h2>
<table class="distributions">
<thead><tr><th scope="col"></th><th scope="col" class="num">Examples</th><th scope="col" class="num">Min</th><th scope="col" class="num">P5</th><th scope="col" class="num">Median</th><th scope="col" class="num">Mean</th><th scope="col" class="num">P95</th><th scope="col" class="num">Max</th></tr></thead>
<tbody>
${rows.map(([label, d]) => distributionRow(label, d)).join('\n')}
</tbody>
</table>
${note}
</section>`;
}

function distributionRow(label: string, d: Distribution | undefined): string {
  if (d === undefined || !(d.count > 0)) {
    return `<tr><th scope="row">${label}</th><td class="num">0</td><td class="num muted" colspan="6">no examples yet</td></tr>`;
  }
  const cells = [d.count, d.min, d.p5, d.median].map((v) => `<td class="num">${formatMean(v)}</td>`);
  cells.push(`<td class="num">${formatMean(d.mean)}</td>`);
  cells.push(...[d.p95, d.max].map((v) => `<td class="num">${formatMean(v)}</td>`));
  return `<tr><th scope="row">${label}</th>${cells.join('')}</tr>`;
}

function trainingSection(stats: DatasetStatistics, counting: boolean): string {
  const valid = Math.max(stats.validExamples, 0);
  const share = valid > 0 ? ` (${formatShare(stats.overLength / valid)} of valid examples)` : '';
  const estimate = counting ? ', estimated from the examples counted so far' : '';
  return `<section>
<h2>Training</h2>
<table class="counts">
<tbody>
<tr><th scope="row">Over ${formatCount(stats.maxSequenceLength)} tokens</th><td class="num">${formatCount(stats.overLength)}</td><td class="muted">${plural(stats.overLength, 'example')}${share}${counting ? ' so far' : ''}; training truncates ${stats.overLength === 1 ? 'it' : 'them'} to the maximum sequence length</td></tr>
<tr><th scope="row">Tokens per epoch</th><td class="num">${formatCount(stats.epochTokens)}</td><td class="muted">what one epoch processes, after truncation${estimate}</td></tr>
<tr><th scope="row">Trained tokens per epoch</th><td class="num">${formatCount(stats.epochTrainedTokens)}</td><td class="muted">assistant tokens the loss is taken on${estimate}</td></tr>
</tbody>
</table>
</section>`;
}

/** `0.0123` → `"1.2%"`; a share that is not zero never shows as 0%. */
export function formatShare(fraction: number): string {
  if (!Number.isFinite(fraction) || fraction <= 0) return '0%';
  const percent = fraction * 100;
  if (percent < 0.1) return '<0.1%';
  return `${percent >= 10 ? percent.toFixed(0) : percent.toFixed(1).replace(/\.0$/, '')}%`;
}

function describeUri(uri: string): string {
  if (!uri.startsWith('file://')) return uri;
  try {
    return decodeURIComponent(uri.slice('file://'.length));
  } catch {
    return uri;
  }
}

function num(value: number): string {
  return Number.isFinite(value) ? String(value) : '0';
}

/** Escapes a double-quoted attribute value whose quotes are meaningful to the reader (the CSP's 'self' etc.). */
function attr(text: string): string {
  return text.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Escapes text for HTML content and attribute values. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
