// The base models this backend can train: the embedded engine's built-in tiny models (catalog.ts), always
// available because the engine makes them on first use, and the Qwen2 model folders found under
// `{data}/models/` (`{data}/models/NAME/` or `{data}/models/ORG/NAME/`, id `NAME` or `ORG/NAME` as on the
// Hugging Face hub). The folders are looked at again on every call, so a model copied in shows up without a
// restart. A Qwen2.5 model that is not on the machine is trainable anyway when the backend runs with
// `--allow-downloads` (the torch engine's `downloads_allowed`): the engine then fetches it on first use.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineInfo, Hyperparameters, ModelObject } from '../common/api';
import { LORA_TARGET_MODULES } from '../common/api';
import type { ModelRef } from '../common/engineProtocol';
import { parameterCount, type Qwen2Config, TINY_MODELS } from './engines/embedded/catalog';
import { findModelFolder, hubCacheDir, QWEN_MODELS } from './engines/torch/catalog';
import { modelDefaults, type ModelCapabilities } from './hyperparameters';

/** A base model, with what jobs and chat need besides its public object. */
export interface BaseModel {
  object: ModelObject;
  ref: ModelRef;
  engine: string;
  contextLength: number;
  defaults: Hyperparameters;
  /** What the model allows beyond its defaults (full fine-tuning: the built-in tiny models). */
  capabilities: ModelCapabilities;
}

/** Creation time shown for the built-in models (they have no file): the catalogue's first release. */
const BUILT_IN_CREATED = 1767225600;

/** Trainable LoRA parameters of a config for a rank and target modules. */
export function loraParameterCount(c: Qwen2Config, r: number, targets: readonly string[]): number {
  const head = c.hidden_size / c.num_attention_heads;
  const kv = c.num_key_value_heads * head;
  const shapes: Record<string, [number, number]> = {
    q_proj: [c.hidden_size, c.hidden_size],
    k_proj: [c.hidden_size, kv],
    v_proj: [c.hidden_size, kv],
    o_proj: [c.hidden_size, c.hidden_size],
    gate_proj: [c.hidden_size, c.intermediate_size],
    up_proj: [c.hidden_size, c.intermediate_size],
    down_proj: [c.intermediate_size, c.hidden_size],
  };
  let perLayer = 0;
  for (const t of targets) {
    const shape = shapes[t];
    if (shape) perLayer += r * (shape[0] + shape[1]);
  }
  return perLayer * c.num_hidden_layers;
}

/**
 * Memory that training needs, roughly, in bytes: the frozen weights at `bytesPerWeight`, the adapter
 * with its gradient and AdamW's two moments in f32 (16 bytes a parameter), and the activations of one
 * example of `seq` tokens kept for the backward pass (about 34·hidden + 5·heads·seq values per layer and token,
 * Korthikanti et al.'s count, plus the logits). Under full fine-tuning every weight has a gradient and two
 * moments in f32 besides itself, and there is no adapter. An estimate to tell "fits" from "does not", not a promise.
 */
export function estimateTrainingMemory(c: Qwen2Config, h: Hyperparameters, bytesPerWeight: number): number {
  const full = h.training_type === 'full';
  const weights = parameterCount(c) * (full ? bytesPerWeight + 12 : bytesPerWeight);
  const adapter = full ? 0 : loraParameterCount(c, h.lora_r, h.lora_target_modules) * 16;
  const seq = h.max_seq_length;
  const activations = c.num_hidden_layers * seq * (34 * c.hidden_size + 5 * c.num_attention_heads * seq) * 4 + seq * c.vocab_size * 4 * 2;
  return Math.round(weights + adapter + activations);
}

function isQwen2Config(value: unknown): value is Qwen2Config {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  const numbers = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings'];
  return c.model_type === 'qwen2' && numbers.every((k) => typeof c[k] === 'number' && (c[k] as number) > 0);
}

function describe(id: string, engine: string, config: Qwen2Config, own: Partial<Hyperparameters>, created: number, extra: Partial<ModelObject>, capabilities?: ModelCapabilities, bytesPerWeight = 4): BaseModel {
  const contextLength = config.max_position_embeddings;
  const defaults = modelDefaults(own, contextLength);
  return {
    object: {
      id,
      object: 'model',
      created,
      owned_by: 'finetune-studio',
      kind: 'base',
      engine,
      parameters: parameterCount(config),
      // The embedded engine keeps weights in f32, the torch engine in bf16.
      memory_required: estimateTrainingMemory(config, defaults, bytesPerWeight),
      context_length: contextLength,
      available: true,
      default_hyperparameters: defaults,
      ...extra,
    },
    ref: { id, path: '' },
    engine,
    contextLength,
    defaults,
    capabilities: capabilities ?? { fullFineTuning: false },
  };
}

/** What a Qwen2.5 model of the torch engine's catalogue gets by default (TRAINING.md, "LoRA"). */
function qwenDefaults(parameters: number): Partial<Hyperparameters> {
  return {
    n_epochs: 3,
    batch_size: 8,
    learning_rate: parameters < 2e9 ? 2e-4 : 1e-4,
    max_seq_length: 2048,
    lora_r: 16,
    lora_alpha: 32,
    lora_target_modules: [...LORA_TARGET_MODULES],
  };
}

/** What downloading a model's weights takes, in bytes: bf16, two bytes a parameter (the tokenizer is noise beside it). */
export function downloadBytes(c: Qwen2Config): number {
  return parameterCount(c) * 2;
}

/** Bytes as the hub shows sizes: decimal gigabytes, one decimal. */
function gigabytes(bytes: number): string {
  return `about ${(bytes / 1e9).toFixed(1)} GB`;
}

