// Every backward pass of the embedded engine against central finite differences: each kernel in float64 (tight
// tolerance), then the whole Qwen2 model in float32 (LoRA grads, full fine-tuning grads with the tied embedding,
// masked labels, dropout) with a tolerance that still catches a wrong sign or factor.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Qwen2Config } from '../backend/engines/embedded/catalog';
import {
  attentionBackward,
  attentionForward,
  crossEntropy,
  gemmABt,
  rmsNormBackward,
  rmsNormForward,
  rope,
  ropeTables,
  swigluBackward,
  swigluForward,
  type AttentionShape,
} from '../backend/engines/embedded/model/kernels';
import { Qwen2Model, type Parameter } from '../backend/engines/embedded/model/qwen2';
import { Rng } from '../backend/engines/embedded/model/rng';

const rng = new Rng(1234);
const randn = (n: number, scale = 1): Float64Array => Float64Array.from({ length: n }, () => rng.normal() * scale);

/** Central differences of f at every coordinate of x (x is restored). */
function numericGrad(x: Float64Array, f: () => number, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = f();
    x[i] = keep - h;
    const down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** Largest absolute difference relative to the largest magnitude of the reference. */
function relError(analytic: ArrayLike<number>, numeric: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < numeric.length; i++) {
    diff = Math.max(diff, Math.abs(analytic[i] - numeric[i]));
    scale = Math.max(scale, Math.abs(numeric[i]));
  }
  return diff / scale;
}

function assertClose(analytic: ArrayLike<number>, numeric: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(analytic.length, numeric.length, `${what}: lengths`);
  const e = relError(analytic, numeric);
  assert.ok(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
}

const weighted = (y: ArrayLike<number>, w: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += y[i] * w[i];
  return s;
};

describe('kernels against finite differences (float64)', () => {
  it('gemmABt matches the naive product on shapes that are not multiples of 4, and accumulates', () => {
    for (const [m, n, k] of [[1, 1, 1], [5, 7, 3], [8, 4, 9], [6, 13, 16]]) {
      const a = randn(m * k);
      const b = randn(n * k);
      const c = randn(m * n);
      const before = c.slice();
      gemmABt(c, a, b, m, n, k, true);
      const fresh = new Float64Array(m * n);
      gemmABt(fresh, a, b, m, n, k, false);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
          assert.ok(Math.abs(fresh[i * n + j] - s) < 1e-12, `C[${i},${j}] of ${m}×${n}×${k}`);
          assert.ok(Math.abs(c[i * n + j] - before[i * n + j] - s) < 1e-12, `accumulated C[${i},${j}]`);
        }
      }
    }
  });

  it('RMSNorm: dx and dw', () => {
    const rows = 3;
    const n = 8;
    const x = randn(rows * n);
    const w = randn(n);
    const dy = randn(rows * n);
    const y = new Float64Array(rows * n);
    const rstd = new Float64Array(rows);
    const loss = (): number => {
      rmsNormForward(y, rstd, x, w, rows, n, 1e-6);
      return weighted(y, dy);
    };
    loss();
    const dx = new Float64Array(rows * n);
    const dw = new Float64Array(n);
    rmsNormBackward(dx, dw, dy, x, w, rstd, rows, n, false);
    // The forward rounds its scale to float32 like transformers; a larger step keeps that below the tolerance.
    assertClose(dx, numericGrad(x, loss, 1e-3), 1e-3, 'dx');
    assertClose(dw, numericGrad(w, loss, 1e-3), 1e-3, 'dw');
    // accumulate adds to what is there
    const acc = Float64Array.from(dx, () => 1);
    rmsNormBackward(acc, null, dy, x, w, rstd, rows, n, true);
    for (let i = 0; i < acc.length; i++) assert.ok(Math.abs(acc[i] - 1 - dx[i]) < 1e-12);
  });

  it('RoPE: the inverse rotation is the backward pass, at an offset position', () => {
    const rows = 4;
    const heads = 3;
    const d = 8;
    const { cos, sin } = ropeTables(16, d, 10000);
    const x = randn(rows * heads * d);
    const dy = randn(rows * heads * d);
    const loss = (): number => {
      const y = x.slice();
      rope(y, rows, heads, d, 5, cos, sin, false);
      return weighted(y, dy);
    };
    const dx = dy.slice();
    rope(dx, rows, heads, d, 5, cos, sin, true);
    assertClose(dx, numericGrad(x, loss), 1e-7, 'dx');
    // position 0 is the identity, other positions are not
    const y = x.slice();
    rope(y, 1, heads, d, 0, cos, sin, false);
    assert.deepEqual(Array.from(y.subarray(0, heads * d)), Array.from(x.subarray(0, heads * d)));
  });

  it('causal GQA attention (4 heads, 2 kv heads): dq, dk, dv', () => {
    const shape: AttentionShape = { rows: 5, past: 0, heads: 4, kvHeads: 2, headDim: 4 };
    const { rows, heads, kvHeads, headDim: d } = shape;
    const q = randn(rows * heads * d);
    const k = randn(rows * kvHeads * d);
    const v = randn(rows * kvHeads * d);
    const dOut = randn(rows * heads * d);
    const out = new Float64Array(rows * heads * d);
    const lse = new Float64Array(rows * heads);
    const scratch = new Float64Array(rows + d);
    const loss = (): number => {
      attentionForward(out, lse, q, k, v, shape, scratch);
      return weighted(out, dOut);
    };
    loss();
    const dq = new Float64Array(q.length);
    const dk = new Float64Array(k.length);
    const dv = new Float64Array(v.length);
    attentionBackward(dq, dk, dv, dOut, out, lse, q, k, v, shape);
    assertClose(dq, numericGrad(q, loss), 1e-7, 'dq');
    assertClose(dk, numericGrad(k, loss), 1e-7, 'dk');
    assertClose(dv, numericGrad(v, loss), 1e-7, 'dv');
    // causal: the first row sees only the first key, so its output is that value row
    for (let j = 0; j < d; j++) assert.ok(Math.abs(out[j] - v[j]) < 1e-12);
  });

  it('SwiGLU: dg and du', () => {
    const n = 12;
    const g = randn(n, 2);
    const u = randn(n);
    const da = randn(n);
    const a = new Float64Array(n);
    const loss = (): number => {
      swigluForward(a, g, u, n);
      return weighted(a, da);
    };
    const dg = new Float64Array(n);
    const du = new Float64Array(n);
    swigluBackward(dg, du, da, g, u, n);
    assertClose(dg, numericGrad(g, loss), 1e-7, 'dg');
    assertClose(du, numericGrad(u, loss), 1e-7, 'du');
  });

  it('cross-entropy: dLogits, scale, argmax hits', () => {
    const rows = 4;
    const vocab = 7;
    const logits = randn(rows * vocab, 2);
    const targets = Int32Array.from([0, 3, 6, 2]);
    const d = new Float64Array(rows * vocab);
    const sums = crossEntropy(logits, targets, rows, vocab, d, 1);
    const num = numericGrad(logits, () => crossEntropy(logits, targets, rows, vocab, null, 0).lossSum);
    assertClose(d, num, 1e-7, 'dLogits');
    const half = new Float64Array(rows * vocab);
    crossEntropy(logits, targets, rows, vocab, half, 0.5);
    for (let i = 0; i < d.length; i++) assert.ok(Math.abs(half[i] - 0.5 * d[i]) < 1e-12);
    let hits = 0;
    for (let t = 0; t < rows; t++) {
      const row = Array.from(logits.subarray(t * vocab, (t + 1) * vocab));
      if (row.indexOf(Math.max(...row)) === targets[t]) hits++;
    }
    assert.equal(sums.correct, hits);
    assert.ok(sums.lossSum > 0);
  });
});

