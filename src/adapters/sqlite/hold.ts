/**
 * What a SQLite lease and a membership share: a lock or member row this process holds, its
 * keep-alive, its loss signal, and how it is given back (by `release()`/`leave()`, or by the
 * coordinator's `close()`).
 *
 * @internal
 */
import createDebug from 'debug';
import { ClosedError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { KeepAlive, type LossReason } from '../../internal/keep-alive.js';
import type { CoordinatorStatements } from './coordinator-sql.js';

const debug = createDebug('graceful-drain:sqlite');

/** Why a held row's signal is aborted. */
export type AbortCause = LossReason | 'closed' | 'unreleased';

/** What a hold needs from the coordinator that made it. */
export interface HoldContext {
  /** Runs `work` as one write, retried while busy until `until`, stopped by `signal`. */
  write<T>(
    what: string,
    work: (sql: CoordinatorStatements) => T,
    until?: number,
    signal?: AbortSignal,
  ): Promise<T>;
  /** Stops tracking a hold that was given back. */
  forget(hold: SqliteHold): void;
}

/** Options of {@link SqliteHold}. */
export interface HoldOptions {
  /** For debug logs: `lock "x"`, `member "m" of "g"`. */
  readonly label: string;
  /** The TTL the row was written with. */
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that created the row began. */
  readonly sentAt: number;
  /** Extends the row; resolves `false` when it is no longer ours. See `KeepAliveOptions.renew`. */
  readonly renew: (until: number) => Promise<boolean>;
  /** Deletes or frees the row, owner-checked; stops retrying when `signal` aborts. */
  readonly free: (signal?: AbortSignal) => Promise<void>;
  /** The reason the signal is aborted with. */
  readonly reason: (cause: AbortCause, error?: unknown) => Error;
}

/**
 * A held row. Created right after the transaction that wrote it, so `close()` always finds it.
 *
 * States: `held` (renewed); `given` (its holder gave it back: renewals stopped, the free not yet
 * confirmed); `freed` (deleted or freed, or lost for good); `closed` (`close()` took it over).
 */
export class SqliteHold {
  readonly #ctx: HoldContext;
  readonly #options: HoldOptions;
  readonly #controller = new AbortController();
  readonly #keepAlive: KeepAlive;
  #state: 'held' | 'given' | 'freed' | 'closed' = 'held';
  #freeing: Promise<void> | undefined;

  constructor(ctx: HoldContext, options: HoldOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      sentAt: options.sentAt,
      renew: options.renew,
      onLost: (reason, error) => {
        debug('lost %s (%s)', options.label, reason);
        this.#controller.abort(options.reason(reason, error));
      },
      onError: (error) => debug('renewing %s failed: %O', options.label, error),
    });
  }

  /** Aborted when the row is lost (or given up by `close()` or an abandoned give). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The local deadline on the `now()` clock. */
  get deadline(): number {
    return this.#keepAlive.deadline;
  }

  /** Whether nothing is left to free: the row was freed, or `close()` took it over. */
  get done(): boolean {
    return this.#state === 'freed' || this.#state === 'closed';
  }

  /**
   * Gives the row back (release, leave): stops renewing and frees it, owner-checked. Idempotent:
   * resolves at once when the row was freed already or `close()` took it over; callers arriving while
   * a free is under way share it (each stops waiting when its own `signal` aborts).
   *
   * When `signal` aborts, the retries stop and the call rejects with `signal.reason` (an aborted
   * signal at the call writes nothing): the row is then given up, its `signal` aborted, and it expires
   * with its TTL unless a later give (or `close()`) frees it first. A free that fails otherwise
   * rejects likewise. A give of a row already lost never rejects: it tries the owner-checked free once.
   */
  give(signal?: AbortSignal): Promise<void> {
    if (this.done) return Promise.resolve();
    if (this.#state === 'held') {
      this.#keepAlive.stop();
      this.#state = 'given';
    }
    if (this.#freeing !== undefined) return abortable(this.#freeing, signal);
    // A row lost already (taken over, expired, given up before) has nothing left to confirm.
    const lost = this.signal.aborted;
    if (signal?.aborted) {
      if (lost) return Promise.resolve();
      this.#giveUp(signal.reason);
      return Promise.reject(signal.reason);
    }
    const freeing = (async () => {
      try {
        await this.#options.free(signal);
        if (this.#state === 'given') this.#state = 'freed';
        debug('gave back %s', this.#options.label);
      } catch (error) {
        // close() frees it (the connection is closing), or has already.
        if (lost || error instanceof ClosedError) return;
        this.#giveUp(error);
        throw error;
      } finally {
        this.#freeing = undefined;
      }
    })();
    this.#freeing = freeing;
    return freeing;
  }

  /** `release()` / `leave()`: gives the row back (see {@link give}), and forgets it once freed. */
  async giveBack(signal: AbortSignal | undefined): Promise<void> {
    await this.give(signal);
    this.#ctx.forget(this);
  }

  /** The holder gave up on freeing the row: it expires with its TTL; its signal says so. */
  #giveUp(error: unknown): void {
    if (!this.signal.aborted) this.#controller.abort(this.#options.reason('unreleased', error));
  }

  /**
   * For `close()`: stops renewing and aborts the signal at once (the holder stops before the row is
   * freed), then frees the row. Does nothing when the row was freed already; a row whose give failed
   * or was abandoned is freed here.
   */
  async close(): Promise<void> {
    // A give under way finishes first (the connection stays open until every close() is done).
    await this.#freeing?.catch(() => {});
    if (this.done) return;
    this.#state = 'closed';
    this.#keepAlive.stop();
    if (!this.signal.aborted) this.#controller.abort(this.#options.reason('closed'));
    await this.#options.free();
  }
}
