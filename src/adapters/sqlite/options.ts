/**
 * The options of the SQLite adapters, their defaults, and their compilation.
 *
 * @packageDocumentation
 */
import { ConfigurationError } from '../../errors.js';
import { withDefaults } from '../../internal/defaults.js';
import { checkIdentifier, checkTableName, type TableName } from '../../internal/sql-names.js';
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

/**
 * A `node:sqlite` `DatabaseSync`, structurally (no types from `node:sqlite` needed): the adapters wrap
 * it into a {@link SqliteDatabase}.
 */
export interface NodeSqliteDatabaseSync {
  prepare(source: string): unknown;
  exec(source: string): unknown;
  close(): unknown;
}

/** Options of {@link SqliteCoordinator}. Give exactly one of `database` and `path`. */
export interface SqliteCoordinatorOptions {
  /**
   * A database you opened on a file: a better-sqlite3 `Database`, a `node:sqlite` `DatabaseSync`, or
   * what {@link openSqliteDatabase} returns. The coordinator switches it to WAL journal mode (a lasting
   * property of the file), and never closes it.
   */
  readonly database?: SqliteDatabase | NodeSqliteDatabaseSync | undefined;
  /**
   * The path of the database file, opened (and created if missing) by the coordinator with `driver`
   * when first used, and closed on `close()`.
   */
  readonly path?: string | undefined;
  /**
   * The SQLite driver that opens `path`: `'node:sqlite'` (built into Node.js 22.13 and later),
   * `'better-sqlite3'` (an optional peer dependency, loaded when first used), or `'auto'`: `node:sqlite`
   * where the runtime has it, better-sqlite3 otherwise. With `database`, the driver is the one that
   * opened it (told apart by its shape) and this option is not used.
   * @defaultValue `'auto'`
   */
  readonly driver?: SqliteDriverOption | undefined;
  /**
   * The prefix of the coordinator's tables (`<prefix>locks`, `<prefix>members`): a plain identifier.
   * @defaultValue `'graceful_drain_'`
   */
  readonly tablePrefix?: string | undefined;
  /**
   * The longest one statement may block the event loop waiting for another connection's write lock,
   * in milliseconds; past it the statement is retried asynchronously. It must be below `ttlMs / 5`
   * (`acquire()` and `join()` reject a `ttlMs` of 5 × `busyTimeoutMs` or less with
   * `ConfigurationError`), and is best kept well below.
   * @defaultValue `50`
   */
  readonly busyTimeoutMs?: number | undefined;
  /**
   * How often a waiting `acquire()` tries again, in milliseconds (jittered by ±25%).
   * @defaultValue `50`
   */
  readonly pollIntervalMs?: number | undefined;
  /**
   * How long `join()`, `leave()`, `release()` and `members()` keep retrying while the database stays
   * busy before rejecting with `CoordinatorUnavailableError`, in milliseconds.
   * @defaultValue `5000`
   */
  readonly operationTimeoutMs?: number | undefined;
}

/** Options of {@link SqliteWorkflowStore}. Give exactly one of `database` and `path`. */
export interface SqliteWorkflowStoreOptions {
  /**
   * The host's database: a better-sqlite3 `Database`, a `node:sqlite` `DatabaseSync`, or what
   * {@link openSqliteDatabase} returns. The store never closes it.
   */
  readonly database?: SqliteDatabase | NodeSqliteDatabaseSync | undefined;
  /**
   * The path of the host's database file, opened by the store with `driver` when first used and
   * closed by `close()`.
   */
  readonly path?: string | undefined;
  /**
   * The SQLite driver that opens `path`: `'node:sqlite'` (built into Node.js 22.13 and later),
   * `'better-sqlite3'` (an optional peer dependency, loaded when first used), or `'auto'`: `node:sqlite`
   * where the runtime has it, better-sqlite3 otherwise. With `database`, the driver is the one that
   * opened it (told apart by its shape) and this option is not used.
   * @defaultValue `'auto'`
   */
  readonly driver?: SqliteDriverOption | undefined;
  /** The host's existing table of workflows: `name` or `schema.name`, plain identifiers. */
  readonly table: string;
  /**
   * The column holding a workflow's id (unique).
   * @defaultValue `'id'`
   */
  readonly idColumn?: string | undefined;
  /**
   * The column holding a workflow's status.
   * @defaultValue `'status'`
   */
  readonly statusColumn?: string | undefined;
  /**
   * The host's status values. When given, list every state your host has: `running` and `paused`
   * are required, `pausing` only when the host pauses in two steps.
   * @defaultValue `{ running: 'running', pausing: 'pausing', paused: 'paused' }`
   */
  readonly statuses?: WorkflowStatuses | undefined;
  /**
   * The store's own table of parked-by-shutdown marks (and, beside it, `<marksTable>_fence` holding the
   * highest fencing token seen). One per host table, in the host table's database (schema). The
   * triggers on the host's table are named `<marksTable>_unpaused` and `<marksTable>_deleted`.
   * @defaultValue `'graceful_drain_marks'`
   */
  readonly marksTable?: string | undefined;
  /**
   * The longest one statement may block the event loop waiting for another connection's write lock,
   * in milliseconds; past it the statement is retried asynchronously.
   * @defaultValue `50`
   */
  readonly busyTimeoutMs?: number | undefined;
  /**
   * How long an operation keeps retrying while the database stays busy before rejecting with
   * `CoordinatorUnavailableError`, in milliseconds.
   * @defaultValue `5000`
   */
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
  statuses: Object.freeze({ running: 'running', pausing: 'pausing', paused: 'paused' }),
  marksTable: 'graceful_drain_marks',
  ...TIMING_DEFAULTS,
});

