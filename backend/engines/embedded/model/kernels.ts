// The numeric kernels of the embedded engine, each a plain loop over contiguous typed arrays with the sizes passed
// in: callers own (and reuse) every buffer, so the hot loop allocates nothing. Arithmetic runs in float64 (what JS
// numbers are) and is stored into the buffers' precision; the model uses Float32Array, the gradient tests pass
// Float64Array to check each backward against finite differences without float32 noise.
//
// The matrix products, attention and SwiGLU have a second path when every buffer is a Float32Array: the
// WebAssembly SIMD kernels of ./simd (float32 arithmetic; products ~15× the scalar loops, a vectorised exp), which
// work in their own memory. Attention there is per-head matrix products over the causal blocks only. The scalar
// loops stay as the reference, as the float64 path of the finite-difference tests, as the path of generation's
// KV-cache steps, and as the fallback where WebAssembly SIMD is unavailable.
import {
  GEMM_ACCUMULATE,
  GEMM_CAUSAL_K_LOWER,
  GEMM_CAUSAL_K_UPPER,
  GEMM_CAUSAL_N,
  roundUp,
  simdKernel,
  type SimdKernel,
} from './simd';

/** A buffer of values: Float32Array in the model, Float64Array in the finite-difference tests. */
export type Vec = Float32Array | Float64Array;

/** The SIMD kernel when every buffer is float32 and the kernel loaded; null means: take the scalar loops. */
function simdFor(...buffers: Vec[]): SimdKernel | null {
  for (const x of buffers) if (!(x instanceof Float32Array)) return null;
  return simdKernel();
}

/**
 * C[m×n] = op(A)·B (or += when `accumulate`), B row-major [k×n], and A read through strides: element (i, p) at
 * a[i·rs + p·cs]. (rs, cs) = (k, 1) is A row-major [m×k]; (1, m) is the transpose of a row-major [k×m], so
 * weight gradients (dyᵀ·x) need no transposed copy. Float32 buffers go to the SIMD kernel.
 */
export function gemm(c: Vec, a: Vec, rs: number, cs: number, b: Vec, m: number, n: number, k: number, accumulate: boolean): void {
  if (m === 0 || n === 0) return;
  if (k === 0) {
    if (!accumulate) c.fill(0, 0, m * n);
    return;
  }
  const simd = simdFor(c, a, b);
  if (simd) {
    simdGemm(simd, c as Float32Array, a as Float32Array, rs, cs, b as Float32Array, m, n, k, accumulate);
    return;
  }
  gemmScalar(c, a, rs, cs, b, m, n, k, accumulate);
}

/** `gemm` in scalar JS: 4×4 blocks of C in locals (16 sums share 4 loads of A and 4 of B per step), float64 sums. */
function gemmScalar(c: Vec, a: Vec, rs: number, cs: number, b: Vec, m: number, n: number, k: number, accumulate: boolean): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = i * rs;
    const a1 = a0 + rs;
    const a2 = a1 + rs;
    const a3 = a2 + rs;
    for (let j = 0; j < n4; j += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let p = 0; p < k; p++) {
        const ap = p * cs;
        const x0 = a[a0 + ap];
        const x1 = a[a1 + ap];
        const x2 = a[a2 + ap];
        const x3 = a[a3 + ap];
        const bo = p * n + j;
        const y0 = b[bo];
        const y1 = b[bo + 1];
        const y2 = b[bo + 2];
        const y3 = b[bo + 3];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      const r0 = i * n + j;
      const r1 = r0 + n;
      const r2 = r1 + n;
      const r3 = r2 + n;
      if (accumulate) {
        c[r0] += c00; c[r0 + 1] += c01; c[r0 + 2] += c02; c[r0 + 3] += c03;
        c[r1] += c10; c[r1 + 1] += c11; c[r1 + 2] += c12; c[r1 + 3] += c13;
        c[r2] += c20; c[r2 + 1] += c21; c[r2 + 2] += c22; c[r2 + 3] += c23;
        c[r3] += c30; c[r3 + 1] += c31; c[r3 + 2] += c32; c[r3 + 3] += c33;
      } else {
        c[r0] = c00; c[r0 + 1] = c01; c[r0 + 2] = c02; c[r0 + 3] = c03;
        c[r1] = c10; c[r1 + 1] = c11; c[r1 + 2] = c12; c[r1 + 3] = c13;
        c[r2] = c20; c[r2 + 1] = c21; c[r2 + 2] = c22; c[r2 + 3] = c23;
        c[r3] = c30; c[r3 + 1] = c31; c[r3 + 2] = c32; c[r3 + 3] = c33;
      }
    }
  }
  // The edges (rows below m4 or columns right of n4), one output at a time.
  for (let i = 0; i < m; i++) {
    for (let j = i < m4 ? n4 : 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * rs + p * cs] * b[p * n + j];
      if (accumulate) c[i * n + j] += sum;
      else c[i * n + j] = sum;
    }
  }
}

