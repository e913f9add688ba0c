/**
 * The checks of the host's data a run ends with, as pure functions of what the host database holds at
 * the end (and of what the run saw parked): the demo and the chaos harness both end with them.
 */
import type { ParkedWorkflow } from 'graceful-drain';
import { type HostSnapshot, STATUS } from './host-db.js';

/** The result of one check. */
export interface Check {
  /** What is checked, in a few words. */
  readonly name: string;
  readonly ok: boolean;
  /** A one-line account: what was found. */
  readonly detail: string;
  /** What failed, one line each (empty when `ok`). At most `MAX_PROBLEMS`. */
  readonly problems: readonly string[];
}

/** How many problems a check lists at most. */
export const MAX_PROBLEMS = 10;

/** A check from the problems found: ok when there are none. */
export function check(name: string, problems: readonly string[], detail: string): Check {
  const shown =
    problems.length > MAX_PROBLEMS
      ? [...problems.slice(0, MAX_PROBLEMS), `... and ${problems.length - MAX_PROBLEMS} more`]
      : problems;
  return { name, ok: problems.length === 0, detail, problems: shown };
}

function userPaused(snapshot: HostSnapshot): Set<string> {
  return new Set(snapshot.userPauses.map((p) => p.workflowId));
}

/**
 * No step lost or run twice: for every workflow, the step log holds steps 0 .. step-1, each exactly
 * once, and a finished workflow has run all its steps.
 */
export function checkStepsExactlyOnce(snapshot: HostSnapshot): Check {
  const byWorkflow = new Map<string, number[]>();
  for (const row of snapshot.stepLog) {
    const steps = byWorkflow.get(row.workflowId) ?? [];
    steps.push(row.step);
    byWorkflow.set(row.workflowId, steps);
  }
  const problems: string[] = [];
  let finished = 0;
  let recorded = 0;
  const known = new Set<string>();
  for (const w of snapshot.workflows) {
    known.add(w.id);
    const logged = byWorkflow.get(w.id) ?? [];
    recorded += logged.length;
    const counts = new Map<number, number>();
    for (const step of logged) counts.set(step, (counts.get(step) ?? 0) + 1);
    for (const [step, count] of counts) {
      if (count > 1) problems.push(`${w.id}: step ${step + 1} recorded ${count} times`);
      if (step >= w.step)
        problems.push(`${w.id}: step ${step + 1} recorded but the workflow is at step ${w.step}`);
    }
    for (let step = 0; step < w.step; step++) {
      if (!counts.has(step)) problems.push(`${w.id}: step ${step + 1} lost (never recorded)`);
    }
    if (w.status === STATUS.succeeded) {
      finished++;
      if (w.step !== w.steps) problems.push(`${w.id}: succeeded after ${w.step} of ${w.steps} steps`);
    }
  }
  for (const id of byWorkflow.keys()) {
    if (!known.has(id)) problems.push(`${id}: steps recorded for an unknown workflow`);
  }
  return check(
    'no step lost or run twice',
    problems,
    `${recorded} steps recorded, each (workflow, step) exactly once; ${finished} workflows ran all their steps`,
  );
}

/** Every workflow not paused by a user finished, and no claim was left behind. */
export function checkAllFinished(snapshot: HostSnapshot): Check {
  const paused = userPaused(snapshot);
  const problems: string[] = [];
  let expected = 0;
  let succeeded = 0;
  for (const w of snapshot.workflows) {
    if (w.owner !== null) problems.push(`${w.id}: still claimed by ${w.owner}`);
    if (paused.has(w.id)) continue;
    expected++;
    if (w.status === STATUS.succeeded) succeeded++;
    else problems.push(`${w.id}: ${w.status} at step ${w.step} of ${w.steps}, not succeeded`);
  }
  return check(
    'every workflow not paused by a user finished',
    problems,
    `${succeeded}/${expected} succeeded, no claim left`,
  );
}

/**
 * The workflows a user paused are untouched: still paused; no step started after the pause (only the
 * one in flight then may have been recorded since); no status change after it but the completion of the
 * pause (`pausing` -> `paused`), so never parked, never resumed; and never seen with a park mark.
 */
export function checkUserPausedUntouched(
  snapshot: HostSnapshot,
  markedEver: ReadonlySet<string>,
  parkedLeft: readonly ParkedWorkflow[] = [],
): Check {
  const problems: string[] = [];
  const rows = new Map(snapshot.workflows.map((w) => [w.id, w]));
  const marked = new Set([...markedEver, ...parkedLeft.map((p) => p.id)]);
  let inFlight = 0;
  for (const pause of snapshot.userPauses) {
    const id = pause.workflowId;
    const w = rows.get(id);
    if (w === undefined) {
      problems.push(`${id}: missing from the workflows table`);
      continue;
    }
    if (w.status !== STATUS.paused) problems.push(`${id}: ${w.status}, not paused`);
    const steps = snapshot.stepLog.filter((s) => s.workflowId === id);
    // Steps are recorded in order, so those of other claims came before the pause.
    const before = steps.filter((s) => pause.claim === null || s.claim !== pause.claim).length;
    const finishing = steps.length - before;
    if (finishing > 0) inFlight++;
    if (before !== pause.step)
      problems.push(`${id}: ${before} steps recorded, ${pause.step} before the pause`);
    if (w.step !== pause.step + finishing) {
      problems.push(
        `${id}: at step ${w.step}, paused at step ${pause.step}${finishing > 0 ? ' (+1 in flight)' : ''}`,
      );
    }
    for (const change of snapshot.statusLog) {
      if (change.workflowId !== id || change.seq <= pause.statusSeq) continue;
      const completesPause =
        pause.claim !== null && change.from === STATUS.pausing && change.to === STATUS.paused;
      if (!completesPause) problems.push(`${id}: ${change.from} -> ${change.to} after the user paused it`);
    }
    if (marked.has(id)) problems.push(`${id}: was marked parked-by-shutdown`);
  }
  const n = snapshot.userPauses.length;
  return check(
    'workflows paused by a user untouched',
    problems,
    n === 0
      ? 'none was paused by a user'
      : `${n}/${n} still paused${inFlight > 0 ? ` (${inFlight} after finishing the step in flight)` : ''}; no step started, no status change, no park mark since`,
  );
}

/** Every workflow parked at shutdown was resumed: no park mark is left. */
export function checkNoMarksLeft(parkedLeft: readonly ParkedWorkflow[], parkedEver: number): Check {
  return check(
    'every parked workflow was resumed',
    parkedLeft.map((p) => `${p.id}: still marked (${p.state}), parked by ${p.memberId}`),
    `${parkedEver} parked during the run, none left marked`,
  );
}

/** The checks of the host's data, in the order the summary shows them. */
export function hostChecks(
  snapshot: HostSnapshot,
  seen: { readonly markedEver: ReadonlySet<string>; readonly parkedLeft: readonly ParkedWorkflow[] },
): Check[] {
  return [
    checkStepsExactlyOnce(snapshot),
    checkAllFinished(snapshot),
    checkUserPausedUntouched(snapshot, seen.markedEver, seen.parkedLeft),
    checkNoMarksLeft(seen.parkedLeft, seen.markedEver.size),
  ];
}
