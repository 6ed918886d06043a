import type { DatasetStatus } from '../common/lspProtocol';
import { baseName, formatCompact, formatCount, plural } from './format';

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
  if (status.errors > 0) findings.push(`$(error) ${plural(status.errors, 'error')}`);
  if (status.warnings > 0) findings.push(`$(warning) ${plural(status.warnings, 'warning')}`);
  const parts = findings.length > 0 ? [findings.join(' ')] : ['$(check)'];
  parts.push(plural(status.examples, 'example'));
  const tokens = tokenText(status, options);
  if (tokens !== undefined) parts.push(tokens);
  // "$(check) · 12 examples" reads badly: the check mark joins the first part with a space instead.
  return findings.length > 0 ? parts.join(' · ') : `${parts[0]} ${parts.slice(1).join(' · ')}`;
}

function tokenText(status: DatasetStatus, options: StatusTextOptions): string | undefined {
  if (!options.countTokens) return undefined;
  if (status.counting) return 'counting tokens…';
  return `${formatCompact(status.tokens)} ${status.tokens === 1 ? 'token' : 'tokens'}`;
}

/** The item's tooltip, as Markdown: the exact counts behind the short text, and how the file is checked. */
export function statusTooltip(status: DatasetStatus, options: StatusTextOptions): string {
  const how = status.live
    ? 'checked as you type'
    : 'checked from disk: the file is too large for VS Code to share with extensions, so it is re-checked whenever it changes on disk';
  const rows: [string, string][] = [
    ['Examples', formatCount(status.examples)],
    ['Errors', formatCount(status.errors)],
    ['Warnings', formatCount(status.warnings)],
  ];
  if (options.countTokens) {
    rows.push([
      'Tokens in valid examples',
      status.counting ? `${formatCount(status.tokens)} so far (counting…)` : formatCount(status.tokens),
    ]);
  }
  return [
    `**${escapeMarkdown(baseName(status.uri))}** — ${how}`,
    '',
    '| | |',
    '|:--|--:|',
    ...rows.map(([name, value]) => `| ${name} | ${value} |`),
    '',
    'Click for the dataset statistics.',
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
