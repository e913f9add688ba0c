import createDebug from 'debug';
import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { membershipOf } from '../../internal/handles.js';
import { messageOf, type PgSession, type SessionItem } from './session.js';

const debug = createDebug('graceful-drain:postgres');

/** The item a session keeps alive for a membership, as its coordinator tracks it. @internal */
export interface MemberItem extends SessionItem {
  readonly group: string;
  readonly memberId: string;
  readonly incarnation: string;
}

/** What a membership needs from its coordinator. @internal */
export interface MembershipHooks {
  /** Called once the membership is lost or has left. */
  readonly done: (item: MemberItem) => void;
  /** Deletes the row of `incarnation` on a working session (to confirm a leave after a lost session). */
  readonly deleteRow: (incarnation: string) => Promise<void>;
}

/**
 * A group membership of a `PostgresCoordinator`: a shared advisory lock plus a row, both bound to the
 * session; the membership and the item its session keeps alive. `leave()` resolves once the row is
 * gone. Given a signal, the call stops waiting when it aborts and rejects with its reason, but the leave
 * goes on (a member given up must not stay listed), and a later `leave()` joins it. Once left, it
 * resolves whatever the signal.
 *
 * @internal
 */
export function pgMembership(
  session: PgSession,
  schemaSql: string,
  fields: { group: string; memberId: string; incarnation: string; key: string; ttlMs: number },
  hooks: MembershipHooks,
): { readonly membership: Membership; readonly item: MemberItem } {
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
      hooks.done(item);
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
        hooks.done(item);
        return;
      } catch (error) {
        debug('member %s: leave failed on its session (%s)', memberId, messageOf(error));
      }
    }
    // A lost session may linger on the server until its keepalive gives up, still holding the lock
    // that makes the row count: deleting the row from a working session confirms the leave.
    await hooks.deleteRow(incarnation);
    debug('member %s of %s: left (row deleted)', memberId, group);
    hooks.done(item);
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
  return { membership, item };
}
