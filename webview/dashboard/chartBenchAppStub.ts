// Scenario 3b of the chart benchmark: the real dashboard app (main.ts) with a stand-in for VS Code's webview API.
// This module runs before main.ts (chartBenchApp.ts imports it first): it answers the app's `ready` request with
// the snapshot of one finished run, posts that run's whole history as one metrics batch (as the host does), and
// records on `globalThis.appFirstPaint` the time since navigation at the end of the frame that drew it.
import { isWireMessage } from '../protocol';
import { BENCH_EVAL_EVERY } from './chartBenchData';
import { DASHBOARD_STRING_KEYS, DashboardReadyRequest, type DashboardSnapshot, type DashboardStringKey, type MetricsBatch, MetricsNotification } from './protocol';

/** Steps of the run: `?steps=N` on the page's URL, else 100,000. */
const STEPS = Number(new URLSearchParams(location.search).get('steps') ?? 100_000);
const PROBE = 'chart-bench/painted?';

interface BenchGlobals {
  acquireVsCodeApi(): { postMessage(message: unknown): void; getState(): unknown; setState(state: unknown): void };
  appFirstPaint?: number;
  finetuneDashboard?: { received(): number };
}

function snapshot(): DashboardSnapshot {
  const strings = Object.fromEntries(DASHBOARD_STRING_KEYS.map((key) => [key, key])) as Record<DashboardStringKey, string>;
  const now = Date.now() / 1000;
  return {
    strings,
    runs: [{
      index: 0, backend: 'bench', jobId: 'ftjob-bench', name: 'bench', model: 'Qwen/Qwen2.5-0.5B-Instruct', status: 'succeeded', statusText: 'Succeeded',
      final: true, step: STEPS, totalSteps: STEPS, epoch: 3, startedAt: now - STEPS * 0.8, finishedAt: now, etaAt: null, tokens: '51.2M',
      settings: [{ label: 'learning rate', value: '2e-4' }], error: null, note: null, loading: false, loadError: null,
    }],
    checkpoints: [{ run: 0, checkpoints: [] }],
    settings: { smoothing: 0.6, logScale: false, xAxis: 'step' },
    runRefs: [{ backend: 'bench', jobId: 'ftjob-bench' }],
  };
}

/** The run's history as the host sends it: columnar, NaN where a row has no value (valid_* between evals). */
function history(): MetricsBatch {
  const column = () => new Float64Array(STEPS);
  const step = column();
  const time = column();
  const values = { train_loss: column(), valid_loss: column(), train_mean_token_accuracy: column(), valid_mean_token_accuracy: column(), learning_rate: column(), grad_norm: column(), tokens_per_second: column(), gpu_memory: column() };
  for (let i = 0; i < STEPS; i++) {
    const s = i + 1;
    const p = s / STEPS;
    const wobble = Math.sin(s * 12.9898) * 0.5;
    const evalStep = s % BENCH_EVAL_EVERY === 0;
    step[i] = s;
    time[i] = s * 0.8;
    values.train_loss[i] = 0.35 + 2.2 * Math.exp(-6 * p) + wobble * 0.25;
    values.valid_loss[i] = evalStep ? 0.45 + 2.1 * Math.exp(-5.5 * p) : NaN;
    values.train_mean_token_accuracy[i] = 0.92 - 0.55 * Math.exp(-6 * p) + wobble * 0.06;
    values.valid_mean_token_accuracy[i] = evalStep ? 0.9 - 0.55 * Math.exp(-5.5 * p) : NaN;
    values.learning_rate[i] = 2e-4 * 0.5 * (1 + Math.cos(Math.PI * p));
    values.grad_norm[i] = 0.6 + 1.5 * Math.exp(-4 * p) + Math.abs(wobble) * 0.4;
    values.tokens_per_second[i] = 5200 + wobble * 600;
    values.gpu_memory[i] = 17.2e9 + Math.abs(wobble) * 0.6e9;
  }
  return { run: 0, step, time, values };
}

const globals = globalThis as unknown as BenchGlobals;
const batch = history();

globals.acquireVsCodeApi = () => ({
  postMessage(message: unknown) {
    if (!isWireMessage(message) || message.type !== 'request') return;
    const result = message.method === DashboardReadyRequest.method ? snapshot() : null;
    window.postMessage({ type: 'response', id: message.id, ok: true, result }, '*');
    if (message.method !== DashboardReadyRequest.method) return;
    window.postMessage({ type: 'notification', method: MetricsNotification.method, params: { batches: [batch] } }, '*');
    // Handled after the metrics (messages keep their order): the frame callback it registers runs after the
    // charts' own redraw in the same frame.
    window.postMessage(PROBE, '*');
  },
  getState: () => undefined,
  setState: () => undefined,
});

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  if (event.data !== PROBE) return;
  requestAnimationFrame(() => {
    globals.appFirstPaint = performance.now();
  });
});
