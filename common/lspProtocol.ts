import { NotificationType, RequestType } from 'vscode-languageserver-protocol';
import type { DatasetCounts } from './dataset/fileCheck';

/**
 * The dataset language server's custom messages, declared once for the server (server/) and VS Code's
 * client (src/). They are extras: diagnostics, hover and quick fixes use only the standard protocol, so any
 * editor with an LSP client gets those without knowing these.
 */

/** Minimum, maximum, mean and the percentiles that matter before training, of one per-example quantity. */
export interface Distribution {
  count: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p5: number;
  p95: number;
}

/** Everything the "Show Dataset Statistics" command shows for one dataset file. */
export interface DatasetStatistics extends DatasetCounts {
  uri: string;
  /** false when the file is checked from disk (too big for the editor to sync). */
  live: boolean;
  messagesPerExample: Distribution;
  /** Token distributions cover `tokenizedExamples` of the valid examples (all of them once counting is done). */
  tokensPerExample: Distribution;
  trainedTokensPerExample: Distribution;
  tokenizedExamples: number;
  /** Examples longer than `maxSequenceLength` tokens. */
  overLength: number;
  maxSequenceLength: number;
  /** Tokens one epoch trains on: Σ min(tokens, maxSequenceLength) over valid examples (estimate while counting). */
  epochTokens: number;
  /** Trained (assistant) tokens in one epoch, after truncation estimate. */
  epochTrainedTokens: number;
}

/** Parameters of `dataset/statistics`. */
export interface DatasetStatisticsParams {
  uri: string;
}

/**
 * `dataset/statistics` (client → server): the full statistics of an open or disk-checked dataset; null when
 * the server does not know that document.
 */
export namespace DatasetStatisticsRequest {
  export const method = 'dataset/statistics';
  export const type = new RequestType<DatasetStatisticsParams, DatasetStatistics | null, void>(method);
}

/** The short summary the status bar shows for one dataset. */
export interface DatasetStatus {
  uri: string;
  examples: number;
  errors: number;
  warnings: number;
  /** Tokens of the valid examples counted so far. */
  tokens: number;
  /** true while tokens are still being counted in the background. */
  counting: boolean;
  live: boolean;
}

/**
 * `dataset/status` (server → client): sent after each check of a dataset and as token counting progresses
 * (throttled), so the status bar needs no polling.
 */
export namespace DatasetStatusNotification {
  export const method = 'dataset/status';
  export const type = new NotificationType<DatasetStatus>(method);
}

/** Parameters of `dataset/checkFromDisk` and `dataset/stopCheckFromDisk`. */
export interface DiskDatasetParams {
  uri: string;
}

/**
 * `dataset/checkFromDisk` (client → server): a dataset is open in an editor tab but too large for VS Code to
 * sync (over 50 × 2^20 UTF-16 units); the server checks it from disk, re-checks it when it changes there,
 * and publishes its diagnostics as for any open document.
 */
export namespace CheckFromDiskNotification {
  export const method = 'dataset/checkFromDisk';
  export const type = new NotificationType<DiskDatasetParams>(method);
}

/** `dataset/stopCheckFromDisk` (client → server): that tab was closed; drop the file and its diagnostics. */
export namespace StopCheckFromDiskNotification {
  export const method = 'dataset/stopCheckFromDisk';
  export const type = new NotificationType<DiskDatasetParams>(method);
}

/** Parameters of `dataset/convert`. */
export interface ConvertDatasetParams {
  uri: string;
}

/** Result of `dataset/convert`: how many lines changed form, and the edit that does it. */
export interface ConvertDatasetResult {
  converted: number;
  /** Lines left as they were because their form was not recognised. */
  unrecognised: number;
}

/**
 * `dataset/convert` (client → server): converts every ShareGPT (`conversations` with `from`/`value`) or
 * Alpaca (`instruction`/`input`/`output`) line of an open document into `messages` form, applied by the
 * server as a `workspace/applyEdit`.
 */
export namespace ConvertDatasetRequest {
  export const method = 'dataset/convert';
  export const type = new RequestType<ConvertDatasetParams, ConvertDatasetResult, void>(method);
}

/** Parameters of `dataset/visibleRanges`: 0-based, end-exclusive line ranges shown in editors. */
export interface VisibleRangesParams {
  uri: string;
  ranges: { start: number; end: number }[];
}

/**
 * `dataset/visibleRanges` (client → server): the lines the user sees, so that background token counting
 * does those first. Optional: without it the server counts from the top.
 */
export namespace VisibleRangesNotification {
  export const method = 'dataset/visibleRanges';
  export const type = new NotificationType<VisibleRangesParams>(method);
}

// Guards for what the client receives off the wire (STYLE.md: unknown until parsed). They check the shape
// the client relies on, not every number's range.

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasNumbers(value: Record<string, unknown>, keys: readonly string[]): boolean {
  return keys.every((key) => typeof value[key] === 'number');
}

const DISTRIBUTION_KEYS = ['count', 'min', 'max', 'mean', 'median', 'p5', 'p95'] as const;

/** Whether a value is a `Distribution`. */
export function isDistribution(value: unknown): value is Distribution {
  return isRecord(value) && hasNumbers(value, DISTRIBUTION_KEYS);
}

/** Whether a `dataset/status` notification's parameters have the shape of `DatasetStatus`. */
export function isDatasetStatus(value: unknown): value is DatasetStatus {
  return (
    isRecord(value) &&
    typeof value.uri === 'string' &&
    hasNumbers(value, ['examples', 'errors', 'warnings', 'tokens']) &&
    typeof value.counting === 'boolean' &&
    typeof value.live === 'boolean'
  );
}

/** Whether a `dataset/statistics` result has the shape of `DatasetStatistics`. */
export function isDatasetStatistics(value: unknown): value is DatasetStatistics {
  return (
    isRecord(value) &&
    typeof value.uri === 'string' &&
    typeof value.live === 'boolean' &&
    hasNumbers(value, ['lines', 'examples', 'validExamples', 'blank', 'errors', 'warnings', 'tokenizedExamples', 'overLength', 'maxSequenceLength', 'epochTokens', 'epochTrainedTokens']) &&
    isRecord(value.byCode) &&
    isDistribution(value.messagesPerExample) &&
    isDistribution(value.tokensPerExample) &&
    isDistribution(value.trainedTokensPerExample)
  );
}

/** Whether a `dataset/convert` result has the shape of `ConvertDatasetResult`. */
export function isConvertDatasetResult(value: unknown): value is ConvertDatasetResult {
  return isRecord(value) && hasNumbers(value, ['converted', 'unrecognised']);
}