/**
 * Floats of B copied into the kernel per call (64 MiB): larger products (an LM head of a full-size vocabulary)
 * run in slices of the reduction, so the kernel's memory (which never shrinks) stays bounded.
 */
const GEMM_SLICE = 1 << 24;

/** `gemm` on the SIMD kernel: operands copied into its memory (contiguous copies), the result copied back. */
function simdGemm(K: SimdKernel, c: Float32Array, a: Float32Array, rs: number, cs: number, b: Float32Array, m: number, n: number, k: number, accumulate: boolean): void {
  const slice = Math.max(1, Math.floor(GEMM_SLICE / n));
  if (k > slice) {
    for (let p0 = 0; p0 < k; p0 += slice) {
      const p1 = Math.min(k, p0 + slice);
      simdGemm(K, c, a.subarray(p0 * cs), rs, cs, b.subarray(p0 * n, p1 * n), m, n, p1 - p0, accumulate || p0 > 0);
    }
    return;
  }
  const mPad = roundUp(m, 4);
  const nPad = roundUp(n, 8);
  const aUsed = (m - 1) * rs + (k - 1) * cs + 1;
  // The kernel reads rows up to mPad and columns up to nPad; what it reads there only feeds unused outputs.
  const aOff = 0;
  const bOff = aOff + roundUp((mPad - 1) * rs + (k - 1) * cs + 1, 4);
  const cOff = bOff + roundUp(k * n + nPad, 4);
  const f = K.reserve(cOff + mPad * nPad);
  f.set(a.length === aUsed ? a : a.subarray(0, aUsed), aOff);
  f.set(b.length === k * n ? b : b.subarray(0, k * n), bOff);
  if (accumulate) {
    if (n === nPad) f.set(c.subarray(0, m * n), cOff);
    else for (let i = 0; i < m; i++) f.set(c.subarray(i * n, i * n + n), cOff + i * nPad);
  }
  K.gemm(cOff, nPad, aOff, rs, cs, bOff, n, m, n, k, accumulate ? GEMM_ACCUMULATE : 0);
  if (n === nPad) c.set(f.subarray(cOff, cOff + m * n));
  else for (let i = 0; i < m; i++) c.set(f.subarray(cOff + i * nPad, cOff + i * nPad + n), i * n);
}

/**
 * C[m×n] = A[m×k] · B[n×k]ᵀ (or += when `accumulate`). Every operand is row-major, so each output is a dot
 * product of two contiguous rows; a 4×4 block of outputs shares the loads of 4 rows of A and 4 of B.
 */
