/**
 * Number and text formatting shared by the status bar and the statistics view. Pure (no `vscode`), so that
 * the unit tests run under plain Node.
 */

import { l10n } from './l10n';

// A fixed locale keeps the status bar and the tests stable; the numbers are counts, not prose.
const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/** `12345` → `"12,345"`; non-integers are rounded. */
export function formatCount(value: number): string {
  return Number.isFinite(value) ? grouped.format(value) : '—';
}

/** A value that may have a fraction (a mean): one decimal, unless it is a whole number. */
export function formatMean(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return Number.isInteger(value) ? grouped.format(value) : oneDecimal.format(value);
}

const units: readonly (readonly [number, string])[] = [
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/**
 * A short count for tight places (the status bar): `2_100_000` → `"2.1M"`, `12_345` → `"12.3k"`, `999` → `"999"`.
 * At most one decimal, and never `1000k`.
 */
export function formatCompact(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const sign = value < 0 ? '-' : '';
  const abs = Math.round(Math.abs(value));
  if (abs < 1000) return sign + String(abs);
  let i = abs >= 1e9 ? 0 : abs >= 1e6 ? 1 : 2;
  for (;;) {
    const [scale, unit] = units[i];
    const scaled = abs / scale;
    const text = scaled.toFixed(scaled >= 100 ? 0 : 1);
    // 999,950 rounds to "1000k": the next unit up says it better ("1M").
    if (Number(text) >= 1000 && i > 0) {
      i--;
      continue;
    }
    return sign + text.replace(/\.0$/, '') + unit;
  }
}

/** `plural(1, 'error')` → `"1 error"`, `plural(12345, 'example')` → `"12,345 examples"`. */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${formatCount(count)} ${count === 1 ? noun : pluralNoun}`;
}

/** `"file:///home/me/data/train.jsonl"` → `"train.jsonl"`: the name to show in titles. */
export function baseName(uri: string): string {
  const path = uri.replace(/[?#].*$/, '').replace(/\/+$/, '');
  const name = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/** What the "Convert Dataset to Messages Format" command tells the user, from `dataset/convert`'s answer. */
export function convertSummary(result: { converted: number; unrecognised: number }): string {
  const u = result.unrecognised;
  const left =
    u === 0
      ? ''
      : ` ${u === 1 ? l10n.t('1 line left unchanged: form not recognised.') : l10n.t('{0} lines left unchanged: form not recognised.', formatCount(u))}`;
  const c = result.converted;
  if (c === 0) return l10n.t('Nothing converted: no line is in ShareGPT or Alpaca form.') + left;
  return (c === 1 ? l10n.t('Converted 1 line to messages format.') : l10n.t('Converted {0} lines to messages format.', formatCount(c))) + left;
}
