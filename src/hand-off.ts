/**
 * The last-member protocol: parking at shutdown, resuming at start. Written against the Coordinator and
 * WorkflowStore contracts only; the controller supplies deadlines, signals and a place to record.
 *
 * @internal
 */
import createDebug from 'debug';
import type { AcquireOptions, Coordinator, Lease, MemberInfo, Membership } from './coordinator.js';
import { DrainTimeoutError, LockLostError, LockTimeoutError } from './errors.js';
import { bounded, delay, now } from './internal/time.js';
import { publish } from './metrics.js';
import type { CompiledOptions } from './options.js';
import type { HandOffDecision, PhaseName, PhaseReport, ReportedError } from './report.js';
import type { WorkflowStore } from './workflow-store.js';

const log = createDebug('graceful-drain:hand-off');

/** The name of a group's start-stop lock. */
export function lockName(group: string): string {
  return `${group}:start-stop`;
}

/** Where the protocol records phases and errors. */
export interface Recorder {
  phase(name: PhaseName, startedAt: number, outcome: PhaseReport['outcome']): void;
  error(phase: ReportedError['phase'], error: unknown): void;
}

/** Progress of a park, emitted after every batch. */
export interface ParkProgress {
  /** Workflows parked so far. */
  readonly parked: number;
  /** Of those, how many were still `pausing`. */
  readonly stillPausing: number;
  /** Workflows skipped so far (no longer running). */
  readonly skipped: number;
  /** The fencing token, if any. */
  readonly token: bigint | undefined;
}

/** The outcome of the hand-off at shutdown. */
export interface HandOffResult {
  readonly decision: HandOffDecision;
  readonly lastMember: boolean | undefined;
  readonly parked: number;
  readonly stillPausing: number;
  readonly token: bigint | undefined;
}

interface ShutdownContext {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: WorkflowStore;
  readonly membership: Membership | undefined;
  /** The end of the whole shutdown budget (monotonic). */
  readonly budgetEnd: number;
  /** Aborted when the shutdown is forced. */
  readonly signal: AbortSignal;
  readonly record: Recorder;
  readonly onPark: (progress: ParkProgress) => void;
}

class Unreachable {
  constructor(readonly error: unknown) {}
}

function remaining(end: number): number {
  return Math.max(0, end - now());
}

function budgetError(what: string): () => DrainTimeoutError {
  return () => new DrainTimeoutError(`The shutdown budget ran out while ${what}`);
}

/**
 * How much longer than `timeoutMs` an adapter may take to answer an acquire before the core gives up
 * on it (some adapters give a first try a minimum time, so `timeoutMs: 0` works as a try-lock).
 */
const ACQUIRE_SLACK_MS = 750;

/**
 * Takes the group's start-stop lock, publishing how long the wait took. Bounded here too, so that an
 * adapter that ignores its `timeoutMs` cannot overrun the budget; a lease that arrives too late is
 * released at once.
 */
async function timedAcquire(
  coordinator: Coordinator,
  options: CompiledOptions,
  reason: 'shutdown' | 'resume',
  acquire: AcquireOptions,
): Promise<Lease> {
  const lock = lockName(options.group);
  const startedAt = now();
  let acquired = false;
  const acquiring = coordinator.acquire(lock, acquire);
  try {
    const lease = await bounded(
      acquiring,
      acquire.timeoutMs + ACQUIRE_SLACK_MS,
      () => new LockTimeoutError(`The coordinator did not answer an acquire of "${lock}" within its timeout`),
      acquire.signal,
    );
    acquired = true;
    return lease;
  } catch (error) {
    acquiring.then(
      (late) => late.release().catch(() => {}),
      () => {},
    );
    throw error;
  } finally {
    publish('lockWait', () => ({
      group: options.group,
      memberId: options.memberId,
      lock,
      waitMs: now() - startedAt,
      acquired,
      reason,
    }));
  }
}

/**
 * Whether a lease can no longer be written under: its signal aborted, or its local deadline passed
 * already (a stalled event loop can run code past the deadline before the lease's own timer fires).
 */
