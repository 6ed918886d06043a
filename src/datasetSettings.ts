/**
 * The `finetune.dataset` settings as the language server receives them (`workspace/configuration` for the
 * section `finetune.dataset`). Pure, so that the clean-up of what a user typed into settings.json is tested
 * without VS Code; the defaults repeat those in package.json on purpose, for values that are missing or wrong.
 */

/** The section the language server asks for. */
export const DATASET_SECTION = 'finetune.dataset';

/** What the language server is configured with. */
export interface DatasetSettings {
  maxSequenceLength: number;
  maxDiagnostics: number;
  countTokens: boolean;
}

/** The defaults declared in package.json. */
export const DEFAULT_DATASET_SETTINGS: Readonly<DatasetSettings> = {
  maxSequenceLength: 4096,
  maxDiagnostics: 1000,
  countTokens: true,
};

/**
 * Reads settings from a lookup (VS Code's `WorkspaceConfiguration.get`), replacing a value of the wrong type
 * or out of range by its default: settings.json is hand-edited, and VS Code only warns about schema errors.
 */
export function readDatasetSettings(get: (key: keyof DatasetSettings) => unknown): DatasetSettings {
  return {
    maxSequenceLength: positiveInteger(get('maxSequenceLength'), DEFAULT_DATASET_SETTINGS.maxSequenceLength),
    maxDiagnostics: positiveInteger(get('maxDiagnostics'), DEFAULT_DATASET_SETTINGS.maxDiagnostics),
    countTokens: typeof get('countTokens') === 'boolean' ? (get('countTokens') as boolean) : DEFAULT_DATASET_SETTINGS.countTokens,
  };
}

function positiveInteger(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : fallback;
}
