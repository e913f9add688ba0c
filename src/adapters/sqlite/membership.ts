import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { membershipOf } from '../../internal/handles.js';
import { type AbortCause, type HoldContext, SqliteHold } from './hold.js';

const LOST: Readonly<Record<AbortCause, string>> = Object.freeze({
  gone: 'was removed or expired',
  expired: 'could not be renewed before its deadline',
  closed: 'was left: the coordinator closed',
  unreleased: 'could not be left: it expires with its TTL',
});

/**
 * A member row held through a `SqliteCoordinator`, a heartbeat every `ttlMs / 3` until it leaves or
 * is lost: the membership and its row.
 *
 * @internal
 */
export function sqliteMembership(
  ctx: HoldContext,
  group: string,
  memberId: string,
  incarnation: string,
  ttlMs: number,
  sentAt: number,
): { readonly membership: Membership; readonly hold: SqliteHold } {
  const who = `${JSON.stringify(memberId)} of ${JSON.stringify(group)}`;
  const hold = new SqliteHold(ctx, {
    label: `member ${who}`,
    ttlMs,
    sentAt,
    renew: (until) =>
      ctx.write(
        `renew the membership ${who}`,
        (sql) => {
          const wall = Date.now();
          return (
            sql.heartbeat.run(Math.floor(wall + ttlMs), group, memberId, incarnation, wall).changes === 1
          );
        },
        until,
      ),
    free: async (signal) => {
      await ctx.write(
        `leave the group ${JSON.stringify(group)}`,
        (sql) => sql.removeMember.run(group, memberId, incarnation),
        undefined,
        signal,
      );
    },
    reason: (cause, error) =>
      new MembershipLostError(`The membership ${who} ${LOST[cause]}`, { cause: error }),
  });
  const membership = membershipOf(group, memberId, incarnation, hold.signal, (signal) =>
    hold.giveBack(signal),
  );
  return { membership, hold };
}