/** A 2-layer toy Qwen2 (GQA 4/2) whose weights are scaled up so that gradients stand out of float32 noise. */
function toyConfig(tied: boolean): Qwen2Config {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: 24,
    hidden_size: 16,
    intermediate_size: 20,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: tied,
    hidden_act: 'silu',
    bos_token_id: 0,
    eos_token_id: 1,
    torch_dtype: 'float32',
    attention_dropout: 0,
    use_sliding_window: false,
  };
}

function toyModel(tied: boolean, seed: number): Qwen2Model {
  const m = Qwen2Model.init(toyConfig(tied), seed);
  // Larger weights than transformers' 0.02 so every path carries signal; norms and biases non-trivial.
  m.setFullFineTuning(true);
  const r = new Rng(seed + 1);
  for (const p of m.parameters()) {
    const isNorm = p.name.includes('norm');
    for (let i = 0; i < p.data.length; i++) p.data[i] = isNorm ? 1 + 0.3 * r.normal() : p.data[i] * 15 + (p.name.endsWith('bias') ? 0.2 * r.normal() : 0);
  }
  m.setFullFineTuning(false);
  return m;
}

const ids = Int32Array.from([3, 7, 1, 22, 5, 9, 14, 2]);
const labels = Int32Array.from([-100, 7, 1, -100, 5, 9, -100, 2]);

/**
 * Checks the model's gradients against central differences of Σ CE: per tensor, the directional derivative along
 * a random direction (catches a wrong factor), and per coordinate for the largest entries (catches a wrong sign).
 */
