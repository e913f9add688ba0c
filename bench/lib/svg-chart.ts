/**
 * Draws a {@link Chart} as a standalone SVG, with no dependency: axes (linear or log), a light grid at
 * the ticks, one line with dots per series, a legend on the right. The document links it; GitHub and
 * editors show it as an image.
 */
import type { Chart, ChartAxis } from './result.js';

const WIDTH = 760;
const HEIGHT = 440;
const PLOT = { left: 78, right: WIDTH - 210, top: 64, bottom: HEIGHT - 58 };
const FONT = 'system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif';

/** Text for XML: `&`, `<`, `>` and quotes escaped. */
export function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&apos;');
}

/** A number short enough for a tick: at most 3 significant figures, no trailing zeros. */
function short(value: number): string {
  return String(Number(value.toPrecision(3)));
}

/** A tick label in the axis's format. */
export function tickLabel(value: number, format: ChartAxis['format']): string {
  if (format === 'count') {
    if (Math.abs(value) >= 1e6) return `${short(value / 1e6)}M`;
    if (Math.abs(value) >= 1e3) return `${short(value / 1e3)}k`;
    return short(value);
  }
  if (format === 'ms') {
    if (value === 0) return '0';
    if (Math.abs(value) < 1) return `${short(value * 1000)} µs`;
    if (Math.abs(value) < 1000) return `${short(value)} ms`;
    return `${short(value / 1000)} s`;
  }
  return short(value);
}

/** A round step for about `count` linear ticks over [0, max]: 1, 2 or 5 times a power of ten. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step ?? 10 * power;
}

/** An axis mapped onto pixels: the domain, the ticks, and the mapping. */
interface Scale {
  readonly ticks: readonly number[];
  /** Grid lines without a label (the 2..9 multiples on a log axis). */
  readonly minor: readonly number[];
  at(value: number): number;
}

function scale(axis: ChartAxis, values: readonly number[], from: number, to: number): Scale {
  if (axis.scale === 'log') {
    const bad = values.find((v) => v <= 0);
    if (bad !== undefined) throw new Error(`A log axis (${axis.label}) cannot show ${bad}`);
    const all = [...values, ...(axis.ticks ?? [])];
    const least = Math.log10(Math.min(...all));
    const most = Math.log10(Math.max(...all));
    // Given ticks: the range they and the values span, a little wider; else whole decades.
    const pad = axis.ticks === undefined ? 0 : Math.max((most - least) * 0.05, 0.05);
    const lo = axis.ticks === undefined ? Math.floor(least) : least - pad;
    const hi = axis.ticks === undefined ? Math.max(Math.ceil(most), lo + 1) : most + pad;
    const ticks = axis.ticks ?? Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
    const minor: number[] = [];
    for (let e = Math.floor(lo); e < hi; e++) for (let m = 2; m <= 9; m++) minor.push(m * 10 ** e);
    const at = (v: number): number => from + ((Math.log10(v) - lo) / (hi - lo)) * (to - from);
    return { ticks, minor, at };
  }
  const max = Math.max(...values, ...(axis.ticks ?? []), Number.MIN_VALUE);
  const step = niceStep(max, 5);
  const top = Math.ceil(max / step) * step;
  const ticks = axis.ticks ?? Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  const hi = Math.max(top, ...ticks);
  const at = (v: number): number => from + (v / hi) * (to - from);
  return { ticks, minor: [], at };
}

const fixed = (v: number): string => String(Math.round(v * 10) / 10);

