/**
 * The shutdown half of the last-member protocol: leave (confirmed), lock, list the members (waiting out
 * near-expiry ones while the budget allows), and if none is left, raise the store's fence, park page by
 * page under the lease, sweep for stragglers, release. See docs/protocol.md.
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, Lease, MemberInfo, Membership } from './coordinator.js';
import {
  DrainTimeoutError,
  EvictedMemberError,
  LockLostError,
  LockTimeoutError,
  StaleTokenError,
} from './errors.js';
import { call, leaseLostReason, lost, remaining, retrying, timedAcquire } from './internal/calls.js';
import { now } from './internal/time.js';
import { livePeers } from './members.js';
import { canRecover, LEAVING } from './recovery.js';
import type { CompiledOptions } from './options.js';
import type { HandOffDecision, HandOffResult, ParkProgress, PhaseName, Recorder } from './report.js';
import type { Fence, ParkPage, WorkflowStore } from './workflow-store.js';

const log = createDebug('graceful-drain:hand-off');

/** A hand-off that parked nothing. */
export function noHandOff(handOff: HandOffDecision, token?: bigint): HandOffResult {
  return { lastMember: undefined, handOff, parked: 0, stillPausing: 0, token };
}

interface ShutdownContext {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: WorkflowStore;
  readonly membership: Membership | undefined;
  /** The background resume's start-stop lease, taken over instead of acquiring one. */
  readonly inherited: Lease | undefined;
  readonly budgetEnd: number;
  /** Aborted when the shutdown is forced. */
  readonly signal: AbortSignal;
  readonly record: Recorder;
  readonly onPark: (progress: ParkProgress) => void;
}

function budgetError(what: string): () => DrainTimeoutError {
  return () => new DrainTimeoutError(`The shutdown budget ran out while ${what}`);
}

/** How many passes over the active workflows a park makes after its first, at most. */
const MAX_SWEEPS = 3;

type ParkStop = 'lease-lost' | 'aborted' | 'error';

/**
 * Never waits past `budgetEnd`: every call is bounded by it, and its adapter told to give up then. A store
 * that rejects this member's writes with `EvictedMemberError` (a live member took it for crashed and
 * recovered its workflows) makes the hand-off `evicted`: it parks nothing.
 */
export async function handOffAtShutdown(ctx: ShutdownContext): Promise<HandOffResult> {
  let evicted = false;
  const record: Recorder = {
    phase: (name, startedAt, outcome) => ctx.record.phase(name, startedAt, outcome),
    error: (phase, error) => {
      if (error instanceof EvictedMemberError) evicted = true;
      ctx.record.error(phase, error);
    },
  };
  const result = await handOff({ ...ctx, record }, () => evicted);
  if (evicted && result.handOff !== 'evicted') log('the store rejected this member as evicted');
  return evicted ? { ...result, handOff: 'evicted' } : result;
}

async function handOff(ctx: ShutdownContext, evicted: () => boolean): Promise<HandOffResult> {
  const { options, coordinator, record, signal, budgetEnd } = ctx;
  let unreachable = false;
  let lease: Lease | undefined;

  /** Runs one phase: its value, or why not. */
  const step = async <T>(
    name: PhaseName,
    run: () => Promise<T>,
  ): Promise<{ value: T } | 'forced' | 'timeout' | 'lease-lost' | 'unreachable'> => {
    const startedAt = now();
    try {
      const value = await run();
      record.phase(name, startedAt, 'ok');
      return { value };
    } catch (error) {
      record.error(name, error);
      const timedOut = error instanceof DrainTimeoutError || error instanceof LockTimeoutError;
      const outcome = signal.aborted ? 'forced' : timedOut ? 'timeout' : 'error';
      record.phase(name, startedAt, outcome);
      if (outcome !== 'error') return outcome;
      return error instanceof LockLostError ? 'lease-lost' : 'unreachable';
    }
  };

  const membership = ctx.membership;
  if (membership !== undefined) {
    await markLeaving(ctx, membership, now() + remaining(budgetEnd) / 8);
    // A failed leave is recorded; the members list still decides (this member filters itself out). A
    // quarter of what is left at most, so a hung leave cannot starve the lock and the park.
    const end = now() + remaining(budgetEnd) / 4;
    await step('leave', () =>
      call((s) => membership.leave({ signal: s }), { end, onTimeout: budgetError('leaving'), stop: signal }),
    );
    // Evicted: its workflows are another member's now, and the store would reject every write anyway.
    if (evicted()) return noHandOff('evicted');
  }

  if (ctx.inherited !== undefined) {
    // The background resume still held the lock when the shutdown could wait no longer for it.
    lease = ctx.inherited;
    record.phase('lock', now(), 'ok');
    log('took the start-stop lease over from the background resume (token %s)', lease.token);
  } else {
    // The lock wait takes at most half of what is left, so that parking keeps the other half.
    const acquired = await step('lock', () =>
      timedAcquire(coordinator, options, 'shutdown', {
        ttlMs: options.lockTtlMs,
        timeoutMs: remaining(budgetEnd) / 2,
        signal,
        end: budgetEnd,
      }),
    );
    if (acquired === 'unreachable') unreachable = true;
    else if (typeof acquired === 'string')
      return noHandOff(acquired === 'timeout' ? 'lock-timeout' : 'aborted');
    else lease = acquired.value;
  }

  // A coordinator without fencing hands out tokens the store must not trust.
  const token = coordinator.capabilities.fencing === 'none' ? undefined : lease?.token;
  try {
    if (!unreachable && lease !== undefined) {
      const held = lease;
      const last = await step('members', () => remainingPeers(ctx, held));
      if (last === 'unreachable') unreachable = true;
      else if (last === 'lease-lost') return noHandOff('lease-lost', token);
      else if (typeof last === 'string') return noHandOff('aborted', token);
      else if (last.value.length > 0) {
        await markGeneration(ctx, held, token, 'none', last.value);
        return { ...noHandOff('peers-remain', token), lastMember: false };
      }
    }
    if (unreachable) {
      log('coordinator unreachable at shutdown, policy %s', options.unreachablePolicy);
      if (options.unreachablePolicy === 'skip') {
        record.phase('park', now(), 'skipped');
        return noHandOff('unreachable-skipped');
      }
    }
    // Parking stops short of the budget's end so that releasing the lock still has time.
    const parkEnd = budgetEnd - Math.min(1_000, remaining(budgetEnd) / 10);
    // Unreachable, other members may be alive: the record is left as the deregistration wrote it.
    if (!unreachable) await markGeneration(ctx, lease, token, 'dirty');
    const { parked, stillPausing, stopped, settled } = await park(ctx, lease, token, parkEnd);
    if (!unreachable && stopped === undefined && settled) await markGeneration(ctx, lease, token, 'clean');
    return {
      lastMember: unreachable ? undefined : true,
      handOff: stopped ?? (unreachable ? 'unreachable-parked' : 'parked'),
      parked,
      stillPausing,
      token,
    };
  } finally {
    if (lease !== undefined) {
      const held = lease;
      await step('release', () =>
        call((s) => held.release({ signal: s }), { end: budgetEnd, onTimeout: budgetError('releasing') }),
      );
    }
  }
}

