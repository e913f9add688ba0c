import createDebug from 'debug';
import type { CoordinatorCallOptions, Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { bounded, now } from '../../internal/time.js';
import { checkOptionsObject, invalid } from '../../validate.js';
import type { LockKeys } from './redis-keys.js';
import { RELEASE, RENEW } from './redis-scripts.js';
import { type Cleanup, describeError, type RedisSession, type SessionWatcher } from './redis-session.js';
import { backgroundTimer, safetyMarginOf } from './redis-timing.js';

const debug = createDebug('graceful-drain:redis');

/** What a lease or a membership needs from its coordinator. @internal */
export interface HandleContext {
  readonly session: RedisSession;
  /** Stops tracking a handle that is released, left or lost. */
  forget(handle: object): void;
}

const CALL_OPTION_NAMES = Object.freeze(['signal']);

/** The `signal` of `{ signal }` options (members, leave, release), checked. @internal */
export function checkCallSignal(where: string, options: unknown): AbortSignal | undefined {
  const { signal } = checkOptionsObject(where, options, CALL_OPTION_NAMES);
  if (signal !== undefined && !(signal instanceof AbortSignal)) invalid('signal', 'an AbortSignal', signal);
  return signal;
}

/** The owner-checked delete of a lock, as a clean-up. @internal */
export function releaseCleanup(name: string, keys: LockKeys, owner: string, ttlMs: number): Cleanup {
  return {
    what: `release lock "${name}"`,
    script: RELEASE,
    keys: [keys.owner],
    args: [owner],
    expiresAt: now() + ttlMs,
  };
}

/**
 * A lock held through a `RedisCoordinator`. Renewed every `ttlMs / 3`; its local deadline is the send
 * time of the last successful acquire or renewal plus `ttlMs` minus a safety margin, so the signal
 * aborts before the server can expire the key. It also aborts when the connection it was taken on
 * closes.
 *
 * @internal
 */
export class RedisLease implements Lease, SessionWatcher {
  readonly name: string;
  readonly token: bigint;
  readonly #ctx: HandleContext;
  readonly #keys: LockKeys;
  readonly #owner: string;
  readonly #ttlMs: number;
  readonly #controller = new AbortController();
  #deadline = 0;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  #state: 'held' | 'released' | 'lost' = 'held';
  /** True once the delete was answered, or handed to the session to send on the next connection. */
  #releaseDone = false;

  constructor(
    ctx: HandleContext,
    name: string,
    keys: LockKeys,
    owner: string,
    token: bigint,
    ttlMs: number,
    sentAt: number,
  ) {
    this.#ctx = ctx;
    this.name = name;
    this.#keys = keys;
    this.#owner = owner;
    this.token = token;
    this.#ttlMs = ttlMs;
    this.#setDeadline(sentAt);
    this.#scheduleRenewal(sentAt);
    ctx.session.watch(this);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get deadline(): number {
    return this.#deadline;
  }

  /**
   * Deletes the lock if this lease still owns it. When Redis cannot be reached the delete is retried
   * on the next connection (and the lock expires within its TTL anyway), and this resolves. The signal
   * is not aborted: nothing was lost. Renewals stop at once, whatever happens next.
   *
   * When `signal` aborts (or is aborted already), the release is given up: it rejects with
   * `signal.reason` and nothing more is sent or retried; the lock then expires with its TTL (a delete
   * already written may still run: it is owner-checked, so harmless). A later call tries again.
   * Resolves whatever the signal once there is nothing left to do (released, or lost).
   */
  async release(options?: CoordinatorCallOptions): Promise<void> {
    const signal = checkCallSignal('release()', options);
    if (this.#state === 'lost' || this.#releaseDone) return;
    if (this.#state === 'held') this.#end('released');
    if (signal?.aborted) throw this.#givenUp(signal);
    const cleanup = releaseCleanup(this.name, this.#keys, this.#owner, this.#ttlMs);
    const session = this.#ctx.session;
    try {
      await bounded(
        session.eval(cleanup.script, cleanup.keys, cleanup.args),
        session.timeoutMs,
        () => new Error(`no answer within ${session.timeoutMs} ms`),
        signal,
      );
      debug('lease %s (token %s) released', this.name, this.token);
    } catch (error) {
      if (signal?.aborted) throw this.#givenUp(signal);
      debug(
        'lease %s (token %s): release failed, retrying later: %s',
        this.name,
        this.token,
        describeError(error),
      );
      session.cleanup(cleanup);
    }
    this.#releaseDone = true;
  }

  #givenUp(signal: AbortSignal): unknown {
    debug('lease %s (token %s): release given up, it expires with its TTL', this.name, this.token);
    return signal.reason;
  }

  /** The connection this lease was taken on closed. */
  sessionLost(): void {
    this.lost('the connection to Redis was lost');
  }

  /**
   * Ends the lease: aborts the signal first, then deletes the lock if it is still ours, so that the
   * holder has been told before anyone else can take it.
   */
  lost(message: string): void {
    if (this.#state !== 'held') return;
    this.#end('lost');
    debug('lease %s (token %s) lost: %s', this.name, this.token, message);
    this.#controller.abort(new LockLostError(`The lock "${this.name}" was lost: ${message}`));
    this.#ctx.session.cleanup(releaseCleanup(this.name, this.#keys, this.#owner, this.#ttlMs));
  }

  #end(state: 'released' | 'lost'): void {
    this.#state = state;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
    this.#ctx.session.unwatch(this);
    this.#ctx.forget(this);
  }

  #setDeadline(sentAt: number): void {
    this.#deadline = sentAt + this.#ttlMs - safetyMarginOf(this.#ttlMs);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(this.#deadline - now(), () =>
      this.lost('it could not be renewed before its local deadline'),
    );
  }

  #scheduleRenewal(from: number): void {
    this.#renewTimer = backgroundTimer(from + this.#ttlMs / 3 - now(), () => void this.#renew());
  }

  // One renewal in flight at a time: one that hangs is overtaken by the local deadline.
  async #renew(): Promise<void> {
    if (this.#state !== 'held') return;
    const sentAt = now();
    let reply: unknown;
    try {
      reply = await this.#ctx.session.eval(RENEW, [this.#keys.owner], [this.#owner, this.#ttlMs]);
    } catch (error) {
      if (this.#state !== 'held') return;
      debug('lease %s: renewal failed, retrying: %s', this.name, describeError(error));
      this.#renewTimer = backgroundTimer(Math.max(10, this.#ttlMs / 10), () => void this.#renew());
      return;
    }
    if (this.#state !== 'held') return;
    if (reply !== 1) {
      this.lost('Redis no longer holds it for this lease (it expired or was deleted)');
      return;
    }
    // Answered, but after the deadline the holder may already have acted on: keep the promise.
    if (now() >= this.#deadline) {
      this.lost('the renewal was answered after its local deadline');
      return;
    }
    this.#setDeadline(sentAt);
    this.#scheduleRenewal(sentAt);
  }
}
