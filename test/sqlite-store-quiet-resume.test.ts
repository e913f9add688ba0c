/**
 * The quiet page resume: `unparkPage()` runs a page's UPDATE with the trigger `<marks>_unpaused` quiet
 * (its connection's last_insert_rowid() at RESUMING_ROWID) and drops the page's marks in one range
 * DELETE. Around it, a mark must still belong to the pause it created: host triggers of every kind, a
 * page that fails or rolls the whole transaction back, other id types and collations, attached
 * databases, several stores on one handle. See also test/sqlite-store-pages.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkHostTable, RESUMING_ROWID } from '../src/adapters/sqlite/mark-trigger.js';
import { compileStoreOptions } from '../src/adapters/sqlite/options.js';
import type { Fence, ItemResult } from '../src/workflow-store.js';
import { randomId } from '../src/internal/time.js';
import { forEachDriver, type TestDatabase } from './support/sqlite.js';
import {
  insert,
  markIds,
  parkAllPages,
  sqliteHost,
  statusesById,
  unparkAllPages,
} from './support/sqlite-host.js';

const { dir, hostDatabase, store } = sqliteHost('gd-sqlite-quiet-');
const fence = (token?: bigint): Fence => ({ memberId: 'm1', token });
const ST = { running: 'running', paused: 'paused' };

const lastRowid = (db: TestDatabase) => db.prepare('SELECT last_insert_rowid()').pluck().get();
const lastRowidText = (db: TestDatabase) =>
  db.prepare('SELECT CAST(last_insert_rowid() AS TEXT)').pluck().get() as string;

/** A host whose `ids` were parked by the store (no pausing status: parked straight to paused). */
async function parked(ids: readonly (string | number)[], schema?: string) {
  const { db, path } = hostDatabase(schema);
  insert(
    db,
    ids.map((id): [string | number, string] => [id, 'running']),
  );
  const s = store({ database: db, table: 'workflows', statuses: { running: 'running', paused: 'paused' } });
  await parkAllPages(s, fence(1n));
  return { db, s, path };
}

