/**
 * What a SQLite lease and a membership share: the row this process holds, and how it is given back
 * (`release()`/`leave()`, or the coordinator's `close()`).
 * @internal
 */
import { ClosedError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { Hold, type LossReason, type TtlOptions } from '../../internal/keep-alive.js';
import { debug, type WorkOptions } from './connection.js';
import type { CoordinatorStatements } from './coordinator-sql.js';

/** What a hold needs from its coordinator: a write retried while busy, and the set of holds it tracks. */
export interface HoldContext {
  run<T>(work: (sql: CoordinatorStatements) => T, options: WorkOptions): Promise<T>;
  readonly held: Set<SqliteHold>;
}

/** The writes on a held row. */
type RowWrite = 'renew' | 'free';

/**
 * What sets a lease's or a membership's row apart, as the keep-alive reads it (the hold's options): its
 * label, loss error and messages, its owner-checked renewal (`false` once not ours) and free. A class of
 * its own per kind, so that a hold costs one object and no closures: labels and messages are made only
 * when the debug log or an error needs them, the renewal when it is due.
 */
export abstract class SqliteHoldOptions implements TtlOptions {
  readonly ttlMs: number;
  readonly sentAt: number;
  readonly #ctx: HoldContext;

  constructor(ctx: HoldContext, ttlMs: number, sentAt: number) {
    this.#ctx = ctx;
    this.ttlMs = ttlMs;
    this.sentAt = sentAt;
  }

  /** Names the row in the debug log. */
  abstract get label(): string;
  abstract get lossMessages(): Readonly<Record<LossReason | 'closed' | 'unreleased', string>>;
  abstract lostError(message: string, cause?: unknown): Error;
  /** What a write does, for messages: `renew the lock "x"`. */
  abstract describe(write: RowWrite): string;
  /** The owner-checked renewal at `wall` (`Date.now()`): false once the row is not ours. */
  abstract renewRow(sql: CoordinatorStatements, wall: number): boolean;
  /** The owner-checked free. */
  abstract freeRow(sql: CoordinatorStatements): unknown;

  debug(format: string, ...args: unknown[]): void {
    debug(format, ...args);
  }

  /** Read by the keep-alive when a renewal is due (and called unbound): made then. */
  get renew(): (until: number) => Promise<boolean> {
    const ctx = this.#ctx;
    return (until) => ctx.run((sql) => this.renewRow(sql, Date.now()), new RowWork(this, 'renew', until));
  }
}

/** The options of a write on a row, its `what` made only when a message needs it. */
class RowWork implements WorkOptions {
  readonly until: number | undefined;
  readonly signal: AbortSignal | undefined;
  readonly #options: SqliteHoldOptions;
  readonly #write: RowWrite;

  constructor(options: SqliteHoldOptions, write: RowWrite, until?: number, signal?: AbortSignal) {
    this.#options = options;
    this.#write = write;
    this.until = until;
    this.signal = signal;
  }

  get what(): string {
    return this.#options.describe(this.#write);
  }
}

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
    super(options);
    this.#ctx = ctx;
    this.#options = options;
    ctx.held.add(this);
  }

  get #done(): boolean {
    return this.#state === 'freed' || this.#state === 'closed';
  }

  async #free(signal?: AbortSignal): Promise<void> {
    const options = this.#options;
    await this.#ctx.run((sql) => options.freeRow(sql), new RowWork(options, 'free', undefined, signal));
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
        if (debug.enabled) debug('gave back %s', this.label);
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
