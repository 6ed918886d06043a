/**
 * What a dataset finding is: its stable code, its severity and its place. The single source of truth for
 * the language server, the command-line validator and the backend's upload check (ARCHITECTURE.md).
 */

import { formatMessage, type Message } from '../i18n/messages';

/** Every finding code, in the order of the rules table. */
export const FINDING_CODES = [
  'json-syntax',
  'not-object',
  'messages-missing',
  'messages-empty',
  'message-invalid',
  'role-unknown',
  'weight-invalid',
  'system-not-first',
  'no-pair',
  'role-order',
  'content-empty',
  'key-unknown',
  'line-blank',
  'too-long',
  'duplicate',
  'file-empty',
] as const;

/** A stable finding code; tools and quick fixes key on it, never on the message text. */
export type FindingCode = (typeof FINDING_CODES)[number];

/** How bad a finding is: an error blocks training, a warning deserves a look. */
export type Severity = 'error' | 'warning';

/** The severity of each code: fixed, so that every tool agrees on what blocks a launch. */
export const SEVERITY: Readonly<Record<FindingCode, Severity>> = {
  'json-syntax': 'error',
  'not-object': 'error',
  'messages-missing': 'error',
  'messages-empty': 'error',
  'message-invalid': 'error',
  'role-unknown': 'error',
  'weight-invalid': 'error',
  'system-not-first': 'error',
  'no-pair': 'error',
  'role-order': 'error',
  'content-empty': 'warning',
  'key-unknown': 'warning',
  'line-blank': 'warning',
  'too-long': 'warning',
  duplicate: 'warning',
  'file-empty': 'error',
};

/**
 * One finding inside one line. Columns are 0-based UTF-16 code units (as editors count them), end
 * exclusive; a finding never spans lines because an example is one line.
 */
export interface LineFinding {
  readonly code: FindingCode;
  readonly severity: Severity;
  /** In English: what the CLI prints and the backend reports. */
  readonly message: string;
  /** The same message as an id and arguments, for a reader in another language (the language server's). */
  readonly text?: Message;
  readonly start: number;
  readonly end: number;
  /** For `duplicate`: the 0-based line that this line copies. For `too-long`: the token count. */
  readonly data?: number;
}

/** A finding placed in a file: `line` is 0-based. */
export interface Finding extends LineFinding {
  readonly line: number;
}

/** Type guard for a finding code that came off a wire (a diagnostic's `code`, a CLI's JSON). */
export function isFindingCode(value: unknown): value is FindingCode {
  return typeof value === 'string' && (FINDING_CODES as readonly string[]).includes(value);
}

/** Builds a finding with the severity of its code; its English message is formatted here, once. */
export function finding(code: FindingCode, text: Message, start: number, end: number, data?: number): LineFinding {
  const message = formatMessage(text, 'en');
  return data === undefined
    ? { code, severity: SEVERITY[code], message, text, start, end }
    : { code, severity: SEVERITY[code], message, text, start, end, data };
}

/** Orders findings by line, then column, then code, as every tool prints them. */
export function compareFindings(a: Finding, b: Finding): number {
  return a.line - b.line || a.start - b.start || a.end - b.end || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
}
