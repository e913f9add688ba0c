import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isBusy } from '../src/adapters/sqlite/connection.js';
import { builtinSqlite, wrapNodeSqlite } from '../src/adapters/sqlite/driver.js';
import {
  openSqliteDatabase,
  SqliteCoordinator,
  SqliteWorkflowStore,
  type NodeSqliteDatabaseSync,
  type SqliteDatabase,
} from '../src/adapters/sqlite/index.js';
import { ConfigurationError } from '../src/errors.js';
import { randomId } from '../src/internal/time.js';
import { forEachDriver, SQLITE_DRIVERS, sqliteDriver, type TestDatabase } from './support/sqlite.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NO_DRIVER = fileURLToPath(new URL('./fixtures/sqlite-no-driver.ts', import.meta.url));
const SQLITE_MODULE = fileURLToPath(new URL('../src/adapters/sqlite/index.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gd-sqlite-driver-'));
const builtin = builtinSqlite();
const opened: SqliteDatabase[] = [];
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
  for (const db of opened.splice(0)) if ((db as TestDatabase).open !== false) db.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fileName = () => join(dir, `${randomId()}.db`);

/** A host table with two running workflows, parked and unparked through a store on `database`. */
async function roundTrip(
  database: SqliteDatabase | NodeSqliteDatabaseSync,
  host: SqliteDatabase,
): Promise<void> {
  host.exec(
    "CREATE TABLE w (id TEXT PRIMARY KEY, status TEXT NOT NULL); INSERT INTO w VALUES ('a', 'running')",
  );
  const coordinator = new SqliteCoordinator({ database });
  const store = new SqliteWorkflowStore({ database, table: 'w' });
  closers.push(
    () => coordinator.close(),
    () => store.close(),
  );
  const lease = await coordinator.acquire('l', { ttlMs: 2000, timeoutMs: 1000 });
  expect(lease.token).toBe(1n);
  expect(await store.listActive({ limit: 10 })).toEqual({ items: ['a'], cursor: undefined });
  expect(await store.park(['a'], { memberId: 'm', token: lease.token })).toEqual([
    { id: 'a', outcome: 'pausing' },
  ]);
  host.prepare("UPDATE w SET status = 'paused' WHERE id = 'a'").run();
  expect(await store.unpark(['a'], { memberId: 'm', token: lease.token })).toEqual([
    { id: 'a', outcome: 'resumed' },
  ]);
  expect(host.prepare("SELECT status FROM w WHERE id = 'a'").pluck().get()).toBe('running');
  await lease.release();
}

