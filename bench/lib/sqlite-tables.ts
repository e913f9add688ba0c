import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTables } from './hand-off-driver.js';
import { sqlite } from './library.js';
import { uniqueName } from '../../harness/servers.js';

/** What a reader of the figures needs to know of the SQLite set-up. */
export const SQLITE_TABLES =
  'SQLite (`openSqliteDatabase()`, WAL, synchronous NORMAL, a file in the temporary folder): host table ' +
  '`workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)` with an index on `status`, refilled, analyzed and ' +
  'checkpointed before every park, checkpointed again before every unpark (untimed: as a new process finds ' +
  'the file once the parking one has closed it); the store on the same handle. Raw park: one immediate ' +
  'transaction of ' +
  "`INSERT INTO raw_marks ... SELECT id ... WHERE status = 'running'` and `UPDATE workflows SET status = " +
  "'paused' WHERE status = 'running'`; raw unpark: `UPDATE ... WHERE status = 'paused' AND id IN (SELECT id " +
  'FROM raw_marks)` and `DELETE FROM raw_marks`.';

/** A string as an SQL literal. */
const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`;

/** {@link openSqliteTables}' tables, with the parking suite's count of running and paused workflows. */
export interface SqliteTables extends HostTables {
  /** How many workflows are running and paused now. */
  count(): Promise<{ readonly running: number; readonly paused: number }>;
}

/**
 * A SQLite file with a host table of workflows, a store over it (with `statuses`), and the raw
 * statements to compare with: the tables of the parking suite (bench/suites/park-sqlite.ts) and of the
 * scaling suite (bench/suites/scaling.ts). Removed on close.
 */
export async function openSqliteTables(
  statuses: { running: string; paused: string; failed?: string } = {
    running: 'running',
    paused: 'paused',
    failed: 'failed',
  },
): Promise<SqliteTables> {
  const { openSqliteDatabase, SqliteWorkflowStore } = await sqlite();
  const path = join(tmpdir(), `${uniqueName('gd-bench')}.sqlite`);
  // The library's choice of driver: node:sqlite where the runtime has it, better-sqlite3 otherwise.
  const db = await openSqliteDatabase(path);
  db.pragma('journal_mode = WAL');
  // What a database already in WAL mode gets when opened (a new file gets FULL until reopened):
  // commits write the WAL without an fsync; checkpoints sync.
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL);
    CREATE INDEX workflows_status ON workflows (status);
    CREATE TABLE raw_marks (id TEXT PRIMARY KEY NOT NULL, member_id TEXT NOT NULL, token INTEGER,
      parked_at INTEGER NOT NULL) WITHOUT ROWID;`);
  const marksTable = 'gd_marks';
  const store = new SqliteWorkflowStore({ database: db, table: 'workflows', marksTable, statuses });
  // The store creates its tables at first use: have them now, so that reset() can clear them.
  await store.listActive({ limit: 1 });
  // The statuses as literals, as the raw statements have always had them: the planner sees the values
  // (against the statistics of the index on status), and the baseline keeps the plan it had.
  const running = literal(statuses.running);
  const paused = literal(statuses.paused);
  const fill = db.prepare(`INSERT INTO workflows (id, status)
    WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?)
    SELECT 'wf-' || substr('0000000' || i, -8, 8), ${running} FROM g`);
  const markAll = db.prepare(
    `INSERT INTO raw_marks (id, member_id, token, parked_at) SELECT id, 'raw', 1, ? FROM workflows WHERE status = ${running}`,
  );
  const pauseAll = db.prepare(`UPDATE workflows SET status = ${paused} WHERE status = ${running}`);
  const resumeMarked = db.prepare(
    `UPDATE workflows SET status = ${running} WHERE status = ${paused} AND id IN (SELECT id FROM raw_marks)`,
  );
  const clearMarks = db.prepare('DELETE FROM raw_marks');
  const count = db.prepare<[], { running: number; paused: number }>(
    `SELECT sum(status = ${running}) AS running, sum(status = ${paused}) AS paused FROM workflows`,
  );
  const rawPark = db.transaction(() => {
    const marked = markAll.run(Date.now()).changes;
    pauseAll.run();
    return marked;
  });
  const rawUnpark = db.transaction(() => {
    const resumed = resumeMarked.run().changes;
    clearMarks.run();
    return resumed;
  });
  return {
    name: `SQLite ${String(db.prepare('SELECT sqlite_version()').pluck().get())}`,
    store,
    async reset(n) {
      db.transaction(() => {
        db.exec(`DELETE FROM workflows; DELETE FROM raw_marks; DELETE FROM "${marksTable}";`);
        fill.run(n);
      }).immediate();
      // Statistics, as PostgreSQL's autovacuum keeps them: without them SQLite's planner prefers the
      // status index for the store's queries (see docs/performance.md).
      db.exec('ANALYZE');
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
    async settle() {
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
    rawPark: async () => rawPark.immediate(),
    rawUnpark: async () => rawUnpark.immediate(),
    count: async () => {
      const c = count.get();
      return { running: c?.running ?? 0, paused: c?.paused ?? 0 };
    },
    async close() {
      await store.close();
      db.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    },
  };
}
