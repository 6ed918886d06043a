import { type Diagnostic, DiagnosticSeverity } from 'vscode-languageserver';
import type { LineFinding } from '../common/dataset/codes';
import { findingMessage, t } from './l10n';

/** The `source` of every diagnostic this server publishes. */
export const DIAGNOSTIC_SOURCE = 'finetune';

/** The `code` of the one summary diagnostic that stands for the findings over the cap. */
export const SUMMARY_CODE = 'more-findings';

/** A finding as an LSP diagnostic: its code, severity and message, on its line. */
export function toDiagnostic(line: number, f: LineFinding): Diagnostic {
  return {
    range: { start: { line, character: f.start }, end: { line, character: f.end } },
    severity: f.severity === 'error' ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
    code: f.code,
    source: DIAGNOSTIC_SOURCE,
    message: findingMessage(f),
  };
}

/** Anything that visits its findings in file order: a live document, a file checked from disk. */
export type FindingSource = (visit: (line: number, finding: LineFinding) => boolean) => void;

/**
 * The diagnostics to publish for one file: its first `cap` findings in file order and, when there are more,
 * one information diagnostic on the last published line that says how many are not shown. Editors slow down
 * with tens of thousands of diagnostics, and a user fixes a file from the top; the status bar and the
 * statistics count all of them.
 */
export function cappedDiagnostics(source: FindingSource, total: number, cap: number): Diagnostic[] {
  const out: Diagnostic[] = [];
  let lastLine = 0;
  source((line, f) => {
    if (out.length >= cap) return false;
    out.push(toDiagnostic(line, f));
    lastLine = line;
    return true;
  });
  const hidden = total - out.length;
  if (hidden > 0) {
    out.push({
      range: { start: { line: lastLine, character: 0 }, end: { line: lastLine, character: 0 } },
      severity: DiagnosticSeverity.Information,
      code: SUMMARY_CODE,
      source: DIAGNOSTIC_SOURCE,
      message: t(hidden === 1 ? 'server/more-findings' : 'server/more-findings/plural', hidden, cap, total),
      data: { hidden, total },
    });
  }
  return out;
}
