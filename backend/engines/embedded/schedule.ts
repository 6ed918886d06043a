// The shape of a run, all derived from the spec and the seed so that a resumed job recomputes exactly what the
// interrupted one would have done: steps, the learning rate of each step, where checkpoints fall, and the order
// of the training examples in each epoch.
import type { LrScheduler } from '../../../common/api';

/**
 * A small seeded generator (mulberry32) for data order and the eval split: independent of the model's Rng, so
 * that the order of the data never depends on how many random numbers dropout drew.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded permutation of 0…n-1 (Fisher–Yates). */
export function permutation(n: number, seed: number): number[] {
  const random = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** The order of the training examples in epoch `epoch` (0-based): a fresh shuffle per epoch, from the job's seed. */
export function epochOrder(examples: number, seed: number, epoch: number): number[] {
  // Mixing the epoch in with a large odd constant keeps the seeds of neighbouring epochs far apart.
  return permutation(examples, (Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
}

/** The fixed quantities of a run. */
export interface RunPlan {
  stepsPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
  /** Steps (1-based) after which a checkpoint is written, ascending; the last is `totalSteps`. */
  checkpointSteps: number[];
}

/** Steps per epoch = ceil(examples / batch size), times the epochs; checkpoints evenly spaced, the last at the end. */
export function planRun(trainExamples: number, batchSize: number, epochs: number, warmupRatio: number, checkpoints: number): RunPlan {
  const stepsPerEpoch = Math.ceil(trainExamples / batchSize);
  const totalSteps = stepsPerEpoch * epochs;
  const warmupSteps = Math.min(totalSteps, Math.ceil(totalSteps * warmupRatio));
  const wanted = Math.max(1, Math.min(checkpoints, totalSteps));
  const steps = new Set<number>();
  for (let k = 1; k <= wanted; k++) steps.add(Math.max(1, Math.round((totalSteps * k) / wanted)));
  return { stepsPerEpoch, totalSteps, warmupSteps, checkpointSteps: [...steps].sort((a, b) => a - b) };
}

/**
 * The learning rate of step `step` (1-based): a linear warm-up that reaches the peak at the last warm-up step,
 * then cosine or linear decay towards 0 (never reaching it, so that the last step still learns), or constant.
 */
export function learningRate(step: number, plan: RunPlan, peak: number, scheduler: LrScheduler): number {
  const i = step - 1;
  if (i < plan.warmupSteps) return (peak * (i + 1)) / plan.warmupSteps;
  if (scheduler === 'constant') return peak;
  const progress = (i - plan.warmupSteps) / Math.max(1, plan.totalSteps - plan.warmupSteps);
  if (scheduler === 'linear') return peak * (1 - progress);
  return peak * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The examples (indices) of step `step` (1-based): a consecutive slice of its epoch's order. */
export function batchOf(step: number, plan: RunPlan, order: readonly number[], batchSize: number): number[] {
  const within = (step - 1) % plan.stepsPerEpoch;
  return order.slice(within * batchSize, (within + 1) * batchSize);
}
