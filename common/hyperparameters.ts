// The hyper-parameters' general defaults and ranges, declared once: the backend refuses what is out of range
// (backend/hyperparameters.ts) and the New Training Run form validates as the user types (src/newRunModel.ts),
// so the form can never accept what the backend refuses, nor the reverse.
import { LORA_TARGET_MODULES, type Hyperparameters } from './api';

/**
 * What a job gets when neither the request nor the model says otherwise: the common LoRA choices (TRAINING.md:
 * rank 16, alpha 2 × rank, all seven projections, cosine schedule with a short warm-up).
 */
export const GENERAL_DEFAULTS: Readonly<Hyperparameters> = {
  n_epochs: 3,
  batch_size: 8,
  learning_rate: 1e-4,
  learning_rate_multiplier: 1,
  max_seq_length: 2048,
  warmup_ratio: 0.05,
  lr_scheduler: 'cosine',
  training_type: 'lora',
  lora_r: 16,
  lora_alpha: 32,
  lora_dropout: 0.05,
  lora_target_modules: [...LORA_TARGET_MODULES],
  checkpoints: 3,
  eval_ratio: 0.1,
};

/** A numeric range, inclusive unless `minExclusive`. */
export interface Range {
  min: number;
  max: number;
  integer: boolean;
  minExclusive?: boolean;
}

/** The ranges of the numeric hyper-parameters (`max_seq_length`'s top is the model's context length). */
export const RANGES = {
  n_epochs: { min: 1, max: 100, integer: true },
  batch_size: { min: 1, max: 1024, integer: true },
  learning_rate: { min: 0, max: 1, integer: false, minExclusive: true },
  learning_rate_multiplier: { min: 0, max: 100, integer: false, minExclusive: true },
  warmup_ratio: { min: 0, max: 0.5, integer: false },
  lora_r: { min: 1, max: 256, integer: true },
  lora_alpha: { min: 0, max: 1024, integer: false, minExclusive: true },
  lora_dropout: { min: 0, max: 0.5, integer: false },
  checkpoints: { min: 1, max: 100, integer: true },
  eval_ratio: { min: 0, max: 0.5, integer: false },
} as const satisfies Record<string, Range>;

/** The shortest maximum sequence length a job may ask for. */
export const MIN_SEQ_LENGTH = 16;

/** The largest seed a job may ask for (a job's seed is a non-negative 32-bit signed integer). */
export const SEED_MAX = 2147483647;
