/**
 * Checks of crash recovery (issue #13), from the history:
 *
 * - invariant 11: once the members started after a crash stop are ready (their start gates done), no
 *   workflow is stranded: none is `running` held by a member that is not alive; every workflow the
 *   killed members held was recovered by that start;
 * - invariant 11: no workflow is recovered twice: between two recoveries of a workflow, it was resumed
 *   (by an unpark, or by a user);
 * - invariant 12: a recovery never touches a workflow a user paused (its last user action before the
 *   recovery is a pause), nor one a member that was certainly alive was driving (a step of it in
 *   flight then).
 *
 * A `recover()` is modelled as a park (model.ts): the fencing, landing, alternation and
 * never-forgotten checks hold it to the rules of a park too.
 */
import { check, type CheckResult, type Violation } from './check-result.js';
import { certainlyAlive } from './check-protocol.js';
import type { Model, WriteModel } from './model.js';

/** Outcomes of `recover()` that hand a workflow back (or give up on it): all but `skipped`. */
const HANDED_BACK = new Set(['paused', 'pausing', 'counted', 'failed']);

/** Per workflow, the recover writes that handed it back, in the order they began. */
function recoveries(model: Model): Map<string, WriteModel[]> {
  const byId = new Map<string, WriteModel[]>();
  for (const w of [...model.writes].sort((a, b) => a.start - b.start)) {
    if (w.recover === undefined || w.outcomes === undefined) continue;
    for (const [outcome, ids] of Object.entries(w.outcomes)) {
      if (!HANDED_BACK.has(outcome)) continue;
      for (const id of ids) byId.set(id, [...(byId.get(id) ?? []), w]);
    }
  }
  return byId;
}

const fmt = (model: Model, t: number): string => `${((t - model.origin) / 1000).toFixed(3)}s`;

const describe = (model: Model, w: WriteModel): string =>
  `${w.member} (token ${w.token}, generation ${w.recover?.generation ?? '?'}) at ${fmt(model, w.start)}`;

/** Invariant 11: after a crash stop, the next start leaves nothing stranded, and recovers what the kill left. */
export function checkCrashRecovered(model: Model): CheckResult {
  const violations: Violation[] = [];
  const byId = recoveries(model);
  let stranded = 0;
  let recovered = 0;
  const kinds = { 'crash-last': 0, 'crash-all': 0 };
  for (const crash of model.crashStops) {
    kinds[crash.kind]++;
    stranded += crash.stranded.length;
    const settled = model.crashSettled.find((s) => s.t > crash.t);
    if (settled === undefined) {
      violations.push({
        message: `${crash.kind} at ${fmt(model, crash.t)}: the members started after it never were all ready`,
        at: crash.t,
        members: crash.killed,
      });
      continue;
    }
    for (const s of settled.stranded) {
      violations.push({
        message: `${s.id} still running, held by ${s.owner} (not alive), once the start after the ${crash.kind} at ${fmt(model, crash.t)} had settled`,
        at: settled.t,
        members: settled.members,
      });
    }
    const span = (w: WriteModel): boolean => w.start > crash.t && w.start < settled.t;
    recovered += model.recoveries
      .filter((r) => r.t > crash.t && r.t <= settled.t)
      .reduce((n, r) => n + r.recovered, 0);
    for (const id of crash.stranded) {
      if ((byId.get(id) ?? []).some(span)) continue;
      violations.push({
        message: `${id}, held by ${crash.killed.join(', ')} when the ${crash.kind} at ${fmt(model, crash.t)} killed them, was not recovered by the next start`,
        at: settled.t,
        members: settled.members,
      });
    }
  }
  return check(
    'after a crash of the last members, the next start leaves nothing stranded',
    '11',
    violations,
    `${model.crashStops.length} crash stops (crash-last ${kinds['crash-last']}, crash-all ${kinds['crash-all']}): ` +
      `${stranded} workflows held by the killed members, each recovered by the next start (${recovered} recovered in all); none stranded once it had settled`,
  );
}

/** Invariant 11: no workflow is recovered twice without a resume between. */
export function checkRecoveredOnce(model: Model): CheckResult {
  const violations: Violation[] = [];
  const resumes = new Map<string, number[]>();
  const resumed = (id: string, t: number): void => void resumes.set(id, [...(resumes.get(id) ?? []), t]);
  for (const w of model.writes) {
    if (w.kind === 'unpark') for (const id of w.outcomes?.resumed ?? []) resumed(id, w.start);
  }
  for (const a of model.userActions) if (a.action === 'resume') resumed(a.id, a.t);
  let total = 0;
  const byId = recoveries(model);
  for (const [id, list] of byId) {
    total += list.length;
    for (let i = 1; i < list.length; i++) {
      const [a, b] = [list[i - 1] as WriteModel, list[i] as WriteModel];
      if ((resumes.get(id) ?? []).some((t) => t > a.start && t < b.start)) continue;
      violations.push({
        message: `${id} recovered twice, with no resume between: by ${describe(model, a)} and by ${describe(model, b)}`,
        at: b.start,
        members: [a.member, b.member],
      });
    }
  }
  return check(
    'no workflow recovered twice',
    '11',
    violations,
    `${total} recoveries of ${byId.size} workflows, none twice without a resume between`,
  );
}

