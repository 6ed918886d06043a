// The WebAssembly SIMD kernels against the scalar float64 paths of the same exported functions: products with
// every stride form, odd shapes, accumulation and sliced reductions; causal GQA attention forward and backward;
// SwiGLU; and the vectorised exp over its whole range.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  attentionBackward,
  attentionForward,
  gemm,
  swigluBackward,
  swigluForward,
  type AttentionShape,
} from '../backend/engines/embedded/model/kernels';
import { simdKernel } from '../backend/engines/embedded/model/simd';
import { Rng } from '../backend/engines/embedded/model/rng';

const rng = new Rng(77);
const randn = (n: number, scale = 1): Float64Array => Float64Array.from({ length: n }, () => rng.normal() * scale);
const f32 = (x: Float64Array): Float32Array => Float32Array.from(x);

/** Largest absolute difference relative to the largest magnitude of the reference. */
function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

describe('SIMD kernels against the float64 scalar paths', () => {
  it('loads (Node 20 has WebAssembly SIMD)', () => {
    assert.ok(simdKernel(), 'the SIMD kernel did not load');
  });

  it('gemm: row-major and transposed A, odd shapes, accumulate', () => {
    for (const [m, n, k] of [[1, 1, 1], [3, 5, 2], [4, 8, 1], [5, 7, 3], [9, 17, 33], [64, 40, 24]]) {
      for (const transposed of [false, true]) {
        for (const accumulate of [false, true]) {
          const a = randn(m * k);
          const b = randn(k * n);
          const c = randn(m * n);
          const c32 = f32(c);
          const [rs, cs] = transposed ? [1, m] : [k, 1];
          gemm(c, a, rs, cs, b, m, n, k, accumulate);
          gemm(c32, f32(a), rs, cs, f32(b), m, n, k, accumulate);
          const e = relError(c32, c);
          assert.ok(e < 1e-5, `${m}×${n}×${k} transposed=${transposed} accumulate=${accumulate}: ${e}`);
        }
      }
    }
  });

  it('gemm: a reduction too large for one copy runs in slices', () => {
    const [m, n, k] = [5, 1 << 21, 20];
    const a = new Float32Array(m * k).map(() => rng.normal());
    const b = new Float32Array(k * n).map(() => rng.normal());
    const c = new Float32Array(m * n);
    gemm(c, a, k, 1, b, m, n, k, false);
    for (const j of [0, 1, 12345, n - 1]) {
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
        assert.ok(Math.abs(s - c[i * n + j]) < 1e-4, `C[${i}, ${j}]`);
      }
    }
  });

  it('causal GQA attention: out, lse, dq, dk, dv', () => {
    const shapes: AttentionShape[] = [
      { rows: 1, past: 0, heads: 1, kvHeads: 1, headDim: 2 },
      { rows: 5, past: 0, heads: 4, kvHeads: 2, headDim: 4 },
      { rows: 13, past: 0, heads: 6, kvHeads: 3, headDim: 6 },
      { rows: 70, past: 0, heads: 4, kvHeads: 1, headDim: 32 },
    ];
    for (const shape of shapes) {
      const { rows, heads, kvHeads, headDim: d } = shape;
      const q = randn(rows * heads * d);
      const k = randn(rows * kvHeads * d);
      const v = randn(rows * kvHeads * d);
      const dOut = randn(rows * heads * d);
      const out = new Float64Array(q.length);
      const lse = new Float64Array(rows * heads);
      attentionForward(out, lse, q, k, v, shape, new Float64Array(rows + d));
      const out32 = new Float32Array(q.length);
      const lse32 = new Float32Array(rows * heads);
      attentionForward(out32, lse32, f32(q), f32(k), f32(v), shape, new Float64Array(rows + d));
      const grads = [new Float64Array(q.length), new Float64Array(k.length), new Float64Array(v.length)];
      attentionBackward(grads[0], grads[1], grads[2], dOut, out, lse, q, k, v, shape);
      // Start from ones: the backward adds.
      const grads32 = grads.map((g) => new Float32Array(g.length).fill(1));
      attentionBackward(grads32[0], grads32[1], grads32[2], f32(dOut), out32, lse32, f32(q), f32(k), f32(v), shape);
      const what = `${rows} rows, ${heads}/${kvHeads} heads, d ${d}`;
      assert.ok(relError(out32, out) < 1e-5, `${what}: out`);
      assert.ok(relError(lse32, lse) < 1e-5, `${what}: lse`);
      ['dq', 'dk', 'dv'].forEach((name, i) => {
        assert.ok(relError(grads32[i].map((x) => x - 1), grads[i]) < 1e-5, `${what}: ${name}`);
      });
    }
  });

  it('SwiGLU forward and backward, lengths not multiples of 4, large |g|', () => {
    for (const n of [1, 3, 4, 7, 101]) {
      const g = randn(n, 20);
      const u = randn(n);
      const da = randn(n);
      const a = new Float64Array(n);
      const a32 = new Float32Array(n);
      swigluForward(a, g, u, n);
      swigluForward(a32, f32(g), f32(u), n);
      assert.ok(relError(a32, a) < 1e-5, `forward n=${n}`);
      const dg = new Float64Array(n);
      const du = new Float64Array(n);
      const dg32 = new Float32Array(n);
      const du32 = new Float32Array(n);
      swigluBackward(dg, du, da, g, u, n);
      swigluBackward(dg32, du32, f32(da), f32(g), f32(u), n);
      assert.ok(relError(dg32, dg) < 1e-5, `dg n=${n}`);
      assert.ok(relError(du32, du) < 1e-5, `du n=${n}`);
    }
  });

  it('the vectorised exp is within 2 float32 ulp over [−87, 88]', () => {
    const kernel = simdKernel();
    assert.ok(kernel);
    const f = kernel.reserve(64);
    // softmaxGradRows with lse = 0, scale = 1 writes P = e^S for one causal row of one entry.
    const [s, ds, lse, delta] = [0, 8, 16, 24];
    f[lse] = 0;
    f[delta] = 0;
    let worst = 0;
    for (let i = 0; i <= 1000; i++) {
      // The float32 value of the input: its own rounding is not the kernel's error.
      const x = Math.fround(-87 + (175 * i) / 1000);
      f[s] = x;
      kernel.softmaxGradRows(s, ds, 8, 1, 1, lse, delta);
      worst = Math.max(worst, Math.abs(f[s] - Math.exp(x)) / Math.exp(x));
    }
    assert.ok(worst < 2.4e-7, `relative error ${worst}`);
  });
});
