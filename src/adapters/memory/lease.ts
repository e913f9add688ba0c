import { LockLostError } from '../../errors.js';
import { type HoldContext, MemoryHold } from './hold.js';

/**
 * A lock held through a `MemoryCoordinator`. A `release()` with its `signal` aborted is given up: it
 * rejects with `signal.reason` and the lock expires with its TTL (a later `release()` frees it at once).
 * @internal
 */
export function memoryLease(ctx: HoldContext, name: string, owner: string, token: bigint, ttlMs: number) {
  const hold = new MemoryHold(ctx, {
    label: `lease "${name}" (token ${token})`,
    ttlMs,
    renew: (clock) => ctx.backend.renew(name, owner, ttlMs, clock),
    free: () => ctx.backend.release(name, owner),
    lostError: (message) => new LockLostError(`The lock "${name}" was lost: ${message}`),
    lossMessages: {
      expired: 'it was not renewed before its local deadline',
      gone: 'the backend no longer holds it for this lease',
    },
  });
  return { lease: hold.lease(name, token, (signal) => hold.give(signal)), hold };
}
