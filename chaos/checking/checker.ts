/**
 * The checker: reads the merged history and the host's final tables, runs every check, and renders
 * each violation with the seed and the stretch of history around it (the members involved and the
 * harness, from a little before to a little after).
 */
import type { ParkedWorkflow } from 'graceful-drain';
import type { BackendName } from '../../harness/backend.js';
import type { HostSnapshot } from '../../harness/host-db.js';
import { checkOwnCallers } from './check-callers.js';
import { checkLandings } from './check-landings.js';
import { checkCrashBounds, checkFencing, checkLeaseExclusion, checkTokens } from './check-locks.js';
import {
  checkBoundedShutdowns,
  checkClusterStops,
  checkNeverForgotten,
  checkNoParkOverPeers,
  checkParkResumeAlternate,
  checkUserPausesHeld,
} from './check-protocol.js';
import {
  checkCrashRecovered,
  checkPeerCrashRecovered,
  checkRecoveredOnce,
  checkRecoveryScope,
} from './check-recovery.js';
import { check, type CheckResult, type Violation } from './check-result.js';
import { checkAttempts, checkFinalState, checkNothingStranded } from './check-steps.js';
import type { Timings } from '../faults.js';
import { describeEntry, type HistoryEntry } from '../history.js';
import { buildModel, type Model } from './model.js';

export type { CheckResult, Violation } from './check-result.js';

/** What the checker reads. */
export interface CheckInput {
  readonly history: readonly HistoryEntry[];
  readonly snapshot: HostSnapshot;
  readonly parkedLeft: readonly ParkedWorkflow[];
  readonly timings: Timings;
  readonly backend: BackendName;
  readonly seed: number;
  /** What went wrong in the run itself (the calm phase did not finish, ...). */
  readonly problems: readonly string[];
}

/** How much history is shown around a violation. */
const BEFORE_MS = 2000;
const AFTER_MS = 500;
const MAX_LINES = 40;
/** How many violations of one check are shown with their history. */
const SHOWN = 3;

/** Runs every check. */
export function runChecks(input: CheckInput): { checks: CheckResult[]; report: string } {
  const model = buildModel(input.history, input.timings);
  const end = input.history.at(-1)?.t ?? 0;
  const checks: CheckResult[] = [
    check(
      'the run went through (calm phase finished)',
      'run',
      input.problems.map((message) => ({ message, at: end, members: [] })),
      'every phase ended in time',
    ),
    checkFencing(model),
    checkLandings(model, input.snapshot),
    checkTokens(model),
    checkClusterStops(model),
    checkNoParkOverPeers(model),
    checkParkResumeAlternate(model),
    checkUserPausesHeld(model),
    checkNeverForgotten(model),
    checkCrashRecovered(model),
    checkPeerCrashRecovered(model),
    checkRecoveredOnce(model),
    checkRecoveryScope(model),
    checkCrashBounds(model, input.backend),
    checkLeaseExclusion(model, input.backend),
    checkBoundedShutdowns(model),
    checkOwnCallers(model),
    checkAttempts(model),
    ...checkFinalState(model, input.snapshot, input.parkedLeft),
    checkNothingStranded(model, input.snapshot, input.parkedLeft),
  ];
  return { checks, report: render(model, checks, input.seed, input.backend) };
}

function render(model: Model, checks: readonly CheckResult[], seed: number, backend: BackendName): string {
  const lines: string[] = [];
  for (const c of checks) {
    if (c.ok) continue;
    lines.push(`✘ ${c.name} (invariant ${c.invariant}), seed ${seed}, backend ${backend}:`);
    for (const v of c.violations.slice(0, SHOWN)) {
      lines.push(`  - ${v.message}`, ...stretch(model, v).map((l) => `      ${l}`));
    }
    if (c.violations.length > SHOWN) {
      lines.push(
        `  ... and ${c.violations.length - SHOWN} more:`,
        ...c.violations.slice(SHOWN, 20).map((v) => `  - ${v.message}`),
      );
    }
  }
  return lines.join('\n');
}

/** The history around a violation: the members involved and the harness. */
function stretch(model: Model, v: Violation): string[] {
  const who = new Set([...v.members, 'harness']);
  const near = model.history.filter(
    (e) =>
      e.t >= v.at - BEFORE_MS &&
      e.t <= v.at + AFTER_MS &&
      (v.members.length === 0 || who.has(e.m)) &&
      e.type !== 'claim' &&
      e.type !== 'step-start' &&
      e.type !== 'commit',
  );
  const shown = near.length > MAX_LINES ? near.slice(-MAX_LINES) : near;
  return shown.map((e) => describeEntry(e, model.origin));
}
