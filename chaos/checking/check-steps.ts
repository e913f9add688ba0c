/**
 * Checks of the work itself: what the host's tables hold at the end, and every step attempt of the
 * history.
 *
 * What "no step lost or run twice" means under crashes: a step is *committed* when the engine records
 * it in the step log, in the transaction that also advances the workflow and checks that the claim is
 * still its own. Every (workflow, step) must be committed exactly once. An *attempt* that does not
 * commit is not a step run: a member killed mid-step (SIGKILL cannot park or release), a step abandoned
 * at the drain deadline, or a commit refused because the claim lapsed (its member frozen or cut off for
 * longer than the claim's TTL) leaves the step to be run again. Every attempt must end in a commit, a
 * release or a refused commit, or be cut off by a crash; one left open by a graceful exit is a lost step.
 */
import type { ParkedWorkflow } from 'graceful-drain';
import {
  type Check,
  checkAllFinished,
  checkNoMarksLeft,
  checkStepsExactlyOnce,
  checkUserPausedUntouched,
} from '../../harness/host-checks.js';
import type { HostSnapshot } from '../../harness/host-db.js';
import { check, type CheckResult, type Violation } from './check-result.js';
import { disturbedDuring, type Model, type UserAction, type WriteModel } from './model.js';

const PARKED = new Set(['paused', 'pausing']);

function fromDemo(c: Check, invariant: string, at: number): CheckResult {
  return check(
    c.name,
    invariant,
    c.problems.map((message) => ({ message, at, members: [] })),
    c.detail,
  );
}

/** The host's tables at the end: exactly once, all finished, user pauses untouched, no mark left. */
export function checkFinalState(
  model: Model,
  snapshot: HostSnapshot,
  parkedLeft: readonly ParkedWorkflow[],
): CheckResult[] {
  const end = model.history.at(-1)?.t ?? 0;
  // Marked after the user's pause that is still in force: a park that took effect on it later (none
  // can: it is not running).
  const pausedAt = new Map<string, number>();
  for (const [id, last] of lastUserActions(model)) if (last.action === 'pause') pausedAt.set(id, last.t);
  const markedAfterPause = new Set<string>();
  for (const w of model.writes) {
    if (w.kind !== 'park' || w.outcomes === undefined) continue;
    for (const [outcome, ids] of Object.entries(w.outcomes)) {
      if (!PARKED.has(outcome)) continue;
      for (const id of ids) if ((pausedAt.get(id) ?? Infinity) < w.start) markedAfterPause.add(id);
    }
  }
  const parkedEver = new Set<string>();
  for (const w of model.writes) {
    if (w.kind !== 'park' || w.outcomes === undefined) continue;
    for (const [outcome, ids] of Object.entries(w.outcomes))
      if (PARKED.has(outcome)) ids.forEach((id) => parkedEver.add(id));
  }
  return [
    fromDemo(checkStepsExactlyOnce(snapshot), 'steps', end),
    fromDemo(checkAllFinished(snapshot), 'steps, 6', end),
    fromDemo(checkUserPausedUntouched(snapshot, markedAfterPause, parkedLeft), '4', end),
    fromDemo(checkNoMarksLeft(parkedLeft, parkedEver.size), '6', end),
  ];
}

/** Each workflow's last pause or resume by the user. */
function lastUserActions(model: Model): Map<string, UserAction> {
  const last = new Map<string, UserAction>();
  for (const a of model.userActions) last.set(a.id, a);
  return last;
}

/**
 * Nothing is left parked without a mark that a later start resumes (invariants 4 and 6). At the end of
 * the run, once the calm phase's fresh members have started (and resumed) and stopped: every workflow
 * left paused or pausing was paused by a user, whose pause is still in force (its last user action),
 * and carries no mark (a later start would resume it); no other is left paused, marked or not (no mark:
 * no start will ever resume it; a mark: the final start's resume missed it); and no mark is left on a
 * workflow that is no longer paused.
 */
