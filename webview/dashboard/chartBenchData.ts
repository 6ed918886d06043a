// The synthetic run of the dashboard benchmark (bench/webview.bench.ts, through chartHarness.ts): the six charts
// of a run dashboard and deterministic, realistic-looking metrics for any range of steps. Pure, no DOM.
import type { SeriesPoints } from './chartApi';
import type { PlainChartSpec } from './chartHarnessApi';

/** Valid loss and accuracy are reported every this many steps, as the trainer's evaluation does. */
export const BENCH_EVAL_EVERY = 50;
/** Seconds per step of the synthetic run. */
const SECONDS_PER_STEP = 0.8;

/** The six charts of a run dashboard: loss (train, valid), token accuracy (train, valid), learning rate, grad norm,
 * tokens/s, GPU memory. */
export function benchDashboardSpecs(): PlainChartSpec[] {
  const train = { color: 'var(--vscode-charts-blue)' };
  const valid = { color: 'var(--vscode-charts-orange)', dashed: true };
  return [
    { id: 'loss', title: 'Loss', series: [{ key: 'train_loss', label: 'train loss', ...train }, { key: 'valid_loss', label: 'valid loss', ...valid }] },
    { id: 'accuracy', title: 'Token accuracy', series: [{ key: 'train_acc', label: 'train', ...train }, { key: 'valid_acc', label: 'valid', ...valid }] },
    { id: 'learning_rate', title: 'Learning rate', series: [{ key: 'lr', label: 'learning rate', color: 'var(--vscode-charts-purple)', smooth: false }] },
    { id: 'grad_norm', title: 'Grad norm', series: [{ key: 'grad_norm', label: 'grad norm', color: 'var(--vscode-charts-red)' }] },
    { id: 'tokens_per_second', title: 'Tokens/s', series: [{ key: 'tps', label: 'tokens/s', color: 'var(--vscode-charts-green)' }] },
    { id: 'gpu_memory', title: 'GPU memory', series: [{ key: 'gpu', label: 'GPU memory', color: 'var(--vscode-charts-yellow)' }] },
  ];
}

/** A reproducible pseudo-random number in [0, 1) for step `i` and stream `k`. */
function noise(i: number, k: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35);
  h ^= h >>> 13;
  h = Math.imul(h, 0x27d4eb2f);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

/** The value of series `key` at `step` (1-based) of a run of `total` steps. */
function value(key: string, step: number, total: number): number {
  const progress = step / total;
  switch (key) {
    case 'train_loss':
      return 0.35 + 2.2 * Math.exp(-6 * progress) + (noise(step, 1) - 0.5) * 0.25;
    case 'valid_loss':
      return 0.45 + 2.1 * Math.exp(-5.5 * progress) + (noise(step, 2) - 0.5) * 0.04;
    case 'train_acc':
      return 0.92 - 0.55 * Math.exp(-6 * progress) + (noise(step, 3) - 0.5) * 0.06;
    case 'valid_acc':
      return 0.9 - 0.55 * Math.exp(-5.5 * progress) + (noise(step, 4) - 0.5) * 0.01;
    case 'lr': {
      const warmup = Math.min(1, step / (total * 0.03));
      return 2e-4 * warmup * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
    case 'grad_norm':
      return 0.6 + 1.5 * Math.exp(-4 * progress) + noise(step, 5) * 0.4;
    case 'tps':
      return 5200 + (noise(step, 6) - 0.5) * 600;
    default:
      return 17.2e9 + noise(step, 7) * 0.6e9;
  }
}

/** Whether series `key` has a point at `step` (the valid_* ones only at evaluation steps). */
function hasPoint(key: string, step: number): boolean {
  return !key.startsWith('valid_') || step % BENCH_EVAL_EVERY === 0;
}

/** The points of every series of chart `spec` for steps [from, from + count), of a run of `total` steps. */
export function benchPoints(spec: PlainChartSpec, from: number, count: number, total: number): SeriesPoints[] {
  return spec.series.map(({ key }) => {
    const step: number[] = [];
    const time: number[] = [];
    const y: number[] = [];
    for (let s = from; s < from + count; s++) {
      if (!hasPoint(key, s)) continue;
      step.push(s);
      time.push(s * SECONDS_PER_STEP);
      y.push(value(key, s, total));
    }
    return { key, step: Float64Array.from(step), time: Float64Array.from(time), y: Float64Array.from(y) };
  });
}
