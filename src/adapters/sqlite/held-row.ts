/**
 * A lock or member row this process holds: its keep-alive, its loss signal, and how it is given back
 * (by `release()`/`leave()`, or by the coordinator's `close()`).
 *
 * @internal
 */

import createDebug from 'debug';
import { ClosedError } from '../../errors.js';
import { KeepAlive, type LossReason } from './keep-alive.js';

const debug = createDebug('graceful-drain:sqlite');

/** Why a held row's signal is aborted. */
export type AbortCause = LossReason | 'closed' | 'unreleased';

/** Options of {@link HeldRow}. */
export interface HeldRowOptions {
  /** For debug logs: `lock "x"`, `member "m" of "g"`. */
  readonly label: string;
  /** The TTL the row was written with. */
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that created the row began. */
  readonly startedAt: number;
  /** Extends the row; resolves `false` when it is no longer ours. See `KeepAliveOptions.renew`. */
  readonly renew: (until: number) => Promise<boolean>;
  /** Deletes or frees the row, owner-checked. */
  readonly free: () => Promise<void>;
  /** The reason the signal is aborted with. */
  readonly reason: (cause: AbortCause, error?: unknown) => Error;
}

/** A held row. Created right after the transaction that wrote it, so `close()` always finds it. */
export class HeldRow {
  readonly #options: HeldRowOptions;
  readonly #controller = new AbortController();
  readonly #keepAlive: KeepAlive;
  #state: 'held' | 'closed' | 'given' = 'held';
  #given: Promise<void> | undefined;

  constructor(options: HeldRowOptions) {
    this.#options = options;
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      startedAt: options.startedAt,
      renew: options.renew,
      onLost: (reason, error) => {
        debug('lost %s (%s)', options.label, reason);
        this.#controller.abort(options.reason(reason, error));
      },
      onError: (error) => debug('renewing %s failed: %O', options.label, error),
    });
  }

  /** Aborted when the row is lost (or given up by `close()`). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The local deadline on the `now()` clock. */
  get deadline(): number {
    return this.#keepAlive.deadline;
  }

  /**
   * Gives the row back (release, leave): stops renewing and frees it. Idempotent: every call gets
   * the same promise. Resolves when the row was lost or `close()` already freed it; rejects only
   * when a row still held could not be freed (it then expires with its TTL, and the signal aborts).
   */
  give(): Promise<void> {
    this.#given ??= (async () => {
      this.#keepAlive.stop();
      if (this.#state !== 'held') return;
      this.#state = 'given';
      try {
        await this.#options.free();
        debug('gave back %s', this.#options.label);
      } catch (error) {
        if (this.signal.aborted || error instanceof ClosedError) return;
        this.#controller.abort(this.#options.reason('unreleased', error));
        throw error;
      }
    })();
    return this.#given;
  }

  /**
   * For `close()`: stops renewing and aborts the signal at once (the holder stops before the row is
   * freed), then frees the row. Does nothing when the row was already given back.
   */
  async close(): Promise<void> {
    if (this.#state !== 'held') return;
    this.#state = 'closed';
    this.#keepAlive.stop();
    this.#controller.abort(this.#options.reason('closed'));
    await this.#options.free();
  }
}
