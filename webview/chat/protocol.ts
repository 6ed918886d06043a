// The "Test Checkpoint" chat's protocol between its panel host (src/chatPanel.ts) and its webview
// (webview/chat/main.ts), declared once. The host owns the conversation and the generations (it calls the
// backend); the webview renders what it is sent, keeps the last state with setState (so that a reload brings the
// conversation back), and reports what the user does. Streamed pieces arrive as `chat/delta` notifications with
// an increasing `seq` shared with the views: a webview that sees a gap asks for a snapshot instead of patching.
import { ipcNotification, ipcRequest } from '../protocol';

/** The generation settings as the fields hold them (text, valid or not). `seed` empty: a random seed per answer. */
export interface GenerationTexts {
  temperature: string;
  top_p: string;
  top_k: string;
  repetition_penalty: string;
  max_tokens: string;
  seed: string;
}

/** A generation setting's key. */
export type GenerationKey = keyof GenerationTexts;

/** The settings' keys, in the order the panel shows them. */
export const GENERATION_KEYS: readonly GenerationKey[] = ['temperature', 'top_p', 'top_k', 'repetition_penalty', 'max_tokens', 'seed'];

/** A model the panel talks to: the backend, the chat `model`, and where it came from (for the title and compare). */
export interface ChatTarget {
  backend: string;
  model: string;
  jobId?: string;
  checkpointId?: string;
  /** What the panel calls it (`my-run-step12`, `tiny-qwen2-1m (base)`). */
  label: string;
}

/** Where one answer stands. */
export type AnswerState = 'streaming' | 'done' | 'stopped' | 'failed';

/** One model's answer to one prompt. */
export interface Answer {
  text: string;
  state: AnswerState;
  /** The seed the request used (chosen by the host when the field is empty), so the answer can be reproduced. */
  seed: number;
  /** Milliseconds from sending to the first piece; null until it arrives. */
  ttftMs: number | null;
  /** Milliseconds from sending to the end; null while streaming. */
  durationMs: number | null;
  /** Completion tokens: the backend's `usage` when it gave one, else the streamed pieces counted. */
  tokens: number;
  tokensFromUsage: boolean;
  finishReason: 'stop' | 'length' | null;
  /** Why it failed, for a person. */
  error?: string;
  /** The line under the answer (time to first token, tokens/s, finish reason, seed), translated by the host. */
  stats?: string;
}

/** A prompt and its answers: `answers[0]` from the panel's model, `answers[1]` from the compared one. */
export interface Turn {
  user: string;
  answers: Answer[];
}

/** The whole conversation: what the webview keeps (setState) and gives back after a reload. */
export interface ChatState {
  target: ChatTarget;
  /** The model answering beside it, or null. */
  compare: ChatTarget | null;
  system: string;
  settings: GenerationTexts;
  turns: Turn[];
}

/** A "Compare with…" option. */
export interface CompareChoice {
  /** The chat `model`. */
  model: string;
  label: string;
  detail?: string;
}

/** Everything the webview shows, sent whole after every change that is not a streamed piece. */
export interface ChatView {
  /** This view's place in the stream of views and deltas. */
  seq: number;
  state: ChatState;
  compareChoices: CompareChoice[];
  /** Whether any answer is streaming (Send is then disabled, Stop enabled). */
  busy: boolean;
  /** Errors of the settings fields (validated as the user types). */
  settingsErrors: Partial<Record<GenerationKey, string>>;
  /** The prefill's source (`From the dataset: every example shares this system prompt.`), or empty. */
  systemNote: string;
  /** Qwen2.5's defaults, for "Reset to defaults" and the fields' hints. */
  defaults: GenerationTexts;
}

/** The first answer: the translated strings and the whole view. */
export interface ChatSnapshot {
  strings: Record<ChatStringKey, string>;
  view: ChatView;
}

/** Which side's conversation to export (0: the panel's model, 1: the compared one). */
export type Side = 0 | 1;

// ---------------------------------------------------------------------------------------------------------
// The messages

/** Webview → host, once loaded: the state it kept (`getState`), if any; answered with the full snapshot. */
export const ChatReadyRequest = ipcRequest<{ saved: ChatState | null }, ChatSnapshot>('chat/ready');
/** Webview → host, after a gap in the deltas: the whole view again. */
export const ChatSnapshotRequest = ipcRequest<null, ChatView>('chat/snapshot');
/** Webview → host, as the user edits: the system prompt and the settings (validated; the next view shows errors). */
export const ChatEditNotification = ipcNotification<{ system: string; settings: GenerationTexts }>('chat/edit');
/** Webview → host: send a prompt (answered once the generation started; rejects with code `settings` or `busy`). */
export const ChatSendRequest = ipcRequest<{ text: string; system: string; settings: GenerationTexts }, null>('chat/send');
/** Webview → host: stop every answer that is streaming (the backend stops generating). */
export const ChatStopNotification = ipcNotification<null>('chat/stop');
/** Webview → host: forget the conversation (stops what streams). */
export const ChatClearRequest = ipcRequest<null, null>('chat/clear');
/** Webview → host: answer the last prompt again (both sides when comparing). */
export const ChatRetryRequest = ipcRequest<null, null>('chat/retry');
/** Webview → host: compare with that model, or stop comparing (null). */
export const ChatCompareRequest = ipcRequest<{ model: string | null }, null>('chat/compare');
/** Webview → host: export a side's conversation as a dataset line: copied, or appended to a file the user picks. */
export const ChatExportRequest = ipcRequest<{ side: Side; action: 'copy' | 'append' }, { line: string; file?: string } | null>('chat/export');
/** Webview → host: put text on the clipboard (an answer, a code block). */
export const ChatCopyRequest = ipcRequest<{ text: string }, null>('chat/copy');
/** Host → webview: the whole view. */
export const ChatViewNotification = ipcNotification<{ view: ChatView }>('chat/view');
/** Host → webview: a streamed piece of the answer at `turn`/`side`; `seq` follows the previous view or delta. */
export const ChatDeltaNotification = ipcNotification<{ seq: number; turn: number; side: Side; piece: string; ttftMs: number }>('chat/delta');

/** Appending asks for a file first: the user may take their time. */
export const EXPORT_TIMEOUT_MS = 10 * 60_000;

// ---------------------------------------------------------------------------------------------------------
// The webview's strings: keys here, English and translations on the host side (src/chatStrings.ts).

/** The keys of every string the webview shows. */
export const CHAT_STRING_KEYS = [
  'model',
  'section.system',
  'help.system',
  'section.settings',
  'field.temperature',
  'field.top_p',
  'field.top_k',
  'field.repetition_penalty',
  'field.max_tokens',
  'field.seed',
  'help.seed',
  'action.resetDefaults',
  'compare.label',
  'compare.none',
  'composer.placeholder',
  'composer.hint',
  'action.send',
  'action.stop',
  'action.clear',
  'action.retry',
  'action.copy',
  'action.copyCode',
  'action.copied',
  'export.label',
  'export.side',
  'action.exportCopy',
  'action.exportAppend',
  'export.copied',
  'export.appended',
  'role.user',
  'state.streaming',
  'state.stopped',
  'state.failed',
  'empty',
  'loading',
] as const;

/** A key of the webview's string table. */
export type ChatStringKey = (typeof CHAT_STRING_KEYS)[number];
