/**
 * Keeps a lease or a membership alive: renews every `ttlMs / 3`, and gives it up at a local deadline
 * on the monotonic clock, ahead of the expiry the database records, when renewals do not get through.
 *
 * @internal
 */

import { ClosedError } from '../../errors.js';
import { now } from '../../internal/time.js';

/**
 * The share of the TTL kept between the local deadline and the recorded expiry: it absorbs a late
 * timer, one blocked busy wait, and small wall-clock steps (the expiry is on `Date.now()`).
 */
const SAFETY_SHARE = 0.2;

/** Why a kept-alive row was lost. */
export type LossReason = 'expired' | 'gone';

/** Options of {@link KeepAlive}. */
export interface KeepAliveOptions {
  /** The TTL the row was written with. */
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that created the row began. */
  readonly startedAt: number;
  /**
   * Extends the row by `ttlMs`; resolves `false` when it is gone or no longer ours. Rejects while the
   * database cannot be written; it must not keep retrying past `until`.
   */
  readonly renew: (until: number) => Promise<boolean>;
  /** Called once when the row is lost; the keep-alive is stopped by then. */
  readonly onLost: (reason: LossReason, cause?: unknown) => void;
  /** Reports a renewal that failed and will be retried. */
  readonly onError?: (error: unknown) => void;
}

/** Renews a row until stopped or lost. Its timers never hold the process open. */
export class KeepAlive {
  readonly #options: KeepAliveOptions;
  #deadline: number;
  #renewTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: KeepAliveOptions) {
    this.#options = options;
    this.#deadline = this.#deadlineFrom(options.startedAt);
    this.#armDeadline();
    this.#schedule(options.ttlMs / 3);
  }

  /** The local deadline on the `now()` clock: the row is given up at this moment unless renewed. */
  get deadline(): number {
    return this.#deadline;
  }

  /** Stops renewing (the row is released elsewhere, or left to expire). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
  }

  #deadlineFrom(startedAt: number): number {
    return startedAt + this.#options.ttlMs * (1 - SAFETY_SHARE);
  }

  #lose(reason: LossReason, cause?: unknown): void {
    if (this.#stopped) return;
    this.stop();
    this.#options.onLost(reason, cause);
  }

  #armDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = setTimeout(() => this.#lose('expired'), Math.max(0, this.#deadline - now()));
    this.#deadlineTimer.unref();
  }

  #schedule(ms: number): void {
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => void this.#tick(), Math.max(0, ms));
    this.#renewTimer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const startedAt = now();
    // A timer that fired late (a blocked event loop) must not renew what the deadline gave up.
    if (startedAt >= this.#deadline) return this.#lose('expired');
    let renewed: boolean;
    try {
      renewed = await this.#options.renew(this.#deadline);
    } catch (error) {
      if (this.#stopped || error instanceof ClosedError) return;
      this.#options.onError?.(error);
      if (now() >= this.#deadline) return this.#lose('expired', error);
      // Retry soon; the deadline timer gives up if nothing gets through in time.
      this.#schedule((this.#options.ttlMs / 12) * (0.5 + Math.random()));
      return;
    }
    if (this.#stopped) return;
    if (!renewed) return this.#lose('gone');
    this.#deadline = this.#deadlineFrom(startedAt);
    this.#armDeadline();
    this.#schedule(this.#options.ttlMs / 3);
  }
}
