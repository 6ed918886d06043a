// The chat's logic that needs no `vscode` (the panel host in chatPanel.ts and the quick pick in testCheckpoint.ts
// call it; the unit tests drive it under plain Node): Qwen2.5's generation defaults and the settings' parsing, the
// messages each side sends, the stats under an answer, the export line in the dataset format (checked with the
// project's own dataset rules), and the quick pick's items.
import type { ChatCompletionRequest, ChatMessageInput, FineTuningJob, FineTuningJobCheckpoint, SavedAdapter } from '../common/api';
import { LineChecker } from '../common/dataset/lineCheck';
import type { Answer, ChatState, ChatTarget, CompareChoice, GenerationKey, GenerationTexts, Side } from '../webview/chat/protocol';
import { formatLoss, runLabel, statusWord } from './runsText';
import { l10n } from './l10n';

/** Qwen2.5 Instruct's generation_config.json values (the backend uses the same for what a request leaves out). */
export const GENERATION_DEFAULTS = { temperature: 0.7, top_p: 0.8, top_k: 20, repetition_penalty: 1.05, max_tokens: 512 } as const;

/** The largest seed the engines take (a 31-bit integer, like the backend's own random one). */
export const MAX_SEED = 2_147_483_647;

/** The defaults as the fields show them; the seed empty (random). */
export function defaultGenerationTexts(): GenerationTexts {
  const d = GENERATION_DEFAULTS;
  return { temperature: String(d.temperature), top_p: String(d.top_p), top_k: String(d.top_k), repetition_penalty: String(d.repetition_penalty), max_tokens: String(d.max_tokens), seed: '' };
}

/** The settings of a request, parsed; `seed` undefined means "choose one". */
export interface GenerationSettings {
  temperature: number;
  top_p: number;
  top_k: number;
  repetition_penalty: number;
  max_tokens: number;
  seed: number | undefined;
}

/** Parsed settings, or the errors of the fields that are wrong (each says what is wrong). */
export type ParsedSettings = { ok: true; settings: GenerationSettings } | { ok: false; errors: Partial<Record<GenerationKey, string>> };

