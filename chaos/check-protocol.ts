/**
 * Checks of the last-member protocol, from the history:
 *
 * - invariant 2: when the whole cluster stops gracefully, someone takes the park step and nothing is
 *   left running;
 * - invariant 3: no member parks while a peer that was certainly alive (joined, not leaving, not
 *   crashed, frozen, stalled or cut off) was in the group the whole time;
 * - invariants 4 and 5: per workflow, effective parks and resumes alternate, starting with a park;
 * - invariant 6: a resume round that reports nothing left to do comes after the resume of every
 *   workflow parked before it (never parked-and-forgotten);
 * - invariant 9: every shutdown ends within its budget, closes in time, and lets the process end.
 */
import { check, type CheckResult, type Violation } from './check-result.js';
import type { EntryOf } from './history.js';
import {
  disturbedDuring,
  type Interval,
  type MemberModel,
  type Model,
  overlaps,
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
function certainlyAlive(model: Model, p: MemberModel, span: { from: number; to: number }): boolean {
  const spanOk = p.memberships.some((s) => s.joinedAt < span.from && s.endAt > span.to);
  if (!spanOk) return false;
  if (p.killedAt !== undefined && p.killedAt <= span.to) return false;
  return disturbedDuring(model, p, span, model.timings.memberTtlMs) === undefined;
}

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
        if (p.id === m.id || !certainlyAlive(model, p, span)) continue;
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

type Effect = { readonly kind: 'park' | 'resume' | 'maybe'; readonly write: WriteModel };

/** Per workflow, the parks and resumes that took effect (or may have), in the order they began. */
function effects(model: Model): Map<string, Effect[]> {
  const byId = new Map<string, Effect[]>();
  const add = (id: string, effect: Effect): void => {
    const list = byId.get(id) ?? [];
    list.push(effect);
    byId.set(id, list);
  };
  for (const w of [...model.writes].sort((a, b) => a.start - b.start)) {
    if (w.outcomes !== undefined) {
      for (const [outcome, ids] of Object.entries(w.outcomes)) {
        const kind =
          w.kind === 'park' && PARKED.has(outcome)
            ? 'park'
            : w.kind === 'unpark' && outcome === 'resumed'
              ? 'resume'
              : undefined;
        if (kind !== undefined) for (const id of ids) add(id, { kind, write: w });
      }
    } else if (w.error?.code !== 'ERR_STALE_TOKEN') {
      // Failed without an answer, or cut short by a crash: it may have taken effect.
      for (const id of w.ids) add(id, { kind: 'maybe', write: w });
    }
  }
  return byId;
}

/** Invariants 4 and 5: only parked workflows are resumed; one effective park, one effective resume. */
export function checkParkResumeAlternate(model: Model): CheckResult {
  const violations: Violation[] = [];
  let parks = 0;
  let resumes = 0;
  for (const [id, list] of effects(model)) {
    let parked: Effect | undefined;
    let maybe = false;
    for (const effect of list) {
      const w = effect.write;
      if (effect.kind === 'maybe') {
        maybe = true;
        continue;
      }
      if (effect.kind === 'park') {
        parks++;
        if (parked !== undefined && !maybe) {
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
  const userPaused = new Set(model.userPauses.map((p) => p.id));
  for (const [id, list] of effects(model)) {
    if (!userPaused.has(id)) continue;
    const pausedAt = (model.userPauses.find((p) => p.id === id) as EntryOf<'user-pause'>).t;
    for (const effect of list) {
      if (effect.kind === 'resume' && effect.write.start > pausedAt) {
        violations.push({
          message: `${id} was paused by a user and then resumed by ${effect.write.member}`,
          at: effect.write.start,
          members: [effect.write.member],
        });
      }
    }
  }
  return check(
    'only parked workflows are resumed, once per park',
    '4, 5',
    violations,
    `${parks} effective parks, ${resumes} effective resumes, alternating per workflow; no user-paused one resumed`,
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
  for (const [id, list] of effects(model)) {
    list.forEach((effect, i) => {
      if (effect.kind !== 'park' || effect.write.end === undefined) return;
      const parkedAt = effect.write.end;
      const round = rounds.find((r) => r.listedAt > parkedAt);
      if (round === undefined) return;
      const handled = list
        .slice(i + 1)
        .some((later) => later.write.start > effect.write.start && later.write.start <= round.t);
      const touched = model.writes.some(
        (w) =>
          w.kind === 'unpark' && w.start > effect.write.start && w.start <= round.t && w.ids.includes(id),
      );
      if (!handled && !touched) {
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
    '9',
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