export function gemmABt(c: Vec, a: Vec, b: Vec, m: number, n: number, k: number, accumulate: boolean): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = i * k;
    const a1 = a0 + k;
    const a2 = a1 + k;
    const a3 = a2 + k;
    const r0 = i * n;
    const r1 = r0 + n;
    const r2 = r1 + n;
    const r3 = r2 + n;
    for (let j = 0; j < n4; j += 4) {
      const b0 = j * k;
      const b1 = b0 + k;
      const b2 = b1 + k;
      const b3 = b2 + k;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = a[a0 + p];
        const x1 = a[a1 + p];
        const x2 = a[a2 + p];
        const x3 = a[a3 + p];
        const y0 = b[b0 + p];
        const y1 = b[b1 + p];
        const y2 = b[b2 + p];
        const y3 = b[b3 + p];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      if (accumulate) {
        c[r0 + j] += c00; c[r0 + j + 1] += c01; c[r0 + j + 2] += c02; c[r0 + j + 3] += c03;
        c[r1 + j] += c10; c[r1 + j + 1] += c11; c[r1 + j + 2] += c12; c[r1 + j + 3] += c13;
        c[r2 + j] += c20; c[r2 + j + 1] += c21; c[r2 + j + 2] += c22; c[r2 + j + 3] += c23;
        c[r3 + j] += c30; c[r3 + j + 1] += c31; c[r3 + j + 2] += c32; c[r3 + j + 3] += c33;
      } else {
        c[r0 + j] = c00; c[r0 + j + 1] = c01; c[r0 + j + 2] = c02; c[r0 + j + 3] = c03;
        c[r1 + j] = c10; c[r1 + j + 1] = c11; c[r1 + j + 2] = c12; c[r1 + j + 3] = c13;
        c[r2 + j] = c20; c[r2 + j + 1] = c21; c[r2 + j + 2] = c22; c[r2 + j + 3] = c23;
        c[r3 + j] = c30; c[r3 + j + 1] = c31; c[r3 + j + 2] = c32; c[r3 + j + 3] = c33;
      }
    }
    for (let j = n4; j < n; j++) {
      const b0 = j * k;
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let p = 0; p < k; p++) {
        const y = b[b0 + p];
        c0 += a[a0 + p] * y;
        c1 += a[a1 + p] * y;
        c2 += a[a2 + p] * y;
        c3 += a[a3 + p] * y;
      }
      if (accumulate) {
        c[r0 + j] += c0; c[r1 + j] += c1; c[r2 + j] += c2; c[r3 + j] += c3;
      } else {
        c[r0 + j] = c0; c[r1 + j] = c1; c[r2 + j] = c2; c[r3 + j] = c3;
      }
    }
  }
  for (let i = m4; i < m; i++) {
    const a0 = i * k;
    for (let j = 0; j < n; j++) {
      const s = dot(a, a0, b, j * k, k);
      if (accumulate) c[i * n + j] += s;
      else c[i * n + j] = s;
    }
  }
}

/** Σ a[ai + p] · b[bi + p] for p < k, four partial sums so the adds do not wait on each other. */
export function dot(a: Vec, ai: number, b: Vec, bi: number, k: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let p = 0;
  for (; p + 4 <= k; p += 4) {
    s0 += a[ai + p] * b[bi + p];
    s1 += a[ai + p + 1] * b[bi + p + 1];
    s2 += a[ai + p + 2] * b[bi + p + 2];
    s3 += a[ai + p + 3] * b[bi + p + 3];
  }
  for (; p < k; p++) s0 += a[ai + p] * b[bi + p];
  return s0 + s1 + s2 + s3;
}

/** out[cols×rows] = inᵀ for a row-major in[rows×cols]. */
export function transpose(out: Vec, x: Vec, rows: number, cols: number): void {
  // Blocks of 16×16 keep both the reads and the writes within a few cache lines.
  for (let i0 = 0; i0 < rows; i0 += 16) {
    const i1 = Math.min(rows, i0 + 16);
    for (let j0 = 0; j0 < cols; j0 += 16) {
      const j1 = Math.min(cols, j0 + 16);
      for (let i = i0; i < i1; i++) {
        const row = i * cols;
        for (let j = j0; j < j1; j++) out[j * rows + i] = x[row + j];
      }
    }
  }
}

