/**
 * The start half of the last-member protocol, run in the background after `start()`: under the
 * start-stop lock, raise the store's fence, then unpark the parked workflows that are paused; re-check
 * those still pausing every interval until none is left or the resume budget ends.
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, Lease } from './coordinator.js';
import { DrainTimeoutError } from './errors.js';
import { call, type CallOptions, leaseLostReason, lost, remaining, timedAcquire } from './internal/calls.js';
import { delay, now } from './internal/time.js';
import type { CompiledOptions } from './options.js';
import { frozenReport, type RecoveryReport, type ResumeProgress, type ResumeReport } from './report.js';
import type { StoreWarning, WorkflowStore } from './workflow-store.js';

const log = createDebug('graceful-drain:resume');

interface ResumeContext {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: WorkflowStore;
  /** This member's incarnation, written into every fence. */
  readonly incarnation: string | undefined;
  /** Aborted when the shutdown begins. */
  readonly signal: AbortSignal;
  /** The lease held, which a shutdown that cannot wait for the resume takes over (then sets undefined). */
  readonly slot: { lease: Lease | undefined };
  /** What the store's diagnosis found. */
  readonly warnings: readonly StoreWarning[];
  readonly recovery: RecoveryReport | undefined;
  readonly onRound: (progress: ResumeProgress) => void;
}

/**
 * Runs the resume rounds, releasing the lock between rounds so a stopping member is never held up long.
 * Store writes are not abandoned at shutdown: the store is told through its signal and answers at once,
 * so a batch it committed is still counted.
 */
export async function resumeAtStart(ctx: ResumeContext): Promise<ResumeReport> {
  const { options, coordinator, store, signal, slot, warnings } = ctx;
  const end = now() + options.resumeTimeoutMs;
  const count = { resumed: 0, skipped: 0, stillPausing: 0, rounds: 0 };
  const errors: unknown[] = [];
  const snapshot = (complete: boolean): ResumeReport =>
    frozenReport({
      ...count,
      complete,
      warnings,
      recovery: ctx.recovery,
      errors: Object.freeze([...errors]),
    });
  const within = (what: string, more: Partial<CallOptions>): CallOptions => ({
    end,
    onTimeout: () => new DrainTimeoutError(`The resume budget ran out while ${what}`),
    ...more,
  });
  while (!signal.aborted) {
    count.rounds++;
    let pending = 0;
    let failed = false;
    try {
      const lease = await timedAcquire(coordinator, options, 'resume', {
        ttlMs: options.lockTtlMs,
        timeoutMs: remaining(end),
        signal,
        end,
      });
      slot.lease = lease;
      try {
        const token = coordinator.capabilities.fencing === 'none' ? undefined : lease.token;
        const fence = { memberId: options.memberId, token, incarnation: ctx.incarnation };
        const stop = AbortSignal.any([signal, lease.signal]);
        // The fence goes up before the first read, even when nothing turns out to be parked.
        if (token !== undefined) {
          await call((s) => store.raiseFence(fence, { signal: s }), within('raising the fence', { stop }));
        }
        let cursor: string | undefined;
        do {
          if (store.unparkPage !== undefined) {
            // Listed and unparked in one call: a write, so it is checked and awaited as unpark is.
            const fused = store as Required<Pick<WorkflowStore, 'unparkPage'>>;
            stop.throwIfAborted();
            if (lost(lease)) throw leaseLostReason(lease);
            const page = await call(
              (s) => fused.unparkPage(fence, { limit: options.batchSize, cursor, signal: s }),
              within('unparking', { cancel: stop }),
            );
            pending += page.pausing;
            for (const r of page.results) {
              if (r.outcome === 'resumed') count.resumed++;
              else count.skipped++;
            }
            cursor = page.cursor;
            continue;
          }
          const page = await call(
            (s) => store.listParked({ limit: options.batchSize, cursor, signal: s }),
            within('listing parked workflows', { stop }),
          );
          const ready: string[] = [];
          for (const w of page.items) {
            if (w.state === 'pausing') pending++;
            else ready.push(w.id);
          }
          if (ready.length > 0) {
            stop.throwIfAborted();
            if (lost(lease)) throw leaseLostReason(lease);
            const results = await call(
              (s) => store.unpark(ready, fence, { signal: s }),
              within('unparking', { cancel: stop }),
            );
            for (const r of results) {
              if (r.outcome === 'resumed') count.resumed++;
              else count.skipped++;
            }
          }
          cursor = page.cursor;
        } while (cursor !== undefined);
      } finally {
        // Unless the shutdown took it over.
        if (slot.lease === lease) {
          slot.lease = undefined;
          const more = { end: now() + options.lockTtlMs };
          await call((s) => lease.release({ signal: s }), within('releasing the lock', more)).catch(
            (error: unknown) => errors.push(error),
          );
        }
      }
    } catch (error) {
      if (signal.aborted) break;
      errors.push(error);
      failed = true;
      log('resume round %d failed: %O', count.rounds, error);
    }
    count.stillPausing = pending;
    const done = !failed && pending === 0;
    ctx.onRound(snapshot(done));
    if (done) return snapshot(true);
    if (now() + options.resumeIntervalMs >= end) break;
    await delay(options.resumeIntervalMs, signal).catch(() => {}); // an abort ends the loop
  }
  return snapshot(false);
}
