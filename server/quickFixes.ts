import {
  type CodeAction,
  CodeActionKind,
  type CodeActionParams,
  type Diagnostic,
  type TextEdit,
  type WorkspaceEdit,
} from 'vscode-languageserver';
import type { LineFinding } from '../common/dataset/codes';
import {
  appendAssistantReply,
  dropMessage,
  isJsonObject,
  type JsonObject,
  mergeSystemIntoFirst,
  misplacedSystemMessages,
  moveSystemToFront,
  printLine,
  toMessagesForm,
  usesSpacedStyle,
} from '../common/dataset/convert';
import type { DatasetDocument } from './datasetDocument';
import { toDiagnostic } from './diagnostics';
import { t } from './l10n';
import { KIND_BROKEN, type Line } from './lineModel';

/** The server command that converts a whole file (the source action runs it; `workspace/executeCommand`). */
export const CONVERT_COMMAND = 'finetune.server.convertDataset';

/** The kind of the "convert the whole file" source action. */
export const CONVERT_SOURCE_KIND = `${CodeActionKind.Source}.finetune.convertToMessages`;

/** Lines of a selection that get quick fixes: a select-all must not parse a whole file on every cursor move. */
const MAX_LINES = 200;

/** How the edits of a fix are addressed, depending on what the client supports. */
export interface EditOptions {
  /** The client takes `documentChanges` (versioned, so a stale fix is refused rather than misapplied). */
  documentChanges: boolean;
}

/** Builds a workspace edit of text edits to one document. */
export function documentEdit(doc: DatasetDocument, edits: TextEdit[], options: EditOptions): WorkspaceEdit {
  if (options.documentChanges) return { documentChanges: [{ textDocument: { uri: doc.uri, version: doc.version }, edits }] };
  return { changes: { [doc.uri]: edits } };
}

/**
 * Replaces the content of line `n` with `value` printed on one line in the line's own spacing style; undefined
 * when it cannot be printed (too deep).
 */
function replaceLine(doc: DatasetDocument, line: Line, n: number, value: JsonObject): TextEdit | undefined {
  let text: string;
  try {
    text = printLine(value, usesSpacedStyle(doc.model.jsonText(line)));
  } catch {
    return undefined;
  }
  // A byte order mark stays where it is: it is not part of the example.
  const start = doc.model.hasBom(line) ? 1 : 0;
  return { range: { start: { line: n, character: start }, end: { line: n, character: doc.model.length(line) } }, newText: text };
}

/** Removes line `n` with its line end (the last line takes the previous line end instead). */
function removeLine(doc: DatasetDocument, line: Line, n: number): TextEdit {
  if (n + 1 < doc.model.lineCount) return { range: { start: { line: n, character: 0 }, end: { line: n + 1, character: 0 } }, newText: '' };
  if (n === 0) return { range: { start: { line: 0, character: 0 }, end: { line: 0, character: doc.model.length(line) } }, newText: '' };
  const previous = doc.model.line(n - 1) as Line;
  return { range: { start: { line: n - 1, character: doc.model.length(previous) }, end: { line: n, character: doc.model.length(line) } }, newText: '' };
}

/** The parsed line, when it is a JSON object (only lines without JSON errors are parsed). */
function parseLine(doc: DatasetDocument, line: Line): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(doc.model.jsonText(line));
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The client's diagnostic for a finding when it sent one (so the fix is tied to it), else ours. */
function diagnosticFor(params: CodeActionParams, line: number, f: LineFinding): Diagnostic {
  const sent = params.context.diagnostics.find(
    (d) => d.code === f.code && d.range.start.line === line && d.range.start.character === f.start && d.range.end.character === f.end,
  );
  return sent ?? toDiagnostic(line, f);
}

function wants(params: CodeActionParams, kind: string): boolean {
  const only = params.context.only;
  return !only || only.some((o) => kind === o || kind.startsWith(`${o}.`));
}

/**
 * The code actions of a range (the document service calls it for `textDocument/codeAction`): a quick fix per
 * fixable finding on its lines, and, when the file has lines in another chat format, the source action that
 * converts all of them.
 */
