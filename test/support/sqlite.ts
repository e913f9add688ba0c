/**
 * The SQLite drivers of the running Node.js, for the SQLite adapters' tests: `node:sqlite` where the
 * runtime has it, and better-sqlite3 always (vitest's global setup, scripts/better-sqlite3.ts, installs
 * the version that works on this Node.js). `forEachDriver()` runs a block of tests once per driver;
 * inside it, `openDatabase()` and `sqliteDriver()` follow the block's driver.
 */
import { beforeAll, describe } from 'vitest';
import {
  builtinSqlite,
  loadSqliteDriver,
  type SqliteDatabase,
  type SqliteDriver,
  type SqliteDriverName,
} from '../../src/adapters/sqlite/driver.js';

/** A database handle as the tests use it: better-sqlite3's `open` as well. */
export type TestDatabase = SqliteDatabase & { readonly open: boolean };

/** The drivers this runtime has, `node:sqlite` first. */
export const SQLITE_DRIVERS: readonly SqliteDriverName[] = [
  ...(builtinSqlite() === undefined ? [] : (['node:sqlite'] as const)),
  'better-sqlite3',
];

const loaded = new Map<SqliteDriverName, SqliteDriver>();
for (const name of SQLITE_DRIVERS) loaded.set(name, await loadSqliteDriver(name, 'test'));

let current: SqliteDriverName = SQLITE_DRIVERS[0] as SqliteDriverName;

/** The driver of the block of tests running now. */
export function sqliteDriver(): SqliteDriverName {
  return current;
}

/** Opens `path` with the current driver (or `driver`), synchronously, with better-sqlite3's default timeout. */
export function openDatabase(path: string, driver: SqliteDriverName = current): TestDatabase {
  const opener = loaded.get(driver);
  if (opener === undefined) throw new Error(`${driver} is not available on Node.js ${process.version}`);
  return opener.open(path, { timeout: 5000 }) as TestDatabase;
}

/** Declares the tests `body` declares once per driver, each in a block named after it. */
export function forEachDriver(body: (driver: SqliteDriverName) => void): void {
  for (const driver of SQLITE_DRIVERS) {
    describe(`on ${driver}`, () => {
      beforeAll(() => {
        current = driver;
      });
      body(driver);
    });
  }
}
