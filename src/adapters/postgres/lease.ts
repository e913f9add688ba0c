import createDebug from 'debug';
import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { leaseOf } from '../../internal/handles.js';
import { now } from '../../internal/time.js';
import { messageOf, type PgSession, type SessionItem } from './session.js';

const debug = createDebug('graceful-drain:postgres');

/**
 * A session advisory lock held by a `PostgresCoordinator`, and the item its session keeps alive (and
 * loses it with). `release()` unlocks; given a signal that aborts, it stops waiting but the unlock goes
 * on (nothing else would free the lock while the session lives). `onDone` runs once released or lost.
 *
 * @internal
 */
export function pgLease(
  session: PgSession,
  name: string,
  key: string,
  token: bigint,
  ttlMs: number,
  onDone: () => void,
): { readonly lease: Lease; readonly item: SessionItem } {
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
  const hold = {
    signal: controller.signal,
    get deadline() {
      return lostAt ?? session.deadline(ttlMs);
    },
  };
  const lease = leaseOf(name, token, hold, (signal) => {
    released ??= unlock().then(() => {
      releaseDone = true;
    });
    return releaseDone ? undefined : abortable(released, signal);
  });
  return { lease, item };
}
