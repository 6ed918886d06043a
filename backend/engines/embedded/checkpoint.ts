// A checkpoint folder, `{output_dir}/checkpoints/step-{N}/`. A LoRA run's holds the adapter in peft's files
// (`adapter_config.json`, `adapter_model.safetensors`), which peft, vLLM and the torch engine load; a full
// fine-tuning run's holds the whole model as a transformers model folder (`config.json`, `model.safetensors`,
// and the base model's tokenizer files), which `from_pretrained` loads. Both hold the embedded engine's resume
// state (`trainer_state.json`, `optimizer.safetensors`). The folder is written under a temporary name and
// renamed into place, so a folder with the final name is always complete.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Hyperparameters, LoraTargetModule } from '../../../common/api';
import { EngineError, oneLine } from './errors';
import type { Qwen2Model } from './model/qwen2';
import { readSafetensors, writeSafetensors, type Tensor } from './model/safetensors';

/** Copied from the base model's folder into a full checkpoint when there, so that the folder loads on its own. */
const MODEL_SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'] as const;

/** Marks a trainer_state.json as this engine's, so that another engine's checkpoint is refused clearly. */
const STATE_FORMAT = 'finetune-studio-embedded';
const STATE_VERSION = 1;

/** What a resumed run needs besides the adapter and the optimizer moments. */
export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: number;
  base_model: string;
  /** The last optimizer step done. */
  step: number;
  total_steps: number;
  /** Fractional epoch at `step`. */
  epoch: number;
  seed: number;
  /** The dropout RNG's state after `step`. */
  rng: number[];
  /** Sequence tokens of the steps done so far. */
  trained_tokens: number;
  train_examples: number;
  /** The order of the training examples in the epoch `step` belongs to (the rest of it is trained in this order). */
  data_order: number[];
  hyperparameters: Hyperparameters;
  /** The metrics at `step`. */
  train_loss: number;
  train_mean_token_accuracy: number;
  valid_loss: number | null;
  valid_mean_token_accuracy: number | null;
}

/** The moments of AdamW, one pair per trainable parameter (by name), and its step count. */
export interface OptimizerState {
  step: number;
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
}

/** A LoRA checkpoint's adapter. */
export interface LoraWeights {
  kind: 'lora';
  adapterConfig: Record<string, unknown>;
  /** peft key names (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, …). */
  adapter: Map<string, Tensor>;
}

/** What a checkpoint of a full fine-tuning run is written from: the trained model, and the base's folder for its tokenizer files. */
export interface FullWeightsToWrite {
  kind: 'full';
  model: Qwen2Model;
  baseFolder: string;
}

/** A full fine-tuning checkpoint as read back: its folder is a model folder that Qwen2Model.load takes. */
export interface StoredFullWeights {
  kind: 'full';
  folder: string;
}

/** What a checkpoint folder holds. */
export interface Checkpoint<W = LoraWeights | StoredFullWeights> {
  weights: W;
  state: TrainerState;
  optimizer: OptimizerState;
}

/** Whether a checkpoint folder holds a whole model (full fine-tuning) rather than a LoRA adapter. */
export function isFullCheckpoint(folder: string): boolean {
  return !existsSync(join(folder, 'adapter_config.json')) && existsSync(join(folder, 'config.json')) && existsSync(join(folder, 'model.safetensors'));
}

/** The folder of the checkpoint after step `step`. */
export function checkpointPath(outputDir: string, step: number): string {
  return join(outputDir, 'checkpoints', `step-${step}`);
}

/** The LoRA settings of an adapter folder, as the model's `loadLora` takes them. */
export interface AdapterSettings {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: LoraTargetModule[];
}

/** peft's adapter_config.json for a LoRA adapter on a causal language model. */
export function adapterConfig(baseModel: string, lora: AdapterSettings): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: lora.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...lora.targetModules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/**
 * Reads the LoRA settings of an adapter_config.json (ours or peft's).
 * @throws EngineError `model_unavailable` when the file is missing or not a LoRA config this engine can apply
 */
