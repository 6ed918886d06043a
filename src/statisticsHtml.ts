import { FINDING_CODES, SEVERITY, type FindingCode } from '../common/dataset/codes';
import type { DatasetStatistics, Distribution } from '../common/lspProtocol';
import { baseName, formatCount, formatMean } from './format';
import { displayLanguage, l10n } from './l10n';

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
    `<p class="muted">${esc(stats.live ? l10n.t('Checked as you type.') : l10n.t('Checked from disk: the file is too large for VS Code to share with extensions, so it is re-checked whenever it changes on disk.'))}</p></header>`,
    counting ? countingNotice(stats) : '',
    summarySection(stats),
    findingsSection(stats),
    distributionsSection(stats, options, counting),
    options.countTokens ? trainingSection(stats, counting) : '',
  ].join('\n');
  return document(l10n.t('Statistics: {0}', name), body, page);
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
<html lang="${attr(displayLanguage())}">
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
<p>${esc(countingText(stats))}</p>
<progress value="${num(stats.tokenizedExamples)}" max="${num(Math.max(stats.validExamples, 1))}"></progress>
</section>`;
}

function countingText(stats: DatasetStatistics): string {
  const done = formatCount(stats.tokenizedExamples);
  const valid = formatCount(stats.validExamples);
  return stats.validExamples === 1
    ? l10n.t('Counting tokens: {0} of 1 valid example so far. Token figures below cover those and grow as counting goes on.', done)
    : l10n.t('Counting tokens: {0} of {1} valid examples so far. Token figures below cover those and grow as counting goes on.', done, valid);
}

function summarySection(stats: DatasetStatistics): string {
  const rows: [string, number, string][] = [
    [l10n.t('Lines'), stats.lines, ''],
    [l10n.t('Examples'), stats.examples, ''],
    [l10n.t('Valid examples'), stats.validExamples, l10n.t('without errors: what training uses')],
    [l10n.t('Blank lines'), stats.blank, ''],
    [l10n.t('Errors'), stats.errors, ''],
    [l10n.t('Warnings'), stats.warnings, ''],
  ];
  return `<section>
<h2>${esc(l10n.t('Counts'))}</h2>
<table class="counts">
<tbody>
${rows.map(([label, value, note]) => `<tr><th scope="row">${esc(label)}</th><td class="num">${formatCount(value)}</td><td class="muted">${esc(note)}</td></tr>`).join('\n')}
</tbody>
</table>
</section>`;
}

function findingsSection(stats: DatasetStatistics): string {
  const byCode: Partial<Record<FindingCode, number>> = stats.byCode ?? {};
  const found = FINDING_CODES.filter((code) => (byCode[code] ?? 0) > 0).sort(
    (a, b) => severityRank(a) - severityRank(b) || FINDING_CODES.indexOf(a) - FINDING_CODES.indexOf(b),
  );
  const heading = `<h2>${esc(l10n.t('Findings'))}</h2>`;
  if (found.length === 0) return `<section>\n${heading}\n<p>${esc(l10n.t('No errors or warnings.'))}</p>\n</section>`;
  const severity = (code: FindingCode): string => esc(SEVERITY[code] === 'error' ? l10n.t('error') : l10n.t('warning'));
  return `<section>