function lost(lease: Lease): boolean {
  return lease.signal.aborted || now() >= lease.deadline;
}

function leaseLostReason(lease: Lease): unknown {
  return lease.signal.aborted
    ? lease.signal.reason
    : new LockLostError(`The lease on "${lease.name}" passed its local deadline before the next write`);
}

/** A member seems dead when it has missed a heartbeat: less than half its TTL left. */
function nearExpiry(member: MemberInfo, fallbackTtlMs: number): boolean {
  if (member.expiresInMs === undefined) return false;
  return member.expiresInMs < (member.ttlMs ?? fallbackTtlMs) / 2;
}

/**
 * Shutdown half of the protocol: leave (confirmed) -> lock -> list members, waiting out near-expiry
 * ones while the budget allows -> if none is left, park page by page under the lease -> release.
 */
export async function handOffAtShutdown(ctx: ShutdownContext): Promise<HandOffResult> {
  const { options, coordinator, record, signal, budgetEnd } = ctx;
  let unreachable: Unreachable | undefined;
  let lease: Lease | undefined;
  const nothing = (decision: HandOffDecision, token?: bigint): HandOffResult => ({
    decision,
    lastMember: undefined,
    parked: 0,
    stillPausing: 0,
    token,
  });

  /** Runs one phase: its value, or why not (`forced`, `timeout`, `lease-lost`, or unreachable). */
  const step = async <T>(
    name: PhaseName,
    run: () => Promise<T>,
  ): Promise<{ value: T } | 'forced' | 'timeout' | 'lease-lost' | Unreachable> => {
    const startedAt = now();
    try {
      const value = await run();
      record.phase(name, startedAt, 'ok');
      return { value };
    } catch (error) {
      record.error(name, error);
      if (signal.aborted) {
        record.phase(name, startedAt, 'forced');
        return 'forced';
      }
      if (error instanceof DrainTimeoutError || error instanceof LockTimeoutError) {
        record.phase(name, startedAt, 'timeout');
        return 'timeout';
      }
      record.phase(name, startedAt, 'error');
      return error instanceof LockLostError ? 'lease-lost' : new Unreachable(error);
    }
  };

  const membership = ctx.membership;
  if (membership !== undefined) {
    // A failed leave is recorded; the members list still decides, and this member filters itself
    // out. A quarter of what is left at most, so a hung leave cannot starve the lock and the park.
    await step('leave', () =>
      bounded(membership.leave(), remaining(budgetEnd) / 4, budgetError('leaving'), signal),
    );
  }

  // The lock wait takes at most half of what is left, so that parking keeps the other half.
  const acquired = await step('lock', () =>
    timedAcquire(coordinator, options, 'shutdown', {
      ttlMs: options.lockTtlMs,
      timeoutMs: remaining(budgetEnd) / 2,
      signal,
    }),
  );
  if (acquired instanceof Unreachable) unreachable = acquired;
  else if (typeof acquired === 'string') return nothing(acquired === 'timeout' ? 'lock-timeout' : 'aborted');
  else lease = acquired.value;

  // A coordinator without fencing hands out tokens the store must not trust.
  const token = coordinator.capabilities.fencing === 'none' ? undefined : lease?.token;
  try {
    if (unreachable === undefined && lease !== undefined) {
      const held = lease;
      const last = await step('members', () => isLast(ctx, held));
      if (last instanceof Unreachable) unreachable = last;
      else if (last === 'lease-lost') return nothing('lease-lost', token);
      else if (typeof last === 'string') return nothing('aborted', token);
      else if (!last.value) return { ...nothing('peers-remain', token), lastMember: false };
    }
    if (unreachable !== undefined) {
      log('coordinator unreachable at shutdown, policy %s', options.unreachablePolicy);
      if (options.unreachablePolicy === 'skip') {
        record.phase('park', now(), 'skipped');
        return nothing('unreachable-skipped');
      }
    }
    // Parking stops short of the budget's end so that releasing the lock still has time.
    const parkEnd = budgetEnd - Math.min(1_000, remaining(budgetEnd) / 10);
    const parked = await park(ctx, lease, token, parkEnd);
    return {
      decision: unreachable !== undefined ? 'unreachable-parked' : (parked.stopped ?? 'parked'),
      lastMember: unreachable === undefined ? true : undefined,
      parked: parked.parked,
      stillPausing: parked.stillPausing,
      token,
    };
  } finally {
    if (lease !== undefined) {
      const held = lease;
      await step('release', () => bounded(held.release(), remaining(budgetEnd), budgetError('releasing')));
    }
  }
}

