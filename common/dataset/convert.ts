/**
 * Pure rewrites of one dataset example, for the language server's quick fixes and its "convert the whole file"
 * request: other chat formats (ShareGPT, Alpaca) into `messages` form, and the repairs of a conversation whose
 * intent is clear. Every function takes the parsed line and returns a new object (never mutating its input),
 * or undefined when the line is not in the shape that the rewrite needs; callers print the result on one line
 * with `printLine`, in the style of the line it replaces.
 */

/** A message as the rules want it: `role` and `content`, an optional `weight` on assistant messages. */
export interface ChatMessage {
  role: string;
  content: string;
  weight?: number;
  [key: string]: unknown;
}

/** A parsed line: any JSON object. */
export type JsonObject = Record<string, unknown>;

/** Which other format a line was written in. */
export type SourceForm = 'sharegpt' | 'alpaca';

/** A line converted into `messages` form, with the form it came from. */
export interface Converted {
  form: SourceForm;
  value: JsonObject;
}

/** Whether a parsed JSON value is a plain object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** ShareGPT's `from` values and the role each one means; anything else is not converted. */
const SHAREGPT_ROLES: Readonly<Record<string, string>> = {
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  system: 'system',
};

/**
 * `{ messages, …rest }`: the messages key first, then the other keys in their order. The key order matters
 * only to people reading the file, who look for the conversation first.
 */
export function withMessagesFirst(messages: unknown[], rest: JsonObject, drop: readonly string[] = []): JsonObject {
  const out: JsonObject = { messages };
  for (const [key, value] of Object.entries(rest)) {
    if (key !== 'messages' && !drop.includes(key)) out[key] = value;
  }
  return out;
}

/**
 * ShareGPT (`{"conversations": [{"from": "human", "value": "…"}, …]}`) into messages form. `from` may be human,
 * gpt, system, user or assistant; an assistant turn's `weight` of 0 or 1 is kept. Other keys of the line stay,
 * after `messages`. Undefined when the line is not ShareGPT or a turn cannot be mapped without guessing.
 */
export function fromShareGpt(line: JsonObject): JsonObject | undefined {
  const turns = line.conversations;
  if (!Array.isArray(turns) || turns.length === 0 || 'messages' in line) return undefined;
  const messages: ChatMessage[] = [];
  for (const turn of turns) {
    if (!isJsonObject(turn) || typeof turn.from !== 'string' || typeof turn.value !== 'string') return undefined;
    const role = SHAREGPT_ROLES[turn.from];
    if (role === undefined) return undefined;
    const message: ChatMessage = { role, content: turn.value };
    if (role === 'assistant' && (turn.weight === 0 || turn.weight === 1)) message.weight = turn.weight;
    messages.push(message);
  }
  return withMessagesFirst(messages, line, ['conversations']);
}

/**
 * Alpaca (`instruction`, optional `input`, `output`, optional `system` and `history`) into messages form: the
 * user message is the instruction, then a blank line and the input when there is one; `history` (pairs of
 * earlier [user, assistant] turns, as LLaMA-Factory writes them) comes before it. Other keys stay, after
 * `messages`. Undefined when the line is not Alpaca.
 */
export function fromAlpaca(line: JsonObject): JsonObject | undefined {
  const { instruction, input, output, system, history } = line;
  if (typeof instruction !== 'string' || typeof output !== 'string' || 'messages' in line) return undefined;
  if (input !== undefined && input !== null && typeof input !== 'string') return undefined;
  if (system !== undefined && system !== null && typeof system !== 'string') return undefined;
  const messages: ChatMessage[] = [];
  if (typeof system === 'string' && system.trim() !== '') messages.push({ role: 'system', content: system });
  if (history !== undefined && history !== null) {
    if (!Array.isArray(history)) return undefined;
    for (const pair of history) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return undefined;
      messages.push({ role: 'user', content: pair[0] }, { role: 'assistant', content: pair[1] });
    }
  }
  const user = typeof input === 'string' && input.trim() !== '' ? `${instruction}\n\n${input}` : instruction;
  messages.push({ role: 'user', content: user }, { role: 'assistant', content: output });
  return withMessagesFirst(messages, line, ['instruction', 'input', 'output', 'system', 'history']);
}

/** Converts a line in either known form into messages form; undefined when the form is not recognised. */
export function toMessagesForm(line: unknown): Converted | undefined {
  if (!isJsonObject(line)) return undefined;
  const sharegpt = fromShareGpt(line);
  if (sharegpt) return { form: 'sharegpt', value: sharegpt };
  const alpaca = fromAlpaca(line);
  if (alpaca) return { form: 'alpaca', value: alpaca };
  return undefined;
}

