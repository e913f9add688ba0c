/**
 * The SQLite handle an adapter works through: the user's `database`, or one opened from `path`. Each
 * piece of work is one synchronous function (no transaction is held across an `await`) run under a
 * short busy timeout; while another connection holds the write lock it is retried asynchronously with
 * a jittered backoff, so the event loop never blocks for longer than one busy timeout. A piece of work
 * that comes {@link TURN_EVERY_MS} or more after the event loop last turned (calls chained by `await`
 * run as one long task: a park of a million workflows, page after page) first lets it turn, so that
 * such a run never starves timers and sockets: lease renewals, heartbeats, health probes. A lone call
 * (an `acquire()`, a `release()`) does not wait for a turn.
 * The set-up (pragmas, tables) runs inside the first piece of work, under that call's deadline: a call
 * that must be quick (an `acquire()` with a short `timeoutMs`) is never held by a set-up waiting out
 * `operationTimeoutMs` for another process's write lock.
 *
 * @internal
 */
import { setImmediate } from 'node:timers';
import { setImmediate as nextTurn } from 'node:timers/promises';
import createDebug from 'debug';
import { ClosedError, CoordinatorUnavailableError, GracefulDrainError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { delay, now } from '../../internal/time.js';
import { loadSqliteDriver, type SqliteDatabase, type SqliteStatement } from './driver.js';
import type { CompiledStoreOptions } from './options.js';

/** The SQLite adapters' debug log. */
export const debug = createDebug('graceful-drain:sqlite');

/** Raised inside a work function to ask for a retry, as if the database were busy. */
class HostTransactionOpen extends Error {}

/**
 * Whether `error` means another connection holds the lock: better-sqlite3's `code` `SQLITE_BUSY` or
 * `SQLITE_LOCKED` (or extended), `node:sqlite`'s `ERR_SQLITE_ERROR` with that primary `errcode` (or text).
 */
export function isBusy(error: unknown): boolean {
  if (error instanceof HostTransactionOpen) return true;
  const { code, errcode, errstr } = (error ?? {}) as { code?: unknown; errcode?: unknown; errstr?: unknown };
  if (typeof code !== 'string') return false;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return true;
  if (code !== 'ERR_SQLITE_ERROR') return false;
  if (typeof errcode === 'number') return [5, 6].includes(errcode & 0xff); // SQLITE_BUSY, SQLITE_LOCKED
  const text = typeof errstr === 'string' ? errstr : (error as Error).message;
  return /database (table )?is locked/.test(String(text));
}

/** The adapter (for messages), its handle's source, how long one attempt may block, how long work retries. */
type ConnectionOptions = Pick<
  CompiledStoreOptions,
  'adapter' | 'source' | 'driver' | 'busyTimeoutMs' | 'operationTimeoutMs'
>;

/**
 * One piece of work: `what` it does (for messages), the `signal` that stops its retries, the moment
 * (`now()` clock) `until` which it retries (default: `operationTimeoutMs` on), and whether it is
 * `durable` (`PRAGMA synchronous = FULL`: the commit survives a power loss).
 */
export interface WorkOptions {
  readonly what: string;
  readonly signal?: AbortSignal | undefined;
  readonly until?: number | undefined;
  readonly durable?: boolean | undefined;
}

/**
 * The busy-timeout pragmas of one handle, prepared once: every piece of work reads and sets the timeout,
 * and a pragma run through `db.pragma()` is prepared anew each time. A timeout other than the two
 * usual ones (a retry's last attempt, shortened to its deadline) is set without keeping its statement.
 */
class Pragmas {
  readonly db: SqliteDatabase;
  readonly #read: SqliteStatement<[], unknown>;
  readonly #set = new Map<number, SqliteStatement<[], unknown>>();

  constructor(db: SqliteDatabase) {
    this.db = db;
    this.#read = db.prepare<[], unknown>('PRAGMA busy_timeout').pluck();
  }

  busyTimeout(): number {
    return Number(this.#read.get());
  }

  #readSync: SqliteStatement<[], unknown> | undefined;
  readonly #setSync = new Map<number, SqliteStatement<[], unknown>>();

  /** `PRAGMA synchronous`: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
  synchronous(): number {
    this.#readSync ??= this.db.prepare<[], unknown>('PRAGMA synchronous').pluck();
    return Number(this.#readSync.get());
  }

  setSynchronous(level: number): void {
    let statement = this.#setSync.get(level);
    if (statement === undefined) {
      statement = this.db.prepare<[], unknown>(`PRAGMA synchronous = ${level}`);
      if (this.#setSync.size < 4) this.#setSync.set(level, statement);
    }
    statement.run();
  }

  setBusyTimeout(ms: number): void {
    let statement = this.#set.get(ms);
    if (statement === undefined) {
      statement = this.db.prepare<[], unknown>(`PRAGMA busy_timeout = ${ms}`).pluck();
      if (this.#set.size < 4) this.#set.set(ms, statement);
    }
    // Read, not run: the pragma answers with the timeout set.
    statement.get();
  }
}

/** How long work may run, call after call, before the next call lets the event loop turn (ms). */
const TURN_EVERY_MS = 5;
/** When the check for a turn was armed (`now()` clock); `undefined` once the event loop has turned. */
let turnArmedAt: number | undefined;
const turned = (): void => {
  turnArmedAt = undefined;
};

/**
 * Whether work has run for {@link TURN_EVERY_MS} since the event loop last turned (as far as the
 * adapters know). The first call after a turn arms the check: an immediate that records the next turn
 * (one for the whole process, from `node:timers`, which fake timers leave alone).
 */
function starving(): boolean {
  if (turnArmedAt === undefined) {
    turnArmedAt = now();
    setImmediate(turned);
    return false;
  }
  return now() - turnArmedAt >= TURN_EVERY_MS;
}

/** `PRAGMA synchronous = FULL`: a commit waits for its WAL frames to reach the disk. */
const FULL = 2;

/** A SQLite handle with busy-aware, asynchronous retries. */
export class SqliteConnection {
  readonly #options: ConnectionOptions;
  readonly #setup: (db: SqliteDatabase) => void;
  #ready: Promise<SqliteDatabase> | undefined;
  #db: SqliteDatabase | undefined;
  /** The handle the set-up has run on: until then, each attempt runs it before its work. */
  #setUp: SqliteDatabase | undefined;
  #closed = false;
  #pragmas: Pragmas | undefined;

  /**
   * `setup` runs on the handle before any work (pragmas, tables): within the first attempt of a call,
   * retried with it while busy, again by the next call when that one gives up or fails.
   */
  constructor(options: ConnectionOptions, setup: (db: SqliteDatabase) => void) {
    this.#options = options;
    this.#setup = setup;
  }

  get #owned(): boolean {
    return this.#options.source.database === undefined;
  }

  /** The handle: the user's, or the file opened (never waits for a lock: opening reads nothing). */
  #open(): Promise<SqliteDatabase> {
    this.#ready ??= (async () => {
      const { source } = this.#options;
      if (source.database !== undefined) return (this.#db = source.database);
      const driver = await loadSqliteDriver(this.#options.driver, this.#options.adapter);
      if (this.#closed) throw new ClosedError();
      let db: SqliteDatabase;
      try {
        db = driver.open(source.path, { timeout: this.#options.busyTimeoutMs });
      } catch (error) {
        throw this.#unavailable(`open the SQLite database ${JSON.stringify(source.path)}`, error);
      }
      debug('opened %s with %s', source.path, driver.name);
      return (this.#db = db);
    })();
    const ready = this.#ready;
    // A failed open is retried by the next call rather than remembered forever.
    ready.catch(() => {
      if (this.#ready === ready) this.#ready = undefined;
    });
    return ready;
  }

  /** Runs the set-up on `db` unless done: a busy error is retried by the caller, others name the set-up. */
  #setUpOnce(db: SqliteDatabase): void {
    if (this.#setUp === db) return;
    try {
      this.#setup(db);
    } catch (error) {
      throw isBusy(error) ? error : this.#wrap(error, 'set up the database');
    }
    this.#setUp = db;
  }

  /** Runs `work` once, synchronously, under a busy timeout of `busyMs`. */
  #attempt<T>(db: SqliteDatabase, work: (db: SqliteDatabase) => T, busyMs: number, durable: boolean): T {
    // A transaction the host left open would swallow ours as a savepoint: wait for it to end.
    if (db.inTransaction) throw new HostTransactionOpen('The database is inside a transaction');
    const pragmas = this.#pragmas?.db === db ? this.#pragmas : (this.#pragmas = new Pragmas(db));
    const previousTimeout = this.#owned ? this.#options.busyTimeoutMs : pragmas.busyTimeout();
    // A durable write on a handle below FULL switches it to FULL for the write (EXTRA is left as it is).
    const previousSync = durable ? pragmas.synchronous() : FULL;
    const switchSync = previousSync < FULL;
    const timeout = Math.max(0, Math.floor(busyMs));
    // Set only when it differs: ours keeps its configured timeout but near the end of a retry.
    if (timeout !== previousTimeout) pragmas.setBusyTimeout(timeout);
    if (switchSync) pragmas.setSynchronous(FULL);
    try {
      this.#setUpOnce(db);
      return work(db);
    } finally {
      // Leave a handle the user passed in as it was found; ours goes back to its configured timeout.
      if (timeout !== previousTimeout) pragmas.setBusyTimeout(previousTimeout);
      if (switchSync) pragmas.setSynchronous(previousSync);
    }
  }

  /**
   * Runs `work` (one synchronous function: one transaction at most), retrying while the database is
   * busy until `until` or `operationTimeoutMs`. When `signal` aborts, the retries stop and the call
   * rejects with `signal.reason`: a transaction that had not got the lock never commits later.
   */
  async run<T>(work: (db: SqliteDatabase) => T, options: WorkOptions): Promise<T> {
    // A signal aborted already: nothing is written, not even the set-up.
    if (options.signal?.aborted) throw options.signal.reason;
    if (this.#closed) throw new ClosedError();
    // The open is shared by every call, so it runs on; this call only stops waiting for it.
    const db = this.#db ?? (await abortable(this.#open(), options.signal));
    // The drivers are synchronous: without a turn of the event loop now and then, calls chained by
    // `await` run as one long task, and no timer fires until the last one is done.
    if (starving()) {
      await nextTurn();
      if (this.#closed) throw new ClosedError();
    }
    return this.#retry(db, work, options);
  }

  async #retry<T>(db: SqliteDatabase, work: (db: SqliteDatabase) => T, options: WorkOptions): Promise<T> {
    const until = options.until ?? now() + this.#options.operationTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (options.signal?.aborted) throw options.signal.reason;
      const busyMs = Math.min(this.#options.busyTimeoutMs, Math.max(0, until - now()));
      try {
        return this.#attempt(db, work, busyMs, !!options.durable);
      } catch (error) {
        if (!isBusy(error)) throw this.#wrap(error, options.what);
        if (until - now() <= 0)
          throw this.#unavailable(options.what, error, 'the SQLite database stayed busy');
        debug('busy (%s), retry %d', options.what, attempt + 1);
      }
      // A short, growing, jittered pause: competing processes spread out and the event loop breathes.
      const backoff = Math.min(50, 2 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
      await delay(Math.min(backoff, Math.max(0, until - now())), options.signal);
      if (this.#closed) throw new ClosedError();
    }
  }

  #wrap(error: unknown, what: string): unknown {
    if (error instanceof GracefulDrainError) return error;
    if (this.#closed) return new ClosedError(undefined, { cause: error });
    return this.#unavailable(what, error);
  }

  #unavailable(what: string, cause: unknown, why = (cause as Error)?.message ?? String(cause)): Error {
    return new CoordinatorUnavailableError(`${this.#options.adapter} could not ${what}: ${why}`, { cause });
  }

  /** Stops all work; closes the handle when it was opened here, never the user's. Never throws. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned && this.#db !== undefined) {
      try {
        this.#db.close();
        debug('closed %s', this.#options.source.path);
      } catch (error) {
        debug('close failed: %O', error);
      }
    }
    this.#db = undefined;
  }
}