/** Invariant 12: recovery never touches a workflow a user paused, nor one a live member drives. */
export function checkRecoveryScope(model: Model): CheckResult {
  const violations: Violation[] = [];
  let skipped = 0;
  let handedBack = 0;
  for (const w of model.writes) {
    if (w.recover === undefined || w.outcomes === undefined) continue;
    skipped += w.outcomes.skipped?.length ?? 0;
    for (const [outcome, ids] of Object.entries(w.outcomes)) {
      if (!HANDED_BACK.has(outcome)) continue;
      for (const id of ids) {
        handedBack++;
        const last = model.userActions.filter((a) => a.id === id && a.t < w.start).at(-1);
        if (last?.action === 'pause') {
          violations.push({
            message: `${id} was paused by a user at ${fmt(model, last.t)}, then recovered (${outcome}) by ${describe(model, w)}`,
            at: w.start,
            members: [w.member],
          });
        }
        for (const a of model.attempts.values()) {
          if (a.workflow !== id || a.member === w.member || a.startedAt >= w.start) continue;
          const p = model.members.get(a.member);
          if (p === undefined || (a.end?.at ?? p.exitAt) <= (w.end ?? w.start)) continue;
          if (!certainlyAlive(model, p, { from: a.startedAt, to: w.end ?? w.start })) continue;
          violations.push({
            message: `${id} recovered (${outcome}) by ${describe(model, w)} while ${a.member}, alive, ran its step ${a.step + 1} (since ${fmt(model, a.startedAt)})`,
            at: w.start,
            members: [w.member, a.member],
          });
        }
      }
    }
  }
  return check(
    'recovery touches no workflow a user paused or a live member drives',
    '12',
    violations,
    `${handedBack} workflows handed back, ${skipped} skipped (no longer running); none paused by a user, none driven by a live member`,
  );
}

/**
 * Invariants 11 and 12 with the owner capability: after a `crash-peer` (one member killed while the
 * others run), once the survivors' peer check has had its time nothing is held by the dead member any
 * more; a survivor's `recovery` of reason `peer-crash` names it, its incarnation was evicted, and the
 * `recover()` calls of that span handed back every workflow it held and nothing else (none a live member
 * drove, none a user paused).
 */
export function checkPeerCrashRecovered(model: Model): CheckResult {
  const violations: Violation[] = [];
  let stranded = 0;
  const byId = recoveries(model);
  for (const crash of model.crashPeers) {
    stranded += crash.stranded.length;
    const settled = model.crashPeerSettled.find((s) => s.t > crash.t && s.killed === crash.killed);
    const at = fmt(model, crash.t);
    if (settled === undefined) {
      violations.push({
        message: `crash-peer of ${crash.killed} at ${at}: the run never recorded how it settled`,
        at: crash.t,
        members: [crash.killed],
      });
      continue;
    }
    const span = (t: number): boolean => t > crash.t && t <= settled.t;
    for (const id of settled.stranded) {
      violations.push({
        message: `${id} still running, held by ${crash.killed} (killed at ${at}), ${(settled.afterMs / 1000).toFixed(1)} s after the kill: no peer check recovered it`,
        at: settled.t,
        members: [crash.killed, ...crash.survivors],
      });
    }
    // Any time after the kill: a survivor sends its report once the recovery's writes are done, and the
    // harness may find nothing held any more (and settle) before the report arrives. The killed member's
    // name is its incarnation's own, so no other crash's report names it.
    const reported = model.recoveries.filter(
      (r) => r.t > crash.t && r.reason === 'peer-crash' && r.deadMembers.includes(crash.killed),
    );
    if (crash.stranded.length > 0 && reported.length === 0) {
      violations.push({
        message: `no survivor reported the peer-crash of ${crash.killed} (killed at ${at})`,
        at: settled.t,
        members: [...crash.survivors],
      });
    }
    for (const r of reported) {
      if (r.m === crash.killed || !crash.survivors.includes(r.m)) {
        violations.push({
          message: `${r.m}, not a survivor, reported the peer-crash of ${crash.killed}`,
          at: r.t,
          members: [r.m],
        });
      }
    }
    if (
      crash.stranded.length > 0 &&
      !model.evictions.some((e) => span(e.t) && e.members.some((m) => m.memberId === crash.killed))
    ) {
      violations.push({
        message: `${crash.killed} (killed at ${at}) was never evicted`,
        at: settled.t,
        members: [crash.killed],
      });
    }
    const held = new Set(crash.stranded);
    for (const id of held) {
      if ((byId.get(id) ?? []).some((w) => span(w.start) && w.member !== crash.killed)) continue;
      violations.push({
        message: `${id}, held by ${crash.killed} when it was killed at ${at}, was not recovered by a survivor`,
        at: settled.t,
        members: [crash.killed, ...crash.survivors],
      });
    }
    for (const [id, list] of byId) {
      if (held.has(id)) continue;
      for (const w of list.filter((x) => span(x.start))) {
        violations.push({
          message: `${id}, not held by ${crash.killed}, was recovered by ${describe(model, w)} after its crash-peer at ${at}`,
          at: w.start,
          members: [w.member],
        });
      }
    }
  }
  return check(
    'after a crash-peer, the survivors recover what the dead member drove, and only that',
    '11',
    violations,
    `${model.crashPeers.length} crash-peers: ${stranded} workflows held by the killed members, each recovered by a survivor's peer check (reason peer-crash, the dead evicted); none left held, none else recovered`,
  );
}
