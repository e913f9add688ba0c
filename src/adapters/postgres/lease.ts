import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { Hold } from '../../internal/keep-alive.js';
import { now } from '../../internal/time.js';
import { messageOf } from './driver.js';
import { debug, type PgSession, type SessionItem } from './session.js';

/**
 * A session advisory lock held by a `PostgresCoordinator`, tracked by `session` and kept in `locks`
 * until released or lost. `release()` unlocks; given a signal that aborts, it stops waiting but the
 * unlock goes on (nothing else would free the lock while the session lives). @internal
 */
export function pgLease(
  session: PgSession,
  locks: Map<string, Lease | 'pending'>,
  { name, key, token, ttlMs }: { name: string; key: string; token: bigint; ttlMs: number },
): Lease {
  let lostAt: number | undefined;
  const hold = new Hold({
    label: `lease "${name}" (token ${token})`,
    debug,
    lostError: (message, cause) => new LockLostError(`Lost the lock "${name}": ${message}`, { cause }),
    deadline: () => lostAt ?? session.deadline(ttlMs),
  });
  const onDone = (): void => {
    if (locks.get(name) === lease) locks.delete(name);
  };
  const item: SessionItem = {
    ttlMs,
    incarnation: undefined,
    lost(cause) {
      if (hold.giving || lostAt !== undefined) return;
      lostAt = now();
      hold.abort(messageOf(cause), cause);
      onDone();
    },
  };
  const unlock = async (): Promise<void> => {
    session.untrack(item);
    try {
      // Owner-checked by nature: it frees this session's own hold only; a lost session holds nothing.
      if (lostAt === undefined && session.alive) {
        await session.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
      }
      debug('%s released', hold.label);
    } catch (error) {
      debug('%s: unlock failed (%s); the session was dropped', hold.label, messageOf(error));
    } finally {
      onDone();
    }
  };
  const lease = hold.lease(name, token, (signal) => hold.giveOnce(unlock, signal));
  locks.set(name, lease);
  session.track(item);
  return lease;
}