export function codeActions(doc: DatasetDocument, params: CodeActionParams, options: EditOptions): CodeAction[] {
  const actions: CodeAction[] = [];
  if (wants(params, CodeActionKind.QuickFix)) {
    const from = Math.max(0, params.range.start.line);
    const to = Math.min(params.range.end.line, from + MAX_LINES, doc.model.lineCount - 1);
    for (let n = from; n <= to; n++) {
      const line = doc.model.line(n);
      if (line) actions.push(...lineFixes(doc, line, n, params, options));
    }
  }
  const convertible = doc.counts().byCode['messages-missing'];
  if (convertible > 0 && wants(params, CONVERT_SOURCE_KIND)) {
    actions.push({
      title: t('fix/convert-all'),
      kind: CONVERT_SOURCE_KIND,
      command: { title: t('fix/convert-dataset'), command: CONVERT_COMMAND, arguments: [doc.uri] },
    });
  }
  return actions;
}

/** The quick fixes of one line's findings. */
function lineFixes(doc: DatasetDocument, line: Line, n: number, params: CodeActionParams, options: EditOptions): CodeAction[] {
  const findings = doc.findingsOf(line);
  if (findings.length === 0) return [];
  const out: CodeAction[] = [];
  const fix = (title: string, f: LineFinding, edit: TextEdit | undefined, preferred: boolean): void => {
    if (!edit) return;
    out.push({
      title,
      kind: CodeActionKind.QuickFix,
      diagnostics: [diagnosticFor(params, n, f)],
      isPreferred: preferred,
      edit: documentEdit(doc, [edit], options),
    });
  };
  let parsed: JsonObject | undefined | null = null;
  const value = (): JsonObject | undefined => (parsed === null ? (parsed = parseLine(doc, line)) : parsed);
  let systemOrdinal = 0;
  for (const f of findings) {
    switch (f.code) {
      case 'line-blank':
        fix(t('fix/remove-blank'), f, removeLine(doc, line, n), true);
        break;
      case 'duplicate':
        fix(t('fix/remove-duplicate', (f.data ?? 0) + 1), f, removeLine(doc, line, n), true);
        break;
      case 'system-not-first': {
        const obj = value();
        const index = obj ? misplacedSystemMessages(obj)[systemOrdinal++] : undefined;
        if (!obj || index === undefined) break;
        const moved = moveSystemToFront(obj, index);
        if (moved) {
          fix(t('fix/move-system'), f, replaceLine(doc, line, n, moved), true);
        } else {
          const merged = mergeSystemIntoFirst(obj, index);
          if (merged) fix(t('fix/merge-system'), f, replaceLine(doc, line, n, merged), true);
        }
        const dropped = dropMessage(obj, index);
        if (dropped) fix(t('fix/remove-system'), f, replaceLine(doc, line, n, dropped), false);
        break;
      }
      case 'role-order': {
        const obj = value();
        const fixed = obj ? appendAssistantReply(obj) : undefined;
        if (fixed) fix(t('fix/add-reply'), f, replaceLine(doc, line, n, fixed), true);
        break;
      }
      case 'messages-missing': {
        const obj = value();
        const converted = obj ? toMessagesForm(obj) : undefined;
        if (!converted) break;
        const name = converted.form === 'sharegpt' ? 'ShareGPT' : 'Alpaca';
        fix(t('fix/convert-line', name), f, replaceLine(doc, line, n, converted.value), true);
        if (doc.counts().byCode['messages-missing'] > 1) {
          out.push({
            title: t('fix/convert-all'),
            kind: CodeActionKind.QuickFix,
            diagnostics: [diagnosticFor(params, n, f)],
            command: { title: t('fix/convert-dataset'), command: CONVERT_COMMAND, arguments: [doc.uri] },
          });
        }
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** The edits that convert every ShareGPT or Alpaca line of a document, with the counts `dataset/convert` returns. */
export function convertAll(doc: DatasetDocument): { edits: TextEdit[]; converted: number; unrecognised: number } {
  const edits: TextEdit[] = [];
  let unrecognised = 0;
  const lines = doc.allLines();
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    if (!line.counted || line.kind !== KIND_BROKEN || !line.findings.some((f) => f.code === 'messages-missing')) continue;
    const obj = parseLine(doc, line);
    const converted = obj ? toMessagesForm(obj) : undefined;
    const edit = converted ? replaceLine(doc, line, n, converted.value) : undefined;
    if (edit) edits.push(edit);
    else unrecognised++;
  }
  return { edits, converted: edits.length, unrecognised };
}
