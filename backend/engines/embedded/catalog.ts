// The built-in tiny models of the embedded engine: Qwen2-architecture configs small enough to train on a CPU in
// seconds, with a byte-level tokenizer that has Qwen2.5's special tokens. The backend lists them in
// `/v1/models`; the engine materialises one as a model folder (config.json, model.safetensors initialised from
// the model's seed, tokenizer.json) the first time a job or a chat needs it.
import type { Hyperparameters } from '../../../common/api';

/** The fields of a transformers `Qwen2Config` (config.json) that the engines read. */
export interface Qwen2Config {
  architectures: string[];
  model_type: 'qwen2';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_position_embeddings: number;
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  hidden_act: 'silu';
  bos_token_id: number;
  eos_token_id: number;
  torch_dtype: 'float32' | 'bfloat16' | 'float16';
  attention_dropout: number;
  use_sliding_window: boolean;
}

/** Ids of the byte-level tokenizer of the tiny models: bytes 0–255 are ids 0–255, then the special tokens. */
export const TINY_SPECIAL_IDS = { endOfText: 256, imStart: 257, imEnd: 258 } as const;

export interface TinyModel {
  id: string;
  description: string;
  /** Seed of the weights' initialisation: the same id always gives the same base model. */
  seed: number;
  config: Qwen2Config;
  /** What a job on this model gets unless it says otherwise (filled up by the backend's general defaults). */
  defaults: Partial<Hyperparameters>;
}

function tinyConfig(hidden: number, layers: number, heads: number, kvHeads: number, intermediate: number): Qwen2Config {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    // 259 ids in use (256 bytes + 3 special tokens), rounded up to a multiple of 16 for the kernels.
    vocab_size: 272,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: 4096,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    bos_token_id: TINY_SPECIAL_IDS.endOfText,
    eos_token_id: TINY_SPECIAL_IDS.imEnd,
    torch_dtype: 'float32',
    attention_dropout: 0,
    use_sliding_window: false,
  };
}

/** The built-in models, smallest first. */
export const TINY_MODELS: readonly TinyModel[] = [
  {
    id: 'tiny-qwen2-1m',
    description: 'Tiny Qwen2-architecture model (about 0.8M parameters, byte-level tokens) for trying the workflow on a CPU in seconds.',
    seed: 1,
    config: tinyConfig(128, 4, 4, 2, 352),
    defaults: { n_epochs: 3, batch_size: 8, learning_rate: 2e-3, max_seq_length: 512, lora_r: 16, lora_alpha: 32 },
  },
  {
    id: 'tiny-qwen2-6m',
    description: 'Small Qwen2-architecture model (about 6M parameters, byte-level tokens) for CPU runs of a few minutes.',
    seed: 2,
    config: tinyConfig(256, 8, 8, 2, 768),
    defaults: { n_epochs: 3, batch_size: 8, learning_rate: 1e-3, max_seq_length: 1024, lora_r: 16, lora_alpha: 32 },
  },
];

/** The tiny model with that id, if any. */
export function tinyModel(id: string): TinyModel | undefined {
  return TINY_MODELS.find((m) => m.id === id);
}

/** Parameters of a Qwen2 config (embedding counted once when tied). */
export function parameterCount(c: Qwen2Config): number {
  const head = c.hidden_size / c.num_attention_heads;
  const kv = c.num_key_value_heads * head;
  const attention = c.hidden_size * c.hidden_size * 2 + c.hidden_size * kv * 2 + c.hidden_size + kv * 2;
  const mlp = 3 * c.hidden_size * c.intermediate_size;
  const layer = attention + mlp + 2 * c.hidden_size;
  const embedding = c.vocab_size * c.hidden_size;
  return embedding * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * layer + c.hidden_size;
}
