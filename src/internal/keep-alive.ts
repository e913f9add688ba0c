/**
 * The one keep-alive of every TTL lease and membership (memory, SQLite and Redis coordinators): renews
 * every `ttlMs / 3` and gives the hold up at a local deadline on the monotonic clock, ahead of the
 * backend's expiry. The deadline is when the last successful write was *sent*, plus `ttlMs`, minus
 * {@link safetyMarginOf}; the margin absorbs late timers, one SQLite busy wait and clock drift. See
 * "One safety margin" in docs/coordinator.md.
 * @internal
 */
import { ClosedError } from '../errors.js';
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

/** Why a hold was lost: its local deadline passed (`expired`), or the backend no longer has it (`gone`). */
export type LossReason = 'expired' | 'gone';

/** Options of {@link KeepAlive}. */
export interface KeepAliveOptions {
  /** The TTL the hold was written with. */
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that created the hold was sent. */
  readonly sentAt: number;
  /** Extends the hold by `ttlMs`: false when it is gone; rejects while the backend cannot be written. */
  readonly renew: (deadline: number) => boolean | Promise<boolean>;
  /** Called once when the hold is lost, the keep-alive stopped. */
  readonly onLost: (reason: LossReason, cause?: unknown) => void;
  /** Reports a renewal that failed and will be retried. */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/** Renews a hold until stopped or lost, one renewal at a time (a hung one is overtaken by the deadline). */
export class KeepAlive {
  readonly #options: KeepAliveOptions;
  #deadline = 0;
  #renewTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: KeepAliveOptions) {
    this.#options = options;
    this.#arm(options.sentAt);
  }

  /** The local deadline on the `now()` clock: the hold is given up at this moment unless renewed. */
  get deadline(): number {
    return this.#deadline;
  }

  /** Stops renewing, as a killed process would; the deadline still gives the hold up. */
  halt(): void {
    clearTimeout(this.#renewTimer);
  }

  /** Stops renewing and watching the deadline (the hold is given back, or left to expire). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
  }

  #arm(sentAt: number): void {
    const { ttlMs } = this.#options;
    this.#deadline = sentAt + ttlMs - safetyMarginOf(ttlMs);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimer(this.#deadline - now(), () => this.#lose('expired'));
    this.#schedule(sentAt + ttlMs / 3 - now());
  }

  #schedule(ms: number): void {
    clearTimeout(this.#renewTimer);
    this.#renewTimer = backgroundTimer(ms, () => void this.#renew());
  }

  #lose(reason: LossReason, cause?: unknown): void {
    if (this.#stopped) return;
    this.stop();
    this.#options.onLost(reason, cause);
  }

  async #renew(): Promise<void> {
    const sentAt = now();
    // A timer that fired late (a blocked event loop) must not renew what the deadline gave up.
    if (sentAt >= this.#deadline) return this.#lose('expired');
    let renewed: boolean;
    try {
      renewed = await this.#options.renew(this.#deadline);
    } catch (error) {
      if (this.#stopped || error instanceof ClosedError) return;
      this.#options.onError?.(error);
      if (now() >= this.#deadline) return this.#lose('expired', error);
      // Retry soon; the deadline timer gives up if nothing gets through in time.
      return this.#schedule(Math.max(10, this.#options.ttlMs / 10) * (0.5 + Math.random()));
    }
    if (this.#stopped) return;
    if (!renewed) return this.#lose('gone');
    // Answered after the deadline the holder may already have acted on: the deadline stands.
    if (now() >= this.#deadline) return this.#lose('expired');
    this.#arm(sentAt);
  }
}
