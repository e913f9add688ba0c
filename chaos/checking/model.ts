/**
 * The merged history, read into what the checks reason about: each member's life (spawn, signals,
 * freezes, stalls, memberships, exit), each lease (acquire, renewals, loss, release), each store write
 * (park, unpark, with token and outcome) and fence raise, each step attempt, each action of the
 * simulated user, and the windows in which a fault could have made a member miss a deadline without it
 * being able to say so.
 */
import type { Timings } from '../faults.js';
import type { EntryOf, ErrorRecord, FaultKind, HistoryEntry, LeaseAtWrite, Outcomes } from '../history.js';

/** A span of time on the shared clock. */
export interface Interval {
  readonly from: number;
  readonly to: number;
}

/** Whether two closed intervals meet. */
export function overlaps(a: Interval, b: Interval): boolean {
  return a.from <= b.to && b.from <= a.to;
}

/** One membership of a member: from its join to its leave, loss or end. */
export interface MembershipSpan {
  readonly incarnation: string;
  readonly joinedAt: number;
  /** When it ended (leave began, loss was noticed, the process was killed or exited), or Infinity. */
  endAt: number;
  endKind: 'leave' | 'lost' | 'killed' | 'exit' | 'open';
}

/** A member process. */
export interface MemberModel {
  readonly id: string;
  readonly slot: number;
  readonly spawnAt: number;
  exitAt: number;
  exitCode: number | null;
  exitSignal: string | null;
  /** When the harness sent SIGKILL, if it did. */
  killedAt: number | undefined;
  /** When the harness first sent SIGTERM, if it did. */
  termAt: number | undefined;
  readonly frozen: Interval[];
  readonly stalls: Interval[];
  readonly memberships: MembershipSpan[];
  readonly reports: EntryOf<'report'>[];
  readonly events: HistoryEntry[];
}

/** A lease, from its acquire to its end. */
export interface LeaseModel {
  readonly token: bigint;
  readonly name: string;
  readonly holder: string;
  readonly acquireStart: number;
  readonly acquireEnd: number;
  /** The last local deadline the holder knew (acquire or renewal). */
  deadline: number;
  releaseStart: number | undefined;
  lostAt: number | undefined;
  lostError: ErrorRecord | undefined;
  /**
   * Until when the holder could act on it: the first of its release, its loss, its last known
   * deadline, and the death of its process.
   */
  validUntil: number;
}

/**
 * A park or unpark call; or a `recover()` of the start gate, which pauses and marks as a park does
 * (`kind: 'park'`, with `recover` set), so every check of parks holds it to the same rules.
 */
export interface WriteModel {
  readonly kind: 'park' | 'unpark';
  /** What the call was, for messages. */
  readonly name: 'park' | 'unpark' | 'recover';
  /** A recovery's write: the generation its gate read (`null`: none read), and its mode. */
  readonly recover?: { readonly generation: number | null; readonly mode: string } | undefined;
  readonly member: string;
  readonly token: bigint | null;
  readonly start: number;
  readonly ids: readonly string[];
  readonly lease: LeaseAtWrite | null;
  end: number | undefined;
  outcomes: Outcomes | undefined;
  error: ErrorRecord | undefined;
  readonly seq: number;
}

/** A `raiseFence` call. */
export interface FenceModel {
  readonly member: string;
  readonly token: bigint | null;
  readonly start: number;
  end: number | undefined;
  /** Why it failed (`undefined`: it succeeded, or was cut short by a crash when `end` is too). */
  error: ErrorRecord | undefined;
}

/** A user's pause or resume of a workflow, as the harness recorded it once it took effect. */
export interface UserAction {
  readonly t: number;
  readonly id: string;
  readonly action: 'pause' | 'resume';
  /** For a pause: of a running workflow, one the user had resumed, or one already parked. */
  readonly how: 'running' | 're-pause' | 'parked' | undefined;
  readonly seq: number;
}

