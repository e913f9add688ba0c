import createDebug from 'debug';
import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { backgroundTimer, type HandleContext } from './handle-context.js';

const debug = createDebug('graceful-drain:memory');

/**
 * How long before the backend's expiry the local deadline falls, so the signal aborts before anyone
 * else can take the lock even when the renewal and a waiter's re-check fall due together.
 */
function marginOf(ttlMs: number): number {
  return Math.min(ttlMs / 10, 1000);
}

/** A lock held through a `MemoryCoordinator`: renewed every `ttlMs / 3` until released or lost. @internal */
export class MemoryLease implements Lease {
  readonly name: string;
  readonly token: bigint;
  readonly #ctx: HandleContext;
  readonly #owner: string;
  readonly #ttlMs: number;
  readonly #controller = new AbortController();
  #deadline = 0;
  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #done = false;

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

  /** Releases the lock if this lease still holds it. The signal is not aborted: nothing was lost. */
  release(): Promise<void> {
    this.dispose(true);
    return Promise.resolve();
  }

  /** Ends the lease: the backend took the lock away, or the local deadline passed. */
  lost(message: string): void {
    if (this.#done) return;
    this.#end();
    debug('lease %s (token %s) lost: %s', this.name, this.token, message);
    this.#controller.abort(new LockLostError(`The lock "${this.name}" was lost: ${message}`));
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
    if (this.#done) return;
    this.#end();
    if (reason !== undefined)
      this.#controller.abort(new LockLostError(`The lock "${this.name}" was lost: ${reason}`));
    if (release && !this.#ctx.crashed) {
      this.#ctx.backend.release(this.name, this.#owner);
      debug('lease %s (token %s) released', this.name, this.token);
    }
  }

  #end(): void {
    this.#done = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
    this.#ctx.forget(this);
  }

  #setDeadline(expiresAt: number): void {
    this.#deadline = expiresAt - marginOf(this.#ttlMs);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(this.#deadline - this.#ctx.clock(), () =>
      this.lost('it was not renewed before its local deadline'),
    );
  }

  #scheduleRenewal(): void {
    this.#renewTimer = backgroundTimer(this.#ttlMs / 3, () => {
      if (this.#done || this.#ctx.crashed) return;
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
