// Choosing the next token from logits, with transformers' generation rules: repetition penalty (divide the positive
// logits of tokens already seen, multiply the negative ones), temperature, top-k, top-p (nucleus), then a draw.
import type { Rng } from './rng';

/** How to pick the next token; temperature 0 is greedy. topK 0 and topP 1 switch those filters off. */
export interface SamplingOptions {
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
}

/**
 * The next token. The repetition penalty applies to greedy decoding too, as in transformers (a penalty of 1
 * changes nothing); with temperature 0 the argmax is taken and rng is not used.
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, previous: ArrayLike<number>, rng: Rng): number {
  const n = logits.length;
  const scores = Float64Array.from(logits);
  const penalty = options.repetitionPenalty;
  if (penalty !== 1 && penalty > 0) {
    const seen = new Set<number>();
    for (let i = 0; i < previous.length; i++) {
      const id = previous[i];
      if (id < 0 || id >= n || seen.has(id)) continue;
      seen.add(id);
      scores[id] = scores[id] > 0 ? scores[id] / penalty : scores[id] * penalty;
    }
  }
  if (!(options.temperature > 0)) return argmax(scores);
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    scores[i] /= options.temperature;
    if (scores[i] > max) max = scores[i];
  }
  // Candidates in descending score order; top-k and top-p only ever shorten this list.
  let order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  if (options.topK > 0 && options.topK < n) order = order.slice(0, options.topK);
  const probs = order.map((i) => Math.exp(scores[i] - max));
  let total = probs.reduce((a, b) => a + b, 0);
  if (options.topP > 0 && options.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    // Keep the fewest tokens whose probability reaches topP (at least one).
    while (keep < probs.length) {
      cumulative += probs[keep] / total;
      keep++;
      if (cumulative >= options.topP) break;
    }
    order = order.slice(0, keep);
    probs.length = keep;
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.uniform() * total;
  for (let k = 0; k < order.length; k++) {
    r -= probs[k];
    if (r < 0) return order[k];
  }
  return order[order.length - 1];
}

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
