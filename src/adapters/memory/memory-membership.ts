import createDebug from 'debug';
import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import { backgroundTimer, type HandleContext } from './handle-context.js';

const debug = createDebug('graceful-drain:memory');

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
  #done = false;

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

  /** Leaves the group; the backend has confirmed when this resolves. The signal is not aborted. */
  leave(): Promise<void> {
    this.dispose(true);
    return Promise.resolve();
  }

  /** Ends the membership: the backend removed it. It is never re-added. */
  lost(message: string): void {
    if (this.#done) return;
    this.#end();
    debug('member %s of %s (%s) lost: %s', this.memberId, this.group, this.incarnation, message);
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
    if (this.#done) return;
    this.#end();
    if (reason !== undefined) {
      this.#controller.abort(
        new MembershipLostError(`Member "${this.memberId}" of group "${this.group}" was lost: ${reason}`),
      );
    }
    if (leave && !this.#ctx.crashed) {
      this.#ctx.backend.leave(this.group, this.memberId, this.incarnation);
      debug('member %s left %s', this.memberId, this.group);
    }
  }

  #end(): void {
    this.#done = true;
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadlineTimer);
    this.#ctx.forget(this);
  }

  // At the deadline the backend judges: if the member expired there, its loss callback ends this.
  #setDeadline(expiresAt: number): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(expiresAt - this.#ctx.clock(), () => {
      if (this.#done) return;
      this.#ctx.backend.expireMembers(this.group, this.#ctx.clock());
      if (!this.#done) this.#setDeadline(Math.max(expiresAt, this.#ctx.clock() + 1));
    });
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = backgroundTimer(this.#ttlMs / 3, () => {
      if (this.#done || this.#ctx.crashed) return;
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
