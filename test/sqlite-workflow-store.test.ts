import { describe, expect, it } from 'vitest';
import { SqliteWorkflowStore, type SqliteWorkflowStoreOptions } from '../src/adapters/sqlite/index.js';
import { ClosedError, ConfigurationError, StaleTokenError } from '../src/errors.js';
import { forEachDriver, sqliteDriver } from './support/sqlite.js';
import { insert, sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-store-');

const fence = (token?: bigint) => ({ memberId: 'm1', token });

forEachDriver(() => {
  describe('SqliteWorkflowStore constructor', () => {
    it('needs exactly one of database and path, and a table', () => {
      const { db, path } = hostDatabase();
      expect(() => new SqliteWorkflowStore({ table: 'workflows' })).toThrow(/`database`.*`path`.*neither/);
      expect(() => new SqliteWorkflowStore({ database: db, path, table: 'workflows' })).toThrow(/both/);
      expect(
        () => new SqliteWorkflowStore({ driver: sqliteDriver(), path } as SqliteWorkflowStoreOptions),
      ).toThrow(/`table`.*`undefined`/);
    });

    it('refuses names that are not plain identifiers, naming the option and the value', () => {
      const { path } = hostDatabase();
      const cases: [keyof SqliteWorkflowStoreOptions, string][] = [
        ['table', 'workflows; DROP TABLE workflows'],
        ['table', 'a.b.c'],
        ['table', '"quoted"'],
        ['idColumn', 'id) OR 1=1 --'],
        ['idColumn', '1id'],
        ['statusColumn', 'status`'],
        ['marksTable', 'marks-table'],
        ['marksTable', ''],
      ];
      for (const [option, value] of cases) {
        const make = () =>
          new SqliteWorkflowStore({ driver: sqliteDriver(), path, table: 'workflows', [option]: value });
        expect(make).toThrow(ConfigurationError);
        expect(make).toThrow(`\`${option}\``);
        expect(make).toThrow(JSON.stringify(value));
      }
    });

    it('refuses statuses without running or paused, with repeated values, or unknown keys', () => {
      const { path } = hostDatabase();
      const make = (statuses: unknown) =>
        new SqliteWorkflowStore({
          driver: sqliteDriver(),
          path,
          table: 'workflows',
          statuses,
        } as SqliteWorkflowStoreOptions);
      expect(() => make({ running: 'go' })).toThrow(/`statuses.paused`/);
      expect(() => make({ running: 'x', paused: 'x' })).toThrow(/distinct/);
      expect(() => make({ running: 'r', paused: 'p', failed: 'r' })).toThrow(/distinct.*failed `"r"`/);
      expect(() => make({ running: 'r', paused: 'p', stopped: 's' })).toThrow(/Unknown option `stopped`/);
    });

    it('a missing host table or column is a ConfigurationError at first use, naming the option', async () => {
      const { db } = hostDatabase();
      await expect(store({ database: db, table: 'nope' }).listActive({ limit: 1 })).rejects.toThrow(
        /`table`.*"nope"/,
      );
      await expect(
        store({ database: db, table: 'workflows', statusColumn: 'state' }).listActive({ limit: 1 }),
      ).rejects.toThrow(/`statusColumn`.*"state"/);
    });
  });

  describe('SqliteWorkflowStore', () => {
    it('keeps its marks out of the host table and maps custom columns and status values', async () => {
      const { db } = hostDatabase(
        'CREATE TABLE runs (run_id TEXT PRIMARY KEY, state TEXT NOT NULL, payload TEXT)',
      );
      const columns = () => db.pragma('table_info(runs)');
      const before = columns();
      db.prepare("INSERT INTO runs VALUES ('a', 'RUN', 'x'), ('b', 'RUN', 'y'), ('c', 'DONE', 'z')").run();
      const s = store({
        database: db,
        table: 'main.runs',
        idColumn: 'run_id',
        statusColumn: 'state',
        statuses: { running: 'RUN', pausing: 'STOPPING', paused: 'STOPPED' },
        marksTable: 'run_marks',
      });
      expect((await s.listActive({ limit: 10 })).items).toEqual(['a', 'b']);
      expect(await s.park(['a', 'c'], fence(3n))).toEqual([
        { id: 'a', outcome: 'pausing' },
        { id: 'c', outcome: 'skipped' },
      ]);
      expect(db.prepare("SELECT state FROM runs WHERE run_id = 'a'").pluck().get()).toBe('STOPPING');
      expect(columns()).toEqual(before);
      expect(db.prepare('SELECT id, member_id, token FROM run_marks').all()).toEqual([
        { id: 'a', member_id: 'm1', token: 3 },
      ]);
      expect(db.prepare('SELECT highest FROM run_marks_fence').pluck().get()).toBe(3);
      db.prepare("UPDATE runs SET state = 'STOPPED' WHERE run_id = 'a'").run();
      expect((await s.listParked({ limit: 10 })).items).toEqual([
        { id: 'a', state: 'paused', memberId: 'm1', token: 3n },
      ]);
      expect(await s.unpark(['a'], fence(3n))).toEqual([{ id: 'a', outcome: 'resumed' }]);
      expect(db.prepare("SELECT state FROM runs WHERE run_id = 'a'").pluck().get()).toBe('RUN');
      expect(db.prepare('SELECT count(*) FROM run_marks').pluck().get()).toBe(0);
    });

    it('parks straight to paused when the host has no pausing status', async () => {
      const { db } = hostDatabase();
      insert(db, [['w1', 'running']]);
      const s = store({
        database: db,
        table: 'workflows',
        statuses: { running: 'running', paused: 'paused' },
      });
      expect(await s.park(['w1'], fence())).toEqual([{ id: 'w1', outcome: 'paused' }]);
      expect((await s.listParked({ limit: 5 })).items).toEqual([
        { id: 'w1', state: 'paused', memberId: 'm1', token: undefined },
      ]);
      db.prepare("UPDATE workflows SET status = 'cancelled'").run();
      expect(await s.unpark(['w1'], fence())).toEqual([{ id: 'w1', outcome: 'skipped' }]);
      expect((await s.listParked({ limit: 5 })).items).toEqual([]);
    });

    it('works with an INTEGER status column, given the host status values as strings', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id TEXT PRIMARY KEY, status INTEGER NOT NULL)');
      insert(db, [
        ['w1', 1 as unknown as string],
        ['w2', 1 as unknown as string],
        ['w3', 9 as unknown as string],
      ]);
      const s = store({
        database: db,
        table: 'workflows',
        statuses: { running: '1', pausing: '2', paused: '3' },
      });
      expect((await s.listActive({ limit: 10 })).items).toEqual(['w1', 'w2']);
      expect(await s.park(['w1', 'w2', 'w3'], fence(1n))).toEqual([
        { id: 'w1', outcome: 'pausing' },
        { id: 'w2', outcome: 'pausing' },
        { id: 'w3', outcome: 'skipped' },
      ]);
      expect(db.prepare('SELECT status FROM workflows ORDER BY id').pluck().all()).toEqual([2, 2, 9]);
      db.prepare('UPDATE workflows SET status = 3 WHERE status = 2').run();
      expect(await s.unpark(['w1', 'w2'], fence(2n))).toEqual([
        { id: 'w1', outcome: 'resumed' },
        { id: 'w2', outcome: 'resumed' },
      ]);
      expect(db.prepare('SELECT status FROM workflows ORDER BY id').pluck().all()).toEqual([1, 1, 9]);
    });

    it('works with an INTEGER id column: numeric order, ids as strings', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id INTEGER PRIMARY KEY, status TEXT NOT NULL)');
      insert(
        db,
        [2, 10, 9007199254740993n as unknown as number, 1].map((id) => [id, 'running']),
      );
      const s = store({ database: db, table: 'workflows' });
      const first = await s.listActive({ limit: 2 });
      expect(first.items).toEqual(['1', '2']);
      const second = await s.listActive({ limit: 2, cursor: first.cursor });
      expect(second).toEqual({ items: ['10', '9007199254740993'], cursor: undefined });
      expect(await s.park(['10', '9007199254740993'], fence(1n))).toEqual([
        { id: '10', outcome: 'pausing' },
        { id: '9007199254740993', outcome: 'pausing' },
      ]);
      expect((await s.listActive({ limit: 10 })).items).toEqual(['1', '2']);
      db.prepare("UPDATE workflows SET status = 'paused' WHERE id = 10").run();
      expect(await s.unpark(['10', '9007199254740993'], fence(1n))).toEqual([
        { id: '10', outcome: 'resumed' },
        { id: '9007199254740993', outcome: 'skipped' },
      ]);
      expect((await s.listParked({ limit: 10 })).items.map((p) => [p.id, p.state])).toEqual([
        ['9007199254740993', 'pausing'],
      ]);
    });

    it('park and unpark take batches past the chunk size in one transaction, a repeated id counting once', async () => {
      const { db } = hostDatabase();
      const ids = Array.from({ length: 1300 }, (_, i) => `w${String(i).padStart(5, '0')}`);
      insert(
        db,
        ids.map((id, i) => [id, i % 100 === 0 ? 'succeeded' : 'running']),
      );
      const s = store({ database: db, table: 'workflows' });
      const results = await s.park([...ids, 'w00001', 'unknown'], fence(7n));
      expect(results).toHaveLength(1302);
      expect(results.slice(0, 2)).toEqual([
        { id: 'w00000', outcome: 'skipped' },
        { id: 'w00001', outcome: 'pausing' },
      ]);
      expect(results.slice(-2)).toEqual([
        { id: 'w00001', outcome: 'skipped' },
        { id: 'unknown', outcome: 'skipped' },
      ]);
      expect(results.filter((r) => r.outcome === 'pausing')).toHaveLength(1287);
      db.prepare("UPDATE workflows SET status = 'paused' WHERE status = 'pausing'").run();
      const parked: string[] = [];
      for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
        const page = await s.listParked({ limit: 500, cursor });
        parked.push(...page.items.map((p) => p.id));
        cursor = page.cursor;
      }
      expect(parked).toHaveLength(1287);
      const resumed = await s.unpark(parked, fence(8n));
      expect(resumed.every((r) => r.outcome === 'resumed')).toBe(true);
      expect(db.prepare("SELECT count(*) FROM workflows WHERE status = 'running'").pluck().get()).toBe(1287);
    });

    it('a stale token is refused with StaleTokenError and writes nothing', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['w1', 'running'],
        ['w2', 'running'],
      ]);
      const s = store({ database: db, table: 'workflows' });
      await s.park(['w1'], fence(5n));
      const error = await s.park(['w2'], fence(4n)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StaleTokenError);
      expect(error).toMatchObject({ code: 'ERR_STALE_TOKEN', token: 4n, highest: 5n });
      expect(db.prepare("SELECT status FROM workflows WHERE id = 'w2'").pluck().get()).toBe('running');
      expect(db.prepare("SELECT count(*) FROM graceful_drain_marks WHERE id = 'w2'").pluck().get()).toBe(0);
      db.prepare("UPDATE workflows SET status = 'paused' WHERE id = 'w1'").run();
      await expect(s.unpark(['w1'], fence(4n))).rejects.toBeInstanceOf(StaleTokenError);
      expect(db.prepare("SELECT status FROM workflows WHERE id = 'w1'").pluck().get()).toBe('paused');
      // the same token, a higher one and none at all are accepted
      expect(await s.park(['w2'], fence(5n))).toEqual([{ id: 'w2', outcome: 'pausing' }]);
      expect(await s.unpark(['w1'], fence())).toEqual([{ id: 'w1', outcome: 'resumed' }]);
    });

    it('a second store on the same file sees the first one marks and fence', async () => {
      const { db, path } = hostDatabase();
      insert(db, [['w1', 'running']]);
      const a = store({ path, table: 'workflows' });
      const b = store({ path, table: 'workflows' });
      await a.park(['w1'], fence(9n));
      expect((await b.listActive({ limit: 5 })).items).toEqual([]);
      expect((await b.listParked({ limit: 5 })).items.map((p) => p.id)).toEqual(['w1']);
      await expect(b.unpark(['w1'], fence(2n))).rejects.toBeInstanceOf(StaleTokenError);
    });

    it('waits for a transaction the host left open on a shared handle instead of nesting in it', async () => {
      const { db } = hostDatabase();
      insert(db, [['w1', 'running']]);
      const s = store({ database: db, table: 'workflows' });
      await s.listActive({ limit: 1 });
      db.exec('BEGIN');
      db.prepare("INSERT INTO workflows VALUES ('w2', 'running')").run();
      const parking = s.park(['w1', 'w2'], fence(1n));
      await new Promise((resolve) => setTimeout(resolve, 100));
      // the host rolls back: had the park been nested in its transaction, it would be rolled back too
      db.exec('ROLLBACK');
      expect(await parking).toEqual([
        { id: 'w1', outcome: 'pausing' },
        { id: 'w2', outcome: 'skipped' },
      ]);
      expect(db.prepare("SELECT status FROM workflows WHERE id = 'w1'").pluck().get()).toBe('pausing');
    });

    it('close() leaves a user database open, is idempotent, and later calls reject with ClosedError', async () => {
      const { db } = hostDatabase();
      const s = store({ database: db, table: 'workflows' });
      await s.listActive({ limit: 1 });
      await s.close();
      await s.close();
      expect(db.open).toBe(true);
      await expect(s.listActive({ limit: 1 })).rejects.toBeInstanceOf(ClosedError);
      await expect(s.park(['x'], fence())).rejects.toBeInstanceOf(ClosedError);
    });

    it('refuses bad arguments, naming them', async () => {
      const { db } = hostDatabase();
      const s = store({ database: db, table: 'workflows' });
      await expect(s.listActive({ limit: 0 })).rejects.toThrow(/`limit`.*`0`/);
      await expect(s.park(['a', 3 as unknown as string], fence())).rejects.toThrow(/`ids\[1\]`.*`3`/);
      await expect(s.park(['a'], { memberId: 'm', token: 3 as unknown as bigint })).rejects.toThrow(
        /`fence.token`.*`3` \(number\)/,
      );
    });
  });
});
