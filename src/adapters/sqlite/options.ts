/**
 * The options of the SQLite adapters, their defaults, and their compilation.
 *
 * @packageDocumentation
 */
import { ConfigurationError } from '../../errors.js';
import { withDefaults } from '../../internal/defaults.js';
import { checkIdentifier, checkTableName } from '../../internal/sql-names.js';
import { checkStatuses, type WorkflowStatuses } from '../../internal/statuses.js';
import { checkNonNegative, checkOptionsObject, checkPositive, invalid } from '../../validate.js';
import {
  checkDriverAvailable,
  checkDriverOption,
  isNodeSqliteDatabase,
  wrapNodeSqlite,
  type SqliteDatabase,
  type SqliteDriverOption,
} from './driver.js';

/** A `node:sqlite` `DatabaseSync`, structurally: the adapters wrap it into a {@link SqliteDatabase}. */
export interface NodeSqliteDatabaseSync {
  prepare(source: string): unknown;
  exec(source: string): unknown;
  close(): unknown;
}

/** Options of {@link SqliteCoordinator}. Give exactly one of `database` and `path`. */
export interface SqliteCoordinatorOptions {
  /**
   * A database you opened on a file (better-sqlite3, `node:sqlite`, or {@link openSqliteDatabase}'s).
   * The coordinator switches it to WAL journal mode (a lasting property of the file) and never closes it.
   */
  readonly database?: SqliteDatabase | NodeSqliteDatabaseSync | undefined;
  /** The database file, opened (created if missing) with `driver` on first use, closed by `close()`. */
  readonly path?: string | undefined;
  /**
   * The driver that opens `path` (not used with `database`): `'node:sqlite'` (Node.js 22.13 and
   * later), `'better-sqlite3'` (an optional peer dependency), or `'auto'`: `node:sqlite` where there.
   * @defaultValue `'auto'`
   */
  readonly driver?: SqliteDriverOption | undefined;
  /** The prefix of the tables `<prefix>locks` and `<prefix>members`. @defaultValue `'graceful_drain_'` */
  readonly tablePrefix?: string | undefined;
  /**
   * The longest one statement blocks the event loop waiting for another connection's write lock, in
   * ms, before an asynchronous retry. Must be below `ttlMs / 5`.
   * @defaultValue `50`
   */
  readonly busyTimeoutMs?: number | undefined;
  /** How often a waiting `acquire()` tries again, in ms (±25% jitter). @defaultValue `50` */
  readonly pollIntervalMs?: number | undefined;
  /** How long calls retry a busy database before `CoordinatorUnavailableError` (ms). @defaultValue `5000` */
  readonly operationTimeoutMs?: number | undefined;
}

/** Options of {@link SqliteWorkflowStore}. Give exactly one of `database` and `path`. */
export interface SqliteWorkflowStoreOptions {
  /** The host's database (better-sqlite3, `node:sqlite`, or {@link openSqliteDatabase}'s); never closed. */
  readonly database?: SqliteDatabase | NodeSqliteDatabaseSync | undefined;
  /** The host's database file, opened with `driver` on first use and closed by `close()`. */
  readonly path?: string | undefined;
  /** The driver that opens `path`, as for {@link SqliteCoordinatorOptions}. @defaultValue `'auto'` */
  readonly driver?: SqliteDriverOption | undefined;
  /** The host's existing table of workflows: `name` or `schema.name`, plain identifiers. */
  readonly table: string;
  /** The column holding a workflow's id (unique). @defaultValue `'id'` */
  readonly idColumn?: string | undefined;
  /** The column holding a workflow's status. @defaultValue `'status'` */
  readonly statusColumn?: string | undefined;
  /**
   * The host's status values: `running` and `paused` required, `pausing` only when the host pauses in
   * two steps, `failed` where crash recovery moves a workflow past `maxRecoveries` (without it, such a
   * workflow keeps its status). Given statuses get no `failed` unless they name one.
   * @defaultValue `{ running: 'running', pausing: 'pausing', paused: 'paused', failed: 'failed' }`
   */
  readonly statuses?: WorkflowStatuses | undefined;
  /**
   * The store's table of marks, in the host table's database; beside it `<marksTable>_fence` (the
   * highest token seen), `<marksTable>_generations`, `<marksTable>_generation_members` and
   * `<marksTable>_recoveries` (crash recovery), `<marksTable>_evictions` (evicted incarnations), and
   * triggers `<marksTable>_unpaused` and `<marksTable>_deleted` on the host's table.
   * @defaultValue `'graceful_drain_marks'`
   */
  readonly marksTable?: string | undefined;
  /**
   * The column of `table` in which the host records which member drives a workflow (the `memberId` of
   * the worker running it). With it, the store offers `listOwned()` and `evictMembers()`, so that a live
   * member recovers a crashed peer's workflows while the group keeps running; without it, it has neither.
   * Checked at set-up: it must be a column of `table`. Index it: see docs/adapters/sqlite.md.
   * @defaultValue `undefined` (no owner capability)
   */
  readonly ownerColumn?: string | undefined;
  /** The longest one statement blocks waiting for another connection's write lock (ms). @defaultValue `50` */
  readonly busyTimeoutMs?: number | undefined;
  /** How long a call retries a busy database before `CoordinatorUnavailableError`. @defaultValue `5000` */
  readonly operationTimeoutMs?: number | undefined;
}

