/**
 * How `PostgresWorkflowStore` reaches the database (a pool, one client, or a pool of its own), and how
 * a call given an `AbortSignal` gives up.
 *
 * `pg` has no `AbortSignal` of its own, so a transaction guards itself:
 * - nothing is sent once the signal has aborted, and `COMMIT` never is: the work is rolled back;
 * - the call rejects with `signal.reason` at once, while the rollback finishes in the background (the
 *   connection goes back to the pool, or the client is handed on, only after it);
 * - a statement in flight, which may wait on a row lock of the host's for as long as that lock is held,
 *   is cancelled with `pg_cancel_backend()` from another connection of the pool (guarded by the backend's
 *   pid *and* the transaction's start, so it never hits a statement of anyone else); with a single
 *   `client` there is no other connection to send it on, and the statement is left to finish first;
 * - once `COMMIT` has been sent, the call waits for it and reports what it committed: that write has
 *   landed, and the fence of the next lock holder orders it before anything the holder reads.
 *
 * Reads (`query()`) write nothing: given a signal, they reject at once and finish in the background.
 *
 * @internal
 */

import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { abortable } from '../../internal/abortable.js';
import { checkName, invalid } from '../../validate.js';
import { loadPg, type PgPool, type PgQueryable } from './driver.js';
import { messageOf } from './session.js';

const debug = createDebug('graceful-drain:postgres');

