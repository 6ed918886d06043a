// The numeric kernels of the embedded engine, each a plain loop over contiguous typed arrays with the sizes passed
// in: callers own (and reuse) every buffer, so the hot loop allocates nothing. Arithmetic runs in float64 (what JS
// numbers are) and is stored into the buffers' precision; the model uses Float32Array, the gradient tests pass
// Float64Array to check each backward against finite differences without float32 noise.

/** A buffer of values: Float32Array in the model, Float64Array in the finite-difference tests. */
export type Vec = Float32Array | Float64Array;

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

/** SwiGLU forward: a = silu(g) · u elementwise over n values. */
export function swigluForward(a: Vec, g: Vec, u: Vec, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = g[i];
    a[i] = (x / (1 + Math.exp(-x))) * u[i];
  }
}

/** SwiGLU backward: dg = da · u · silu'(g), du = da · silu(g), with silu'(x) = σ(x)(1 + x(1 − σ(x))). */
export function swigluBackward(dg: Vec, du: Vec, da: Vec, g: Vec, u: Vec, n: number): void {
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
    for (let i = 0; i < vocab; i++) sum += Math.exp(logits[r + i] - max);
    const logSum = max + Math.log(sum);
    const target = targets[t];
    lossSum += logSum - logits[r + target];
    if (arg === target) correct++;
    if (dLogits) {
      for (let i = 0; i < vocab; i++) dLogits[r + i] = scale * Math.exp(logits[r + i] - logSum);
      dLogits[r + target] -= scale;
    }
  }
  return { lossSum, correct };
}