/** Lists the other members; waits out those close to expiry while the budget allows. */
async function isLast(ctx: ShutdownContext, lease: Lease): Promise<boolean> {
  const { coordinator, options, budgetEnd } = ctx;
  const stop = AbortSignal.any([ctx.signal, lease.signal]);
  for (;;) {
    const members = await bounded(
      coordinator.members(options.group),
      remaining(budgetEnd),
      budgetError('listing members'),
      stop,
    );
    // Only this member's own incarnation is itself (its leave may have failed); another process
    // under the same id is a peer.
    const own = ctx.membership?.incarnation;
    const others = members.filter((m) => !(m.memberId === options.memberId && m.incarnation === own));
    if (others.length === 0) return true;
    if (others.some((m) => !nearExpiry(m, options.memberTtlMs))) {
      log(
        'peers remain: %o',
        others.map((m) => m.memberId),
      );
      return false;
    }
    // Every other member has missed a heartbeat: wait until the last of them would expire, if the
    // budget still leaves room to park afterwards; otherwise count them as alive (never park over a peer).
    const wait = Math.max(...others.map((m) => m.expiresInMs ?? 0)) + 10;
    if (now() + wait > budgetEnd - remaining(budgetEnd) / 2) {
      log(
        'near-expiry peers cannot be waited out within the budget: %o',
        others.map((m) => m.memberId),
      );
      return false;
    }
    log(
      'waiting %d ms for near-expiry peers: %o',
      wait,
      others.map((m) => m.memberId),
    );
    await delay(wait, stop);
  }
}

async function park(
  ctx: ShutdownContext,
  lease: Lease | undefined,
  token: bigint | undefined,
  budgetEnd: number,
): Promise<{ parked: number; stillPausing: number; stopped?: HandOffDecision }> {
  const { store, options, record, signal } = ctx;
  const startedAt = now();
  const fence = { memberId: options.memberId, token };
  let parked = 0;
  let stillPausing = 0;
  let skipped = 0;
  let cursor: string | undefined;
  let stopped: HandOffDecision | undefined;
  try {
    for (;;) {
      if (lease !== undefined && lost(lease)) {
        record.error('park', leaseLostReason(lease));
        stopped = 'lease-lost';
        break;
      }
      if (signal.aborted || remaining(budgetEnd) === 0) {
        stopped = 'aborted';
        break;
      }
      const page = await bounded(
        store.listActive({ limit: options.batchSize, cursor }),
        remaining(budgetEnd),
        budgetError('listing active workflows'),
        signal,
      );
      if (page.items.length > 0) {
        // Checked again right before the write: the loop may have stalled past the deadline while
        // listing, before the lease's timer could run.
        if (lease !== undefined && lost(lease)) continue;
        const results = await bounded(
          store.park(page.items, fence),
          remaining(budgetEnd),
          budgetError('parking'),
          signal,
        );
        for (const r of results) {
          if (r.outcome === 'skipped') skipped++;
          else {
            parked++;
            if (r.outcome === 'pausing') stillPausing++;
          }
        }
        ctx.onPark({ parked, stillPausing, skipped, token: fence.token });
      }
      if (page.cursor === undefined) break;
      cursor = page.cursor;
    }
  } catch (error) {
    record.error('park', error);
    stopped = 'aborted';
  }
  record.phase(
    'park',
    startedAt,
    stopped === undefined ? 'ok' : stopped === 'lease-lost' ? 'error' : 'timeout',
  );
  log('parked %d (%d still pausing, %d skipped)', parked, stillPausing, skipped);
  return stopped === undefined ? { parked, stillPausing } : { parked, stillPausing, stopped };
}

