import { copyToKernel, KERNEL_MAX, KERNEL_MIN } from './kernel';

/**
 * A 53-bit hash of a line's bytes, for finding exact duplicate lines without keeping earlier lines in memory
 * (the streaming validator sees each line once). Four independent multiply-xorshift lanes take every fourth
 * 32-bit word (independent lanes run in parallel on the CPU: hashing is a full pass over the file), and a
 * final mix folds them into two 32-bit halves. Each lane step is a bijection, so two lines that differ in one
 * word (the usual near-duplicate) always hash apart; otherwise at a million lines the chance of a false
 * duplicate is about 1e-4, and callers that still hold both lines confirm equality before reporting.
 */
export function lineHash(buf: Uint8Array, start: number, end: number): number {
  // The kernel computes the same value; it is worth the copy into its memory on all but short lines.
  const length = end - start;
  if (length >= KERNEL_MIN && length <= KERNEL_MAX) {
    const k = copyToKernel(buf, start, end);
    if (k) return k.hash(length);
  }
  return scriptLineHash(buf, start, end);
}

/** `lineHash` in JavaScript: for short lines, and where WebAssembly is unavailable. */
function scriptLineHash(buf: Uint8Array, start: number, end: number): number {
  const view = viewOf(buf);
  let a = 0x811c9dc5 ^ (end - start);
  let b = 0x2545f491;
  let c = 0x6b43a9b5;
  let d = 0x1b873593;
  let p = start;
  for (const stop = end - 16; p <= stop; p += 16) {
    a = Math.imul(a ^ view.getInt32(p, true), 0x9e3779b1);
    a ^= a >>> 15;
    b = Math.imul(b ^ view.getInt32(p + 4, true), 0x85ebca77);
    b ^= b >>> 13;
    c = Math.imul(c ^ view.getInt32(p + 8, true), 0xc2b2ae3d);
    c ^= c >>> 16;
    d = Math.imul(d ^ view.getInt32(p + 12, true), 0x27d4eb2f);
    d ^= d >>> 15;
  }
  for (; p < end; p++) {
    a = Math.imul(a ^ buf[p], 0x9e3779b1);
    a ^= a >>> 15;
  }
  // Each half is a chain of bijections in every lane, in two different orders.
  const h1 = mix(mix(mix(mix(a) ^ b) ^ c) ^ d);
  const h2 = mix(mix(mix(mix(d ^ 0x5bd1e995) + c) ^ b) + a);
  // 21 bits of h2 above 32 bits of h1: an exact integer in a double, usable as a Map key.
  return (h2 >>> 11) * 0x100000000 + (h1 >>> 0);
}

/** The MurmurHash3 finaliser: a bijection on 32 bits in which every input bit affects every output bit. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return x ^ (x >>> 16);
}

let viewBuf: Uint8Array | undefined;
let view: DataView = new DataView(new ArrayBuffer(0));

/** A DataView of `buf`, kept while callers hash lines of the same buffer (one chunk holds many lines). */
function viewOf(buf: Uint8Array): DataView {
  if (buf !== viewBuf) {
    view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    viewBuf = buf;
  }
  return view;
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(1024);

/** `lineHash` of a line held as text: the hash of its UTF-8 bytes, so text and byte paths agree. */
export function textHash(text: string): number {
  if (scratch.length < text.length * 3) scratch = new Uint8Array(Math.max(text.length * 3, scratch.length * 2));
  const { written } = encoder.encodeInto(text, scratch);
  return lineHash(scratch, 0, written);
}

/** Test hook: `lineHash` computed in JavaScript only, to check that the kernel computes the same. */
export const scriptLineHashForTests = (buf: Uint8Array, start: number, end: number): number => scriptLineHash(buf, start, end);
