/**
 * Crash recovery, run at start before intake opens: under the start-stop lock, read the group's
 * generation record; if members it lists as running are dead (or a last member's park was cut short)
 * and no member that was running is alive, hand the workflows left running back to the host, fenced
 * and batched; then register this member as running. With a store that knows who drives what (the owner
 * capability), dead members are also evicted and their own workflows handed back while live peers run.
 * See docs/protocol.md, "After a crash" and "A peer crashes while the group runs".
 *
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, MemberInfo, Membership } from './coordinator.js';
import { DrainTimeoutError } from './errors.js';
import { call, leaseLostReason, lost, remaining, timedAcquire } from './internal/calls.js';
import { bounded, now } from './internal/time.js';
import { livePeers } from './members.js';
import type { CompiledOptions, RecoveryPolicy } from './options.js';
import { frozenReport, type RecoveryReport } from './report.js';
import type { Fence, GenerationMember, GenerationRecord, WorkflowStore } from './workflow-store.js';

const log = createDebug('graceful-drain:recovery');

/** A store that keeps a generation record and can hand stranded workflows back. */
export type RecoveryStore = WorkflowStore &
  Required<Pick<WorkflowStore, 'readGeneration' | 'enterGeneration' | 'leaveGeneration' | 'recover'>>;

/** Whether `store` keeps a generation record (all four methods, or none). */
export function canRecover(store: WorkflowStore): store is RecoveryStore {
  return (
    typeof store.readGeneration === 'function' &&
    typeof store.enterGeneration === 'function' &&
    typeof store.leaveGeneration === 'function' &&
    typeof store.recover === 'function'
  );
}

/** A store that can also tell who drives what, and evict a dead incarnation (the owner capability). */
export type OwnerStore = RecoveryStore & Required<Pick<WorkflowStore, 'listOwned' | 'evictMembers'>>;

/** Whether `store` can recover a crashed peer's workflows while the group runs. */
export function canRecoverOwned(store: WorkflowStore): store is OwnerStore {
  return (
    canRecover(store) && typeof store.listOwned === 'function' && typeof store.evictMembers === 'function'
  );
}

/** The report's name of a policy. */
export const policyOf = (recovery: RecoveryPolicy): RecoveryReport['policy'] =>
  typeof recovery === 'function' ? 'hook' : recovery;

/** What handing workflows back counted so far (updated as it goes, so a failure still reports progress). */
export interface HandBackCounts {
  found: number;
  recovered: number;
  failed: number;
  skipped: number;
  /** Recovered ones not resumed yet (the host was still pausing them, or the unpark failed). */
  readonly pausing: string[];
}

