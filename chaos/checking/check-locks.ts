/**
 * Checks of the locks and of fencing, from the history:
 *
 * - invariant 1, fencing: the store never accepts a token lower than one it accepted before (in real
 *   time: the earlier write had ended before the later one began), nor one lower than a fence raised
 *   before the write was sent (the next lock holder raises it before it reads: a write delayed in
 *   flight is rejected); every rejection is explained by a higher token; no write goes unfenced;
 * - the coordinator's tokens are unique and increase with the order in which holders got the lock;
 * - invariant 8: no two holders at once (each holder's lease counts until its release, its loss, its
 *   last known local deadline or its death), and no write is sent once its lease has ended;
 * - invariant 7: a crashed member leaves the group, and frees the lock, within the adapter's bound.
 */
import type { BackendName } from '../../harness/backend.js';
import { check, type CheckResult, type Violation } from './check-result.js';
import {
  disturbances,
  disturbedDuring,
  type LeaseModel,
  type MemberModel,
  type Model,
  overlaps,
} from './model.js';

/** Clock and logging slack between processes, in ms. */
const EPSILON = 2;

/** How long after a crash the backend may still show the member, or hold its lock (ms). */
export function crashBound(backend: BackendName, ttlMs: number): number {
  // SQLite and Redis expire rows and keys with their TTL (SQLite also frees a dead process's rows at
  // once); PostgreSQL frees a session's locks as soon as it sees the connection close.
  return (backend === 'postgres' ? 1000 : ttlMs) + 500;
}

/**
 * The first call to the store `lease`'s holder made under it within [from, to]: a fence raise, a
 * listing or a write (its coordinator's listing of members is no look at the store).
 */
function actedOn(model: Model, lease: LeaseModel, from: number, to: number): string | undefined {
  const holder = model.members.get(lease.holder);
  const end = Math.min(to, lease.validUntil);
  for (const e of holder?.events ?? []) {
    if (e.t < from || e.t > end) continue;
    if (
      e.type === 'fence-start' ||
      e.type === 'list-parked-start' ||
      e.type === 'park-start' ||
      e.type === 'unpark-start'
    ) {
      return `${e.type.replace('-start', '')} at ${((e.t - model.origin) / 1000).toFixed(3)}s`;
    }
  }
  return undefined;
}

/** Fencing tokens: unique, and increasing with the order of acquisition. */
export function checkTokens(model: Model): CheckResult {
  const violations: Violation[] = [];
  const seen = new Map<string, LeaseModel>();
  for (const lease of model.leases) {
    const key = `${lease.name}#${lease.token}`;
    const twin = seen.get(key);
    if (twin !== undefined) {
      violations.push({
        message: `token ${lease.token} of "${lease.name}" granted twice: to ${twin.holder} and ${lease.holder}`,
        at: lease.acquireEnd,
        members: [twin.holder, lease.holder],
      });
    }
    seen.set(key, lease);
  }
  for (const a of model.leases) {
    for (const b of model.leases) {
      if (a.name !== b.name || a.acquireEnd >= b.acquireStart || a.token <= b.token) continue;
      const message = `${b.holder} got token ${b.token} after ${a.holder} had got token ${a.token}`;
      violations.push({ message, at: b.acquireEnd, members: [a.holder, b.holder] });
    }
  }
  const detail = `${model.leases.length} leases granted, tokens unique and increasing`;
  return check('fencing tokens strictly increase', '1, 8', violations, detail);
}