/** One try at running a step. */
export interface Attempt {
  readonly claim: string;
  readonly workflow: string;
  readonly step: number;
  readonly member: string;
  readonly startedAt: number;
  end: { readonly at: number; readonly how: string } | undefined;
}

/** A fault, as the harness recorded it, with when it ended. */
export interface FaultModel {
  readonly fault: number;
  readonly kind: FaultKind;
  readonly targets: readonly string[];
  readonly slots: readonly number[];
  readonly from: number;
  to: number;
  readonly detail: string;
}

/** Everything the checks read. */
export interface Model {
  readonly history: readonly HistoryEntry[];
  readonly origin: number;
  readonly members: Map<string, MemberModel>;
  readonly leases: LeaseModel[];
  readonly writes: WriteModel[];
  readonly fences: FenceModel[];
  readonly attempts: Map<string, Attempt>;
  readonly faults: FaultModel[];
  readonly userPauses: EntryOf<'user-pause'>[];
  /** Every pause and resume of the simulated user, in time order. */
  readonly userActions: UserAction[];
  readonly clusterStops: EntryOf<'cluster-stopped'>[];
  readonly crashStops: EntryOf<'crash-stop'>[];
  readonly crashSettled: EntryOf<'crash-settled'>[];
  /** Members killed while the others ran (`crash-peer`), and what was left once the peer check had its time. */
  readonly crashPeers: EntryOf<'crash-peer'>[];
  readonly crashPeerSettled: EntryOf<'crash-peer-settled'>[];
  /** Every `evictMembers()` that went through, by the member that sent it. */
  readonly evictions: EntryOf<'evict'>[];
  /** Every `recovery` event of the members' start gates. */
  readonly recoveries: EntryOf<'recovery'>[];
  readonly timings: Timings;
}

const parseToken = (token: string | null): bigint | null => (token === null ? null : BigInt(token));

function member(members: Map<string, MemberModel>, id: string, slot = 0, at = 0): MemberModel {
  let m = members.get(id);
  if (m === undefined) {
    m = {
      id,
      slot,
      spawnAt: at,
      exitAt: Infinity,
      exitCode: null,
      exitSignal: null,
      killedAt: undefined,
      termAt: undefined,
      frozen: [],
      stalls: [],
      memberships: [],
      reports: [],
      events: [],
    };
    members.set(id, m);
  }
  return m;
}

