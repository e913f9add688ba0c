/**
 * The shapes of a SQLite driver the adapters rely on, typed structurally (no `@types/better-sqlite3`
 * needed): a better-sqlite3 `Database` fits {@link SqliteDatabase}, a `node:sqlite` `DatabaseSync` is
 * wrapped into it. Also the choice and lazy loading of the driver. See docs/adapters/sqlite.md.
 *
 * @packageDocumentation
 */
import { ConfigurationError, MissingDriverError } from '../../errors.js';
import { importDriver } from '../../internal/import-driver.js';
import { checkNonNegative, checkOneOf, invalid } from '../../validate.js';

/** A prepared statement (better-sqlite3's `Statement`) with parameters `P` and rows `R`. */
export interface SqliteStatement<P extends unknown[] = unknown[], R = unknown> {
  run(...params: P): { readonly changes: number };
  get(...params: P): R | undefined;
  all(...params: P): R[];
  /** Rows come back as their first column. */
  pluck(toggle?: boolean): this;
  /** Integers come back as bigints. */
  safeIntegers(toggle?: boolean): this;
}

/**
 * A SQLite database handle as the adapters use it: a better-sqlite3 `Database`, or a `node:sqlite`
 * `DatabaseSync` wrapped by {@link openSqliteDatabase} (or by the adapters, when passed as `database`).
 */
export interface SqliteDatabase {
  prepare<P extends unknown[] = unknown[], R = unknown>(source: string): SqliteStatement<P, R>;
  /** Wraps `fn` in a transaction; `.immediate()` runs it under `BEGIN IMMEDIATE`. */
  transaction<T>(fn: () => T): { immediate(): T };
  /** Runs a pragma; `simple` returns the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  /** Runs SQL text without parameters. */
  exec(source: string): unknown;
  readonly inTransaction: boolean;
  readonly memory: boolean;
  readonly readonly: boolean;
  close(): unknown;
}

/** The SQLite drivers the adapters run on. */
export type SqliteDriverName = 'node:sqlite' | 'better-sqlite3';

/**
 * Which SQLite driver opens a `path`: `'auto'` takes Node's built-in `node:sqlite` where the runtime
 * has it without a flag (Node.js 22.13 and later), and better-sqlite3 otherwise.
 */
export type SqliteDriverOption = 'auto' | SqliteDriverName;

/** Options of {@link openSqliteDatabase}. */
export interface OpenSqliteDatabaseOptions {
  /** The driver to open the file with. @defaultValue `'auto'` */
  readonly driver?: SqliteDriverOption | undefined;
  /** How long a statement waits for another connection's lock, in ms. @defaultValue `5000` */
  readonly timeout?: number | undefined;
  /** Open the file read-only. @defaultValue `false` */
  readonly readonly?: boolean | undefined;
}

/** A loaded driver: its name, and a synchronous way to open a file with it. @internal */
export interface SqliteDriver {
  readonly name: SqliteDriverName;
  open(path: string, options: { timeout: number; readonly?: boolean | undefined }): SqliteDatabase;
}

/** The parts of `node:sqlite`'s `StatementSync` used here (`setReturnArrays`: Node.js 22.16+). */
interface NodeStatement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  setReadBigInts(enabled: boolean): void;
  setReturnArrays?(enabled: boolean): void;
}

/** The parts of `node:sqlite`'s `DatabaseSync` used here (the optional ones: Node.js 22.15/22.16+). */
interface NodeDatabase {
  prepare(source: string): NodeStatement;
  exec(source: string): void;
  close(): void;
  readonly isTransaction?: boolean;
  readonly isOpen?: boolean;
  /** `null` for an in-memory database. */
  location?(): string | null;
}

interface NodeSqliteModule {
  DatabaseSync: new (path: string, options?: { timeout?: number; readOnly?: boolean }) => NodeDatabase;
}

let nodeSqlite: NodeSqliteModule | null | undefined;

/**
 * `node:sqlite` when this runtime has it without a flag, else `undefined`. Node.js 22's one
 * ExperimentalWarning on loading it is not printed (the API used is pinned by this package's tests).
 * @internal
 */
export function builtinSqlite(): NodeSqliteModule | undefined {
  if (nodeSqlite !== undefined) return nodeSqlite ?? undefined;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: unknown } | undefined)?.type;
    const message = typeof warning === 'string' ? warning : warning?.message;
    if (type === 'ExperimentalWarning' && /\bSQLite\b/.test(String(message))) return;
    return (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    const module = process.getBuiltinModule?.('node:sqlite') as NodeSqliteModule | undefined;
    nodeSqlite = typeof module?.DatabaseSync === 'function' ? module : null;
  } catch {
    nodeSqlite = null;
  } finally {
    process.emitWarning = emitWarning;
  }
  return nodeSqlite ?? undefined;
}

