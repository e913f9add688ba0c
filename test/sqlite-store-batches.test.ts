/**
 * The SQLite store's batch writes: the usual case (every id running for `park`, every id marked and
 * paused for `unpark`) takes one statement per kind of write, and anything else falls back to the exact
 * path in the same transaction. These tests pin the outcomes of both paths.
 */
import { describe, expect, it } from 'vitest';
import { forEachDriver, type TestDatabase } from './support/sqlite.js';
import { insert, sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-batches-');
const fence = (token?: bigint) => ({ memberId: 'm1', token });

const statuses = (db: TestDatabase) =>
  Object.fromEntries(
    (
      db.prepare('SELECT id, status FROM workflows ORDER BY id').all() as { id: string; status: string }[]
    ).map((row) => [row.id, row.status]),
  );
const marks = (db: TestDatabase) =>
  db.prepare('SELECT id FROM graceful_drain_marks ORDER BY id').pluck().all();

/** `n` running workflows `w0`... parked and paused by the host, and a store on them. */
async function parkedAndPaused(n: number) {
  const { db } = hostDatabase();
  insert(
    db,
    Array.from({ length: n }, (_, i): [string, string] => [`w${i}`, 'running']),
  );
  const s = store({ database: db, table: 'workflows' });
  const ids = Array.from({ length: n }, (_, i) => `w${i}`);
  expect((await s.park(ids, fence(1n))).every((r) => r.outcome === 'pausing')).toBe(true);
  db.exec("UPDATE workflows SET status = 'paused'");
  return { db, s, ids };
}

forEachDriver(() => {
  describe('SqliteWorkflowStore park()', () => {
    it('marks exactly the running ones when some are not (repeated ids once), whatever the batch', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['a', 'running'],
        ['b', 'paused'],
        ['c', 'running'],
        ['d', 'succeeded'],
      ]);
      const s = store({ database: db, table: 'workflows' });
      expect(await s.park(['a', 'b', 'c', 'a', 'd', 'x'], fence(1n))).toEqual([
        { id: 'a', outcome: 'pausing' },
        { id: 'b', outcome: 'skipped' },
        { id: 'c', outcome: 'pausing' },
        { id: 'a', outcome: 'skipped' },
        { id: 'd', outcome: 'skipped' },
        { id: 'x', outcome: 'skipped' },
      ]);
      expect(marks(db)).toEqual(['a', 'c']);
      expect(statuses(db)).toEqual({ a: 'pausing', b: 'paused', c: 'pausing', d: 'succeeded' });
      // all running, repeated: the usual path
      db.exec("UPDATE workflows SET status = 'running' WHERE id IN ('b', 'd')");
      expect(await s.park(['b', 'd', 'b'], fence(1n))).toEqual([
        { id: 'b', outcome: 'pausing' },
        { id: 'd', outcome: 'pausing' },
        { id: 'b', outcome: 'skipped' },
      ]);
      expect(marks(db)).toEqual(['a', 'b', 'c', 'd']);
    });

    it('listActive() on a table with none running returns an empty last page', async () => {
      const { s } = await parkedAndPaused(3);
      expect(await s.listActive({ limit: 2 })).toEqual({ items: [], cursor: undefined });
    });
  });

  describe('SqliteWorkflowStore calls in a row', () => {
    it('let the event loop turn during a long run, so that a long park never starves timers (lease renewals)', async () => {
      const { s } = await parkedAndPaused(2);
      await s.listParked({ limit: 1 }); // set up
      for (const call of [
        () => s.listParked({ limit: 1 }),
        () => s.listActive({ limit: 1 }),
        () => s.unpark(['w0'], fence(3n)),
        () => s.raiseFence(fence(3n)),
      ]) {
        // Calls chained by `await` alone: a timer still fires while they run (10,000 calls take far
        // longer than the few milliseconds a run may go without a turn).
        let fired = false;
        setTimeout(() => {
          fired = true;
        }, 0);
        let calls = 0;
        while (!fired && calls < 10_000) {
          await call();
          calls++;
        }
        expect(fired).toBe(true);
        expect(calls).toBeLessThan(10_000);
      }
    });

    it('a lone call does not wait for a turn of the event loop', async () => {
      const { s } = await parkedAndPaused(2);
      await s.listParked({ limit: 1 }); // set up
      await new Promise((resolve) => setImmediate(resolve));
      let turned = false;
      setImmediate(() => {
        turned = true;
      });
      await s.listParked({ limit: 1 });
      expect(turned).toBe(false);
    });
  });

  describe('SqliteWorkflowStore unpark()', () => {
    it("never resumes a user's pause, even when the host's own trigger writes a row for each update", async () => {
      const { db, s } = await parkedAndPaused(1);
      // A common host trigger (an audit row per update): its writes count in total_changes() too.
      db.exec(`CREATE TABLE audit (id TEXT, at INTEGER);
        CREATE TRIGGER audit_update AFTER UPDATE ON workflows BEGIN INSERT INTO audit VALUES (NEW.id, 0); END;`);
      // The user pauses the parked workflow: its mark is dropped, its status stays paused.
      expect(await s.notePaused(['w0'])).toEqual([{ id: 'w0', outcome: 'released' }]);
      expect(await s.unpark(['w0'], fence(2n))).toEqual([{ id: 'w0', outcome: 'skipped' }]);
      expect(statuses(db)).toEqual({ w0: 'paused' });
      // And the next one resumed, with the host's trigger in place, is resumed and unmarked.
      db.exec("INSERT INTO workflows (id, status) VALUES ('w1', 'running')");
      await s.park(['w1'], fence(3n));
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'w1'");
      expect(await s.unpark(['w1'], fence(4n))).toEqual([{ id: 'w1', outcome: 'resumed' }]);
      expect(statuses(db)).toEqual({ w0: 'paused', w1: 'running' });
      expect(marks(db)).toEqual([]);
    });

    it('resumes every marked paused one and drops the marks, in batches larger than a chunk', async () => {
      const { db, s, ids } = await parkedAndPaused(1_200);
      const results = await s.unpark([...ids, 'w0'], fence(2n));
      expect(results.filter((r) => r.outcome === 'resumed')).toHaveLength(1_200);
      expect(results.at(-1)).toEqual({ id: 'w0', outcome: 'skipped' });
      expect(marks(db)).toEqual([]);
      expect(new Set(Object.values(statuses(db)))).toEqual(new Set(['running']));
    });

    it('without the store trigger on the host table (a table created again), still drops every mark it resumes', async () => {
      const { db, s } = await parkedAndPaused(3);
      db.exec('DROP TRIGGER graceful_drain_marks_unpaused');
      expect(await s.unpark(['w0', 'w1'], fence(2n))).toEqual([
        { id: 'w0', outcome: 'resumed' },
        { id: 'w1', outcome: 'resumed' },
      ]);
      expect(marks(db)).toEqual(['w2']);
      expect(await s.unpark(['w2'], fence(2n))).toEqual([{ id: 'w2', outcome: 'resumed' }]);
      expect(marks(db)).toEqual([]);
      expect(statuses(db)).toEqual({ w0: 'running', w1: 'running', w2: 'running' });
    });

    it('with a host trigger that writes rows of its own on each status change, resumes and unmarks exactly', async () => {
      const { db, s } = await parkedAndPaused(3);
      db.exec(`CREATE TABLE audit (id TEXT, status TEXT);
        CREATE TRIGGER audit_status AFTER UPDATE OF status ON workflows
        BEGIN INSERT INTO audit VALUES (NEW.id, NEW.status); END`);
      expect(await s.unpark(['w0', 'w1', 'w2'], fence(2n))).toEqual([
        { id: 'w0', outcome: 'resumed' },
        { id: 'w1', outcome: 'resumed' },
        { id: 'w2', outcome: 'resumed' },
      ]);
      expect(marks(db)).toEqual([]);
      // resumed once each: the first attempt was rolled back
      expect(db.prepare('SELECT id, status FROM audit ORDER BY id').all()).toEqual([
        { id: 'w0', status: 'running' },
        { id: 'w1', status: 'running' },
        { id: 'w2', status: 'running' },
      ]);
    });

    it("never resumes a user's pause in a batch otherwise resumable: all paused, one unmarked", async () => {
      const { db, s } = await parkedAndPaused(2);
      db.exec("INSERT INTO workflows VALUES ('user', 'paused')");
      for (let batch = 0; batch < 4; batch++) {
        expect(await s.unpark(['user'], fence(2n))).toEqual([{ id: 'user', outcome: 'skipped' }]);
      }
      expect(await s.unpark(['w0', 'user', 'w1'], fence(2n))).toEqual([
        { id: 'w0', outcome: 'resumed' },
        { id: 'user', outcome: 'skipped' },
        { id: 'w1', outcome: 'resumed' },
      ]);
      expect(statuses(db)).toEqual({ user: 'paused', w0: 'running', w1: 'running' });
      expect(marks(db)).toEqual([]);
    });

    it('a batch mixing resumable, still pausing, unmarked and user-resumed ones: each gets its outcome', async () => {
      const { db, s } = await parkedAndPaused(4);
      db.exec("UPDATE workflows SET status = 'pausing' WHERE id = 'w1'");
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'w2'"); // the trigger drops its mark
      db.exec("INSERT INTO workflows VALUES ('user', 'paused')");
      expect(await s.unpark(['w0', 'w1', 'w2', 'user', 'w3'], fence(2n))).toEqual([
        { id: 'w0', outcome: 'resumed' },
        { id: 'w1', outcome: 'skipped' },
        { id: 'w2', outcome: 'skipped' },
        { id: 'user', outcome: 'skipped' },
        { id: 'w3', outcome: 'resumed' },
      ]);
      expect(marks(db)).toEqual(['w1']);
      expect(statuses(db)).toEqual({
        user: 'paused',
        w0: 'running',
        w1: 'pausing',
        w2: 'running',
        w3: 'running',
      });
    });
  });
});