export function checkNothingStranded(
  model: Model,
  snapshot: HostSnapshot,
  parkedLeft: readonly ParkedWorkflow[],
): CheckResult {
  const end = model.history.at(-1)?.t ?? 0;
  const violations: Violation[] = [];
  const users = lastUserActions(model);
  const marks = new Map(parkedLeft.map((p) => [p.id, p]));
  const lastPark = new Map<string, WriteModel>();
  for (const w of [...model.writes].sort((a, b) => a.start - b.start)) {
    if (w.kind !== 'park') continue;
    const parked =
      w.outcomes === undefined
        ? w.ids
        : Object.entries(w.outcomes).flatMap(([o, ids]) => (PARKED.has(o) ? ids : []));
    for (const id of parked) lastPark.set(id, w);
  }
  const at = (t: number): string => `${((t - model.origin) / 1000).toFixed(3)}s`;
  const byPark = (id: string): string => {
    const w = lastPark.get(id);
    if (w === undefined) return 'no park of it recorded';
    return `last parked by ${w.member} (token ${w.token}) at ${at(w.start)}${w.outcomes === undefined ? `, a park that failed (${w.error?.message ?? 'cut short'})` : ''}`;
  };
  let userPaused = 0;
  const rows = new Map(snapshot.workflows.map((w) => [w.id, w]));
  for (const w of snapshot.workflows) {
    if (!PARKED.has(w.status)) continue;
    const user = users.get(w.id);
    const mark = marks.get(w.id);
    const members = mark === undefined ? [] : [mark.memberId];
    if (user?.action === 'pause') {
      userPaused++;
      if (mark !== undefined) {
        violations.push({
          message: `${w.id}: paused by a user at ${at(user.t)}${user.how === 'parked' ? ' (while parked: notePaused)' : ''}, yet still marked (parked by ${mark.memberId}, token ${mark.token}): a later start would resume it`,
          at: end,
          members,
        });
      }
      continue;
    }
    const resumed = user === undefined ? '' : `; a user resumed it at ${at(user.t)}`;
    violations.push({
      message:
        mark === undefined
          ? `${w.id}: left ${w.status} with no park mark and no user's pause (${byPark(w.id)}${resumed}): no start will ever resume it`
          : `${w.id}: still marked (${w.status}, parked by ${mark.memberId}, token ${mark.token}) after the final start's resume (${byPark(w.id)}${resumed})`,
      at: end,
      members,
    });
  }
  for (const mark of parkedLeft) {
    const status = rows.get(mark.id)?.status ?? 'deleted';
    if (PARKED.has(status)) continue;
    violations.push({
      message: `${mark.id}: a park mark (by ${mark.memberId}, token ${mark.token}) left on a workflow now ${status}: the trigger should have dropped it`,
      at: end,
      members: [mark.memberId],
    });
  }
  return check(
    'nothing left parked without a mark that a later start resumes',
    '4, 6',
    violations,
    `after the final start: ${userPaused} workflows left paused, each by a user's pause still in force and unmarked; no other paused, no mark left`,
  );
}

/** Every step attempt ends in a commit, a release or a refused commit, or is cut off by a crash. */
export function checkAttempts(model: Model): CheckResult {
  const violations: Violation[] = [];
  const notes: string[] = [];
  const counts = { committed: 0, released: 0, refused: 0, crashed: 0 };
  const tries = new Map<string, number>();
  for (const a of model.attempts.values()) {
    const key = `${a.workflow}#${a.step}`;
    tries.set(key, (tries.get(key) ?? 0) + 1);
    const m = model.members.get(a.member);
    if (a.end === undefined) {
      const crashed = m?.killedAt !== undefined && m.killedAt <= m.exitAt;
      if (crashed) {
        counts.crashed++;
        continue;
      }
      const why =
        m === undefined ? undefined : disturbedDuring(model, m, { from: a.startedAt, to: m.exitAt }, 0);
      const message = `${a.workflow} step ${a.step + 1} (claim ${a.claim}) was left unfinished when ${a.member} exited (code ${m?.exitCode ?? '?'})`;
      if (m?.exitCode === 3 && why !== undefined)
        notes.push(`${message}, its database out of reach (${why})`);
      else violations.push({ message, at: m?.exitAt ?? a.startedAt, members: [a.member] });
      continue;
    }
    if (a.end.how === 'lost') {
      counts.refused++;
      const why =
        m === undefined ? undefined : disturbedDuring(model, m, { from: a.startedAt, to: a.end.at }, 0);
      if (why === undefined) {
        notes.push(
          `${a.workflow} step ${a.step + 1}: the claim of ${a.member} lapsed with no fault on it (a slow machine?)`,
        );
      }
    } else if (a.end.how.startsWith('released')) counts.released++;
    else counts.committed++;
  }
  const reruns = [...tries.values()].filter((n) => n > 1).length;
  return check(
    'every step attempt commits, is released, or is cut off by a crash',
    'steps',
    violations,
    `${model.attempts.size} attempts: ${counts.committed} committed, ${counts.released} released, ` +
      `${counts.refused} refused (claim lapsed), ${counts.crashed} cut off by a crash; ${reruns} steps tried more than once`,
    notes,
  );
}
