// The Qwen2 decoder (transformers' Qwen2ForCausalLM) with LoRA, forward and backward on the CPU in Float32Array
// kernels. Activations of the last sequence are kept in per-layer buffers that grow to the longest sequence seen
// and are reused, so a training step allocates nothing in its hot loop. Only what is trainable gets a weight
// gradient; frozen weights get input gradients only. Products go through `gemm` (op(A)·B with A read through
// strides, the SIMD kernel for float32): a frozen weight W [out × in] is kept in both layouts, W for input
// gradients (dy·W) and a cached Wᵀ for the forward (x·Wᵀ), and weight gradients read dyᵀ by strides.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoraTargetModule } from '../../../../common/api';
import type { Qwen2Config } from '../catalog';
import {
  addBias,
  addColumnSums,
  attentionBackward,
  attentionForward,
  crossEntropy,
  gemm,
  gemmABt,
  rmsNormBackward,
  rmsNormForward,
  rope,
  ropeTables,
  swigluBackward,
  swigluForward,
  transpose,
  type AttentionShape,
} from './kernels';
import { Rng } from './rng';
import { readModelWeights, writeSafetensors, type Tensor } from './safetensors';

/** LoRA settings, as peft's LoraConfig names them (r, lora_alpha, lora_dropout, target_modules). */
export interface LoraOptions {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: readonly LoraTargetModule[];
}

/** A trainable tensor with its gradient (same length), both row-major. `name` is its key in the saved files. */
export interface Parameter {
  name: string;
  shape: number[];
  data: Float32Array;
  grad: Float32Array;
}

/** Sums over one sequence: cross-entropy summed over labelled positions, their count, and argmax hits. */
export interface StepSums {
  lossSum: number;
  tokens: number;
  correct: number;
}

/** Keys and values of the positions already run, for generation one token at a time. */
export interface KvCache {
  readonly length: number;
}

/** Why the model refused something: a bad config, bad weights, bad input ids, a full cache. */
export class ModelError extends Error {
  constructor(
    readonly code: 'invalid_config' | 'invalid_weights' | 'invalid_lora' | 'invalid_input' | 'cache_full',
    message: string,
  ) {
    super(message);
  }
  static is(e: unknown): e is ModelError {
    return e instanceof ModelError;
  }
}

/** Label value of positions that are not trained on (transformers' ignore_index). */
export const IGNORE_INDEX = -100;

const ATTENTION_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;

function parameter(name: string, shape: number[], data?: Float32Array): Parameter {
  return { name, shape, data: data ?? new Float32Array(shape.reduce((a, b) => a * b, 1)), grad: new Float32Array(0) };
}

/** A LoRA branch: out += scale · B · A · dropout(x). */
interface Lora {
  a: Parameter; // [r, in]
  b: Parameter; // [out, r]
  r: number;
  scale: number;
  dropout: number;
  /** Last forward's A·dropout(x) [rows × r], unscaled. */
  u: Float32Array;
  /** Last training forward's dropout mask (0 or 1/(1−p)) and masked input, [rows × in]; empty without dropout. */
  mask: Float32Array;
  xin: Float32Array;
}

/** Scratch buffers shared by all linears (sized to the largest need). */
interface Scratch {
  rows: number;
  /** r-sized work: scaled u, dU */
  us: Float32Array;
  dU: Float32Array;
  /** transposed LoRA matrices */
  bT: Float32Array;
  aT: Float32Array;
  /** input gradient of a LoRA branch before the dropout mask [rows × in] */
  dxin: Float32Array;
}

class Linear {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** Wᵀ [in × out], the forward's B operand; rebuilt when the weight may have moved. */
  private wT: Float32Array | null = null;
  lora: Lora | null = null;

  constructor(
    readonly key: string,
    readonly inDim: number,
    readonly outDim: number,
    hasBias: boolean,
  ) {
    this.weight = parameter(`${key}.weight`, [outDim, inDim]);
    this.bias = hasBias ? parameter(`${key}.bias`, [outDim]) : null;
  }

  invalidate(): void {
    this.wT = null;
  }

  private transposed(): Float32Array {
    if (!this.wT) {
      this.wT = new Float32Array(this.inDim * this.outDim);
      transpose(this.wT, this.weight.data, this.outDim, this.inDim);
    }
    return this.wT;
  }

  ensure(rows: number): void {
    const l = this.lora;
    if (!l || l.u.length >= rows * l.r) return;
    l.u = new Float32Array(rows * l.r);
    if (l.dropout > 0) {
      l.mask = new Float32Array(rows * this.inDim);
      l.xin = new Float32Array(rows * this.inDim);
    }
  }

