import createDebug from 'debug';
import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { membershipOf } from '../../internal/handles.js';
import { now } from '../../internal/time.js';
import { type HoldContext, RedisHold } from './hold.js';
import { type GroupKeys, HEARTBEAT, LEAVE } from './scripts.js';
import type { Cleanup } from './session.js';

const debug = createDebug('graceful-drain:redis');

/** The incarnation-checked removal of a member, as a clean-up. @internal */
export function leaveCleanup(
  group: string,
  memberId: string,
  keys: GroupKeys,
  record: string,
  ttlMs: number,
  onDone?: () => void,
): Cleanup {
  return {
    what: `remove member "${memberId}" from group "${group}"`,
    script: LEAVE,
    keys: [keys.members, keys.info],
    args: [memberId, record],
    expiresAt: now() + ttlMs,
    onDone,
  };
}

/**
 * A place in a group held through a `RedisCoordinator`: the membership and its hold. A heartbeat every
 * `ttlMs / 3` extends the member only while Redis still lists this incarnation. Lost (and never
 * re-added) when a heartbeat finds it gone, when no heartbeat is confirmed before the local deadline,
 * or when the connection it was made on closes.
 *
 * `leave()` removes this incarnation; it resolves once Redis has answered (also when it was no longer
 * listed), and rejects with `CoordinatorUnavailableError` (or `ClosedError`) when that answer cannot be
 * had; calling it again retries. Heartbeats stop at once, whatever happens next; the signal is not
 * aborted. When its `signal` aborts (or is aborted already), the leave is given up: it rejects with
 * `signal.reason` and nothing more is sent (a removal already written may still run: it is
 * incarnation-checked, so harmless); the member then expires with its TTL. Once there is nothing left
 * to do (left, or lost), it resolves.
 *
 * @internal
 */
export function redisMembership(
  ctx: HoldContext,
  group: string,
  memberId: string,
  incarnation: string,
  keys: GroupKeys,
  record: string,
  ttlMs: number,
  sentAt: number,
): { readonly membership: Membership; readonly hold: RedisHold } {
  const hold = new RedisHold(ctx, {
    label: `member "${memberId}" of "${group}" (${incarnation})`,
    ttlMs,
    sentAt,
    renew: [HEARTBEAT, [keys.members, keys.info], [memberId, record, ttlMs]],
    cleanup: (onDone) => leaveCleanup(group, memberId, keys, record, ttlMs, onDone),
    lostError: (message) =>
      new MembershipLostError(`Member "${memberId}" of group "${group}" was lost: ${message}`),
    lossMessages: {
      expired: 'no heartbeat was confirmed before its local deadline',
      gone: 'Redis no longer lists it (it expired, was removed, or a newer incarnation joined)',
    },
  });
  const leave = async (signal: AbortSignal | undefined): Promise<void> => {
    hold.give();
    if (hold.done) return;
    if (signal?.aborted) {
      // A lost membership has its removal queued already: nothing is left to do.
      if (hold.state === 'lost') return;
      debug('member %s of %s: leave given up, it expires with its TTL', memberId, group);
      throw signal.reason;
    }
    const { reply } = await ctx.session.call(
      LEAVE,
      [keys.members, keys.info],
      [memberId, record],
      `remove member "${memberId}" from group "${group}"`,
      signal,
    );
    hold.done = true;
    debug('member %s left %s (%s)', memberId, group, reply === 1 ? 'removed' : 'already gone');
  };
  return { membership: membershipOf(group, memberId, incarnation, hold.signal, leave), hold };
}