/** The validated source of a connection: the user's handle, or a path to open. @internal */
export type ConnectionSource =
  | { readonly database: SqliteDatabase; readonly path?: undefined }
  | { readonly path: string; readonly database?: undefined };

/** What both adapters compile to. @internal */
interface CompiledConnection {
  readonly source: ConnectionSource;
  /** The driver that opens `source.path`. */
  readonly driver: SqliteDriverOption;
  readonly busyTimeoutMs: number;
  readonly operationTimeoutMs: number;
}

/** {@link SqliteCoordinatorOptions} checked, with defaults applied. @internal */
export interface CompiledCoordinatorOptions extends CompiledConnection {
  readonly tablePrefix: string;
  readonly pollIntervalMs: number;
}

/** {@link SqliteWorkflowStoreOptions} checked, with defaults applied. @internal */
export interface CompiledStoreOptions extends CompiledConnection {
  readonly names: StoreNames;
  /** `table` as given, for messages. */
  readonly table: string;
  readonly statuses: WorkflowStatuses;
}

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileCoordinatorOptions(options: unknown): CompiledCoordinatorOptions {
  const given = checkOptionsObject('SqliteCoordinator', options, [
    'database',
    'path',
    'driver',
    ...Object.keys(COORDINATOR_DEFAULTS),
  ]);
  const { source, driver } = checkSource('SqliteCoordinator', given.database, given.path, given.driver);
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
    source,
    driver,
    tablePrefix: checkIdentifier('tablePrefix', o.tablePrefix),
    ...checkTimings(o),
    pollIntervalMs: checkPositive('pollIntervalMs', o.pollIntervalMs),
  };
}

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileStoreOptions(options: unknown): CompiledStoreOptions {
  const given = checkOptionsObject('SqliteWorkflowStore', options, [
    'database',
    'path',
    'driver',
    'table',
    ...Object.keys(STORE_DEFAULTS),
  ]);
  const { source, driver } = checkSource('SqliteWorkflowStore', given.database, given.path, given.driver);
  const o = withDefaults(STORE_DEFAULTS, given);
  const names: StoreNames = {
    table: checkTableName('table', o.table),
    idColumn: checkIdentifier('idColumn', o.idColumn),
    statusColumn: checkIdentifier('statusColumn', o.statusColumn),
    marksTable: checkTableName('marksTable', o.marksTable),
  };
  const statuses = checkStatuses('statuses', given.statuses, STORE_DEFAULTS.statuses);
  return { source, driver, names, table: o.table as string, statuses, ...checkTimings(o) };
}

function checkTimings(o: Record<string, unknown>): { busyTimeoutMs: number; operationTimeoutMs: number } {
  return {
    busyTimeoutMs: checkNonNegative('busyTimeoutMs', o.busyTimeoutMs),
    operationTimeoutMs: checkPositive('operationTimeoutMs', o.operationTimeoutMs),
  };
}

/**
 * Checks that exactly one of `database` and `path` is given, and `driver`; a `node:sqlite`
 * `DatabaseSync` given as `database` is wrapped.
 */
function checkSource(
  where: string,
  database: unknown,
  path: unknown,
  driverOption: unknown,
): { source: ConnectionSource; driver: SqliteDriverOption } {
  const driver = checkDriverOption(driverOption);
  if ((database === undefined) === (path === undefined)) {
    throw new ConfigurationError(
      `${where} needs exactly one of \`database\` (a better-sqlite3 Database or a node:sqlite DatabaseSync) and \`path\` (a file path), got ${
        database === undefined ? 'neither' : 'both'
      }`,
    );
  }
  if (path !== undefined) {
    if (typeof path !== 'string' || path.length === 0) invalid('path', 'a non-empty file path', path);
    checkDriverAvailable(driver);
    return { source: { path }, driver };
  }
  if (isNodeSqliteDatabase(database)) return { source: { database: wrapNodeSqlite(database) }, driver };
  const db = database as Partial<SqliteDatabase> | null;
  if (
    db === null ||
    typeof db !== 'object' ||
    typeof db.prepare !== 'function' ||
    typeof db.pragma !== 'function'
  ) {
    invalid('database', 'a better-sqlite3 Database or a node:sqlite DatabaseSync', database);
  }
  return { source: { database: database as SqliteDatabase }, driver };
}

/** The names the store works with. */
export interface StoreNames {
  readonly table: TableName;
  readonly idColumn: string;
  readonly statusColumn: string;
  readonly marksTable: TableName;
}
