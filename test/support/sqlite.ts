/**
 * The SQLite drivers of the running Node.js, for the SQLite adapters' tests: `node:sqlite` where the
 * runtime has it, and better-sqlite3 where it loads and a process using it exits cleanly (the
 * node_modules' build may be for another Node.js, and better-sqlite3 12 aborts at exit on Node 24).
 * `forEachDriver()` runs a block of tests once per driver; inside it, `openDatabase()` and
 * `sqliteDriver()` follow the block's driver.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe } from 'vitest';
import {
  builtinSqlite,
  loadSqliteDriver,
  type SqliteDatabase,
  type SqliteDriver,
  type SqliteDriverName,
} from '../../src/adapters/sqlite/driver.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A database handle as the tests use it: better-sqlite3's `open` as well. */
export type TestDatabase = SqliteDatabase & { readonly open: boolean };

/** Whether better-sqlite3 loads here and a process that used it exits cleanly. */
function betterSqlite3Works(): boolean {
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      "const D = require('better-sqlite3'); const db = new D(':memory:'); db.prepare('SELECT 1').get(); db.close()",
    ],
    { cwd: ROOT, stdio: 'ignore', timeout: 20_000 },
  );
  return probe.status === 0 && probe.signal === null;
}

/** The drivers this runtime has, `node:sqlite` first. */
export const SQLITE_DRIVERS: readonly SqliteDriverName[] = [
  ...(builtinSqlite() === undefined ? [] : (['node:sqlite'] as const)),
  ...(betterSqlite3Works() ? (['better-sqlite3'] as const) : []),
];
if (SQLITE_DRIVERS.length === 0) {
  throw new Error(
    `No SQLite driver on Node.js ${process.version}: neither node:sqlite nor a working better-sqlite3`,
  );
}

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
