import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { type HoldContext, SqliteHold } from './hold.js';

/** A member row held through a `SqliteCoordinator`, a heartbeat every `ttlMs / 3`. @internal */
export function sqliteMembership(
  ctx: HoldContext,
  group: string,
  memberId: string,
  incarnation: string,
  ttlMs: number,
  sentAt: number,
): Membership {
  const who = `${JSON.stringify(memberId)} of ${JSON.stringify(group)}`;
  const hold = new SqliteHold(ctx, {
    label: `member ${who}`,
    ttlMs,
    sentAt,
    renew: [
      `renew the membership ${who}`,
      (sql, wall) =>
        sql.heartbeat.run(Math.floor(wall + ttlMs), group, memberId, incarnation, wall).changes === 1,
    ],
    free: [
      `leave the group ${JSON.stringify(group)}`,
      (sql) => sql.removeMember.run(group, memberId, incarnation),
    ],
    lostError: (message, cause) => new MembershipLostError(`The membership ${who} ${message}`, { cause }),
    lossMessages: {
      gone: 'was removed or expired',
      expired: 'could not be renewed before its deadline',
      closed: 'was left: the coordinator closed',
      unreleased: 'could not be left: it expires with its TTL',
    },
  });
  return hold.membership(group, memberId, incarnation, (signal) => hold.giveBack(signal));
}
