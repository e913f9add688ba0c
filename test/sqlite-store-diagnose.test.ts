import { afterEach, describe, expect, it } from 'vitest';
import { SqliteWorkflowStore, type SqliteWorkflowStoreOptions } from '../src/adapters/sqlite/index.js';
import { forEachDriver, openDatabase, type TestDatabase } from './support/sqlite.js';

const databases: TestDatabase[] = [];
const stores: SqliteWorkflowStore[] = [];

function host(schema = 'CREATE TABLE workflows (id INTEGER PRIMARY KEY, status TEXT)'): TestDatabase {
  const db = openDatabase(':memory:');
  databases.push(db);
  db.exec(schema);
  return db;
}

function store(options: SqliteWorkflowStoreOptions): SqliteWorkflowStore {
  const s = new SqliteWorkflowStore(options);
  stores.push(s);
  return s;
}

/** Inserts `count` rows with this status, ids following the ones already there. */
function fill(db: TestDatabase, count: number, status: string | number | null): void {
  const insert = db.prepare('INSERT INTO workflows (status) VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < count; i++) insert.run(status);
  }).immediate();
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  for (const db of databases.splice(0)) db.close();
});

forEachDriver(() => {
  describe('SqliteWorkflowStore diagnose', () => {
    it('warns about nothing for an empty table, nor when some row has a configured status', async () => {
      const db = host();
      const s = store({ database: db, table: 'workflows' });
      expect(await s.diagnose()).toEqual([]);
      fill(db, 5, 'succeeded');
      fill(db, 1, 'paused');
      expect(await s.diagnose()).toEqual([]);
    });

    it('status-mismatch: values that match no row are named with the option, and the values seen with their counts', async () => {
      const db = host();
      fill(db, 3, 'RUNNING');
      fill(db, 2, 'SUCCEEDED');
      fill(db, 1, null);
      const warnings = await store({ database: db, table: 'workflows' }).diagnose();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.code).toBe('status-mismatch');
      expect(warnings[0]?.message).toBe(
        'SqliteWorkflowStore: no row of "workflows" has a status of `statuses` (`statuses.running` "running", ' +
          '`statuses.pausing` "pausing", `statuses.paused` "paused"); the values of "status" seen are ' +
          '"RUNNING" (3), "SUCCEEDED" (2), NULL (1). Check `statuses`: as configured, a shutdown parks ' +
          'nothing and a start resumes nothing.',
      );
    });

    it('compares as the column does: text values against an INTEGER status column', async () => {
      const db = host('CREATE TABLE workflows (id INTEGER PRIMARY KEY, status INTEGER)');
      fill(db, 2, 7);
      const statuses = { running: '1', pausing: '2', paused: '3' };
      expect((await store({ database: db, table: 'workflows', statuses }).diagnose())[0]?.message).toMatch(
        /`statuses.running` "1".* seen are 7 \(2\)/,
      );
      fill(db, 1, 3);
      expect(await store({ database: db, table: 'workflows', statuses }).diagnose()).toEqual([]);
    });

    it('is bounded: it reads the newest 1000 rows, and the rest only through an index on the status column', async () => {
      const db = host();
      fill(db, 10, 'running');
      fill(db, 1000, 'succeeded');
      const s = store({ database: db, table: 'workflows' });
      // no index: the old running rows are out of reach, and the warning says what was read
      const [warning] = await s.diagnose();
      expect(warning?.message).toMatch(
        /^SqliteWorkflowStore: none of the 1000 newest rows \(by "id"\) of "workflows"/,
      );
      expect(warning?.message).toMatch(/seen are "succeeded" \(1000\)\./);
      // with an index on the status column the whole table is asked, at once
      db.exec('CREATE INDEX workflows_status ON workflows (status)');
      expect(await s.diagnose()).toEqual([]);
      db.exec("UPDATE workflows SET status = 'done' WHERE status = 'running'");
      expect((await s.diagnose())[0]?.message).toMatch(/^SqliteWorkflowStore: no row of "workflows"/);
    });

    it('without an index on the id column, it reads the first 1000 rows in table order rather than sort them all', async () => {
      const db = host('CREATE TABLE workflows (id TEXT, status TEXT)');
      const insert = db.prepare('INSERT INTO workflows VALUES (?, ?)');
      db.transaction(() => {
        for (let i = 0; i < 1000; i++) insert.run(`a${i}`, 'succeeded');
        insert.run('z', 'running'); // the newest by id, but beyond the first 1000 rows
      }).immediate();
      const [warning] = await store({ database: db, table: 'workflows' }).diagnose();
      expect(warning?.message).toMatch(/^SqliteWorkflowStore: none of the first 1000 rows of "workflows"/);
    });

    it('names at most 10 distinct values', async () => {
      const db = host();
      for (let i = 0; i < 12; i++) fill(db, 12 - i, `s${i}`);
      const [warning] = await store({ database: db, table: 'workflows' }).diagnose();
      expect(warning?.message).toMatch(/"s0" \(12\), "s1" \(11\),.* "s9" \(3\) and 2 more\./);
    });
  });
});
