// The embedded engine's random numbers: xoshiro128** seeded through splitmix32. Its whole state is four 32-bit
// words, so a checkpoint can store it and a resumed run draws exactly what the uninterrupted run would have.

/** Why an RNG state was refused. */
export class RngError extends Error {
  constructor(
    readonly code: 'invalid_state',
    message: string,
  ) {
    super(message);
  }
  static is(e: unknown): e is RngError {
    return e instanceof RngError;
  }
}

/** A seeded PRNG whose whole state can be saved (`getState`) and restored (`Rng.fromState`). */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** Same seed, same sequence; any finite number is accepted (its integer part modulo 2³² is used). */
  constructor(seed: number) {
    let x = Math.trunc(seed) >>> 0;
    // splitmix32 spreads even small or similar seeds over the four words, and never yields an all-zero state
    // for all of them at once in practice; the guard below covers the impossible case anyway.
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Standard normal (Box–Muller). No spare value is cached, so the state stays the four words. */
  normal(): number {
    const u1 = 1 - this.uniform(); // (0, 1]: log stays finite
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** The four state words; JSON-safe. */
  getState(): number[] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** The generator that continues exactly where the one that gave `state` was. */
  static fromState(state: number[]): Rng {
    if (
      !Array.isArray(state) ||
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) ||
      state.every((w) => w === 0)
    ) {
      throw new RngError('invalid_state', `RNG state must be four unsigned 32-bit integers, not all zero; got ${JSON.stringify(state)}`);
    }
    const rng = new Rng(0);
    rng.s0 = state[0] | 0;
    rng.s1 = state[1] | 0;
    rng.s2 = state[2] | 0;
    rng.s3 = state[3] | 0;
    return rng;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
