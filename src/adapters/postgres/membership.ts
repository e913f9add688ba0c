import createDebug from 'debug';
import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { membershipOf } from '../../internal/handles.js';
import { messageOf } from './driver.js';
import type { PgSession, SessionItem } from './session.js';

const debug = createDebug('graceful-drain:postgres');

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
  const controller = new AbortController();
  let lost = false;
  let left: Promise<void> | undefined;
  let hasLeft = false;
  const item: MemberItem = {
    group,
    memberId,
    incarnation,
    ttlMs,
    lost(cause) {
      if (lost || left !== undefined) return;
      lost = true;
      debug('member %s of %s: lost', memberId, group);
      const message = `Lost the membership of "${memberId}" in group "${group}": ${messageOf(cause)}`;
      controller.abort(new MembershipLostError(message, { cause }));
      session.untrack(item);
      members.delete(item);
      // Removed while the session lives on (the row was deleted or replaced): drop our hold as well.
      if (session.alive) session.query('SELECT pg_advisory_unlock_shared($1::bigint)', [key]).catch(() => {});
    },
  };
  const leave = async (): Promise<void> => {
    session.untrack(item);
    if (!lost && session.alive) {
      try {
        await session.query(
          `WITH gone AS (DELETE FROM ${schemaSql}.members WHERE incarnation = $2)
           SELECT pg_advisory_unlock_shared($1::bigint)`,
          [key, incarnation],
        );
        debug('member %s of %s: left', memberId, group);
        members.delete(item);
        return;
      } catch (error) {
        debug('member %s: leave failed on its session (%s)', memberId, messageOf(error));
      }
    }
    // A lost session may linger on the server until its keepalive gives up, still holding the lock
    // that makes the row count: deleting the row from a working session confirms the leave.
    await deleteRow(incarnation);
    debug('member %s of %s: left (row deleted)', memberId, group);
    members.delete(item);
  };
  const membership = membershipOf(group, memberId, incarnation, controller.signal, (signal) => {
    left ??= leave().then(
      () => {
        hasLeft = true;
      },
      (error: unknown) => {
        left = undefined;
        throw error;
      },
    );
    return hasLeft ? undefined : abortable(left, signal);
  });
  for (const former of members) {
    if (former.group === group && former.memberId === memberId) {
      former.lost(new Error('Replaced by a newer join of the same member id'));
    }
  }
  members.add(item);
  session.track(item);
  return membership;
}
