/**
 * `--base`: completes a run of some suites (`--only`) with the other suites of an earlier run's
 * `--json`, so that the document can be rewritten when a full run does not fit; each suite taken from
 * the earlier run says so in the document.
 */
import { readFileSync } from 'node:fs';
import type { Run } from './render.js';
import type { SuiteResult } from './result.js';

/** Reads an earlier run written by `--json`; throws an `Error` saying what is wrong with the file. */
export function readRun(path: string): Run {
  let run: unknown;
  try {
    run = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(
      `cannot read ${path} as JSON: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  const r = run as Partial<Run> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    !Array.isArray(r.suites) ||
    typeof r.command !== 'string' ||
    typeof r.machine?.date !== 'string'
  ) {
    throw new Error(`${path} is not the results of a run (write them with --json)`);
  }
  return r as Run;
}

/**
 * The suites of `order` (ids): this run's result where it has one, else the earlier run's, marked as
 * coming from it; a suite in neither is left out.
 */
export function mergeRuns(
  now: readonly SuiteResult[],
  earlier: Run,
  order: readonly string[],
): SuiteResult[] {
  const from = { command: earlier.command, date: earlier.machine.date };
  return order.flatMap((id) => {
    const current = now.find((s) => s.id === id);
    if (current !== undefined) return [current];
    const old = earlier.suites.find((s) => s.id === id);
    return old === undefined ? [] : [{ ...old, earlier: old.earlier ?? from }];
  });
}
