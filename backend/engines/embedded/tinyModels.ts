// Materialises a built-in tiny model (catalog.ts) as an ordinary model folder the first time a job or a chat
// needs it: config.json, model.safetensors initialised from the model's seed, and the byte-level tokenizer.
// From then on it loads like any other model folder.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ModelRef } from '../../../common/engineProtocol';
import { tinyModel, type Qwen2Config } from './catalog';
import { EngineError, oneLine } from './errors';
import { Qwen2Model } from './model/qwen2';
import { tinyTokenizerConfig, tinyTokenizerJson } from './tokenizer';

/** Standard deviation of transformers' normal init of the embedding (Qwen2Model.init). */
const EMBEDDING_STD = 0.02;

/**
 * The tiny base model: transformers' random init, except the final RMSNorm's weight. With the LM head tied to an
 * embedding of std 0.02 and that weight at 1, no logit can exceed about 0.02·hidden (2.6 for hidden 128), so the
 * loss of a LoRA run cannot fall below about 3 whatever the adapter learns. A weight of 1/(0.02·√hidden) gives
 * logits of unit scale at init and a reachable margin of √hidden: measured on tiny-qwen2-1m, LoRA then takes the
 * loss of a small dataset from 5.6 to 0.25 in 20 steps, where it stalled above 3.2 before.
 */
export function tinyBaseModel(config: Qwen2Config, seed: number): Qwen2Model {
  const model = Qwen2Model.init(config, seed);
  // The model exposes its base weights only as trainable parameters; this is the one moment they are edited.
  model.setFullFineTuning(true);
  const norm = model.parameters().find((p) => p.name === 'model.norm.weight');
  if (!norm) throw new Error('the model has no model.norm.weight');
  norm.data.fill(1 / (EMBEDDING_STD * Math.sqrt(config.hidden_size)));
  model.setFullFineTuning(false);
  return model;
}

/**
 * Makes sure `ref.path` is a model folder. A folder with config.json is used as it is; a tiny model's folder
 * without one is written to a temporary sibling and renamed into place, so that two processes that race to make
 * it both end up with one complete folder.
 * @throws EngineError `model_unavailable` when the folder has no config.json and the id is not a tiny model
 */
export async function ensureModelFolder(ref: ModelRef): Promise<void> {
  if (existsSync(join(ref.path, 'config.json'))) return;
  const tiny = tinyModel(ref.id);
  if (!tiny) throw new EngineError('model_unavailable', `${ref.path} has no config.json: not a model folder for ${ref.id}`);
  const parent = dirname(ref.path);
  const tmp = join(parent, `.tmp-${tiny.id}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(tmp, { recursive: true });
    await tinyBaseModel(tiny.config, tiny.seed).save(tmp);
    await writeFile(join(tmp, 'config.json'), JSON.stringify(tiny.config, null, 2) + '\n');
    await writeFile(join(tmp, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()) + '\n');
    await writeFile(join(tmp, 'tokenizer_config.json'), JSON.stringify(tinyTokenizerConfig(tiny.config.max_position_embeddings), null, 2) + '\n');
    const generation = { bos_token_id: tiny.config.bos_token_id, eos_token_id: [tiny.config.eos_token_id, tiny.config.bos_token_id], pad_token_id: tiny.config.bos_token_id };
    await writeFile(join(tmp, 'generation_config.json'), JSON.stringify(generation, null, 2) + '\n');
    try {
      // rename() replaces an empty folder (one the backend made for us) but not a full one.
      await rename(tmp, ref.path);
    } catch (e) {
      // Another process finished first: its folder is as good as ours.
      if (!existsSync(join(ref.path, 'config.json'))) throw e;
    }
  } catch (e) {
    throw new EngineError('model_unavailable', `cannot make the tiny model ${tiny.id} in ${ref.path}: ${oneLine(e)}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