/** The chart as an SVG document. Points that are not finite are left out; a series without any, too. */
export function renderChart(chart: Chart): string {
  const series = chart.series
    .map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }))
    .filter((s) => s.points.length > 0);
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="${FONT}">`,
    `<title>${escapeXml(chart.title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT.left}" y="24" font-size="16" font-weight="600" fill="#0f172a">${escapeXml(chart.title)}</text>`,
    `<text x="${PLOT.left}" y="42" font-size="12" fill="#475569">${escapeXml(chart.subtitle)}</text>`,
  ];
  if (series.length === 0) {
    out.push(`<text x="${PLOT.left}" y="${PLOT.top + 20}" font-size="12" fill="#475569">No data.</text>`);
    return `${out.join('\n')}\n</svg>\n`;
  }
  const sx = scale(chart.x, xs, PLOT.left, PLOT.right);
  const sy = scale(chart.y, ys, PLOT.bottom, PLOT.top);
  const grid = (d: string, color: string): string =>
    `<path d="${d}" stroke="${color}" stroke-width="1" fill="none"/>`;
  const vertical = (vs: readonly number[]): string =>
    vs.map((v) => `M${fixed(sx.at(v))} ${PLOT.top}V${PLOT.bottom}`).join('');
  const horizontal = (vs: readonly number[]): string =>
    vs.map((v) => `M${PLOT.left} ${fixed(sy.at(v))}H${PLOT.right}`).join('');
  const inX = (v: number): boolean => sx.at(v) >= PLOT.left - 0.5 && sx.at(v) <= PLOT.right + 0.5;
  const inY = (v: number): boolean => sy.at(v) <= PLOT.bottom + 0.5 && sy.at(v) >= PLOT.top - 0.5;
  out.push(
    grid(vertical(sx.minor.filter(inX)) + horizontal(sy.minor.filter(inY)), '#f1f5f9'),
    grid(vertical(sx.ticks.filter(inX)) + horizontal(sy.ticks.filter(inY)), '#e2e8f0'),
    `<path d="M${PLOT.left} ${PLOT.top}V${PLOT.bottom}H${PLOT.right}" stroke="#64748b" stroke-width="1" fill="none"/>`,
  );
  for (const t of sx.ticks.filter(inX)) {
    out.push(
      `<text x="${fixed(sx.at(t))}" y="${PLOT.bottom + 18}" font-size="11" fill="#334155" text-anchor="middle">${escapeXml(tickLabel(t, chart.x.format))}</text>`,
    );
  }
  for (const t of sy.ticks.filter(inY)) {
    out.push(
      `<text x="${PLOT.left - 8}" y="${fixed(sy.at(t) + 4)}" font-size="11" fill="#334155" text-anchor="end">${escapeXml(tickLabel(t, chart.y.format))}</text>`,
    );
  }
  const middleX = (PLOT.left + PLOT.right) / 2;
  const middleY = (PLOT.top + PLOT.bottom) / 2;
  out.push(
    `<text x="${fixed(middleX)}" y="${HEIGHT - 16}" font-size="12" fill="#0f172a" text-anchor="middle">${escapeXml(chart.x.label)}</text>`,
    `<text x="18" y="${fixed(middleY)}" font-size="12" fill="#0f172a" text-anchor="middle" transform="rotate(-90 18 ${fixed(middleY)})">${escapeXml(chart.y.label)}</text>`,
  );
  series.forEach((s, i) => {
    const points = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = points.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${fixed(sx.at(x))} ${fixed(sy.at(y))}`);
    const dash = s.dashed === true ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<g><title>${escapeXml(s.name)}</title>`,
      `<path d="${d.join('')}" stroke="${s.color}" stroke-width="2"${dash} fill="none"/>`,
      ...points.map(
        ([x, y]) =>
          `<circle cx="${fixed(sx.at(x))}" cy="${fixed(sy.at(y))}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name}: ${tickLabel(x, chart.x.format)}, ${tickLabel(y, chart.y.format)}`)}</title></circle>`,
      ),
      '</g>',
    );
    const ly = PLOT.top + 6 + i * 20;
    out.push(
      `<path d="M${PLOT.right + 16} ${ly}H${PLOT.right + 40}" stroke="${s.color}" stroke-width="2"${dash}/>`,
      `<circle cx="${PLOT.right + 28}" cy="${ly}" r="3" fill="${s.color}"/>`,
      `<text x="${PLOT.right + 46}" y="${ly + 4}" font-size="11" fill="#334155">${escapeXml(s.name)}</text>`,
    );
  });
  return `${out.join('\n')}\n</svg>\n`;
}