/** What the background resume at start did. */
export interface ResumeReport {
  /** Workflows resumed. */
  readonly resumed: number;
  /** Marks cleared without resuming (a user cancelled, resumed or re-paused them meanwhile). */
  readonly skipped: number;
  /** Parked workflows still `pausing` when the resume ended (0 when it finished). */
  readonly stillPausing: number;
  /** How many rounds ran (each under the start-stop lock). */
  readonly rounds: number;
  /** Whether every parked workflow was handled. */
  readonly complete: boolean;
  /** Every error met on the way. */
  readonly errors: readonly unknown[];
}

/** Progress of a resume, emitted after every round. */
export type ResumeProgress = ResumeReport;

interface ResumeContext {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: WorkflowStore;
  /** Aborted when the shutdown begins. */
  readonly signal: AbortSignal;
  readonly onRound: (progress: ResumeProgress) => void;
}

/**
 * Start half of the protocol, run in the background: under the start-stop lock, unpark the parked
 * workflows that are paused; re-check those still pausing every interval until none is left or the
 * resume budget ends. The lock is released between rounds so a stopping member is never held up long.
 */
export async function resumeAtStart(ctx: ResumeContext): Promise<ResumeReport> {
  const { options, coordinator, store, signal } = ctx;
  const end = now() + options.resumeTimeoutMs;
  let resumed = 0;
  let skipped = 0;
  let stillPausing = 0;
  let rounds = 0;
  const errors: unknown[] = [];
  const snapshot = (complete: boolean): ResumeReport => ({
    resumed,
    skipped,
    stillPausing,
    rounds,
    complete,
    errors: [...errors],
  });
  while (!signal.aborted) {
    rounds++;
    let pending = 0;
    let failed = false;
    try {
      const lease = await timedAcquire(coordinator, options, 'resume', {
        ttlMs: options.lockTtlMs,
        timeoutMs: remaining(end),
        signal,
      });
      try {
        const token = coordinator.capabilities.fencing === 'none' ? undefined : lease.token;
        const fence = { memberId: options.memberId, token };
        // Every store call is bounded by the resume budget and stops at shutdown or on lease loss.
        const stop = AbortSignal.any([signal, lease.signal]);
        let cursor: string | undefined;
        do {
          stop.throwIfAborted();
          const page = await bounded(
            store.listParked({ limit: options.batchSize, cursor }),
            remaining(end),
            () => new DrainTimeoutError('The resume budget ran out while listing parked workflows'),
            stop,
          );
          const ready: string[] = [];
          for (const w of page.items) {
            if (w.state === 'pausing') pending++;
            else ready.push(w.id);
          }
          if (ready.length > 0) {
            stop.throwIfAborted();
            if (lost(lease)) throw leaseLostReason(lease);
            const results = await bounded(
              store.unpark(ready, fence),
              remaining(end),
              () => new DrainTimeoutError('The resume budget ran out while unparking'),
              stop,
            );
            for (const r of results) {
              if (r.outcome === 'resumed') resumed++;
              else skipped++;
            }
          }
          cursor = page.cursor;
        } while (cursor !== undefined);
      } finally {
        await lease.release().catch((error: unknown) => errors.push(error));
      }
    } catch (error) {
      if (signal.aborted) break;
      errors.push(error);
      failed = true;
      log('resume round %d failed: %O', rounds, error);
    }
    stillPausing = pending;
    const done = !failed && pending === 0;
    ctx.onRound(snapshot(done));
    if (done) return snapshot(true);
    if (now() + options.resumeIntervalMs >= end) break;
    try {
      await delay(options.resumeIntervalMs, signal);
    } catch {
      break;
    }
  }
  return snapshot(false);
}
