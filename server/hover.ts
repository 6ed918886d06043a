import { type Hover, MarkupKind } from 'vscode-languageserver';
import { describeConversation, isJsonObject } from '../common/dataset/convert';
import type { DatasetDocument } from './datasetDocument';
import { KIND_BLANK, KIND_EXAMPLE, TOKENS_FAILED, TOKENS_NONE, TOKENS_PENDING, TOKENS_SKIPPED } from './lineModel';
import { findingMessage, t } from './l10n';
import { MAX_COUNTED_LENGTH, type TokenizerState } from './tokenCounter';

const number = (n: number): string => n.toLocaleString('en-US');

/** Lines longer than this are not parsed for a hover (it would hold the server); their findings still show. */
const MAX_PARSED_LENGTH = 8 << 20;

/**
 * The hover of a dataset line (the document service calls it for `textDocument/hover` anywhere on the line):
 * the conversation's roles and turns, its token counts and whether training truncates it, then the line's
 * findings. Markdown. Null past the end of the document.
 */
export function lineHover(doc: DatasetDocument, lineNumber: number, tokenizer: TokenizerState): Hover | null {
  const line = doc.model.line(lineNumber);
  if (!line || !line.counted) return null;
  const parts: string[] = [];
  const length = doc.model.length(line);
  if (line.kind === KIND_BLANK) {
    parts.push(t('hover/blank'));
  } else if (line.kind === KIND_EXAMPLE) {
    parts.push(describeExample(doc, lineNumber, length));
    if (line.errors > 0) {
      parts.push(t('hover/has-errors'));
    } else {
      parts.push(tokenText(doc, line.tokens, line.trained, tokenizer));
    }
  } else {
    parts.push(t('hover/not-example'));
  }
  const findings = doc.findingsOf(line);
  if (findings.length > 0) {
    parts.push(findings.map((f) => `- ${f.severity === 'error' ? '❌' : '⚠️'} \`${f.code}\` ${escapeMarkdown(findingMessage(f))}`).join('\n'));
  }
  return {
    contents: { kind: MarkupKind.Markdown, value: parts.join('\n\n') },
    range: { start: { line: lineNumber, character: 0 }, end: { line: lineNumber, character: length } },
  };
}

function describeExample(doc: DatasetDocument, lineNumber: number, length: number): string {
  const line = doc.model.line(lineNumber);
  if (!line || length > MAX_PARSED_LENGTH) return t('hover/example-of', line?.messages ?? 0);
  let value: unknown;
  try {
    value = JSON.parse(doc.model.jsonText(line));
  } catch {
    return t('hover/example-of', line.messages);
  }
  const messages = isJsonObject(value) && Array.isArray(value.messages) ? value.messages : [];
  const { roles, turns } = describeConversation(messages);
  return t(turns === 1 ? 'hover/example-turn' : 'hover/example-turns', roles, turns);
}

function tokenText(doc: DatasetDocument, tokens: number, trained: number, tokenizer: TokenizerState): string {
  const max = doc.maxSequenceLength;
  if (!doc.countsTokens || tokens === TOKENS_NONE) return t('hover/tokens-off');
  if (tokenizer === 'failed') return t('hover/tokenizer-failed');
  if (tokens === TOKENS_PENDING) return t('hover/counting');
  if (tokens === TOKENS_SKIPPED) return t('hover/too-long-to-count', number(MAX_COUNTED_LENGTH));
  if (tokens === TOKENS_FAILED) return t('hover/count-failed');
  const counts = t('hover/counts', number(tokens), number(trained));
  if (tokens > max) {
    return t('hover/truncated', counts, number(max), number(tokens - max));
  }
  return t('hover/fits', counts, number(max));
}

/** Keeps a finding's message from being read as markup. */
function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_[\]<>#|]/g, (c) => `\\${c}`);
}
