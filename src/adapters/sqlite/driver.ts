/**
 * The few shapes of better-sqlite3 the SQLite adapters rely on, typed structurally so that users never
 * need `@types/better-sqlite3`: a better-sqlite3 `Database` fits {@link SqliteDatabase}. And the lazy
 * loading of the driver, for adapters opened from a `path`.
 *
 * @packageDocumentation
 */
import { importDriver } from '../../internal/import-driver.js';

/** A prepared statement (better-sqlite3's `Statement`) with parameters `P` and rows `R`. */
export interface SqliteStatement<P extends unknown[] = unknown[], R = unknown> {
  /** Runs it; how many rows it changed. */
  run(...params: P): { readonly changes: number };
  /** The first row, or `undefined`. */
  get(...params: P): R | undefined;
  /** Every row. */
  all(...params: P): R[];
  /** Rows come back as their first column. */
  pluck(toggle?: boolean): this;
  /** Integers come back as bigints. */
  safeIntegers(toggle?: boolean): this;
}

/** A better-sqlite3 `Database`, as the adapters use it. */
export interface SqliteDatabase {
  /** Prepares a statement. */
  prepare<P extends unknown[] = unknown[], R = unknown>(source: string): SqliteStatement<P, R>;
  /** Wraps `fn` in a transaction; `.immediate()` runs it under `BEGIN IMMEDIATE`. */
  transaction<T>(fn: () => T): { immediate(): T };
  /** Runs a pragma; `simple` returns the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  /** Runs SQL text without parameters. */
  exec(source: string): unknown;
  /** Whether a transaction is open on this handle. */
  readonly inTransaction: boolean;
  /** Whether the database lives in memory. */
  readonly memory: boolean;
  /** Whether the database was opened read-only. */
  readonly readonly: boolean;
  /** Closes the handle. */
  close(): unknown;
}

/** The better-sqlite3 `Database` class; `MissingDriverError` naming `adapter` when it is missing. @internal */
export async function loadSqlite(
  adapter: string,
): Promise<new (path: string, options: { timeout: number }) => SqliteDatabase> {
  const driver = await importDriver<{
    default: new (path: string, options: { timeout: number }) => SqliteDatabase;
  }>('better-sqlite3', adapter);
  return driver.default;
}
