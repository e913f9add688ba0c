import createDebug from 'debug';
import type { CoordinatorCallOptions, Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { now } from '../../internal/time.js';
import type { GroupKeys } from './redis-keys.js';
import { checkCallSignal, type HandleContext } from './redis-lease.js';
import { HEARTBEAT, LEAVE } from './redis-scripts.js';
import { type Cleanup, describeError, type SessionWatcher } from './redis-session.js';
import { backgroundTimer, safetyMarginOf } from './redis-timing.js';

const debug = createDebug('graceful-drain:redis');

/** Where a membership is in its life. */
type MembershipState = 'joined' | 'leaving' | 'lost';

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
 * A place in a group held through a `RedisCoordinator`: a heartbeat every `ttlMs / 3` that extends the
 * member only while Redis still lists this incarnation. Lost (and never re-added) when a heartbeat
 * finds it gone, when no heartbeat is confirmed before the local deadline, or when the connection it
 * was made on closes.
 *
 * @internal
 */
export class RedisMembership implements Membership, SessionWatcher {
  readonly group: string;
  readonly memberId: string;
  readonly incarnation: string;
  readonly #ctx: HandleContext;
  readonly #keys: GroupKeys;
  readonly #record: string;
  readonly #ttlMs: number;
  readonly #controller = new AbortController();
  #deadline = 0;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  #state: MembershipState = 'joined';
  /** True once Redis has answered that this incarnation is not listed (any more). */
  #gone = false;

  constructor(
    ctx: HandleContext,
    group: string,
    memberId: string,
    incarnation: string,
    keys: GroupKeys,
    record: string,
    ttlMs: number,
    sentAt: number,
  ) {
    this.#ctx = ctx;
    this.group = group;
    this.memberId = memberId;
    this.incarnation = incarnation;
    this.#keys = keys;
    this.#record = record;
    this.#ttlMs = ttlMs;
    this.#setDeadline(sentAt);
    this.#scheduleHeartbeat(sentAt);
    ctx.session.watch(this);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Removes this incarnation from the group; resolves once Redis has answered (also when it was no
   * longer listed). Rejects with `CoordinatorUnavailableError` (or `ClosedError`) when that answer
   * cannot be had; calling it again retries. Heartbeats stop at once, whatever happens next. The
   * signal is not aborted.
   *
   * When `signal` aborts (or is aborted already), the leave is given up: it rejects with
   * `signal.reason` and nothing more is sent; the member then expires with its TTL (a removal already
   * written may still run: it is incarnation-checked, so harmless). A later call tries again.
   * Resolves whatever the signal once there is nothing left to do (left, or lost).
   */
  async leave(options?: CoordinatorCallOptions): Promise<void> {
    const signal = checkCallSignal('leave()', options);
    if (this.#state === 'joined') this.#end('leaving');
    if (this.#gone) return;
    if (signal?.aborted) {
      // A lost membership has its removal queued already: nothing is left to do.
      if (this.#state === 'lost') return;
      debug('member %s of %s: leave given up, it expires with its TTL', this.memberId, this.group);
      throw signal.reason;
    }
    const { reply } = await this.#ctx.session.call(
      LEAVE,
      [this.#keys.members, this.#keys.info],
      [this.memberId, this.#record],
      `remove member "${this.memberId}" from group "${this.group}"`,
      signal,
    );
    this.#gone = true;
    debug('member %s left %s (%s)', this.memberId, this.group, reply === 1 ? 'removed' : 'already gone');
  }

  /** The connection this membership was made on closed. */
  sessionLost(): void {
    this.lost('the connection to Redis was lost');
  }

  /** Ends the membership: aborts the signal, then removes the member if Redis still lists it. */
  lost(message: string, gone = false): void {
    if (this.#state !== 'joined') return;
    this.#end('lost');
    debug('member %s of %s (%s) lost: %s', this.memberId, this.group, this.incarnation, message);
    this.#controller.abort(
      new MembershipLostError(`Member "${this.memberId}" of group "${this.group}" was lost: ${message}`),
    );
    if (gone) {
      this.#gone = true;
      return;
    }
    this.#ctx.session.cleanup(
      leaveCleanup(this.group, this.memberId, this.#keys, this.#record, this.#ttlMs, () => {
        this.#gone = true;
      }),
    );
  }

  #end(state: MembershipState): void {
    this.#state = state;
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadlineTimer);
    this.#ctx.session.unwatch(this);
    this.#ctx.forget(this);
  }

  #setDeadline(sentAt: number): void {
    this.#deadline = sentAt + this.#ttlMs - safetyMarginOf(this.#ttlMs);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(this.#deadline - now(), () =>
      this.lost('no heartbeat was confirmed before its local deadline'),
    );
  }

  #scheduleHeartbeat(from: number): void {
    this.#heartbeatTimer = backgroundTimer(from + this.#ttlMs / 3 - now(), () => void this.#heartbeat());
  }

  async #heartbeat(): Promise<void> {
    if (this.#state !== 'joined') return;
    const sentAt = now();
    let reply: unknown;
    try {
      reply = await this.#ctx.session.eval(
        HEARTBEAT,
        [this.#keys.members, this.#keys.info],
        [this.memberId, this.#record, this.#ttlMs],
      );
    } catch (error) {
      if (this.#state !== 'joined') return;
      debug(
        'member %s of %s: heartbeat failed, retrying: %s',
        this.memberId,
        this.group,
        describeError(error),
      );
      this.#heartbeatTimer = backgroundTimer(Math.max(10, this.#ttlMs / 10), () => void this.#heartbeat());
      return;
    }
    if (this.#state !== 'joined') return;
    if (reply !== 1) {
      this.lost('Redis no longer lists it (it expired, was removed, or a newer incarnation joined)', true);
      return;
    }
    if (now() >= this.#deadline) {
      this.lost('the heartbeat was answered after its local deadline');
      return;
    }
    this.#setDeadline(sentAt);
    this.#scheduleHeartbeat(sentAt);
  }
}
