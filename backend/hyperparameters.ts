// The hyper-parameters of a job: the general defaults, each base model's own (catalog.ts), OpenAI's "auto",
// and the ranges. A create request gives any subset; the job object shows every value used. The schema
// (common/apiSchemas.ts) has already checked the types; this file checks the values and what depends on the
// model (its context length, its default learning rate).
import type { Hyperparameters, HyperparametersInput, LoraTargetModule } from '../common/api';
import { LORA_TARGET_MODULES } from '../common/api';
import { GENERAL_DEFAULTS, MIN_SEQ_LENGTH, RANGES, type Range } from '../common/hyperparameters';

export { GENERAL_DEFAULTS, MIN_SEQ_LENGTH, RANGES } from '../common/hyperparameters';

/** A value out of its range; `param` is the field's name inside `hyperparameters`. */
export class HyperparameterError extends Error {
  readonly reason = 'invalid_value';
  constructor(
    readonly param: keyof Hyperparameters,
    message: string,
  ) {
    super(message);
    this.name = 'HyperparameterError';
  }

  static is(e: unknown): e is HyperparameterError {
    return e instanceof HyperparameterError;
  }
}

/** What a base model allows beyond its defaults. */
export interface ModelCapabilities {
  /** Every weight may be trained (`training_type: full`): the built-in tiny models only. */
  fullFineTuning: boolean;
}

/** The defaults of a base model: the general ones, the model's own, the sequence length capped by its context. */
export function modelDefaults(own: Partial<Hyperparameters>, contextLength: number): Hyperparameters {
  const merged: Hyperparameters = { ...GENERAL_DEFAULTS, ...own, lora_target_modules: [...(own.lora_target_modules ?? GENERAL_DEFAULTS.lora_target_modules)] };
  merged.max_seq_length = Math.min(merged.max_seq_length, contextLength);
  if (own.lora_alpha === undefined) merged.lora_alpha = 2 * merged.lora_r;
  merged.learning_rate_multiplier = 1;
  return merged;
}

function checkRange(name: keyof typeof RANGES, value: number): void {
  const range: Range = RANGES[name];
  const low = range.minExclusive ? value <= range.min : value < range.min;
  if (!Number.isFinite(value) || low || value > range.max || (range.integer && !Number.isInteger(value))) {
    const span = `${range.minExclusive ? `greater than ${range.min}` : `at least ${range.min}`} and at most ${range.max}`;
    throw new HyperparameterError(name, `${name} must be ${range.integer ? 'a whole number' : 'a number'} ${span}, got ${value}.`);
  }
}

/**
 * The values a job uses: the request's (`input`, method's and top-level merged by the caller) over the model's
 * defaults. `learning_rate` wins over `learning_rate_multiplier`; without it, the multiplier scales the model's
 * default rate. `lora_alpha` defaults to 2 × `lora_r` when the rank is given. `eval_ratio` defaults to 0 when
 * there is a validation file. Throws HyperparameterError for a value out of range.
 */
export function resolveHyperparameters(
  input: HyperparametersInput,
  defaults: Hyperparameters,
  contextLength: number,
  hasValidationFile: boolean,
  capabilities: ModelCapabilities = { fullFineTuning: false },
): Hyperparameters {
  const pick = <K extends 'n_epochs' | 'batch_size' | 'learning_rate_multiplier'>(key: K): number => {
    const value = input[key];
    return value === undefined || value === 'auto' ? defaults[key] : value;
  };
  const n_epochs = pick('n_epochs');
  const batch_size = pick('batch_size');
  checkRange('n_epochs', n_epochs);
  checkRange('batch_size', batch_size);

  let learning_rate: number;
  let learning_rate_multiplier: number;
  if (input.learning_rate !== undefined) {
    checkRange('learning_rate', input.learning_rate);
    learning_rate = input.learning_rate;
    learning_rate_multiplier = learning_rate / defaults.learning_rate;
  } else {
    learning_rate_multiplier = pick('learning_rate_multiplier');
    checkRange('learning_rate_multiplier', learning_rate_multiplier);
    learning_rate = defaults.learning_rate * learning_rate_multiplier;
    if (learning_rate > RANGES.learning_rate.max) {
      throw new HyperparameterError('learning_rate_multiplier', `learning_rate_multiplier ${learning_rate_multiplier} gives a learning rate of ${learning_rate} (the model's default is ${defaults.learning_rate}); the most is 1.`);
    }
  }

  const max_seq_length = input.max_seq_length ?? defaults.max_seq_length;
  if (!Number.isInteger(max_seq_length) || max_seq_length < MIN_SEQ_LENGTH || max_seq_length > contextLength) {
    throw new HyperparameterError('max_seq_length', `max_seq_length must be a whole number from ${MIN_SEQ_LENGTH} to the model's context length ${contextLength}, got ${max_seq_length}.`);
  }

  const training_type = input.training_type ?? defaults.training_type;
  if (training_type === 'full' && !capabilities.fullFineTuning) {
    throw new HyperparameterError(
      'training_type',
      "training_type 'full' is offered for the built-in tiny models only: full fine-tuning keeps a gradient and two optimizer moments for every weight of the model, which a larger model's memory does not hold. Use 'lora' (the default) for this model.",
    );
  }

  const lora_r = input.lora_r ?? defaults.lora_r;
  checkRange('lora_r', lora_r);
  const lora_alpha = input.lora_alpha ?? (input.lora_r !== undefined ? 2 * lora_r : defaults.lora_alpha);
  checkRange('lora_alpha', lora_alpha);

  const lora_target_modules: LoraTargetModule[] = input.lora_target_modules ?? [...defaults.lora_target_modules];
  if (lora_target_modules.length === 0) throw new HyperparameterError('lora_target_modules', `lora_target_modules must name at least one of ${LORA_TARGET_MODULES.join(', ')}.`);
  const unknown = lora_target_modules.find((m) => !(LORA_TARGET_MODULES as readonly string[]).includes(m));
  if (unknown !== undefined) throw new HyperparameterError('lora_target_modules', `lora_target_modules: '${String(unknown)}' is not one of ${LORA_TARGET_MODULES.join(', ')}.`);
  const twice = lora_target_modules.find((m, i) => lora_target_modules.indexOf(m) !== i);
  if (twice !== undefined) throw new HyperparameterError('lora_target_modules', `lora_target_modules names '${twice}' twice.`);

  const resolved: Hyperparameters = {
    n_epochs,
    batch_size,
    learning_rate,
    learning_rate_multiplier,
    max_seq_length,
    warmup_ratio: input.warmup_ratio ?? defaults.warmup_ratio,
    lr_scheduler: input.lr_scheduler ?? defaults.lr_scheduler,
    training_type,
    lora_r,
    lora_alpha,
    lora_dropout: input.lora_dropout ?? defaults.lora_dropout,
    lora_target_modules,
    checkpoints: input.checkpoints ?? defaults.checkpoints,
    eval_ratio: input.eval_ratio ?? (hasValidationFile ? 0 : defaults.eval_ratio),
  };
  checkRange('warmup_ratio', resolved.warmup_ratio);
  checkRange('lora_dropout', resolved.lora_dropout);
  checkRange('checkpoints', resolved.checkpoints);
  checkRange('eval_ratio', resolved.eval_ratio);
  return resolved;
}
