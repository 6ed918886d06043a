// WebAssembly SIMD (f32x4) kernels for the embedded engine, assembled here from named instructions (like
// common/dataset/kernel.ts) rather than shipped as an opaque binary, so they can be read and reviewed.
// JavaScript numbers are float64 scalars and V8 does not vectorise typed-array loops: the training step's matrix
// products ran at ~1.5 GFLOP/s in plain JS, and Math.exp costs ~17 ns. Here:
// - gemm: a 4×8 block of outputs lives in eight f32x4 registers across the whole reduction; per step, two vector
//   loads of B, four broadcast loads of A, eight multiplies and eight adds (~20–30 GFLOP/s on one core), with
//   flags that skip the blocks a causal mask zeroes;
// - softmaxRows / softmaxGradRows: attention's row softmax and its gradient with a vectorised exp;
// - swiglu / swigluBack: the MLP's activation and its gradient, same exp.
//
// The kernels work on their own linear memory: callers copy operands in (contiguous copies are a memcpy), call,
// and copy results out. Operands are addressed by float index with strides, so a transposed or per-head view
// costs no copy. Optional by design: where WebAssembly SIMD is unavailable (or FT_NO_SIMD=1), `simdKernel()` is
// null and callers keep their JavaScript loops. Float32 arithmetic throughout (the JS loops sum in float64), so
// results differ from those loops by float32 rounding only.
import { block, br, brIf, end, F32, get, I32, i32, loop, name, section, set, simd, tee, unsigned, V128, vector, type WasmMemory, webAssembly } from '../../../../common/wasm';

/** Flags of `SimdKernel.gemm`. */
export const GEMM_ACCUMULATE = 1;
/** Only column blocks that start at or before a row block's last row: the causal part of Q·Kᵀ (j ≤ i). */
export const GEMM_CAUSAL_N = 2;
/** Reduce over p < (row block start + 4) only: A is lower-triangular (P·V, dS·K). */
export const GEMM_CAUSAL_K_UPPER = 4;
/** Reduce over p ≥ row block start only: A is upper-triangular (Pᵀ·dO, dSᵀ·Q). */
export const GEMM_CAUSAL_K_LOWER = 8;

/**
 * The loaded kernel and its memory. `f32` views the whole memory (refreshed by `reserve`); offsets are float
 * indices into it.
 */
export class SimdKernel {
  f32: Float32Array;
  private readonly memory: WasmMemory;
  private readonly run: (c: number, ldc: number, a: number, rs: number, cs: number, b: number, ldb: number, m: number, n: number, k: number, flags: number) => void;
  /**
   * For each row r < rows of S (offset s, row stride ld), over its causal part x = S[r, 0…r]·scale: P = softmax(x)
   * in place, the rest of the row up to the next multiple of 4 set to 0, and stats[2r] = max x, stats[2r + 1] =
   * Σ e^(x − max) for the caller's log-sum-exp. Vectorised exp (Cephes' expf, ~2 ulp).
   */
  readonly softmaxRows: (s: number, ld: number, rows: number, scale: number, stats: number) => void;
  /**
   * For each row r < rows over its causal part: P = e^(S·scale − lse[r]) into S and dS = P·(dP − delta[r])·scale
   * into ds (which holds dP); the rest of both rows up to the next multiple of 4 set to 0.
   */
  readonly softmaxGradRows: (s: number, ds: number, ld: number, rows: number, scale: number, lse: number, delta: number) => void;
  /** out = g·σ(g)·u over n values rounded up to 4 (callers leave room). */
  readonly swiglu: (out: number, g: number, u: number, n: number) => void;
  /** du = da·g·σ(g), dg = da·u·σ(g)·(1 + g·(1 − σ(g))) over n values rounded up to 4. */
  readonly swigluBack: (dg: number, du: number, da: number, g: number, u: number, n: number) => void;

  constructor(instance: { exports: Record<string, unknown> }) {
    this.memory = instance.exports.memory as WasmMemory;
    this.run = instance.exports.gemm as SimdKernel['run'];
    this.softmaxRows = instance.exports.softmaxRows as SimdKernel['softmaxRows'];
    this.softmaxGradRows = instance.exports.softmaxGradRows as SimdKernel['softmaxGradRows'];
    this.swiglu = instance.exports.swiglu as SimdKernel['swiglu'];
    this.swigluBack = instance.exports.swigluBack as SimdKernel['swigluBack'];
    this.f32 = new Float32Array(this.memory.buffer);
  }

