import createDebug from 'debug';
import { KeepAlive, type LossReason } from '../../internal/keep-alive.js';
import { now } from '../../internal/time.js';
import type { BackendState } from './backend.js';

/** The adapter's debug log. @internal */
export const debug = createDebug('graceful-drain:memory');

/**
 * What a hold needs from its coordinator: the holds it tracks until they end, and `crashed()`: once
 * true, nothing may touch the backend any more.
 */
export interface HoldContext {
  readonly backend: BackendState;
  readonly clock: () => number;
  readonly crashed: () => boolean;
  readonly holds: Set<MemoryHold>;
}

/**
 * What sets a lease apart from a membership: a `label` for the debug log, `renew` (false when the
 * backend no longer has the hold), `free` (owner-checked), and the error the signal aborts with.
 */
export interface HoldOptions {
  readonly label: string;
  readonly ttlMs: number;
  readonly renew: (clock: number) => boolean;
  readonly free: () => void;
  readonly lostError: (message: string) => Error;
  readonly lossMessages: Readonly<Record<LossReason, string>>;
}

/**
 * What a memory lease and a membership share: a lock or a membership held in the backend, renewed by
 * the keep-alive. States: `held`; `abandoned` once a give was given up: no longer renewed, so it
 * expires with its TTL unless a later give frees it sooner; `done`.
 * @internal
 */
export class MemoryHold {
  readonly #ctx: HoldContext;
  readonly #options: HoldOptions;
  readonly #controller = new AbortController();
  readonly #keepAlive: KeepAlive;
  readonly signal: AbortSignal = this.#controller.signal;
  #state: 'held' | 'abandoned' | 'done' = 'held';

  constructor(ctx: HoldContext, options: HoldOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      sentAt: now(),
      renew: () => !ctx.crashed() && options.renew(ctx.clock()),
      onLost: (reason) => this.lost(options.lossMessages[reason]),
    });
    ctx.holds.add(this);
  }

  get deadline(): number {
    return this.#keepAlive.deadline;
  }

  /**
   * Gives the hold back (release, leave) without aborting the signal. With `signal` already aborted the
   * give is given up: it throws `signal.reason`, frees nothing, and stops the renewals.
   */
  give(signal: AbortSignal | undefined): void {
    if (this.#state === 'done') return;
    if (signal?.aborted) {
      if (this.#state === 'held') {
        // Still tracked by the coordinator, so that close() frees it; the backend's expiry ends it.
        this.#state = 'abandoned';
        this.#keepAlive.stop();
        debug('%s: give-back given up, it expires with its TTL', this.#options.label);
      }
      throw signal.reason;
    }
    this.dispose(true);
  }

  /** Ends the hold: the backend took it away, or the local deadline passed. It is never re-created. */
  lost(message: string): void {
    if (this.#state !== 'done') debug('%s lost: %s', this.#options.label, message);
    this.dispose(false, message);
  }

  /** Stops renewing, as a killed process would; the local deadline still aborts the signal. */
  crash(): void {
    this.#keepAlive.halt();
  }

  /**
   * Stops every timer; frees the hold too unless the coordinator crashed. With a `reason` (the coordinator
   * is closing under a holder), the signal aborts first, before the hold is freed.
   */
  dispose(free: boolean, reason?: string): void {
    if (this.#state === 'done') return;
    const held = this.#end();
    if (reason !== undefined && held) this.#controller.abort(this.#options.lostError(reason));
    if (free && !this.#ctx.crashed()) {
      this.#options.free();
      debug('%s given back', this.#options.label);
    }
  }

  /** Whether the hold was still `held`. */
  #end(): boolean {
    const held = this.#state === 'held';
    this.#state = 'done';
    this.#keepAlive.stop();
    this.#ctx.holds.delete(this);
    return held;
  }
}
