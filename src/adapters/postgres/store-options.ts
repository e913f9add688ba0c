/**
 * The options of `PostgresWorkflowStore`, their validation, and how the store reaches the database
 * (a pool, one client, or a pool of its own).
 *
 * @packageDocumentation
 */

import createDebug from 'debug';
import { ConfigurationError } from '../../errors.js';
import { checkName, checkOptionsObject, invalid } from '../../validate.js';
import { loadPg } from './driver.js';
import {
  checkMarkTrigger,
  compileHostTable,
  HOST_TABLE_OPTIONS,
  type HostTable,
  type MarkTriggerMode,
  type PostgresHostTableOptions,
} from './host-table.js';
import { checkIdentifier } from './identifiers.js';
import { DEFAULT_SCHEMA } from './migrate.js';
import type { PgPool, PgQueryable } from './queryable.js';
import { clientRunner, poolRunner, type Runner } from './runner.js';

export type { MarkTriggerMode, PostgresWorkflowStatuses } from './host-table.js';

const debug = createDebug('graceful-drain:postgres');

/**
 * Options of `PostgresWorkflowStore`: give exactly one of `client`, `pool`, `connectionString` or
 * `url`.
 */
export interface PostgresWorkflowStoreOptions extends PostgresHostTableOptions {
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
  /**
   * The schema of the tables `migrate()` created, where the parked marks live.
   * @defaultValue `'graceful_drain'`
   */
  readonly schema?: string;
  /**
   * The trigger that drops a parked-by-shutdown mark when its workflow leaves `pausing`/`paused`:
   * `'install'` creates or replaces it at first use when it is missing or outdated; `'verify'` only
   * checks it (a `ConfigurationError` asks for `migrate({ stores })` otherwise); `'off'` goes without,
   * and the host must then call `notePaused()` on every pause a user asks for.
   * @defaultValue `'install'`
   */
  readonly markTrigger?: MarkTriggerMode;
}

const OPTION_NAMES = [
  'client',
  'pool',
  'connectionString',
  'url',
  ...HOST_TABLE_OPTIONS,
  'schema',
  'markTrigger',
];

/** The options, validated, with defaults applied. @internal */
export interface CompiledStoreOptions extends HostTable {
  readonly schema: string;
  readonly markTrigger: MarkTriggerMode;
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
  return Object.freeze({
    ...compileHostTable(given),
    schema: checkIdentifier('schema', given.schema ?? DEFAULT_SCHEMA),
    markTrigger: checkMarkTrigger('markTrigger', given.markTrigger),
    runner: makeRunner(given),
  });
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
