/**
 * Crash recovery, run at start before intake opens: under the start-stop lock, read the group's
 * generation record; if members it lists as running are dead (or a last member's park was cut short)
 * and no member that was running is alive, hand the workflows left running back to the host, fenced
 * and batched; then register this member as running. See docs/protocol.md, "After a crash".
 *
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, Membership } from './coordinator.js';
import { DrainTimeoutError } from './errors.js';
import { call, leaseLostReason, lost, remaining, timedAcquire } from './internal/calls.js';
import { now } from './internal/time.js';
import { livePeers } from './members.js';
import type { CompiledOptions } from './options.js';
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

interface GateContext {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: RecoveryStore;
  readonly membership: Membership;
  /** Aborted when the shutdown begins. */
  readonly signal: AbortSignal;
}

/** Appended to its incarnation by a member that stops, before it leaves the group (see hand-off.ts). */
export const LEAVING = ':leaving';

const isLeaving = (m: GenerationMember): boolean => m.incarnation.endsWith(LEAVING);

const same = (a: GenerationMember, b: { memberId: string; incarnation: string }): boolean =>
  a.memberId === b.memberId && a.incarnation === b.incarnation;

/**
 * The start gate. Resolves with what it found and did; never rejects (an error is in the report, and
 * this member is still registered, unfenced, so that a later crash of it is seen).
 */
export async function recoverAtStart(ctx: GateContext): Promise<RecoveryReport> {
  const { options, coordinator, store, membership, signal } = ctx;
  const { group, memberId, recovery, maxRecoveries } = options;
  const policy = typeof recovery === 'function' ? 'hook' : recovery;
  const self: GenerationMember = { memberId, incarnation: membership.incarnation };
  const end = now() + options.resumeTimeoutMs;
  const budget = (what: string) => () => new DrainTimeoutError(`The recovery budget ran out while ${what}`);
  const startedAt = now();
  let generation: number | undefined;
  let reason: RecoveryReport['reason'] = 'none';
  let dead: readonly GenerationMember[] = [];
  let found = 0;
  let recovered = 0;
  let failed = 0;
  let skipped = 0;
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
      const fence: Fence = { memberId, token };
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
        // Live members run the group: a stopping one is their business; a crashed one is reported.
        if (dead.length > 0) {
          reason = 'live-peers';
          complete = false;
        }
        log(
          'live peers remain (%o); dead: %o',
          liveRunners.map((l) => l.memberId),
          dead,
        );
      } else {
        reason = dead.length > 0 ? 'crash' : 'incomplete-park';
        log('generation %d ended badly (%s): recovering by %s', generation, reason, policy);
        const mode = policy === 'hook' ? 'count' : 'park';
        // Only a crash counts towards maxRecoveries: a park cut short is not the workflows' doing (a
        // member that stops deregisters before it leaves the group, so it is never taken for dead).
        const counted = reason === 'crash';
        let cursor: string | undefined;
        // Paged like the park; `recover` and `park` skip what is no longer running, so a page that shifts
        // under the cursor is caught by the next start at worst, never handed back twice.
        do {
          const page = await step('listing active workflows', (s) =>
            store.listActive({ limit: options.batchSize, cursor, signal: s }),
          );
          found += page.items.length;
          if (page.items.length > 0 && policy !== 'report') {
            const results: readonly { id: string; outcome: string }[] = !counted
              ? mode === 'park'
                ? await step('parking', (s) => store.park(page.items, fence, { signal: s }))
                : page.items.map((id) => ({ id, outcome: 'counted' }))
              : await step('recovering', (s) =>
                  store.recover(page.items, fence, { mode, maxRecoveries, signal: s }),
                );
            const handed: string[] = [];
            for (const r of results) {
              if (r.outcome === 'skipped') skipped++;
              else if (r.outcome === 'failed') failed++;
              else {
                recovered++;
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
          const deadIds = [...dead, ...stopping].map((m) => m.memberId);
          await step('closing the generation', (s) =>
            store.leaveGeneration(group, deadIds, close, fence, { signal: s }),
          );
        }
      }
      await step('registering this member', (s) => store.enterGeneration(group, self, fence, { signal: s }));
      entered = true;
    } finally {
      await call((s) => lease.release({ signal: s }), {
        end: now() + options.lockTtlMs,
        onTimeout: budget('releasing the lock'),
      }).catch((error: unknown) => errors.push(error));
    }
  } catch (error) {
    complete = false;
    errors.push(error);
    log('recovery at start failed: %O', error);
  }
  if (!entered && !signal.aborted) {
    // Registered unfenced, so a later crash of this member is still seen by the next start.
    await call((s) => store.enterGeneration(group, self, { memberId, token: undefined }, { signal: s }), {
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
    found,
    recovered,
    failed,
    skipped,
    complete: complete && errors.length === 0,
    durationMs: now() - startedAt,
    errors: Object.freeze([...errors]),
  });
}
