// Number and duration formats of the charts' axes and read-outs. Pure.

/** 4 significant digits, without a trailing exponent mess: 0.0001234 → 1.234e-4, 12345 → 12,345 → 1.235e+4. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e5) return String(Number(value.toPrecision(4)));
  return value.toExponential(3).replace(/\.?0+e/, 'e');
}

const STEP_FORMAT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** A step count with thousands separators (en: 12,345); one formatter for all (toLocaleString makes one per call). */
export function formatStep(step: number): string {
  return Number.isInteger(step) ? STEP_FORMAT.format(step) : formatValue(step);
}

/**
 * Seconds since the start, as a clock-like duration for axes and read-outs: 45s, 1m30s, 12m05s, 2h05m, 3d04h.
 * Sub-second values (zoomed in on the first seconds) keep one decimal: 0.5s.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  const sign = seconds < 0 ? '-' : '';
  let s = Math.abs(seconds);
  if (s < 10 && !Number.isInteger(s)) return `${sign}${Number(s.toFixed(1))}s`;
  s = Math.round(s);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${sign}${s}s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const rest = s % 60;
    return `${sign}${m}m${rest === 0 ? '' : `${pad(rest)}s`}`;
  }
  if (s < 86_400) {
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return `${sign}${h}h${m === 0 ? '' : `${pad(m)}m`}`;
  }
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  return `${sign}${d}d${h === 0 ? '' : `${pad(h)}h`}`;
}

/** Tick spacings for a time axis, in seconds: round clock units, so ticks fall on 30s, 5m, 1h, … */
export const DURATION_INCREMENTS: readonly number[] = [
  0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
  172_800, 604_800, 1_209_600, 2_592_000,
];
