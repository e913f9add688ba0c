import createDebug from 'debug';
import { Hold, type HoldOptions, type TtlOptions } from '../../internal/keep-alive.js';
import { now } from '../../internal/time.js';
import type { BackendState } from './backend.js';

/** The adapter's debug log. @internal */
export const debug = createDebug('graceful-drain:memory');

/** What a hold needs from its coordinator: the holds it tracks; once `crashed()`, hands off the backend. */
export interface HoldContext {
  readonly backend: BackendState;
  readonly clock: () => number;
  readonly crashed: () => boolean;
  readonly holds: Set<MemoryHold>;
}

/** A lease or a membership: `renew` at the backend's clock (false when gone), `free` (owner-checked). */
type MemoryHoldOptions = Pick<HoldOptions, 'label' | 'lostError'> &
  Pick<TtlOptions, 'ttlMs' | 'lossMessages'> & { renew: (clock: number) => boolean; free: () => void };

/**
 * A memory lease's or membership's hold. States: `held`; `abandoned` once a give was given up: no longer
 * renewed, so it expires with its TTL unless a later give frees it sooner; `done`.
 * @internal
 */
export class MemoryHold extends Hold {
  readonly #ctx: HoldContext;
  readonly #free: () => void;
  #state: 'held' | 'abandoned' | 'done' = 'held';

  constructor(ctx: HoldContext, { renew, free, ...options }: MemoryHoldOptions) {
    super({ ...options, debug, sentAt: now(), renew: () => !ctx.crashed() && renew(ctx.clock()) });
    this.#ctx = ctx;
    this.#free = free;
    ctx.holds.add(this);
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
        this.stopRenewing();
        debug('%s: give-back given up, it expires with its TTL', this.label);
      }
      throw signal.reason;
    }
    this.dispose(true);
  }

  /** Ends the hold: the backend took it away, or the local deadline passed. It is never re-created. */
  override lost(message: string): void {
    this.dispose(false, message);
  }

  /**
   * Stops every timer; frees the hold too unless the coordinator crashed. With a `reason` (the coordinator
   * is closing under a holder), the signal aborts first, before the hold is freed.
   */
  dispose(free: boolean, reason?: string): void {
    if (this.#state === 'done') return;
    const held = this.#state === 'held';
    this.#state = 'done';
    this.stopRenewing();
    this.#ctx.holds.delete(this);
    if (reason !== undefined && held) this.abort(reason);
    if (free && !this.#ctx.crashed()) {
      this.#free();
      debug('%s given back', this.label);
    }
  }
}
