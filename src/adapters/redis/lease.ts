import createDebug from 'debug';
import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { leaseOf } from '../../internal/handles.js';
import { bounded, now } from '../../internal/time.js';
import { type HoldContext, RedisHold } from './hold.js';
import { type LockKeys, RELEASE, RENEW } from './scripts.js';
import { type Cleanup, describeError } from './session.js';

const debug = createDebug('graceful-drain:redis');

/** The owner-checked delete of a lock, as a clean-up. @internal */
export function releaseCleanup(name: string, keys: LockKeys, owner: string, ttlMs: number): Cleanup {
  return {
    what: `release lock "${name}"`,
    script: RELEASE,
    keys: [keys.owner],
    args: [owner],
    expiresAt: now() + ttlMs,
  };
}

/**
 * A lock held through a `RedisCoordinator`. `release()` deletes it if this lease still owns it; when Redis
 * cannot be reached, the delete is retried on the next connection and it resolves. With its `signal`
 * aborted the release is given up: it rejects with `signal.reason` and nothing more is sent (the lock
 * expires with its TTL); a later call tries again. See docs/adapters/redis.md.
 * @internal
 */
export function redisLease(
  ctx: HoldContext,
  name: string,
  keys: LockKeys,
  owner: string,
  token: bigint,
  ttlMs: number,
  sentAt: number,
): Lease {
  const label = `lease "${name}" (token ${token})`;
  const hold = new RedisHold(ctx, {
    label,
    ttlMs,
    sentAt,
    renew: () => ctx.session.eval(RENEW, [keys.owner], [owner, ttlMs]),
    cleanup: () => releaseCleanup(name, keys, owner, ttlMs),
    lostError: (message) => new LockLostError(`The lock "${name}" was lost: ${message}`),
    lossMessages: {
      expired: 'it could not be renewed before its local deadline',
      gone: 'Redis no longer holds it for this lease (it expired or was deleted)',
    },
  });
  const givenUp = (signal: AbortSignal): unknown => {
    debug('%s: release given up, it expires with its TTL', label);
    return signal.reason;
  };
  return leaseOf(name, token, hold, async (signal) => {
    if (hold.state === 'lost' || hold.done) return;
    hold.give();
    if (signal?.aborted) throw givenUp(signal);
    const cleanup = releaseCleanup(name, keys, owner, ttlMs);
    const { session } = ctx;
    try {
      await bounded(
        session.eval(cleanup.script, cleanup.keys, cleanup.args),
        session.timeoutMs,
        () => new Error(`no answer within ${session.timeoutMs} ms`),
        signal,
      );
      debug('%s released', label);
    } catch (error) {
      if (signal?.aborted) throw givenUp(signal);
      debug('%s: release failed, retrying later: %s', label, describeError(error));
      session.cleanup(cleanup);
    }
    hold.done = true;
  });
}
