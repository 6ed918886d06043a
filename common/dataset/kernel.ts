/**
 * A small WebAssembly SIMD kernel for the two full passes over a dataset's bytes: finding the bytes at which a
 * JSON string can end or go wrong (`specialBytes`, used by the line checker) and the line hash (`lineHash`).
 * Optional by design: where WebAssembly is unavailable, callers take their JavaScript paths, which give
 * identical results.
 */
import { block, br, brIf, end, F64, get, I32, i32, loop, name, section, set, simd, tee, unsigned, V128, vector, type WasmMemory, webAssembly } from '../wasm';

/** Where the special bytes of one line are: `positions[0, count)`, offsets from the line's start, in order. */
export interface SpecialBytes {
  positions: Int32Array;
  count: number;
}

/**
 * Lines the WebAssembly kernel works on: shorter ones cost less in JavaScript than the copy and the call;
 * longer ones are left to JavaScript so that the kernel's memory stays small (about 5 bytes per line byte).
 */
export const KERNEL_MIN = 128;
export const KERNEL_MAX = 1 << 20;

export interface Kernel {
  memory: WasmMemory;
  scan: (length: number, out: number) => number;
  hash: (length: number) => number;
  bytes: Uint8Array;
  words: Int32Array;
}

/** The loaded kernel; null where WebAssembly (or its SIMD) is unavailable, e.g. a webview whose policy forbids it. */
let kernel: Kernel | null | undefined;
const found: SpecialBytes = { positions: new Int32Array(0), count: 0 };

/** Copies a line to the start of the kernel's memory (growing it for the line and its scan output). */
export function copyToKernel(buf: Uint8Array, start: number, end: number): Kernel | null {
  if (kernel === undefined) kernel = loadKernel();
  if (kernel === null) return null;
  const length = end - start;
  const need = ((length + 31) & ~15) + 4 * length + 16;
  if (need > kernel.bytes.length) {
    kernel.memory.grow(Math.ceil((need - kernel.bytes.length) / 65536));
    kernel.bytes = new Uint8Array(kernel.memory.buffer);
    kernel.words = new Int32Array(kernel.memory.buffer);
  }
  // A plain view rather than buf.subarray(): a Node Buffer's subarray costs more than the copy of a short line.
  kernel.bytes.set(new Uint8Array(buf.buffer, buf.byteOffset + start, length), 0);
  return kernel;
}

/**
 * Lists every double quote, backslash and control byte (below 0x20) of `buf[start, end)`: the only bytes at
 * which a JSON string can end or go wrong, so that the checker jumps from one to the next instead of looking at
 * every byte of every string (most of a dataset's bytes are string content). One WebAssembly SIMD pass, 16 bytes
 * a step, over a copy of the line, several times faster than the best byte loop in JavaScript. Undefined for
 * short or very long lines and where WebAssembly is unavailable: the checker then scans by itself.
 * The result is valid until the next call.
 */
export function specialBytes(buf: Uint8Array, start: number, end: number): SpecialBytes | undefined {
  const length = end - start;
  if (length < KERNEL_MIN || length > KERNEL_MAX) return undefined;
  const k = copyToKernel(buf, start, end);
  if (!k) return undefined;
  // Spaces are not special: what the last step reads past the end finds nothing.
  k.bytes.fill(0x20, length, length + 16);
  const out = (length + 31) & ~15;
  found.count = k.scan(length, out);
  found.positions = k.words.subarray(out >> 2, (out >> 2) + found.count);
  return found;
}

function loadKernel(): Kernel | null {
  const api = webAssembly();
  if (!api) return null;
  try {
    const instance = new api.Instance(new api.Module(assembleKernel()), {});
    const memory = instance.exports.memory as WasmMemory;
    return {
      memory,
      scan: instance.exports.scan as Kernel['scan'],
      hash: instance.exports.hash as Kernel['hash'],
      bytes: new Uint8Array(memory.buffer),
      words: new Int32Array(memory.buffer),
    };
  } catch {
    return null;
  }
}

/**
 * The kernel's WebAssembly module, assembled here from named instructions rather than shipped as an opaque
 * binary, so that it can be read and reviewed. It exports `memory` and
 *   scan(length, out) -> count: for each 16-byte step p < length, the mask of bytes that are '"', '\' or below
 *     0x20; each set bit's position goes to out[count++] (as i32);
 *   hash(length) -> f64: `lineHash` of bytes [0, length), step for step the same arithmetic.
 */