export async function readAdapterSettings(folder: string): Promise<AdapterSettings> {
  const path = join(folder, 'adapter_config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new EngineError('model_unavailable', `cannot read ${path}: ${oneLine(e)}`);
  }
  const c = (typeof config === 'object' && config !== null ? config : {}) as Record<string, unknown>;
  const targets = c.target_modules;
  if (c.peft_type !== 'LORA' || typeof c.r !== 'number' || typeof c.lora_alpha !== 'number' || !Array.isArray(targets)) {
    throw new EngineError('model_unavailable', `${path}: not a LoRA adapter config (peft_type "LORA", r, lora_alpha, target_modules as a list)`);
  }
  if (c.use_dora === true || c.use_rslora === true) {
    throw new EngineError('model_unavailable', `${path}: DoRA and rsLoRA adapters are not supported by the embedded engine`);
  }
  return {
    r: c.r,
    alpha: c.lora_alpha,
    dropout: typeof c.lora_dropout === 'number' ? c.lora_dropout : 0,
    targetModules: targets.filter((t): t is LoraTargetModule => typeof t === 'string') ,
  };
}

function optimizerTensors(o: OptimizerState): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, { m, v }] of o.moments) {
    out.set(`${name}.exp_avg`, { shape: [m.length], data: m });
    out.set(`${name}.exp_avg_sq`, { shape: [v.length], data: v });
  }
  return out;
}

/**
 * Writes a checkpoint folder: into a temporary sibling first, then renamed to `path` (replacing a folder of the
 * same step left by an interrupted run that had got further than the checkpoint it resumed from).
 */
export async function writeCheckpoint(path: string, c: Checkpoint<LoraWeights | FullWeightsToWrite>): Promise<void> {
  const parent = dirname(path);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(tmp);
    const w = c.weights;
    if (w.kind === 'lora') {
      await writeFile(join(tmp, 'adapter_config.json'), JSON.stringify(w.adapterConfig, null, 2) + '\n');
      await writeSafetensors(join(tmp, 'adapter_model.safetensors'), w.adapter, { format: 'pt' });
    } else {
      await w.model.save(tmp);
      for (const name of MODEL_SIDE_FILES) {
        const from = join(w.baseFolder, name);
        if (existsSync(from)) await copyFile(from, join(tmp, name));
      }
    }
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), optimizerTensors(c.optimizer), { step: String(c.optimizer.step) });
    await writeFile(join(tmp, 'trainer_state.json'), JSON.stringify(c.state) + '\n');
    await rm(path, { recursive: true, force: true });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

function isState(v: unknown): v is TrainerState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return (
    s.format === STATE_FORMAT &&
    typeof s.step === 'number' &&
    typeof s.total_steps === 'number' &&
    typeof s.seed === 'number' &&
    Array.isArray(s.rng) &&
    Array.isArray(s.data_order) &&
    typeof s.trained_tokens === 'number' &&
    typeof s.train_examples === 'number'
  );
}

/**
 * Reads a checkpoint folder with its resume state.
 * @throws EngineError `engine_error` when a file is missing or is not this engine's
 */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const fail = (what: string): EngineError => new EngineError('engine_error', `cannot resume from ${path}: ${what}`);
  const full = isFullCheckpoint(path);
  let state: unknown;
  let adapterConfigJson: unknown;
  try {
    state = JSON.parse(await readFile(join(path, 'trainer_state.json'), 'utf8'));
    if (!full) adapterConfigJson = JSON.parse(await readFile(join(path, 'adapter_config.json'), 'utf8'));
  } catch (e) {
    throw fail(oneLine(e));
  }
  if (!isState(state)) throw fail('trainer_state.json is not the embedded engine\'s resume state');
  if (state.version !== STATE_VERSION) throw fail(`trainer_state.json has version ${state.version}, this engine writes ${STATE_VERSION}`);
  try {
    const weights: LoraWeights | StoredFullWeights = full
      ? { kind: 'full', folder: path }
      : { kind: 'lora', adapterConfig: adapterConfigJson as Record<string, unknown>, adapter: await readSafetensors(join(path, 'adapter_model.safetensors')) };
    const raw = await readSafetensors(join(path, 'optimizer.safetensors'));
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const [key, t] of raw) {
      const at = key.lastIndexOf('.');
      const name = key.slice(0, at);
      const entry = moments.get(name) ?? { m: new Float32Array(0), v: new Float32Array(0) };
      if (key.endsWith('.exp_avg')) entry.m = t.data;
      else if (key.endsWith('.exp_avg_sq')) entry.v = t.data;
      else throw fail(`optimizer.safetensors has an unexpected tensor ${key}`);
      moments.set(name, entry);
    }
    return {
      weights,
      state,
      optimizer: { step: state.step, moments },
    };
  } catch (e) {
    if (EngineError.is(e)) throw e;
    throw fail(oneLine(e));
  }
}
