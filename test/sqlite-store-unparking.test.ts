/**
 * `unparkPage()` resumes a page by range with the trigger told to leave that range's marks alone (the
 * range sits in `<marksTable>_unparking` for the length of the UPDATE): what must hold around it.
 */
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from './support/sqlite.js';
import { forEachDriver } from './support/sqlite.js';
import { insert, sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-unparking-');
const fence = (token: bigint) => ({ memberId: 'm1', token });
const statuses = { running: 'running', paused: 'paused' };

function statusOf(db: TestDatabase, id: string): unknown {
  return db.prepare('SELECT status FROM workflows WHERE id = ?').pluck().get(id);
}

function marks(db: TestDatabase): unknown[] {
  return db.prepare('SELECT id FROM graceful_drain_marks ORDER BY id').pluck().all();
}

function unparking(db: TestDatabase): number {
  return db.prepare('SELECT count(*) FROM graceful_drain_marks_unparking').pluck().get() as number;
}

/** Parks every running workflow, page by page. */
async function parkAll(s: ReturnType<typeof store>, token: bigint): Promise<void> {
  let cursor: string | undefined;
  do cursor = (await s.parkPage!(fence(token), { limit: 2, cursor })).cursor;
  while (cursor !== undefined);
}

forEachDriver(() => {
  describe('SqliteWorkflowStore.unparkPage(): the range the trigger leaves alone', () => {
    it('a workflow a host trigger resumes outside the page loses its mark, so a later user pause stays', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['a1', 'running'],
        ['a2', 'running'],
        ['a3', 'running'],
      ]);
      const s = store({ database: db, table: 'workflows', statuses });
      await parkAll(s, 1n);
      expect(marks(db)).toEqual(['a1', 'a2', 'a3']);
      // The host's own rule: resuming a1 resumes a3 too (outside the first page, a1 and a2).
      db.exec(`CREATE TRIGGER host_cascade AFTER UPDATE OF status ON workflows
        WHEN NEW.id = 'a1' AND NEW.status = 'running'
        BEGIN UPDATE workflows SET status = 'running' WHERE id = 'a3'; END`);
      const first = await s.unparkPage!(fence(2n), { limit: 2 });
      expect(first.results).toEqual([
        { id: 'a1', outcome: 'resumed' },
        { id: 'a2', outcome: 'resumed' },
      ]);
      expect(statusOf(db, 'a3')).toBe('running');
      // a3 left its pause through the host: its mark went with it.
      expect(marks(db)).toEqual([]);
      // The user pauses a3 again, through the host's own code: that pause is the user's.
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'a3'");
      expect((await s.unparkPage!(fence(2n), { limit: 2, cursor: first.cursor! })).results).toEqual([]);
      expect(statusOf(db, 'a3')).toBe('paused');
    });

    it('is empty after a page resumed by range, after a page done by states, and after a failed UPDATE', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['b1', 'running'],
        ['b2', 'running'],
        ['b3', 'running'],
        ['b4', 'running'],
      ]);
      const s = store({ database: db, table: 'workflows', statuses: { ...statuses, pausing: 'pausing' } });
      await parkAll(s, 1n);
      db.exec("UPDATE workflows SET status = 'paused' WHERE id <> 'b2'");
      // By range: every mark of the page paused.
      expect((await s.unparkPage!(fence(2n), { limit: 1 })).results).toEqual([
        { id: 'b1', outcome: 'resumed' },
      ]);
      expect(unparking(db)).toBe(0);
      // By states: b2 still pausing keeps its mark.
      const byStates = await s.unparkPage!(fence(2n), { limit: 2, cursor: 'b1' });
      expect(byStates).toMatchObject({ results: [{ id: 'b3', outcome: 'resumed' }], pausing: 1 });
      expect(unparking(db)).toBe(0);
      expect(marks(db)).toEqual(['b2', 'b4']);
      // A host trigger refuses b4's resume: the UPDATE fails, and the page's transaction is rolled back.
      db.exec(`CREATE TRIGGER host_refuse BEFORE UPDATE OF status ON workflows
        WHEN NEW.id = 'b4' BEGIN SELECT RAISE(ABORT, 'b4 is frozen'); END`);
      await expect(s.unparkPage!(fence(2n), { limit: 5, cursor: 'b3' })).rejects.toThrow(/b4 is frozen/);
      expect(unparking(db)).toBe(0);
      expect(marks(db)).toEqual(['b2', 'b4']);
      expect(statusOf(db, 'b4')).toBe('paused');
      db.exec('DROP TRIGGER host_refuse');
      // Outside any unpark, a resume by the host drops the mark, as before.
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'b2'");
      expect(marks(db)).toEqual(['b4']);
      expect((await s.unparkPage!(fence(2n), { limit: 5, cursor: 'b3' })).results).toEqual([
        { id: 'b4', outcome: 'resumed' },
      ]);
      expect(unparking(db)).toBe(0);
      expect(marks(db)).toEqual([]);
    });

    it("a row a foreign writer left in it is removed by the store's set-up, so user resumes drop marks again", async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['c1', 'running'],
        ['c2', 'running'],
      ]);
      const first = store({ database: db, table: 'workflows', statuses });
      await parkAll(first, 1n);
      await first.close();
      // A range covering every id, committed by someone else.
      db.exec("INSERT INTO graceful_drain_marks_unparking (id, lower, upper) VALUES (1, NULL, 'zzz')");
      const s = store({ database: db, table: 'workflows', statuses });
      await s.listParked({ limit: 1 });
      expect(unparking(db)).toBe(0);
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c1'");
      expect(marks(db)).toEqual(['c2']);
    });
  });
});
