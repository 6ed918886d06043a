/**
 * The language server's messages in every language it speaks, in one table: dataset findings (keyed by their
 * finding code, with `code/variant` ids where one code has several wordings), the phrases those findings are
 * built from, and the server's own hover, quick-fix and notice texts. `common/dataset` records a finding as a
 * `Message` (an id and its arguments) and formats it in English for the CLI and the backend; the language
 * server formats the same `Message` again in its client's locale. No Node here: `common/` runs everywhere.
 */

/** The languages messages exist in; `en` is the source language and the fallback. */
export const LOCALES = ['en', 'zh-cn'] as const;

/** A language messages exist in. */
export type Locale = (typeof LOCALES)[number];

/** One message in every language, with `{0}`, `{1}`… placeholders that each language places as it needs. */
export type Template = Readonly<Record<Locale, string>>;

/** Every message, by id. */
export const MESSAGES = {
  // --- Findings: the id is the finding code, or `code/variant`. ---
  'json-syntax': { en: 'Invalid JSON at column {0}: {1}.', 'zh-cn': '第 {0} 列的 JSON 无效：{1}。' },
  'json-syntax/ends-early': { en: 'the line ends too early; expected {0}', 'zh-cn': '该行提前结束，应为{0}' },
  'json-syntax/expected-found': { en: 'expected {0}, found {1}', 'zh-cn': '应为{0}，实际为{1}' },
  'json-syntax/after-end': { en: 'unexpected {0} after the end of the JSON value', 'zh-cn': 'JSON 值结束后出现了多余的{0}' },
  'json-syntax/unterminated-string': {
    en: 'the line ends inside a string; expected a closing \'"\'',
    'zh-cn': '该行在字符串内部结束，缺少结尾的 \'"\'',
  },
  'json-syntax/hex-digits': { en: 'expected four hex digits after \\u', 'zh-cn': '\\u 之后应为四位十六进制数字' },
  'json-syntax/escape-ends': { en: 'the line ends inside an escape sequence', 'zh-cn': '该行在转义序列内部结束' },
  'json-syntax/escape-invalid': { en: "invalid escape sequence '\\{0}'", 'zh-cn': "无效的转义序列 '\\{0}'" },
  'json-syntax/control-in-string': {
    en: '{0} inside a string; write it as an escape such as \\n or \\t',
    'zh-cn': '字符串中出现了{0}；请改写为转义形式，如 \\n 或 \\t',
  },
  'not-object': {
    en: 'The line is {0}; expected an object with a "messages" array.',
    'zh-cn': '该行是{0}；应为包含 "messages" 数组的对象。',
  },
  'messages-missing': {
    en: 'The object has no "messages" key; expected {"messages": [{"role": "user", "content": "…"}, …]}.',
    'zh-cn': '该对象没有 "messages" 键；应为 {"messages": [{"role": "user", "content": "…"}, …]}。',
  },
  'messages-missing/not-array': {
    en: '"messages" is {0}; expected an array of messages.',
    'zh-cn': '"messages" 是{0}；应为消息数组。',
  },
  'messages-empty': {
    en: '"messages" is an empty array; expected at least a user message and an assistant reply.',
    'zh-cn': '"messages" 是空数组；至少应包含一条 user 消息和一条 assistant 回复。',
  },
  'message-invalid': {
    en: 'Message {0} is {1}; expected an object {"role": …, "content": …}.',
    'zh-cn': '第 {0} 条消息是{1}；应为对象 {"role": …, "content": …}。',
  },
  'message-invalid/lacks': {
    en: 'Message {0} {1}; expected a string "role" and a string "content".',
    'zh-cn': '第 {0} 条消息{1}；"role" 和 "content" 都应为字符串。',
  },
  'message-invalid/no-role': { en: 'has no "role"', 'zh-cn': '缺少 "role"' },
  'message-invalid/role-is': { en: 'has a "role" that is {0}', 'zh-cn': '的 "role" 是{0}' },
  'message-invalid/no-content': { en: 'has no "content"', 'zh-cn': '缺少 "content"' },
  'message-invalid/content-is': { en: 'has a "content" that is {0}', 'zh-cn': '的 "content" 是{0}' },
  'message-invalid/and': { en: '{0} and {1}', 'zh-cn': '{0}，且它{1}' },
  'role-unknown': {
    en: 'Unknown role {0} in message {1}; expected "system", "user" or "assistant".',
    'zh-cn': '第 {1} 条消息的角色 {0} 无法识别；应为 "system"、"user" 或 "assistant"。',
  },
  'weight-invalid': {
    en: '"weight" on a {0} message (message {1}); only assistant messages may carry a weight.',
    'zh-cn': '{0} 消息（第 {1} 条）带有 "weight"；只有 assistant 消息可以设置 weight。',
  },
  'weight-invalid/value': {
    en: '"weight" is {0} in message {1}; expected 0 (do not train on this turn) or 1.',
    'zh-cn': '第 {1} 条消息的 "weight" 是 {0}；应为 0（不训练这一轮）或 1。',
  },
  'system-not-first': {
    en: 'A system message at position {0}; expected at most one system message, and only as the first message.',
    'zh-cn': '第 {0} 条是 system 消息；最多只能有一条 system 消息，且必须是第一条。',
  },
  'no-pair': {
    en: 'The conversation has no user and no assistant message; expected at least one user message followed by an assistant reply.',
    'zh-cn': '对话中既没有 user 消息也没有 assistant 消息；至少应有一条 user 消息，后跟一条 assistant 回复。',
  },
  'no-pair/no-user': {
    en: 'The conversation has no user message; expected at least one user message followed by an assistant reply.',
    'zh-cn': '对话中没有 user 消息；至少应有一条 user 消息，后跟一条 assistant 回复。',
  },
  'no-pair/no-assistant': {
    en: 'The conversation has no assistant message; expected at least one user message followed by an assistant reply.',
    'zh-cn': '对话中没有 assistant 消息；至少应有一条 user 消息，后跟一条 assistant 回复。',
  },
  'role-order': {
    en: 'Message {0} is {1}; expected {2}, because {3} (turns alternate user, assistant, user, …).',
    'zh-cn': '第 {0} 条消息是 {1}，应为 {2}，因为{3}（各轮按 user、assistant、user…交替）。',
  },
  'role-order/starts-with-user': { en: 'the conversation starts with a user message', 'zh-cn': '对话应以 user 消息开头' },
  'role-order/user-too': { en: 'message {0} is a user message too', 'zh-cn': '第 {0} 条消息也是 user 消息' },
  'role-order/assistant-too': { en: 'message {0} is an assistant message too', 'zh-cn': '第 {0} 条消息也是 assistant 消息' },
  'role-order/ends-with-user': {
    en: 'The conversation ends with a user message (message {0}); expected an assistant reply after it to train on.',
    'zh-cn': '对话以 user 消息结尾（第 {0} 条）；其后应有一条可供训练的 assistant 回复。',
  },
  'content-empty': {
    en: 'Message {0} has empty content; expected some text.',
    'zh-cn': '第 {0} 条消息的 content 为空；应包含文本。',
  },
  'content-empty/assistant': {
    en: 'Message {0} has empty content; expected some text for the model to learn.',
    'zh-cn': '第 {0} 条消息的 content 为空；应包含供模型学习的文本。',
  },
  'key-unknown': {
    en: 'Unknown key {0} at the top level; only "messages" is used for training.',
    'zh-cn': '顶层有未知的键 {0}；训练只使用 "messages"。',
  },
  'key-unknown/message': {
    en: 'Unknown key {0} in message {1}; expected only "role", "content", "weight" and "name".',
    'zh-cn': '第 {1} 条消息中有未知的键 {0}；只应包含 "role"、"content"、"weight" 和 "name"。',
  },
  'line-blank': {
    en: 'Blank line; expected one JSON object per line (remove it).',
    'zh-cn': '空行；每行应为一个 JSON 对象（请删除此行）。',
  },
  'too-long': {
    en: 'The conversation is {0} tokens long, over the maximum sequence length of {1}; training truncates it to {1} tokens.',
    'zh-cn': '对话长度为 {0} 个 token，超过了最大序列长度 {1}；训练时会将其截断为 {1} 个 token。',
  },
  duplicate: {
    en: 'This line is an exact copy of line {0}; duplicates over-weight one example.',
    'zh-cn': '此行与第 {0} 行完全相同；重复的行会加大同一个样本的权重。',
  },
  'file-empty': {
    en: 'The file is empty; expected one JSON object with a "messages" array per line.',
    'zh-cn': '文件为空；每行应为一个包含 "messages" 数组的 JSON 对象。',
  },

  // --- Phrases that findings are built from. ---
  'expect/property-name': { en: 'a property name in double quotes', 'zh-cn': '用双引号括起的属性名' },
  'expect/colon': { en: "':' after the property name", 'zh-cn': "属性名之后的 ':'" },
  'expect/comma-or-brace-after-value': { en: "',' or '}' after the property value", 'zh-cn': "属性值之后的 ',' 或 '}'" },
  'expect/comma-or-bracket-after-message': { en: "',' or ']' after the message", 'zh-cn': "消息之后的 ',' 或 ']'" },
  'expect/comma-or-brace': { en: "',' or '}'", 'zh-cn': "',' 或 '}'" },
  'expect/comma-or-bracket': { en: "',' or ']'", 'zh-cn': "',' 或 ']'" },
  'expect/digit': { en: 'a digit', 'zh-cn': '数字' },
  'expect/digit-after-dot': { en: "a digit after '.'", 'zh-cn': "'.' 之后的数字" },
  'expect/digit-in-exponent': { en: 'a digit in the exponent', 'zh-cn': '指数部分的数字' },
  'expect/value': { en: 'a JSON value', 'zh-cn': 'JSON 值' },
  'byte/end-of-line': { en: 'the end of the line', 'zh-cn': '行尾' },
  'byte/control': { en: 'control character U+{0}', 'zh-cn': '控制字符 U+{0}' },
  'value/object': { en: 'an object', 'zh-cn': '对象' },
  'value/array': { en: 'an array', 'zh-cn': '数组' },
  'value/string': { en: 'a string', 'zh-cn': '字符串' },
  'value/boolean': { en: 'a boolean', 'zh-cn': '布尔值' },
  'value/null': { en: 'null', 'zh-cn': ' null' },
  'value/number': { en: 'a number', 'zh-cn': '数字' },

  // --- The language server's own texts. ---
  'server/more-findings': {
    en: '{0} more finding is not shown: at most {1} diagnostics are shown per file (setting finetune.dataset.maxDiagnostics). The status bar and "Finetune: Show Dataset Statistics" count all {2}.',
    'zh-cn': '还有 {0} 条检查结果未显示：每个文件最多显示 {1} 条诊断（设置项 finetune.dataset.maxDiagnostics）。状态栏和“Finetune: 显示数据集统计”会计入全部 {2} 条。',
  },
  'server/more-findings/plural': {
    en: '{0} more findings are not shown: at most {1} diagnostics are shown per file (setting finetune.dataset.maxDiagnostics). The status bar and "Finetune: Show Dataset Statistics" count all {2}.',
    'zh-cn': '还有 {0} 条检查结果未显示：每个文件最多显示 {1} 条诊断（设置项 finetune.dataset.maxDiagnostics）。状态栏和“Finetune: 显示数据集统计”会计入全部 {2} 条。',
  },
  'server/too-large': {
    en: '{0}{1} is too large for VS Code to share with extensions, so Finetune Studio checks it from disk and again each time it changes there. Live checking as you type is off for this file.',
    'zh-cn': '{0}{1} 太大，VS Code 不会将其内容提供给扩展，因此 Finetune Studio 会从磁盘检查该文件，并在磁盘上的文件每次变化时重新检查。此文件不会随输入实时检查。',
  },
  'hover/blank': { en: '**Blank line**: not an example.', 'zh-cn': '**空行**：不是样本。' },
  'hover/has-errors': { en: 'Not used for training: the example has errors.', 'zh-cn': '不参与训练：该样本有错误。' },
  'hover/not-example': { en: '**Not an example**: training cannot use this line.', 'zh-cn': '**不是样本**：训练无法使用此行。' },
  'hover/example-of': { en: '**Example** of {0} messages', 'zh-cn': '**样本**，共 {0} 条消息' },
  'hover/example-turn': { en: '**Example**: {0}, {1} turn', 'zh-cn': '**样本**：{0}，{1} 轮' },
  'hover/example-turns': { en: '**Example**: {0}, {1} turns', 'zh-cn': '**样本**：{0}，{1} 轮' },
  'hover/tokens-off': {
    en: 'Tokens: not counted (setting `finetune.dataset.countTokens` is off).',
    'zh-cn': 'Token：未统计（设置项 `finetune.dataset.countTokens` 已关闭）。',
  },
  'hover/tokenizer-failed': {
    en: 'Tokens: not counted (the Qwen2.5 tokenizer could not be loaded; see the server log).',
    'zh-cn': 'Token：未统计（无法加载 Qwen2.5 分词器，详见服务器日志）。',
  },
  'hover/counting': { en: 'Tokens: counting…', 'zh-cn': 'Token：统计中…' },
  'hover/too-long-to-count': {
    en: 'Tokens: not counted (the line is over {0} characters).',
    'zh-cn': 'Token：未统计（该行超过 {0} 个字符）。',
  },
  'hover/count-failed': {
    en: 'Tokens: not counted (the tokenizer could not read the line; see the server log).',
    'zh-cn': 'Token：未统计（分词器无法读取该行，详见服务器日志）。',
  },
  'hover/counts': { en: '**{0} tokens** ({1} trained)', 'zh-cn': '**{0} 个 token**（其中 {1} 个参与训练）' },
  'hover/truncated': {
    en: '{0}: **truncated** to the maximum sequence length of {1}; training drops the last {2} tokens.',
    'zh-cn': '{0}：将被**截断**到最大序列长度 {1}；训练会丢弃最后 {2} 个 token。',
  },
  'hover/fits': { en: '{0}: fits in the maximum sequence length of {1}.', 'zh-cn': '{0}：未超过最大序列长度 {1}。' },
  'fix/remove-blank': { en: 'Remove the blank line', 'zh-cn': '删除空行' },
  'fix/remove-duplicate': { en: 'Remove the duplicate line (a copy of line {0})', 'zh-cn': '删除重复行（与第 {0} 行相同）' },
  'fix/move-system': { en: 'Move the system message to the front', 'zh-cn': '将 system 消息移到最前面' },
  'fix/merge-system': { en: 'Merge this system message into the first one', 'zh-cn': '将此 system 消息合并到第一条 system 消息中' },
  'fix/remove-system': { en: 'Remove this system message', 'zh-cn': '删除此 system 消息' },
  'fix/add-reply': {
    en: 'Add an empty assistant reply after the last user message',
    'zh-cn': '在最后一条 user 消息后添加空的 assistant 回复',
  },
  'fix/convert-line': { en: 'Convert this {0} line to messages form', 'zh-cn': '将此 {0} 格式的行转换为 messages 格式' },
  'fix/convert-all': {
    en: 'Convert every ShareGPT or Alpaca line of the file to messages form',
    'zh-cn': '将文件中所有 ShareGPT 或 Alpaca 格式的行转换为 messages 格式',
  },
  'fix/convert-dataset': { en: 'Convert dataset to messages form', 'zh-cn': '将数据集转换为 messages 格式' },
} as const satisfies Record<string, Template>;

