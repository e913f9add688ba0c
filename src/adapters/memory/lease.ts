import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { leaseOf } from '../../internal/handles.js';
import { type HoldContext, MemoryHold } from './hold.js';

/**
 * A lock held through a `MemoryCoordinator`: renewed every `ttlMs / 3` until released or lost. A
 * `release()` with a `signal` already aborted is given up: it rejects with `signal.reason`, frees
 * nothing, and stops the renewals, so the lock expires with its TTL (a later `release()` frees it at
 * once). The signal is not aborted by a release: nothing was lost.
 *
 * @internal
 */
export function memoryLease(
  ctx: HoldContext,
  name: string,
  owner: string,
  token: bigint,
  ttlMs: number,
): { readonly lease: Lease; readonly hold: MemoryHold } {
  const hold = new MemoryHold(ctx, {
    label: `lease "${name}" (token ${token})`,
    ttlMs,
    renew: (clock) => ctx.backend.renew(name, owner, ttlMs, clock) !== undefined,
    free: () => ctx.backend.release(name, owner),
    lostError: (message) => new LockLostError(`The lock "${name}" was lost: ${message}`),
    lossMessages: {
      expired: 'it was not renewed before its local deadline',
      gone: 'the backend no longer holds it for this lease',
    },
  });
  return { lease: leaseOf(name, token, hold, (signal) => hold.give(signal)), hold };
}
