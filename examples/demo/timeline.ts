/**
 * Draws a run as a standalone SVG, with no dependency: one lane per worker showing its state over time
 * (each restart in the same lane), and below, the workflow counts over time as lines, on one time axis,
 * with a legend and axis labels.
 */

import type { WorkerSummary } from './summary.js';

/** A stretch of time a worker spent in one state. */
export interface LaneSegment {
  readonly from: number;
  readonly to: number;
  /** A controller state (`starting`, `running`, `draining`, `handing-off`, `stopped`), or `spawned`. */
  readonly state: string;
  /** Written inside the segment when it fits. */
  readonly label?: string | undefined;
}

/** A worker's lane. */
export interface TimelineLane {
  readonly name: string;
  readonly segments: readonly LaneSegment[];
  /** Instants on the lane: a signal sent, a park, a resume. */
  readonly marks: readonly {
    readonly at: number;
    readonly label: string;
    readonly kind: 'signal' | 'note';
  }[];
}

/** A line of the chart: `[time ms, value]` points. */
export interface TimelineSeries {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean | undefined;
  readonly points: readonly (readonly [number, number])[];
}

/** What to draw. Times are milliseconds from the start of the run. */
export interface TimelineData {
  readonly title: string;
  readonly subtitle: string;
  readonly durationMs: number;
  readonly lanes: readonly TimelineLane[];
  readonly series: readonly TimelineSeries[];
  /** Moments of the run drawn across the chart (a user pause, a restart). */
  readonly events: readonly { readonly at: number; readonly label: string }[];
}

/** The colour of each lane state, in legend order. */
export const STATE_COLORS: Readonly<Record<string, string>> = Object.freeze({
  spawned: '#cbd5e1',
  starting: '#93c5fd',
  running: '#22c55e',
  draining: '#f59e0b',
  'handing-off': '#ef4444',
  stopped: '#64748b',
  failed: '#7f1d1d',
});

/** What each state means, for the legend. */
const STATE_NAMES: Readonly<Record<string, string>> = Object.freeze({
  spawned: 'process starting',
  starting: 'joining group',
  running: 'running',
  draining: 'draining',
  'handing-off': 'leave, lock, park',
  stopped: 'stopped',
  failed: 'failed',
});

