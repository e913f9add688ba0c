import createDebug from 'debug';
import type { CoordinatorCallOptions, Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { backgroundTimer, checkCallSignal, type HandleContext } from './handle-context.js';

const debug = createDebug('graceful-drain:memory');

/**
 * Where a membership is in its life: `abandoned` once a `leave()` was given up (its signal was
 * aborted): no more heartbeats, so the member expires with its TTL unless a later `leave()` removes
 * it sooner.
 */
type MembershipState = 'joined' | 'abandoned' | 'done';

/** A place in a group held through a `MemoryCoordinator`: a heartbeat every `ttlMs / 3`. @internal */
export class MemoryMembership implements Membership {
  readonly group: string;
  readonly memberId: string;
  readonly incarnation: string;
  readonly #ctx: HandleContext;
  readonly #ttlMs: number;
  readonly #controller = new AbortController();
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #state: MembershipState = 'joined';

  constructor(
    ctx: HandleContext,
    group: string,
    memberId: string,
    incarnation: string,
    ttlMs: number,
    expiresAt: number,
  ) {
    this.#ctx = ctx;
    this.group = group;
    this.memberId = memberId;
    this.incarnation = incarnation;
    this.#ttlMs = ttlMs;
    this.#setDeadline(expiresAt);
    this.#scheduleHeartbeat();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Leaves the group; the backend has confirmed when this resolves. The signal is not aborted.
   * With a `signal` already aborted, the leave is given up: it rejects with `signal.reason`, removes
   * nothing, and stops the heartbeats, so the member expires with its TTL (a later `leave()` removes
   * it at once). Resolves whatever the signal once there is nothing left to do (left or lost).
   */
  async leave(options?: CoordinatorCallOptions): Promise<void> {
    const signal = checkCallSignal('leave()', options);
    if (this.#state === 'done') return;
    if (signal?.aborted) {
      this.#abandon();
      throw signal.reason;
    }
    this.dispose(true);
  }

  /** Ends the membership: the backend removed it. It is never re-added. */
  lost(message: string): void {
    if (this.#state === 'done') return;
    const joined = this.#state === 'joined';
    this.#end();
    debug('member %s of %s (%s) lost: %s', this.memberId, this.group, this.incarnation, message);
    if (!joined) return;
    this.#controller.abort(
      new MembershipLostError(`Member "${this.memberId}" of group "${this.group}" was lost: ${message}`),
    );
  }

  /** Stops the heartbeats, as a killed process would; the membership then expires. */
  crash(): void {
    clearTimeout(this.#heartbeatTimer);
  }

  /**
   * Stops every timer; leaves the group too unless the coordinator crashed. With a `reason` (the
   * coordinator is closing under a member), the signal aborts first.
   */
  dispose(leave: boolean, reason?: string): void {
    if (this.#state === 'done') return;
    const joined = this.#state === 'joined';
    this.#end();
    if (reason !== undefined && joined) {
      this.#controller.abort(
        new MembershipLostError(`Member "${this.memberId}" of group "${this.group}" was lost: ${reason}`),
      );
    }
    if (leave && !this.#ctx.crashed) {
      this.#ctx.backend.leave(this.group, this.memberId, this.incarnation);
      debug('member %s left %s', this.memberId, this.group);
    }
  }

  // Still tracked by the coordinator, so that close() removes the member; the backend's expiry ends it.
  #abandon(): void {
    if (this.#state !== 'joined') return;
    this.#state = 'abandoned';
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadlineTimer);
    debug('member %s of %s: leave given up, it expires with its TTL', this.memberId, this.group);
  }

  #end(): void {
    this.#state = 'done';
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadlineTimer);
    this.#ctx.forget(this);
  }

  // At the deadline the backend judges: if the member expired there, its loss callback ends this.
  #setDeadline(expiresAt: number): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(expiresAt - this.#ctx.clock(), () => {
      if (this.#state !== 'joined') return;
      this.#ctx.backend.expireMembers(this.group, this.#ctx.clock());
      if (this.#state === 'joined') this.#setDeadline(Math.max(expiresAt, this.#ctx.clock() + 1));
    });
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = backgroundTimer(this.#ttlMs / 3, () => {
      if (this.#state !== 'joined' || this.#ctx.crashed) return;
      const expiresAt = this.#ctx.backend.heartbeat(
        this.group,
        this.memberId,
        this.incarnation,
        this.#ctx.clock(),
      );
      if (expiresAt === undefined) {
        this.lost('the backend no longer lists it');
        return;
      }
      this.#setDeadline(expiresAt);
      this.#scheduleHeartbeat();
    });
  }
}
