import createDebug from 'debug';
import type { CoordinatorCallOptions, Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { now } from '../../internal/time.js';
import { backgroundTimer, checkCallSignal, type HandleContext } from './handle-context.js';

const debug = createDebug('graceful-drain:memory');

/**
 * How long before the backend's expiry the local deadline falls, so the signal aborts before anyone
 * else can take the lock even when the renewal and a waiter's re-check fall due together.
 */
function marginOf(ttlMs: number): number {
  return Math.min(ttlMs / 10, 1000);
}

/**
 * Where a lease is in its life: `abandoned` once a `release()` was given up (its signal was aborted):
 * no longer renewed, so the lock expires with its TTL unless a later `release()` frees it sooner.
 */
type LeaseState = 'held' | 'abandoned' | 'done';

/** A lock held through a `MemoryCoordinator`: renewed every `ttlMs / 3` until released or lost. @internal */
export class MemoryLease implements Lease {
  readonly name: string;
  readonly token: bigint;
  readonly #ctx: HandleContext;
  readonly #owner: string;
  readonly #ttlMs: number;
  readonly #controller = new AbortController();
  /** The local deadline on the coordinator's clock, which the backend judges expiry by. */
  #localDeadline = 0;
  /** The same moment on the `performance.now()` clock, as `deadline` gives it. */
  #deadline = 0;
  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #state: LeaseState = 'held';

  constructor(
    ctx: HandleContext,
    name: string,
    owner: string,
    token: bigint,
    ttlMs: number,
    expiresAt: number,
  ) {
    this.#ctx = ctx;
    this.name = name;
    this.#owner = owner;
    this.token = token;
    this.#ttlMs = ttlMs;
    this.#setDeadline(expiresAt);
    this.#scheduleRenewal();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get deadline(): number {
    return this.#deadline;
  }

  /**
   * Releases the lock if this lease still holds it. The signal is not aborted: nothing was lost.
   * With a `signal` already aborted, the release is given up: it rejects with `signal.reason`, frees
   * nothing, and stops the renewals, so the lock expires with its TTL (a later `release()` frees it
   * at once). Resolves whatever the signal once there is nothing left to do (released or lost).
   */
  async release(options?: CoordinatorCallOptions): Promise<void> {
    const signal = checkCallSignal('release()', options);
    if (this.#state === 'done') return;
    if (signal?.aborted) {
      this.#abandon();
      throw signal.reason;
    }
    this.dispose(true);
  }

  /** Ends the lease: the backend took the lock away, or the local deadline passed. */
  lost(message: string): void {
    if (this.#state === 'done') return;
    const held = this.#state === 'held';
    this.#end();
    debug('lease %s (token %s) %s: %s', this.name, this.token, held ? 'lost' : 'expired', message);
    if (held) this.#controller.abort(new LockLostError(`The lock "${this.name}" was lost: ${message}`));
  }

  /** Stops renewing, as a killed process would; the local deadline still aborts the signal. */
  crash(): void {
    clearTimeout(this.#renewTimer);
  }

  /**
   * Stops every timer; frees the lock too unless the coordinator crashed. With a `reason` (the
   * coordinator is closing under a holder), the signal aborts first, before the lock is free.
   */
  dispose(release: boolean, reason?: string): void {
    if (this.#state === 'done') return;
    const held = this.#state === 'held';
    this.#end();
    if (reason !== undefined && held)
      this.#controller.abort(new LockLostError(`The lock "${this.name}" was lost: ${reason}`));
    if (release && !this.#ctx.crashed) {
      this.#ctx.backend.release(this.name, this.#owner);
      debug('lease %s (token %s) released', this.name, this.token);
    }
  }

  // Still tracked by the coordinator, so that close() frees the lock; the backend's expiry ends it.
  #abandon(): void {
    if (this.#state !== 'held') return;
    this.#state = 'abandoned';
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
    debug('lease %s (token %s): release given up, it expires with its TTL', this.name, this.token);
  }

  #end(): void {
    this.#state = 'done';
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
    this.#ctx.forget(this);
  }

  // `expiresAt` is on the coordinator's clock; the deadline is published on now()'s, taking the
  // distance from the same reading of both, so that it is the moment the timer below fires.
  #setDeadline(expiresAt: number): void {
    this.#localDeadline = expiresAt - marginOf(this.#ttlMs);
    const remaining = this.#localDeadline - this.#ctx.clock();
    this.#deadline = now() + remaining;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(remaining, () =>
      this.lost('it was not renewed before its local deadline'),
    );
  }

  #scheduleRenewal(): void {
    this.#renewTimer = backgroundTimer(this.#ttlMs / 3, () => {
      if (this.#state !== 'held' || this.#ctx.crashed) return;
      const expiresAt = this.#ctx.backend.renew(this.name, this.#owner, this.#ttlMs, this.#ctx.clock());
      if (expiresAt === undefined) {
        this.lost('the backend no longer holds it for this lease');
        return;
      }
      this.#setDeadline(expiresAt);
      this.#scheduleRenewal();
    });
  }
}
