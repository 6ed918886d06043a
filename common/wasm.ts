// WebAssembly's binary encoding, by name: what the project's hand-assembled modules (the dataset scanner's kernel
// in common/dataset/kernel.ts, the engine's matrix kernels in backend/engines/embedded/model/simd.ts) are
// written with, so that each module reads as instructions rather than as an opaque byte array.

/**
 * The part of the WebAssembly API the modules use, declared here: common/ compiles without the DOM library (which
 * declares it), and an environment without WebAssembly simply has no kernels.
 */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

/** A module's exported memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** The WebAssembly API, where the environment has one. */
export function webAssembly(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** LEB128, unsigned. */
export function unsigned(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** LEB128, signed (32-bit). */
export function signed(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

/** A vector: its length, then its items. */
export const vector = (items: number[][]): number[] => [...unsigned(items.length), ...items.flat()];
/** A section: id, byte length, body. */
export const section = (id: number, body: number[]): number[] => [id, ...unsigned(body.length), ...body];
/** A name (ASCII). */
export const name = (s: string): number[] => [...unsigned(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

// Core instructions used by both modules.
export const get = (local: number): number[] => [0x20, ...unsigned(local)];
export const set = (local: number): number[] => [0x21, ...unsigned(local)];
export const tee = (local: number): number[] => [0x22, ...unsigned(local)];
export const i32 = (n: number): number[] => [0x41, ...signed(n)];
export const block = [0x02, 0x40];
export const loop = [0x03, 0x40];
export const end = [0x0b];
export const br = (depth: number): number[] => [0x0c, depth];
export const brIf = (depth: number): number[] => [0x0d, depth];
/** The SIMD prefix and an opcode. */
export const simd = (op: number): number[] => [0xfd, ...unsigned(op)];