/** Reads the merged history into a {@link Model}. */
export function buildModel(history: readonly HistoryEntry[], timings: Timings): Model {
  const members = new Map<string, MemberModel>();
  const leases = new Map<string, LeaseModel>();
  const writes: WriteModel[] = [];
  const openWrites = new Map<string, WriteModel>();
  /** A store write its start event began: listed, and open (`member/key`) until its end event. */
  const openWrite = (
    e: EntryOf<'park-start' | 'unpark-start' | 'recover-start'>,
    key: string,
    call: Pick<WriteModel, 'kind' | 'name' | 'recover'>,
  ): void => {
    const write: WriteModel = {
      ...call,
      member: e.m,
      token: parseToken(e.token),
      start: e.t,
      ids: e.ids,
      lease: e.lease,
      end: undefined,
      outcomes: undefined,
      error: undefined,
      seq: e.seq,
    };
    writes.push(write);
    openWrites.set(`${e.m}/${key}`, write);
  };
  const fences: FenceModel[] = [];
  const openFences = new Map<string, FenceModel>();
  const userActions: UserAction[] = [];
  /** Host locks taken by members: on every member's path (the slots are filled in at the end). */
  const hostLocks = new Map<string, FaultModel>();
  const everySlot: number[] = [];
  const attempts = new Map<string, Attempt>();
  const faults = new Map<number, FaultModel>();
  const userPauses: EntryOf<'user-pause'>[] = [];
  const clusterStops: EntryOf<'cluster-stopped'>[] = [];
  const crashStops: EntryOf<'crash-stop'>[] = [];
  const crashSettled: EntryOf<'crash-settled'>[] = [];
  const crashPeers: EntryOf<'crash-peer'>[] = [];
  const crashPeerSettled: EntryOf<'crash-peer-settled'>[] = [];
  const evictions: EntryOf<'evict'>[] = [];
  const recoveries: EntryOf<'recovery'>[] = [];
  /** The generation each member's start gate read last. */
  const generations = new Map<string, number>();
  const stopped = new Map<string, number>();
  const origin = history[0]?.t ?? 0;

  for (const e of history) {
    if (e.m === 'harness') {
      switch (e.type) {
        case 'spawn':
          member(members, e.member, e.slot, e.t);
          break;
        case 'signal': {
          const m = member(members, e.member);
          if (e.signal === 'SIGKILL') m.killedAt ??= e.t;
          if (e.signal === 'SIGTERM') m.termAt ??= e.t;
          if (e.signal === 'SIGSTOP') stopped.set(e.member, e.t);
          if (e.signal === 'SIGCONT') {
            const from = stopped.get(e.member);
            if (from !== undefined) m.frozen.push({ from, to: e.t });
            stopped.delete(e.member);
          }
          break;
        }
        case 'exit': {
          const m = member(members, e.member);
          m.exitAt = e.t;
          m.exitCode = e.code;
          m.exitSignal = e.signal;
          const from = stopped.get(e.member);
          if (from !== undefined) m.frozen.push({ from, to: e.t });
          stopped.delete(e.member);
          break;
        }
        case 'fault':
          // A host lock is armed by the harness and taken by a member: its span is the member's.
          if (e.kind === 'host-lock-at-park' || e.kind === 'host-lock-at-resume') break;
          faults.set(e.fault, {
            fault: e.fault,
            kind: e.kind,
            targets: e.targets,
            slots: e.slots,
            from: e.t,
            to: e.t + e.durationMs,
            detail: e.detail,
          });
          break;
        case 'heal': {
          const f = faults.get(e.fault);
          if (f !== undefined) f.to = e.t;
          break;
        }
        case 'user-pause':
          userPauses.push(e);
          userActions.push({ t: e.t, id: e.id, action: 'pause', how: e.how ?? 'running', seq: e.seq });
          break;
        case 'user-resume':
          userActions.push({ t: e.t, id: e.id, action: 'resume', how: undefined, seq: e.seq });
          break;
        case 'cluster-stopped':
          clusterStops.push(e);
          break;
        case 'crash-stop':
          crashStops.push(e);
          break;
        case 'crash-settled':
          crashSettled.push(e);
          break;
        case 'crash-peer':
          crashPeers.push(e);
          break;
        case 'crash-peer-settled':
          crashPeerSettled.push(e);
          break;
        default:
          break;
      }
      continue;
    }
    const m = member(members, e.m);
    m.events.push(e);
    switch (e.type) {
      case 'stall':
        m.stalls.push({ from: e.from, to: e.from + e.ms });
        break;
      case 'stall-injected':
        // Recorded just before: the monitor records it again after the fact, as any stall.
        m.stalls.push({ from: e.t, to: e.t + e.ms });
        break;
      case 'join':
        m.memberships.push({ incarnation: e.incarnation, joinedAt: e.t, endAt: Infinity, endKind: 'open' });
        break;
      case 'membership-lost':
      case 'leave-start': {
        const span = m.memberships.find((s) => s.incarnation === e.incarnation);
        if (span !== undefined && span.endKind === 'open') {
          span.endAt = e.t;
          span.endKind = e.type === 'leave-start' ? 'leave' : 'lost';
        }
        break;
      }
      case 'report':
        m.reports.push(e);
        break;
      case 'acquire':
        // Keyed by holder too: two grants of one token (a broken backend) stay two leases.
        leases.set(`${e.m}#${e.name}#${e.token}`, {
          token: BigInt(e.token),
          name: e.name,
          holder: e.m,
          acquireStart: lastStart(m.events, 'acquire-start'),
          acquireEnd: e.t,
          deadline: e.deadline,
          releaseStart: undefined,
          lostAt: undefined,
          lostError: undefined,
          validUntil: Infinity,
        });
        break;
      case 'renew':
      case 'release-start':
      case 'lease-lost': {
        const lease = [...leases.values()].find((l) => l.holder === e.m && l.token === BigInt(e.token));
        if (lease === undefined) break;
        if (e.type === 'renew') lease.deadline = Math.max(lease.deadline, e.deadline);
        if (e.type === 'release-start') lease.releaseStart ??= e.t;
        if (e.type === 'lease-lost') {
          lease.lostAt ??= e.t;
          lease.lostError ??= e.error;
        }
        break;
      }
      case 'park-start':
      case 'unpark-start': {
        const kind = e.type === 'park-start' ? 'park' : 'unpark';
        openWrite(e, kind, { kind, name: kind });
        break;
      }
      case 'recover-start':
        openWrite(e, 'recover', {
          kind: 'park',
          name: 'recover',
          recover: { generation: generations.get(e.m) ?? null, mode: e.mode },
        });
        break;
      case 'generation-read':
        generations.set(e.m, e.generation);
        break;
      case 'recovery':
        recoveries.push(e);
        break;
      case 'evict':
        if (e.error === undefined) evictions.push(e);
        break;
      case 'park':
      case 'unpark':
      case 'recover':
      case 'park-failed':
      case 'unpark-failed':
      case 'recover-failed': {
        const kind = e.type.startsWith('unpark')
          ? 'unpark'
          : e.type.startsWith('recover')
            ? 'recover'
            : 'park';
        const write = openWrites.get(`${e.m}/${kind}`);
        if (write === undefined) break;
        openWrites.delete(`${e.m}/${kind}`);
        write.end = e.t;
        if ('outcomes' in e) write.outcomes = e.outcomes;
        else write.error = e.error;
        break;
      }
      case 'host-lock': {
        const lock: FaultModel = {
          fault: -e.seq,
          kind: e.phase === 'park' ? 'host-lock-at-park' : 'host-lock-at-resume',
          targets: [e.m],
          slots: everySlot,
          from: e.t,
          to: e.t + e.ms,
          detail: `${e.m}: ${e.what} for ${e.ms} ms`,
        };
        faults.set(lock.fault, lock);
        hostLocks.set(e.m, lock);
        break;
      }
      case 'host-lock-released': {
        const lock = hostLocks.get(e.m);
        if (lock !== undefined) lock.to = e.t;
        hostLocks.delete(e.m);
        break;
      }
      case 'fence-start': {
        const fence: FenceModel = {
          member: e.m,
          token: parseToken(e.token),
          start: e.t,
          end: undefined,
          error: undefined,
        };
        fences.push(fence);
        openFences.set(e.m, fence);
        break;
      }
      case 'fence':
      case 'fence-failed': {
        const fence = openFences.get(e.m);
        if (fence === undefined) break;
        openFences.delete(e.m);
        fence.end = e.t;
        if (e.type === 'fence-failed') fence.error = e.error;
        break;
      }
      case 'step-start':
        attempts.set(e.claim, {
          claim: e.claim,
          workflow: e.id,
          step: e.step,
          member: e.m,
          startedAt: e.t,
          end: undefined,
        });
        break;
      case 'engine-error': {
        // A release that failed too: the claim is left to lapse, and the step to run again.
        const attempt = e.claim === undefined || e.where !== 'release' ? undefined : attempts.get(e.claim);
        if (attempt !== undefined && attempt.end === undefined) {
          attempt.end = { at: e.t, how: `released (failed: ${e.message}; the claim lapses)` };
        }
        break;
      }
      case 'commit':
      case 'unclaim': {
        const attempt = attempts.get(e.claim);
        if (attempt !== undefined && attempt.end === undefined) {
          attempt.end = { at: e.t, how: e.type === 'commit' ? e.outcome : `released (${e.why})` };
        }
        break;
      }
      default:
        break;
    }
  }

  everySlot.push(...new Set([...members.values()].map((m) => m.slot)));
  // A lock still held when its member died went with it.
  for (const [id, lock] of hostLocks) lock.to = Math.min(lock.to, members.get(id)?.exitAt ?? Infinity);
  for (const m of members.values()) {
    for (const span of m.memberships) {
      if (span.endKind !== 'open') continue;
      if (m.killedAt !== undefined && m.killedAt < m.exitAt) {
        span.endAt = m.killedAt;
        span.endKind = 'killed';
      } else if (m.exitAt !== Infinity) {
        span.endAt = m.exitAt;
        span.endKind = 'exit';
      }
    }
  }
  for (const lease of leases.values()) {
    const holder = members.get(lease.holder);
    const death = Math.min(holder?.killedAt ?? Infinity, holder?.exitAt ?? Infinity);
    lease.validUntil = Math.min(
      lease.releaseStart ?? Infinity,
      lease.lostAt ?? Infinity,
      lease.deadline,
      death,
    );
  }
  return {
    history,
    origin,
    members,
    leases: [...leases.values()].sort((a, b) => a.acquireEnd - b.acquireEnd),
    writes,
    fences,
    attempts,
    faults: [...faults.values()],
    userPauses,
    userActions,
    clusterStops,
    crashStops,
    crashPeers,
    crashPeerSettled,
    evictions,
    crashSettled,
    recoveries,
    timings,
  };
}

