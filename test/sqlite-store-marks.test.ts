import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteWorkflowStore } from '../src/adapters/sqlite/index.js';
import { checkHostTable } from '../src/adapters/sqlite/mark-trigger.js';
import { compileStoreOptions } from '../src/adapters/sqlite/options.js';
import { ConfigurationError } from '../src/errors.js';
import { randomId } from '../src/internal/time.js';
import { forEachDriver, sqliteDriver, type TestDatabase } from './support/sqlite.js';
import { markIds as marks, sqliteHost, statusOf } from './support/sqlite-host.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SETUP = fileURLToPath(new URL('./fixtures/sqlite-store-setup.ts', import.meta.url));
const { dir, hostDatabase, store } = sqliteHost('gd-sqlite-marks-');
const children: ChildProcess[] = [];

const fence = (token?: bigint) => ({ memberId: 'm1', token });

function triggers(db: TestDatabase): { name: string; sql: string }[] {
  return db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all() as {
    name: string;
    sql: string;
  }[];
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

forEachDriver(() => {
  describe('checkHostTable(): whether the host has one row per id', () => {
    // The quiet resume of a page (one DELETE of its marks) is taken only over ids the table keeps unique;
    // the resume by the host's range of ids only where, besides, they order as the marks' TEXT key does.
    it.each([
      ['CREATE TABLE workflows (id VARCHAR(36) PRIMARY KEY, status TEXT)', true, true],
      ['CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT) STRICT', true, true],
      ['CREATE TABLE workflows (id ANY PRIMARY KEY, status TEXT) STRICT', true, false],
      ['CREATE TABLE workflows (id PRIMARY KEY, status TEXT)', true, false],
      ['CREATE TABLE workflows (id NUMERIC PRIMARY KEY, status TEXT)', true, false],
      ['CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT)', true, true],
      ['CREATE TABLE workflows (id INTEGER PRIMARY KEY, status TEXT)', true, false],
      ['CREATE TABLE workflows (ID TEXT NOT NULL, status TEXT, PRIMARY KEY (Id)) WITHOUT ROWID', true, true],
      ['CREATE TABLE workflows (id TEXT UNIQUE, status TEXT)', true, true],
      [
        'CREATE TABLE workflows (id TEXT, status TEXT); CREATE UNIQUE INDEX w_id ON workflows (id)',
        true,
        true,
      ],
      ['CREATE TABLE workflows (id INT PRIMARY KEY, status TEXT)', true, false],
      ['CREATE TABLE workflows (id INTEGER NOT NULL PRIMARY KEY, status TEXT) WITHOUT ROWID', true, false],
      ['CREATE TABLE workflows (id TEXT COLLATE NOCASE PRIMARY KEY, status TEXT)', true, false],
      [
        'CREATE TABLE workflows (id TEXT COLLATE NOCASE, status TEXT, UNIQUE (id COLLATE NOCASE))',
        true,
        false,
      ],
      // 'A' and 'a' both fit a BINARY index, and the column's comparisons take them for one id.
      [
        'CREATE TABLE workflows (id TEXT COLLATE NOCASE, status TEXT, UNIQUE (id COLLATE BINARY))',
        false,
        false,
      ],
      [
        'CREATE TABLE workflows (id TEXT COLLATE NOCASE, status TEXT, PRIMARY KEY (id COLLATE BINARY))',
        false,
        false,
      ],
      [
        'CREATE TABLE workflows (id TEXT, status TEXT); CREATE UNIQUE INDEX w_id ON workflows (id COLLATE RTRIM)',
        false,
        false,
      ],
      [
        'CREATE TABLE workflows (id TEXT, status TEXT); CREATE UNIQUE INDEX w_id ON workflows (lower(id))',
        false,
        false,
      ],
      ['CREATE TABLE workflows (id TEXT, status TEXT)', false, false],
      ['CREATE TABLE workflows (id TEXT, status TEXT); CREATE INDEX w_id ON workflows (id)', false, false],
      ['CREATE TABLE workflows (id TEXT, status TEXT, PRIMARY KEY (id, status))', false, false],
      ['CREATE TABLE workflows (id TEXT, status TEXT, UNIQUE (id, status))', false, false],
      [
        "CREATE TABLE workflows (id TEXT, status TEXT); CREATE UNIQUE INDEX w_id ON workflows (id) WHERE status = 'x'",
        false,
        false,
      ],
    ])('%s: unique %s, ordered as the marks %s', (schema, unique, ordered) => {
      const { db } = hostDatabase(schema);
      const options = compileStoreOptions({ database: db, table: 'workflows' });
      const { idUnique, idOrderedAsMarks } = checkHostTable(db, options);
      expect({ idUnique, idOrderedAsMarks }).toEqual({ idUnique: unique, idOrderedAsMarks: ordered });
    });
  });

  describe('SqliteWorkflowStore: a mark belongs to the pause it created', () => {
    it('a workflow a user resumed and paused again (host UPDATEs only) is never resumed', async () => {
      const { db } = hostDatabase();
      db.exec("INSERT INTO workflows VALUES ('a', 'running'), ('b', 'running'), ('c', 'running')");
      const s = store({ database: db, table: 'workflows' });
      await s.park(['a', 'b', 'c'], fence(1n));
      db.exec("UPDATE workflows SET status = 'paused'");
      // the user resumes a and b, then pauses them again, through the host's own code
      db.exec("UPDATE workflows SET status = 'running' WHERE id IN ('a', 'b')");
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'a'");
      db.exec("UPDATE workflows SET status = 'pausing' WHERE id = 'b'");
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'b'");
      expect((await s.listParked({ limit: 10 })).items.map((p) => p.id)).toEqual(['c']);
      expect(await s.unpark(['a', 'b', 'c'], fence(2n))).toEqual([
        { id: 'a', outcome: 'skipped' },
        { id: 'b', outcome: 'skipped' },
        { id: 'c', outcome: 'resumed' },
      ]);
      expect([statusOf(db, 'a'), statusOf(db, 'b'), statusOf(db, 'c')]).toEqual([
        'paused',
        'paused',
        'running',
      ]);
    });

    it('notePaused() on a workflow already parked (its status unchanged): never resumed', async () => {
      const { db } = hostDatabase();
      db.exec("INSERT INTO workflows VALUES ('a', 'running'), ('b', 'running')");
      const s = store({ database: db, table: 'workflows' });
      await s.park(['a', 'b'], fence(1n));
      db.exec("UPDATE workflows SET status = 'paused'");
      // the user pauses a: same status, nothing changes in the table; the host's pause path says so
      expect(await s.notePaused(['a', 'x', 'a'])).toEqual([
        { id: 'a', outcome: 'released' },
        { id: 'x', outcome: 'skipped' },
        { id: 'a', outcome: 'skipped' },
      ]);
      expect(marks(db)).toEqual(['b']);
      expect(await s.unpark(['a', 'b'], fence(2n))).toEqual([
        { id: 'a', outcome: 'skipped' },
        { id: 'b', outcome: 'resumed' },
      ]);
      expect(statusOf(db, 'a')).toBe('paused');
    });

    it('a workflow the host deletes loses its mark; pausing <-> paused keeps it', async () => {
      const { db } = hostDatabase();
      db.exec("INSERT INTO workflows VALUES ('a', 'running'), ('b', 'running'), ('c', 'running')");
      const s = store({ database: db, table: 'workflows' });
      await s.park(['a', 'b', 'c'], fence());
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'b'");
      db.exec("UPDATE workflows SET status = 'pausing' WHERE id = 'b'");
      db.exec("UPDATE workflows SET status = 'paused' WHERE id IN ('b', 'c')");
      db.exec("DELETE FROM workflows WHERE id = 'a'");
      expect(marks(db)).toEqual(['b', 'c']);
      // a status set to NULL leaves pausing/paused too
      db.exec('CREATE TABLE nullable (id TEXT PRIMARY KEY, status TEXT)');
      db.exec("INSERT INTO nullable VALUES ('n', 'running')");
      const n = store({ database: db, table: 'nullable', marksTable: 'nullable_marks' });
      await n.park(['n'], fence());
      db.exec("UPDATE nullable SET status = NULL WHERE id = 'n'");
      expect(marks(db, 'nullable_marks')).toEqual([]);
    });

    it('compares as the column does: an INTEGER status column with the values given as text', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id INTEGER PRIMARY KEY, status INTEGER NOT NULL)');
      db.exec('INSERT INTO workflows VALUES (1, 1), (2, 1), (3, 1), (4, 1)');
      const s = store({
        database: db,
        table: 'workflows',
        statuses: { running: '1', pausing: '2', paused: '3' },
      });
      expect((await s.park(['1', '2', '3', '4'], fence(1n))).map((r) => r.outcome)).toEqual([
        'pausing',
        'pausing',
        'pausing',
        'pausing',
      ]);
      db.exec('UPDATE workflows SET status = 3'); // the host pauses them: the marks stay
      expect(marks(db)).toEqual(['1', '2', '3', '4']);
      db.exec('UPDATE workflows SET status = 1 WHERE id = 1'); // a user resumes 1 ...
      db.exec('UPDATE workflows SET status = 3 WHERE id = 1'); // ... and pauses it again
      db.exec('UPDATE workflows SET status = 9 WHERE id = 2'); // 2 is cancelled
      db.exec("UPDATE workflows SET status = '3' WHERE id = 3"); // text, stored as 3: still paused
      db.exec('DELETE FROM workflows WHERE id = 4');
      expect(marks(db)).toEqual(['3']);
      expect(await s.unpark(['1', '2', '3'], fence(2n))).toEqual([
        { id: '1', outcome: 'skipped' },
        { id: '2', outcome: 'skipped' },
        { id: '3', outcome: 'resumed' },
      ]);
      expect(db.prepare('SELECT status FROM workflows ORDER BY id').pluck().all()).toEqual([3, 9, 1]);
    });

    it('status values with quotes are written into the triggers as escaped literals', async () => {
      const { db } = hostDatabase();
      const statuses = { running: "it's on", pausing: "'); DROP TABLE workflows; --", paused: 'x"y' };
      db.prepare('INSERT INTO workflows VALUES (?, ?)').run('a', statuses.running);
      const s = store({ database: db, table: 'workflows', statuses });
      await s.park(['a'], fence());
      db.prepare("UPDATE workflows SET status = ? WHERE id = 'a'").run(statuses.paused);
      expect(marks(db)).toEqual(['a']);
      db.prepare("UPDATE workflows SET status = ? WHERE id = 'a'").run(statuses.running);
      expect(marks(db)).toEqual([]);
      expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'workflows'").pluck().get()).toBe(1);
    });

    it('the triggers are named after the marks table, live in the host table schema, and are replaced when the statuses change', async () => {
      const { db, path } = hostDatabase();
      db.exec("INSERT INTO workflows VALUES ('a', 'running')");
      await store({ path, table: 'workflows', marksTable: 'gd_marks' }).listActive({ limit: 1 });
      expect(triggers(db).map((t) => t.name)).toEqual(['gd_marks_deleted', 'gd_marks_unpaused']);
      expect(triggers(db).every((t) => t.sql.includes("IN ('pausing', 'paused')"))).toBe(true);
      // a second store with the same options changes no schema
      const version = db.pragma('schema_version', { simple: true });
      await store({ path, table: 'workflows', marksTable: 'gd_marks' }).listActive({ limit: 1 });
      expect(db.pragma('schema_version', { simple: true })).toBe(version);
      // other status values replace them
      const changed = store({
        path,
        table: 'workflows',
        marksTable: 'gd_marks',
        statuses: { running: 'running', paused: 'on-hold' },
      });
      await changed.park(['a'], fence());
      expect(triggers(db).map((t) => t.name)).toEqual(['gd_marks_deleted', 'gd_marks_unpaused']);
      expect(
        triggers(db).every((t) => t.sql.includes("IN ('on-hold')") && !t.sql.includes("'pausing'")),
      ).toBe(true);
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'a'");
      expect(marks(db, 'gd_marks')).toEqual([]);
    });

    it('several processes setting up one file at once, with two status mappings, never fail', async () => {
      const { db, path } = hostDatabase();
      db.pragma('journal_mode = WAL');
      const rounds = 12;
      const prefixes = ['p0', 'p1', 'p2', 'p3'];
      const insert = db.prepare("INSERT INTO workflows VALUES (?, 'running')");
      for (const prefix of prefixes) for (let i = 0; i < rounds; i++) insert.run(`${prefix}-${i}`);
      const runs = prefixes.map((prefix) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', SETUP, path, 'workflows', prefix, String(rounds)],
          { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
        );
        children.push(child);
        let stdout = '';
        let stderr = '';
        child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const waiting = new Promise<void>((resolve) =>
          child.stdout?.on('data', (chunk: Buffer) => {
            stdout += chunk.toString();
            if (stdout.includes('waiting')) resolve();
          }),
        );
        const exited = once(child, 'exit').then(([code]) => ({ code, stdout, stderr }));
        return { child, waiting, exited };
      });
      await Promise.all(runs.map((run) => run.waiting));
      for (const run of runs) run.child.stdin?.write('go\n');
      for (const result of await Promise.all(runs.map((run) => run.exited))) {
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
        expect(result.stdout).toContain(`done ${rounds}`);
      }
      expect(triggers(db).map((t) => t.name)).toEqual([
        'graceful_drain_marks_deleted',
        'graceful_drain_marks_unpaused',
      ]);
      expect(db.prepare("SELECT count(*) FROM workflows WHERE status = 'running'").pluck().get()).toBe(
        prefixes.length * rounds,
      );
      expect(marks(db)).toEqual([]);
    }, 60_000);

    it('refuses a marks table in another database than the host table, and a view as the table', async () => {
      const { db } = hostDatabase();
      db.exec(`ATTACH DATABASE '${join(dir, `${randomId()}.db`)}' AS other`);
      db.exec('CREATE TABLE other.runs (id TEXT PRIMARY KEY, status TEXT)');
      const error = await store({ database: db, table: 'other.runs' })
        .listActive({ limit: 1 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(
        /`marksTable`.*"other".*"graceful_drain_marks".*"other.graceful_drain_marks"/,
      );
      // given in that database, it works; so does an unqualified host table found there
      db.exec("INSERT INTO other.runs VALUES ('a', 'running')");
      const s = store({ database: db, table: 'runs', marksTable: 'other.graceful_drain_marks' });
      await s.park(['a'], fence());
      db.exec("UPDATE other.runs SET status = 'cancelled'");
      expect(db.prepare('SELECT count(*) FROM other.graceful_drain_marks').pluck().get()).toBe(0);
      db.exec('CREATE VIEW active AS SELECT * FROM workflows');
      await expect(store({ database: db, table: 'active' }).listActive({ limit: 1 })).rejects.toThrow(
        /`table` to name a table, got "active", a view/,
      );
    });

    it('refuses a status value holding a NUL character, naming it', () => {
      const { path } = hostDatabase();
      expect(
        () =>
          new SqliteWorkflowStore({
            driver: sqliteDriver(),
            path,
            table: 'workflows',
            statuses: { running: 'r', paused: 'p\u0000' },
          }),
      ).toThrow(/`statuses.paused`.*NUL/);
    });
  });
});
