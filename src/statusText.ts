import type { DatasetStatus } from '../common/lspProtocol';
import { baseName, formatCompact, formatCount } from './format';
import { l10n } from './l10n';

/**
 * What the dataset status-bar item says, as pure functions of a `dataset/status` notification, so that the
 * wording is unit-tested without VS Code.
 */

/** Settings that change the wording. */
export interface StatusTextOptions {
  /** `finetune.dataset.countTokens`: with counting off the item says nothing about tokens. */
  countTokens: boolean;
}

/**
 * The item's text, with codicons: `$(check) 12,345 examples · 2.1M tokens`, or
 * `$(error) 3 errors $(warning) 12 warnings · 12,340 examples · counting tokens…`.
 */
export function statusText(status: DatasetStatus, options: StatusTextOptions): string {
  const findings: string[] = [];
  const n = status.errors;
  if (n > 0) findings.push(`$(error) ${n === 1 ? l10n.t('1 error') : l10n.t('{0} errors', formatCount(n))}`);
  const w = status.warnings;
  if (w > 0) findings.push(`$(warning) ${w === 1 ? l10n.t('1 warning') : l10n.t('{0} warnings', formatCount(w))}`);
  const parts = findings.length > 0 ? [findings.join(' ')] : ['$(check)'];
  const e = status.examples;
  parts.push(e === 1 ? l10n.t('1 example') : l10n.t('{0} examples', formatCount(e)));
  const tokens = tokenText(status, options);
  if (tokens !== undefined) parts.push(tokens);
  // "$(check) · 12 examples" reads badly: the check mark joins the first part with a space instead.
  return findings.length > 0 ? parts.join(' · ') : `${parts[0]} ${parts.slice(1).join(' · ')}`;
}

function tokenText(status: DatasetStatus, options: StatusTextOptions): string | undefined {
  if (!options.countTokens) return undefined;
  if (status.counting) return l10n.t('counting tokens…');
  return status.tokens === 1 ? l10n.t('1 token') : l10n.t('{0} tokens', formatCompact(status.tokens));
}

/** The item's tooltip, as Markdown: the exact counts behind the short text, and how the file is checked. */
export function statusTooltip(status: DatasetStatus, options: StatusTextOptions): string {
  const how = status.live
    ? l10n.t('checked as you type')
    : l10n.t('checked from disk: the file is too large for VS Code to share with extensions, so it is re-checked whenever it changes on disk');
  const rows: [string, string][] = [
    [l10n.t('Examples'), formatCount(status.examples)],
    [l10n.t('Errors'), formatCount(status.errors)],
    [l10n.t('Warnings'), formatCount(status.warnings)],
  ];
  if (options.countTokens) {
    rows.push([
      l10n.t('Tokens in valid examples'),
      status.counting ? l10n.t('{0} so far (counting…)', formatCount(status.tokens)) : formatCount(status.tokens),
    ]);
  }
  return [
    `**${escapeMarkdown(baseName(status.uri))}** — ${how}`,
    '',
    '| | |',
    '|:--|--:|',
    ...rows.map(([name, value]) => `| ${name} | ${value} |`),
    '',
    l10n.t('Click for the dataset statistics.'),
  ].join('\n');
}

/** Escapes what Markdown would otherwise read as formatting in a file name. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, (c) => `\\${c}`);
}

/** The item's text for screen readers: without codicons, and with commas for the dots. */
export function statusLabel(status: DatasetStatus, options: StatusTextOptions): string {
  return statusText(status, options)
    .replace(/\s*\$\([\w~-]+\)\s*/g, (_icon, offset: number) => (offset === 0 ? '' : ', '))
    .replace(/ · /g, ', ');
}
