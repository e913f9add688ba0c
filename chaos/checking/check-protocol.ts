/**
 * Checks of the last-member protocol, from the history:
 *
 * - invariant 2: when the whole cluster stops gracefully, someone takes the park step and nothing is
 *   left running;
 * - invariant 3: no member parks while a peer that was certainly alive (joined, not leaving, not
 *   crashed, frozen, stalled or cut off) and running (its start finished) was in the group the whole
 *   time;
 * - invariants 4 and 5: per workflow, effective parks and resumes alternate, starting with a park (a
 *   user's resume, or pause of a parked workflow, ends a park too);
 * - invariant 4: no workflow whose last user action is a pause is resumed by the library afterwards;
 * - invariant 6: a resume round that reports nothing left to do comes after the resume of every
 *   workflow parked before it (never parked-and-forgotten);
 * - invariants 9 and 13: every shutdown ends within its budget (whatever the adapters and the listeners
 *   do), closes in time, and lets the process end.
 */
import { check, type CheckResult, type Violation } from './check-result.js';
import {
  disturbedDuring,
  type Interval,
  type MemberModel,
  type Model,
  overlaps,
  type UserAction,
  type WriteModel,
} from './model.js';

const PARKED = new Set(['paused', 'pausing']);

/** Hand-offs that say the coordinator or the budget failed the member: no park was owed then. */
const EXCUSED = new Set(['unreachable-skipped', 'lock-timeout', 'aborted', 'lease-lost']);

/** Invariant 2: a graceful stop of every member leaves nothing running, someone parks. */
export function checkClusterStops(model: Model): CheckResult {
  const violations: Violation[] = [];
  const notes: string[] = [];
  for (const stop of model.clusterStops) {
    if (stop.members.length === 0) continue;
    const reports = stop.members.map((id) => ({ id, report: model.members.get(id)?.reports.at(-1) }));
    const killed = stop.members.filter((id) => {
      const m = model.members.get(id);
      return m?.killedAt !== undefined && m.killedAt <= m.exitAt;
    });
    const excused = reports.filter(
      (r) => r.report === undefined || EXCUSED.has(r.report.handOff) || r.report.outcome === 'forced',
    );
    const why =
      killed.length > 0
        ? `${killed.join(', ')} had to be killed`
        : excused.length > 0
          ? excused
              .map((r) => `${r.id}: ${r.report?.handOff ?? 'no report'} (${r.report?.outcome ?? '-'})`)
              .join(', ')
          : undefined;
    const parkers = reports.filter((r) => r.report?.handOff === 'parked');
    const problems: string[] = [];
    if (parkers.length === 0) problems.push(`none of ${stop.members.join(', ')} took the park step`);
    if (stop.running.length > 0) {
      problems.push(`${stop.running.length} workflows left running (${stop.running.slice(0, 5).join(', ')})`);
    }
    for (const problem of problems) {
      if (why !== undefined) notes.push(`cluster stop: ${problem}, as ${why}`);
      else
        violations.push({
          message: `every member stopped gracefully, yet ${problem}`,
          at: stop.t,
          members: stop.members,
        });
    }
  }
  return check(
    'a graceful stop of the whole cluster parks what runs',
    '2',
    violations,
    `${model.clusterStops.length} whole-cluster stops, each parked by a member, nothing left running`,
    notes,
  );
}

/** Whether `p` was certainly in the group, and able to say so, throughout `span`. */
export function certainlyAlive(model: Model, p: MemberModel, span: { from: number; to: number }): boolean {
  const spanOk = p.memberships.some((s) => s.joinedAt < span.from && s.endAt > span.to);
  if (!spanOk) return false;
  if (p.killedAt !== undefined && p.killedAt <= span.to) return false;
  return disturbedDuring(model, p, span, model.timings.memberTtlMs) === undefined;
}

/**
 * `p` had finished its start (its start gate, then intake open: `ready`) by `at`. A peer still in its
 * start gate drives nothing yet, and its own gate runs after the parker's under the start-stop lock: a
 * start gate that finishes a park cut short while such a peer waits parks nothing that peer runs.
 */
const startedBy = (p: MemberModel, at: number): boolean =>
  p.events.some((e) => e.type === 'ready' && e.t <= at);

