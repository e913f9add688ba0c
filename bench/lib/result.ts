/** What a suite hands back to `main.ts`: plain data, so it crosses the child-process boundary as JSON. */
import { LineProtocol } from '../../harness/process.js';

/** A table, its cells already formatted. */
export interface Table {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** Whether a target of the issue was met by this run's medians. */
export type CheckStatus = 'met' | 'missed' | 'not measured';

/** One target of the issue, and what this run measured against it. */
export interface Check {
  /** The target, as the issue states it. */
  readonly target: string;
  /** What this run measured (a median and its spread). */
  readonly measured: string;
  readonly status: CheckStatus;
}

/** A line of a chart: its points `[x, y]`, in the units of the chart's axes. */
export interface ChartSeries {
  readonly name: string;
  /** A CSS colour. */
  readonly color: string;
  readonly dashed?: boolean | undefined;
  readonly points: readonly (readonly [number, number])[];
}

/** One axis of a chart. */
export interface ChartAxis {
  /** The axis title, with its unit: `workflows`, `time (ms)`. */
  readonly label: string;
  /** `log`: powers of ten evenly spaced (every value must be positive). */
  readonly scale: 'linear' | 'log';
  /** How tick labels read: `count` as `10k`, `1M`; `ms` as `20 ms`, `1.5 s`; else plain numbers. */
  readonly format?: 'count' | 'ms' | undefined;
  /** Where the ticks go; by default powers of ten (log) or round steps from zero (linear). */
  readonly ticks?: readonly number[] | undefined;
}

/**
 * A line chart the runner draws as an SVG file next to the document it writes (bench/lib/svg-chart.ts),
 * and links from the suite's section.
 */
export interface Chart {
  /** The SVG file's name, without a directory: `performance-scaling.svg`. */
  readonly file: string;
  readonly title: string;
  /** A line under the title: what was measured, where. */
  readonly subtitle: string;
  readonly x: ChartAxis;
  readonly y: ChartAxis;
  readonly series: readonly ChartSeries[];
}

/** What a suite measured. */
export interface SuiteBody {
  /** How the figures were taken: sizes, rounds, baselines, what is timed. */
  readonly method: string;
  readonly tables: readonly Table[];
  readonly checks: readonly Check[];
  /** Findings worth keeping beside the figures (causes of misses, caveats). */
  readonly notes: readonly string[];
  /** Drawn as SVG files beside the document. */
  readonly charts?: readonly Chart[] | undefined;
}

/** One suite's part of a run. */
export interface SuiteResult extends SuiteBody {
  readonly id: string;
  readonly title: string;
  /** Wall-clock time the suite took, in milliseconds (set by the runner). */
  readonly elapsedMs?: number;
  /** Set when the suite failed; its figures are then missing. */
  readonly error?: string;
  /** Set when the result was taken from an earlier run (`--base`): that run's command and date. */
  readonly earlier?: { readonly command: string; readonly date: string } | undefined;
}

/** What a suite receives. */
export interface SuiteContext {
  /** `--quick`: small sizes and few rounds, to check that the bench runs. */
  readonly quick: boolean;
  /** Reports progress (one short line; the runner shows it). */
  progress(text: string): void;
}

/** A benchmark suite: one target (or one group of targets) of the issue. */
export interface Suite {
  run(context: SuiteContext): Promise<SuiteBody>;
}

/** `met` when `ok`, else `missed`. */
export function status(ok: boolean): CheckStatus {
  return ok ? 'met' : 'missed';
}

/** What a suite's process says to main.ts, one line each on its stdout (harness/process.ts). */
export interface ChildMessages {
  PROGRESS: { readonly text: string };
  RESULT: SuiteBody;
  ERROR: { readonly error: string };
  /** What was still open in its process once the suite was done. */
  HANDLES: { readonly handles: readonly string[] };
}

/** The lines of a suite's process. */
export const childLines = new LineProtocol<ChildMessages>(['PROGRESS', 'RESULT', 'ERROR', 'HANDLES']);
