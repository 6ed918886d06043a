// The torch engine's catalogue (issue 8): the Qwen2.5 Instruct models it trains, with their shapes (their
// config.json values, so that the memory LoRA needs in bf16 is known before anything is downloaded) and where
// a model is found on this machine: a folder under the backend's `{data}/models/` (`Qwen/Qwen2.5-7B-Instruct`)
// or a snapshot in the Hugging Face cache (`$HF_HOME/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/<rev>/`,
// HF_HOME defaulting to ~/.cache/huggingface, HF_HUB_CACHE overriding the hub folder). The engine downloads a
// model only when the backend runs with `--allow-downloads` (finetune_torch/hub.py, which looks in the same places).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Qwen2Config } from '../embedded/catalog';

/** One Qwen2.5 Instruct size. */
export interface QwenModel {
  /** The hub id, also the id in `/v1/models`. */
  id: string;
  /** Shown in the model picker. */
  description: string;
  config: Qwen2Config;
}

function qwenConfig(vocab: number, hidden: number, intermediate: number, layers: number, heads: number, kvHeads: number, tied: boolean): Qwen2Config {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: 32768,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: tied,
    hidden_act: 'silu',
    bos_token_id: 151643,
    eos_token_id: 151645,
    torch_dtype: 'bfloat16',
    attention_dropout: 0,
    use_sliding_window: false,
  };
}

/** Smallest first. */
export const QWEN_MODELS: readonly QwenModel[] = [
  { id: 'Qwen/Qwen2.5-0.5B-Instruct', description: 'Qwen2.5 0.5B Instruct', config: qwenConfig(151936, 896, 4864, 24, 14, 2, true) },
  { id: 'Qwen/Qwen2.5-1.5B-Instruct', description: 'Qwen2.5 1.5B Instruct', config: qwenConfig(151936, 1536, 8960, 28, 12, 2, true) },
  { id: 'Qwen/Qwen2.5-3B-Instruct', description: 'Qwen2.5 3B Instruct', config: qwenConfig(151936, 2048, 11008, 36, 16, 2, true) },
  { id: 'Qwen/Qwen2.5-7B-Instruct', description: 'Qwen2.5 7B Instruct', config: qwenConfig(152064, 3584, 18944, 28, 28, 4, false) },
  { id: 'Qwen/Qwen2.5-14B-Instruct', description: 'Qwen2.5 14B Instruct', config: qwenConfig(152064, 5120, 13824, 48, 40, 8, false) },
  { id: 'Qwen/Qwen2.5-32B-Instruct', description: 'Qwen2.5 32B Instruct', config: qwenConfig(152064, 5120, 27648, 64, 40, 8, false) },
];

/** The hub cache folder: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'), 'hub');
}

/** Whether a folder holds a loadable model: config.json, weights (single or sharded) and tokenizer.json. */
export function isModelFolder(folder: string): boolean {
  return (
    existsSync(join(folder, 'config.json')) &&
    existsSync(join(folder, 'tokenizer.json')) &&
    (existsSync(join(folder, 'model.safetensors')) || existsSync(join(folder, 'model.safetensors.index.json')))
  );
}

/**
 * Where a hub model is on this machine: `{modelsDir}/{id}` first, then the cache's snapshot that `refs/main`
 * names, then any complete snapshot; undefined when it is not here.
 */
export function findModelFolder(id: string, modelsDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const local = join(modelsDir, ...id.split('/'));
  if (isModelFolder(local)) return local;
  const repo = join(hubCacheDir(env), `models--${id.replace(/\//g, '--')}`);
  const snapshots = join(repo, 'snapshots');
  try {
    const main = readFileSync(join(repo, 'refs', 'main'), 'utf8').trim();
    if (main !== '' && isModelFolder(join(snapshots, main))) return join(snapshots, main);
  } catch {
    // No refs/main: look at the snapshots themselves.
  }
  try {
    for (const revision of readdirSync(snapshots).sort()) {
      if (isModelFolder(join(snapshots, revision))) return join(snapshots, revision);
    }
  } catch {
    // No snapshot folder: the model is not in the cache.
  }
  return undefined;
}
