import { MembershipLostError } from '../../errors.js';
import { randomId } from '../../internal/time.js';
import { type HoldContext, MemoryHold } from './hold.js';

/**
 * Joins the backend's group with a fresh incarnation, replacing a live member of that id. `leave()`
 * resolves once the backend has removed it; with its `signal` aborted it is given up like `release()`:
 * the member expires with its TTL.
 * @internal
 */
export function memoryMembership(ctx: HoldContext, group: string, memberId: string, ttlMs: number) {
  const incarnation = randomId();
  const hold = new MemoryHold(ctx, {
    label: `member "${memberId}" of "${group}" (${incarnation})`,
    ttlMs,
    renew: (clock) => ctx.backend.heartbeat(group, memberId, incarnation, clock),
    free: () => ctx.backend.leave(group, memberId, incarnation),
    lostError: (message) =>
      new MembershipLostError(`Member "${memberId}" of group "${group}" was lost: ${message}`),
    lossMessages: {
      expired: 'no heartbeat was confirmed before its local deadline',
      gone: 'the backend no longer lists it',
    },
  });
  ctx.backend.join(group, memberId, incarnation, ttlMs, ctx.clock(), (why) =>
    hold.lost(why === 'replaced' ? 'a newer incarnation joined' : 'it expired in the backend'),
  );
  return hold.membership(group, memberId, incarnation, (signal) => hold.give(signal));
}