  /** y[rows × out] = x·Wᵀ + b (+ the LoRA branch; dropout drawn from rng when given). */
  forward(y: Float32Array, x: Float32Array, rows: number, s: Scratch, rng: Rng | null): void {
    // One row (token-by-token generation): dot products with W's contiguous rows need no transposed copy.
    if (rows < 4) gemmABt(y, x, this.weight.data, rows, this.outDim, this.inDim, false);
    else gemm(y, x, this.inDim, 1, this.transposed(), rows, this.outDim, this.inDim, false);
    if (this.bias) addBias(y, this.bias.data, rows, this.outDim);
    const l = this.lora;
    if (!l) return;
    let xin = x;
    if (rng && l.dropout > 0) {
      const n = rows * this.inDim;
      const keep = 1 / (1 - l.dropout);
      for (let i = 0; i < n; i++) {
        const m = rng.uniform() < l.dropout ? 0 : keep;
        l.mask[i] = m;
        l.xin[i] = x[i] * m;
      }
      xin = l.xin;
    }
    transpose(s.aT, l.a.data, l.r, this.inDim);
    gemm(l.u, xin, this.inDim, 1, s.aT, rows, l.r, this.inDim, false);
    const n = rows * l.r;
    for (let i = 0; i < n; i++) s.us[i] = l.u[i] * l.scale;
    transpose(s.bT, l.b.data, this.outDim, l.r);
    gemm(y, s.us, l.r, 1, s.bT, rows, this.outDim, l.r, true);
  }

  /**
   * From dy, adds the gradients of whatever is trainable here and writes (or adds, `accumulate`) the input
   * gradient into dx when dx is given. `x` is this linear's input of the forward; `dropped` says whether that
   * forward drew a dropout mask.
   */
  backward(dx: Float32Array | null, dy: Float32Array, x: Float32Array, rows: number, s: Scratch, dropped: boolean, accumulate: boolean): void {
    const { inDim, outDim } = this;
    const l = this.lora;
    if (this.weight.grad.length > 0) {
      // dW += dyᵀ · x (dyᵀ read through strides)
      gemm(this.weight.grad, dy, 1, outDim, x, outDim, inDim, rows, true);
      if (this.bias) addColumnSums(this.bias.grad, dy, rows, outDim);
    }
    if (dx) gemm(dx, dy, outDim, 1, this.weight.data, rows, inDim, outDim, accumulate);
    if (!l) return;
    const r = l.r;
    const xin = dropped && l.dropout > 0 ? l.xin : x;
    // dB += scale · dyᵀ · u
    const n = rows * r;
    for (let i = 0; i < n; i++) s.us[i] = l.u[i] * l.scale;
    gemm(l.b.grad, dy, 1, outDim, s.us, outDim, r, rows, true);
    // dU = scale · dy · B ; dA += dUᵀ · xin
    gemm(s.dU, dy, outDim, 1, l.b.data, rows, r, outDim, false);
    for (let i = 0; i < n; i++) s.dU[i] *= l.scale;
    gemm(l.a.grad, s.dU, 1, r, xin, r, inDim, rows, true);
    if (!dx) return;
    if (xin === x) {
      gemm(dx, s.dU, r, 1, l.a.data, rows, inDim, r, true);
    } else {
      gemm(s.dxin, s.dU, r, 1, l.a.data, rows, inDim, r, false);
      const m = rows * inDim;
      for (let i = 0; i < m; i++) dx[i] += s.dxin[i] * l.mask[i];
    }
  }
}

/** One decoder layer's weights and the activations of its last forward pass. */
class Layer {
  readonly inputNorm: Parameter;
  readonly postNorm: Parameter;
  readonly linears: Record<LoraTargetModule, Linear>;
  // activations [rows × …]
  xIn = new Float32Array(0);
  xn1 = new Float32Array(0);
  rstd1 = new Float32Array(0);
  q = new Float32Array(0);
  k = new Float32Array(0);
  v = new Float32Array(0);
  attn = new Float32Array(0);
  lse = new Float32Array(0);
  x2 = new Float32Array(0);
  xn2 = new Float32Array(0);
  rstd2 = new Float32Array(0);
  gate = new Float32Array(0);
  up = new Float32Array(0);
  act = new Float32Array(0);

  constructor(
    readonly index: number,
    private readonly c: Qwen2Config,
  ) {
    const h = c.hidden_size;
    const kv = c.num_key_value_heads * (h / c.num_attention_heads);
    const p = `model.layers.${index}`;
    this.inputNorm = parameter(`${p}.input_layernorm.weight`, [h]);
    this.postNorm = parameter(`${p}.post_attention_layernorm.weight`, [h]);
    this.linears = {
      q_proj: new Linear(`${p}.self_attn.q_proj`, h, h, true),
      k_proj: new Linear(`${p}.self_attn.k_proj`, h, kv, true),
      v_proj: new Linear(`${p}.self_attn.v_proj`, h, kv, true),
      o_proj: new Linear(`${p}.self_attn.o_proj`, h, h, false),
      gate_proj: new Linear(`${p}.mlp.gate_proj`, h, c.intermediate_size, false),
      up_proj: new Linear(`${p}.mlp.up_proj`, h, c.intermediate_size, false),
      down_proj: new Linear(`${p}.mlp.down_proj`, c.intermediate_size, h, false),
    };
  }