/** Whether `value` is a `node:sqlite` `DatabaseSync` (rather than a better-sqlite3 `Database`). @internal */
export function isNodeSqliteDatabase(value: unknown): boolean {
  const db = value as Record<string, unknown> | null;
  if (db === null || typeof db !== 'object') return false;
  if (typeof db.pragma === 'function' || typeof db.prepare !== 'function' || typeof db.exec !== 'function') {
    return false;
  }
  const DatabaseSync = builtinSqlite()?.DatabaseSync;
  if (DatabaseSync !== undefined && db instanceof DatabaseSync) return true;
  // Another realm's, or a runtime where loading it failed: it has no `pragma()` but a session API.
  return typeof db.createSession === 'function';
}

/** The first column of a row, whether it came back as an array or as an object. */
function firstColumn(row: unknown): unknown {
  if (row === undefined || row === null) return row;
  return Array.isArray(row) ? row[0] : Object.values(row as Record<string, unknown>)[0];
}

/** A `node:sqlite` statement with better-sqlite3's `pluck()` and `safeIntegers()`. */
function wrapStatement(statement: NodeStatement): SqliteStatement {
  let plucked = false;
  let arrays = false;
  let bigints = false;
  const wrapped: SqliteStatement = {
    run(...params) {
      // `run()` reads the last rowid too, which throws as a number past 2^53 (Node.js 26): read bigints.
      if (!bigints) statement.setReadBigInts(true);
      try {
        return { changes: Number(statement.run(...params).changes) };
      } finally {
        if (!bigints) statement.setReadBigInts(false);
      }
    },
    get(...params) {
      const row = statement.get(...params);
      return plucked ? firstColumn(row) : row;
    },
    all: (...params) => (plucked ? statement.all(...params).map(firstColumn) : statement.all(...params)),
    pluck(toggle = true) {
      plucked = toggle;
      // Arrays where the runtime can: an object row loses a column whose name repeats an earlier one's.
      if (typeof statement.setReturnArrays === 'function' && arrays !== toggle) {
        statement.setReturnArrays(toggle);
        arrays = toggle;
      }
      return wrapped;
    },
    safeIntegers(toggle = true) {
      statement.setReadBigInts(toggle);
      bigints = toggle;
      return wrapped;
    },
  };
  return wrapped;
}