/** A number typed in a field: plain decimal or exponent notation; anything else is undefined. */
function parseNumberText(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

/** Checks the fields: temperature ≥ 0 (0 is greedy), 0 < top-p ≤ 1, top-k ≥ 0 (0: off), repetition penalty > 0, max tokens ≥ 1, seed an integer in 0…2³¹−1 or empty. */
export function parseGenerationSettings(texts: GenerationTexts): ParsedSettings {
  const errors: Partial<Record<GenerationKey, string>> = {};
  const number = (key: GenerationKey, valid: (n: number) => boolean, rule: string): number => {
    const value = parseNumberText(texts[key]);
    if (value === undefined) errors[key] = l10n.t('Enter a number.');
    else if (!valid(value)) errors[key] = rule;
    return value ?? Number.NaN;
  };
  const temperature = number('temperature', (n) => n >= 0 && n <= 10, l10n.t('Between 0 (always the likeliest token) and 10.'));
  const topP = number('top_p', (n) => n > 0 && n <= 1, l10n.t('More than 0, at most 1.'));
  const topK = number('top_k', (n) => Number.isInteger(n) && n >= 0, l10n.t('A whole number, 0 or more (0: no limit).'));
  const penalty = number('repetition_penalty', (n) => n > 0 && n <= 10, l10n.t('More than 0, at most 10 (1: no penalty).'));
  const maxTokens = number('max_tokens', (n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000, l10n.t('A whole number from 1 to 1,000,000.'));
  let seed: number | undefined;
  if (texts.seed.trim() !== '') {
    seed = number('seed', (n) => Number.isInteger(n) && n >= 0 && n <= MAX_SEED, l10n.t('A whole number from 0 to {0}, or empty for a random seed.', MAX_SEED));
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, settings: { temperature, top_p: topP, top_k: topK, repetition_penalty: penalty, max_tokens: maxTokens, seed } };
}

/** A seed for an answer whose field is empty (the panel shows it, so that the answer can be reproduced). */
export function randomSeed(random: () => number = Math.random): number {
  return Math.floor(random() * (MAX_SEED + 1));
}

/** A new answer, about to stream. */
export function pendingAnswer(seed: number): Answer {
  return { text: '', state: 'streaming', seed, ttftMs: null, durationMs: null, tokens: 0, tokensFromUsage: false, finishReason: null };
}

/**
 * Whether a side's answer is part of that side's history (and of its export): it ended (done, or stopped with what
 * it had said) with some text. White space counts: it is what the model said, and the dataset rules accept it.
 */
function answered(answer: Answer | undefined): answer is Answer {
  return answer !== undefined && answer.state !== 'failed' && answer.state !== 'streaming' && answer.text !== '';
}

/**
 * The messages a side sends for the prompt at `turnIndex`: the system prompt (when not empty), then each earlier
 * turn whose answer on this side has text (a failed or empty answer would leave two user turns in a row), then
 * the prompt.
 */
export function messagesFor(state: ChatState, turnIndex: number, side: Side): ChatMessageInput[] {
  const messages: ChatMessageInput[] = [];
  if (state.system.trim() !== '') messages.push({ role: 'system', content: state.system });
  for (let i = 0; i < turnIndex; i++) {
    const turn = state.turns[i];
    const answer = turn.answers[side];
    if (!answered(answer)) continue;
    messages.push({ role: 'user', content: turn.user }, { role: 'assistant', content: answer.text });
  }
  messages.push({ role: 'user', content: state.turns[turnIndex].user });
  return messages;
}

/** The request of one answer. */
export function chatRequest(model: string, messages: ChatMessageInput[], settings: GenerationSettings, seed: number): ChatCompletionRequest {
  return {
    model,
    messages,
    temperature: settings.temperature,
    top_p: settings.top_p,
    top_k: settings.top_k,
    repetition_penalty: settings.repetition_penalty,
    max_tokens: settings.max_tokens,
    seed,
    stream: true,
  };
}

/**
 * Tokens a second of the generation proper: completion tokens over the time from the first token to the end
 * (the first token's wait is the prompt's processing, shown apart as "first token"). Undefined when it cannot be
 * told (no tokens, or no time between them).
 */
export function tokensPerSecond(answer: Answer): number | undefined {
  if (answer.durationMs === null || answer.ttftMs === null || answer.tokens <= 0) return undefined;
  const decodingMs = answer.durationMs - answer.ttftMs;
  const ms = answer.tokens > 1 && decodingMs > 0 ? decodingMs : answer.durationMs;
  if (ms <= 0) return undefined;
  // The first token arrives at `ttftMs`; the others during the decoding time.
  const counted = answer.tokens > 1 && decodingMs > 0 ? answer.tokens - 1 : answer.tokens;
  return (counted * 1000) / ms;
}

/** `first token 120 ms · 45.2 tokens/s · 37 tokens · stop · seed 42`: the line under a finished answer. */
export function answerStats(answer: Answer): string {
  const parts: string[] = [];
  if (answer.ttftMs !== null) parts.push(l10n.t('first token {0}', durationText(answer.ttftMs)));
  const rate = tokensPerSecond(answer);
  if (rate !== undefined) parts.push(l10n.t('{0} tokens/s', rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)));
  parts.push(answer.tokensFromUsage ? l10n.t('{0} tokens', answer.tokens) : l10n.t('{0} pieces', answer.tokens));
  if (answer.state === 'stopped') parts.push(l10n.t('stopped'));
  else if (answer.finishReason === 'stop') parts.push(l10n.t('finished'));
  else if (answer.finishReason === 'length') parts.push(l10n.t('cut at max tokens'));
  parts.push(l10n.t('seed {0}', answer.seed));
  return parts.join(' · ');
}

/** `850 ms`, `1.4 s`. */
export function durationText(ms: number): string {
  return ms < 1000 ? l10n.t('{0} ms', Math.round(ms)) : l10n.t('{0} s', (ms / 1000).toFixed(1));
}

// ---------------------------------------------------------------------------------------------------------
// Export

/** Why a conversation cannot be exported, for a person. */
export class ChatExportError extends Error {
  override readonly name = 'ChatExportError';
  constructor(
    readonly reason: 'empty' | 'invalid',
    message: string,
  ) {
    super(message);
  }

  static is(error: unknown): error is ChatExportError {
    return error instanceof ChatExportError;
  }
}

/**
 * One side's conversation as a dataset line, `{"messages":[system?, user, assistant, …]}`: every turn that side
 * answered with text, in order. Checked with the dataset rules (common/dataset) before it is handed out, so that
 * it can go back into a training file as it is.
 */
export function exportLine(state: ChatState, side: Side): string {
  const messages: ChatMessageInput[] = [];
  if (state.system.trim() !== '') messages.push({ role: 'system', content: state.system });
  for (const turn of state.turns) {
    const answer = turn.answers[side];
    if (!answered(answer) || turn.user.trim() === '') continue;
    messages.push({ role: 'user', content: turn.user }, { role: 'assistant', content: answer.text });
  }
  if (!messages.some((m) => m.role === 'assistant')) throw new ChatExportError('empty', l10n.t('Nothing to export yet: the conversation has no finished answer.'));
  const line = JSON.stringify({ messages });
  const errors = datasetLineErrors(line);
  if (errors.length > 0) throw new ChatExportError('invalid', l10n.t('The conversation is not a valid dataset line: {0}', errors.join('; ')));
  return line;
}

/** The dataset check's errors for one line (empty: the line is valid training data). */
export function datasetLineErrors(line: string): string[] {
  const check = new LineChecker().checkText(line, false);
  return check.findings.filter((f) => f.severity === 'error').map((f) => `${f.code}: ${f.message}`);
}

/** What to append to a file whose content ends with `lastByte` (undefined: empty file) to add `line` as one line. */
export function appendedText(lastByte: number | undefined, line: string): string {
  const newlineFirst = lastByte !== undefined && lastByte !== 0x0a;
  return `${newlineFirst ? '\n' : ''}${line}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// Targets, titles, the quick pick

/** `my-run-step12`: a checkpoint's name in titles. */
export function checkpointName(job: FineTuningJob, checkpoint: FineTuningJobCheckpoint): string {
  return `${runLabel(job)}-step${checkpoint.step_number}`;
}

/** The target of a checkpoint. */
export function checkpointTarget(backend: string, job: FineTuningJob, checkpoint: FineTuningJobCheckpoint): ChatTarget {
  return { backend, model: checkpoint.fine_tuned_model_checkpoint, jobId: job.id, checkpointId: checkpoint.id, label: checkpointName(job, checkpoint) };
}

/** The target of a run's final model (a succeeded run's `fine_tuned_model`). */
export function finalTarget(backend: string, job: FineTuningJob): ChatTarget | undefined {
  if (job.fine_tuned_model === null) return undefined;
  return { backend, model: job.fine_tuned_model, jobId: job.id, label: l10n.t('{0} (final)', runLabel(job)) };
}

/** The target of a base model. */
export function baseTarget(backend: string, model: string): ChatTarget {
  return { backend, model, label: l10n.t('{0} (base)', model) };
}

/** The target of a saved adapter. */
export function adapterTarget(backend: string, adapter: SavedAdapter): ChatTarget {
  return { backend, model: adapter.id, jobId: adapter.job_id, checkpointId: adapter.checkpoint_id ?? undefined, label: adapter.name };
}

/** The panel's title. */
export function chatTitle(target: ChatTarget): string {
  return l10n.t('Chat · {0}', target.label);
}

/** One item of the quick pick, plain (testCheckpoint.ts makes QuickPickItems of them). */
export interface PickItem<T> {
  label: string;
  description?: string;
  detail?: string;
  value: T;
}

/** The runs step: newest first, each with its status and base model. */
export function runPickItems(jobs: readonly FineTuningJob[]): PickItem<FineTuningJob>[] {
  return [...jobs]
    .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1))
    .map((job) => ({ label: runLabel(job), description: `${job.model} · ${statusWord(job.status)}`, detail: job.id, value: job }));
}

/** `train 1.234 · valid 1.456 · accuracy 81.2%`: a checkpoint's metrics. */
export function checkpointMetricsText(checkpoint: FineTuningJobCheckpoint): string {
  const m = checkpoint.metrics;
  const parts = [l10n.t('train loss {0}', formatLoss(m.train_loss))];
  const valid = m.full_valid_loss ?? m.valid_loss;
  if (valid !== undefined) parts.push(l10n.t('valid loss {0}', formatLoss(valid)));
  if (Number.isFinite(m.train_mean_token_accuracy)) parts.push(l10n.t('accuracy {0}%', (m.train_mean_token_accuracy * 100).toFixed(1)));
  return parts.join(' · ');
}

/**
 * The checkpoints step: the run's final model first when it succeeded, then its saved adapters (newest first),
 * then its checkpoints, newest (highest step) first.
 */
export function checkpointPickItems(backend: string, job: FineTuningJob, checkpoints: readonly FineTuningJobCheckpoint[], adapters: readonly SavedAdapter[]): PickItem<ChatTarget>[] {
  const items: PickItem<ChatTarget>[] = [];
  const final = job.status === 'succeeded' ? finalTarget(backend, job) : undefined;
  if (final !== undefined) items.push({ label: l10n.t('Final model'), description: final.model, value: final });
  for (const adapter of [...adapters].filter((a) => a.job_id === job.id).sort((a, b) => b.created_at - a.created_at)) {
    const step = adapter.step_number === null ? '' : l10n.t('step {0}', adapter.step_number);
    items.push({ label: adapter.name, description: [l10n.t('saved adapter'), step].filter((p) => p !== '').join(' · '), detail: adapter.location ?? undefined, value: adapterTarget(backend, adapter) });
  }
  for (const checkpoint of [...checkpoints].sort((a, b) => b.step_number - a.step_number)) {
    items.push({ label: l10n.t('step {0}', checkpoint.step_number), description: checkpointMetricsText(checkpoint), value: checkpointTarget(backend, job, checkpoint) });
  }
  return items;
}

/** "Compare with…": the run's other checkpoints (newest first), its final model, and its base model. */
export function compareChoices(target: ChatTarget, job: FineTuningJob | undefined, checkpoints: readonly FineTuningJobCheckpoint[]): CompareChoice[] {
  const choices: CompareChoice[] = [];
  if (job !== undefined) {
    if (job.fine_tuned_model !== null && job.fine_tuned_model !== target.model) choices.push({ model: job.fine_tuned_model, label: l10n.t('{0} (final)', runLabel(job)) });
    for (const checkpoint of [...checkpoints].sort((a, b) => b.step_number - a.step_number)) {
      if (checkpoint.fine_tuned_model_checkpoint === target.model) continue;
      choices.push({ model: checkpoint.fine_tuned_model_checkpoint, label: checkpointName(job, checkpoint), detail: checkpointMetricsText(checkpoint) });
    }
    if (job.model !== target.model) choices.push({ model: job.model, label: l10n.t('{0} (base)', job.model) });
  }
  return choices;
}

/** The system prompt a panel starts with: the dataset's shared one, else the checkpoint sample's system message. */
export function prefillSystem(fileSystemPrompt: string | null | undefined, checkpoint: FineTuningJobCheckpoint | undefined): { text: string; source: 'dataset' | 'sample' | 'none' } {
  if (typeof fileSystemPrompt === 'string' && fileSystemPrompt !== '') return { text: fileSystemPrompt, source: 'dataset' };
  const first = checkpoint?.sample?.messages[0];
  if (first?.role === 'system' && first.content !== '') return { text: first.content, source: 'sample' };
  return { text: '', source: 'none' };
}

/** Whether a value kept by the webview (getState) is a chat state the panel can take back after a reload. */
export function isChatState(value: unknown): value is ChatState {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<ChatState>;
  const target = v.target as Partial<ChatTarget> | undefined;
  return (
    typeof target === 'object' && target !== null && typeof target.backend === 'string' && typeof target.model === 'string' && typeof target.label === 'string' &&
    typeof v.system === 'string' && typeof v.settings === 'object' && v.settings !== null && Array.isArray(v.turns) &&
    v.turns.every((t: unknown) => typeof t === 'object' && t !== null && typeof (t as { user?: unknown }).user === 'string' && Array.isArray((t as { answers?: unknown }).answers))
  );
}
