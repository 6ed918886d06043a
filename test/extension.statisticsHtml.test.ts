import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FINDING_CODES, type FindingCode } from '../common/dataset/codes';
import type { DatasetStatistics, Distribution } from '../common/lspProtocol';
import { esc, formatShare, renderMessageHtml, renderStatisticsHtml, type StatisticsPage } from '../src/statisticsHtml';

const page: StatisticsPage = {
  cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
  nonce: 'bm9uY2UxMjM0NTY3ODkw',
  styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/media/statistics.css',
};

function dist(count: number, min: number, max: number, mean: number, median: number, p5: number, p95: number): Distribution {
  return { count, min, max, mean, median, p5, p95 };
}

function byCode(counts: Partial<Record<FindingCode, number>>): Record<FindingCode, number> {
  const all = Object.fromEntries(FINDING_CODES.map((code) => [code, 0])) as Record<FindingCode, number>;
  return { ...all, ...counts };
}

const stats: DatasetStatistics = {
  uri: 'file:///home/me/data/train.jsonl',
  live: true,
  lines: 12_400,
  examples: 12_345,
  validExamples: 12_340,
  blank: 55,
  errors: 5,
  warnings: 67,
  byCode: byCode({ 'role-order': 3, 'json-syntax': 2, duplicate: 12, 'too-long': 55 }),
  messagesPerExample: dist(12_340, 2, 13, 4.26, 4, 2, 9),
  tokensPerExample: dist(12_340, 31, 9_001, 612.5, 480, 80, 1_900),
  trainedTokensPerExample: dist(12_340, 1, 4_000, 230.25, 190, 12, 800),
  tokenizedExamples: 12_340,
  overLength: 55,
  maxSequenceLength: 4096,
  epochTokens: 7_400_000,
  epochTrainedTokens: 2_800_000,
};

const on = { countTokens: true };