function lastStart(events: readonly HistoryEntry[], type: 'acquire-start'): number {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i] as HistoryEntry;
    if (e.type === type) return e.t;
  }
  return -Infinity;
}

/**
 * Faults that cut no member off: signals (their effects are read from the signals themselves), the
 * user's actions, and hostile listeners (a member's own doing, which the controller must absorb).
 */
const NOT_ON_PATH: ReadonlySet<FaultKind> = new Set<FaultKind>([
  'sigterm',
  'sigkill',
  'freeze',
  'freeze-at-handoff',
  'freeze-at-start',
  'stall-at-park',
  'stop-all',
  'cluster-stop',
  'crash-last',
  'crash-all',
  'user-pause',
  'user-resume',
  'user-pause-parked',
  'user-at-park',
  'user-at-resume',
  'user-at-cluster-stop',
  'hostile-listeners',
]);

/**
 * The windows in which `member` may have missed a heartbeat or a deadline through no fault of the
 * protocol: frozen, stalled, or cut off by a fault on its path, each stretched by `padMs` after its end
 * (the time it takes to notice, or for the server to expire what was missed).
 */
export function disturbances(
  model: Model,
  m: MemberModel,
  padMs: number,
): (Interval & { readonly why: string })[] {
  const out: (Interval & { readonly why: string })[] = [];
  for (const f of m.frozen) out.push({ from: f.from, to: f.to + padMs, why: 'frozen' });
  for (const s of m.stalls)
    out.push({ from: s.from, to: s.to + padMs, why: `stalled ${Math.round(s.to - s.from)} ms` });
  for (const f of model.faults) {
    if (NOT_ON_PATH.has(f.kind)) continue;
    if (!f.targets.includes(m.id) && !f.slots.includes(m.slot)) continue;
    out.push({ from: f.from, to: f.to + padMs, why: `${f.kind} #${f.fault}` });
  }
  return out;
}

/** The first disturbance of `m` that meets `span`, if any. */
export function disturbedDuring(
  model: Model,
  m: MemberModel,
  span: Interval,
  padMs: number,
): string | undefined {
  return disturbances(model, m, padMs).find((d) => overlaps(d, span))?.why;
}