function checkModelGrads(model: Qwen2Model, params: Parameter[], rngState: number[] | null): void {
  const loss = (): number => (rngState ? model.trainStep(ids, labels, 0, Rng.fromState(rngState)) : model.evaluate(ids, labels)).lossSum;
  model.zeroGrad();
  model.trainStep(ids, labels, 1, rngState ? Rng.fromState(rngState) : new Rng(0));
  // Small enough that the toy model is close to linear along the step, large enough for float32.
  const h = 1e-3;
  const dirRng = new Rng(99);
  for (const p of params) {
    const grad = p.grad.slice();
    const base = p.data.slice();
    const dir = Float32Array.from({ length: base.length }, () => dirRng.normal());
    const shift = (sign: number): void => {
      for (let i = 0; i < base.length; i++) p.data[i] = base[i] + sign * h * dir[i];
    };
    shift(1);
    const up = loss();
    shift(-1);
    const down = loss();
    p.data.set(base);
    const numeric = (up - down) / (2 * h);
    let analytic = 0;
    let gradNorm = 0;
    for (let i = 0; i < grad.length; i++) {
      analytic += grad[i] * dir[i];
      gradNorm += grad[i] * grad[i];
    }
    gradNorm = Math.sqrt(gradNorm);
    assert.ok(gradNorm > 1e-3, `${p.name}: gradient is (almost) zero (${gradNorm})`);
    assert.ok(Math.abs(analytic - numeric) < 0.02 * Math.abs(numeric) + 1e-3 * gradNorm, `${p.name}: directional derivative ${analytic} vs finite difference ${numeric}`);
    // The three largest entries one by one.
    const top = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a])).slice(0, 3);
    for (const i of top) {
      p.data[i] = base[i] + h;
      const u = loss();
      p.data[i] = base[i] - h;
      const d = loss();
      p.data[i] = base[i];
      const num = (u - d) / (2 * h);
      assert.ok(Math.abs(grad[i] - num) < 0.03 * Math.abs(num) + 2e-3 * gradNorm, `${p.name}[${i}]: ${grad[i]} vs finite difference ${num}`);
    }
  }
}

describe('the Qwen2 model against finite differences (float32)', () => {
  it('LoRA A and B gradients on all seven projections (B non-zero so A gets a gradient)', () => {
    const model = toyModel(true, 11);
    model.addLora({ r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, 5);
    const r = new Rng(6);
    for (const p of model.parameters()) if (p.name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.3 * r.normal();
    const params = model.parameters();
    assert.equal(params.length, 2 * 7 * 2);
    assert.ok(params.every((p) => p.name.startsWith('base_model.model.model.layers.')));
    checkModelGrads(model, params, null);
  });

  it('LoRA gradients with dropout (the same mask drawn again from the same RNG state)', () => {
    const model = toyModel(true, 12);
    model.addLora({ r: 2, alpha: 4, dropout: 0.3, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, 5);
    const r = new Rng(7);
    for (const p of model.parameters()) if (p.name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.3 * r.normal();
    const state = new Rng(42).getState();
    checkModelGrads(model, model.parameters(), state);
    // dropout really drew masks: two different RNG states give different losses
    const a = model.trainStep(ids, labels, 0, new Rng(1)).lossSum;
    const b = model.trainStep(ids, labels, 0, new Rng(2)).lossSum;
    assert.notEqual(a, b);
  });

  it('full fine-tuning, tied embedding: every weight, norm and bias', () => {
    const model = toyModel(true, 13);
    model.setFullFineTuning(true);
    const params = model.parameters();
    assert.ok(params.some((p) => p.name === 'model.embed_tokens.weight'));
    assert.ok(!params.some((p) => p.name === 'lm_head.weight'));
    checkModelGrads(model, params, null);
  });

  it('full fine-tuning, untied head', () => {
    const model = toyModel(false, 14);
    model.setFullFineTuning(true);
    const params = model.parameters();
    assert.ok(params.some((p) => p.name === 'lm_head.weight'));
    checkModelGrads(model, params.filter((p) => /embed|lm_head|layers\.0\.self_attn\.q_proj|norm/.test(p.name)), null);
  });

  it('masked labels (-100) add nothing; lossScale scales the gradient; gradients accumulate', () => {
    const model = toyModel(true, 15);
    model.addLora({ r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'up_proj'] }, 3);
    const r = new Rng(8);
    for (const p of model.parameters()) if (p.name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.3 * r.normal();
    const sums = model.evaluate(ids, labels);
    assert.equal(sums.tokens, 5);
    // Only the labelled positions count: the same sum from one-label-at-a-time runs.
    let total = 0;
    for (let i = 1; i < labels.length; i++) {
      if (labels[i] === -100) continue;
      const one = new Int32Array(labels.length).fill(-100);
      one[i] = labels[i];
      total += model.evaluate(ids, one).lossSum;
    }
    assert.ok(Math.abs(total - sums.lossSum) < 1e-4 * sums.lossSum);
    const none = new Int32Array(labels.length).fill(-100);
    model.zeroGrad();
    assert.deepEqual(model.trainStep(ids, none, 1, new Rng(0)), { lossSum: 0, tokens: 0, correct: 0 });
    assert.ok(model.parameters().every((p) => p.grad.every((g) => g === 0)));
    model.trainStep(ids, labels, 1, new Rng(0));
    const once = model.parameters().map((p) => p.grad.slice());
    model.zeroGrad();
    model.trainStep(ids, labels, 0.25, new Rng(0));
    model.trainStep(ids, labels, 0.25, new Rng(0));
    model.parameters().forEach((p, k) => {
      for (let i = 0; i < p.grad.length; i++) assert.ok(Math.abs(p.grad[i] - 0.5 * once[k][i]) <= 1e-6 + 1e-4 * Math.abs(once[k][i]), `${p.name}[${i}]`);
    });
  });
});
