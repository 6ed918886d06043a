// The "New Training Run" form's logic, free of vscode and of the DOM so that tests load it under plain Node:
// the ranges of every field (the backend's own, from common/hyperparameters.ts), defaults from a model, validation as the user types, the summary's arithmetic,
// the create request built from the form (only what the user changed), and the prefill of a rerun.
import type { CreateJobRequest, FineTuningJob, Hyperparameters, HyperparametersInput, LoraTargetModule, ModelObject } from '../common/api';
import { LORA_TARGET_MODULES, LR_SCHEDULERS, TRAINING_TYPES } from '../common/api';
import { SUFFIX_MAX, SUFFIX_PATTERN } from '../common/apiSchemas';
import { GENERAL_DEFAULTS, MIN_SEQ_LENGTH, RANGES as COMMON_RANGES, SEED_MAX, type Range } from '../common/hyperparameters';
import type { DatasetChoice, FieldKey, FormValues, SettingKey, SummaryView } from '../webview/protocol';
import { MAIN_FIELDS, MORE_FIELDS } from '../webview/protocol';
import { keepEdits } from '../webview/newRun/edits';
import { l10n } from './l10n';

/** The ranges the form checks as the user types: the backend's (common/hyperparameters.ts), less the multiplier the form does not show. */
const { learning_rate_multiplier: _multiplier, ...FORM_RANGES } = COMMON_RANGES;
export const RANGES: Readonly<Record<Exclude<keyof typeof COMMON_RANGES, 'learning_rate_multiplier'>, Range>> = FORM_RANGES;

export { MIN_SEQ_LENGTH, SEED_MAX };
/** What a suffix may hold. */
const SUFFIX_RE = new RegExp(SUFFIX_PATTERN);

/** The defaults when a backend gives none (a plain OpenAI-compatible service): the backend's general ones. */
export { GENERAL_DEFAULTS };

/** Every setting's key, in the form's order. */
export const SETTING_KEYS: readonly SettingKey[] = ['training_type', ...MAIN_FIELDS, ...MORE_FIELDS];

/** A model's defaults: its own `default_hyperparameters`, or the general ones capped by its context length. */
export function modelDefaults(model: ModelObject | undefined): Hyperparameters {
  if (model?.default_hyperparameters !== undefined) return model.default_hyperparameters;
  const defaults = { ...GENERAL_DEFAULTS, lora_target_modules: [...GENERAL_DEFAULTS.lora_target_modules] };
  if (model?.context_length !== undefined) defaults.max_seq_length = Math.min(defaults.max_seq_length, model.context_length);
  return defaults;
}

/** Whether the form offers full fine-tuning for a model: the backend allows it for its built-in tiny models only. */
export function allowsFullFineTuning(model: ModelObject | undefined): boolean {
  return model !== undefined && model.id.startsWith('tiny-');
}

/** A number as the form writes it: short, exact enough to give the same value back. */
export function numberText(value: number): string {
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential().replace(/\.?0+e/, 'e');
  return String(value);
}

/** Hyper-parameters as the fields' text (seed empty: the backend chooses). */
export function settingsText(h: Hyperparameters, seed?: number | null): Record<SettingKey, string> {
  return {
    training_type: h.training_type,
    n_epochs: numberText(h.n_epochs),
    learning_rate: numberText(h.learning_rate),
    batch_size: numberText(h.batch_size),
    max_seq_length: numberText(h.max_seq_length),
    warmup_ratio: numberText(h.warmup_ratio),
    lr_scheduler: h.lr_scheduler,
    lora_r: numberText(h.lora_r),
    lora_alpha: numberText(h.lora_alpha),
    lora_dropout: numberText(h.lora_dropout),
    lora_target_modules: h.lora_target_modules.join(','),
    checkpoints: numberText(h.checkpoints),
    eval_ratio: numberText(h.eval_ratio),
    seed: seed === undefined || seed === null ? '' : String(seed),
  };
}

/**
 * The values the host gave the webview at each recent revision (what the webview took then), so that values the
 * webview sent before it took the host's latest are merged rather than taken: what the user edited since that
 * revision stays, and the host's own changes made meanwhile (a dataset picked in the dialog, a model's defaults)
 * are not undone. The other direction of webview/newRun/edits.ts.
 */
