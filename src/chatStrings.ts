// The chat webview's strings, translated in the host and sent in the snapshot (webview/chat/protocol.ts declares
// the keys). Each is a literal l10n.t call, so that the l10n tooling and tests find it; the type makes a missing
// key a compile error.
import type { ChatStringKey } from '../webview/chat/protocol';
import { l10n } from './l10n';

/** Every string of the chat webview, in the display language. */
export function chatWebviewStrings(): Record<ChatStringKey, string> {
  return {
    model: l10n.t('Model'),
    'section.system': l10n.t('System prompt'),
    'help.system': l10n.t('Sent first in every request. Empty: Qwen2.5\'s default system prompt applies.'),
    'section.settings': l10n.t('Generation'),
    'field.temperature': l10n.t('Temperature'),
    'field.top_p': l10n.t('Top-p'),
    'field.top_k': l10n.t('Top-k'),
    'field.repetition_penalty': l10n.t('Repetition penalty'),
    'field.max_tokens': l10n.t('Max tokens'),
    'field.seed': l10n.t('Seed'),
    'help.seed': l10n.t('Empty: a new random seed for every answer (shown under it, to reproduce it).'),
    'action.resetDefaults': l10n.t('Reset to Defaults'),
    'compare.label': l10n.t('Compare with'),
    'compare.none': l10n.t('Nothing (one answer)'),
    'composer.placeholder': l10n.t('Ask something… (Enter sends, Shift+Enter adds a line)'),
    'composer.hint': l10n.t('Enter sends · Shift+Enter adds a line'),
    'action.send': l10n.t('Send'),
    'action.stop': l10n.t('Stop'),
    'action.clear': l10n.t('Clear'),
    'action.retry': l10n.t('Retry'),
    'action.copy': l10n.t('Copy'),
    'action.copyCode': l10n.t('Copy code'),
    'action.copied': l10n.t('Copied'),
    'export.label': l10n.t('Export as dataset line'),
    'export.side': l10n.t('Side'),
    'action.exportCopy': l10n.t('Copy Line'),
    'action.exportAppend': l10n.t('Append to .jsonl File…'),
    'export.copied': l10n.t('The line was copied.'),
    'export.appended': l10n.t('The line was appended to {0}.'),
    'role.user': l10n.t('You'),
    'state.streaming': l10n.t('Generating…'),
    'state.stopped': l10n.t('Stopped.'),
    'state.failed': l10n.t('Failed: {0}'),
    empty: l10n.t('Send a prompt to see how this model answers.'),
    loading: l10n.t('Loading…'),
  };
}