  /** Makes the memory hold at least `floats` values (growing it discards nothing); returns the current view. */
  reserve(floats: number): Float32Array {
    if (floats > this.f32.length) {
      const need = floats * 4 - this.memory.buffer.byteLength;
      // Grown with headroom so a slowly growing sequence length does not grow it every call.
      this.memory.grow(Math.max(Math.ceil(need / 65536), this.memory.buffer.byteLength >> 17));
      this.f32 = new Float32Array(this.memory.buffer);
    }
    return this.f32;
  }

  /**
   * C (=|+=) A·B in the kernel's memory, all offsets and strides in floats: A element (i, p) at a + i·rs + p·cs,
   * B element (p, j) at b + p·ldb + j (rows contiguous), C element (i, j) at c + i·ldc + j. Works in 4×8 blocks:
   * it reads A rows up to m rounded up to 4 and B columns up to n rounded up to 8, and writes C over those padded
   * sizes, so callers leave room there (the extra results are simply not used; an extra column or row of the
   * output depends only on the matching column of B or row of A). `flags`: a sum of the GEMM_* flags.
   */
  gemm(c: number, ldc: number, a: number, rs: number, cs: number, b: number, ldb: number, m: number, n: number, k: number, flags: number): void {
    this.run(c, ldc, a, rs, cs, b, ldb, m, n, k, flags);
  }
}

let kernel: SimdKernel | null | undefined;

/** The kernel, loaded on first use; null where WebAssembly or its SIMD is unavailable (or FT_NO_SIMD=1 is set). */
export function simdKernel(): SimdKernel | null {
  if (kernel === undefined) kernel = loadKernel();
  return kernel;
}

function loadKernel(): SimdKernel | null {
  // An escape hatch for comparing against the JavaScript paths (benchmarks, bisecting a numeric difference).
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (env?.FT_NO_SIMD === '1') return null;
  const api = webAssembly();
  if (!api) return null;
  // With relaxed SIMD (Node ≥ 22, or node --experimental-wasm-relaxed-simd) the products use fused
  // multiply-adds, ~15–40% faster; where the module with them does not compile, the plain one.
  for (const fma of [true, false]) {
    try {
      return new SimdKernel(new api.Instance(new api.Module(assembleModule(fma)), {}));
    } catch {
      // try the next variant
    }
  }
  return null;
}

/** Rounds n up to a multiple of `block`. */
export function roundUp(n: number, block: number): number {
  return Math.ceil(n / block) * block;
}

// ---- The assembler: WebAssembly's binary encoding, by name. ----

const bytesOf = (x: Float32Array | Int32Array): number[] => Array.from(new Uint8Array(x.buffer));
// Core instructions.
const f32 = (x: number): number[] => [0x43, ...bytesOf(new Float32Array([x]))];
const ifThen = [0x04, 0x40];
const select = [0x1b];
const [add, mul, and, shl, shrU, ltS, geS] = [[0x6a], [0x6c], [0x71], [0x74], [0x76], [0x48], [0x4e]];
const [f32Add, f32Div, f32Max] = [[0x92], [0x95], [0x97]];
const f32Store = (offset: number): number[] => [0x38, 2, ...unsigned(offset)];
const f32Load = (offset: number): number[] => [0x2a, 2, ...unsigned(offset)];
// SIMD instructions (memarg: log2 alignment, offset).
const load128 = (offset: number): number[] => [...simd(0x00), 4, ...unsigned(offset)];
const splat32 = (offset: number): number[] => [...simd(0x09), 2, ...unsigned(offset)];
const store128 = (offset: number): number[] => [...simd(0x0b), 4, ...unsigned(offset)];
const f32x4 = (x: number): number[] => [...simd(0x0c), ...bytesOf(new Float32Array([x, x, x, x]))];
const i32x4 = (a: number, b: number, c: number, d: number): number[] => [...simd(0x0c), ...bytesOf(new Int32Array([a, b, c, d]))];
const zero128 = f32x4(0);
const [fadd, fsub, fmul, fdiv, fmin, fmax, fnearest] = [simd(0xe4), simd(0xe5), simd(0xe6), simd(0xe7), simd(0xe8), simd(0xe9), simd(0x6a)];
const [fsplat, isplat, iadd, ishl, iltS, vand, bitselect, truncSat] = [simd(0x13), simd(0x11), simd(0xae), simd(0xab), simd(0x39), simd(0x4e), simd(0x52), simd(0xf8)];
const lane = (l: number): number[] => [...simd(0x1f), l];
const min = (x: number[], y: number[]): number[] => [...x, ...y, ...x, ...y, ...ltS, ...select];
const toBytes = (local: number): number[] => [...get(local), ...i32(2), ...shl, ...set(local)];

