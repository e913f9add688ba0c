/**
 * The last-member protocol: parking at shutdown, resuming at start. Written against the Coordinator and
 * WorkflowStore contracts only; the controller supplies deadlines, signals and a place to record.
 *
 * @internal
 */
import createDebug from 'debug';
import type { AcquireOptions, Coordinator, Lease, MemberInfo, Membership } from './coordinator.js';
import { DrainTimeoutError, LockTimeoutError } from './errors.js';
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

/** Takes the group's start-stop lock, publishing how long the wait took. */
async function timedAcquire(
  coordinator: Coordinator,
  options: CompiledOptions,
  reason: 'shutdown' | 'resume',
  acquire: AcquireOptions,
): Promise<Lease> {
  const lock = lockName(options.group);
  const startedAt = now();
  let acquired = false;
  try {
    const lease = await coordinator.acquire(lock, acquire);
    acquired = true;
    return lease;
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

  const step = async <T>(name: PhaseName, run: () => Promise<T>): Promise<T | Unreachable | undefined> => {
    const startedAt = now();
    try {
      const value = await run();
      record.phase(name, startedAt, 'ok');
      return value;
    } catch (error) {
      record.error(name, error);
      if (signal.aborted) {
        record.phase(name, startedAt, 'forced');
        return undefined;
      }
      if (error instanceof DrainTimeoutError || error instanceof LockTimeoutError) {
        record.phase(name, startedAt, 'timeout');
        return undefined;
      }
      record.phase(name, startedAt, 'error');
      return new Unreachable(error);
    }
  };

  const membership = ctx.membership;
  if (membership !== undefined) {
    // A failed leave is recorded; the members list still decides, and this member filters itself out.
    await step('leave', () =>
      bounded(membership.leave(), remaining(budgetEnd), budgetError('leaving'), signal),
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
  else if (acquired === undefined) {
    return {
      decision: signal.aborted ? 'aborted' : 'lock-timeout',
      lastMember: undefined,
      parked: 0,
      stillPausing: 0,
      token: undefined,
    };
  } else lease = acquired;

  try {
    if (unreachable === undefined && lease !== undefined) {
      const held = lease;
      const last = await step('members', () => isLast(ctx, held));
      if (last instanceof Unreachable) unreachable = last;
      else if (last === undefined) {
        return { decision: 'aborted', lastMember: undefined, parked: 0, stillPausing: 0, token: lease.token };
      } else if (!last) {
        return {
          decision: 'peers-remain',
          lastMember: false,
          parked: 0,
          stillPausing: 0,
          token: lease.token,
        };
      }
    }
    if (unreachable !== undefined) {
      log('coordinator unreachable at shutdown, policy %s', options.unreachablePolicy);
      if (options.unreachablePolicy === 'skip') {
        record.phase('park', now(), 'skipped');
        return {
          decision: 'unreachable-skipped',
          lastMember: undefined,
          parked: 0,
          stillPausing: 0,
          token: undefined,
        };
      }
    }
    const parked = await park(ctx, lease);
    const decision: HandOffDecision =
      unreachable !== undefined ? 'unreachable-parked' : (parked.stopped ?? 'parked');
    return {
      decision,
      lastMember: unreachable === undefined ? true : undefined,
      parked: parked.parked,
      stillPausing: parked.stillPausing,
      token: lease?.token,
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
    const others = members.filter((m) => m.memberId !== options.memberId);
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
): Promise<{ parked: number; stillPausing: number; stopped?: HandOffDecision }> {
  const { store, options, record, signal, budgetEnd } = ctx;
  const startedAt = now();
  const fence = { memberId: options.memberId, token: lease?.token };
  let parked = 0;
  let stillPausing = 0;
  let skipped = 0;
  let cursor: string | undefined;
  let stopped: HandOffDecision | undefined;
  try {
    for (;;) {
      if (lease?.signal.aborted) {
        record.error('park', lease.signal.reason);
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
        if (lease?.signal.aborted) continue;
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
        const fence = { memberId: options.memberId, token: lease.token };
        let cursor: string | undefined;
        do {
          if (lease.signal.aborted) throw lease.signal.reason;
          const page = await store.listParked({ limit: options.batchSize, cursor });
          const ready: string[] = [];
          for (const w of page.items) {
            if (w.state === 'pausing') pending++;
            else ready.push(w.id);
          }
          if (ready.length > 0) {
            if (lease.signal.aborted) throw lease.signal.reason;
            for (const r of await store.unpark(ready, fence)) {
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