/** The id of a message in `MESSAGES`. */
export type MessageId = keyof typeof MESSAGES;

/** What fills a placeholder: text and numbers as they are, a nested message formatted in the same language. */
export type MessageArg = string | number | Message;

/** A message to be formatted later, in the reader's language. */
export interface Message {
  readonly id: MessageId;
  readonly args: readonly MessageArg[];
}

/** Builds a message. */
export function msg(id: MessageId, ...args: MessageArg[]): Message {
  return { id, args };
}

/** Formats a message (and the messages among its arguments) in one language. */
export function formatMessage(message: Message, locale: Locale): string {
  const template: Template = MESSAGES[message.id];
  return template[locale].replace(/\{(\d+)\}/g, (match, index: string) => {
    const arg = message.args[Number(index)];
    if (arg === undefined) return match;
    return typeof arg === 'object' ? formatMessage(arg, locale) : String(arg);
  });
}

/**
 * The language for a locale tag: VS Code's display language (`zh-cn`, `en`, …) from `InitializeParams.locale`,
 * or a POSIX one from LANG / LC_ALL (`zh_CN.UTF-8`). Simplified Chinese for `zh`, `zh-cn`, `zh-sg` and
 * `zh-hans*`; English for everything else, Traditional Chinese included (there is no translation for it).
 */
export function localeOf(tag: string | undefined): Locale {
  const t = (tag ?? '').toLowerCase().replace(/_/g, '-').replace(/[.@].*$/, '');
  return t === 'zh' || t === 'zh-cn' || t === 'zh-sg' || t.startsWith('zh-hans') ? 'zh-cn' : 'en';
}
