import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { membershipOf } from '../../internal/handles.js';
import { type HoldContext, MemoryHold } from './hold.js';

/**
 * A place in a group held through a `MemoryCoordinator`: a heartbeat every `ttlMs / 3`. `leave()`
 * resolves once the backend has removed it; with a `signal` already aborted it is given up like a
 * lease's `release()`: the member then expires with its TTL.
 *
 * @internal
 */
export function memoryMembership(
  ctx: HoldContext,
  group: string,
  memberId: string,
  incarnation: string,
  ttlMs: number,
): { readonly membership: Membership; readonly hold: MemoryHold } {
  const hold = new MemoryHold(ctx, {
    label: `member "${memberId}" of "${group}" (${incarnation})`,
    ttlMs,
    renew: (clock) => ctx.backend.heartbeat(group, memberId, incarnation, clock) !== undefined,
    free: () => ctx.backend.leave(group, memberId, incarnation),
    lostError: (message) =>
      new MembershipLostError(`Member "${memberId}" of group "${group}" was lost: ${message}`),
    lossMessages: {
      expired: 'no heartbeat was confirmed before its local deadline',
      gone: 'the backend no longer lists it',
    },
  });
  return {
    membership: membershipOf(group, memberId, incarnation, hold.signal, (signal) => hold.give(signal)),
    hold,
  };
}
