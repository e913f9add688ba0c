import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import type { LossReason } from '../../internal/keep-alive.js';
import { now } from '../../internal/time.js';
import { type HoldContext, RedisHold, RedisHoldOptions } from './hold.js';
import { type GroupKeys, HEARTBEAT, LEAVE, memberRecord } from './scripts.js';
import { type Cleanup, type Command, debug } from './session.js';

/** A member joining: its group and keys, its id and fresh incarnation, the TTL. @internal */
export type Member = { group: string; keys: GroupKeys; memberId: string; incarnation: string; ttlMs: number };

/** The incarnation-checked removal of a member, as a clean-up. @internal */
export function leaveCleanup(member: Member, onDone?: () => void): Cleanup {
  const { group, memberId, keys, incarnation, ttlMs } = member;
  const what = `remove member "${memberId}" from group "${group}"`;
  const command = [LEAVE, keys, [memberId, memberRecord(incarnation, ttlMs)]] as const;
  return { what, command, until: now() + ttlMs, onDone };
}

const LOSS_MESSAGES: Readonly<Record<LossReason, string>> = Object.freeze({
  expired: 'no heartbeat was confirmed before its local deadline',
  gone: 'Redis no longer lists it (it expired, was removed, or a newer incarnation joined)',
});

/** A membership's hold: its heartbeat and its removal. */
class MemberOptions extends RedisHoldOptions {
  readonly #member: Member;

  constructor(ctx: HoldContext, member: Member, sentAt: number) {
    super(ctx, member.ttlMs, sentAt);
    this.#member = member;
  }

  get label(): string {
    const { memberId, group, incarnation } = this.#member;
    return `member "${memberId}" of "${group}" (${incarnation})`;
  }

  get lossMessages(): Readonly<Record<LossReason, string>> {
    return LOSS_MESSAGES;
  }

  lostError(message: string): Error {
    const { memberId, group } = this.#member;
    return new MembershipLostError(`Member "${memberId}" of group "${group}" was lost: ${message}`);
  }

  protected get renewal(): Command {
    const { memberId, keys, incarnation, ttlMs } = this.#member;
    return [HEARTBEAT, keys, [memberId, memberRecord(incarnation, ttlMs), ttlMs]];
  }

  cleanup(onDone?: () => void): Cleanup {
    return leaveCleanup(this.#member, onDone);
  }
}

/**
 * A place in a group held through a `RedisCoordinator`: never re-added once lost. `leave()` resolves once
 * Redis has answered the removal of this incarnation, and rejects with `CoordinatorUnavailableError` (or
 * `ClosedError`) when it cannot; with its `signal` aborted the leave is given up and the member expires
 * with its TTL. Once the membership is lost, `leave()` resolves at once whatever its signal: the removal
 * is queued already. See docs/adapters/redis.md.
 * @internal
 */
export function redisMembership(ctx: HoldContext, member: Member, sentAt: number): Membership {
  const { group, memberId, incarnation } = member;
  const hold = new RedisHold(ctx, new MemberOptions(ctx, member, sentAt));
  return hold.membership(group, memberId, incarnation, async (signal) => {
    hold.give();
    // A lost membership has its removal queued already (or Redis said it is gone): nothing is left to do.
    if (hold.done || hold.state === 'lost') return;
    if (signal?.aborted) {
      debug('member %s of %s: leave given up, it expires with its TTL', memberId, group);
      throw signal.reason;
    }
    const { command, what } = leaveCleanup(member);
    const { reply } = await ctx.session.call(command, what, signal);
    hold.done = true;
    debug('member %s left %s (%s)', memberId, group, reply === 1 ? 'removed' : 'already gone');
  });
}