/** Invariant 1: the store's high-water mark never accepts a lower token; nothing unfenced. */
export function checkFencing(model: Model): CheckResult {
  const violations: Violation[] = [];
  const accepted = model.writes.filter((w) => w.outcomes !== undefined && w.token !== null);
  // A write that failed without an answer (a dropped connection), or was cut short by a crash, may
  // have been committed all the same.
  const maybe = model.writes.filter((w) => w.outcomes === undefined && w.error?.code !== 'ERR_STALE_TOKEN');
  for (const b of accepted) {
    for (const a of accepted) {
      if (a.end === undefined || a.end >= b.start || (a.token as bigint) <= (b.token as bigint)) continue;
      violations.push({
        message: `the store accepted ${b.name} by ${b.member} with token ${b.token} after it had accepted token ${a.token} (${a.name} by ${a.member})`,
        at: b.start,
        members: [a.member, b.member],
      });
      break;
    }
  }
  // A fence raised to a higher token before the write was sent: the store must reject the write.
  const raised = model.fences.filter((f) => f.token !== null && f.end !== undefined && f.error === undefined);
  for (const w of accepted) {
    const fence = raised.find(
      (f) => (f.token as bigint) > (w.token as bigint) && (f.end as number) < w.start,
    );
    if (fence === undefined) continue;
    violations.push({
      message: `the store accepted ${w.name} by ${w.member} with token ${w.token} after ${fence.member} had raised the fence to token ${fence.token}`,
      at: w.start,
      members: [w.member, fence.member],
    });
  }
  // A token is used once its holder acts on the store under it (raises the fence, reads or writes): a
  // lower token accepted after that lands behind the newer holder's back, whether or not the newer one
  // wrote first.
  for (const w of accepted) {
    const newer = model.leases.find(
      (l) =>
        l.token > (w.token as bigint) &&
        l.acquireEnd < w.start &&
        actedOn(model, l, l.acquireEnd, w.start) !== undefined,
    );
    if (newer === undefined) continue;
    violations.push({
      message: `the store accepted ${w.name} by ${w.member} with token ${w.token} after ${newer.holder} had taken token ${newer.token} and acted on it (${actedOn(model, newer, newer.acquireEnd, w.start)})`,
      at: w.start,
      members: [w.member, newer.holder],
    });
  }
  // Every rejection is explained by a higher token written, or raised, before it ended.
  const higherSeen = (token: bigint, by: number): boolean =>
    [...accepted, ...maybe].some((o) => o.token !== null && o.token > token && o.start <= by) ||
    model.fences.some(
      (f) => f.token !== null && f.token > token && f.start <= by && f.error?.code !== 'ERR_STALE_TOKEN',
    );
  let rejected = 0;
  for (const w of model.writes) {
    if (w.token === null) {
      violations.push({ message: `an unfenced ${w.name} by ${w.member}`, at: w.start, members: [w.member] });
      continue;
    }
    if (w.error?.code !== 'ERR_STALE_TOKEN') continue;
    rejected++;
    if (!higherSeen(w.token, w.end ?? Infinity)) {
      violations.push({
        message: `the store rejected token ${w.token} (${w.name} by ${w.member}) though no higher token had been written or raised`,
        at: w.start,
        members: [w.member],
      });
    }
  }
  let raisesRejected = 0;
  for (const f of model.fences) {
    if (f.token === null || f.error?.code !== 'ERR_STALE_TOKEN') continue;
    raisesRejected++;
    if (!higherSeen(f.token, f.end ?? Infinity)) {
      violations.push({
        message: `the store refused to raise the fence to token ${f.token} (by ${f.member}) though no higher token had been written or raised`,
        at: f.start,
        members: [f.member],
      });
    }
  }
  return check(
    'fenced writes: no lower token accepted after a higher one',
    '1',
    violations,
    `${accepted.length} fenced writes accepted in token order, ${rejected} stale ones rejected, none unfenced; ` +
      `${raised.length} fence raises, none followed by a lower token accepted${raisesRejected > 0 ? `, ${raisesRejected} stale raises refused` : ''}`,
  );
}

/** Invariant 8: one holder at a time; no write once the lease is over. */
export function checkLeaseExclusion(model: Model, backend: BackendName): CheckResult {
  const violations: Violation[] = [];
  const notes: string[] = [];
  const leases = model.leases;
  for (let i = 0; i < leases.length; i++) {
    const a = leases[i] as LeaseModel;
    for (let j = i + 1; j < leases.length; j++) {
      const b = leases[j] as LeaseModel;
      if (a.name !== b.name || b.acquireEnd >= a.validUntil - EPSILON) continue;
      // A session killed on the server frees its locks at once, before the holder can hear of it: with
      // connection liveness only fencing covers that (see the write checks).
      const killed = model.faults.find(
        (f) =>
          (f.kind === 'conn-kill' || f.kind === 'server-restart') &&
          f.from >= a.acquireEnd - EPSILON &&
          f.from <= b.acquireEnd &&
          (f.targets.includes(a.holder) || f.slots.includes(model.members.get(a.holder)?.slot ?? -1)),
      );
      if (backend === 'postgres' && killed !== undefined) {
        notes.push(
          `${a.holder}'s session was ended by ${killed.kind} #${killed.fault}: ${b.holder} got the lock (token ${b.token}) ` +
            `${Math.round(a.validUntil - b.acquireEnd)} ms before ${a.holder} could notice (token ${a.token})`,
        );
        continue;
      }
      violations.push({
        message: `${b.holder} got the lock (token ${b.token}) while ${a.holder} still held token ${a.token} (for ${Math.round(
          a.validUntil - b.acquireEnd,
        )} ms more)`,
        at: b.acquireEnd,
        members: [a.holder, b.holder],
      });
    }
  }
  for (const w of model.writes) {
    if (w.token === null) continue;
    const lease = leases.find((l) => l.holder === w.member && l.token === w.token);
    if (lease === undefined) continue;
    if (w.lease?.aborted === true) {
      violations.push({
        message: `${w.member} sent a ${w.name} with token ${w.token} after its lease's signal had aborted`,
        at: w.start,
        members: [w.member],
      });
    } else if (w.start > lease.validUntil + EPSILON) {
      const why =
        lease.validUntil === lease.deadline
          ? `its local deadline had passed ${Math.round(w.start - lease.deadline)} ms before`
          : lease.validUntil === lease.releaseStart
            ? 'it had begun releasing it'
            : 'it had lost it';
      violations.push({
        message: `${w.member} sent a ${w.name} with token ${w.token} after its lease had ended: ${why}${
          w.error?.code === 'ERR_STALE_TOKEN' ? ' (the store rejected it)' : ''
        }`,
        at: w.start,
        members: [w.member],
      });
    }
  }
  return check(
    'one lock holder at a time, no write after a lease ends',
    '8',
    violations,
    `${leases.length} leases, no overlap; ${model.writes.length} writes, each within its lease`,
    notes,
  );
}