forEachDriver((driver) => {
  describe('openSqliteDatabase', () => {
    it('opens a file as a SqliteDatabase: statements, pluck, safeIntegers, pragmas', async () => {
      const db = await openSqliteDatabase(fileName(), { driver });
      opened.push(db);
      expect(db.memory).toBe(false);
      expect(db.readonly).toBe(false);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
      db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)');
      const insert = db.prepare<[string, number | bigint]>('INSERT INTO t VALUES (?, ?)');
      expect(insert.run('a', 1).changes).toBe(1);
      expect(insert.run('b', 2n ** 60n).changes).toBe(1);
      expect(db.prepare("SELECT id, n FROM t WHERE id = 'a'").get()).toEqual({ id: 'a', n: 1 });
      expect(db.prepare('SELECT id FROM t ORDER BY id').pluck().all()).toEqual(['a', 'b']);
      expect(db.prepare('SELECT n FROM t WHERE id = ?').pluck().safeIntegers().get('b')).toBe(2n ** 60n);
      expect(db.prepare('SELECT n FROM t WHERE id = ?').pluck().get('x')).toBeUndefined();
      expect(db.prepare('SELECT n, id FROM t WHERE id = ?').pluck().get('a')).toBe(1);
      expect(db.pragma('table_info(t)')).toMatchObject([{ name: 'id' }, { name: 'n' }]);
      expect(db.pragma('journal_mode = WAL', { simple: true })).toBe('wal');
    });

    it('transaction(): commits, rolls back on a throw, nests as a savepoint, and tells inTransaction', async () => {
      const db = await openSqliteDatabase(fileName(), { driver });
      opened.push(db);
      db.exec('CREATE TABLE t (n INTEGER)');
      const insert = db.prepare<[number]>('INSERT INTO t VALUES (?)');
      const count = () => db.prepare('SELECT count(*) FROM t').pluck().get();
      expect(db.inTransaction).toBe(false);
      expect(
        db
          .transaction(() => {
            expect(db.inTransaction).toBe(true);
            insert.run(1);
            return 'done';
          })
          .immediate(),
      ).toBe('done');
      expect(db.inTransaction).toBe(false);
      expect(() =>
        db
          .transaction(() => {
            insert.run(2);
            throw new Error('boom');
          })
          .immediate(),
      ).toThrow('boom');
      expect(count()).toBe(1);
      db.transaction(() => {
        insert.run(3);
        expect(() =>
          db
            .transaction(() => {
              insert.run(4);
              throw new Error('inner');
            })
            .immediate(),
        ).toThrow('inner');
        expect(db.inTransaction).toBe(true);
      }).immediate();
      expect(db.prepare('SELECT n FROM t ORDER BY n').pluck().all()).toEqual([1, 3]);
      expect(db.inTransaction).toBe(false);
    });

    it('opens in memory and read-only', async () => {
      const memory = await openSqliteDatabase(':memory:', { driver });
      opened.push(memory);
      expect(memory.memory).toBe(true);
      const path = fileName();
      opened.push(await openSqliteDatabase(path, { driver }));
      const readonly = await openSqliteDatabase(path, { driver, readonly: true });
      opened.push(readonly);
      expect(readonly.readonly).toBe(true);
      expect(() => new SqliteCoordinator({ database: readonly })).toThrow(/read-only/);
    });

    it('a handle it opened serves both adapters', async () => {
      const db = await openSqliteDatabase(fileName(), { driver });
      opened.push(db);
      await roundTrip(db, db);
    });
  });

  it('the adapters open a path with this driver', async () => {
    expect(sqliteDriver()).toBe(driver);
    const path = fileName();
    const host = await openSqliteDatabase(path, { driver });
    opened.push(host);
    host.exec(
      "CREATE TABLE w (id TEXT PRIMARY KEY, status TEXT NOT NULL); INSERT INTO w VALUES ('a', 'running')",
    );
    const store = new SqliteWorkflowStore({ path, table: 'w', driver });
    closers.push(() => store.close());
    expect(await store.park(['a'], { memberId: 'm', token: 7n })).toEqual([{ id: 'a', outcome: 'pausing' }]);
    expect(host.prepare('SELECT highest FROM graceful_drain_marks_fence').pluck().safeIntegers().get()).toBe(
      7n,
    );
  });
});