/** Invariant 3: no park while a live peer remains. */
export function checkNoParkOverPeers(model: Model): CheckResult {
  const violations: Violation[] = [];
  let parks = 0;
  for (const m of model.members.values()) {
    let listedAt: number | undefined;
    let checked = false;
    for (const e of m.events) {
      if (e.type === 'members-start') listedAt = e.t;
      if (e.type === 'acquire-start') checked = false;
      if (e.type !== 'park-start' || checked || listedAt === undefined) continue;
      checked = true;
      parks++;
      const span = { from: listedAt, to: e.t };
      for (const p of model.members.values()) {
        if (p.id === m.id || !certainlyAlive(model, p, span) || !startedBy(p, e.t)) continue;
        violations.push({
          message: `${m.id} parked though ${p.id} was alive in the group all along (listed at ${fmt(model, listedAt)}, parked at ${fmt(model, e.t)})`,
          at: e.t,
          members: [m.id, p.id],
        });
      }
    }
  }
  return check(
    'no member parks while a live peer remains',
    '3',
    violations,
    `${parks} park steps, none while a peer was certainly alive`,
  );
}

/** What happened to a workflow: a park or resume of the library (or one that may have landed), or a user's action. */
type Effect =
  | { readonly kind: 'park' | 'resume' | 'maybe'; readonly t: number; readonly write: WriteModel }
  | { readonly kind: 'user'; readonly t: number; readonly user: UserAction };

/** Slack between the harness's and the members' clocks, and their recording, in ms. */
const EPSILON = 5;

/**
 * Per workflow, the parks and resumes that took effect (or may have), in the order they began, and the
 * user's pauses and resumes, when the harness recorded them (just after they took effect).
 */
export function effects(model: Model): Map<string, Effect[]> {
  const byId = new Map<string, Effect[]>();
  const add = (id: string, effect: Effect): void => {
    const list = byId.get(id) ?? [];
    list.push(effect);
    byId.set(id, list);
  };
  for (const w of model.writes) {
    if (w.outcomes !== undefined) {
      for (const [outcome, ids] of Object.entries(w.outcomes)) {
        const kind =
          w.kind === 'park' && PARKED.has(outcome)
            ? 'park'
            : w.kind === 'unpark' && outcome === 'resumed'
              ? 'resume'
              : undefined;
        if (kind !== undefined) for (const id of ids) add(id, { kind, t: w.start, write: w });
      }
    } else if (w.error?.code !== 'ERR_STALE_TOKEN') {
      // Failed without an answer, or cut short by a crash: it may have taken effect.
      for (const id of w.ids) add(id, { kind: 'maybe', t: w.start, write: w });
    }
  }
  for (const user of model.userActions) add(user.id, { kind: 'user', t: user.t, user });
  for (const list of byId.values()) list.sort((a, b) => a.t - b.t);
  return byId;
}

/** Whether a user's action at `t` may have come before or after one of these writes. */
function racedAWrite(list: readonly Effect[], t: number): boolean {
  return list.some(
    (e) => e.kind !== 'user' && e.write.start - EPSILON <= t && t <= (e.write.end ?? Infinity) + EPSILON,
  );
}

/**
 * Invariants 4 and 5: only parked workflows are resumed; one effective park, one effective resume. A
 * user's resume ends a park (the status left `paused`: the mark is dropped), and so does a user's pause
 * of a parked workflow (`notePaused`); one that raced a write of the library may have come before it or
 * after it, and both are allowed for.
 */