/** The end of the network faults on `m`'s path that were in force at `at` (a close cannot get through). */
function pathHealedAfter(model: Model, m: MemberModel, at: number): number {
  let end = at;
  for (const f of model.faults) {
    if ((f.kind === 'partition' || f.kind === 'server-restart') && f.slots.includes(m.slot) && f.from <= at) {
      if (f.to >= at) end = Math.max(end, f.to);
    }
  }
  return end;
}

/** Invariant 7: a crashed member vanishes from listings, and frees the lock, within the bound. */
export function checkCrashBounds(model: Model, backend: BackendName): CheckResult {
  const violations: Violation[] = [];
  const t = model.timings;
  const memberBound = crashBound(backend, t.memberTtlMs);
  const lockBound = crashBound(backend, t.lockTtlMs);
  let crashed = 0;
  const gone = new Map<string, number>();
  for (const m of model.members.values()) {
    if (m.killedAt === undefined || m.killedAt > m.exitAt) continue;
    crashed++;
    gone.set(m.id, pathHealedAfter(model, m, m.killedAt));
  }
  for (const m of model.members.values()) {
    for (const e of m.events) {
      if (e.type !== 'members') continue;
      const start = lastBefore(m, e.seq, 'members-start');
      for (const listed of e.members) {
        const deadAt = gone.get(listed.memberId);
        if (deadAt === undefined || start < deadAt + memberBound) continue;
        violations.push({
          message: `${m.id} still saw ${listed.memberId} in the group ${Math.round(start - deadAt)} ms after it crashed (bound ${memberBound} ms)`,
          at: e.t,
          members: [m.id, listed.memberId],
        });
      }
    }
  }
  // A lock wait that timed out must be explained by a holder (or one that may still hold it).
  for (const m of model.members.values()) {
    for (const e of m.events) {
      if (e.type !== 'acquire-failed' || e.error.code !== 'ERR_LOCK_TIMEOUT') continue;
      const start = lastBefore(m, e.seq, 'acquire-start');
      if (disturbedDuring(model, m, { from: start, to: e.t }, 0) !== undefined) continue;
      const explained = possibleHolders(model, lockBound).some(
        (h) => h.holder !== m.id && h.from <= e.t && h.to >= e.t - 500,
      );
      if (!explained) {
        violations.push({
          message: `${m.id} timed out waiting ${Math.round(e.t - start)} ms for a lock that no live member held`,
          at: e.t,
          members: [m.id],
        });
      }
    }
  }
  return check(
    'a crashed member leaves the group and frees the lock within its bound',
    '7',
    violations,
    `${crashed} crashes; gone from listings within ${memberBound} ms; no lock wait left unexplained`,
  );
}

/** Who may have held the lock, and until when, as the server saw it. */
function possibleHolders(model: Model, bound: number): { holder: string; from: number; to: number }[] {
  const out: { holder: string; from: number; to: number }[] = [];
  for (const lease of model.leases) {
    const holder = model.members.get(lease.holder);
    let to = lease.validUntil;
    if (holder !== undefined) {
      // A holder frozen or cut off may keep the lock on the server past its own deadline.
      for (const d of disturbances(model, holder, 0)) {
        if (overlaps(d, { from: lease.acquireStart, to: lease.validUntil })) to = Math.max(to, d.to);
      }
      if (holder.killedAt !== undefined && holder.killedAt <= to)
        to = pathHealedAfter(model, holder, holder.killedAt);
    }
    out.push({ holder: lease.holder, from: lease.acquireStart, to: to + bound });
  }
  // An acquire cut short by a crash may have taken the lock all the same.
  for (const m of model.members.values()) {
    if (m.killedAt === undefined) continue;
    let pending: number | undefined;
    for (const e of m.events) {
      if (e.type === 'acquire-start') pending = e.t;
      if (e.type === 'acquire' || e.type === 'acquire-failed') pending = undefined;
    }
    if (pending !== undefined)
      out.push({ holder: m.id, from: pending, to: pathHealedAfter(model, m, m.killedAt) + bound });
  }
  return out;
}

function lastBefore(m: MemberModel, seq: number, type: string): number {
  let at = -Infinity;
  for (const e of m.events) {
    if (e.seq >= seq) break;
    if (e.type === type) at = e.t;
  }
  return at;
}
