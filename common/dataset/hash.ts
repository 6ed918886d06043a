/**
 * A 53-bit hash of a line's bytes, for finding exact duplicate lines without keeping earlier lines in memory
 * (the streaming validator sees each line once). Two independent 32-bit multiply-xor lanes over 4-byte words;
 * at a million lines the chance of a false duplicate is about 1e-4, and callers that still hold both lines
 * confirm equality before reporting.
 */
export function lineHash(buf: Uint8Array, start: number, end: number): number {
  let h1 = 0x811c9dc5 ^ (end - start);
  let h2 = 0x2545f491;
  let p = start;
  const stop = end - 3;
  for (; p < stop; p += 4) {
    const w = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24);
    h1 = Math.imul(h1 ^ w, 0x9e3779b1);
    h1 ^= h1 >>> 15;
    h2 = Math.imul(h2 + w, 0x85ebca77);
    h2 ^= h2 >>> 13;
  }
  for (; p < end; p++) {
    h1 = Math.imul(h1 ^ buf[p], 0x9e3779b1);
    h2 = Math.imul(h2 + buf[p], 0x85ebca77);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x7feb352d);
  h1 ^= h1 >>> 15;
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0x846ca68b);
  h2 ^= h2 >>> 16;
  // 21 bits of h2 above 32 bits of h1: an exact integer in a double, usable as a Map key.
  return (h2 >>> 11) * 0x100000000 + (h1 >>> 0);
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(1024);

/** `lineHash` of a line held as text: the hash of its UTF-8 bytes, so text and byte paths agree. */
export function textHash(text: string): number {
  if (scratch.length < text.length * 3) scratch = new Uint8Array(Math.max(text.length * 3, scratch.length * 2));
  const { written } = encoder.encodeInto(text, scratch);
  return lineHash(scratch, 0, written);
}
