import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { Hold } from '../../internal/keep-alive.js';
import { messageOf } from './driver.js';
import { debug, type PgSession, type SessionItem } from './session.js';

/** The item a session keeps alive for a membership, as its coordinator tracks it. @internal */
export interface MemberItem extends SessionItem {
  readonly group: string;
  readonly memberId: string;
  readonly incarnation: string;
}

/**
 * A group membership of a `PostgresCoordinator` (a shared advisory lock plus a row, both bound to the
 * session), tracked by `session` and kept in `members` while it lasts; it replaces a former one of the
 * same member id. `leave()` resolves once the row is gone; given a signal that aborts, it stops waiting
 * but the leave goes on (a later `leave()` joins it). @internal
 */
export function pgMembership(
  session: PgSession,
  schemaSql: string,
  fields: { group: string; memberId: string; incarnation: string; key: string; ttlMs: number },
  members: Set<MemberItem>,
  deleteRow: (incarnation: string) => Promise<void>,
): Membership {
  const { group, memberId, incarnation, key, ttlMs } = fields;
  const hold = new Hold({
    label: `member "${memberId}" of "${group}" (${incarnation})`,
    debug,
    lostError: (message, cause) =>
      new MembershipLostError(`Lost the membership of "${memberId}" in group "${group}": ${message}`, {
        cause,
      }),
  });
  const item: MemberItem = {
    group,
    memberId,
    incarnation,
    ttlMs,
    lost(cause) {
      if (hold.giving || !hold.abort(messageOf(cause), cause)) return;
      session.untrack(item);
      members.delete(item);
      // Removed while the session lives on (the row was deleted or replaced): drop our hold as well.
      if (session.alive) session.query('SELECT pg_advisory_unlock_shared($1::bigint)', [key]).catch(() => {});
    },
  };
  const leave = async (): Promise<void> => {
    session.untrack(item);
    if (!hold.aborted && session.alive) {
      try {
        await session.query(
          `WITH gone AS (DELETE FROM ${schemaSql}.members WHERE incarnation = $2)
           SELECT pg_advisory_unlock_shared($1::bigint)`,
          [key, incarnation],
        );
        debug('%s left', hold.label);
        members.delete(item);
        return;
      } catch (error) {
        debug('%s: leave failed on its session (%s)', hold.label, messageOf(error));
      }
    }
    // A lost session may linger on the server until its keepalive gives up, still holding the lock
    // that makes the row count: deleting the row from a working session confirms the leave.
    await deleteRow(incarnation);
    debug('%s left (row deleted)', hold.label);
    members.delete(item);
  };
  const membership = hold.membership(group, memberId, incarnation, (signal) => hold.giveOnce(leave, signal));
  for (const former of members) {
    if (former.group === group && former.memberId === memberId) {
      former.lost(new Error('Replaced by a newer join of the same member id'));
    }
  }
  members.add(item);
  session.track(item);
  return membership;
}
