/**
 * The one keep-alive of every lease and membership whose liveness is a TTL (the memory, SQLite and
 * Redis coordinators): it renews every `ttlMs / 3`, and gives the hold up at a local deadline on the
 * monotonic clock, ahead of the backend's expiry, when no renewal got through in time.
 *
 * ## The safety margin: one policy
 *
 * The local deadline is the moment the last successful write (acquire, join or renewal) was *sent*,
 * plus `ttlMs`, minus {@link safetyMarginOf}: **a fifth of the TTL, at least 50 ms, at most half the
 * TTL**. The backend set its expiry when it ran the write, after we sent it, so it outlives the
 * deadline by the margin at least. The margin absorbs, on any backend:
 *
 * - a timer that fires late on a busy event loop, which is what eats a margin in practice, whatever
 *   the TTL: hence the 50 ms floor;
 * - one SQLite busy wait that blocks the event loop (the SQLite coordinator keeps `busyTimeoutMs`
 *   below `ttlMs / 5` for that reason);
 * - the backend's clock running faster than ours (Redis: far below 1 % of the TTL), or a small step
 *   of the wall clock (SQLite's expiries are `Date.now()` values).
 *
 * Renewals fall at a third and two thirds of the TTL, so two of them can fail before the deadline;
 * the cap of half the TTL keeps the first renewal ahead of the deadline for very short TTLs.
 * PostgreSQL leases live with their session, not a TTL: its watchdog (`postgres/session.ts`) is
 * bounded by the server's keepalive window instead.
 *
 * @internal
 */
import { ClosedError } from '../errors.js';
import { now } from './time.js';

/** The shortest safety margin, in milliseconds (unless half the TTL is shorter). */
const MIN_MARGIN_MS = 50;

/** How long before the backend's expiry the local deadline falls: see the policy above. */
export function safetyMarginOf(ttlMs: number): number {
  return Math.min(ttlMs / 2, Math.max(MIN_MARGIN_MS, ttlMs / 5));
}

/**
 * A timer for background work (renewals, heartbeats, local deadlines, re-checks). Unref'd: none is
 * a reason to keep the process alive, and each is cleared when its hold ends.
 */
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
  /**
   * Extends the hold by `ttlMs`: `true` when done, `false` when the hold is gone or no longer ours.
   * Rejects while the backend cannot be written (retried until `deadline`, which bounds its own retries).
   */
  readonly renew: (deadline: number) => boolean | Promise<boolean>;
  /** Called once when the hold is lost; the keep-alive has stopped by then. */
  readonly onLost: (reason: LossReason, cause?: unknown) => void;
  /** Reports a renewal that failed and will be retried. */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/** Renews a hold until stopped or lost; one renewal at a time: one that hangs is overtaken by the deadline. */
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