/** out[t, o] += bias[o] for every row t < rows. */
export function addBias(out: Vec, bias: Vec, rows: number, n: number): void {
  for (let t = 0; t < rows; t++) {
    const r = t * n;
    for (let o = 0; o < n; o++) out[r + o] += bias[o];
  }
}

/** grad[o] += Σ_t dy[t, o]: the gradient of a bias. */
export function addColumnSums(grad: Vec, dy: Vec, rows: number, n: number): void {
  for (let t = 0; t < rows; t++) {
    const r = t * n;
    for (let o = 0; o < n; o++) grad[o] += dy[r + o];
  }
}

/** RMSNorm forward: y = x / sqrt(mean(x²) + eps) · w per row; keeps 1/sqrt(…) per row in `rstd` for backward. */
export function rmsNormForward(y: Vec, rstd: Vec, x: Vec, w: Vec, rows: number, n: number, eps: number): void {
  for (let t = 0; t < rows; t++) {
    const r = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[r + i] * x[r + i];
    // Rounded to float32 as transformers computes the variance and its rsqrt in float32.
    const s = Math.fround(1 / Math.sqrt(Math.fround(ss / n) + eps));
    rstd[t] = s;
    for (let i = 0; i < n; i++) y[r + i] = w[i] * Math.fround(x[r + i] * s);
  }
}

/**
 * RMSNorm backward: dx (+)= ∂L/∂x given dy; dw += ∂L/∂w when `dw` is given. With y = w·x·s, s = (mean(x²)+eps)^-½:
 * dx_i = s·w_i·dy_i − s³/n · x_i · Σ_j w_j·dy_j·x_j.
 */
export function rmsNormBackward(dx: Vec, dw: Vec | null, dy: Vec, x: Vec, w: Vec, rstd: Vec, rows: number, n: number, accumulate: boolean): void {
  for (let t = 0; t < rows; t++) {
    const r = t * n;
    const s = rstd[t];
    let sum = 0;
    for (let i = 0; i < n; i++) sum += w[i] * dy[r + i] * x[r + i];
    const c = (s * s * s * sum) / n;
    if (accumulate) for (let i = 0; i < n; i++) dx[r + i] += s * w[i] * dy[r + i] - c * x[r + i];
    else for (let i = 0; i < n; i++) dx[r + i] = s * w[i] * dy[r + i] - c * x[r + i];
    if (dw) for (let i = 0; i < n; i++) dw[i] += dy[r + i] * x[r + i] * s;
  }
}

/**
 * Rotary embedding tables for positions [0, positions): cos and sin of position · θ^(−2i/d), i < d/2, computed
 * like transformers (inverse frequencies and their products with the position rounded to float32).
 */
export function ropeTables(positions: number, headDim: number, theta: number): { cos: Float64Array; sin: Float64Array } {
  const half = headDim / 2;
  const cos = new Float64Array(positions * half);
  const sin = new Float64Array(positions * half);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
    for (let p = 0; p < positions; p++) {
      const angle = Math.fround(p * invFreq);
      cos[p * half + i] = Math.fround(Math.cos(angle));
      sin[p * half + i] = Math.fround(Math.sin(angle));
    }
  }
  return { cos, sin };
}

/**
 * Applies the rotation in place to x[rows × heads·d] (rotate_half convention: the head split in two halves),
 * row t at position start + t. `inverse` rotates back, which is also the backward pass (a rotation's transpose).
 */