  ensure(rows: number): void {
    const c = this.c;
    const h = c.hidden_size;
    const kv = c.num_key_value_heads * (h / c.num_attention_heads);
    const i = c.intermediate_size;
    for (const lin of Object.values(this.linears)) lin.ensure(rows);
    if (this.xIn.length >= rows * h) return;
    this.xIn = new Float32Array(rows * h);
    this.xn1 = new Float32Array(rows * h);
    this.rstd1 = new Float32Array(rows);
    this.q = new Float32Array(rows * h);
    this.k = new Float32Array(rows * kv);
    this.v = new Float32Array(rows * kv);
    this.attn = new Float32Array(rows * h);
    this.lse = new Float32Array(rows * c.num_attention_heads);
    this.x2 = new Float32Array(rows * h);
    this.xn2 = new Float32Array(rows * h);
    this.rstd2 = new Float32Array(rows);
    this.gate = new Float32Array(rows * i);
    this.up = new Float32Array(rows * i);
    this.act = new Float32Array(rows * i);
  }
}

/** The per-layer keys and values of the positions run so far. */
class Qwen2Cache implements KvCache {
  length = 0;
  constructor(
    readonly owner: Qwen2Model,
    readonly maxLength: number,
    readonly k: Float32Array[],
    readonly v: Float32Array[],
  ) {}
}

/** Backward-pass buffers, sized on demand. */
interface Grads {
  rows: number;
  dX: Float32Array;
  dxn: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  dAttn: Float32Array;
  dGate: Float32Array;
  dUp: Float32Array;
  dAct: Float32Array;
}

