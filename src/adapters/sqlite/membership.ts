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
    reason: (cause, error) =>
      new MembershipLostError(`The membership ${who} ${LOST[cause]}`, { cause: error }),
  });
  return membershipOf(group, memberId, incarnation, hold.signal, (signal) => hold.giveBack(signal));
}
