// Token counts of a conversation as the Qwen2.5 chat template renders it (ARCHITECTURE.md, "The training
// rules"): `<|im_start|>{role}\n{content}<|im_end|>\n` per message, with the default system prompt first when
// the conversation does not start with a system message.
import type { BpeTokenizer } from './bpe';

/**
 * The system prompt that the Qwen2.5 chat template inserts when a conversation has no system message first; the
 * engines insert it too, at training and at chat time alike.
 */
export const QWEN_DEFAULT_SYSTEM_PROMPT = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';

/**
 * Tokens that the default system message adds to a rendered conversation:
 * `<|im_start|>system\nYou are Qwen, … assistant.<|im_end|>\n` is 21 tokens with the Qwen2.5 tokenizer
 * (checked against the tokenizer by the tests).
 */
export const QWEN_DEFAULT_SYSTEM_PROMPT_TOKENS = 21;

/**
 * Ids of the Qwen2.5 special tokens that the chat template and the engines use (the tests check them against
 * the tokenizer file): `<|endoftext|>` ends a packed example, `<|im_start|>` and `<|im_end|>` frame a message.
 */
export const QWEN_SPECIAL_IDS = { endOfText: 151643, imStart: 151644, imEnd: 151645 } as const;

/** One message of a conversation, as far as counting is concerned. */
export interface ChatMessage {
  /** system, user, assistant (any role is rendered the same way). */
  role: string;
  /** The text of the message. */
  content: string;
  /** 0 excludes an assistant message from the loss; anything else (or nothing) trains on it. */
  weight?: number;
}

/**
 * The messages of a dataset line that the checks (common/dataset) passed, as counting needs them; undefined when
 * the text does not parse as a conversation after all. Used by the language server's and the form's token counts.
 */
export function chatMessagesOf(text: string): ChatMessage[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const messages = (value as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages)) return undefined;
  const turns: ChatMessage[] = [];
  for (const m of messages as unknown[]) {
    const { role, content, weight } = (m ?? {}) as { role?: unknown; content?: unknown; weight?: unknown };
    if (typeof role !== 'string' || typeof content !== 'string') return undefined;
    turns.push(typeof weight === 'number' ? { role, content, weight } : { role, content });
  }
  return turns;
}

/** The counts of one rendered conversation. */
export interface ConversationTokens {
  /** Tokens of the whole rendered conversation, default system message included: its sequence length. */
  total: number;
  /**
   * Tokens that carry loss: for every assistant message whose weight is not 0, its content tokenized alone
   * plus `<|im_end|>` and `\n` (the engines build labels segment by segment, so content is tokenized alone).
   */
  trained: number;
}

/**
 * Counts a conversation as the Qwen2.5 chat template renders it, without building the rendered string.
 * Each message is `<|im_start|>` + tokens(role + "\n" + content) + `<|im_end|>` + `\n`: the special tokens are
 * split out before anything else, so they never merge with their neighbours, and counting role and content
 * together keeps the count exact whatever they hold (for the usual one-token roles this is 4 + tokens("\n" +
 * content)).
 *
 * Roles are rendered generically: the template's own handling of `tool` messages and of `tool_calls` (which
 * wrap content in `<tool_response>` tags or JSON) is not reproduced here.
 */
export function countConversation(tokenizer: BpeTokenizer, messages: readonly ChatMessage[]): ConversationTokens {
  let total = messages.length > 0 && messages[0].role === 'system' ? 0 : QWEN_DEFAULT_SYSTEM_PROMPT_TOKENS;
  let trained = 0;
  for (const message of messages) {
    total += 3 + tokenizer.count(message.role + '\n' + message.content);
    if (message.role === 'assistant' && message.weight !== 0) trained += tokenizer.count(message.content) + 2;
  }
  return { total, trained };
}

/**
 * The conversation rendered as the Qwen2.5 chat template renders it (no generation prompt): what
 * {@link countConversation} counts, for engines and tests that need the text itself.
 */
export function renderConversation(messages: readonly ChatMessage[]): string {
  let text = '';
  if (messages.length === 0 || messages[0].role !== 'system') {
    text += `<|im_start|>system\n${QWEN_DEFAULT_SYSTEM_PROMPT}<|im_end|>\n`;
  }
  for (const m of messages) text += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
  return text;
}