/** A `node:sqlite` `DatabaseSync` in the shape of a better-sqlite3 `Database`. */
class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: NodeDatabase;
  readonly #readonly: boolean;
  #open = true;
  #savepoints = 0;

  constructor(db: NodeDatabase, readonly = false) {
    this.#db = db;
    this.#readonly = readonly;
  }

  prepare<P extends unknown[] = unknown[], R = unknown>(source: string): SqliteStatement<P, R> {
    return wrapStatement(this.#db.prepare(source)) as SqliteStatement<P, R>;
  }

  /** better-sqlite3's transactions: `BEGIN <mode>`/`COMMIT`, rolled back on a throw; nested: a savepoint. */
  transaction<T>(fn: () => T): (() => T) & { deferred(): T; immediate(): T; exclusive(): T } {
    const run = (mode: string): T => {
      const savepoint = this.inTransaction ? `"graceful_drain_tx_${++this.#savepoints}"` : undefined;
      this.#db.exec(savepoint === undefined ? `BEGIN ${mode}` : `SAVEPOINT ${savepoint}`);
      try {
        const result = fn();
        this.#db.exec(savepoint === undefined ? 'COMMIT' : `RELEASE ${savepoint}`);
        return result;
      } catch (error) {
        if (this.inTransaction) {
          this.#db.exec(savepoint === undefined ? 'ROLLBACK' : `ROLLBACK TO ${savepoint}`);
          if (savepoint !== undefined) this.#db.exec(`RELEASE ${savepoint}`);
        }
        throw error;
      } finally {
        if (savepoint !== undefined) this.#savepoints--;
      }
    };
    return Object.assign(() => run('DEFERRED'), {
      deferred: () => run('DEFERRED'),
      immediate: () => run('IMMEDIATE'),
      exclusive: () => run('EXCLUSIVE'),
    });
  }

  pragma(source: string, options?: { simple?: boolean }): unknown {
    const statement = this.#db.prepare(`PRAGMA ${source}`);
    return options?.simple === true ? firstColumn(statement.get()) : statement.all();
  }

  exec(source: string): this {
    this.#db.exec(source);
    return this;
  }

  get inTransaction(): boolean {
    if (typeof this.#db.isTransaction === 'boolean') return this.#db.isTransaction;
    // Node.js before 22.16: a deferred BEGIN takes no lock, and fails only inside a transaction.
    try {
      this.#db.exec('BEGIN DEFERRED');
    } catch (error) {
      if (/within a transaction/.test((error as Error | null)?.message ?? '')) return true;
      throw error;
    }
    this.#db.exec('ROLLBACK');
    return false;
  }

  get memory(): boolean {
    try {
      if (typeof this.#db.location === 'function') return this.#db.location() === null;
      const list = this.#db.prepare('PRAGMA database_list').all() as { name: string; file: string }[];
      return list.find((entry) => entry.name === 'main')?.file === '';
    } catch {
      return false;
    }
  }

  /** Whether it was opened read-only here; a `DatabaseSync` passed in is taken as writable. */
  get readonly(): boolean {
    return this.#readonly;
  }

  /** Whether the handle is open (better-sqlite3's `open`). */
  get open(): boolean {
    return typeof this.#db.isOpen === 'boolean' ? this.#db.isOpen : this.#open;
  }

  close(): this {
    this.#db.close();
    this.#open = false;
    return this;
  }
}

/** Wraps a `node:sqlite` `DatabaseSync` into {@link SqliteDatabase}. @internal */
export function wrapNodeSqlite(db: unknown, readonly = false): SqliteDatabase {
  return new NodeSqliteDatabase(db as NodeDatabase, readonly);
}

const NEEDS_NODE = 'Node.js 22.13 or later';

function noBuiltin(): string {
  return `\`driver: 'node:sqlite'\` needs ${NEEDS_NODE}, where SQLite is built in (this is Node.js ${process.version}, or it runs with --no-experimental-sqlite): use \`driver: 'better-sqlite3'\` or \`'auto'\``;
}

/** Checks the `driver` option (`ConfigurationError` naming it). @internal */
export function checkDriverOption(value: unknown): SqliteDriverOption {
  if (value === undefined) return 'auto';
  return checkOneOf<SqliteDriverOption>('driver', value, ['auto', 'node:sqlite', 'better-sqlite3']);
}

/** `ConfigurationError` when `driver` is `'node:sqlite'` and this runtime does not have it. @internal */
export function checkDriverAvailable(driver: SqliteDriverOption): void {
  if (driver === 'node:sqlite' && builtinSqlite() === undefined) throw new ConfigurationError(noBuiltin());
}

type BetterSqlite3 = new (path: string, options: { timeout: number; readonly?: boolean }) => SqliteDatabase;

/**
 * Loads the driver `choice` names (better-sqlite3 is never loaded for `'auto'` where `node:sqlite` is
 * there): `MissingDriverError` naming `adapter` when better-sqlite3 is needed and missing,
 * `ConfigurationError` for `'node:sqlite'` on a runtime without it.
 * @internal
 */
export async function loadSqliteDriver(choice: SqliteDriverOption, adapter: string): Promise<SqliteDriver> {
  const module = choice === 'better-sqlite3' ? undefined : builtinSqlite();
  if (module !== undefined) {
    return {
      name: 'node:sqlite',
      open(path, { timeout, readonly }) {
        const db = new module.DatabaseSync(path, { timeout, readOnly: readonly === true });
        // `timeout` is read by Node.js 22.16 and later; the pragma sets it on every version.
        db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(timeout))}`);
        return wrapNodeSqlite(db, readonly === true);
      },
    };
  }
  if (choice === 'node:sqlite') throw new ConfigurationError(`${adapter}: ${noBuiltin()}`);
  let Database: BetterSqlite3;
  try {
    Database = (await importDriver<{ default: BetterSqlite3 }>('better-sqlite3', adapter)).default;
  } catch (error) {
    if (choice === 'auto' && error instanceof MissingDriverError) {
      throw new MissingDriverError('better-sqlite3', adapter, {
        cause: error.cause,
        hint: `, or run on ${NEEDS_NODE}, where the built-in \`node:sqlite\` is used (option \`driver\`, default 'auto')`,
      });
    }
    throw error;
  }
  return {
    name: 'better-sqlite3',
    open: (path, { timeout, readonly }) => new Database(path, { timeout, readonly: readonly === true }),
  };
}

/**
 * Opens a SQLite database file (created if missing) with the driver `options.driver` names (by
 * default `'auto'`: `node:sqlite` on Node.js 22.13 and later, better-sqlite3 otherwise), as a
 * {@link SqliteDatabase}: give it to the adapters as `database`, or use it for the host's own tables.
 * With better-sqlite3 it is the `Database` itself; with `node:sqlite`, a `DatabaseSync` wrapped in the
 * same shape.
 *
 * @throws `MissingDriverError` when better-sqlite3 is needed and not installed; `ConfigurationError`
 * for `driver: 'node:sqlite'` on a runtime without it, or a bad option.
 * @example
 * ```ts
 * import { openSqliteDatabase, SqliteWorkflowStore } from 'graceful-drain/sqlite';
 * const db = await openSqliteDatabase('/var/lib/engine/engine.db');
 * db.exec('CREATE TABLE IF NOT EXISTS executions (id TEXT PRIMARY KEY, status TEXT NOT NULL)');
 * const store = new SqliteWorkflowStore({ database: db, table: 'executions' });
 * ```
 */
export async function openSqliteDatabase(
  path: string,
  options: OpenSqliteDatabaseOptions = {},
): Promise<SqliteDatabase> {
  if (typeof path !== 'string' || path.length === 0) invalid('path', 'a non-empty file path', path);
  const choice = checkDriverOption(options.driver);
  const timeout = checkNonNegative('timeout', options.timeout ?? 5000);
  const driver = await loadSqliteDriver(choice, 'openSqliteDatabase');
  return driver.open(path, { timeout, readonly: options.readonly });
}
