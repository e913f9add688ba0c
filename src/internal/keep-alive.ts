/**
 * The hold behind every coordinator adapter's leases and memberships: a loss signal aborted once, with
 * the adapter's error, and the `Lease` or `Membership` handed out. The TTL ones (memory, SQLite, Redis)
 * share one keep-alive: renewed every `ttlMs / 3`, given up at a local deadline on the monotonic clock,
 * ahead of the backend's expiry. A hold costs one timer while nothing is due (the renewal's); the deadline's
 * timer is armed only once a renewal is due, since the deadline cannot pass before (it is at least
 * `ttlMs / 2` after the write, the renewal `ttlMs / 3`), and a renewal timer that fires late finds it
 * passed. The signal is created on first read: most leases are released without anyone listening. The deadline is when the last successful write was *sent*, plus `ttlMs`,
 * minus {@link safetyMarginOf}; the margin absorbs late timers, one SQLite busy wait and clock drift. See
 * "One safety margin" in docs/coordinator.md.
 * @internal
 */
import type { CoordinatorCallOptions, Lease, Membership } from '../coordinator.js';
import { ClosedError } from '../errors.js';
import { abortable } from './abortable.js';
import { checkCallOptions } from './store-args.js';
import { now } from './time.js';

/**
 * How long before the backend's expiry the local deadline falls: a fifth of the TTL, at least 50 ms (a
 * late timer eats that much whatever the TTL), at most half the TTL (the first renewal stays ahead).
 */
export function safetyMarginOf(ttlMs: number): number {
  return Math.min(ttlMs / 2, Math.max(50, ttlMs / 5));
}

/** An unref'd timer for background work (renewals, heartbeats, deadlines): none keeps the process alive. */
export function backgroundTimer(ms: number, fn: () => void): NodeJS.Timeout {
  const timer = setTimeout(fn, Math.max(0, ms));
  timer.unref();
  return timer;
}

/** Why a TTL hold was lost: its local deadline passed (`expired`), or the backend no longer has it (`gone`). */
export type LossReason = 'expired' | 'gone';

/** What sets a hold apart: its debug label and log, the error its signal aborts with, how it stays alive. */
export type HoldOptions = {
  /** Names it in the debug log: `lease "x" (token 1)`. */
  readonly label: string;
  readonly debug: (format: string, ...args: unknown[]) => void;
  readonly lostError: (message: string, cause?: unknown) => Error;
} & (TtlOptions | { readonly deadline?: () => number });

/** A TTL hold's keep-alive. */
export interface TtlOptions {
  /** The TTL the hold was written with. */
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that created the hold was sent. */
  readonly sentAt: number;
  /** Extends the hold by `ttlMs`: false when it is gone; rejects while the backend cannot be written. */
  readonly renew: (deadline: number) => boolean | Promise<boolean>;
  /** The message of each loss. */
  readonly lossMessages: Readonly<Record<LossReason, string>>;
}

/**
 * A lease's or a membership's hold, given back through {@link Hold.giveOnce} or a subclass's own way. A
 * TTL hold renews one renewal at a time (a hung one is overtaken by the deadline) until stopped or lost.
 */
export class Hold {
  readonly #options: HoldOptions;
  readonly #ttl: TtlOptions | undefined;
  /** Created on the first read of {@link Hold.signal}. */
  #controller: AbortController | undefined;
  /** The abort reason once aborted; kept for a signal created afterwards. */
  #reason: Error | undefined;
  #deadline = 0;
  #renewTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #giving: Promise<void> | undefined;
  #given = false;

  constructor(options: HoldOptions) {
    this.#options = options;
    if (!('ttlMs' in options)) return;
    this.#ttl = options;
    this.#arm(options.sentAt);
  }

  get label(): string {
    return this.#options.label;
  }

  /** Aborted once with the adapter's error when the hold is lost. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Whether the signal was aborted (without creating it). */
  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  /** The local deadline (`now()` clock): a TTL hold is given up then unless renewed. */
  get deadline(): number {
    const o = this.#options;
    return 'ttlMs' in o ? this.#deadline : (o.deadline?.() ?? Infinity);
  }

  /** Whether a {@link Hold.giveOnce} is under way or done. */
  get giving(): boolean {
    return this.#giving !== undefined;
  }

  /** The keep-alive found the hold lost (renewals stopped): aborts the signal unless a subclass does more. */
  lost(message: string, cause?: unknown, _reason?: LossReason): void {
    this.abort(message, cause);
  }