const TIMING_DEFAULTS = { busyTimeoutMs: 50, operationTimeoutMs: 5000 };
const COORDINATOR_DEFAULTS = Object.freeze({
  tablePrefix: 'graceful_drain_',
  pollIntervalMs: 50,
  ...TIMING_DEFAULTS,
});
const STORE_DEFAULTS = Object.freeze({
  idColumn: 'id',
  statusColumn: 'status',
  statuses: Object.freeze({ running: 'running', pausing: 'pausing', paused: 'paused', failed: 'failed' }),
  marksTable: 'graceful_drain_marks',
  ...TIMING_DEFAULTS,
});

/** The validated source of a connection: the user's handle, or a path to open. */
type ConnectionSource =
  | { readonly database: SqliteDatabase; readonly path?: undefined }
  | { readonly path: string; readonly database?: undefined };

/** {@link SqliteWorkflowStoreOptions} checked, with defaults applied. @internal */
export type CompiledStoreOptions = ReturnType<typeof compileStoreOptions>;

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileCoordinatorOptions(options: unknown) {
  const { given, ...connection } = checkConnection('SqliteCoordinator', options, COORDINATOR_DEFAULTS);
  const { source } = connection;
  if (source.database?.memory === true || source.path === ':memory:') {
    throw new ConfigurationError(
      'SqliteCoordinator needs a database file: an in-memory database cannot be shared between processes',
    );
  }
  if (source.database?.readonly === true) {
    throw new ConfigurationError('SqliteCoordinator needs a writable database: `database` is read-only');
  }
  const o = withDefaults(COORDINATOR_DEFAULTS, given);
  return {
    ...connection,
    tablePrefix: checkIdentifier('tablePrefix', o.tablePrefix),
    ...checkTimings(o),
    pollIntervalMs: checkPositive('pollIntervalMs', o.pollIntervalMs),
  };
}

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileStoreOptions(options: unknown) {
  const { given, ...connection } = checkConnection(
    'SqliteWorkflowStore',
    options,
    STORE_DEFAULTS,
    'table',
    'ownerColumn',
  );
  const o = withDefaults(STORE_DEFAULTS, given);
  const names = {
    table: checkTableName('table', o.table),
    idColumn: checkIdentifier('idColumn', o.idColumn),
    statusColumn: checkIdentifier('statusColumn', o.statusColumn),
    ownerColumn:
      given.ownerColumn === undefined ? undefined : checkIdentifier('ownerColumn', given.ownerColumn),
    marksTable: checkTableName('marksTable', o.marksTable),
  };
  const statuses = checkStatuses('statuses', given.statuses, STORE_DEFAULTS.statuses);
  return { ...connection, names, table: o.table as string, statuses, ...checkTimings(o) };
}

function checkTimings(o: Record<string, unknown>): { busyTimeoutMs: number; operationTimeoutMs: number } {
  return {
    busyTimeoutMs: checkNonNegative('busyTimeoutMs', o.busyTimeoutMs),
    operationTimeoutMs: checkPositive('operationTimeoutMs', o.operationTimeoutMs),
  };
}

/**
 * Checks the option names (the connection's, then `defaults`' and `extra`), `driver`, and exactly one
 * of `database` and `path`; wraps a `node:sqlite` `DatabaseSync`.
 */
function checkConnection(where: string, options: unknown, defaults: object, ...extra: string[]) {
  const known = ['database', 'path', 'driver', ...extra, ...Object.keys(defaults)];
  const given = checkOptionsObject(where, options, known);
  const { database, path } = given;
  const driver = checkDriverOption(given.driver);
  if ((database === undefined) === (path === undefined)) {
    const got = database === undefined ? 'neither' : 'both';
    throw new ConfigurationError(
      `${where} needs exactly one of \`database\` (a better-sqlite3 Database or a node:sqlite DatabaseSync) and \`path\` (a file path), got ${got}`,
    );
  }
  let source: ConnectionSource;
  if (path !== undefined) {
    if (typeof path !== 'string' || path.length === 0) invalid('path', 'a non-empty file path', path);
    checkDriverAvailable(driver);
    source = { path };
  } else if (isNodeSqliteDatabase(database)) {
    source = { database: wrapNodeSqlite(database) };
  } else {
    const db = database as Partial<SqliteDatabase> | null;
    if (typeof db !== 'object' || typeof db?.prepare !== 'function' || typeof db.pragma !== 'function') {
      invalid('database', 'a better-sqlite3 Database or a node:sqlite DatabaseSync', database);
    }
    source = { database: database as SqliteDatabase };
  }
  return { given, adapter: where, source, driver };
}
