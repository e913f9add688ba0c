/**
 * What a SQLite lease and a membership share: the row this process holds, its keep-alive, its loss
 * signal, and how it is given back (`release()`/`leave()`, or the coordinator's `close()`).
 *
 * @internal
 */
import { ClosedError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { KeepAlive, type LossReason } from '../../internal/keep-alive.js';
import { debug, type WorkOptions } from './connection.js';
import type { CoordinatorStatements } from './coordinator-sql.js';

/** Why a held row's signal is aborted. */
export type AbortCause = LossReason | 'closed' | 'unreleased';

/** What a hold needs from its coordinator: a write retried while busy, and the set of holds it tracks. */
export interface HoldContext {
  run<T>(work: (sql: CoordinatorStatements) => T, options: WorkOptions): Promise<T>;
  readonly held: Set<SqliteHold>;
}

/** A write on the row: what it does (for messages), and the work at `wall` (`Date.now()`). */
type RowWrite<T> = readonly [what: string, work: (sql: CoordinatorStatements, wall: number) => T];

/** What sets a lease apart from a membership. */
export interface HoldOptions {
  /** For debug logs: `lock "x" token 1`, `member "m" of "g"`. */
  readonly label: string;
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that created the row began. */
  readonly sentAt: number;
  /** Extends the row, owner-checked: `false` when it is no longer ours. */
  readonly renew: RowWrite<boolean>;
  /** Deletes or frees the row, owner-checked. */
  readonly free: RowWrite<unknown>;
  readonly reason: (cause: AbortCause, error?: unknown) => Error;
}

/**
 * A held row, tracked from the synchronous step that wrote it, so `close()` always finds it. States:
 * `held` (renewed); `given` (given back, the free not yet confirmed); `freed` (or lost for good);
 * `closed` (`close()` took it over).
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
    const [what, renew] = options.renew;
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      sentAt: options.sentAt,
      renew: (until) => ctx.run((sql) => renew(sql, Date.now()), { what, until }),
      onLost: (reason, error) => {
        debug('lost %s (%s)', options.label, reason);
        this.#controller.abort(options.reason(reason, error));
      },
      onError: (error) => debug('renewing %s failed: %O', options.label, error),
    });
    ctx.held.add(this);
  }

  /** Aborted when the row is lost (or given up by `close()` or an abandoned give). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The local deadline on the `now()` clock. */
  get deadline(): number {
    return this.#keepAlive.deadline;
  }

  get #done(): boolean {
    return this.#state === 'freed' || this.#state === 'closed';
  }

  async #free(signal?: AbortSignal): Promise<void> {
    const [what, free] = this.#options.free;
    await this.#ctx.run((sql) => free(sql, Date.now()), { what, signal });
  }

  /**
   * `release()` / `leave()`: stops renewing and frees the row, owner-checked; forgets it once freed.
   * Idempotent; concurrent callers share the free (each stops waiting when its own `signal` aborts).
   * When `signal` aborts (or the free fails) it rejects, and the row is given up: its signal aborted,
   * left to its TTL unless a later give or `close()` frees it. A row already lost never rejects.
   */
  async giveBack(signal: AbortSignal | undefined): Promise<void> {
    await this.#give(signal);
    this.#ctx.held.delete(this);
  }

  #give(signal?: AbortSignal): Promise<void> {
    if (this.#done) return Promise.resolve();
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
    this.#freeing = (async () => {
      try {
        await this.#free(signal);
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
    return this.#freeing;
  }

  /** The holder gave up on freeing the row: it expires with its TTL; its signal says so. */
  #giveUp(error: unknown): void {
    if (!this.signal.aborted) this.#controller.abort(this.#options.reason('unreleased', error));
  }

  /** For `close()`: stops renewing, aborts the signal at once, then frees the row unless freed already. */
  async close(): Promise<void> {
    // A give under way finishes first (the connection stays open until every close() is done).
    await this.#freeing?.catch(() => {});
    if (this.#done) return;
    this.#state = 'closed';
    this.#keepAlive.stop();
    if (!this.signal.aborted) this.#controller.abort(this.#options.reason('closed'));
    await this.#free();
  }
}