export function checkParkResumeAlternate(model: Model): CheckResult {
  const violations: Violation[] = [];
  let parks = 0;
  let resumes = 0;
  for (const [id, list] of effects(model)) {
    let parked: Effect | undefined;
    let maybe = false;
    for (const effect of list) {
      if (effect.kind === 'user') {
        if (effect.user.action === 'resume' || effect.user.how === 'parked') {
          parked = undefined;
          maybe = racedAWrite(list, effect.t);
        }
        continue;
      }
      const w = effect.write;
      if (effect.kind === 'maybe') {
        maybe = true;
        continue;
      }
      if (effect.kind === 'park') {
        parks++;
        if (parked !== undefined && parked.kind !== 'user' && !maybe) {
          violations.push({
            message: `${id} parked twice: by ${parked.write.member} (token ${parked.write.token}) and by ${w.member} (token ${w.token}) with no resume between`,
            at: w.start,
            members: [parked.write.member, w.member],
          });
        }
        parked = effect;
      } else {
        resumes++;
        if (parked === undefined && !maybe) {
          violations.push({
            message: `${id} resumed by ${w.member} (token ${w.token}) though it was not parked`,
            at: w.start,
            members: [w.member],
          });
        }
        parked = undefined;
      }
      maybe = false;
    }
  }
  return check(
    'only parked workflows are resumed, once per park',
    '4, 5',
    violations,
    `${parks} effective parks, ${resumes} effective resumes, alternating per workflow`,
  );
}

/**
 * Invariant 4: a user's pause is never undone. No workflow whose last user action, before a resume of
 * the library was sent, is a pause (of a running workflow, again after the user's own resume, or of a
 * parked one through `notePaused`) is resumed by that write. The harness records a pause once it took
 * effect, so a write sent later cannot have come first.
 */
export function checkUserPausesHeld(model: Model): CheckResult {
  const violations: Violation[] = [];
  const byId = new Map<string, UserAction[]>();
  for (const a of model.userActions) byId.set(a.id, [...(byId.get(a.id) ?? []), a]);
  const counts = { running: 0, 're-pause': 0, parked: 0, resume: 0 };
  for (const a of model.userActions) counts[a.action === 'resume' ? 'resume' : (a.how ?? 'running')]++;
  for (const w of model.writes) {
    if (w.kind !== 'unpark' || w.outcomes === undefined) continue;
    for (const id of w.outcomes.resumed ?? []) {
      const last = (byId.get(id) ?? []).filter((a) => a.t < w.start).at(-1);
      if (last?.action !== 'pause') continue;
      const how =
        last.how === 'parked'
          ? 'paused by a user while parked (notePaused)'
          : last.how === 're-pause'
            ? 'resumed and paused again by a user'
            : 'paused by a user';
      violations.push({
        message: `${id} was ${how} at ${fmt(model, last.t)}, then resumed by ${w.member} (token ${w.token}) at ${fmt(model, w.start)}`,
        at: w.start,
        members: [w.member],
      });
    }
  }
  return check(
    "a user's pause is never undone",
    '4',
    violations,
    `${counts.running + counts['re-pause'] + counts.parked} user pauses (${counts.running} of running workflows, ` +
      `${counts['re-pause']} again after the user's resume, ${counts.parked} of parked ones) and ${counts.resume} user resumes; ` +
      'no paused one resumed by the library',
  );
}

/** Invariant 6: never parked-and-forgotten. */
export function checkNeverForgotten(model: Model): CheckResult {
  const violations: Violation[] = [];
  // A complete round, and when it began to list the parked workflows: it answers for the parks that
  // had landed by then (one that listed earlier, under a lease that lapsed, knows nothing of later ones).
  const rounds: { member: string; t: number; listedAt: number }[] = [];
  for (const m of model.members.values()) {
    let listedAt = -Infinity;
    let first = true;
    for (const e of m.events) {
      if (e.type === 'list-parked-start' && first) listedAt = e.t;
      if (e.type === 'list-parked-start') first = false;
      if (e.type === 'resume-round') {
        if (e.complete) rounds.push({ member: m.id, t: e.t, listedAt });
        first = true;
      }
    }
  }
  rounds.sort((a, b) => a.t - b.t);
  // When each workflow finished: a parked workflow still pausing whose last step commits finishes, its
  // status leaves pausing (the mark trigger drops its mark), and no resume is owed.
  const finishedAt = new Map<string, number[]>();
  for (const a of model.attempts.values()) {
    if (a.end?.how === 'finished')
      finishedAt.set(a.workflow, [...(finishedAt.get(a.workflow) ?? []), a.end.at]);
  }
  for (const [id, list] of effects(model)) {
    list.forEach((effect, i) => {
      if (effect.kind !== 'park' || effect.write.end === undefined) return;
      const parkedAt = effect.write.end;
      const round = rounds.find((r) => r.listedAt > parkedAt);
      if (round === undefined) return;
      // Resumed, parked again, finished, or a user resumed it or paused it (its mark dropped) meanwhile.
      const handled = list.slice(i + 1).some((later) => later.t <= round.t);
      const touched = model.writes.some(
        (w) =>
          w.kind === 'unpark' && w.start > effect.write.start && w.start <= round.t && w.ids.includes(id),
      );
      const finished = (finishedAt.get(id) ?? []).some((t) => t > effect.write.start && t <= round.t);
      if (!handled && !touched && !finished) {
        violations.push({
          message: `${id} was parked by ${effect.write.member} (token ${effect.write.token}), then ${round.member} finished a resume round without unparking it`,
          at: round.t,
          members: [effect.write.member, round.member],
        });
      }
    });
  }
  return check(
    'never parked and forgotten: a complete resume round unparks every earlier park',
    '6',
    violations,
    `${rounds.length} complete resume rounds, each after the resume of every earlier park`,
  );
}

