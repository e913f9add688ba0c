/**
 * The options of the PostgreSQL adapters and of `migrate()`, their defaults, and their compilation.
 *
 * @packageDocumentation
 */
import { ConfigurationError } from '../../errors.js';
import { withDefaults } from '../../internal/defaults.js';
import { checkIdentifier, checkTableName, quote } from '../../internal/sql-names.js';
import { checkStatuses, type WorkflowStatuses } from '../../internal/statuses.js';
import {
  checkCount,
  checkFunction,
  checkName,
  checkOneOf,
  checkOptionsObject,
  checkPositive,
  invalid,
} from '../../validate.js';
import { loadPg, type PgPool, type PgQueryable, type PgSessionClient } from './driver.js';
import { createRunner } from './runner.js';

const DEFAULT_SCHEMA = 'graceful_drain';

/** Options of `PostgresCoordinator`: give exactly one of `client`, `connectionString` or `url`. */
export interface PostgresCoordinatorOptions {
  /**
   * A factory of a new, not yet connected `pg.Client` (made with `keepAlive: true`), called again after a
   * connection is lost; the coordinator owns and ends what it returns. Never a pool, nor a connection
   * through a transaction-pooling proxy: session advisory locks live on one session.
   */
  readonly client?: () => PgSessionClient | Promise<PgSessionClient>;
  /** A PostgreSQL URL: the coordinator creates a dedicated `pg.Client` (loading `pg` lazily). */
  readonly connectionString?: string;
  /** Same as `connectionString`. */
  readonly url?: string;
  /** The schema of the tables `migrate()` created. @defaultValue `'graceful_drain'` */
  readonly schema?: string;
  /** Idle time before TCP keepalive probes start, both ends (server: whole seconds). @defaultValue `5000` */
  readonly keepAliveIdleMs?: number;
  /** Time between two keepalive probes (server side, whole seconds). @defaultValue `1000` */
  readonly keepAliveIntervalMs?: number;
  /** Unanswered probes after which the server drops the session (and frees its locks). @defaultValue `3` */
  readonly keepAliveCount?: number;
  /** `idle_in_transaction_session_timeout` of the session. @defaultValue `10000` */
  readonly idleInTransactionTimeoutMs?: number;
  /** How long connecting may take before `CoordinatorUnavailableError`. @defaultValue `5000` */
  readonly connectTimeoutMs?: number;
  /** How long one statement may take; past it the session is deemed broken. @defaultValue `5000` */
  readonly queryTimeoutMs?: number;
  /** How long `close()` may take, even when the server is unreachable. @defaultValue `2000` */
  readonly closeTimeoutMs?: number;
  /** The longest wait between two attempts at a held lock (from 10 ms, backing off). @defaultValue `250` */
  readonly pollIntervalMs?: number;
}

/** What the store does about its mark trigger: see {@link PostgresWorkflowStoreOptions.markTrigger}. */
export type MarkTriggerMode = 'install' | 'verify' | 'off';

/** The options that name the host's table and its statuses. */
export interface PostgresHostTableOptions {
  /** The host's table of workflows, `table` or `schema.table`: plain identifiers, used as written. */
  readonly table: string;
  /** The id column (any type; ids are exchanged as its text form). @defaultValue `'id'` */
  readonly idColumn?: string;
  /** The status column (text, or an enum of the host's). @defaultValue `'status'` */
  readonly statusColumn?: string;
  /** The host's status values. @defaultValue `{ running: 'running', paused: 'paused' }` */
  readonly statuses?: WorkflowStatuses;
  /**
   * The column where the host records which member drives each workflow (its `memberId`, as text or any
   * type text converts to). Given, the store offers `listOwned()` and `evictMembers()`: a live member
   * then recovers a crashed peer's workflows while the group keeps running, and every call of an evicted
   * incarnation is rejected. Index it with the id: `CREATE INDEX ON workflows (owner, id)`. See "Owners
   * and eviction" in docs/adapters/postgres.md.
   * @defaultValue `undefined` (no owner capability)
   */
  readonly ownerColumn?: string;
}

