// The benchmark's comparison: the same dashboard drawn with Chart.js 4 at its best-case settings for large data
// (no animation, `parsing: false` with pre-shaped {x, y} points, `normalized: true`, the decimation plugin with
// LTTB, points hidden), fed the same way as ours: appends push into the datasets and one update per frame.
// Only bench/webview.bench.ts loads it (through chartHarness.ts); the dashboard itself never does.
import {
  Chart,
  Decimation,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Title,
  Tooltip,
} from 'chart.js';
import type { SeriesPoints } from './chartApi';
import type { PlainChartSpec } from './chartHarnessApi';

Chart.register(LineController, LineElement, PointElement, LinearScale, Decimation, Tooltip, Legend, Title);

/** Points as Chart.js's pre-parsed data (`parsing: false`): {x, y} objects. */
function shape(points: SeriesPoints): { x: number; y: number }[] {
  const out = new Array<{ x: number; y: number }>(points.y.length);
  for (let k = 0; k < out.length; k++) out[k] = { x: points.step[k], y: points.y[k] };
  return out;
}

/** One dashboard chart on Chart.js. */
export interface ChartJsBenchChart {
  append(points: readonly SeriesPoints[]): void;
  /** The element that receives the mouse. */
  readonly hoverTarget: HTMLElement;
  destroy(): void;
}

/** Creates a Chart.js chart for `spec` in `container`, `width` × `height` CSS pixels, holding `initial` from the
 * start (Chart.js's fastest way to show a finished run: no appends). */
export function createChartJsBenchChart(container: HTMLElement, spec: PlainChartSpec, width: number, height: number, initial: readonly SeriesPoints[] = []): ChartJsBenchChart {
  const canvas = document.createElement('canvas');
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = width;
  canvas.height = height;
  container.append(canvas);
  const probe = document.createElement('span');
  container.append(probe);
  const color = (css: string) => {
    probe.style.color = css;
    return getComputedStyle(probe).color;
  };
  // Our own references to the point arrays: with decimation on, `dataset.data` reads back the decimated copy.
  const arrays = spec.series.map((s) => {
    const points = initial.find((p) => p.key === s.key);
    return points === undefined ? [] : shape(points);
  });
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: spec.series.map((s, i) => ({
        label: s.label,
        data: arrays[i],
        borderColor: color(s.color),
        borderWidth: 1.5,
        borderDash: s.dashed === true ? [6, 4] : [],
        pointRadius: 0,
        pointHoverRadius: 0,
        indexAxis: 'x' as const,
      })),
    },
    options: {
      animation: false,
      responsive: false,
      devicePixelRatio: window.devicePixelRatio,
      parsing: false,
      normalized: true,
      spanGaps: true,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      scales: { x: { type: 'linear' }, y: { type: 'linear' } },
      plugins: {
        decimation: { enabled: true, algorithm: 'lttb', samples: width },
        title: { display: true, text: spec.title },
        legend: { display: true },
        tooltip: { enabled: true, animation: false },
      },
    },
  });
  let frame = 0;
  return {
    hoverTarget: canvas,
    append(points) {
      for (const p of points) {
        const target = arrays[spec.series.findIndex((s) => s.key === p.key)];
        // One push per append and series: Chart.js hooks the array's push, and every call syncs its elements
        // (pushing point by point is quadratic there).
        const items = shape(p);
        for (let k = 0; k < items.length; k += 10_000) target.push(...items.slice(k, k + 10_000));
      }
      if (frame === 0) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          chart.update('none');
        });
      }
    },
    destroy() {
      if (frame !== 0) cancelAnimationFrame(frame);
      chart.destroy();
      canvas.remove();
    },
  };
}