export function rope(x: Vec, rows: number, heads: number, headDim: number, start: number, cos: Float64Array, sin: Float64Array, inverse: boolean): void {
  const half = headDim / 2;
  const sign = inverse ? -1 : 1;
  for (let t = 0; t < rows; t++) {
    const tab = (start + t) * half;
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[tab + i];
        const s = sign * sin[tab + i];
        const a = x[o + i];
        const b = x[o + i + half];
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}

/** Shapes of one attention call. */
export interface AttentionShape {
  /** Query rows in this call. */
  rows: number;
  /** Key/value rows before the first query (a KV cache); query t sees keys 0 … past + t. */
  past: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Causal grouped-query attention. q[rows × heads·d], k and v[(past+rows) × kvHeads·d]; query head h reads kv head
 * ⌊h / (heads/kvHeads)⌋. Writes out[rows × heads·d] and, per head and row, the log-sum-exp of the scaled scores
 * (lse[h·rows + t]) so the backward pass can recompute the probabilities instead of storing rows×rows of them.
 * `scratch` needs past+rows+d values.
 */
export function attentionForward(out: Vec, lse: Vec | null, q: Vec, k: Vec, v: Vec, shape: AttentionShape, scratch: Float64Array): void {
  const simd = shape.past === 0 && simdAttentionFits(shape) ? simdFor(out, q, k, v, ...(lse ? [lse] : [])) : null;
  if (simd) {
    simdAttentionForward(simd, out as Float32Array, lse as Float32Array | null, q as Float32Array, k as Float32Array, v as Float32Array, shape);
    return;
  }
  const { rows, past, heads, kvHeads, headDim: d } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const qStride = heads * d;
  const kvStride = kvHeads * d;
  const acc = scratch.subarray(past + rows, past + rows + d);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group) * d;
    for (let t = 0; t < rows; t++) {
      const qo = t * qStride + h * d;
      const seen = past + t + 1;
      let max = -Infinity;
      for (let s = 0; s < seen; s++) {
        const score = dot(q, qo, k, s * kvStride + g, d) * scale;
        scratch[s] = score;
        if (score > max) max = score;
      }
      let sum = 0;
      for (let s = 0; s < seen; s++) {
        const e = Math.exp(scratch[s] - max);
        scratch[s] = e;
        sum += e;
      }
      acc.fill(0);
      for (let s = 0; s < seen; s++) {
        const p = scratch[s];
        const vo = s * kvStride + g;
        for (let j = 0; j < d; j++) acc[j] += p * v[vo + j];
      }
      const inv = 1 / sum;
      for (let j = 0; j < d; j++) out[qo + j] = acc[j] * inv;
      if (lse) lse[h * rows + t] = max + Math.log(sum);
    }
  }
}

/**
 * Backward of `attentionForward` (past = 0): from dOut and the forward's out and lse, ADDS into dq, dk, dv.
 * With P = softmax(S), dS = P ∘ (dP − rowsum(dOut ∘ out)), dq = scale·dS·K, dk = scale·dSᵀ·Q, dv = Pᵀ·dOut.
 */
export function attentionBackward(dq: Vec, dk: Vec, dv: Vec, dOut: Vec, out: Vec, lse: Vec, q: Vec, k: Vec, v: Vec, shape: AttentionShape): void {
  const simd = simdAttentionFits(shape) ? simdFor(dq, dk, dv, dOut, out, lse, q, k, v) : null;
  if (simd) {
    const f32 = [dq, dk, dv, dOut, out, lse, q, k, v] as Float32Array[];
    simdAttentionBackward(simd, f32[0], f32[1], f32[2], f32[3], f32[4], f32[5], f32[6], f32[7], f32[8], shape);
    return;
  }
  const { rows, heads, kvHeads, headDim: d } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const qStride = heads * d;
  const kvStride = kvHeads * d;
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group) * d;
    for (let t = 0; t < rows; t++) {
      const qo = t * qStride + h * d;
      const rowLse = lse[h * rows + t];
      const delta = dot(dOut, qo, out, qo, d);
      for (let s = 0; s <= t; s++) {
        const ko = s * kvStride + g;
        const p = Math.exp(dot(q, qo, k, ko, d) * scale - rowLse);
        const dp = dot(dOut, qo, v, ko, d);
        const ds = p * (dp - delta) * scale;
        for (let j = 0; j < d; j++) {
          dq[qo + j] += ds * k[ko + j];
          dk[ko + j] += ds * q[qo + j];
          dv[ko + j] += p * dOut[qo + j];
        }
      }
    }
  }
}

