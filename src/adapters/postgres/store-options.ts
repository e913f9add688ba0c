/**
 * The options of `PostgresWorkflowStore`, their validation, and how the store reaches the database
 * (a pool, one client, or a pool of its own).
 *
 * @packageDocumentation
 */

import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { ConfigurationError } from '../../errors.js';
import { checkName, checkOptionsObject, describeValue, invalid } from '../../validate.js';
import { loadPg } from './driver.js';
import { checkIdentifier, checkTableName, type TableName } from './identifiers.js';
import { DEFAULT_SCHEMA } from './migrate.js';
import type { PgPool, PgQueryable } from './queryable.js';

const debug = createDebug('graceful-drain:postgres');

/** The host's status values the store reads and writes. */
export interface PostgresWorkflowStatuses {
  /** A running workflow. */
  readonly running: string;
  /**
   * A workflow asked to pause and still winding down. When set, `park()` writes it and the host's
   * engine moves the workflow on to `paused`; when not, `park()` writes `paused` directly.
   */
  readonly pausing?: string | undefined;
  /** A paused workflow. */
  readonly paused: string;
}

/**
 * Options of `PostgresWorkflowStore`: give exactly one of `client`, `pool`, `connectionString` or
 * `url`.
 */
export interface PostgresWorkflowStoreOptions {
  /**
   * One connection (a `pg.Client`, or a `pg.PoolClient` you keep checked out): the store runs its
   * statements and transactions on it one at a time. Give it a connection of its own: statements
   * of yours would otherwise land inside its transactions. Never closed by the store.
   */
  readonly client?: PgQueryable;
  /** A `pg.Pool`: a connection is checked out for each transaction. Never closed by the store. */
  readonly pool?: PgPool;
  /** A PostgreSQL URL: the store creates a small `pg.Pool` (loading `pg` lazily) and ends it on `close()`. */
  readonly connectionString?: string;
  /** Same as `connectionString`. */
  readonly url?: string;
  /** The host's table of workflows, `table` or `schema.table`: plain identifiers, used as written. */
  readonly table: string;
  /**
   * The id column (any type; ids are exchanged as its text form).
   * @defaultValue `'id'`
   */
  readonly idColumn?: string;
  /**
   * The status column (text, or an enum of the host's).
   * @defaultValue `'status'`
   */
  readonly statusColumn?: string;
  /**
   * The host's status values.
   * @defaultValue `{ running: 'running', paused: 'paused' }`
   */
  readonly statuses?: PostgresWorkflowStatuses;
  /**
   * The schema of the tables `migrate()` created, where the parked marks live.
   * @defaultValue `'graceful_drain'`
   */
  readonly schema?: string;
}

const DEFAULTS = Object.freeze({
  idColumn: 'id',
  statusColumn: 'status',
  statuses: Object.freeze({ running: 'running', paused: 'paused' }) as PostgresWorkflowStatuses,
  schema: DEFAULT_SCHEMA,
});
const OPTION_NAMES = ['client', 'pool', 'connectionString', 'url', 'table', ...Object.keys(DEFAULTS)];

/** The options, validated, with defaults applied. @internal */
export interface CompiledStoreOptions {
  readonly table: TableName;
  readonly idColumn: string;
  readonly statusColumn: string;
  readonly schema: string;
  readonly statuses: PostgresWorkflowStatuses;
  readonly runner: Runner;
}

/** Validates `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileStoreOptions(options: unknown): CompiledStoreOptions {
  const given = checkOptionsObject('PostgresWorkflowStore', options, OPTION_NAMES);
  const sources = ['client', 'pool', 'connectionString', 'url'].filter((key) => given[key] !== undefined);
  if (sources.length !== 1) {
    throw new ConfigurationError(
      `PostgresWorkflowStore needs exactly one of \`client\`, \`pool\`, \`connectionString\` or \`url\`, got ${
        sources.length === 0 ? 'none' : sources.map((s) => `\`${s}\``).join(' and ')
      }`,
    );
  }
  const o = { ...DEFAULTS, ...given };
  return Object.freeze({
    table: checkTableName('table', given.table),
    idColumn: checkIdentifier('idColumn', o.idColumn),
    statusColumn: checkIdentifier('statusColumn', o.statusColumn),
    schema: checkIdentifier('schema', o.schema),
    statuses: checkStatuses(o.statuses),
    runner: makeRunner(given),
  });
}

/** How the store reaches the database. @internal */
export interface Runner {
  query(text: string, values: unknown[]): Promise<readonly unknown[]>;
  transaction<T>(work: (q: PgQueryable) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

/** Runs `work` in a transaction on `q`; `onBroken` hears of a connection that could not even roll back. */
async function inTransaction<T>(
  q: PgQueryable,
  work: (q: PgQueryable) => Promise<T>,
  onBroken?: (error: Error) => void,
): Promise<T> {
  await q.query('BEGIN');
  try {
    const result = await work(q);
    await q.query('COMMIT');
    return result;
  } catch (error) {
    try {
      await q.query('ROLLBACK');
    } catch (rollbackError) {
      onBroken?.(rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError)));
    }
    throw error;
  }
}

function poolRunner(pool: PgPool, end: () => Promise<void>): Runner {
  return {
    query: async (text, values) => (await pool.query(text, values)).rows,
    async transaction(work) {
      const connection = await pool.connect();
      let broken: Error | undefined;
      // While checked out, a connection has no listener of the pool's: one that drops mid-transaction
      // would emit an unhandled 'error' and crash the host. Ours records it (the query rejects anyway).
      const onError = (error: Error): void => {
        broken ??= error;
      };
      connection.on?.('error', onError);
      try {
        return await inTransaction(connection, work, (error) => (broken ??= error));
      } finally {
        connection.removeListener?.('error', onError);
        // A connection that failed, or could not roll back, is destroyed rather than handed on.
        connection.release(broken);
      }
    },
    end,
  };
}

function clientRunner(client: PgQueryable): Runner {
  const mutex = new Mutex();
  return {
    query: (text, values) => mutex.runExclusive(async () => (await client.query(text, values)).rows),
    transaction: (work) => mutex.runExclusive(() => inTransaction(client, work)),
    end: async () => {},
  };
}

function checkStatuses(value: unknown): PostgresWorkflowStatuses {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    invalid('statuses', 'an object `{ running, pausing?, paused }`', value);
  }
  const given = checkOptionsObject('statuses', value, ['running', 'pausing', 'paused']);
  const running = checkName('statuses.running', given.running);
  const paused = checkName('statuses.paused', given.paused);
  const pausing = given.pausing === undefined ? undefined : checkName('statuses.pausing', given.pausing);
  const all = [running, paused, ...(pausing === undefined ? [] : [pausing])];
  if (new Set(all).size !== all.length) {
    throw new ConfigurationError(
      `Expected \`statuses\` to hold distinct values, got running ${describeValue(running)}, ` +
        `pausing ${describeValue(pausing)}, paused ${describeValue(paused)}`,
    );
  }
  return Object.freeze({ running, pausing, paused });
}

function makeRunner(given: Record<string, unknown>): Runner {
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