function validateConfig(c: Qwen2Config): void {
  const bad = (m: string): ModelError => new ModelError('invalid_config', m);
  const ints: (keyof Qwen2Config)[] = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads'];
  for (const key of ints) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(`config.${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (c.hidden_size % c.num_attention_heads !== 0) throw bad(`hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`);
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw bad(`num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`);
  }
  if ((c.hidden_size / c.num_attention_heads) % 2 !== 0) throw bad(`head dimension ${c.hidden_size / c.num_attention_heads} must be even for rotary embeddings`);
  const headDim = (c as unknown as { head_dim?: unknown }).head_dim;
  if (headDim !== undefined && headDim !== null && headDim !== c.hidden_size / c.num_attention_heads) {
    throw bad(`head_dim ${String(headDim)} differs from hidden_size / num_attention_heads; not supported`);
  }
  if (!(c.rope_theta > 0)) throw bad(`rope_theta must be positive, got ${c.rope_theta}`);
  if (!(c.rms_norm_eps > 0)) throw bad(`rms_norm_eps must be positive, got ${c.rms_norm_eps}`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw bad(`hidden_act ${String(c.hidden_act)} is not supported (only silu)`);
}

function checkLoraOptions(o: LoraOptions): void {
  if (!Number.isInteger(o.r) || o.r <= 0) throw new ModelError('invalid_lora', `LoRA r must be a positive integer, got ${o.r}`);
  if (!(o.alpha > 0)) throw new ModelError('invalid_lora', `LoRA alpha must be positive, got ${o.alpha}`);
  if (!(o.dropout >= 0 && o.dropout < 1)) throw new ModelError('invalid_lora', `LoRA dropout must be in [0, 1), got ${o.dropout}`);
  if (o.targetModules.length === 0) throw new ModelError('invalid_lora', 'LoRA needs at least one target module');
}

/** A Qwen2 causal language model with optional LoRA adapters on its projections. */
export class Qwen2Model {
  readonly config: Qwen2Config;
  private readonly layers: Layer[];
  private readonly embed: Parameter;
  private readonly finalNorm: Parameter;
  /** Untied LM head; null when tied to the embedding. */
  private readonly lmHead: Parameter | null;
  private readonly headDim: number;
  private loraOptions: LoraOptions | null = null;
  private fullFineTuning = false;
  /** Transposed LM head [hidden × vocab], for the logits' product. */
  private headT: Float32Array | null = null;
  private cos: Float64Array = new Float64Array(0);
  private sin: Float64Array = new Float64Array(0);
  private ropePositions = 0;
  // Final-stage buffers.
  private capacity = 0;
  private xOut = new Float32Array(0);
  private hOut = new Float32Array(0);
  private rstdOut = new Float32Array(0);
  private hSel = new Float32Array(0);
  private logitBuf = new Float32Array(0);
  private dLogits = new Float32Array(0);
  private rowsSel = new Int32Array(0);
  private targets = new Int32Array(0);
  private attnScratch = new Float64Array(0);
  private scratch: Scratch;
  private grads: Grads | null = null;

  private constructor(config: Qwen2Config) {
    validateConfig(config);
    this.config = { ...config };
    const c = this.config;
    this.headDim = c.hidden_size / c.num_attention_heads;
    this.layers = Array.from({ length: c.num_hidden_layers }, (_, i) => new Layer(i, c));
    this.embed = parameter('model.embed_tokens.weight', [c.vocab_size, c.hidden_size]);
    this.finalNorm = parameter('model.norm.weight', [c.hidden_size]);
    this.lmHead = c.tie_word_embeddings ? null : parameter('lm_head.weight', [c.vocab_size, c.hidden_size]);
    this.scratch = { rows: 0, us: new Float32Array(0), dU: new Float32Array(0), bT: new Float32Array(0), aT: new Float32Array(0), dxin: new Float32Array(0) };
  }

  /**
   * Random weights like transformers' init: normal(0, std = 0.02) linears and embedding, zero biases, unit norms.
   * `embeddingStd` overrides the embedding's (and untied head's) std: with a frozen tied head a logit is at most
   * √hidden · |embedding row|, which at 0.02 leaves LoRA little room on a model that was never pretrained.
   */
  static init(config: Qwen2Config, seed: number, options: { std?: number; embeddingStd?: number } = {}): Qwen2Model {
    const m = new Qwen2Model(config);
    const rng = new Rng(seed);
    const std = options.std ?? 0.02;
    const fill = (p: Parameter, scale = std): void => {
      for (let i = 0; i < p.data.length; i++) p.data[i] = rng.normal() * scale;
    };
    fill(m.embed, options.embeddingStd ?? std);
    for (const layer of m.layers) {
      layer.inputNorm.data.fill(1);
      layer.postNorm.data.fill(1);
      for (const lin of Object.values(layer.linears)) fill(lin.weight);
    }
    m.finalNorm.data.fill(1);
    if (m.lmHead) fill(m.lmHead, options.embeddingStd ?? std);
    return m;
  }

  /** Loads config.json and the weights (model.safetensors or a sharded index) of a transformers model folder. */
  static async load(folder: string): Promise<Qwen2Model> {
    let config: Qwen2Config;
    try {
      config = JSON.parse(await readFile(join(folder, 'config.json'), 'utf8')) as Qwen2Config;
    } catch (e) {
      throw new ModelError('invalid_config', `${join(folder, 'config.json')}: ${(e as Error).message}`);
    }
    if (typeof config !== 'object' || config === null) throw new ModelError('invalid_config', `${join(folder, 'config.json')}: not a JSON object`);
    if (config.model_type !== undefined && config.model_type !== 'qwen2') {
      throw new ModelError('invalid_config', `${join(folder, 'config.json')}: model_type "${String(config.model_type)}" is not qwen2`);
    }
    // transformers 5 keeps rope_theta inside rope_parameters; older configs may omit it (10000 then).
    if (config.rope_theta === undefined) {
      const nested = (config as unknown as { rope_parameters?: { rope_theta?: unknown } }).rope_parameters?.rope_theta;
      config = { ...config, rope_theta: typeof nested === 'number' ? nested : 10000 };
    }
    const m = new Qwen2Model(config);
    const weights = await readModelWeights(folder);
    for (const p of m.allBaseParameters()) {
      const t = weights.get(p.name);
      if (!t) throw new ModelError('invalid_weights', `${folder}: weight "${p.name}" is missing`);
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
        throw new ModelError('invalid_weights', `${folder}: weight "${p.name}" has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
      }
      p.data.set(t.data);
    }
    return m;
  }

  /** Writes config.json and model.safetensors (float32) with transformers' key names. */
  async save(folder: string): Promise<void> {
    await mkdir(folder, { recursive: true });
    const tensors = new Map<string, Tensor>();
    for (const p of this.allBaseParameters()) tensors.set(p.name, { shape: [...p.shape], data: p.data });
    await writeSafetensors(join(folder, 'model.safetensors'), tensors, { format: 'pt' });
    const configPath = join(folder, 'config.json');
    const tmp = `${configPath}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ ...this.config, torch_dtype: 'float32' }, null, 2)}\n`);
    await rename(tmp, configPath);
  }

  /** Every base weight, in a fixed order (embedding, layers, final norm, untied head). */
  private allBaseParameters(): Parameter[] {
    const out: Parameter[] = [this.embed];
    for (const layer of this.layers) {
      out.push(layer.inputNorm);
      for (const name of ATTENTION_MODULES) {
        const lin = layer.linears[name];
        out.push(lin.weight);
        if (lin.bias) out.push(lin.bias);
      }
      out.push(layer.postNorm);
      for (const name of ['gate_proj', 'up_proj', 'down_proj'] as const) out.push(layer.linears[name].weight);
    }
    out.push(this.finalNorm);
    if (this.lmHead) out.push(this.lmHead);
    return out;
  }

  private static loraKey(linear: Linear, part: 'lora_A' | 'lora_B'): string {
    return `base_model.model.${linear.key}.${part}.weight`;
  }

  private attachLora(options: LoraOptions, fill: (lin: Linear, a: Parameter, b: Parameter) => void): void {
    checkLoraOptions(options);
    const targets = new Set(options.targetModules);
    for (const layer of this.layers) {
      for (const [name, lin] of Object.entries(layer.linears) as [LoraTargetModule, Linear][]) {
        lin.lora = null;
        if (!targets.has(name)) continue;
        const a = parameter(Qwen2Model.loraKey(lin, 'lora_A'), [options.r, lin.inDim]);
        const b = parameter(Qwen2Model.loraKey(lin, 'lora_B'), [lin.outDim, options.r]);
        a.grad = new Float32Array(a.data.length);
        b.grad = new Float32Array(b.data.length);
        fill(lin, a, b);
        lin.lora = { a, b, r: options.r, scale: options.alpha / options.r, dropout: options.dropout, u: new Float32Array(0), mask: new Float32Array(0), xin: new Float32Array(0) };
        lin.ensure(this.capacity);
      }
    }
    this.loraOptions = { ...options, targetModules: [...options.targetModules] };
    this.resizeScratch(this.capacity, true);
  }

  /** Adds fresh adapters: A like peft (kaiming-uniform with a = √5, i.e. U(±1/√in)), B zero; base frozen. */
  addLora(options: LoraOptions, seed: number): void {
    const rng = new Rng(seed);
    this.attachLora(options, (lin, a) => {
      const bound = 1 / Math.sqrt(lin.inDim);
      for (let i = 0; i < a.data.length; i++) a.data[i] = (2 * rng.uniform() - 1) * bound;
    });
  }

  /** Adapters from the tensors of an adapter_model.safetensors (peft key names); every target must be there. */
  loadLora(tensors: Map<string, Tensor>, options: LoraOptions): void {
    const take = (p: Parameter): void => {
      const t = tensors.get(p.name);
      if (!t) throw new ModelError('invalid_lora', `adapter tensor "${p.name}" is missing`);
      if (t.shape.length !== 2 || t.shape[0] !== p.shape[0] || t.shape[1] !== p.shape[1]) {
        throw new ModelError('invalid_lora', `adapter tensor "${p.name}" has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
      }
      p.data.set(t.data);
    };
    checkLoraOptions(options);
    // Checked before attaching anything, so a bad file leaves the model as it was.
    const targets = new Set(options.targetModules);
    for (const layer of this.layers) {
      for (const [name, lin] of Object.entries(layer.linears) as [LoraTargetModule, Linear][]) {
        if (!targets.has(name)) continue;
        take(parameter(Qwen2Model.loraKey(lin, 'lora_A'), [options.r, lin.inDim]));
        take(parameter(Qwen2Model.loraKey(lin, 'lora_B'), [lin.outDim, options.r]));
      }
    }
    this.attachLora(options, (_lin, a, b) => {
      take(a);
      take(b);
    });
  }

  /** The adapter weights under peft's key names (copies: later training does not change them). */
  loraTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const layer of this.layers) {
      for (const lin of Object.values(layer.linears)) {
        if (!lin.lora) continue;
        out.set(lin.lora.a.name, { shape: [...lin.lora.a.shape], data: lin.lora.a.data.slice() });
        out.set(lin.lora.b.name, { shape: [...lin.lora.b.shape], data: lin.lora.b.data.slice() });
      }
    }
    return out;
  }

  /** The LoRA options in effect, or null without adapters. */
  lora(): LoraOptions | null {
    return this.loraOptions;
  }

  /** Makes every base weight trainable (gradients allocated), or frozen again (gradients freed). */
  setFullFineTuning(on: boolean): void {
    this.fullFineTuning = on;
    for (const p of this.allBaseParameters()) p.grad = on ? new Float32Array(p.data.length) : new Float32Array(0);
    this.invalidateTransposes();
  }

  /** The trainable parameters: LoRA A/B (layer order), then every base weight under full fine-tuning. */
  parameters(): Parameter[] {
    const out: Parameter[] = [];
    for (const layer of this.layers) {
      for (const lin of Object.values(layer.linears)) if (lin.lora) out.push(lin.lora.a, lin.lora.b);
    }
    if (this.fullFineTuning) out.push(...this.allBaseParameters());
    return out;
  }

  /** Sets every trainable gradient to zero. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad.fill(0);
  }

  private invalidateTransposes(): void {
    this.headT = null;
    for (const layer of this.layers) for (const lin of Object.values(layer.linears)) lin.invalidate();
  }

  private resizeScratch(rows: number, force = false): void {
    const s = this.scratch;
    if (!force && s.rows >= rows) return;
    const c = this.config;
    const maxDim = Math.max(c.hidden_size, c.intermediate_size);
    const r = this.loraOptions?.r ?? 0;
    s.rows = rows;
    s.us = new Float32Array(rows * r);
    s.dU = new Float32Array(rows * r);
    s.bT = new Float32Array(r * maxDim);
    s.aT = new Float32Array(r * maxDim);
    s.dxin = new Float32Array(rows * maxDim);
  }

  private ensure(rows: number): void {
    this.ensureRope(rows);
    if (rows <= this.capacity) return;
    const c = this.config;
    // Grown in steps so a run of slowly growing sequences does not reallocate every time.
    const cap = Math.max(rows, Math.min(2 * this.capacity, c.max_position_embeddings || rows), 16);
    this.capacity = cap;
    for (const layer of this.layers) layer.ensure(cap);
    const h = c.hidden_size;
    this.xOut = new Float32Array(cap * h);
    this.hOut = new Float32Array(cap * h);
    this.rstdOut = new Float32Array(cap);
    this.hSel = new Float32Array(cap * h);
    this.logitBuf = new Float32Array(cap * c.vocab_size);
    this.dLogits = new Float32Array(cap * c.vocab_size);
    this.rowsSel = new Int32Array(cap);
    this.targets = new Int32Array(cap);
    this.attnScratch = new Float64Array(cap + this.headDim);
    this.resizeScratch(cap, true);
    this.grads = null;
  }

  private ensureRope(positions: number): void {
    if (positions <= this.ropePositions) return;
    const n = Math.max(positions, 2 * this.ropePositions, 64);
    const t = ropeTables(n, this.headDim, this.config.rope_theta);
    this.cos = t.cos;
    this.sin = t.sin;
    this.ropePositions = n;
  }

  private ensureGrads(): Grads {
    const rows = this.capacity;
    if (this.grads && this.grads.rows >= rows) return this.grads;
    const c = this.config;
    const h = c.hidden_size;
    const kv = c.num_key_value_heads * this.headDim;
    this.grads = {
      rows,
      dX: new Float32Array(rows * h),
      dxn: new Float32Array(rows * h),
      dq: new Float32Array(rows * h),
      dk: new Float32Array(rows * kv),
      dv: new Float32Array(rows * kv),
      dAttn: new Float32Array(rows * h),
      dGate: new Float32Array(rows * c.intermediate_size),
      dUp: new Float32Array(rows * c.intermediate_size),
      dAct: new Float32Array(rows * c.intermediate_size),
    };
    return this.grads;
  }

  private checkIds(ids: Int32Array, what: string): void {
    const v = this.config.vocab_size;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < 0 || id >= v) throw new ModelError('invalid_input', `${what}[${i}] = ${id} is outside the vocabulary [0, ${v})`);
    }
  }

  /** Runs the decoder over rows tokens into xOut (the last layer's output), keys/values into the cache when given. */
  private forwardLayers(ids: Int32Array, rng: Rng | null, cache: Qwen2Cache | null): void {
    const c = this.config;
    const rows = ids.length;
    const h = c.hidden_size;
    const kvDim = c.num_key_value_heads * this.headDim;
    const past = cache ? cache.length : 0;
    const s = this.scratch;
    const emb = this.embed.data;
    const first = this.layers.length > 0 ? this.layers[0].xIn : this.xOut;
    for (let t = 0; t < rows; t++) first.set(emb.subarray(ids[t] * h, ids[t] * h + h), t * h);
    const shape: AttentionShape = { rows, past, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads, headDim: this.headDim };
    for (let li = 0; li < this.layers.length; li++) {
      const L = this.layers[li];
      const lin = L.linears;
      const out = li + 1 < this.layers.length ? this.layers[li + 1].xIn : this.xOut;
      rmsNormForward(L.xn1, L.rstd1, L.xIn, L.inputNorm.data, rows, h, c.rms_norm_eps);
      lin.q_proj.forward(L.q, L.xn1, rows, s, rng);
      lin.k_proj.forward(L.k, L.xn1, rows, s, rng);
      lin.v_proj.forward(L.v, L.xn1, rows, s, rng);
      rope(L.q, rows, c.num_attention_heads, this.headDim, past, this.cos, this.sin, false);
      rope(L.k, rows, c.num_key_value_heads, this.headDim, past, this.cos, this.sin, false);
      let keys: Float32Array = L.k;
      let values: Float32Array = L.v;
      if (cache) {
        cache.k[li].set(L.k.subarray(0, rows * kvDim), past * kvDim);
        cache.v[li].set(L.v.subarray(0, rows * kvDim), past * kvDim);
        keys = cache.k[li];
        values = cache.v[li];
      }
      attentionForward(L.attn, L.lse, L.q, keys, values, shape, this.attnScratch);
      lin.o_proj.forward(L.x2, L.attn, rows, s, rng);
      const n = rows * h;
      for (let i = 0; i < n; i++) L.x2[i] += L.xIn[i];
      rmsNormForward(L.xn2, L.rstd2, L.x2, L.postNorm.data, rows, h, c.rms_norm_eps);
      lin.gate_proj.forward(L.gate, L.xn2, rows, s, rng);
      lin.up_proj.forward(L.up, L.xn2, rows, s, rng);
      swigluForward(L.act, L.gate, L.up, rows * c.intermediate_size);
      lin.down_proj.forward(out, L.act, rows, s, rng);
      for (let i = 0; i < n; i++) out[i] += L.x2[i];
    }
    if (cache) cache.length = past + rows;
  }

  private headWeight(): Float32Array {
    return (this.lmHead ?? this.embed).data;
  }

  /** The LM head transposed [hidden × vocab], the B operand of the logits' product; cached while frozen. */
  private headTransposed(): Float32Array {
    if (!this.headT) {
      const c = this.config;
      this.headT = new Float32Array(c.hidden_size * c.vocab_size);
      transpose(this.headT, this.headWeight(), c.vocab_size, c.hidden_size);
    }
    return this.headT;
  }

  /**
   * Final norm, then the LM head on the rows that have a label only (masked rows cost nothing), cross-entropy,
   * and with `lossScale` given the backward down through all layers.
   */
  private run(ids: Int32Array, labels: Int32Array, rng: Rng | null, lossScale: number | null): StepSums {
    const rows = ids.length;
    if (labels.length !== rows) throw new ModelError('invalid_input', `labels has ${labels.length} values for ${rows} ids`);
    this.checkIds(ids, 'ids');
    const c = this.config;
    const v = c.vocab_size;
    for (let i = 0; i < rows; i++) {
      const l = labels[i];
      if (l !== IGNORE_INDEX && (l < 0 || l >= v)) throw new ModelError('invalid_input', `labels[${i}] = ${l} is neither ${IGNORE_INDEX} nor a token id below ${v}`);
    }
    if (rows === 0) return { lossSum: 0, tokens: 0, correct: 0 };
    this.ensure(rows);
    // Under full fine-tuning the weights move between calls; the transposed copies are rebuilt from them.
    if (this.fullFineTuning) this.invalidateTransposes();
    const h = c.hidden_size;
    let n = 0;
    for (let t = 0; t + 1 < rows; t++) {
      if (labels[t + 1] === IGNORE_INDEX) continue;
      this.rowsSel[n] = t;
      this.targets[n] = labels[t + 1];
      n++;
    }
    if (n === 0) return { lossSum: 0, tokens: 0, correct: 0 };
    this.forwardLayers(ids, rng, null);
    rmsNormForward(this.hOut, this.rstdOut, this.xOut, this.finalNorm.data, rows, h, c.rms_norm_eps);
    for (let i = 0; i < n; i++) this.hSel.set(this.hOut.subarray(this.rowsSel[i] * h, this.rowsSel[i] * h + h), i * h);
    gemm(this.logitBuf, this.hSel, h, 1, this.headTransposed(), n, v, h, false);
    const ce = crossEntropy(this.logitBuf, this.targets, n, v, lossScale === null ? null : this.dLogits, lossScale ?? 0);
    const sums = { lossSum: ce.lossSum, tokens: n, correct: ce.correct };
    if (lossScale === null) return sums;
    this.backward(ids, n);
    return sums;
  }

  private backward(ids: Int32Array, n: number): void {
    const c = this.config;
    const rows = ids.length;
    const h = c.hidden_size;
    const v = c.vocab_size;
    const g = this.ensureGrads();
    const s = this.scratch;
    const headParam = this.lmHead ?? this.embed;
    // LM head: dh(selected rows) = dLogits · W, dW += dLogitsᵀ · h.
    if (headParam.grad.length > 0) gemm(headParam.grad, this.dLogits, 1, v, this.hSel, v, h, n, true);
    gemm(this.hSel, this.dLogits, v, 1, headParam.data, n, h, v, false);
    g.dxn.fill(0, 0, rows * h);
    for (let i = 0; i < n; i++) g.dxn.set(this.hSel.subarray(i * h, i * h + h), this.rowsSel[i] * h);
    rmsNormBackward(g.dX, this.finalNorm.grad.length > 0 ? this.finalNorm.grad : null, g.dxn, this.xOut, this.finalNorm.data, this.rstdOut, rows, h, false);
    const kvHeads = c.num_key_value_heads;
    const kvDim = kvHeads * this.headDim;
    const inter = c.intermediate_size;
    const shape: AttentionShape = { rows, past: 0, heads: c.num_attention_heads, kvHeads, headDim: this.headDim };
    const embedTrainable = this.embed.grad.length > 0;
    for (let li = this.layers.length - 1; li >= 0; li--) {
      const L = this.layers[li];
      const lin = L.linears;
      const dOut = g.dX;
      // MLP: x3 = x2 + down(silu(gate(xn2)) · up(xn2)).
      lin.down_proj.backward(g.dAct, dOut, L.act, rows, s, true, false);
      swigluBackward(g.dGate, g.dUp, g.dAct, L.gate, L.up, rows * inter);
      lin.gate_proj.backward(g.dxn, g.dGate, L.xn2, rows, s, true, false);
      lin.up_proj.backward(g.dxn, g.dUp, L.xn2, rows, s, true, true);
      rmsNormBackward(g.dX, L.postNorm.grad.length > 0 ? L.postNorm.grad : null, g.dxn, L.x2, L.postNorm.data, L.rstd2, rows, h, true);
      // Attention: x2 = xIn + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))).
      lin.o_proj.backward(g.dAttn, g.dX, L.attn, rows, s, true, false);
      g.dq.fill(0, 0, rows * h);
      g.dk.fill(0, 0, rows * kvDim);
      g.dv.fill(0, 0, rows * kvDim);
      attentionBackward(g.dq, g.dk, g.dv, g.dAttn, L.attn, L.lse, L.q, L.k, L.v, shape);
      rope(g.dq, rows, c.num_attention_heads, this.headDim, 0, this.cos, this.sin, true);
      rope(g.dk, rows, kvHeads, this.headDim, 0, this.cos, this.sin, true);
      // Below the first layer only the embedding could want a gradient.
      const needInput = li > 0 || embedTrainable;
      const dxn = needInput ? g.dxn : null;
      lin.q_proj.backward(dxn, g.dq, L.xn1, rows, s, true, false);
      lin.k_proj.backward(dxn, g.dk, L.xn1, rows, s, true, true);
      lin.v_proj.backward(dxn, g.dv, L.xn1, rows, s, true, true);
      if (needInput) rmsNormBackward(g.dX, L.inputNorm.grad.length > 0 ? L.inputNorm.grad : null, g.dxn, L.xIn, L.inputNorm.data, L.rstd1, rows, h, true);
    }
    if (embedTrainable) {
      const eg = this.embed.grad;
      for (let t = 0; t < rows; t++) {
        const o = ids[t] * h;
        const r = t * h;
        for (let i = 0; i < h; i++) eg[o + i] += g.dX[r + i];
      }
    }
  }

  /**
   * One sequence's forward and backward: ADDS lossScale · ∂(Σ CE)/∂θ into each trainable gradient. labels[i] is
   * the target of position i − 1 (transformers' shift); -100 is not trained. LoRA dropout draws from rng.
   */
  trainStep(ids: Int32Array, labels: Int32Array, lossScale: number, rng: Rng): StepSums {
    return this.run(ids, labels, rng, lossScale);
  }

  /** Forward only, no dropout: the same sums as trainStep. */
  evaluate(ids: Int32Array, labels: Int32Array): StepSums {
    return this.run(ids, labels, null, null);
  }

  /** Logits of every position, [ids.length × vocab_size] row-major. */
  logits(ids: Int32Array): Float32Array {
    this.checkIds(ids, 'ids');
    const rows = ids.length;
    const c = this.config;
    const out = new Float32Array(rows * c.vocab_size);
    if (rows === 0) return out;
    this.ensure(rows);
    if (this.fullFineTuning) this.invalidateTransposes();
    this.forwardLayers(ids, null, null);
    rmsNormForward(this.hOut, this.rstdOut, this.xOut, this.finalNorm.data, rows, c.hidden_size, c.rms_norm_eps);
    if (rows < 4) gemmABt(out, this.hOut, this.headWeight(), rows, c.vocab_size, c.hidden_size, false);
    else gemm(out, this.hOut, c.hidden_size, 1, this.headTransposed(), rows, c.vocab_size, c.hidden_size, false);
    return out;
  }

  /** An empty cache for up to maxLength positions. */
  newCache(maxLength: number): KvCache {
    if (!Number.isInteger(maxLength) || maxLength <= 0) throw new ModelError('invalid_input', `cache length must be a positive integer, got ${maxLength}`);
    const kvDim = this.config.num_key_value_heads * this.headDim;
    const make = (): Float32Array[] => this.layers.map(() => new Float32Array(maxLength * kvDim));
    return new Qwen2Cache(this, maxLength, make(), make());
  }

  /** Runs ids after what the cache holds and returns the logits [vocab_size] of the last of them. */
  extend(cache: KvCache, ids: Int32Array): Float32Array {
    if (!(cache instanceof Qwen2Cache) || cache.owner !== this) throw new ModelError('invalid_input', 'the cache was not made by this model');
    if (ids.length === 0) throw new ModelError('invalid_input', 'extend needs at least one id');
    if (cache.length + ids.length > cache.maxLength) {
      throw new ModelError('cache_full', `the cache holds ${cache.length} of ${cache.maxLength} positions; ${ids.length} more do not fit`);
    }
    this.checkIds(ids, 'ids');
    const c = this.config;
    const h = c.hidden_size;
    const rows = ids.length;
    this.ensure(rows);
    if (this.fullFineTuning) this.invalidateTransposes();
    this.ensureRope(cache.length + rows);
    if (this.attnScratch.length < cache.length + rows + this.headDim) this.attnScratch = new Float64Array(cache.maxLength + this.headDim);
    this.forwardLayers(ids, null, cache);
    const last = this.xOut.subarray((rows - 1) * h, rows * h);
    rmsNormForward(this.hOut, this.rstdOut, last, this.finalNorm.data, 1, h, c.rms_norm_eps);
    const out = new Float32Array(c.vocab_size);
    gemmABt(out, this.hOut, this.headWeight(), 1, c.vocab_size, h, false);
    return out;
  }

  /**
   * FLOPs per token of a sequence of that length, counted from the shapes (2 per multiply-add): the forward,
   * and a training step (forward + input gradients everywhere + weight gradients of what is trainable).
   * Attention counts the causal half of the score matrix. The backward's recomputation of attention
   * probabilities is an implementation choice and is not counted.
   */
  flopsPerToken(sequenceLength: number): { forward: number; trainStep: number } {
    const c = this.config;
    let dense = c.vocab_size * c.hidden_size;
    let lora = 0;
    for (const layer of this.layers) {
      for (const lin of Object.values(layer.linears)) {
        dense += lin.inDim * lin.outDim;
        if (lin.lora) lora += lin.lora.r * (lin.inDim + lin.outDim);
      }
    }
    const attention = c.num_hidden_layers * 2 * c.num_attention_heads * this.headDim * ((sequenceLength + 1) / 2);
    const forward = 2 * (dense + lora + attention);
    const backward = 2 * dense + 2 * 2 * lora + 2 * 2 * attention + (this.fullFineTuning ? 2 * dense : 0);
    return { forward, trainStep: forward + backward };
  }
}
