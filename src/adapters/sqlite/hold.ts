/**
 * What a SQLite lease and a membership share: the row this process holds, and how it is given back
 * (`release()`/`leave()`, or the coordinator's `close()`).
 * @internal
 */
import { ClosedError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { Hold, type HoldOptions, type LossReason, type TtlOptions } from '../../internal/keep-alive.js';
import { debug, type WorkOptions } from './connection.js';
import type { CoordinatorStatements } from './coordinator-sql.js';

/** What a hold needs from its coordinator: a write retried while busy, and the set of holds it tracks. */
export interface HoldContext {
  run<T>(work: (sql: CoordinatorStatements) => T, options: WorkOptions): Promise<T>;
  readonly held: Set<SqliteHold>;
}

/** A write on the row: what it does (for messages), and the work at `wall` (`Date.now()`). */
type RowWrite<T> = readonly [what: string, work: (sql: CoordinatorStatements, wall: number) => T];

/** A lease or a membership: its owner-checked renewal (`false` once not ours) and free, each loss's message. */
type SqliteHoldOptions = Pick<HoldOptions, 'label' | 'lostError'> &
  Pick<TtlOptions, 'ttlMs' | 'sentAt'> & {
    readonly renew: RowWrite<boolean>;
    readonly free: RowWrite<unknown>;
    readonly lossMessages: Readonly<Record<LossReason | 'closed' | 'unreleased', string>>;
  };

/**
 * A held row, tracked from the synchronous step that wrote it, so `close()` always finds it. States:
 * `held` (renewed); `given` (given back, the free not yet confirmed); `freed` (or lost for good);
 * `closed` (`close()` took it over).
 */
export class SqliteHold extends Hold {
  readonly #ctx: HoldContext;
  readonly #options: SqliteHoldOptions;
  #state: 'held' | 'given' | 'freed' | 'closed' = 'held';
  #freeing: Promise<void> | undefined;

  constructor(ctx: HoldContext, options: SqliteHoldOptions) {
    const { label, lostError, ttlMs, sentAt, lossMessages } = options;
    const [what, renew] = options.renew;
    super({
      label,
      lostError,
      ttlMs,
      sentAt,
      lossMessages,
      debug,
      renew: (until) => ctx.run((sql) => renew(sql, Date.now()), { what, until }),
    });
    this.#ctx = ctx;
    this.#options = options;
    ctx.held.add(this);
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
      this.stopRenewing();
      this.#state = 'given';
    }
    if (this.#freeing !== undefined) return abortable(this.#freeing, signal);
    // A row lost already (taken over, expired, given up before) has nothing left to confirm.
    const lost = this.aborted;
    if (signal?.aborted) {
      if (lost) return Promise.resolve();
      this.abort(this.#options.lossMessages.unreleased, signal.reason);
      return Promise.reject(signal.reason);
    }
    this.#freeing = (async () => {
      try {
        await this.#free(signal);
        if (this.#state === 'given') this.#state = 'freed';
        debug('gave back %s', this.label);
      } catch (error) {
        // close() frees it (the connection is closing), or has already.
        if (lost || error instanceof ClosedError) return;
        this.abort(this.#options.lossMessages.unreleased, error);
        throw error;
      } finally {
        this.#freeing = undefined;
      }
    })();
    return this.#freeing;
  }

  /** For `close()`: stops renewing, aborts the signal at once, then frees the row unless freed already. */
  async close(): Promise<void> {
    // A give under way finishes first (the connection stays open until every close() is done).
    await this.#freeing?.catch(() => {});
    if (this.#done) return;
    this.#state = 'closed';
    this.stopRenewing();
    this.abort(this.#options.lossMessages.closed);
    await this.#free();
  }
}