export class PostedValues {
  private readonly byRevision = new Map<number, FormValues>();

  constructor(private readonly keep = 16) {}

  /** The view of `revision` is being posted with these values (only the first post of a revision counts). */
  posted(revision: number, values: FormValues): void {
    if (this.byRevision.has(revision)) return;
    this.byRevision.set(revision, structuredClone(values));
    for (const old of this.byRevision.keys()) {
      if (this.byRevision.size <= this.keep) break;
      this.byRevision.delete(old);
    }
  }

  /** The values to take from the webview, which sent `sent` while it showed `revision`; the host is at `current`. */
  fromWebview(sent: FormValues, revision: number, currentRevision: number, current: FormValues): FormValues {
    const seen = revision < currentRevision ? this.byRevision.get(revision) : undefined;
    return seen === undefined ? sent : keepEdits(seen, sent, current);
  }
}

/** An empty form (no backend or model chosen yet), with the general defaults. */
export function emptyValues(): FormValues {
  return { name: '', backend: '', model: '', gpus: '1', dataset: null, settings: settingsText(GENERAL_DEFAULTS), touched: [], moreOpen: false };
}

/** After a change of model: the fields the user did not touch take the new model's defaults. */
export function applyModelDefaults(values: FormValues, model: ModelObject | undefined): FormValues {
  const defaults = settingsText(modelDefaults(model));
  const settings = { ...values.settings };
  for (const key of SETTING_KEYS) if (key !== 'seed' && !values.touched.includes(key)) settings[key] = defaults[key];
  if (!allowsFullFineTuning(model)) settings.training_type = 'lora';
  return { ...values, settings };
}