function assembleKernel(): Uint8Array {
  // Instructions (WebAssembly core and SIMD opcodes).
  const call = (f: number): number[] => [0x10, f];
  const [eqz, geU, gtU, ctz, add, sub, mul, and, xor, shl, shrU] = [[0x45], [0x4f], [0x4b], [0x68], [0x6a], [0x6b], [0x6c], [0x71], [0x73], [0x74], [0x76]];
  const load = (offset: number): number[] => [0x28, 2, offset];
  const load8 = [0x2d, 0, 0];
  const store = [0x36, 2, 0];
  const [f64FromU32, f64Mul, f64Add] = [[0xb8], [0xa2], [0xa0]];
  const f64 = (x: number): number[] => [0x44, ...new Uint8Array(new Float64Array([x]).buffer)];
  const [load128, splat8, eq8, ltU8, or128, bitmask8] = [[...simd(0x00), 4, 0], simd(0x0f), simd(0x23), simd(0x26), simd(0x50), simd(0x64)];

  // scan — locals: 0 length, 1 out (parameters); 2 p, 3 count, 4 mask (i32); 5 v (v128).
  const scan = (() => {
    const [length, out, p, count, mask, v] = [0, 1, 2, 3, 4, 5];
    return [
      ...vector([[3, I32], [1, V128]]),
      ...block, ...loop,
      ...get(p), ...get(length), ...geU, ...brIf(1),
      ...get(p), ...load128, ...set(v),
      ...get(v), ...i32(0x22), ...splat8, ...eq8,
      ...get(v), ...i32(0x5c), ...splat8, ...eq8, ...or128,
      ...get(v), ...i32(0x20), ...splat8, ...ltU8, ...or128,
      ...bitmask8, ...set(mask),
      ...block, ...loop,
      ...get(mask), ...eqz, ...brIf(1),
      ...get(out), ...get(count), ...i32(2), ...shl, ...add,
      ...get(p), ...get(mask), ...ctz, ...add,
      ...store,
      ...get(count), ...i32(1), ...add, ...set(count),
      ...get(mask), ...get(mask), ...i32(1), ...sub, ...and, ...set(mask),
      ...br(0), ...end, ...end,
      ...get(p), ...i32(16), ...add, ...set(p),
      ...br(0), ...end, ...end,
      ...get(count), ...end,
    ];
  })();

  // mix (function 2) — the MurmurHash3 finaliser, as `mix` above.
  const MIX = 2;
  const mixBody = [
    ...vector([]),
    ...get(0), ...get(0), ...i32(16), ...shrU, ...xor, ...i32(0x85ebca6b), ...mul, ...set(0),
    ...get(0), ...get(0), ...i32(13), ...shrU, ...xor, ...i32(0xc2b2ae35), ...mul, ...set(0),
    ...get(0), ...get(0), ...i32(16), ...shrU, ...xor, ...end,
  ];

  // hash — locals: 0 length (parameter); 1 p, 2 a, 3 b, 4 c, 5 d, 6 h1, 7 h2 (i32).
  const hash = (() => {
    const [length, p, a, b, c, d, h1, h2] = [0, 1, 2, 3, 4, 5, 6, 7];
    // lane = imul(lane ^ word, k); lane ^= lane >>> shift
    const lane = (x: number, word: number[], k: number, shift: number): number[] => [
      ...get(x), ...word, ...xor, ...i32(k), ...mul, ...tee(x), ...get(x), ...i32(shift), ...shrU, ...xor, ...set(x),
    ];
    return [
      ...vector([[7, I32]]),
      ...i32(0x811c9dc5), ...get(length), ...xor, ...set(a),
      ...i32(0x2545f491), ...set(b),
      ...i32(0x6b43a9b5), ...set(c),
      ...i32(0x1b873593), ...set(d),
      ...block, ...loop,
      ...get(p), ...i32(16), ...add, ...get(length), ...gtU, ...brIf(1),
      ...lane(a, [...get(p), ...load(0)], 0x9e3779b1, 15),
      ...lane(b, [...get(p), ...load(4)], 0x85ebca77, 13),
      ...lane(c, [...get(p), ...load(8)], 0xc2b2ae3d, 16),
      ...lane(d, [...get(p), ...load(12)], 0x27d4eb2f, 15),
      ...get(p), ...i32(16), ...add, ...set(p),
      ...br(0), ...end, ...end,
      ...block, ...loop,
      ...get(p), ...get(length), ...geU, ...brIf(1),
      ...lane(a, [...get(p), ...load8], 0x9e3779b1, 15),
      ...get(p), ...i32(1), ...add, ...set(p),
      ...br(0), ...end, ...end,
      ...get(a), ...call(MIX), ...get(b), ...xor, ...call(MIX), ...get(c), ...xor, ...call(MIX), ...get(d), ...xor, ...call(MIX), ...set(h1),
      ...get(d), ...i32(0x5bd1e995), ...xor, ...call(MIX), ...get(c), ...add, ...call(MIX), ...get(b), ...xor, ...call(MIX), ...get(a), ...add, ...call(MIX), ...set(h2),
      ...get(h2), ...i32(11), ...shrU, ...f64FromU32, ...f64(0x100000000), ...f64Mul, ...get(h1), ...f64FromU32, ...f64Add, ...end,
    ];
  })();

  const types = [
    [0x60, ...vector([[I32], [I32]]), ...vector([[I32]])],
    [0x60, ...vector([[I32]]), ...vector([[F64]])],
    [0x60, ...vector([[I32]]), ...vector([[I32]])],
  ];
  const bodies = [scan, hash, mixBody].map((body) => [...unsigned(body.length), ...body]);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(3, vector([unsigned(0), unsigned(1), unsigned(2)])),
    ...section(5, vector([[0x00, ...unsigned(1)]])),
    ...section(7, vector([[...name('memory'), 0x02, 0], [...name('scan'), 0x00, 0], [...name('hash'), 0x00, 1]])),
    ...section(10, vector(bodies)),
  ]);
}