/**
 * e^x of the f32x4 in local x (clobbered), left on the stack: Cephes' expf (x = n·ln2 + r, |r| ≤ ln2/2, a
 * degree-6 polynomial for e^r, 2^n from the exponent bits), within ~2 ulp of float32 over the clamped range
 * [−87, 88]; below it gives ~1e-38 rather than 0. Uses v128 locals t and n.
 */
function exp(x: number, t: number, n: number): number[] {
  const poly = [1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
  return [
    ...get(x), ...f32x4(-87), ...fmax, ...f32x4(88), ...fmin, ...set(x),
    ...get(x), ...f32x4(Math.LOG2E), ...fmul, ...fnearest, ...set(n),
    ...get(x), ...get(n), ...f32x4(0.693359375), ...fmul, ...fsub, ...get(n), ...f32x4(-2.12194440e-4), ...fmul, ...fsub, ...set(t),
    ...f32x4(poly[0]),
    ...poly.slice(1).flatMap((c) => [...get(t), ...fmul, ...f32x4(c), ...fadd]),
    ...get(t), ...fmul, ...get(t), ...fmul, ...get(t), ...fadd, ...f32x4(1), ...fadd,
    ...get(n), ...truncSat, ...i32x4(127, 127, 127, 127), ...iadd, ...i32(23), ...ishl, ...fmul,
  ];
}

/** Sum of the four lanes of the f32x4 in `v`, left on the stack as an f32. */
const laneSum = (v: number): number[] => [...get(v), ...lane(0), ...get(v), ...lane(1), ...f32Add, ...get(v), ...lane(2), ...f32Add, ...get(v), ...lane(3), ...f32Add];
const laneMax = (v: number): number[] => [...get(v), ...lane(0), ...get(v), ...lane(1), ...f32Max, ...get(v), ...lane(2), ...f32Max, ...get(v), ...lane(3), ...f32Max];

/**
 * gemm(c, ldc, a, rs, cs, b, ldb, m, n, k, flags), as documented on `SimdKernel.gemm`; `fma`: accumulate with
 * relaxed SIMD's f32x4.relaxed_madd (fused where the CPU has FMA) instead of a multiply and an add.
 */
function gemmBody(fma: boolean): number[] {
  // Parameters 0–10; then i32 locals 11–22 and v128 locals 23–33.
  const [c, ldc, a, rs, cs, b, ldb, m, n, k, flags] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [i0, j0, p, pEnd, pStart, pA, pB, pC, rs4, rs8, rs12, ldc4] = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const acc = [23, 24, 25, 26, 27, 28, 29, 30];
  const [bv0, bv1, av] = [31, 32, 33];
  const flag = (f: number): number[] => [...get(flags), ...i32(f), ...and];
  // acc += x · y
  const madd = (acc: number, x: number, y: number): number[] =>
    fma ? [...get(x), ...get(y), ...get(acc), ...simd(0x105), ...set(acc)] : [...get(acc), ...get(x), ...get(y), ...fmul, ...fadd, ...set(acc)];
  // acc[2r] += splat(A[row r]) · bv0, acc[2r+1] += … · bv1, for the four rows of the block.
  const rowStep = (r: number): number[] => {
    const addr = r === 0 ? get(pA) : [...get(pA), ...get([0, rs4, rs8, rs12][r]), ...add];
    return [
      ...addr, ...splat32(0), ...set(av),
      ...madd(acc[2 * r], av, bv0),
      ...madd(acc[2 * r + 1], av, bv1),
    ];
  };
  // Row r of the block to C (adding what is there when accumulating).
  const storeRow = (r: number): number[] => {
    const addr = r === 0 ? get(pC) : [...get(pC), ...get(ldc4), ...i32(r), ...mul, ...add];
    const accumulate = (v: number, offset: number): number[] => [
      ...flag(1), ...ifThen, ...get(v), ...addr, ...load128(offset), ...fadd, ...set(v), ...end,
    ];
    return [
      ...accumulate(acc[2 * r], 0), ...accumulate(acc[2 * r + 1], 16),
      ...addr, ...get(acc[2 * r]), ...store128(0),
      ...addr, ...get(acc[2 * r + 1]), ...store128(16),
    ];
  };
  return [
    ...vector([[12, I32], [11, V128]]),
    // Everything to byte addresses and byte strides.
    ...toBytes(c), ...toBytes(a), ...toBytes(b), ...toBytes(cs), ...toBytes(ldb),
    ...get(rs), ...i32(2), ...shl, ...set(rs4),
    ...get(rs4), ...get(rs4), ...add, ...set(rs8),
    ...get(rs8), ...get(rs4), ...add, ...set(rs12),
    ...get(ldc), ...i32(2), ...shl, ...set(ldc4),
    // Column panels outside, row blocks inside: the panel of B (k × 8) stays in the L1 cache while A streams.
    ...block, ...loop,
    ...get(j0), ...get(n), ...geS, ...brIf(1),
    // Causal: only row blocks that reach the panel (i0 + 3 ≥ j0).
    ...i32(0), ...set(i0),
    ...flag(2), ...ifThen, ...get(j0), ...set(i0), ...end,
    ...block, ...loop,
    ...get(i0), ...get(m), ...geS, ...brIf(1),
    // This row block's range of p.
    ...get(k), ...set(pEnd),
    ...flag(4), ...ifThen, ...min(get(k), [...get(i0), ...i32(4), ...add]), ...set(pEnd), ...end,
    ...i32(0), ...set(pStart),
    ...flag(8), ...ifThen, ...get(i0), ...set(pStart), ...end,
    ...acc.flatMap((v) => [...zero128, ...set(v)]),
    // A element (i0, pStart), B element (pStart, j0).
    ...get(a), ...get(i0), ...get(rs4), ...mul, ...add, ...get(pStart), ...get(cs), ...mul, ...add, ...set(pA),
    ...get(b), ...get(pStart), ...get(ldb), ...mul, ...add, ...get(j0), ...i32(2), ...shl, ...add, ...set(pB),
    ...get(pStart), ...set(p),
    ...block, ...loop,
    ...get(p), ...get(pEnd), ...geS, ...brIf(1),
    ...get(pB), ...load128(0), ...set(bv0),
    ...get(pB), ...load128(16), ...set(bv1),
    ...rowStep(0), ...rowStep(1), ...rowStep(2), ...rowStep(3),
    ...get(pA), ...get(cs), ...add, ...set(pA),
    ...get(pB), ...get(ldb), ...add, ...set(pB),
    ...get(p), ...i32(1), ...add, ...set(p),
    ...br(0), ...end, ...end,
    // C element (i0, j0).
    ...get(c), ...get(i0), ...get(ldc4), ...mul, ...add, ...get(j0), ...i32(2), ...shl, ...add, ...set(pC),
    ...storeRow(0), ...storeRow(1), ...storeRow(2), ...storeRow(3),
    ...get(i0), ...i32(4), ...add, ...set(i0),
    ...br(0), ...end, ...end,
    ...get(j0), ...i32(8), ...add, ...set(j0),
    ...br(0), ...end, ...end,
    ...end,
  ];
}

/**
 * A loop over the causal row r (its first r + 1 entries) in steps of four, with `mask` set to the lanes inside
 * the row; `row` is the row's byte address, `i` the step's byte offset in it.
 */
function causalSteps(r: number, i: number, mask: number, body: number[]): number[] {
  return [
    ...i32(0), ...set(i),
    ...block, ...loop,
    // lanes (i/4 + 0…3) < r + 1
    ...get(i), ...i32(2), ...shrU, ...get(r), ...i32(1), ...add, ...geS, ...brIf(1),
    ...i32x4(0, 1, 2, 3), ...get(i), ...i32(2), ...shrU, ...isplat, ...iadd, ...get(r), ...i32(1), ...add, ...isplat, ...iltS, ...set(mask),
    ...body,
    ...get(i), ...i32(16), ...add, ...set(i),
    ...br(0), ...end, ...end,
  ];
}

/**
 * softmaxRows(s, ld, rows, scale, stats): for each row r < rows of S (row stride ld), over its causal part
 * x = S[r, 0…r]·scale: P = e^(x − max) / Σ in place, with the rest of the row's last four-lane step set to 0;
 * stats[2r] = max, stats[2r + 1] = Σ (the caller forms the log-sum-exp).
 */
function softmaxBody(): number[] {
  const [s, ld, rows, scale, stats] = [0, 1, 2, 3, 4];
  const [r, i, row, mask] = [5, 6, 7, 8];
  const [x, t, nv, acc, scaleV, maxV, invV] = [9, 10, 11, 12, 13, 14, 15];
  const [mx, sum] = [16, 17];
  const at = [...get(row), ...get(i), ...add];
  return [
    ...vector([[3, I32], [1, V128], [7, V128], [2, F32]]),
    ...toBytes(s), ...toBytes(ld), ...toBytes(stats),
    ...get(scale), ...fsplat, ...set(scaleV),
    ...block, ...loop,
    ...get(r), ...get(rows), ...geS, ...brIf(1),
    ...get(s), ...get(r), ...get(ld), ...mul, ...add, ...set(row),
    // max
    ...f32x4(-Infinity), ...set(acc),
    ...causalSteps(r, i, mask, [
      ...get(acc), ...at, ...load128(0), ...get(scaleV), ...fmul, ...f32x4(-Infinity), ...get(mask), ...bitselect, ...fmax, ...set(acc),
    ]),
    ...laneMax(acc), ...tee(mx), ...fsplat, ...set(maxV),
    // e^(x − max), masked lanes 0, and their sum
    ...zero128, ...set(acc),
    ...causalSteps(r, i, mask, [
      ...at, ...load128(0), ...get(scaleV), ...fmul, ...get(maxV), ...fsub, ...set(x),
      ...exp(x, t, nv), ...get(mask), ...vand, ...set(x),
      ...at, ...get(x), ...store128(0),
      ...get(acc), ...get(x), ...fadd, ...set(acc),
    ]),
    ...laneSum(acc), ...set(sum),
    ...f32(1), ...get(sum), ...f32Div, ...fsplat, ...set(invV),
    ...causalSteps(r, i, mask, [...at, ...at, ...load128(0), ...get(invV), ...fmul, ...store128(0)]),
    ...get(stats), ...get(r), ...i32(3), ...shl, ...add, ...get(mx), ...f32Store(0),
    ...get(stats), ...get(r), ...i32(3), ...shl, ...add, ...get(sum), ...f32Store(4),
    ...get(r), ...i32(1), ...add, ...set(r),
    ...br(0), ...end, ...end,
    ...end,
  ];
}

/**
 * softmaxGradRows(s, ds, ld, rows, scale, lse, delta): for each row r over its causal part, from the scores S
 * and dP: P = e^(S·scale − lse[r]) into S, dS = P·(dP − delta[r])·scale into ds; the rest of the row's last
 * four-lane step set to 0 in both.
 */
function softmaxGradBody(): number[] {
  const [s, ds, ld, rows, scale, lse, delta] = [0, 1, 2, 3, 4, 5, 6];
  const [r, i, rowS, rowD, mask] = [7, 8, 9, 10, 11];
  const [x, t, nv, scaleV, lseV, deltaV] = [12, 13, 14, 15, 16, 17];
  return [
    ...vector([[4, I32], [1, V128], [6, V128]]),
    ...toBytes(s), ...toBytes(ds), ...toBytes(ld), ...toBytes(lse), ...toBytes(delta),
    ...get(scale), ...fsplat, ...set(scaleV),
    ...block, ...loop,
    ...get(r), ...get(rows), ...geS, ...brIf(1),
    ...get(s), ...get(r), ...get(ld), ...mul, ...add, ...set(rowS),
    ...get(ds), ...get(r), ...get(ld), ...mul, ...add, ...set(rowD),
    ...get(lse), ...get(r), ...i32(2), ...shl, ...add, ...f32Load(0), ...fsplat, ...set(lseV),
    ...get(delta), ...get(r), ...i32(2), ...shl, ...add, ...f32Load(0), ...fsplat, ...set(deltaV),
    ...causalSteps(r, i, mask, [
      ...get(rowS), ...get(i), ...add, ...load128(0), ...get(scaleV), ...fmul, ...get(lseV), ...fsub, ...set(x),
      ...exp(x, t, nv), ...get(mask), ...vand, ...set(x),
      ...get(rowS), ...get(i), ...add, ...get(x), ...store128(0),
      ...get(rowD), ...get(i), ...add,
      ...get(x), ...get(rowD), ...get(i), ...add, ...load128(0), ...get(deltaV), ...fsub, ...fmul, ...get(scaleV), ...fmul, ...get(mask), ...vand,
      ...store128(0),
    ]),
    ...get(r), ...i32(1), ...add, ...set(r),
    ...br(0), ...end, ...end,
    ...end,
  ];
}

/**
 * swiglu(out, g, u, n) and its backward swigluBack(dg, du, da, g, u, n), four values a step over n rounded up to
 * 4: out = g·σ(g)·u; du = da·g·σ(g), dg = da·u·σ(g)·(1 + g·(1 − σ(g))), σ(g) = 1 / (1 + e^−g).
 */
function swigluBody(backward: boolean): number[] {
  // forward: 0 out, 1 g, 2 u, 3 n; backward: 0 dg, 1 du, 2 da, 3 g, 4 u, 5 n
  const params = backward ? 6 : 4;
  const [i, x, t, nv, sig, gv] = [params, params + 1, params + 2, params + 3, params + 4, params + 5];
  const n = params - 1;
  const ptr = (param: number): number[] => [...get(param), ...get(i), ...add];
  const sigmoid = [
    ...f32x4(0), ...get(gv), ...fsub, ...set(x),
    ...f32x4(1), ...f32x4(1), ...exp(x, t, nv), ...fadd, ...fdiv, ...set(sig),
  ];
  const step = backward
    ? [
      ...ptr(3), ...load128(0), ...set(gv), ...sigmoid,
      // du = da·g·σ
      ...ptr(1), ...ptr(2), ...load128(0), ...get(gv), ...fmul, ...get(sig), ...fmul, ...store128(0),
      // dg = da·u·σ·(1 + g·(1 − σ))
      ...ptr(0), ...ptr(2), ...load128(0), ...ptr(4), ...load128(0), ...fmul, ...get(sig), ...fmul,
      ...f32x4(1), ...get(gv), ...f32x4(1), ...get(sig), ...fsub, ...fmul, ...fadd, ...fmul, ...store128(0),
    ]
    : [
      ...ptr(1), ...load128(0), ...set(gv), ...sigmoid,
      ...ptr(0), ...get(gv), ...get(sig), ...fmul, ...ptr(2), ...load128(0), ...fmul, ...store128(0),
    ];
  return [
    ...vector([[1, I32], [5, V128]]),
    ...Array.from({ length: params - 1 }, (_, k) => toBytes(k)).flat(),
    ...get(n), ...i32(2), ...shl, ...set(n),
    ...block, ...loop,
    ...get(i), ...get(n), ...geS, ...brIf(1),
    ...step,
    ...get(i), ...i32(16), ...add, ...set(i),
    ...br(0), ...end, ...end,
    ...end,
  ];
}

/** The module: `memory` (1 page to start; callers grow it) and the functions documented on `SimdKernel`. */
function assembleModule(fma: boolean): Uint8Array {
  const fn = (params: number[], results: number[]): number[] => [0x60, ...vector(params.map((p) => [p])), ...vector(results.map((r) => [r]))];
  const I = I32;
  const functions: { name: string; type: number[]; body: number[] }[] = [
    { name: 'gemm', type: fn(new Array<number>(11).fill(I), []), body: gemmBody(fma) },
    { name: 'softmaxRows', type: fn([I, I, I, F32, I], []), body: softmaxBody() },
    { name: 'softmaxGradRows', type: fn([I, I, I, I, F32, I, I], []), body: softmaxGradBody() },
    { name: 'swiglu', type: fn([I, I, I, I], []), body: swigluBody(false) },
    { name: 'swigluBack', type: fn([I, I, I, I, I, I], []), body: swigluBody(true) },
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(functions.map((f) => f.type))),
    ...section(3, vector(functions.map((_, i) => unsigned(i)))),
    ...section(5, vector([[0x00, ...unsigned(1)]])),
    ...section(7, vector([[...name('memory'), 0x02, 0], ...functions.map((f, i) => [...name(f.name), 0x00, ...unsigned(i)])])),
    ...section(10, vector(functions.map((f) => [...unsigned(f.body.length), ...f.body]))),
  ]);
}