const W = 1000;
const LEFT = 110;
const RIGHT = 30;
const LANE_H = 22;
const LANE_GAP = 8;
const CHART_H = 220;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function f(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** A tick step giving about `target` ticks over `span`. */
function tickStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

/** Renders `data` as an SVG document. */
export function renderTimeline(data: TimelineData): string {
  const plotW = W - LEFT - RIGHT;
  const duration = Math.max(1, data.durationMs);
  const x = (t: number): number => LEFT + (Math.min(Math.max(t, 0), duration) / duration) * plotW;
  const out: string[] = [];
  let y: number;

  // Title.
  out.push(
    `<text x="${LEFT}" y="24" font-size="17" font-weight="600" fill="#0f172a">${esc(data.title)}</text>`,
  );
  out.push(`<text x="${LEFT}" y="42" font-size="12" fill="#475569">${esc(data.subtitle)}</text>`);
  y = 58;

  // Legend of lane states.
  let lx = LEFT;
  for (const [state, color] of Object.entries(STATE_COLORS)) {
    const name = STATE_NAMES[state] ?? state;
    out.push(`<rect x="${lx}" y="${y}" width="12" height="12" rx="2" fill="${color}"/>`);
    out.push(`<text x="${lx + 16}" y="${y + 10}" font-size="11" fill="#334155">${esc(name)}</text>`);
    lx += 16 + name.length * 6.2 + 14;
  }
  out.push(`<path d="M ${lx} ${y + 2} l 10 0 l -5 8 z" fill="#0f172a"/>`);
  out.push(`<text x="${lx + 16}" y="${y + 10}" font-size="11" fill="#334155">SIGTERM sent</text>`);
  y += 34;

  // Lanes.
  const lanesTop = y;
  const lanesH = data.lanes.length * (LANE_H + LANE_GAP);
  const chartTop = lanesTop + lanesH + 40;
  const axisBottom = chartTop + CHART_H;
  const step = tickStep(duration / 1000, 10);
  // Vertical grid, through lanes and chart.
  for (let s = 0; s <= duration / 1000 + 1e-9; s += step) {
    const gx = x(s * 1000);
    out.push(
      `<line x1="${f(gx)}" y1="${lanesTop - 4}" x2="${f(gx)}" y2="${axisBottom}" stroke="#e2e8f0" stroke-width="1"/>`,
    );
  }
  data.lanes.forEach((lane, i) => {
    const ly = lanesTop + i * (LANE_H + LANE_GAP);
    out.push(
      `<text x="${LEFT - 10}" y="${ly + LANE_H / 2 + 4}" font-size="12" text-anchor="end" fill="#0f172a">${esc(lane.name)}</text>`,
    );
    out.push(`<rect x="${LEFT}" y="${ly}" width="${plotW}" height="${LANE_H}" fill="#f8fafc"/>`);
    for (const seg of lane.segments) {
      const sx = x(seg.from);
      const sw = Math.max(1, x(seg.to) - sx);
      const color = STATE_COLORS[seg.state] ?? '#94a3b8';
      out.push(
        `<rect x="${f(sx)}" y="${ly}" width="${f(sw)}" height="${LANE_H}" fill="${color}"><title>${esc(
          `${lane.name}: ${seg.state} ${(seg.from / 1000).toFixed(2)}s to ${(seg.to / 1000).toFixed(2)}s`,
        )}</title></rect>`,
      );
      if (seg.label !== undefined && sw > seg.label.length * 6.5 + 6) {
        out.push(
          `<text x="${f(sx + 4)}" y="${ly + LANE_H / 2 + 4}" font-size="11" fill="#ffffff" font-weight="600">${esc(seg.label)}</text>`,
        );
      }
    }
    for (const mark of lane.marks) {
      const mx = x(mark.at);
      if (mark.kind === 'signal') {
        out.push(
          `<path d="M ${f(mx - 5)} ${ly - 7} l 10 0 l -5 7 z" fill="#0f172a"><title>${esc(mark.label)}</title></path>`,
        );
      } else {
        // Kept inside the drawing: a note near the right edge ends at its instant instead.
        const end = mx + 3 + mark.label.length * 5.6 > W - 4;
        out.push(
          `<text x="${f(end ? mx - 3 : mx + 3)}" y="${ly - 1}" font-size="10"${
            end ? ' text-anchor="end"' : ''
          } fill="#0f172a">${esc(mark.label)}</text>`,
        );
      }
    }
  });

  // Chart of counts.
  const maxValue = Math.max(1, ...data.series.flatMap((s) => s.points.map(([, v]) => v)));
  const vStep = tickStep(maxValue, 5);
  const top = Math.ceil(maxValue / vStep) * vStep;
  const cy = (v: number): number => chartTop + CHART_H - (v / top) * CHART_H;
  for (let v = 0; v <= top + 1e-9; v += vStep) {
    const gy = cy(v);
    out.push(
      `<line x1="${LEFT}" y1="${f(gy)}" x2="${LEFT + plotW}" y2="${f(gy)}" stroke="#e2e8f0" stroke-width="1"/>`,
    );
    out.push(
      `<text x="${LEFT - 8}" y="${f(gy + 4)}" font-size="11" text-anchor="end" fill="#475569">${f(v)}</text>`,
    );
  }
  // Moments of the run: dashed lines across the chart, labelled above it (on a second row when the
  // previous label would overlap).
  let previousEnd = -Infinity;
  let row = 0;
  for (const event of data.events) {
    const ex = x(event.at);
    out.push(
      `<line x1="${f(ex)}" y1="${chartTop - 12}" x2="${f(ex)}" y2="${chartTop + CHART_H}" stroke="#64748b" stroke-width="1" stroke-dasharray="4 3"/>`,
    );
    const width = event.label.length * 5.6;
    const anchor = ex + 3 + width > LEFT + plotW ? 'end' : 'start';
    const start = anchor === 'end' ? ex - 3 - width : ex + 3;
    row = start < previousEnd + 6 ? 1 - row : 0;
    previousEnd = start + width;
    out.push(
      `<text x="${f(anchor === 'end' ? ex - 3 : ex + 3)}" y="${chartTop - 4 - row * 12}" font-size="10" text-anchor="${anchor}" fill="#334155">${esc(event.label)}</text>`,
    );
  }
  for (const series of data.series) {
    if (series.points.length === 0) continue;
    const d = series.points.map(([t, v], i) => `${i === 0 ? 'M' : 'L'} ${f(x(t))} ${f(cy(v))}`).join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${series.color}" stroke-width="2" stroke-linejoin="round"${
        series.dashed === true ? ' stroke-dasharray="6 4"' : ''
      }><title>${esc(series.name)}</title></path>`,
    );
  }
  out.push(
    `<rect x="${LEFT}" y="${chartTop}" width="${plotW}" height="${CHART_H}" fill="none" stroke="#94a3b8"/>`,
  );
  out.push(
    `<text transform="translate(${LEFT - 44} ${chartTop + CHART_H / 2}) rotate(-90)" font-size="12" text-anchor="middle" fill="#0f172a">workflows</text>`,
  );

  // Time axis.
  for (let s = 0; s <= duration / 1000 + 1e-9; s += step) {
    const gx = x(s * 1000);
    out.push(
      `<line x1="${f(gx)}" y1="${axisBottom}" x2="${f(gx)}" y2="${axisBottom + 5}" stroke="#475569"/>`,
    );
    out.push(
      `<text x="${f(gx)}" y="${axisBottom + 18}" font-size="11" text-anchor="middle" fill="#475569">${f(
        Math.round(s * 10) / 10,
      )}</text>`,
    );
  }
  out.push(
    `<text x="${LEFT + plotW / 2}" y="${axisBottom + 36}" font-size="12" text-anchor="middle" fill="#0f172a">time since start (s)</text>`,
  );

  // Legend of lines.
  y = axisBottom + 54;
  lx = LEFT;
  for (const series of data.series) {
    out.push(
      `<line x1="${lx}" y1="${y}" x2="${lx + 22}" y2="${y}" stroke="${series.color}" stroke-width="2.5"${
        series.dashed === true ? ' stroke-dasharray="6 4"' : ''
      }/>`,
    );
    out.push(`<text x="${lx + 28}" y="${y + 4}" font-size="11" fill="#334155">${esc(series.name)}</text>`);
    lx += 28 + series.name.length * 6.2 + 18;
  }
  const height = y + 18;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" ${FONT}>`,
    `<title>${esc(data.title)}</title>`,
    `<rect width="${W}" height="${height}" fill="#ffffff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

/**
 * The lanes of worker processes: one per slot, each start of the slot in turn; a marker where a signal
 * was sent, and notes where a worker parked, recovered, resumed, or died.
 */
export function workerLanes(workers: readonly WorkerSummary[], slots: number, end: number): TimelineLane[] {
  return Array.from({ length: slots }, (_, i) => {
    const slot = i + 1;
    const segments: LaneSegment[] = [];
    const marks: TimelineLane['marks'][number][] = [];
    for (const w of workers.filter((worker) => worker.slot === slot)) {
      const { states, exit, report, resumed } = w;
      for (const [k, cur] of states.entries()) {
        if (cur.state === 'exited') break;
        segments.push({
          from: cur.at,
          to: states[k + 1]?.at ?? exit?.at ?? end,
          state: cur.state,
          label: cur.state === 'running' ? w.memberId : undefined,
        });
      }
      if (w.signalled !== undefined) {
        marks.push({ at: w.signalled.at, label: `${w.signalled.signal} ${w.memberId}`, kind: 'signal' });
      }
      if (exit !== undefined && (exit.signal !== null || exit.code !== 0)) {
        const label = exit.signal === null ? `exit ${exit.code}` : `killed (${exit.signal})`;
        marks.push({ at: exit.at, label, kind: 'note' });
      }
      if (report !== undefined && report.parked > 0 && exit !== undefined) {
        marks.push({ at: exit.at, label: `parked ${report.parked}`, kind: 'note' });
      }
      const recovered = w.recovery?.recovered ?? 0;
      if (recovered > 0 && w.readyAt !== undefined) {
        marks.push({ at: w.readyAt, label: `recovered ${recovered}`, kind: 'note' });
      }
      if (resumed !== undefined && resumed.resumed > 0 && w.readyAt !== undefined) {
        // Beside a recovery's note, a little later: the resume follows the recovery.
        const at = w.readyAt + (recovered > 0 ? end / 14 : 0);
        marks.push({ at, label: `resumed ${resumed.resumed}`, kind: 'note' });
      }
    }
    return { name: `worker-${slot}`, segments, marks };
  });
}
