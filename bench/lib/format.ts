import type { Summary } from './stats.js';

/** A number with `digits` significant figures at most, without exponent notation for the usual ranges. */
export function num(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 10 ** digits) return Math.round(value).toLocaleString('en-US');
  if (abs === 0) return '0';
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)));
  return value.toFixed(Math.min(decimals, 6));
}

/** Milliseconds as µs under 1 ms, ms under 10 s, else s. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (Math.abs(ms) < 1) return `${num(ms * 1000)} µs`;
  if (Math.abs(ms) < 10_000) return `${num(ms)} ms`;
  return `${num(ms / 1000)} s`;
}

/** Bytes as B, KiB or MiB. */
export function bytes(value: number): string {
  const abs = Math.abs(value);
  if (abs < 1024) return `${num(value)} B`;
  if (abs < 1024 ** 2) return `${num(value / 1024)} KiB`;
  return `${num(value / 1024 ** 2)} MiB`;
}

/** `median (min – max)` of a summary, through `unit`. */
export function spread(s: Summary, unit: (v: number) => string = num): string {
  return `${unit(s.median)} (${unit(s.min)} – ${unit(s.max)})`;
}

/** `median [p25 – p75]` of a summary, through `unit`. */
export function iqr(s: Summary, unit: (v: number) => string = num): string {
  return `${unit(s.median)} [${unit(s.p25)} – ${unit(s.p75)}]`;
}

/** A ratio as `1.23x`. */
export function times(value: number): string {
  return `${num(value)}x`;
}