/** Where the attention operands sit in the SIMD kernel's memory (float offsets) for rows T. */
interface AttentionLayout {
  /** T rounded up to the kernel's row block (4) and column block (8); head dimension rounded up to 8. */
  t4: number;
  t8: number;
  dPad: number;
  q: number;
  k: number;
  v: number;
  /** K and V of one kv head transposed, [d × t8]. */
  kT: number;
  vT: number;
  /** Scores / probabilities and their gradient, [t4 × t8]. */
  s: number;
  ds: number;
  /** One head's output or gradient, and per-kv-head gradient sums, [t4 × dPad]. */
  o: number;
  dk: number;
  dv: number;
  dOut: number;
  /** Per-row softmax statistics (max, Σ) of the forward; lse and δ of one head in the backward. */
  stats: number;
  lse: number;
  delta: number;
  end: number;
}

function attentionLayout(shape: AttentionShape, backward: boolean): AttentionLayout {
  const { rows: t, heads, kvHeads, headDim: d } = shape;
  const t4 = roundUp(t, 4);
  const t8 = roundUp(t, 8);
  const dPad = roundUp(d, 8);
  // Each region has room for the padded rows and columns the kernel reads (their values feed unused outputs).
  const qLen = roundUp(t4 * heads * d + dPad, 4);
  const kvLen = roundUp(t4 * kvHeads * d + dPad, 4);
  const sLen = t4 * t8;
  const oLen = t4 * dPad;
  const l: AttentionLayout = { t4, t8, dPad, q: 0, k: 0, v: 0, kT: 0, vT: 0, s: 0, ds: 0, o: 0, dk: 0, dv: 0, dOut: 0, stats: 0, lse: 0, delta: 0, end: 0 };
  let at = 0;
  const take = (n: number): number => {
    const o = at;
    at += n;
    return o;
  };
  l.q = take(qLen);
  l.k = take(kvLen);
  l.v = take(kvLen);
  l.kT = take(d * t8);
  l.vT = backward ? take(d * t8) : 0;
  l.s = take(sLen);
  l.ds = backward ? take(sLen) : 0;
  l.o = take(oLen);
  l.dk = backward ? take(oLen) : 0;
  l.dv = backward ? take(oLen) : 0;
  l.dOut = backward ? take(qLen) : 0;
  l.stats = take(2 * t4);
  l.lse = take(t4);
  l.delta = take(t4);
  l.end = at;
  return l;
}

/**
 * Whether the SIMD attention's buffers (two rows × rows score matrices and the operands) stay within 1 GiB of the
 * kernel's memory; longer sequences take the scalar loops, whose memory is linear in the length.
 */
function simdAttentionFits(shape: AttentionShape): boolean {
  return attentionLayout(shape, true).end <= 1 << 28;
}

/** dst[j·t8 + s] = src[s·stride + j] for s < rows, j < d: one kv head's K or V transposed into the kernel. */
function transposeHead(f: Float32Array, dst: number, src: number, rows: number, stride: number, d: number, t8: number): void {
  for (let s = 0; s < rows; s++) {
    const o = src + s * stride;
    for (let j = 0; j < d; j++) f[dst + j * t8 + s] = f[o + j];
  }
}

/**
 * `attentionForward` (past = 0) as per-head matrix products on the SIMD kernel: S = Q_h·K_gᵀ over the causal
 * blocks only, a row softmax in place, O = P·V_g over the causal blocks only. GQA by offsets into K and V.
 */