/** A text field's number, or undefined when it is not one (JavaScript's Number() takes "", " " and "0x10"). */
export function parseNumber(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

function rangeText(range: Range): string {
  return range.minExclusive ? l10n.t('greater than {0} and at most {1}', range.min, range.max) : l10n.t('from {0} to {1}', range.min, range.max);
}

/** The error of a number field's text against a range, or undefined when it is fine. */
export function checkNumber(text: string, range: Range): string | undefined {
  const value = parseNumber(text);
  if (value === undefined) return range.integer ? l10n.t('Enter a whole number {0}.', rangeText(range)) : l10n.t('Enter a number {0}.', rangeText(range));
  if (range.integer && !Number.isInteger(value)) return l10n.t('Enter a whole number {0}.', rangeText(range));
  const low = range.minExclusive ? value <= range.min : value < range.min;
  if (low || value > range.max) return l10n.t('Must be {0}; {1} is not.', rangeText(range), text.trim());
  return undefined;
}

/** The target modules of the field's text (comma-separated), in the order given. */
export function parseTargets(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/** What validation needs to know beyond the values. */
export interface ValidationContext {
  /** The chosen model, when the backend's list is known. */
  model: ModelObject | undefined;
  /** The model ids the backend offers (empty while loading: no model error then). */
  modelIds: readonly string[];
  /** The most GPUs a job may use (0: a CPU-only backend). */
  maxGpus: number;
}

/** Errors per field of the values, as the user types: the backend's ranges, and what depends on the model. */
export function validateValues(values: FormValues, context: ValidationContext): Partial<Record<FieldKey, string>> {
  const errors: Partial<Record<FieldKey, string>> = {};
  const s = values.settings;
  if (values.name.length > SUFFIX_MAX) errors.name = l10n.t('At most {0} characters.', SUFFIX_MAX);
  else if (!SUFFIX_RE.test(values.name)) errors.name = l10n.t('Only letters, digits, "_", "." and "-".');
  if (values.backend === '') errors.backend = l10n.t('Choose a backend.');
  if (values.model === '') errors.model = l10n.t('Choose a base model.');
  else if (context.modelIds.length > 0 && !context.modelIds.includes(values.model)) errors.model = l10n.t('The backend has no model {0}.', values.model);
  else if (context.model?.available === false) errors.model = l10n.t('{0} is not available: {1}', context.model.id, context.model.unavailable_reason ?? '');
  if (values.dataset === null) errors.dataset = l10n.t('Choose a training file.');
  const gpus = parseNumber(values.gpus);
  if (gpus === undefined || !Number.isInteger(gpus) || gpus < 0 || gpus > Math.max(context.maxGpus, 0) || (context.maxGpus > 0 && gpus === 0)) {
    errors.gpus = context.maxGpus === 0 ? l10n.t('This backend trains on the CPU.') : l10n.t('Choose from 1 to {0} GPUs.', context.maxGpus);
  }
  for (const key of Object.keys(RANGES) as (keyof typeof RANGES)[]) {
    const error = checkNumber(s[key], RANGES[key]);
    if (error !== undefined) errors[key] = error;
  }
  const contextLength = context.model?.context_length ?? modelDefaults(context.model).max_seq_length;
  const seqError = checkNumber(s.max_seq_length, { min: MIN_SEQ_LENGTH, max: Math.max(contextLength, MIN_SEQ_LENGTH), integer: true });
  if (seqError !== undefined) errors.max_seq_length = seqError;
  if (!(LR_SCHEDULERS as readonly string[]).includes(s.lr_scheduler)) errors.lr_scheduler = l10n.t('Choose one of {0}.', LR_SCHEDULERS.join(', '));
  if (!(TRAINING_TYPES as readonly string[]).includes(s.training_type)) errors.training_type = l10n.t('Choose one of {0}.', TRAINING_TYPES.join(', '));
  else if (s.training_type === 'full' && !allowsFullFineTuning(context.model)) errors.training_type = l10n.t('Full fine-tuning is offered for the built-in tiny models only.');
  const targets = parseTargets(s.lora_target_modules);
  const unknown = targets.find((t) => !(LORA_TARGET_MODULES as readonly string[]).includes(t));
  if (targets.length === 0) errors.lora_target_modules = l10n.t('Choose at least one module.');
  else if (unknown !== undefined) errors.lora_target_modules = l10n.t('{0} is not one of {1}.', unknown, LORA_TARGET_MODULES.join(', '));
  else if (new Set(targets).size !== targets.length) errors.lora_target_modules = l10n.t('A module is named twice.');
  if (s.seed.trim() !== '') {
    const seedError = checkNumber(s.seed, { min: 0, max: SEED_MAX, integer: true });
    if (seedError !== undefined) errors.seed = seedError;
  }
  return errors;
}

/** The hyper-parameters the user set that differ from the model's defaults: what the create request sends. */
export function changedHyperparameters(values: FormValues, defaults: Hyperparameters): HyperparametersInput {
  const s = values.settings;
  const input: HyperparametersInput = {};
  const numeric = ['n_epochs', 'batch_size', 'learning_rate', 'max_seq_length', 'warmup_ratio', 'lora_r', 'lora_alpha', 'lora_dropout', 'checkpoints', 'eval_ratio'] as const;
  for (const key of numeric) {
    const value = parseNumber(s[key]);
    if (value !== undefined && value !== defaults[key]) input[key] = value;
  }
  if (s.lr_scheduler !== defaults.lr_scheduler) input.lr_scheduler = s.lr_scheduler as Hyperparameters['lr_scheduler'];
  if (s.training_type !== defaults.training_type) input.training_type = s.training_type as Hyperparameters['training_type'];
  const targets = parseTargets(s.lora_target_modules);
  const same = targets.length === defaults.lora_target_modules.length && targets.every((t) => defaults.lora_target_modules.includes(t as LoraTargetModule));
  if (!same) input.lora_target_modules = targets as LoraTargetModule[];
  return input;
}

/** The create request of valid values: the model, the uploaded file, the name as suffix, and only what changed. */
export function buildCreateRequest(values: FormValues, defaults: Hyperparameters, trainingFile: string): CreateJobRequest {
  const request: CreateJobRequest = { model: values.model, training_file: trainingFile };
  const hyperparameters = changedHyperparameters(values, defaults);
  request.method = Object.keys(hyperparameters).length > 0 ? { type: 'supervised', supervised: { hyperparameters } } : { type: 'supervised' };
  if (values.name.trim() !== '') request.suffix = values.name.trim();
  const seed = parseNumber(values.settings.seed);
  if (values.settings.seed.trim() !== '' && seed !== undefined) request.seed = seed;
  const gpus = parseNumber(values.gpus);
  if (gpus !== undefined) request.gpus = gpus;
  return request;
}

/**
 * The form field that a backend's refusal names (`param` as a dotted path: `method.supervised.hyperparameters.lora_r`,
 * `hyperparameters.n_epochs`, `training_file`, `suffix`, …), or undefined when it names none of them.
 */
export function fieldOfParam(param: string | null | undefined): FieldKey | undefined {
  if (param === null || param === undefined) return undefined;
  const last = param.split('.').pop() ?? '';
  const direct: Record<string, FieldKey> = { suffix: 'name', model: 'model', training_file: 'dataset', gpus: 'gpus', seed: 'seed', learning_rate_multiplier: 'learning_rate' };
  if (direct[last] !== undefined) return direct[last];
  return (SETTING_KEYS as readonly string[]).includes(last) ? (last as FieldKey) : undefined;
}

/** The dataset numbers the summary needs (from the host's check of the file). */
export interface DatasetNumbers {
  /** Examples training would use (no errors). */
  validExamples: number;
  /** Sum of the rendered lengths of the valid examples, in tokens. */
  tokens: number;
  /**
   * Rendered lengths of the counted examples, ascending (all of them, or a sample: `validExamples / lengths.length`
   * scales what they say).
   */
  lengths: readonly number[];
}

/** Examples longer than `maxSeqLength` (scaled up when the lengths are a sample). */
export function overLengthCount(numbers: DatasetNumbers, maxSeqLength: number): number {
  const n = numbers.lengths.length;
  if (n === 0) return 0;
  let low = 0;
  let high = n;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (numbers.lengths[mid] <= maxSeqLength) low = mid + 1;
    else high = mid;
  }
  return Math.round(((n - low) * numbers.validExamples) / n);
}

/** What a run of these settings will do, as the engines plan it (backend/engines/embedded/schedule.ts). */
export interface RunPlanNumbers {
  trainExamples: number;
  evalExamples: number;
  stepsPerEpoch: number;
  totalSteps: number;
  checkpoints: number;
  /** Tokens trained on per epoch, after truncation to the maximum sequence length. */
  tokensPerEpoch: number;
}

/**
 * The plan of a run: the eval split is `round(examples × eval_ratio)`, at least 1 and leaving at least 1 (when
 * there are 2 examples or more); steps per epoch `ceil(train / batch)`; checkpoints at most one per step.
 */
export function planNumbers(numbers: DatasetNumbers, h: Pick<Hyperparameters, 'n_epochs' | 'batch_size' | 'eval_ratio' | 'checkpoints' | 'max_seq_length'>): RunPlanNumbers {
  const examples = numbers.validExamples;
  const evalExamples = h.eval_ratio > 0 && examples >= 2 ? Math.min(examples - 1, Math.max(1, Math.round(examples * h.eval_ratio))) : 0;
  const trainExamples = examples - evalExamples;
  const stepsPerEpoch = Math.ceil(trainExamples / h.batch_size);
  const totalSteps = stepsPerEpoch * h.n_epochs;
  const checkpoints = Math.max(totalSteps > 0 ? 1 : 0, Math.min(h.checkpoints, totalSteps));
  let capped = 0;
  for (const length of numbers.lengths) capped += Math.min(length, h.max_seq_length);
  const perExample = numbers.lengths.length > 0 ? capped / numbers.lengths.length : examples > 0 ? numbers.tokens / examples : 0;
  return { trainExamples, evalExamples, stepsPerEpoch, totalSteps, checkpoints, tokensPerEpoch: Math.round(perExample * trainExamples) };
}

/** A count with thousands separators. */
export function countText(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Bytes as GB/MB with one decimal (memory a model needs). */
export function bytesText(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A parameter count as 0.5B / 6.2M. */
export function parametersText(parameters: number): string {
  if (parameters >= 1e9) return `${(parameters / 1e9).toFixed(1)}B`;
  if (parameters >= 1e6) return `${(parameters / 1e6).toFixed(1)}M`;
  return `${(parameters / 1e3).toFixed(1)}K`;
}

/**
 * Seconds the training steps of a run take at a measured rate: tokens per epoch × epochs ÷ tokens a second.
 * Undefined without a usable rate. Evaluation and checkpoint samples are not counted: they are a small share.
 */
export function estimatedSeconds(plan: Pick<RunPlanNumbers, 'tokensPerEpoch'>, epochs: number, tokensPerSecond: number | undefined): number | undefined {
  if (tokensPerSecond === undefined || !Number.isFinite(tokensPerSecond) || tokensPerSecond <= 0) return undefined;
  return (plan.tokensPerEpoch * epochs) / tokensPerSecond;
}

/** A duration as the summary says it: whole minutes (at least 1), with hours from 90 minutes on. */
export function durationText(seconds: number): string {
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 90) return l10n.t('about {0} min', countText(minutes));
  return l10n.t('about {0} h {1} min', countText(Math.floor(minutes / 60)), String(minutes % 60));
}

/** The summary's "Duration" row: from the backend's measured throughput of this model, or why there is none. */
function durationRow(plan: RunPlanNumbers, epochs: number, tokensKnown: boolean, tokensPerSecond: number | undefined): string {
  if (tokensPerSecond === undefined) return l10n.t('no estimate yet (no run of this model on this backend)');
  if (!tokensKnown) return l10n.t('no estimate (the file\'s tokens are not counted here)');
  const seconds = estimatedSeconds(plan, epochs, tokensPerSecond);
  if (seconds === undefined) return l10n.t('no estimate yet (no run of this model on this backend)');
  return l10n.t('{0} (from this backend\'s recent runs of this model)', durationText(seconds));
}

/**
 * The summary's rows for valid settings on a checked dataset; why there is none otherwise. `tokensPerSecond` is the
 * base model's `measured_tokens_per_second` on the backend, when it has one.
 */
export function summaryView(numbers: DatasetNumbers | undefined, values: FormValues, estimated: boolean, tokensPerSecond?: number): SummaryView {
  // A file on the backend (a rerun) has its count of examples but no token counts here.
  const tokensKnown = numbers === undefined || numbers.lengths.length > 0 || numbers.tokens > 0;
  const s = values.settings;
  const parsed = {
    n_epochs: parseNumber(s.n_epochs),
    batch_size: parseNumber(s.batch_size),
    eval_ratio: parseNumber(s.eval_ratio),
    checkpoints: parseNumber(s.checkpoints),
    max_seq_length: parseNumber(s.max_seq_length),
  };
  if (numbers === undefined) return { rows: [{ label: l10n.t('Dataset'), value: l10n.t('not checked yet') }] };
  if (Object.values(parsed).some((v) => v === undefined || v < 0) || (parsed.batch_size ?? 0) < 1) {
    return { rows: [{ label: l10n.t('Settings'), value: l10n.t('fix the settings marked above') }] };
  }
  const plan = planNumbers(numbers, parsed as { [K in keyof typeof parsed]: number });
  const approx = estimated ? '≈ ' : '';
  return {
    rows: [
      { label: l10n.t('Training examples'), value: l10n.t('{0} (+ {1} held out for evaluation)', countText(plan.trainExamples), countText(plan.evalExamples)) },
      { label: l10n.t('Steps per epoch'), value: countText(plan.stepsPerEpoch) },
      { label: l10n.t('Total steps'), value: countText(plan.totalSteps) },
      { label: l10n.t('Checkpoints'), value: countText(plan.checkpoints) },
      { label: l10n.t('Tokens per epoch'), value: tokensKnown ? approx + countText(plan.tokensPerEpoch) : l10n.t('not counted (the file is on the backend)') },
      { label: l10n.t('Duration'), value: durationRow(plan, parsed.n_epochs ?? 0, tokensKnown, tokensPerSecond) },
    ],
  };
}

/** The form of a rerun: every field from the job, its file offered by id (its name when known). */
export function prefillFromJob(job: FineTuningJob, backend: string, model: ModelObject | undefined, file: { filename: string; examples: number } | undefined): FormValues {
  const h = job.hyperparameters;
  const defaults = modelDefaults(model);
  const settings = settingsText(h, job.seed);
  // Fields the run set differently from the model's defaults count as touched: a change of model keeps them.
  const current = settingsText(defaults);
  const touched = SETTING_KEYS.filter((key) => key !== 'seed' && settings[key] !== current[key]);
  const dataset: DatasetChoice = file === undefined ? { kind: 'remote', fileId: job.training_file, filename: job.training_file } : { kind: 'remote', fileId: job.training_file, filename: file.filename, examples: file.examples };
  return {
    name: job.user_provided_suffix ?? job.suffix ?? '',
    backend,
    model: job.model,
    gpus: String(job.gpus),
    dataset,
    settings,
    touched,
    moreOpen: true,
  };
}