${heading}
<table class="findings">
<thead><tr><th scope="col">${esc(l10n.t('Code'))}</th><th scope="col">${esc(l10n.t('Severity'))}</th><th scope="col" class="num">${esc(l10n.t('Count'))}</th></tr></thead>
<tbody>
${found.map((code) => `<tr class="${SEVERITY[code]}"><td><code>${code}</code></td><td><span class="severity ${SEVERITY[code]}">${severity(code)}</span></td><td class="num">${formatCount(byCode[code] ?? 0)}</td></tr>`).join('\n')}
</tbody>
</table>
</section>`;
}

function severityRank(code: FindingCode): number {
  return SEVERITY[code] === 'error' ? 0 : 1;
}

function distributionsSection(stats: DatasetStatistics, options: StatisticsOptions, counting: boolean): string {
  const soFar = counting ? ` <span class="muted">${esc(l10n.t('(so far)'))}</span>` : '';
  const rows: [string, Distribution | undefined][] = [[esc(l10n.t('Messages per example')), stats.messagesPerExample]];
  if (options.countTokens) {
    rows.push([`${esc(l10n.t('Tokens per example'))}${soFar}`, stats.tokensPerExample]);
    rows.push([`${esc(l10n.t('Trained tokens per example'))}${soFar}`, stats.trainedTokensPerExample]);
  }
  const setting = 'finetune.dataset.countTokens';
  const note = options.countTokens
    ? `<p class="muted">${esc(l10n.t('Over valid examples. Tokens as the Qwen2.5 chat template renders the conversation; trained tokens are what the assistant says, the only tokens the loss is taken on.'))}</p>`
    : `<p class="muted">${esc(l10n.t('Over valid examples. Token counting is off (setting {0}).', setting)).replace(setting, `<code>${setting}</code>`)}</p>`;
  const columns = [l10n.t('Examples'), l10n.t('Min'), l10n.t('P5'), l10n.t('Median'), l10n.t('Mean'), l10n.t('P95'), l10n.t('Max')];
  return `<section>
<h2>${esc(l10n.t('Distributions'))}</h2>
<table class="distributions">
<thead><tr><th scope="col"></th>${columns.map((c) => `<th scope="col" class="num">${esc(c)}</th>`).join('')}</tr></thead>
<tbody>
${rows.map(([label, d]) => distributionRow(label, d)).join('\n')}
</tbody>
</table>
${note}
</section>`;
}

function distributionRow(label: string, d: Distribution | undefined): string {
  if (d === undefined || !(d.count > 0)) {
    return `<tr><th scope="row">${label}</th><td class="num">0</td><td class="num muted" colspan="6">${esc(l10n.t('no examples yet'))}</td></tr>`;
  }
  const cells = [d.count, d.min, d.p5, d.median].map((v) => `<td class="num">${formatMean(v)}</td>`);
  cells.push(`<td class="num">${formatMean(d.mean)}</td>`);
  cells.push(...[d.p95, d.max].map((v) => `<td class="num">${formatMean(v)}</td>`));
  return `<tr><th scope="row">${label}</th>${cells.join('')}</tr>`;
}

function trainingSection(stats: DatasetStatistics, counting: boolean): string {
  const valid = Math.max(stats.validExamples, 0);
  const over = stats.overLength;
  const examples = over === 1 ? l10n.t('1 example') : l10n.t('{0} examples', formatCount(over));
  const share = valid > 0 ? ` ${l10n.t('({0} of valid examples)', formatShare(over / valid))}` : '';
  const soFar = counting ? ` ${l10n.t('so far')}` : '';
  const truncated =
    over === 1
      ? l10n.t('{0}{1}{2}; training truncates it to the maximum sequence length', examples, share, soFar)
      : l10n.t('{0}{1}{2}; training truncates them to the maximum sequence length', examples, share, soFar);
  const estimate = counting ? l10n.t(', estimated from the examples counted so far') : '';
  return `<section>
<h2>${esc(l10n.t('Training'))}</h2>
<table class="counts">
<tbody>
<tr><th scope="row">${esc(l10n.t('Over {0} tokens', formatCount(stats.maxSequenceLength)))}</th><td class="num">${formatCount(over)}</td><td class="muted">${esc(truncated)}</td></tr>
<tr><th scope="row">${esc(l10n.t('Tokens per epoch'))}</th><td class="num">${formatCount(stats.epochTokens)}</td><td class="muted">${esc(l10n.t('what one epoch processes, after truncation') + estimate)}</td></tr>
<tr><th scope="row">${esc(l10n.t('Trained tokens per epoch'))}</th><td class="num">${formatCount(stats.epochTrainedTokens)}</td><td class="muted">${esc(l10n.t('assistant tokens the loss is taken on') + estimate)}</td></tr>
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