function simdAttentionForward(K: SimdKernel, out: Float32Array, lse: Float32Array | null, q: Float32Array, k: Float32Array, v: Float32Array, shape: AttentionShape): void {
  const { rows: t, heads, kvHeads, headDim: d } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const qStride = heads * d;
  const kvStride = kvHeads * d;
  const l = attentionLayout(shape, false);
  const f = K.reserve(l.end);
  const { t8, dPad } = l;
  f.set(q.subarray(0, t * qStride), l.q);
  f.set(k.subarray(0, t * kvStride), l.k);
  f.set(v.subarray(0, t * kvStride), l.v);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group);
    if (h % group === 0) transposeHead(f, l.kT, l.k + g * d, t, kvStride, d, t8);
    K.gemm(l.s, t8, l.q + h * d, qStride, 1, l.kT, t8, t, t, d, GEMM_CAUSAL_N);
    // P·V below reduces over p < the row block's end: softmaxRows zeroes the masked entries up to there.
    K.softmaxRows(l.s, t8, t, scale, l.stats);
    if (lse) for (let r = 0; r < t; r++) lse[h * t + r] = f[l.stats + 2 * r] + Math.log(f[l.stats + 2 * r + 1]);
    K.gemm(l.o, dPad, l.s, t8, 1, l.v + g * d, kvStride, t, d, t, GEMM_CAUSAL_K_UPPER);
    for (let r = 0; r < t; r++) out.set(f.subarray(l.o + r * dPad, l.o + r * dPad + d), r * qStride + h * d);
  }
}

/**
 * `attentionBackward` as per-head matrix products on the SIMD kernel, the probabilities recomputed from lse:
 * S = Q_h·K_gᵀ and dP = dO_h·V_gᵀ (causal blocks), dS = P ∘ (dP − δ)·scale, then dV_g += Pᵀ·dO_h,
 * dQ_h = dS·K_g, dK_g += dSᵀ·Q_h (each over its triangle only). K_g and V_g gradients are summed over the
 * query heads of the group in the kernel's memory and added to dk, dv once.
 */
function simdAttentionBackward(K: SimdKernel, dq: Float32Array, dk: Float32Array, dv: Float32Array, dOut: Float32Array, out: Float32Array, lse: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, shape: AttentionShape): void {
  const { rows: t, heads, kvHeads, headDim: d } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const qStride = heads * d;
  const kvStride = kvHeads * d;
  const l = attentionLayout(shape, true);
  const f = K.reserve(l.end);
  const { t8, dPad } = l;
  f.set(q.subarray(0, t * qStride), l.q);
  f.set(k.subarray(0, t * kvStride), l.k);
  f.set(v.subarray(0, t * kvStride), l.v);
  f.set(dOut.subarray(0, t * qStride), l.dOut);
  for (let g = 0; g < kvHeads; g++) {
    transposeHead(f, l.kT, l.k + g * d, t, kvStride, d, t8);
    transposeHead(f, l.vT, l.v + g * d, t, kvStride, d, t8);
    f.fill(0, l.dk, l.dk + l.t4 * dPad);
    f.fill(0, l.dv, l.dv + l.t4 * dPad);
    for (let h = g * group; h < (g + 1) * group; h++) {
      K.gemm(l.s, t8, l.q + h * d, qStride, 1, l.kT, t8, t, t, d, GEMM_CAUSAL_N);
      K.gemm(l.ds, t8, l.dOut + h * d, qStride, 1, l.vT, t8, t, t, d, GEMM_CAUSAL_N);
      for (let r = 0; r < t; r++) {
        const qo = r * qStride + h * d;
        let delta = 0;
        for (let j = 0; j < d; j++) delta += dOut[qo + j] * out[qo + j];
        f[l.delta + r] = delta;
      }
      f.set(lse.subarray(h * t, h * t + t), l.lse);
      // The triangular products below read up to the row block's end: softmaxGradRows zeroes masked entries there.
      K.softmaxGradRows(l.s, l.ds, t8, t, scale, l.lse, l.delta);
      K.gemm(l.dv, dPad, l.s, 1, t8, l.dOut + h * d, qStride, t, d, t, GEMM_ACCUMULATE | GEMM_CAUSAL_K_LOWER);
      K.gemm(l.dk, dPad, l.ds, 1, t8, l.q + h * d, qStride, t, d, t, GEMM_ACCUMULATE | GEMM_CAUSAL_K_LOWER);
      K.gemm(l.o, dPad, l.ds, t8, 1, l.k + g * d, kvStride, t, d, t, GEMM_CAUSAL_K_UPPER);
      for (let r = 0; r < t; r++) {
        const src = l.o + r * dPad;
        const dst = r * qStride + h * d;
        for (let j = 0; j < d; j++) dq[dst + j] += f[src + j];
      }
    }
    for (let r = 0; r < t; r++) {
      const src = r * dPad;
      const dst = r * kvStride + g * d;
      for (let j = 0; j < d; j++) {
        dk[dst + j] += f[l.dk + src + j];
        dv[dst + j] += f[l.dv + src + j];
      }
    }
  }
}