describe('the driver option', () => {
  it('is one of auto, node:sqlite and better-sqlite3', async () => {
    const path = fileName();
    for (const make of [
      () => new SqliteCoordinator({ path, driver: 'sqlite3' as 'auto' }),
      () => new SqliteWorkflowStore({ path, table: 'w', driver: 'sqlite3' as 'auto' }),
    ]) {
      expect(make).toThrow(ConfigurationError);
      expect(make).toThrow(/`driver`.*"sqlite3"/);
    }
    await expect(openSqliteDatabase(path, { driver: 'sqlite3' as 'auto' })).rejects.toThrow(/`driver`/);
    await expect(openSqliteDatabase('')).rejects.toThrow(/`path`/);
    await expect(openSqliteDatabase(path, { timeout: -1 })).rejects.toThrow(/`timeout`/);
  });

  it("'node:sqlite' needs a runtime that has it, and says so at construction", async () => {
    const path = fileName();
    const make = () => new SqliteCoordinator({ path, driver: 'node:sqlite' });
    if (builtin === undefined) {
      expect(make).toThrow(ConfigurationError);
      expect(make).toThrow(/node:sqlite.*Node\.js 22\.13 or later.*better-sqlite3/);
      await expect(openSqliteDatabase(path, { driver: 'node:sqlite' })).rejects.toThrow(/22\.13/);
    } else {
      closers.push(() => make().close());
      expect(SQLITE_DRIVERS).toContain('node:sqlite');
    }
  });

  it("'better-sqlite3' rejects the first call with MissingDriverError when it is not installed", () => {
    const value = noDriver('better-sqlite3');
    expect(value).toMatch(/^ERR_MISSING_DRIVER ERR_MISSING_DRIVER yes /);
    expect(value).toMatch(
      /SqliteCoordinator needs the package `better-sqlite3`: install it with `npm install better-sqlite3`$/,
    );
  });

  it("'auto' takes node:sqlite where the runtime has it, never loading better-sqlite3; otherwise names both ways out", () => {
    const value = noDriver('auto');
    if (builtin === undefined) {
      expect(value).toMatch(/^ERR_MISSING_DRIVER ERR_MISSING_DRIVER yes /);
      expect(value).toMatch(
        /`npm install better-sqlite3`, or run on Node\.js 22\.13 or later.*`node:sqlite`.*option `driver`/,
      );
    } else {
      // node:sqlite opened the path, which does not exist.
      expect(value).toMatch(/^ERR_COORDINATOR_UNAVAILABLE ERR_COORDINATOR_UNAVAILABLE no /);
    }
  });
});