/** How the store reaches the database. */
export interface Runner {
  /** One statement, outside any transaction of the store's. */
  query(text: string, values: unknown[], signal?: AbortSignal): Promise<readonly unknown[]>;
  /** `work` in one transaction: committed when it resolves, rolled back when it throws or `signal` aborts. */
  transaction<T>(work: (q: PgQueryable) => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Ends what the runner created. */
  end(): Promise<void>;
}

/** A connection held for one transaction, and how to give it back. */
interface Held {
  readonly connection: PgQueryable;
  /** Hands the connection on; `broken` when it failed or could not roll back. */
  release(broken?: Error): void;
}

/** Cancels the statement running on backend `pid` in the transaction that started at `started`. */
type Canceller = (pid: number, started: string) => Promise<void>;

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** What a guarded transaction watches: see {@link guardedTransaction}. */
interface Guard {
  /** Throws `signal.reason` once the signal has aborted. */
  check(): void;
  /** The queryable handed to the work: checks before each statement, and knows one is in flight. */
  wrap(connection: PgQueryable): PgQueryable;
  /** Learns the backend the transaction runs on, so that a stuck statement can be cancelled. */
  identify(q: PgQueryable): Promise<void>;
  /** Called right before `COMMIT` is sent: from then on the call waits for the server's answer. */
  committing(): void;
}

/** Runs `work` in a transaction on `held`, then hands the connection on. */
async function runTransaction<T>(
  hold: () => Promise<Held>,
  work: (q: PgQueryable) => Promise<T>,
  guard: Guard | undefined,
): Promise<T> {
  const held = await hold();
  const connection = held.connection;
  let broken: Error | undefined;
  try {
    // Given up while waiting for the connection: hand it on untouched.
    guard?.check();
    await connection.query('BEGIN');
    let result: T;
    try {
      const q = guard === undefined ? connection : guard.wrap(connection);
      await guard?.identify(q);
      result = await work(q);
      guard?.check();
    } catch (error) {
      try {
        await connection.query('ROLLBACK');
      } catch (rollbackError) {
        broken = asError(rollbackError);
      }
      throw error;
    }
    guard?.committing();
    await connection.query('COMMIT');
    return result;
  } finally {
    held.release(broken);
  }
}

/**
 * Runs `work` in a transaction on a connection from `hold`, giving up when `signal` aborts before
 * `COMMIT` is sent (see the module's documentation).
 */
function guardedTransaction<T>(
  hold: () => Promise<Held>,
  work: (q: PgQueryable) => Promise<T>,
  signal: AbortSignal | undefined,
  cancel: Canceller | undefined,
): Promise<T> {
  if (signal === undefined) return runTransaction(hold, work, undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  let committing = false;
  let inFlight = false;
  let backend: { pid: number; started: string } | undefined;
  const check = (): void => {
    if (signal.aborted) throw signal.reason;
  };
  const guard: Guard = {
    check,
    wrap: (connection) => ({
      async query(text, values) {
        check();
        inFlight = true;
        try {
          return await connection.query(text, values);
        } finally {
          inFlight = false;
        }
      },
    }),
    async identify(q) {
      // The transaction's start, as a number the server renders the same way whatever the session's
      // DateStyle or TimeZone.
      const { rows } = await q.query(
        'SELECT pg_backend_pid() AS pid, (extract(epoch FROM now()) * 1000000)::bigint::text AS started',
      );
      backend = rows[0] as { pid: number; started: string };
    },
    committing: () => {
      committing = true;
    },
  };
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      return true;
    };
    const onAbort = (): void => {
      // COMMIT is on its way: the outcome is the server's, so wait for it.
      if (committing) return;
      if (settle()) reject(signal.reason);
      if (inFlight && backend !== undefined && cancel !== undefined) {
        const { pid, started } = backend;
        debug('transaction given up: cancelling the statement of backend %d', pid);
        cancel(pid, started).catch((error: unknown) => debug('cancel failed: %s', messageOf(error)));
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    runTransaction(hold, work, guard).then(
      (value) => {
        if (settle()) resolve(value);
      },
      (error: unknown) => {
        if (settle()) reject(error);
        else debug('transaction ended after its call gave up: %s', messageOf(error));
      },
    );
  });
}

/** A runner over a pool: a connection checked out per transaction. */
export function poolRunner(pool: PgPool, end: () => Promise<void>): Runner {
  const hold = async (): Promise<Held> => {
    const connection = await pool.connect();
    let broken: Error | undefined;
    // While checked out, a connection has no listener of the pool's: one that drops mid-transaction
    // would emit an unhandled 'error' and crash the host. Ours records it (the query rejects anyway).
    const onError = (error: Error): void => {
      broken ??= error;
    };
    connection.on?.('error', onError);
    return {
      connection,
      release(error) {
        connection.removeListener?.('error', onError);
        // A connection that failed, or could not roll back, is destroyed rather than handed on.
        connection.release(error ?? broken);
      },
    };
  };
  // Guarded by the transaction's start too: should the statement end and the connection serve someone
  // else meanwhile, their statement is left alone.
  const cancel: Canceller = async (pid, started) => {
    await pool.query(
      `SELECT pg_cancel_backend(a.pid) FROM pg_stat_activity a
       WHERE a.pid = $1 AND (extract(epoch FROM a.xact_start) * 1000000)::bigint = $2::bigint`,
      [pid, started],
    );
  };
  return {
    async query(text, values, signal) {
      signal?.throwIfAborted();
      return (await abortable(pool.query(text, values), signal)).rows;
    },
    transaction: (work, signal) => guardedTransaction(hold, work, signal, cancel),
    end,
  };
}

/** A runner over one client: one call at a time. */
export function clientRunner(client: PgQueryable): Runner {
  const mutex = new Mutex();
  const hold = async (): Promise<Held> => {
    const unlock = await mutex.acquire();
    return { connection: client, release: () => unlock() };
  };
  return {
    query: (text, values, signal) =>
      signal?.aborted === true
        ? Promise.reject(signal.reason)
        : abortable(
            mutex.runExclusive(async () => {
              // Queued behind other calls: one given up meanwhile sends nothing.
              signal?.throwIfAborted();
              return (await client.query(text, values)).rows;
            }),
            signal,
          ),
    transaction: (work, signal) => guardedTransaction(hold, work, signal, undefined),
    end: async () => {},
  };
}

/** The runner of a store given `client`, `pool`, or a URL (`connectionString` or `url`), checked. */
export function createRunner(given: Record<string, unknown>): Runner {
  if (given.client !== undefined) {
    const client = given.client as PgQueryable;
    if (client === null || typeof client !== 'object' || typeof client.query !== 'function') {
      invalid('client', 'a pg.Client (an object with query(text, values))', client);
    }
    return clientRunner(client);
  }
  if (given.pool !== undefined) {
    const pool = given.pool as PgPool;
    if (
      pool === null ||
      typeof pool !== 'object' ||
      typeof pool.query !== 'function' ||
      typeof pool.connect !== 'function'
    ) {
      invalid('pool', 'a pg.Pool (an object with query() and connect())', pool);
    }
    return poolRunner(pool, async () => {});
  }
  const key = given.connectionString === undefined ? 'url' : 'connectionString';
  // Never echoed in a message or a log: it may carry a password.
  const connectionString = checkName(key, given[key]);
  let created: Promise<PgPool & { end(): Promise<void> }> | undefined;
  const pool = async (): Promise<PgPool & { end(): Promise<void> }> => {
    created ??= loadPg('PostgresWorkflowStore').then((pg) => {
      const instance = new pg.Pool({
        connectionString,
        max: 4,
        keepAlive: true,
        application_name: 'graceful-drain',
      });
      // An idle pooled connection that fails must not crash the host; the pool replaces it.
      instance.on('error', (error) => debug('pool: %s', error.message));
      return instance;
    });
    return created;
  };
  const lazy: PgPool = {
    query: async (text, values) => (await pool()).query(text, values),
    connect: async () => (await pool()).connect(),
  };
  return poolRunner(lazy, async () => {
    if (created !== undefined) await (await created).end();
  });
}