/** This member's fence: its id, the token, its incarnation (a store that evicted it rejects the write). */
function fenceOf(ctx: ShutdownContext, token: bigint | undefined): Fence {
  return { memberId: ctx.options.memberId, token, incarnation: ctx.membership?.incarnation };
}

/** The other members alive (none: this member is last); near-expiry ones are waited out while the budget allows. */
async function remainingPeers(ctx: ShutdownContext, lease: Lease): Promise<readonly MemberInfo[]> {
  const { coordinator, options, budgetEnd } = ctx;
  const signal = AbortSignal.any([ctx.signal, lease.signal]);
  const incarnation = ctx.membership?.incarnation;
  const peers = await livePeers({
    coordinator,
    options,
    incarnation,
    end: budgetEnd,
    signal,
    what: 'shutdown',
  });
  if (peers.length > 0)
    log(
      'peers remain: %o',
      peers.map((m) => m.memberId),
    );
  return peers;
}

/**
 * Before leaving the group, this member re-registers as leaving (its incarnation with {@link LEAVING}
 * appended): its drain is over, it drives nothing, so a start gate never takes it for a crashed member
 * (which would count towards `maxRecoveries`); yet if it dies before its hand-off ends, the next lonely
 * start still recovers what it left running. Unfenced: no lock is held yet.
 */
async function markLeaving(ctx: ShutdownContext, membership: Membership, end: number): Promise<void> {
  const { store, options, record, signal } = ctx;
  if (!canRecover(store)) return;
  const startedAt = now();
  const self = { memberId: options.memberId, incarnation: membership.incarnation + LEAVING };
  const fence: Fence = { memberId: options.memberId, token: undefined, incarnation: membership.incarnation };
  try {
    await call((s) => store.enterGeneration(options.group, self, fence, { signal: s }), {
      end,
      onTimeout: budgetError('marking this member as leaving'),
      stop: signal,
    });
    record.phase('generation', startedAt, 'ok');
  } catch (error) {
    record.error('generation', error);
    record.phase('generation', startedAt, signal.aborted ? 'forced' : 'error');
  }
}

/**
 * Under the lease, fenced, as the last member: `dirty` before it parks (a crash mid-park leaves the record
 * dirty); `clean` once the park completed, removing the registered members that are not alive (its park
 * covered their workflows). A write the fence rejects changes nothing: the next lonely start finishes.
 */