/** Runs one store call of a recovery, bounded by its budget and lease. */
export type RecoveryStep = <T>(what: string, run: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/**
 * Hands back the running workflows owned by `memberIds` (dead, evicted already), a page at a time, by the
 * policy: `resume` recovers each (counted, parked) and unparks at once those already paused; a hook gets
 * each counted batch; `report` only counts them. Under the caller's lease, fenced.
 */
export async function handBackOwned(
  ctx: {
    readonly store: OwnerStore;
    readonly options: CompiledOptions;
    readonly fence: Fence;
    readonly generation: number;
    readonly step: RecoveryStep;
    /**
     * The members alive now. Asked again before every page after the first: a member restarted under a
     * dead id whose start gate gave up on the busy lock drives what that id owns from then on, so the id
     * is dropped (its own gate, or a later check, recovers the rest).
     */
    readonly members?: () => Promise<readonly MemberInfo[]>;
  },
  memberIds: readonly string[],
  counts: HandBackCounts,
  /**
   * The ids a hook already took in an earlier, failed attempt at the same dead members (they stay running,
   * owned by the dead id, until the host re-drives them): skipped, and the ones the hook takes now added.
   */
  handed?: Set<string>,
): Promise<void> {
  const { store, options, fence, step } = ctx;
  const { recovery, maxRecoveries } = options;
  const policy = policyOf(recovery);
  const mode = policy === 'hook' ? 'count' : 'park';
  let owners = memberIds;
  if (owners.length === 0) return;
  let cursor: string | undefined;
  do {
    if (cursor !== undefined && ctx.members !== undefined) {
      const live = await ctx.members();
      const self = (l: MemberInfo) => l.memberId === fence.memberId && l.incarnation === fence.incarnation;
      owners = owners.filter((id) => !live.some((l) => l.memberId === id && !self(l)));
      if (owners.length === 0) return;
    }
    const ids = owners;
    const page = await step('listing owned workflows', (s) =>
      store.listOwned(ids, { limit: options.batchSize, cursor, signal: s }),
    );
    const items = handed === undefined ? page.items : page.items.filter((id) => !handed.has(id));
    counts.found += items.length;
    if (items.length > 0 && policy !== 'report') {
      const results = await step('recovering', (s) =>
        store.recover(items, fence, { mode, maxRecoveries, signal: s }),
      );
      const paused: string[] = [];
      const hooked: string[] = [];
      for (const r of results) {
        if (r.outcome === 'skipped') counts.skipped++;
        else if (r.outcome === 'failed') counts.failed++;
        else {
          counts.recovered++;
          if (r.outcome === 'paused') paused.push(r.id);
          else if (r.outcome === 'pausing') counts.pausing.push(r.id);
          else hooked.push(r.id);
        }
      }
      // Exactly the ones this call parked: a workflow parked otherwise is not touched here. Counted as
      // pausing until the unpark answers, so that a caller retries them if it fails.
      if (paused.length > 0) {
        counts.pausing.push(...paused);
        await step('unparking', (s) => store.unpark(paused, fence, { signal: s }));
        counts.pausing.splice(counts.pausing.length - paused.length, paused.length);
      }
      if (hooked.length > 0 && typeof recovery === 'function') {
        await step('running the recovery hook', (s) =>
          recovery(hooked, { signal: s, generation: ctx.generation }),
        );
        for (const id of hooked) handed?.add(id);
      }
    }
    cursor = page.cursor;
  } while (cursor !== undefined);
}

interface GateContext {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: RecoveryStore;
  readonly membership: Membership;
  /** Aborted when the shutdown begins. */
  readonly signal: AbortSignal;
  /**
   * Filled with the ids a recovery hook took from crashed peers, so that the peer check, which finishes a
   * `peer-crash` recovery the gate left incomplete, never hands them to the hook again.
   */
  readonly handed?: Set<string> | undefined;
}

/** Appended to its incarnation by a member that stops, before it leaves the group (see hand-off.ts). */
export const LEAVING = ':leaving';

const isLeaving = (m: GenerationMember): boolean => m.incarnation.endsWith(LEAVING);

const same = (a: GenerationMember, b: { memberId: string; incarnation: string }): boolean =>
  a.memberId === b.memberId && a.incarnation === b.incarnation;

/** A page the start gate handed back: how many it listed, and what became of them. */
interface HandedPage {
  readonly found: number;
  readonly results: readonly { readonly id: string; readonly outcome: string }[];
  readonly cursor: string | undefined;
}

const pageOf = (page: {
  readonly results: readonly { readonly id: string; readonly outcome: string }[];
  readonly cursor: string | undefined;
}): HandedPage => ({ found: page.results.length, results: page.results, cursor: page.cursor });

/**
 * The start gate. Resolves with what it found and did; never rejects (an error is in the report, and
 * this member is still registered, unfenced, so that a later crash of it is seen).
 */
export async function recoverAtStart(ctx: GateContext): Promise<RecoveryReport> {
  const { options, coordinator, store, membership, signal, handed } = ctx;
  const { group, memberId, recovery, maxRecoveries } = options;
  const policy = policyOf(recovery);
  const self: GenerationMember = { memberId, incarnation: membership.incarnation };
  const owners = canRecoverOwned(store) ? store : undefined;
  const end = now() + options.resumeTimeoutMs;
  const budget = (what: string) => () => new DrainTimeoutError(`The recovery budget ran out while ${what}`);
  const startedAt = now();
  let generation: number | undefined;
  let reason: RecoveryReport['reason'] = 'none';
  let dead: readonly GenerationMember[] = [];
  const counts: HandBackCounts = { found: 0, recovered: 0, failed: 0, skipped: 0, pausing: [] };
  let complete = true;
  let entered = false;
  const errors: unknown[] = [];

  try {
    // The lock wait is bounded like the join: start() never hangs on a deaf coordinator.
    const lease = await timedAcquire(coordinator, options, 'resume', {
      ttlMs: options.lockTtlMs,
      timeoutMs: Math.min(options.startTimeoutMs, remaining(end)),
      signal,
      end,
    });
    try {
      const token = coordinator.capabilities.fencing === 'none' ? undefined : lease.token;
      const fence: Fence = { memberId, token, incarnation: self.incarnation };
      const stop = AbortSignal.any([signal, lease.signal]);
      const step = <T>(what: string, run: (s: AbortSignal) => Promise<T>): Promise<T> => {
        if (lost(lease)) throw leaseLostReason(lease);
        return call(run, { end, onTimeout: budget(what), stop });
      };
      if (token !== undefined) await step('raising the fence', (s) => store.raiseFence(fence, { signal: s }));
      const record: GenerationRecord = await step('reading the generation record', (s) =>
        store.readGeneration(group, { signal: s }),
      );
      generation = record.generation;
      const peers = await livePeers({
        coordinator,
        options,
        incarnation: self.incarnation,
        end,
        signal: stop,
        what: 'recovery',
        // Only a registered runner can block recovery: a peer still in its start gate must not keep the
        // gate from waiting out a member that just died.
        matters: (m) => record.members.some((r) => r.memberId === m.memberId && !isLeaving(r)),
      });
      // A member that stops re-registers as leaving before it leaves the group: it drives nothing any
      // more, so it is never taken for a crashed one; but what it leaves running still needs a member.
      const stopping = record.members.filter((m) => isLeaving(m) && !same(m, self));
      dead = record.members.filter((m) => !isLeaving(m) && !same(m, self) && !peers.some((l) => same(m, l)));
      const runners = record.members.filter((m) => !isLeaving(m));
      const liveRunners = peers.filter((l) => runners.some((m) => m.memberId === l.memberId));
      if (dead.length === 0 && !record.dirty && stopping.length === 0) {
        reason = 'none';
      } else if (liveRunners.length > 0) {
        // Live members run the group: a stopping one is their business; a crashed one is reported, or,
        // with a store that knows who drives what, evicted and its own workflows handed back.
        log(
          'live peers remain (%o); dead: %o',
          liveRunners.map((l) => l.memberId),
          dead,
        );
        if (dead.length > 0 && owners === undefined) {
          reason = 'live-peers';
          complete = false;
        } else if (dead.length > 0 && owners !== undefined) {
          // A dead entry whose id a live peer holds may be that peer's earlier incarnation: what it owned
          // may be the peer's now, so it is left to that peer's own start gate. This member's own earlier
          // incarnation is recovered here: intake is not open yet, so nothing is driven under its id.
          dead = dead.filter((d) => !peers.some((l) => l.memberId === d.memberId));
          if (dead.length > 0) {
            reason = 'peer-crash';
            if (policy !== 'report')
              await step('evicting the dead members', (s) =>
                owners.evictMembers(group, dead, fence, { signal: s }),
              );
            const ids = dead.map((m) => m.memberId);
            const members = () => step('listing members', (s) => coordinator.members(group, { signal: s }));
            const ctx = { store: owners, options, fence, generation: record.generation, step, members };
            await handBackOwned(ctx, ids, counts, handed);
          }
        }
      } else {
        reason = dead.length > 0 ? 'crash' : 'incomplete-park';
        log('generation %d ended badly (%s): recovering by %s', generation, reason, policy);
        const mode = policy === 'hook' ? 'count' : 'park';
        // Only a crash counts towards maxRecoveries: a park cut short is not the workflows' doing (a
        // member that stops deregisters before it leaves the group, so it is never taken for dead).
        const counted = reason === 'crash';
        const limit = options.batchSize;
        /** The next page, listed and handed back: in one call when the store can (parkPage, recoverPage). */
        const handBack = async (cursor: string | undefined): Promise<HandedPage> => {
          if (policy !== 'report' && !counted && mode === 'park' && store.parkPage !== undefined) {
            const fused = store as Required<Pick<WorkflowStore, 'parkPage'>>;
            return pageOf(await step('parking', (s) => fused.parkPage(fence, { limit, cursor, signal: s })));
          }
          if (policy !== 'report' && counted && store.recoverPage !== undefined) {
            const fused = store as Required<Pick<WorkflowStore, 'recoverPage'>>;
            const page = await step('recovering', (s) =>
              fused.recoverPage(fence, { limit, cursor, mode, maxRecoveries, signal: s }),
            );
            return pageOf(page);
          }
          const page = await step('listing active workflows', (s) =>
            store.listActive({ limit, cursor, signal: s }),
          );
          if (page.items.length === 0 || policy === 'report')
            return { found: page.items.length, results: [], cursor: page.cursor };
          const results: readonly { id: string; outcome: string }[] = !counted
            ? mode === 'park'
              ? await step('parking', (s) => store.park(page.items, fence, { signal: s }))
              : page.items.map((id) => ({ id, outcome: 'counted' }))
            : await step('recovering', (s) =>
                store.recover(page.items, fence, { mode, maxRecoveries, signal: s }),
              );
          return { found: page.items.length, results, cursor: page.cursor };
        };
        let cursor: string | undefined;
        // Paged like the park; `recover` and `park` skip what is no longer running, so a page that shifts
        // under the cursor is caught by the next start at worst, never handed back twice.
        do {
          const page = await handBack(cursor);
          counts.found += page.found;
          if (page.results.length > 0) {
            const { results } = page;
            const handed: string[] = [];
            for (const r of results) {
              if (r.outcome === 'skipped') counts.skipped++;
              else if (r.outcome === 'failed') counts.failed++;
              else {
                counts.recovered++;
                if (r.outcome === 'counted') handed.push(r.id);
              }
            }
            if (handed.length > 0 && typeof recovery === 'function') {
              await step('running the recovery hook', (s) =>
                recovery(handed, { signal: s, generation: record.generation }),
              );
            }
          }
          cursor = page.cursor;
        } while (cursor !== undefined);
        if (policy !== 'report') {
          // 'clean' would reset the recovery counts, and a workflow that crashes every member that runs
          // it would never reach maxRecoveries: only a dirty record is ended that way.
          const close = record.dirty ? 'clean' : 'none';
          // With the owner capability the dead incarnations are evicted: a write one of them sends later
          // (it was only cut off, say) is rejected.
          if (owners !== undefined && dead.length > 0)
            await step('evicting the dead members', (s) =>
              owners.evictMembers(group, dead, fence, { signal: s }),
            );
          const deadIds = [...dead, ...stopping].map((m) => m.memberId);
          await step('closing the generation', (s) =>
            store.leaveGeneration(group, deadIds, close, fence, { signal: s }),
          );
        }
      }
      await step('registering this member', (s) => store.enterGeneration(group, self, fence, { signal: s }));
      entered = true;
    } finally {
      const releaseEnd = now() + options.lockTtlMs;
      let returned = false;
      const releasing = call((s) => lease.release({ signal: s }), {
        end: releaseEnd,
        onTimeout: budget('releasing the lock'),
      }).catch((error: unknown) => {
        if (returned) log('releasing the lock failed after the start gate returned: %O', error);
        else errors.push(error);
      });
      // A shutdown that cut the gate short waits for start() to return, within its own budget: it must not
      // wait on a release that does not answer. Past the abort the release goes on in the background,
      // still bounded by lockTtlMs (the shutdown's acquire waits for the lock as for any holder's).
      await bounded(releasing, remaining(releaseEnd), () => undefined, signal).catch(() => {});
      returned = true;
    }
  } catch (error) {
    complete = false;
    errors.push(error);
    log('recovery at start failed: %O', error);
  }
  if (!entered && !signal.aborted) {
    // Registered unfenced, so a later crash of this member is still seen by the next start.
    const unfenced: Fence = { memberId, token: undefined, incarnation: self.incarnation };
    await call((s) => store.enterGeneration(group, self, unfenced, { signal: s }), {
      end: Math.max(end, now() + options.lockTtlMs),
      onTimeout: budget('registering this member'),
      stop: signal,
    }).catch((error: unknown) => errors.push(error));
  }
  return frozenReport({
    policy,
    reason,
    generation,
    deadMembers: Object.freeze(dead.map((m) => m.memberId)),
    found: counts.found,
    recovered: counts.recovered,
    failed: counts.failed,
    skipped: counts.skipped,
    complete: complete && errors.length === 0,
    durationMs: now() - startedAt,
    errors: Object.freeze([...errors]),
  });
}
