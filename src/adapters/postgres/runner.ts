/**
 * How `PostgresWorkflowStore` reaches the database (a pool, one client, or a pool of its own), and how
 * a call given an `AbortSignal` gives up: see "Cancellation" in docs/adapters/postgres.md.
 *
 * @internal
 */
import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { abortable } from '../../internal/abortable.js';
import { checkName, invalid } from '../../validate.js';
import {
  hasMethods,
  loadPg,
  messageOf,
  type PgPool,
  type PgQueryable,
  type PgQueryResult,
} from './driver.js';

const debug = createDebug('graceful-drain:postgres');

/** How the store reaches the database. */
export interface Runner {
  /** One statement, outside any transaction of the store's; given up at once when `signal` aborts. */
  query(text: string, values: unknown[], signal?: AbortSignal): Promise<readonly unknown[]>;
  /**
   * `work` in one transaction: committed when it resolves, rolled back when it throws or `signal` aborts.
   * `opening`: statements without parameters sent with the `BEGIN`, in the same round trip (simple
   * protocol); `work` gets their results, in order.
   */
  transaction<T>(
    work: (q: PgQueryable, opened: readonly PgQueryResult[]) => Promise<T>,
    signal?: AbortSignal,
    opening?: string,
  ): Promise<T>;
  /** Ends what the runner created. */
  end(): Promise<void>;
}

/** A connection held for one transaction; `release(broken)` when it failed or could not roll back. */
interface Held {
  readonly connection: PgQueryable;
  release(broken?: Error): void;
}

/** Cancels the statement of a backend: `started` guards it (the transaction's start), or none is needed. */
type Cancel = (pid: number, started: string | undefined) => Promise<void>;

/** How long a connection whose statement was being cancelled waits for the cancel, before it is dropped. */
const CANCEL_WAIT_MS = 5000;

/** The results of a simple-protocol query: one per statement. */
const resultsOf = (result: PgQueryResult | readonly PgQueryResult[]): readonly PgQueryResult[] =>
  Array.isArray(result) ? result : [result as PgQueryResult];

/**
 * Runs `work` in a transaction on a connection from `hold`. Once `signal` aborts, nothing more is sent
 * (never `COMMIT`): the call rejects at once, the rollback goes on, and a statement in flight is
 * cancelled through `cancel`. Once `COMMIT` is sent, the call waits for the server's answer. A
 * connection that says its backend's id (`processID`, as `pg`'s do) needs no query for it: a cancel of
 * its statement goes unguarded, and the connection is kept until the cancel has been delivered (a cancel
 * reaching an idle backend is ignored), so it can never hit a later statement.
 */