  /** Aborts the signal with the adapter's error; false when it was aborted already. */
  abort(message: string, cause?: unknown): boolean {
    if (this.#reason !== undefined) return false;
    this.#options.debug('%s lost: %s', this.#options.label, message);
    this.#reason = this.#options.lostError(message, cause);
    this.#controller?.abort(this.#reason);
    return true;
  }

  /**
   * Runs `give` (a release, a leave) for every caller until it succeeds, one run at a time; each caller
   * stops waiting when its own `signal` aborts, the run going on. Once given back, resolves at once.
   */
  giveOnce(give: () => Promise<void>, signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#given) return undefined;
    this.#giving ??= give().then(
      () => void (this.#given = true),
      (error: unknown) => {
        this.#giving = undefined;
        throw error;
      },
    );
    return abortable(this.#giving, signal);
  }

  /** Stops renewing and watching the deadline (the hold is given back, or left to expire). */
  stopRenewing(): void {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
  }

  /** Stops renewing, as a killed process would; the deadline still gives the hold up. */
  halt(): void {
    clearTimeout(this.#renewTimer);
    if (this.#ttl !== undefined && !this.#stopped) this.#watchDeadline();
  }

  /** The lease on this hold, given back by `release(signal)`. */
  lease(name: string, token: bigint, release: (signal: AbortSignal | undefined) => unknown): Lease {
    return new HoldLease(this, name, token, release);
  }

  /** The membership on this hold, given back by `leave(signal)`. */
  membership(
    group: string,
    memberId: string,
    incarnation: string,
    leave: (signal: AbortSignal | undefined) => unknown,
  ): Membership {
    return new HoldMembership(this, group, memberId, incarnation, leave);
  }

  #arm(sentAt: number): void {
    const { ttlMs } = this.#ttl as TtlOptions;
    this.#deadline = sentAt + ttlMs - safetyMarginOf(ttlMs);
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
    this.#schedule(sentAt + ttlMs / 3 - now());
  }

  /** Arms the deadline's timer, from the moment a renewal is due until one gets through. */
  #watchDeadline(): void {
    this.#deadlineTimer ??= backgroundTimer(this.#deadline - now(), () => this.#lose('expired'));
  }

  #schedule(ms: number): void {
    clearTimeout(this.#renewTimer);
    this.#renewTimer = backgroundTimer(ms, () => void this.#renew());
  }

  #lose(reason: LossReason, cause?: unknown): void {
    if (this.#stopped) return;
    this.stopRenewing();
    this.lost((this.#ttl as TtlOptions).lossMessages[reason], cause, reason);
  }

  async #renew(): Promise<void> {
    const { ttlMs, renew } = this.#ttl as TtlOptions;
    const sentAt = now();
    // A timer that fired late (a blocked event loop) must not renew what the deadline gave up.
    if (sentAt >= this.#deadline) return this.#lose('expired');
    this.#watchDeadline();
    let renewed: boolean;
    try {
      renewed = await renew(this.#deadline);
    } catch (error) {
      if (this.#stopped || error instanceof ClosedError) return;
      this.#options.debug('%s: renewal failed, retrying: %O', this.#options.label, error);
      if (now() >= this.#deadline) return this.#lose('expired', error);
      // Retry soon; the deadline timer gives up if nothing gets through in time.
      return this.#schedule(Math.max(10, ttlMs / 10) * (0.5 + Math.random()));
    }
    if (this.#stopped) return;
    if (!renewed) return this.#lose('gone');
    // Answered after the deadline the holder may already have acted on: the deadline stands.
    if (now() >= this.#deadline) return this.#lose('expired');
    this.#arm(sentAt);
  }
}

// A lease and a membership are frozen class instances, their `signal` (and `deadline`) read through the
// prototype: an object literal with getters gets a hidden class of its own, which made every acquire
// allocate one in the old generation (several microseconds, and garbage collections). `release` and
// `leave` are own arrow functions, so that they work detached (`const { release } = lease`).

class HoldLease implements Lease {
  readonly name: string;
  readonly token: bigint;
  readonly release: (options?: CoordinatorCallOptions) => Promise<void>;
  readonly #hold: Hold;

  constructor(
    hold: Hold,
    name: string,
    token: bigint,
    release: (signal: AbortSignal | undefined) => unknown,
  ) {
    this.#hold = hold;
    this.name = name;
    this.token = token;
    this.release = async (options) => {
      await release(checkCallOptions('release()', options));
    };
    Object.freeze(this);
  }

  get signal(): AbortSignal {
    return this.#hold.signal;
  }

  get deadline(): number {
    return this.#hold.deadline;
  }
}

class HoldMembership implements Membership {
  readonly group: string;
  readonly memberId: string;
  readonly incarnation: string;
  readonly leave: (options?: CoordinatorCallOptions) => Promise<void>;
  readonly #hold: Hold;

  constructor(
    hold: Hold,
    group: string,
    memberId: string,
    incarnation: string,
    leave: (signal: AbortSignal | undefined) => unknown,
  ) {
    this.#hold = hold;
    this.group = group;
    this.memberId = memberId;
    this.incarnation = incarnation;
    this.leave = async (options) => {
      await leave(checkCallOptions('leave()', options));
    };
    Object.freeze(this);
  }

  get signal(): AbortSignal {
    return this.#hold.signal;
  }
}