/** SwiGLU forward: a = silu(g) · u elementwise over n values. */
export function swigluForward(a: Vec, g: Vec, u: Vec, n: number): void {
  const simd = simdFor(a, g, u);
  if (simd && n > 0) {
    const n4 = roundUp(n, 4);
    const f = simd.reserve(3 * n4);
    f.set((g as Float32Array).subarray(0, n), n4);
    f.set((u as Float32Array).subarray(0, n), 2 * n4);
    simd.swiglu(0, n4, 2 * n4, n);
    a.set(f.subarray(0, n));
    return;
  }
  for (let i = 0; i < n; i++) {
    const x = g[i];
    a[i] = (x / (1 + Math.exp(-x))) * u[i];
  }
}

/** SwiGLU backward: dg = da · u · silu'(g), du = da · silu(g), with silu'(x) = σ(x)(1 + x(1 − σ(x))). */
export function swigluBackward(dg: Vec, du: Vec, da: Vec, g: Vec, u: Vec, n: number): void {
  const simd = simdFor(dg, du, da, g, u);
  if (simd && n > 0) {
    const n4 = roundUp(n, 4);
    const f = simd.reserve(5 * n4);
    f.set((da as Float32Array).subarray(0, n), 2 * n4);
    f.set((g as Float32Array).subarray(0, n), 3 * n4);
    f.set((u as Float32Array).subarray(0, n), 4 * n4);
    simd.swigluBack(0, n4, 2 * n4, 3 * n4, 4 * n4, n);
    dg.set(f.subarray(0, n));
    du.set(f.subarray(n4, n4 + n));
    return;
  }
  for (let i = 0; i < n; i++) {
    const x = g[i];
    const sig = 1 / (1 + Math.exp(-x));
    const grad = da[i];
    du[i] = grad * x * sig;
    dg[i] = grad * u[i] * sig * (1 + x * (1 - sig));
  }
}

/**
 * Cross-entropy of `rows` rows of logits[rows × vocab] against targets. Returns Σ CE and the count of rows whose
 * argmax is the target; when `dLogits` is given, writes scale · (softmax − onehot) there.
 */
export function crossEntropy(logits: Vec, targets: Int32Array, rows: number, vocab: number, dLogits: Vec | null, scale: number): { lossSum: number; correct: number } {
  let lossSum = 0;
  let correct = 0;
  for (let t = 0; t < rows; t++) {
    const r = t * vocab;
    let max = -Infinity;
    let arg = 0;
    for (let i = 0; i < vocab; i++) {
      if (logits[r + i] > max) {
        max = logits[r + i];
        arg = i;
      }
    }
    let sum = 0;
    if (dLogits) {
      // One exp per logit: kept in dLogits, then scaled by the sum (Math.exp is most of this loop's time).
      for (let i = 0; i < vocab; i++) {
        const e = Math.exp(logits[r + i] - max);
        dLogits[r + i] = e;
        sum += e;
      }
    } else {
      for (let i = 0; i < vocab; i++) sum += Math.exp(logits[r + i] - max);
    }
    const logSum = max + Math.log(sum);
    const target = targets[t];
    lossSum += logSum - logits[r + target];
    if (arg === target) correct++;
    if (dLogits) {
      const k = scale / sum;
      for (let i = 0; i < vocab; i++) dLogits[r + i] *= k;
      dLogits[r + target] -= scale;
    }
  }
  return { lossSum, correct };
}