/** Options of `PostgresWorkflowStore`: give exactly one of `client`, `pool`, `connectionString` or `url`. */
export interface PostgresWorkflowStoreOptions extends PostgresHostTableOptions {
  /**
   * One connection of the store's own (a `pg.Client`, or a `pg.PoolClient` kept checked out), used one
   * call at a time: statements of yours would land inside its transactions. Never closed by the store.
   */
  readonly client?: PgQueryable;
  /** A `pg.Pool`: a connection is checked out for each transaction. Never closed by the store. */
  readonly pool?: PgPool;
  /** A PostgreSQL URL: the store creates a small `pg.Pool` (loading `pg` lazily) and ends it on `close()`. */
  readonly connectionString?: string;
  /** Same as `connectionString`. */
  readonly url?: string;
  /** The schema of the tables `migrate()` created (the marks'). @defaultValue `'graceful_drain'` */
  readonly schema?: string;
  /**
   * The trigger that drops a parked-by-shutdown mark when its workflow leaves `pausing`/`paused`:
   * `'install'` creates or replaces it at first use when it is missing or outdated (needs the `TRIGGER`
   * privilege on the table and `CREATE` on the schema); `'verify'` only checks it (a `ConfigurationError`
   * asks for `migrate({ stores })` otherwise); `'off'` goes without, and the host must then call
   * `notePaused()` on every pause a user asks for.
   * @defaultValue `'install'`
   */
  readonly markTrigger?: MarkTriggerMode;
  /**
   * How the batches of `park()` and `parkPage()`, and the pages of `unparkPage()` but the last of a pass,
   * commit (`recover()` and `unpark()` always wait for the flush): `'deferred'` without waiting for the WAL
   * flush (`synchronous_commit = off` for their transactions: a server crash may lose the last fraction of a
   * second of batches, each whole or not at all, until the next write that waits for the flush, such as
   * the hand-off's closing record or a resume's last page, makes them all durable); `'synchronous'` as the
   * server is configured.
   * See "Durability" in docs/adapters/postgres.md.
   * @defaultValue `'deferred'`
   */
  readonly batchCommit?: 'deferred' | 'synchronous';
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** The schema to create (if needed) and keep the tables in. @defaultValue `'graceful_drain'` */
  readonly schema?: string;
  /**
   * The host tables of the `PostgresWorkflowStore`s keeping their marks in `schema`, as given to each
   * store: on each, the mark trigger is installed, or replaced when made for other statuses. For stores
   * whose role may not create triggers; run it again whenever the statuses change.
   * @defaultValue `[]`
   */
  readonly stores?: readonly PostgresHostTableOptions[];
}

const COORDINATOR_DEFAULTS = Object.freeze({
  schema: DEFAULT_SCHEMA,
  keepAliveIdleMs: 5000,
  keepAliveIntervalMs: 1000,
  keepAliveCount: 3,
  idleInTransactionTimeoutMs: 10_000,
  connectTimeoutMs: 5000,
  queryTimeoutMs: 5000,
  closeTimeoutMs: 2000,
  pollIntervalMs: 250,
});
const HOST_TABLE_DEFAULTS = Object.freeze({
  idColumn: 'id',
  statusColumn: 'status',
  statuses: Object.freeze({ running: 'running', paused: 'paused' }) as WorkflowStatuses,
});
const STORE_DEFAULTS = Object.freeze({
  ...HOST_TABLE_DEFAULTS,
  schema: DEFAULT_SCHEMA,
  markTrigger: 'install' as MarkTriggerMode,
  batchCommit: 'deferred' as 'deferred' | 'synchronous',
});