/** The messages array of a parsed line, when it has one. */
function messagesOf(line: JsonObject): unknown[] | undefined {
  return Array.isArray(line.messages) ? line.messages : undefined;
}

function roleOf(message: unknown): unknown {
  return isJsonObject(message) ? message.role : undefined;
}

/**
 * Positions (0-based) of the system messages that are not first, in order: each has its own
 * `system-not-first` finding, in the same order as the findings' columns.
 */
export function misplacedSystemMessages(line: JsonObject): number[] {
  const messages = messagesOf(line) ?? [];
  const out: number[] = [];
  for (let i = 1; i < messages.length; i++) if (roleOf(messages[i]) === 'system') out.push(i);
  return out;
}

/** Moves the system message at `index` to the front; only when the conversation has no system message first. */
export function moveSystemToFront(line: JsonObject, index: number): JsonObject | undefined {
  const messages = messagesOf(line);
  if (!messages || index <= 0 || index >= messages.length || roleOf(messages[index]) !== 'system') return undefined;
  if (roleOf(messages[0]) === 'system') return undefined;
  const moved = [messages[index], ...messages.slice(0, index), ...messages.slice(index + 1)];
  return withMessagesFirst(moved, line);
}

/**
 * Merges the system message at `index` into the first one (which must be a system message): the contents
 * joined with a blank line, in their order, and the later message removed.
 */
export function mergeSystemIntoFirst(line: JsonObject, index: number): JsonObject | undefined {
  const messages = messagesOf(line);
  if (!messages || index <= 0 || index >= messages.length) return undefined;
  const first = messages[0];
  const later = messages[index];
  if (!isJsonObject(first) || !isJsonObject(later) || first.role !== 'system' || later.role !== 'system') return undefined;
  if (typeof first.content !== 'string' || typeof later.content !== 'string') return undefined;
  const merged = { ...first, content: `${first.content}\n\n${later.content}` };
  return withMessagesFirst([merged, ...messages.slice(1, index), ...messages.slice(index + 1)], line);
}

/** Removes the message at `index`. */
export function dropMessage(line: JsonObject, index: number): JsonObject | undefined {
  const messages = messagesOf(line);
  if (!messages || index < 0 || index >= messages.length) return undefined;
  return withMessagesFirst([...messages.slice(0, index), ...messages.slice(index + 1)], line);
}

/**
 * Whether the conversation breaks only one rule: it ends with a user message, and the user and assistant
 * messages before it alternate correctly. Then appending an assistant reply is the obvious fix.
 */
export function endsWithUnansweredUser(line: JsonObject): boolean {
  const messages = messagesOf(line);
  if (!messages) return false;
  let expect = 'user';
  let last: unknown;
  for (const message of messages) {
    const role = roleOf(message);
    if (role !== 'user' && role !== 'assistant') continue;
    if (role !== expect) return false;
    expect = role === 'user' ? 'assistant' : 'user';
    last = role;
  }
  return last === 'user';
}

/**
 * Appends an empty assistant reply after a trailing user message. The empty content is then reported as
 * `content-empty`, which is right: the user still has to write the reply.
 */
export function appendAssistantReply(line: JsonObject): JsonObject | undefined {
  const messages = messagesOf(line);
  if (!messages || !endsWithUnansweredUser(line)) return undefined;
  return withMessagesFirst([...messages, { role: 'assistant', content: '' }], line);
}

/**
 * The shape of a conversation for a hover: its roles in order, joined with arrows, and its number of turns
 * (assistant replies). Entries that are not messages show as "?".
 */
export function describeConversation(messages: readonly unknown[]): { roles: string; turns: number } {
  let turns = 0;
  const roles = messages.map((m) => {
    const role = roleOf(m);
    if (role === 'assistant') turns++;
    return typeof role === 'string' ? role : '?';
  });
  return { roles: roles.join(' → '), turns };
}

/**
 * Whether a line is written with a space after its colons and commas (`{"messages": [...]}`, as Python's
 * `json.dumps` writes by default), judged by its first key, so that a fixed line keeps its file's style.
 */
export function usesSpacedStyle(line: string): boolean {
  return /^\uFEFF?\s*\{\s*"(?:[^"\\]|\\.)*"\s*:\s/.test(line.slice(0, 256));
}

/**
 * Prints a rewritten example on one line: compact like `JSON.stringify`, or spaced like Python's `json.dumps`
 * (`", "` and `": "`). Throws a RangeError on values nested too deep to print, as `JSON.stringify` does.
 */
export function printLine(value: unknown, spaced: boolean): string {
  return spaced ? printSpaced(value) : JSON.stringify(value);
}

function printSpaced(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : printSpaced(item))).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).filter(([, item]) => item !== undefined);
    return `{${members.map(([key, item]) => `${JSON.stringify(key)}: ${printSpaced(item)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}
