import createDebug from 'debug';
import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { leaseOf } from '../../internal/handles.js';
import { now } from '../../internal/time.js';
import { messageOf } from './driver.js';
import type { PgSession, SessionItem } from './session.js';

const debug = createDebug('graceful-drain:postgres');

/**
 * A session advisory lock held by a `PostgresCoordinator`, tracked by `session` and kept in `locks`
 * until released or lost. `release()` unlocks; given a signal that aborts, it stops waiting but the
 * unlock goes on (nothing else would free the lock while the session lives). @internal
 */
export function pgLease(
  session: PgSession,
  locks: Map<string, Lease | 'pending'>,
  hold: { name: string; key: string; token: bigint; ttlMs: number },
): Lease {
  const { name, key, token, ttlMs } = hold;
  const onDone = (): void => {
    if (locks.get(name) === lease) locks.delete(name);
  };
  const controller = new AbortController();
  let lostAt: number | undefined;
  let released: Promise<void> | undefined;
  let releaseDone = false;
  const item: SessionItem = {
    ttlMs,
    incarnation: undefined,
    lost(cause) {
      if (released !== undefined || lostAt !== undefined) return;
      lostAt = now();
      debug('lease %s (token %s): lost', name, token);
      controller.abort(new LockLostError(`Lost the lock "${name}": ${messageOf(cause)}`, { cause }));
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
      debug('lease %s (token %s): released', name, token);
    } catch (error) {
      debug('lease %s: unlock failed (%s); the session was dropped', name, messageOf(error));
    } finally {
      onDone();
    }
  };
  const view = {
    signal: controller.signal,
    get deadline() {
      return lostAt ?? session.deadline(ttlMs);
    },
  };
  const lease = leaseOf(name, token, view, (signal) => {
    released ??= unlock().then(() => {
      releaseDone = true;
    });
    return releaseDone ? undefined : abortable(released, signal);
  });
  locks.set(name, lease);
  session.track(item);
  return lease;
}