/** Runs the no-driver fixture with `driver`; what follows `ready `. */
function noDriver(driver: string): string {
  const run = spawnSync(process.execPath, ['--import', 'tsx', NO_DRIVER, driver], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const match = /^ready (.+)$/m.exec(run.stdout);
  if (match === null) throw new Error(`no-driver fixture failed (${run.status}): ${run.stderr}`);
  return match[1] as string;
}

describe('isBusy', () => {
  it("knows better-sqlite3's codes and node:sqlite's errcode and errstr", () => {
    const sqlite = (fields: object) => Object.assign(new Error('x'), { code: 'ERR_SQLITE_ERROR' }, fields);
    expect(isBusy(Object.assign(new Error('x'), { code: 'SQLITE_BUSY' }))).toBe(true);
    expect(isBusy(Object.assign(new Error('x'), { code: 'SQLITE_LOCKED_SHAREDCACHE' }))).toBe(true);
    expect(isBusy(Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT' }))).toBe(false);
    expect(isBusy(sqlite({ errcode: 5, errstr: 'database is locked' }))).toBe(true);
    expect(isBusy(sqlite({ errcode: 517 }))).toBe(true); // SQLITE_BUSY_SNAPSHOT
    expect(isBusy(sqlite({ errcode: 6 }))).toBe(true);
    expect(isBusy(sqlite({ errcode: 1, errstr: 'SQL logic error' }))).toBe(false);
    expect(isBusy(sqlite({ errstr: 'database is locked' }))).toBe(true);
    expect(isBusy(sqlite({ errstr: 'database table is locked' }))).toBe(true);
    expect(isBusy(sqlite({ errstr: 'no such table: x' }))).toBe(false);
    expect(isBusy(null)).toBe(false);
    expect(isBusy(new Error('database is locked'))).toBe(false);
  });
});

// The tests below need node:sqlite itself; on a runtime without it there is no DatabaseSync to test.
if (builtin !== undefined) {
  type DatabaseSync = {
    prepare(source: string): {
      run(...params: unknown[]): unknown;
      get(...params: unknown[]): unknown;
      all(...params: unknown[]): unknown[];
      setReadBigInts(enabled: boolean): void;
    };
    exec(source: string): void;
    close(): void;
  };
  const { DatabaseSync } = builtin as unknown as {
    DatabaseSync: new (path: string, options?: { timeout?: number }) => DatabaseSync;
  };

  /** Only what every node:sqlite has had since 22.13. */
  const oldStyle = (real: DatabaseSync): DatabaseSync => ({
    prepare(source) {
      const statement = real.prepare(source);
      return {
        run: (...params) => statement.run(...params),
        get: (...params) => statement.get(...params),
        all: (...params) => statement.all(...params),
        setReadBigInts: (enabled) => statement.setReadBigInts(enabled),
      };
    },
    exec: (source) => real.exec(source),
    close: () => {},
  });

  describe('node:sqlite', () => {
    it("a DatabaseSync given as `database` is told apart from better-sqlite3's and serves both adapters", async () => {
      const path = fileName();
      const db = new DatabaseSync(path, { timeout: 5000 });
      closers.push(async () => db.close());
      await roundTrip(db, wrapNodeSqlite(db));
      expect(() => new SqliteCoordinator({ database: new DatabaseSync(':memory:') })).toThrow(/in-memory/);
    });

    it('busy errors from another connection are retried, then CoordinatorUnavailableError', async () => {
      const path = fileName();
      const host = new DatabaseSync(path);
      closers.push(async () => host.close());
      host.exec(
        "CREATE TABLE w (id TEXT PRIMARY KEY, status TEXT NOT NULL); INSERT INTO w VALUES ('a', 'running')",
      );
      const store = new SqliteWorkflowStore({
        path,
        table: 'w',
        driver: 'node:sqlite',
        busyTimeoutMs: 5,
        operationTimeoutMs: 300,
      });
      closers.push(() => store.close());
      await store.listActive({ limit: 1 });
      const blocker = new DatabaseSync(path);
      blocker.exec('BEGIN IMMEDIATE');
      let thrown: unknown;
      try {
        host.exec('BEGIN IMMEDIATE');
      } catch (error) {
        thrown = error;
      }
      blocker.exec('ROLLBACK');
      blocker.close();
      expect(thrown).toMatchObject({ code: 'ERR_SQLITE_ERROR' });
      expect(isBusy(thrown)).toBe(true);
      host.exec('BEGIN IMMEDIATE');
      await expect(store.park(['a'], { memberId: 'm', token: 1n })).rejects.toMatchObject({
        code: 'ERR_COORDINATOR_UNAVAILABLE',
        message: expect.stringMatching(/stayed busy/),
      });
      const later = store.park(['a'], { memberId: 'm', token: 1n });
      setTimeout(() => host.exec('ROLLBACK'), 50);
      expect(await later).toEqual([{ id: 'a', outcome: 'pausing' }]);
    });

    it('works without isTransaction, setReturnArrays and location (Node.js 22.13 to 22.15)', async () => {
      const real = new DatabaseSync(fileName());
      const memory = new DatabaseSync(':memory:');
      closers.push(
        async () => real.close(),
        async () => memory.close(),
      );
      const db = wrapNodeSqlite(oldStyle(real));
      expect(db.memory).toBe(false);
      expect(wrapNodeSqlite(oldStyle(memory)).memory).toBe(true);
      expect(db.inTransaction).toBe(false);
      db.transaction(() => expect(db.inTransaction).toBe(true)).immediate();
      expect(db.inTransaction).toBe(false);
      db.exec('CREATE TABLE t (a TEXT, b INTEGER)');
      db.prepare("INSERT INTO t VALUES ('x', 9007199254740993)").run();
      expect(db.prepare('SELECT b FROM t').pluck().safeIntegers().get()).toBe(9007199254740993n);
      expect(db.prepare('SELECT a, length(a) FROM t').pluck().all()).toEqual(['x']);
      // run() after a rowid past 2^53 (Node.js 26 reads it with every run)
      db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY)');
      db.prepare('INSERT INTO big VALUES (?)').run(2n ** 62n);
      expect(db.prepare('DELETE FROM big').run().changes).toBe(1);
      await roundTrip(db, db);
    });

    it('loading node:sqlite prints no ExperimentalWarning, and other warnings still show', () => {
      const script = `import { openSqliteDatabase } from ${JSON.stringify(SQLITE_MODULE)};
        const db = await openSqliteDatabase(':memory:');
        db.close();
        process.emitWarning('still here', 'ExperimentalWarning');`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      expect(run.status).toBe(0);
      expect(run.stderr).not.toMatch(/SQLite is an experimental feature/);
      expect(run.stderr).toMatch(/ExperimentalWarning: still here/);
    });
  });
}