/** Invariant 9: bounded shutdowns, bounded closes, nothing holds the process. */
export function checkBoundedShutdowns(model: Model): CheckResult {
  const violations: Violation[] = [];
  const notes: string[] = [];
  let shutdowns = 0;
  const budget = model.timings.shutdownTimeoutMs;
  for (const m of model.members.values()) {
    // Asked to stop, and ended by the harness with no report: the shutdown never finished.
    const term = m.termAt;
    if (term !== undefined && m.killedAt !== undefined && m.killedAt > term + budget + 1000) {
      const reported = m.reports.some((r) => r.t < (m.killedAt as number));
      const why = disturbedDuring(model, m, { from: term, to: m.killedAt }, 0);
      if (!reported && why === undefined) {
        violations.push({
          message: `${m.id} had not finished its shutdown ${Math.round(m.killedAt - term)} ms after SIGTERM (budget ${budget} ms)`,
          at: m.killedAt,
          members: [m.id],
        });
      }
    }
    for (const r of m.reports) {
      shutdowns++;
      if (r.durationMs > r.budgetMs + 300 + paused(m, { from: r.t - r.durationMs, to: r.t })) {
        violations.push({
          message: `${m.id}'s shutdown took ${Math.round(r.durationMs)} ms, over its budget of ${r.budgetMs} ms`,
          at: r.t,
          members: [m.id],
        });
      }
    }
    for (const e of m.events) {
      if (e.type === 'lingering') {
        violations.push({
          message: `${m.id} did not end by itself after closing everything (held by ${e.handles.join(', ') || 'nothing listed'})`,
          at: e.t,
          members: [m.id],
        });
      }
      const closing = e.type === 'closed' ? { from: e.t - e.totalMs, to: e.t } : undefined;
      if (
        e.type === 'closed' &&
        closing !== undefined &&
        e.coordinatorCloseMs > 2500 + paused(m, closing) &&
        disturbedDuring(model, m, closing, 0) === undefined
      ) {
        violations.push({
          message: `${m.id}'s coordinator took ${Math.round(e.coordinatorCloseMs)} ms to close`,
          at: e.t,
          members: [m.id],
        });
      }
      if (e.type === 'close-timeout') {
        const why = disturbedDuring(model, m, { from: m.termAt ?? e.t - e.afterMs, to: e.t }, 0);
        const message = `${m.id} could not close its engine, coordinator and database within ${e.afterMs} ms`;
        if (why !== undefined) notes.push(`${message} (${why}: the host's own database was out of reach)`);
        else violations.push({ message, at: e.t, members: [m.id] });
      }
    }
  }
  return check(
    'every shutdown ends within its budget and lets the process end',
    '9, 13',
    violations,
    `${shutdowns} shutdowns, each within its budget; every process ended by itself`,
    notes,
  );
}

/** How long `m` was frozen or stalled within `span`: time its own clock ran without it. */
function paused(m: MemberModel, span: Interval): number {
  let total = 0;
  for (const p of [...m.frozen, ...m.stalls]) {
    if (overlaps(p, span)) total += Math.min(p.to, span.to) - Math.max(p.from, span.from);
  }
  return total;
}

function fmt(model: Model, t: number): string {
  return `${((t - model.origin) / 1000).toFixed(3)}s`;
}