/** The base models of a backend whose data folder is `dataDir`. */
export class ModelCatalogue {
  private readonly root: string;

  /**
   * @param torch whether the torch engine can run here (asked when the list is made): it decides whether the
   *   Qwen2.5 catalogue is trainable and which engine takes the model folders. Without it: not available.
   */
  constructor(
    dataDir: string,
    private readonly torch: () => Promise<EngineInfo | undefined> = () => Promise.resolve(undefined),
  ) {
    this.root = join(dataDir, 'models');
  }

  /** The built-in models first (smallest first), then the Qwen2.5 catalogue (smallest first), then the folders by id. */
  async list(): Promise<BaseModel[]> {
    const builtIn = TINY_MODELS.map((m) => {
      // Only the built-in tiny models are small enough for a gradient and two moments of every weight.
      const model = describe(m.id, 'embedded', m.config, m.defaults, BUILT_IN_CREATED, { description: m.description }, { fullFineTuning: true });
      return { ...model, ref: { id: m.id, path: join(this.root, m.id) } };
    });
    const torch = await this.torch();
    return [...builtIn, ...this.qwen(torch), ...(await this.folders(torch?.available === true))];
  }

  /**
   * The Qwen2.5 Instruct sizes the torch engine trains, each available when the engine can run and the model is on
   * this machine — or may be downloaded: then its `download_bytes` says how much, and the engine gets the hub id
   * instead of a folder.
   */
  private qwen(torch: EngineInfo | undefined): BaseModel[] {
    return QWEN_MODELS.map((m) => {
      const folder = findModelFolder(m.id, this.root);
      const own = join(this.root, ...m.id.split('/'));
      const bytes = downloadBytes(m.config);
      const download = folder === undefined && torch?.available === true && torch.downloads_allowed === true;
      let extra: Partial<ModelObject>;
      if (torch?.available !== true) {
        extra = { description: m.description, available: false, unavailable_reason: `The torch engine cannot run here: ${torch?.reason ?? 'it is not set up'}.` };
      } else if (download) {
        extra = { description: `${m.description} (downloaded from the Hugging Face hub on first use: ${gigabytes(bytes)})`, download_bytes: bytes };
      } else if (folder === undefined) {
        const reason =
          `${m.id} is not on this machine: put it in ${own} or the Hugging Face cache (${hubCacheDir()}), e.g. with \`huggingface-cli download ${m.id}\`, ` +
          `or let the backend download it on first use (${gigabytes(bytes)}): --allow-downloads, or in VS Code the setting finetune.localBackend.allowModelDownloads.`;
        extra = { description: m.description, available: false, unavailable_reason: reason };
      } else {
        extra = { description: m.description };
      }
      const model = describe(m.id, 'torch', m.config, qwenDefaults(parameterCount(m.config)), BUILT_IN_CREATED, extra, undefined, 2);
      // The engine's hub.py takes the folder, or the hub id to download (it looks in the cache again first).
      return { ...model, ref: { id: m.id, path: folder ?? (download ? m.id : own) } };
    });
  }

  /** The base model with that id, if any. */
  async find(id: string): Promise<BaseModel | undefined> {
    return (await this.list()).find((m) => m.object.id === id);
  }

  private async folders(torch: boolean): Promise<BaseModel[]> {
    const found: BaseModel[] = [];
    const tiny = new Set(TINY_MODELS.map((m) => m.id));
    const catalogued = new Set(QWEN_MODELS.map((m) => m.id));
    for (const name of await entries(this.root)) {
      if (tiny.has(name)) continue;
      const folder = join(this.root, name);
      if (existsSync(join(folder, 'config.json'))) {
        await this.add(found, name, folder, torch);
        continue;
      }
      // An organisation's folder, as the hub names models: ORG/NAME (the catalogue's own are listed above).
      for (const inner of await entries(folder)) {
        if (!catalogued.has(`${name}/${inner}`)) await this.add(found, `${name}/${inner}`, join(folder, inner), torch);
      }
    }
    return found.sort((a, b) => (a.object.id < b.object.id ? -1 : 1));
  }

  private async add(found: BaseModel[], id: string, folder: string, torch: boolean): Promise<void> {
    let config: unknown;
    try {
      config = JSON.parse(await readFile(join(folder, 'config.json'), 'utf8')) as unknown;
    } catch {
      return;
    }
    if (!isQwen2Config(config)) return;
    const created = Math.floor((await stat(folder)).mtimeMs / 1000);
    const missing = [
      existsSync(join(folder, 'model.safetensors')) || existsSync(join(folder, 'model.safetensors.index.json')) ? undefined : 'model.safetensors',
      existsSync(join(folder, 'tokenizer.json')) ? undefined : 'tokenizer.json',
    ].filter((m): m is string => m !== undefined);
    // The torch engine takes them where it can run (on a GPU, in bf16); elsewhere the embedded engine trains them on the CPU.
    const extra: Partial<ModelObject> = missing.length === 0
      ? { description: `Qwen2 model folder ${folder}` }
      : { available: false, unavailable_reason: `The model folder ${folder} has no ${missing.join(' and no ')}.` };
    const model = describe(id, torch ? 'torch' : 'embedded', config, { lora_target_modules: [...LORA_TARGET_MODULES] }, created, extra, undefined, torch ? 2 : 4);
    found.push({ ...model, ref: { id, path: folder } });
  }
}

/** Names in a folder that could be models (no hidden ones); [] when it does not exist. */
async function entries(folder: string): Promise<string[]> {
  try {
    const list = await readdir(folder, { withFileTypes: true });
    return list.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch {
    return [];
  }
}