/** The text of the page without tags, with white space collapsed: what a reader sees. */
function text(html: string): string {
  return html
    .replace(/<head>[\s\S]*<\/head>/, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

describe('statistics page: security', () => {
  const html = renderStatisticsHtml(stats, page, on);

  it('has a nonce-based Content-Security-Policy that allows nothing else', () => {
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];
    assert.ok(csp, 'CSP meta tag');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, new RegExp(`style-src ${page.cspSource.replace(/[.+]/g, '\\$&')}(;|$)`));
    assert.match(csp, new RegExp(`script-src 'nonce-${page.nonce}'`));
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  });

  it('runs no script and needs no inline style (the CSP would refuse both)', () => {
    for (const rendered of [html, renderMessageHtml('t', 'm', page)]) {
      assert.doesNotMatch(rendered, /<script/i);
      assert.doesNotMatch(rendered, /\sstyle=/i);
      assert.doesNotMatch(rendered, /<style/i);
      assert.doesNotMatch(rendered, /\son[a-z]+=/i);
    }
  });

  it('loads only the stylesheet from the media folder', () => {
    assert.match(html, new RegExp(`<link rel="stylesheet" href="${page.styleUri.replace(/[.+]/g, '\\$&')}">`));
    const urls = [...html.matchAll(/(?:href|src)="([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(urls, [page.styleUri]);
  });

  it('escapes what comes from the file name', () => {
    const evil = renderStatisticsHtml({ ...stats, uri: 'file:///x/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.jsonl' }, page, on);
    assert.doesNotMatch(evil, /<img/);
    assert.match(evil, /&#60;img src=x onerror=alert\(1\)&#62;\.jsonl/);
    assert.doesNotMatch(renderMessageHtml('<b>', '<i>x</i>', page), /<b>|<i>/);
  });
});

describe('statistics page: content', () => {
  const html = renderStatisticsHtml(stats, page, on);
  const shown = text(html);

  it('names the dataset and how it is checked', () => {
    assert.match(html, /<title>Statistics: train\.jsonl<\/title>/);
    assert.match(shown, /train\.jsonl \/home\/me\/data\/train\.jsonl Checked as you type\./);
    assert.match(text(renderStatisticsHtml({ ...stats, live: false }, page, on)), /Checked from disk/);
  });

  it('shows the counts', () => {
    for (const expected of [
      'Lines 12,400',
      'Examples 12,345 Valid',
      'Valid examples 12,340 without errors',
      'Blank lines 55',
      'Errors 5',
      'Warnings 67',
    ]) {
      assert.ok(shown.includes(expected), expected);
    }
  });

  it('lists the codes found, errors first, with their counts', () => {
    const rows = [...html.matchAll(/<tr class="(error|warning)"><td><code>([a-z-]+)<\/code>.*?<td class="num">([\d,]+)<\/td><\/tr>/g)].map(
      (m) => `${m[2]} ${m[1]} ${m[3]}`,
    );
    assert.deepEqual(rows, ['json-syntax error 2', 'role-order error 3', 'too-long warning 55', 'duplicate warning 12']);
  });

  it('says so when there are no findings', () => {
    assert.match(text(renderStatisticsHtml({ ...stats, byCode: byCode({}) }, page, on)), /No errors or warnings\./);
  });

  it('shows the three distributions with count, min, p5, median, mean, p95, max', () => {
    assert.ok(shown.includes('Examples Min P5 Median Mean P95 Max'));
    assert.ok(shown.includes('Messages per example 12,340 2 2 4 4.3 9 13'), shown);
    assert.ok(shown.includes('Tokens per example 12,340 31 80 480 612.5 1,900 9,001'));
    assert.ok(shown.includes('Trained tokens per example 12,340 1 12 190 230.3 800 4,000'));
  });

  it('shows the examples over the maximum length and the tokens of one epoch', () => {
    assert.ok(shown.includes('Over 4,096 tokens 55 55 examples (0.4% of valid examples); training truncates them'), shown);
    assert.ok(shown.includes('Tokens per epoch 7,400,000'));
    assert.ok(shown.includes('Trained tokens per epoch 2,800,000'));
    assert.doesNotMatch(shown, /Counting tokens|so far|estimated/);
  });

  it('says that tokens are still being counted, and how far it got', () => {
    const counting = renderStatisticsHtml({ ...stats, tokenizedExamples: 3_000 }, page, on);
    assert.match(text(counting), /Counting tokens: 3,000 of 12,340 valid examples so far\./);
    assert.match(counting, /<progress value="3000" max="12340"><\/progress>/);
    assert.match(text(counting), /Tokens per example \(so far\)/);
    assert.match(text(counting), /estimated from the examples counted so far/);
    assert.match(text(counting), /55 examples \(0\.4% of valid examples\) so far; training truncates them/);
  });

  it('follows the latest status when it says counting is done or still going', () => {
    assert.doesNotMatch(text(renderStatisticsHtml({ ...stats, tokenizedExamples: 3_000 }, page, { countTokens: true, counting: false })), /Counting tokens/);
    assert.match(text(renderStatisticsHtml(stats, page, { countTokens: true, counting: true })), /Counting tokens/);
  });

  it('leaves token figures out when counting is off', () => {
    const off = text(renderStatisticsHtml({ ...stats, tokenizedExamples: 0 }, page, { countTokens: false }));
    assert.match(off, /Messages per example/);
    assert.doesNotMatch(off, /Tokens per example|Tokens per epoch|Counting tokens/);
    assert.match(off, /Token counting is off/);
  });

  it('copes with a distribution of no examples', () => {
    const empty = dist(0, 0, 0, 0, 0, 0, 0);
    const none = renderStatisticsHtml(
      { ...stats, validExamples: 0, tokenizedExamples: 0, messagesPerExample: empty, tokensPerExample: empty, trainedTokensPerExample: empty, overLength: 0 },
      page,
      on,
    );
    assert.match(text(none), /Messages per example 0 no examples yet/);
    assert.doesNotMatch(text(none), /NaN|Infinity|undefined/);
  });
});

describe('statistics page: helpers', () => {
  it('formats shares without hiding a small non-zero one', () => {
    assert.equal(formatShare(0), '0%');
    assert.equal(formatShare(0.0004), '<0.1%');
    assert.equal(formatShare(0.0123), '1.2%');
    assert.equal(formatShare(0.5), '50%');
    assert.equal(formatShare(Number.NaN), '0%');
  });
  it('escapes HTML', () => {
    assert.equal(esc(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
  });
});
