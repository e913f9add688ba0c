import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { now } from '../../internal/time.js';
import { type HoldContext, RedisHold } from './hold.js';
import { type LockKeys, RELEASE, RENEW } from './scripts.js';
import { type Cleanup, debug, describeError } from './session.js';

/** One try at a lock: its name and keys, a fresh owner id, the TTL. @internal */
export type LockTry = { name: string; keys: LockKeys; owner: string; ttlMs: number };

/** The owner-checked delete of a lock, as a clean-up. @internal */
export function releaseCleanup({ name, keys, owner, ttlMs }: LockTry): Cleanup {
  return { what: `release lock "${name}"`, command: [RELEASE, [keys.owner], [owner]], until: now() + ttlMs };
}

/**
 * A lock held through a `RedisCoordinator`. `release()` deletes it if this lease still owns it; when Redis
 * cannot be reached, the delete is retried on the next connection and it resolves. With its `signal`
 * aborted the release is given up: it rejects with `signal.reason` and nothing more is sent (the lock
 * expires with its TTL); a later call tries again. See docs/adapters/redis.md.
 * @internal
 */
export function redisLease(ctx: HoldContext, lock: LockTry, token: bigint, sentAt: number): Lease {
  const { name, keys, owner, ttlMs } = lock;
  const hold = new RedisHold(ctx, {
    label: `lease "${name}" (token ${token})`,
    ttlMs,
    sentAt,
    renew: [RENEW, [keys.owner], [owner, ttlMs]],
    cleanup: () => releaseCleanup(lock),
    lostError: (message) => new LockLostError(`The lock "${name}" was lost: ${message}`),
    lossMessages: {
      expired: 'it could not be renewed before its local deadline',
      gone: 'Redis no longer holds it for this lease (it expired or was deleted)',
    },
  });
  const givenUp = (signal: AbortSignal): unknown => {
    debug('%s: release given up, it expires with its TTL', hold.label);
    return signal.reason;
  };
  return hold.lease(name, token, async (signal) => {
    if (hold.state === 'lost' || hold.done) return;
    hold.give();
    if (signal?.aborted) throw givenUp(signal);
    const cleanup = releaseCleanup(lock);
    const { session } = ctx;
    try {
      const timeout = (): Error => new Error(`no answer within ${session.timeoutMs} ms`);
      await session.send(cleanup.command, now() + session.timeoutMs, timeout, signal);
      debug('%s released', hold.label);
    } catch (error) {
      if (signal?.aborted) throw givenUp(signal);
      debug('%s: release failed, retrying later: %s', hold.label, describeError(error));
      session.cleanup(cleanup);
    }
    hold.done = true;
  });
}
