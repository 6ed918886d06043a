// A fine-tuning job as a backend lists it, for the extension's pure tests (runs tree, sidebar text, chat picks):
// a small LoRA job of the built-in tiny model, every field set, `extra` on top.
import type { FineTuningJob, JobStatus } from '../common/api';

/** The job id the fixtures use unless told otherwise. */
export const FIXTURE_JOB_ID = 'ftjob-abcdefghijklmnopqrstuvwx';

/** A job in `status` (queued, not started, no progress) with `extra` fields replacing the defaults. */
export function fixtureJob(status: JobStatus, extra: Partial<FineTuningJob> = {}): FineTuningJob {
  const h = {
    n_epochs: 1, batch_size: 4, learning_rate: 0.002, learning_rate_multiplier: 1, max_seq_length: 512, warmup_ratio: 0.05,
    lr_scheduler: 'cosine' as const, training_type: 'lora' as const, lora_r: 16, lora_alpha: 32, lora_dropout: 0,
    lora_target_modules: ['q_proj' as const], checkpoints: 2, eval_ratio: 0,
  };
  return {
    id: FIXTURE_JOB_ID, object: 'fine_tuning.job', created_at: 1000, finished_at: null, model: 'tiny-qwen2-1m', fine_tuned_model: null,
    organization_id: 'org', status, training_file: 'file-x', validation_file: null, hyperparameters: h,
    method: { type: 'supervised', supervised: { hyperparameters: h } }, result_files: [], trained_tokens: null, error: null,
    seed: 7, suffix: null, metadata: null, estimated_finish: null, integrations: [], user_provided_suffix: null,
    started_at: null, queue_position: null, engine: 'embedded', gpus: 0, progress: null, last_event_seq: 0, ...extra,
  };
}