function transaction<T>(
  hold: () => Promise<Held>,
  work: (q: PgQueryable, opened: readonly PgQueryResult[]) => Promise<T>,
  signal: AbortSignal | undefined,
  cancel: Cancel | undefined,
  opening: string | undefined,
): Promise<T> {
  if (signal?.aborted === true) return Promise.reject(signal.reason);
  let committing = false;
  let inFlight = false;
  let backend: { pid: number; started: string | undefined } | undefined;
  let cancelling: Promise<void> | undefined;
  const check = (): void => signal?.throwIfAborted();
  const run = async (): Promise<T> => {
    const { connection, release } = await hold();
    let broken: Error | undefined;
    // Waits (bounded) for a cancel on its way, so that it cannot reach a later statement.
    const settleCancel = async (): Promise<void> => {
      if (cancelling === undefined) return;
      const delivered = await Promise.race([
        cancelling.then(() => true),
        new Promise<false>((resolve) => setTimeout(resolve, CANCEL_WAIT_MS, false).unref()),
      ]);
      if (!delivered) broken ??= new Error('a cancel of its statement was not confirmed');
    };
    try {
      check(); // given up while waiting for the connection: hand it on untouched
      const pid = (connection as { processID?: unknown }).processID;
      if (signal !== undefined && typeof pid === 'number') backend = { pid, started: undefined };
      let result: T;
      try {
        let q = connection;
        if (signal !== undefined) {
          q = {
            async query(text, values) {
              check();
              inFlight = true;
              try {
                return await connection.query(text, values);
              } finally {
                inFlight = false;
              }
            },
          };
        }
        const opened = resultsOf(await q.query(opening === undefined ? 'BEGIN' : `BEGIN;\n${opening}`)).slice(
          1,
        );
        if (signal !== undefined && backend === undefined) {
          // The transaction's start as a number, rendered alike whatever DateStyle or TimeZone say.
          const { rows } = await q.query(
            'SELECT pg_backend_pid() AS pid, (extract(epoch FROM now()) * 1000000)::bigint::text AS started',
          );
          backend = rows[0] as typeof backend;
        }
        result = await work(q, opened);
        check();
      } catch (error) {
        await settleCancel();
        await connection.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        throw error;
      }
      committing = true;
      await connection.query('COMMIT');
      return result;
    } finally {
      await settleCancel();
      release(broken);
    }
  };
  if (signal === undefined) return run();
  return new Promise<T>((resolve, reject) => {
    let gaveUp = false;
    const onAbort = (): void => {
      if (committing) return; // the outcome is the server's: wait for it
      gaveUp = true;
      reject(signal.reason);
      if (inFlight && backend !== undefined && cancel !== undefined) {
        debug('transaction given up: cancelling the statement of backend %d', backend.pid);
        cancelling = cancel(backend.pid, backend.started).catch((error: unknown) =>
          debug('cancel failed: %s', messageOf(error)),
        );
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    run()
      .then(resolve, (error: unknown) => {
        if (gaveUp) debug('transaction ended after its call gave up: %s', messageOf(error));
        reject(error);
      })
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A runner over a pool: a connection checked out per transaction. */
function poolRunner(pool: PgPool, end: () => Promise<void>): Runner {
  const hold = async (): Promise<Held> => {
    const connection = await pool.connect();
    let broken: Error | undefined;
    // A checked-out connection has no listener of the pool's: an 'error' would crash the host.
    const onError = (error: Error): void => {
      broken ??= error;
    };
    connection.on?.('error', onError);
    return {
      connection,
      release(error) {
        connection.removeListener?.('error', onError);
        connection.release(error ?? broken); // an error destroys the connection
      },
    };
  };
  // Guarded by the transaction's start when known: a statement of someone else's on that backend is left
  // alone. Unguarded, the connection is held until the cancel is delivered (see transaction()).
  const cancel: Cancel = async (pid, started) => {
    await (started === undefined
      ? pool.query('SELECT pg_cancel_backend($1)', [pid])
      : pool.query(
          `SELECT pg_cancel_backend(a.pid) FROM pg_stat_activity a
           WHERE a.pid = $1 AND (extract(epoch FROM a.xact_start) * 1000000)::bigint = $2::bigint`,
          [pid, started],
        ));
  };
  return {
    async query(text, values, signal) {
      signal?.throwIfAborted();
      return (await abortable(pool.query(text, values), signal)).rows;
    },
    transaction: (work, signal, opening) => transaction(hold, work, signal, cancel, opening),
    end,
  };
}

/** The runner of a store given `client`, `pool`, or a URL (`connectionString` or `url`), checked. */
export function createRunner(given: Record<string, unknown>): Runner {
  if (given.client !== undefined) {
    const client = given.client as PgQueryable;
    if (!hasMethods(client, 'query'))
      invalid('client', 'a pg.Client (an object with query(text, values))', client);
    // One call at a time; with no other connection to cancel from, a stuck statement runs to its end.
    const mutex = new Mutex();
    const hold = async (): Promise<Held> => ({ connection: client, release: await mutex.acquire() });
    return {
      query: (text, values, signal) =>
        signal?.aborted === true
          ? Promise.reject(signal.reason)
          : abortable(
              mutex.runExclusive(async () => {
                signal?.throwIfAborted(); // given up while queued: send nothing
                return (await client.query(text, values)).rows;
              }),
              signal,
            ),
      transaction: (work, signal, opening) => transaction(hold, work, signal, undefined, opening),
      end: async () => {},
    };
  }
  if (given.pool !== undefined) {
    const pool = given.pool as PgPool;
    if (!hasMethods(pool, 'query', 'connect'))
      invalid('pool', 'a pg.Pool (an object with query() and connect())', pool);
    return poolRunner(pool, async () => {});
  }
  const key = given.connectionString === undefined ? 'url' : 'connectionString';
  // Never echoed in a message or a log: it may carry a password.
  const connectionString = checkName(key, given[key]);
  let created: Promise<PgPool & { end(): Promise<void> }> | undefined;
  const pool = (): Promise<PgPool & { end(): Promise<void> }> =>
    (created ??= loadPg('PostgresWorkflowStore').then((pg) => {
      const instance = new pg.Pool({
        connectionString,
        max: 4,
        keepAlive: true,
        application_name: 'graceful-drain',
      });
      // An idle pooled connection that fails must not crash the host; the pool replaces it.
      instance.on('error', (error) => debug('pool: %s', error.message));
      return instance;
    }));
  const lazy: PgPool = {
    query: async (text, values) => (await pool()).query(text, values),
    connect: async () => (await pool()).connect(),
  };
  return poolRunner(lazy, async () => {
    if (created !== undefined) await (await created).end();
  });
}