forEachDriver(() => {
  describe('SqliteWorkflowStore: the quiet page resume', () => {
    it("a host trigger's RAISE(ROLLBACK) in the first quiet page leaves the trigger awake for the host's next update", async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      db.exec(`CREATE TRIGGER boom BEFORE UPDATE OF status ON workflows
        WHEN OLD.id = 'b' AND NEW.status = 'running' BEGIN SELECT RAISE(ROLLBACK, 'b rolls back'); END`);
      // The host's error, not a later one of the store's (no savepoint is left to release).
      await expect(s.unparkPage!(fence(2n), { limit: 2 })).rejects.toThrow(/b rolls back/);
      expect(markIds(db)).toEqual(['a', 'b', 'c']);
      expect(statusesById(db)).toEqual({ a: 'paused', b: 'paused', c: 'paused' });
      // A user resumes c on the store's handle: its mark must go. Then pauses it again: that is the user's.
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c'");
      expect(markIds(db)).toEqual(['a', 'b']);
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'c'");
      db.exec('DROP TRIGGER boom');
      const { results } = await unparkAllPages(s, fence(2n), 10);
      expect(results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
      ]);
      expect(statusesById(db)).toEqual({ a: 'running', b: 'running', c: 'paused' });
      expect(markIds(db)).toEqual([]);
    });

    it('a page whose UPDATE fails, then whose trigger cannot be woken: both errors, none lost', async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      db.exec(`CREATE TRIGGER fail_b BEFORE UPDATE OF status ON workflows
          WHEN OLD.id = 'b' AND NEW.status = 'running' BEGIN SELECT RAISE(FAIL, 'b fails'); END;
        CREATE TEMP TRIGGER no_wake BEFORE INSERT ON graceful_drain_resuming
          WHEN NEW.n <> ${RESUMING_ROWID} BEGIN SELECT RAISE(FAIL, 'cannot wake'); END`);
      const error = await s.unparkPage!(fence(2n), { limit: 2 }).catch((e: unknown) => e);
      const all = (error as Error & { cause?: unknown }).cause as AggregateError;
      expect(all).toBeInstanceOf(AggregateError);
      expect(all.message).toMatch(/graceful_drain_marks_unpaused could not be woken.*cannot wake/);
      expect(all.errors.map((e) => String(e))).toEqual([
        expect.stringMatching(/b fails/),
        expect.stringMatching(/cannot wake/),
      ]);
      expect(markIds(db)).toEqual(['a', 'b', 'c']);
    });

    it('the same RAISE(ROLLBACK) after an earlier quiet page committed: the trigger is awake after', async () => {
      const { db, s } = await parked(['a', 'b', 'c', 'd']);
      await s.unparkPage!(fence(2n), { limit: 1 }); // a
      db.exec(`CREATE TRIGGER boom BEFORE UPDATE OF status ON workflows
        WHEN OLD.id = 'c' AND NEW.status = 'running' BEGIN SELECT RAISE(ROLLBACK, 'c rolls back'); END`);
      await expect(s.unparkPage!(fence(2n), { limit: 2, cursor: 'a' })).rejects.toThrow(/c rolls back/);
      expect(lastRowidText(db)).not.toBe(RESUMING_ROWID);
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'd'");
      expect(markIds(db)).toEqual(['b', 'c']);
    });

    it('RAISE(FAIL) on the second row of a page (first row kept by the statement): nothing committed, trigger awake', async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      db.exec(`CREATE TRIGGER fail_b BEFORE UPDATE OF status ON workflows
        WHEN OLD.id = 'b' AND NEW.status = 'running' BEGIN SELECT RAISE(FAIL, 'b fails'); END`);
      await expect(s.unparkPage!(fence(2n), { limit: 2 })).rejects.toThrow(/b fails/);
      expect(statusesById(db)).toEqual({ a: 'paused', b: 'paused', c: 'paused' });
      expect(markIds(db)).toEqual(['a', 'b', 'c']);
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c'");
      expect(markIds(db)).toEqual(['a', 'b']);
    });

    it('ids unique under BINARY but compared NOCASE: the mark of a workflow still pausing is kept', async () => {
      const { db } = hostDatabase(
        'CREATE TABLE workflows (id TEXT COLLATE NOCASE NOT NULL, status TEXT NOT NULL, UNIQUE (id COLLATE BINARY))',
      );
      insert(db, [
        ['A', 'paused'], // the user's own pause, no mark
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const s = store({ database: db, table: 'workflows' }); // pausing: 'pausing'
      await s.park(['a', 'b'], fence(1n));
      expect(markIds(db)).toEqual(['a', 'b']);
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'a' COLLATE BINARY"); // a done pausing
      await s.unparkPage!(fence(2n), { limit: 10 });
      expect(db.prepare("SELECT status FROM workflows WHERE id = 'b' COLLATE BINARY").pluck().get()).toBe(
        'pausing',
      );
      // b still pausing: its mark must stay, so that the store resumes it once it is paused.
      expect(markIds(db)).toEqual(['b']);
    });

    it('a host audit trigger (every quiet page rolled back and redone awake), pages of 1 past the 8 awake pages', async () => {
      const ids = Array.from({ length: 25 }, (_, i) => `w${String(i).padStart(2, '0')}`);
      const { db, s } = await parked(ids);
      db.exec(`CREATE TABLE audit (n INTEGER PRIMARY KEY, id TEXT);
        CREATE TRIGGER audit_update AFTER UPDATE OF status ON workflows BEGIN INSERT INTO audit (id) VALUES (NEW.id); END`);
      // w05 and w20: a user resumes and pauses them again (their pause is the user's)
      for (const id of ['w05', 'w20']) {
        db.prepare("UPDATE workflows SET status = 'running' WHERE id = ?").run(id);
        db.prepare("UPDATE workflows SET status = 'paused' WHERE id = ?").run(id);
      }
      const results: ItemResult<string>[] = [];
      let cursor: string | undefined;
      do {
        const page = await s.unparkPage!(fence(2n), { limit: 1, cursor });
        results.push(...page.results);
        cursor = page.cursor;
        // Between pages, the host resumes and re-pauses w15 once (on the store's handle).
        if (cursor === 'w10') {
          db.exec("UPDATE workflows SET status = 'running' WHERE id = 'w15'");
          db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'w15'");
        }
      } while (cursor !== undefined);
      const user = ['w05', 'w15', 'w20'];
      expect(results).toEqual(
        ids.filter((id) => !user.includes(id)).map((id) => ({ id, outcome: 'resumed' })),
      );
      for (const id of ids) expect(statusesById(db)[id]).toBe(user.includes(id) ? 'paused' : 'running');
      expect(markIds(db)).toEqual([]);
    });

    it('a host trigger that touches the resumed row itself (updated_at): all resumed once, no mark left', async () => {
      const { db, s } = await parked(['a', 'b', 'c', 'd']);
      db.exec(`ALTER TABLE workflows ADD COLUMN updated_at INTEGER;
        CREATE TRIGGER touch AFTER UPDATE OF status ON workflows BEGIN
          UPDATE workflows SET updated_at = 1 WHERE id = NEW.id; END`);
      db.exec(
        "UPDATE workflows SET status = 'running' WHERE id = 'c'; UPDATE workflows SET status = 'paused' WHERE id = 'c'",
      );
      const { results } = await unparkAllPages(s, fence(2n), 2);
      expect(results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
        { id: 'd', outcome: 'resumed' },
      ]);
      expect(statusesById(db)).toEqual({ a: 'running', b: 'running', c: 'paused', d: 'running' });
      expect(markIds(db)).toEqual([]);
    });

    it('a BEFORE UPDATE host trigger that resumes another parked workflow then RAISE(IGNORE)s the page row', async () => {
      const { db, s } = await parked(['a', 'b', 'c', 'd']);
      db.exec(`CREATE TRIGGER skip_a BEFORE UPDATE OF status ON workflows WHEN OLD.id = 'a' AND NEW.status = 'running'
        BEGIN UPDATE workflows SET status = 'running' WHERE id = 'd'; SELECT RAISE(IGNORE); END`);
      const first = await s.unparkPage!(fence(2n), { limit: 2 });
      expect(first.results).toContainEqual({ id: 'b', outcome: 'resumed' });
      // d left its pause (the host's trigger): its mark must be gone
      expect(statusesById(db)).toMatchObject({ b: 'running', c: 'paused', d: 'running' });
      expect(markIds(db)).not.toContain('d');
      expect(markIds(db)).toContain('c');
      db.exec('DROP TRIGGER skip_a');
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'd'"); // the user's pause
      const { results } = await unparkAllPages(s, fence(2n), 2);
      expect(results).toContainEqual({ id: 'c', outcome: 'resumed' });
      expect(results.map((r) => r.id)).not.toContain('d');
      expect(statusesById(db)).toMatchObject({ b: 'running', c: 'running', d: 'paused' });
      expect(markIds(db)).toEqual([]);
    });

    it('INTEGER PRIMARY KEY ids, pages of 1 and 4: each parked one resumed once, a re-pause left', async () => {
      for (const limit of [1, 4]) {
        const ids = Array.from({ length: 12 }, (_, i) => i + 1);
        const { db, s } = await parked(
          ids,
          'CREATE TABLE workflows (id INTEGER PRIMARY KEY, status TEXT NOT NULL)',
        );
        db.exec(
          "UPDATE workflows SET status = 'running' WHERE id = 10; UPDATE workflows SET status = 'paused' WHERE id = 10",
        );
        const { results } = await unparkAllPages(s, fence(2n), limit);
        const expected = ids
          .map(String)
          .filter((id) => id !== '10')
          .sort();
        expect(results).toEqual(expected.map((id) => ({ id, outcome: 'resumed' })));
        for (const id of ids) expect(statusesById(db)[String(id)]).toBe(id === 10 ? 'paused' : 'running');
        expect(markIds(db)).toEqual([]);
      }
    });

    it('a host table and marks in an attached database: quiet pages, the trigger awake after', async () => {
      const { db } = hostDatabase();
      db.exec(`ATTACH DATABASE '${join(dir, `${randomId()}.db`)}' AS aux`);
      db.exec('CREATE TABLE aux.workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)');
      insert(
        db,
        ['a', 'b', 'c', 'd'].map((id): [string, string] => [id, 'running']),
        'aux.workflows',
      );
      const s = store({
        database: db,
        table: 'aux.workflows',
        marksTable: 'aux.graceful_drain_marks',
        statuses: { running: 'running', paused: 'paused' },
      });
      await parkAllPages(s, fence(1n));
      expect(markIds(db, 'aux.graceful_drain_marks')).toEqual(['a', 'b', 'c', 'd']);
      expect((await s.unparkPage!(fence(2n), { limit: 2 })).results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
      ]);
      db.exec("UPDATE aux.workflows SET status = 'running' WHERE id = 'c'");
      expect(markIds(db, 'aux.graceful_drain_marks')).toEqual(['d']);
      db.exec("UPDATE aux.workflows SET status = 'paused' WHERE id = 'c'");
      const { results } = await unparkAllPages(s, fence(2n), 2);
      expect(results).toEqual([{ id: 'd', outcome: 'resumed' }]);
      expect(statusesById(db, 'aux.workflows')).toEqual({
        a: 'running',
        b: 'running',
        c: 'paused',
        d: 'running',
      });
    });

    it("two stores on one handle, two host tables: a host trigger on store A's table resumes one of B's", async () => {
      const { db } = hostDatabase();
      db.exec('CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL)');
      insert(db, [
        ['a', 'running'],
        ['b', 'running'],
      ]);
      insert(
        db,
        [
          ['x', 'running'],
          ['y', 'running'],
        ],
        'jobs',
      );
      const st = { running: 'running', paused: 'paused' };
      const A = store({ database: db, table: 'workflows', statuses: st });
      const B = store({ database: db, table: 'jobs', marksTable: 'job_marks', statuses: st });
      await parkAllPages(A, fence(1n));
      await parkAllPages(B, fence(1n));
      db.exec(`CREATE TRIGGER cascade AFTER UPDATE OF status ON workflows WHEN NEW.id = 'a' AND NEW.status = 'running'
        BEGIN UPDATE jobs SET status = 'running' WHERE id = 'x'; END`);
      await unparkAllPages(A, fence(2n), 10);
      expect(markIds(db)).toEqual([]);
      // x left its pause (the host's trigger): B's mark of it must go
      expect(markIds(db, 'job_marks')).toEqual(['y']);
      db.exec("UPDATE jobs SET status = 'paused' WHERE id = 'x'"); // the user's pause
      expect((await unparkAllPages(B, fence(2n), 10)).results).toEqual([{ id: 'y', outcome: 'resumed' }]);
      expect(statusesById(db, 'jobs')).toEqual({ x: 'paused', y: 'running' });
    });

    it('two stores, one host table, two marks tables: each resumes its own, re-pauses left', async () => {
      const { db } = hostDatabase();
      insert(
        db,
        ['a', 'b', 'c', 'd'].map((id): [string, string] => [id, 'running']),
      );
      const st = { running: 'running', paused: 'paused' };
      const A = store({ database: db, table: 'workflows', statuses: st });
      const B = store({ database: db, table: 'workflows', marksTable: 'other_marks', statuses: st });
      await A.park(['a', 'b'], fence(1n));
      await B.park(['c', 'd'], fence(1n));
      expect((await unparkAllPages(A, fence(2n), 1)).results.map((r) => r.id)).toEqual(['a', 'b']);
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c'");
      expect(markIds(db, 'other_marks')).toEqual(['d']);
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'c'");
      expect((await unparkAllPages(B, fence(2n), 1)).results).toEqual([{ id: 'd', outcome: 'resumed' }]);
      expect(statusesById(db)).toEqual({ a: 'running', b: 'running', c: 'paused', d: 'running' });
      expect(markIds(db)).toEqual([]);
      expect(markIds(db, 'other_marks')).toEqual([]);
    });

    it("leaves the handle's last_insert_rowid() as the host left it (no fence raise)", async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      await s.unparkPage!(fence(2n), { limit: 1 }); // raises the fence to 2
      db.exec('CREATE TABLE host_log (n INTEGER PRIMARY KEY, v TEXT)');
      db.prepare('INSERT INTO host_log (n, v) VALUES (777, ?)').run('x');
      expect(lastRowid(db)).toBe(777);
      await s.unparkPage!(fence(2n), { limit: 1, cursor: 'a' });
      expect(lastRowid(db)).toBe(777);
    });
  });

  describe('SqliteWorkflowStore: the quiet page resume, on a handle the host tunes', () => {
    it('a host that sets PRAGMA temp_store after the store set up can still resume', async () => {
      const { db, s } = await parked(['a', 'b']);
      // Common tuning; changing temp_store closes the connection's temp database (all temp tables).
      db.exec('PRAGMA temp_store = MEMORY');
      const { results } = await unparkAllPages(s, fence(2n), 10);
      expect(results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
      ]);
      expect(markIds(db)).toEqual([]);
    });

    it('an id column without affinity, unique as values (1 and "1"), compared as text: a pausing mark is kept', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id UNIQUE, status TEXT NOT NULL)');
      // integer 1: the user's own pause (no mark); text '1' and 'b': parked by the store
      db.exec("INSERT INTO workflows VALUES (1, 'paused'), ('1', 'running'), ('b', 'running')");
      const options = compileStoreOptions({ database: db, table: 'workflows' });
      expect(checkHostTable(db, options).idUnique).toBe(true); // the unique index holds 1 and '1' apart
      const s = store({ database: db, table: 'workflows' }); // pausing: 'pausing'
      await s.park(['1', 'b'], fence(1n));
      expect(markIds(db)).toEqual(['1', 'b']);
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = '1' AND typeof(id) = 'text'"); // done pausing
      await s.unparkPage!(fence(2n), { limit: 10 });
      // BLOB vs TEXT column: no affinity applied, so the integer 1 is not matched by the mark '1'
      expect(db.prepare("SELECT status FROM workflows WHERE typeof(id) = 'integer'").pluck().get()).toBe(
        'paused',
      );
      expect(db.prepare("SELECT status FROM workflows WHERE id = 'b'").pluck().get()).toBe('pausing');
      // b still pausing: its mark must stay (the count falls short, and the page is done by its states)
      expect(markIds(db)).toEqual(['b']);
    });

    it("after a host trigger's RAISE(ROLLBACK), last_insert_rowid() is the host's", async () => {
      const { db, s } = await parked(['a', 'b']);
      await s.unparkPage!(fence(2n), { limit: 1 }); // fence raised; a resumed
      db.exec(`CREATE TABLE host_log (n INTEGER PRIMARY KEY, v TEXT);
        CREATE TRIGGER boom BEFORE UPDATE OF status ON workflows
        WHEN NEW.status = 'running' BEGIN SELECT RAISE(ROLLBACK, 'host says no'); END`);
      db.prepare("INSERT INTO host_log (n, v) VALUES (777, 'x')").run();
      await expect(s.unparkPage!(fence(2n), { limit: 1, cursor: 'a' })).rejects.toThrow(/host says no/);
      expect(lastRowidText(db)).toBe('777');
    });

    it('a unique index whose name has a double quote does not break the set-up', async () => {
      const { db } = hostDatabase(
        'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL); CREATE UNIQUE INDEX "by""status" ON workflows (status, id)',
      );
      insert(db, [['a', 'running']]);
      const s = store({ database: db, table: 'workflows', statuses: ST });
      await expect(s.park(['a'], fence(1n))).resolves.toEqual([{ id: 'a', outcome: 'paused' }]);
    });

    it('a unique column whose name only JavaScript folds to the id column (KELVIN SIGN) is not the id', () => {
      const { db } = hostDatabase('CREATE TABLE workflows ("\u212A" TEXT UNIQUE, k TEXT, status TEXT)');
      const options = compileStoreOptions({ database: db, table: 'workflows', idColumn: 'k' });
      expect(checkHostTable(db, options).idUnique).toBe(false);
    });
  });

  describe('SqliteWorkflowStore: the quiet page resume, table shapes and rowids', () => {
    it.each([
      ['CREATE TABLE workflows ("Order" TEXT COLLATE NOCASE UNIQUE, status TEXT)', 'order', true],
      ['CREATE TABLE workflows ("select" TEXT PRIMARY KEY, status TEXT)', 'select', true],
      ['CREATE TABLE workflows (id INTEGER PRIMARY KEY DESC, status TEXT)', 'id', true],
      ['CREATE TABLE workflows (id TEXT, g TEXT, status TEXT, PRIMARY KEY (id, g), UNIQUE (id))', 'id', true],
      [
        'CREATE TABLE workflows (id TEXT, status TEXT); CREATE UNIQUE INDEX w ON workflows (id DESC)',
        'id',
        true,
      ],
      ["CREATE TABLE workflows (id TEXT DEFAULT 'x' CHECK (id <> '') UNIQUE, status TEXT)", 'id', true],
      ['CREATE TABLE workflows (x TEXT, id TEXT AS (x) UNIQUE, status TEXT)', 'id', true],
      [
        'CREATE TABLE workflows (x TEXT, id TEXT AS (CASE WHEN x = 1 THEN x END), status TEXT); CREATE UNIQUE INDEX w ON workflows (id)',
        'id',
        false,
      ],
      ['CREATE TABLE workflows (id TEXT COLLATE RTRIM UNIQUE, status TEXT)', 'id', true],
    ])('%s (%s): %s', (schema, idColumn, unique) => {
      const { db } = hostDatabase(schema);
      const options = compileStoreOptions({ database: db, table: 'workflows', idColumn });
      expect(checkHostTable(db, options).idUnique).toBe(unique);
    });

    it.each([['0'], ['1'], ['-5'], [RESUMING_ROWID.replace(/3$/, '4')], ['9223372036854775807']])(
      'last_insert_rowid() %s given back, pages of 1 past the 8 awake pages with an audit trigger',
      async (rowid) => {
        const ids = Array.from({ length: 12 }, (_, i) => `w${String(i).padStart(2, '0')}`);
        const { db } = hostDatabase();
        insert(
          db,
          ids.map((id): [string, string] => [id, 'running']),
        );
        const s = store({ database: db, table: 'workflows', statuses: ST });
        await parkAllPages(s, fence(1n));
        await s.unparkPage!(fence(2n), { limit: 1 }); // fence raised (its insert sets last_insert_rowid)
        db.exec(`CREATE TEMP TABLE audit (id TEXT);
          CREATE TEMP TRIGGER audit_u AFTER UPDATE OF status ON workflows WHEN NEW.id IN ('w03', 'w11')
          BEGIN INSERT INTO audit VALUES (NEW.id); END;
          CREATE TEMP TRIGGER ignored AFTER UPDATE OF status ON workflows
          BEGIN INSERT OR IGNORE INTO main.workflows VALUES (NEW.id, 'x'); END;
          CREATE TABLE host_log (n INTEGER PRIMARY KEY)`);
        db.exec(`INSERT INTO host_log VALUES (${rowid})`);
        if (rowid === '0') db.exec('DELETE FROM host_log'); // keeps 0
        // w07: the user resumes and pauses it again
        db.exec("UPDATE workflows SET status = 'running' WHERE id = 'w07'");
        db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'w07'");
        const results: ItemResult<string>[] = [];
        let cursor: string | undefined = 'w00';
        do {
          const page = await s.unparkPage!(fence(2n), { limit: 1, cursor });
          results.push(...page.results);
          cursor = page.cursor;
          expect(lastRowidText(db)).toBe(rowid);
        } while (cursor !== undefined);
        expect(results.map((r) => r.id)).toEqual(ids.slice(1).filter((id) => id !== 'w07'));
        for (const id of ids) expect(statusesById(db)[id]).toBe(id === 'w07' ? 'paused' : 'running');
        expect(markIds(db)).toEqual([]);
        expect(db.prepare('PRAGMA main.temp_store').pluck().get()).toBe(0);
        expect(db.inTransaction).toBe(false);
      },
    );
  });
});
