/** How a run ends: its exit code, from the suites' results and `--strict`. */
import type { SuiteResult } from './result.js';

/** What a run came to. */
export interface Verdict {
  /** Suites that failed (an error, a timeout, a crash): their figures are missing. */
  readonly failed: number;
  /** Targets missed, over every suite that ran. */
  readonly missed: number;
  /** 1 when a suite failed, or with `strict` when a target was missed; else 0. */
  readonly exitCode: 0 | 1;
}

/** The verdict of a run: a failed suite always fails it; a missed target only with `strict`. */
export function verdict(results: readonly SuiteResult[], strict: boolean): Verdict {
  const failed = results.filter((r) => r.error !== undefined).length;
  const missed = results.flatMap((r) => r.checks).filter((c) => c.status === 'missed').length;
  return { failed, missed, exitCode: failed > 0 || (strict && missed > 0) ? 1 : 0 };
}
