import { type Hover, MarkupKind } from 'vscode-languageserver';
import { describeConversation, isJsonObject } from '../common/dataset/convert';
import type { DatasetDocument } from './datasetDocument';
import { KIND_BLANK, KIND_EXAMPLE, TOKENS_FAILED, TOKENS_NONE, TOKENS_PENDING, TOKENS_SKIPPED } from './lineModel';
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
    parts.push('**Blank line**: not an example.');
  } else if (line.kind === KIND_EXAMPLE) {
    parts.push(describeExample(doc, lineNumber, length));
    if (line.errors > 0) {
      parts.push('Not used for training: the example has errors.');
    } else {
      parts.push(tokenText(doc, line.tokens, line.trained, tokenizer));
    }
  } else {
    parts.push('**Not an example**: training cannot use this line.');
  }
  const findings = doc.findingsOf(line);
  if (findings.length > 0) {
    parts.push(findings.map((f) => `- ${f.severity === 'error' ? '❌' : '⚠️'} \`${f.code}\` ${escapeMarkdown(f.message)}`).join('\n'));
  }
  return {
    contents: { kind: MarkupKind.Markdown, value: parts.join('\n\n') },
    range: { start: { line: lineNumber, character: 0 }, end: { line: lineNumber, character: length } },
  };
}

function describeExample(doc: DatasetDocument, lineNumber: number, length: number): string {
  const line = doc.model.line(lineNumber);
  if (!line || length > MAX_PARSED_LENGTH) return `**Example** of ${line?.messages ?? 0} messages`;
  let value: unknown;
  try {
    value = JSON.parse(doc.model.jsonText(line));
  } catch {
    return `**Example** of ${line.messages} messages`;
  }
  const messages = isJsonObject(value) && Array.isArray(value.messages) ? value.messages : [];
  const { roles, turns } = describeConversation(messages);
  return `**Example**: ${roles}, ${turns} turn${turns === 1 ? '' : 's'}`;
}

function tokenText(doc: DatasetDocument, tokens: number, trained: number, tokenizer: TokenizerState): string {
  const max = doc.maxSequenceLength;
  if (!doc.countsTokens || tokens === TOKENS_NONE) return 'Tokens: not counted (setting `finetune.dataset.countTokens` is off).';
  if (tokenizer === 'failed') return 'Tokens: not counted (the Qwen2.5 tokenizer could not be loaded; see the server log).';
  if (tokens === TOKENS_PENDING) return 'Tokens: counting…';
  if (tokens === TOKENS_SKIPPED) return `Tokens: not counted (the line is over ${number(MAX_COUNTED_LENGTH)} characters).`;
  if (tokens === TOKENS_FAILED) return 'Tokens: not counted (the tokenizer could not read the line; see the server log).';
  const counts = `**${number(tokens)} tokens** (${number(trained)} trained)`;
  if (tokens > max) {
    return `${counts}: **truncated** to the maximum sequence length of ${number(max)}; training drops the last ${number(tokens - max)} tokens.`;
  }
  return `${counts}: fits in the maximum sequence length of ${number(max)}.`;
}

/** Keeps a finding's message from being read as markup. */
function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_[\]<>#|]/g, (c) => `\\${c}`);
}