async function markGeneration(
  ctx: ShutdownContext,
  lease: Lease | undefined,
  token: bigint | undefined,
  end: 'none' | 'dirty' | 'clean',
  peers: readonly MemberInfo[] = [],
): Promise<void> {
  const { store, options, record, signal, budgetEnd } = ctx;
  if (!canRecover(store) || (lease !== undefined && lost(lease))) return;
  const startedAt = now();
  const fence = fenceOf(ctx, token);
  const bound = { end: budgetEnd, onTimeout: budgetError('recording the generation'), stop: signal };
  try {
    const ids = [options.memberId];
    if (end !== 'dirty') {
      const seen = await call((s) => store.readGeneration(options.group, { signal: s }), bound);
      const runner = (p: MemberInfo) =>
        seen.members.some((m) => m.memberId === p.memberId && !m.incarnation.endsWith(LEAVING));
      if (end === 'none' && !peers.some(runner)) {
        // Every remaining peer is still in its start gate: if it dies before it registers, the record
        // must still say that workflows may be left running.
        log('no remaining peer is registered yet: leaving the generation dirty for their start gate');
        end = 'dirty';
      } else if (end === 'clean') {
        // The dead ones only: a member that joined since the members check may have registered already.
        const live = await call((s) => ctx.coordinator.members(options.group, { signal: s }), bound);
        for (const m of seen.members) {
          if (!live.some((l) => l.memberId === m.memberId && l.incarnation === m.incarnation))
            ids.push(m.memberId);
        }
      }
    }
    await call((s) => store.leaveGeneration(options.group, ids, end, fence, { signal: s }), bound);
    record.phase('generation', startedAt, 'ok');
  } catch (error) {
    record.error('generation', error);
    record.phase('generation', startedAt, signal.aborted ? 'forced' : 'error');
  }
}

/**
 * Parks every active workflow: the fence first, then page by page, then sweeps from the start for
 * workflows that became active below the cursor meanwhile. Each call is retried with backoff while the
 * budget allows; the lease is checked before every write.
 */
async function park(
  ctx: ShutdownContext,
  lease: Lease | undefined,
  token: bigint | undefined,
  end: number,
): Promise<{ parked: number; stillPausing: number; stopped: ParkStop | undefined; settled: boolean }> {
  const { store, options, record, signal } = ctx;
  const startedAt = now();
  const fence = fenceOf(ctx, token);
  const stop = lease === undefined ? signal : AbortSignal.any([signal, lease.signal]);
  let parked = 0;
  let stillPausing = 0;
  let skipped = 0;
  let stopped: ParkStop | undefined;
  let settled = false;
  let outcome: 'ok' | 'forced' | 'timeout' | 'error' = 'ok';

  // A lease lost during a call tells the store to give up, but its answer is awaited: a batch it
  // committed meanwhile is counted. Forcing the shutdown stops the wait at once.
  const attempt = <T>(what: string, run: (s: AbortSignal) => Promise<T>): Promise<T> =>
    retrying(
      () => {
        if (lease !== undefined && lost(lease)) throw leaseLostReason(lease);
        return call(run, { end, onTimeout: budgetError(what), stop: signal, cancel: lease?.signal });
      },
      { end, stop, onFailure: (error) => record.error('park', error) },
    );

  /** The next page's results: listed and parked in one call when the store can (`parkPage`). */
  const parkPage = async (cursor: string | undefined): Promise<ParkPage> => {
    if (store.parkPage !== undefined) {
      const fused = store as Required<Pick<WorkflowStore, 'parkPage'>>;
      return attempt('parking', (s) =>
        fused.parkPage(fence, { limit: options.batchSize, cursor, signal: s }),
      );
    }
    const page = await attempt('listing active workflows', (s) =>
      store.listActive({ limit: options.batchSize, cursor, signal: s }),
    );
    if (page.items.length === 0) return { results: [], cursor: page.cursor };
    const results = await attempt('parking', (s) => store.park(page.items, fence, { signal: s }));
    return { results, cursor: page.cursor };
  };

  /** One pass from the first page to the last; returns how many it found active. */
  const pass = async (): Promise<number> => {
    let found = 0;
    let cursor: string | undefined;
    do {
      const page = await parkPage(cursor);
      const results = page.results;
      found += results.length;
      if (results.length > 0) {
        for (const r of results) {
          if (r.outcome === 'skipped') skipped++;
          else {
            parked++;
            if (r.outcome === 'pausing') stillPausing++;
          }
        }
        ctx.onPark({ parked, stillPausing, skipped, token: fence.token });
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    return found;
  };

  try {
    // The fence goes up before the first read: a write sent under an older token lands rejected.
    if (token !== undefined)
      await attempt('raising the fence', (s) => store.raiseFence(fence, { signal: s }));
    // Settled when a pass finds nothing active: workflows that became active below the cursor are caught.
    for (let sweep = 0; !settled && sweep <= MAX_SWEEPS; sweep++) settled = (await pass()) === 0;
  } catch (error) {
    record.error('park', error);
    const expired = lease !== undefined && lost(lease);
    const leaseLost = expired || error instanceof LockLostError || error instanceof StaleTokenError;
    const timedOut = !leaseLost && error instanceof DrainTimeoutError;
    stopped = signal.aborted || timedOut ? 'aborted' : leaseLost ? 'lease-lost' : 'error';
    outcome = signal.aborted ? 'forced' : timedOut ? 'timeout' : 'error';
  }
  record.phase('park', startedAt, outcome);
  log('parked %d (%d still pausing, %d skipped), %s', parked, stillPausing, skipped, stopped ?? 'done');
  return { parked, stillPausing, stopped, settled };
}