/** {@link PostgresCoordinatorOptions} checked, with defaults applied. @internal */
export type CompiledCoordinatorOptions = ReturnType<typeof compileCoordinatorOptions>;
/** The host's table as {@link PostgresHostTableOptions} name it, checked, with defaults applied. @internal */
export type HostTable = ReturnType<typeof compileHostTable>;
/** {@link PostgresWorkflowStoreOptions} checked, with defaults applied. @internal */
export type CompiledStoreOptions = ReturnType<typeof compileStoreOptions>;

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileCoordinatorOptions(options: unknown) {
  const sources = ['client', 'connectionString', 'url'];
  const known = [...sources, ...Object.keys(COORDINATOR_DEFAULTS)];
  const given = checkOptionsObject('PostgresCoordinator', options, known);
  checkOneSource('PostgresCoordinator', given, sources);
  const o = withDefaults(COORDINATOR_DEFAULTS, given);
  const schema = checkIdentifier('schema', o.schema);
  const c = {
    schema,
    schemaSql: quote(schema),
    keepAliveIdleMs: checkPositive('keepAliveIdleMs', o.keepAliveIdleMs),
    keepAliveIntervalMs: checkPositive('keepAliveIntervalMs', o.keepAliveIntervalMs),
    keepAliveCount: checkCount('keepAliveCount', o.keepAliveCount),
    idleInTransactionTimeoutMs: checkPositive('idleInTransactionTimeoutMs', o.idleInTransactionTimeoutMs),
    connectTimeoutMs: checkPositive('connectTimeoutMs', o.connectTimeoutMs),
    queryTimeoutMs: checkPositive('queryTimeoutMs', o.queryTimeoutMs),
    closeTimeoutMs: checkPositive('closeTimeoutMs', o.closeTimeoutMs),
    pollIntervalMs: checkPositive('pollIntervalMs', o.pollIntervalMs),
  };
  let createClient: () => Promise<PgSessionClient>; // a new client, not yet connected
  if (given.client !== undefined) {
    const factory = checkFunction<() => PgSessionClient | Promise<PgSessionClient>>('client', given.client);
    createClient = async () => factory();
  } else {
    const key = given.connectionString === undefined ? 'url' : 'connectionString';
    // Never echoed in a message or a log: it may carry a password.
    const connectionString = checkName(key, given[key]);
    createClient = async () =>
      new (await loadPg('PostgresCoordinator')).Client({
        connectionString,
        // Client-side keepalives make a dead peer an 'error' on the socket instead of silence.
        keepAlive: true,
        keepAliveInitialDelayMillis: c.keepAliveIdleMs,
        connectionTimeoutMillis: c.connectTimeoutMs,
        application_name: 'graceful-drain',
      });
  }
  return Object.freeze({ ...c, createClient });
}

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileStoreOptions(options: unknown) {
  const sources = ['client', 'pool', 'connectionString', 'url'];
  const known = [...sources, 'table', 'ownerColumn', ...Object.keys(STORE_DEFAULTS)];
  const given = checkOptionsObject('PostgresWorkflowStore', options, known);
  checkOneSource('PostgresWorkflowStore', given, sources);
  const o = withDefaults(STORE_DEFAULTS, given);
  return Object.freeze({
    ...compileHostTable(given),
    schema: checkIdentifier('schema', o.schema),
    markTrigger: checkOneOf('markTrigger', o.markTrigger, ['install', 'verify', 'off']),
    batchCommit: checkOneOf('batchCommit', o.batchCommit, ['deferred', 'synchronous']),
    runner: createRunner(given),
  });
}

/** Checks the options of `migrate()` and applies the defaults. @internal */
export function compileMigrateOptions(options: unknown): { schema: string; stores: HostTable[] } {
  const given = checkOptionsObject('migrate()', options, ['schema', 'stores']);
  const o = withDefaults({ schema: DEFAULT_SCHEMA, stores: [] }, given);
  const schema = checkIdentifier('schema', o.schema);
  if (!Array.isArray(o.stores)) {
    invalid('stores', 'an array of `{ table, idColumn?, statusColumn?, statuses?, ownerColumn? }`', o.stores);
  }
  const stores = o.stores.map((entry: unknown, index) => {
    const store = checkOptionsObject(`stores[${index}]`, entry, [
      'table',
      'ownerColumn',
      ...Object.keys(HOST_TABLE_DEFAULTS),
    ]);
    if (entry === undefined) invalid(`stores[${index}]`, 'an object `{ table, ... }`', entry);
    return compileHostTable(store, `stores[${index}].`);
  });
  return { schema, stores };
}

/** Checks the table options found in `given` (messages prefixed with `prefix`) and applies defaults. */
function compileHostTable(given: Record<string, unknown>, prefix = '') {
  const o = withDefaults(HOST_TABLE_DEFAULTS, given);
  return Object.freeze({
    table: checkTableName(`${prefix}table`, o.table),
    idColumn: checkIdentifier(`${prefix}idColumn`, o.idColumn),
    statusColumn: checkIdentifier(`${prefix}statusColumn`, o.statusColumn),
    statuses: checkStatuses(`${prefix}statuses`, given.statuses, HOST_TABLE_DEFAULTS.statuses),
    ownerColumn:
      given.ownerColumn === undefined
        ? undefined
        : checkIdentifier(`${prefix}ownerColumn`, given.ownerColumn),
  });
}

/** Exactly one of `sources` must be given. */
function checkOneSource(where: string, given: Record<string, unknown>, sources: readonly string[]): void {
  const present = sources.filter((key) => given[key] !== undefined);
  if (present.length === 1) return;
  const names = sources.map((s) => `\`${s}\``);
  throw new ConfigurationError(
    `${where} needs exactly one of ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, got ${
      present.length === 0 ? 'none' : present.map((s) => `\`${s}\``).join(' and ')
    }`,
  );
}
