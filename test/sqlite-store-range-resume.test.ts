/**
 * The resume of a page by the host's range of ids: where the host's ids order as the marks' do (TEXT,
 * BINARY, one row per id), `unparkPage()` compares the range's paused ids with the page's marks and,
 * when they are the same, resumes the range by a walk of the host's id index. A range that also holds a
 * workflow a user paused (no mark), or misses a mark's workflow (pausing, or resumed while the trigger
 * was gone), must never resume the user's; nor may ids that read alike in JavaScript (not valid UTF-8, or
 * UTF-16 text with a lone surrogate), a host's trigger that pauses a workflow meanwhile, or a planner that
 * reads the range out of id order. See also test/sqlite-store-quiet-resume.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Fence, WorkflowStore } from '../src/workflow-store.js';
import { forEachDriver, type TestDatabase } from './support/sqlite.js';
import {
  insert,
  markIds,
  parkAllPages,
  recording,
  slowOnce,
  sqliteHost,
  statusesById,
  unparkAllPages,
} from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-range-');
const fence = (token?: bigint): Fence => ({ memberId: 'm1', token });

const WITH_PAUSING = { running: 'running', pausing: 'pausing', paused: 'paused' };
const PLAIN = { running: 'running', paused: 'paused' };

/** A host table (`schema`, or the default one) holding `rows`, a store with `statuses`, all parked. */
async function parked(
  rows: [string, string][],
  statuses: typeof WITH_PAUSING | typeof PLAIN,
  schema?: string,
): Promise<{ db: TestDatabase; s: WorkflowStore }> {
  const { db } = hostDatabase(schema);
  insert(db, rows);
  const s = store({ database: db, table: 'workflows', statuses });
  await parkAllPages(s, fence(1n));
  return { db, s };
}

afterEach(() => {
  vi.restoreAllMocks();
});

forEachDriver(() => {
  describe('SqliteWorkflowStore: the resume of a page by the host range', () => {
    it('a range that took long to read sends its page, and the next 8, to the search per mark', async () => {
      const { db } = hostDatabase();
      const ids = Array.from({ length: 30 }, (_, i) => `w${String(i).padStart(2, '0')}`);
      insert(
        db,
        ids.map((id) => [id, 'running']),
      );
      const isRangeRead = (sql: string): boolean =>
        sql.startsWith('SELECT json_group_array(t.') && sql.includes('>= ?');
      // The first page's range takes long to read, as a range that walked many rows not the page's would.
      const recorded = slowOnce(db, isRangeRead);
      const s = store({ database: recorded.db, table: 'workflows', statuses: PLAIN });
      await parkAllPages(s, fence(1n));
      recorded.ran.length = 0;
      const { results, pages } = await unparkAllPages(s, fence(2n), 3);
      expect(pages).toBe(10);
      expect(results.map((r) => r.outcome)).toEqual(ids.map(() => 'resumed'));
      expect(Object.values(statusesById(db))).toEqual(ids.map(() => 'running'));
      expect(markIds(db)).toEqual([]);
      const updates = recorded.ran.filter((sql) => sql.startsWith('UPDATE'));
      // Page 1 read its range (slow), then pages 1 to 9 went by a search per mark; page 10 read its
      // range again (quick) and was resumed by it.
      expect(recorded.ran.filter(isRangeRead)).toHaveLength(2);
      expect(updates.filter((sql) => sql.includes('IN (SELECT m.id'))).toHaveLength(9);
      expect(updates.filter((sql) => sql.includes('>= ?'))).toHaveLength(1);
      expect(updates).toHaveLength(10);
    });

    it("leaves a user's pause inside a page whose marks include a pausing workflow", async () => {
      const { db, s } = await parked(
        [
          ['a', 'running'],
          ['c', 'running'],
        ],
        WITH_PAUSING,
      );
      // c finishes pausing; a does not yet; a user pauses b, which has no mark: as many paused in the
      // range (b, c) as marks (a, c).
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'c'");
      insert(db, [['b', 'paused']]);
      const { results, pausing } = await unparkAllPages(s, fence(2n), 10);
      expect(results).toEqual([{ id: 'c', outcome: 'resumed' }]);
      expect(pausing).toBe(1);
      expect(statusesById(db)).toEqual({ a: 'pausing', b: 'paused', c: 'running' });
      expect(markIds(db)).toEqual(['a']);
    });

    it("leaves a user's pause inside a page with a stale mark (the trigger dropped by the host)", async () => {
      const { db, s } = await parked(
        [
          ['a', 'running'],
          ['b', 'running'],
          ['c', 'running'],
        ],
        PLAIN,
      );
      db.exec('DROP TRIGGER graceful_drain_marks_unpaused');
      // Without the trigger, b's resume leaves its mark; then a user pauses bb, with no mark.
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'b'");
      insert(db, [['bb', 'paused']]);
      const { results } = await unparkAllPages(s, fence(2n), 10);
      expect(results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'skipped' },
        { id: 'c', outcome: 'resumed' },
      ]);
      expect(statusesById(db)).toEqual({ a: 'running', b: 'running', bb: 'paused', c: 'running' });
      expect(markIds(db)).toEqual([]);
    });

    it('resumes exactly the marked paused workflows over many pages, with user pauses and pausing ones among them', async () => {
      const ids = Array.from({ length: 120 }, (_, i) => `wf-${String(i).padStart(3, '0')}`);
      const { db, s } = await parked(
        ids.map((id): [string, string] => [id, 'running']),
        WITH_PAUSING,
      );
      // Most finish pausing; every 17th does not. Users pause workflows of their own, with no mark,
      // between the parked ones, in a few pages only (the pages after one of them go by search first).
      const pausingIds = ids.filter((_, i) => i % 17 === 5);
      const paused = ids.filter((id) => !pausingIds.includes(id));
      const update = db.prepare("UPDATE workflows SET status = 'paused' WHERE id = ?");
      for (const id of paused) update.run(id);
      const users = ['wf-004x', 'wf-090x', 'wf-118x'];
      insert(
        db,
        users.map((id): [string, string] => [id, 'paused']),
      );
      const { results, pausing, pages } = await unparkAllPages(s, fence(2n), 4);
      expect(pages).toBe(30);
      expect(pausing).toBe(pausingIds.length);
      expect(results).toEqual(paused.map((id) => ({ id, outcome: 'resumed' })));
      const after = statusesById(db);
      for (const id of paused) expect(after[id]).toBe('running');
      for (const id of pausingIds) expect(after[id]).toBe('pausing');
      for (const id of users) expect(after[id]).toBe('paused');
      expect(markIds(db)).toEqual(pausingIds);
    });

    it("leaves a user's pause whose id, not valid UTF-8, reads in JavaScript as a marked one's", async () => {
      // 'a' then a lone continuation byte: both ids read as 'a\uFFFD' in JavaScript, where the page's
      // paused ids are compared with its marks, so the comparison cannot tell them apart.
      const { db } = hostDatabase();
      db.exec("INSERT INTO workflows VALUES (CAST(x'6180' AS TEXT), 'running')");
      const s = store({
        database: db,
        table: 'workflows',
        statuses: { running: 'running', pausing: 'pausing', paused: 'paused' },
      });
      await parkAllPages(s, fence(1n));
      db.exec("INSERT INTO workflows VALUES (CAST(x'6181' AS TEXT), 'paused')");
      const { results, pausing } = await unparkAllPages(s, fence(2n), 10);
      expect(results).toEqual([]);
      expect(pausing).toBe(1);
      const rows = db.prepare('SELECT hex(id) AS id, status FROM workflows ORDER BY id').all() as {
        id: string;
        status: string;
      }[];
      expect(rows).toEqual([
        { id: '6180', status: 'pausing' },
        { id: '6181', status: 'paused' },
      ]);
      expect(db.prepare('SELECT hex(id) FROM graceful_drain_marks').pluck().all()).toEqual(['6180']);
    });

    it("in a UTF-16 database, leaves a user's pause whose id reads as a pausing workflow's in UTF-8, and keeps that one's mark", async () => {
      // SQLite converts UTF-16 text to UTF-8 (json_group_array reads it so) without checking surrogates:
      // a high surrogate followed by 'a' (D800 0061, not valid UTF-16) comes out as the bytes of U+10061
      // (D800 DC61), valid UTF-8, so no U+FFFD shows. BINARY compares the UTF-16 bytes: two ids, two rows.
      const { db, s } = await parked(
        [['\u{10061}', 'running']],
        WITH_PAUSING,
        "PRAGMA encoding = 'UTF-16le'; CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)",
      );
      expect(db.pragma('encoding')).toEqual([{ encoding: 'UTF-16le' }]);
      // The parked workflow is still pausing; a user pauses the other id, with no mark, which sorts
      // before it (UTF-16LE bytes 00 D8 61 00 < 00 D8 61 DC): in the page's range.
      db.exec("INSERT INTO workflows VALUES (CAST(x'00D86100' AS TEXT), 'paused')");
      const { results, pausing } = await unparkAllPages(s, fence(2n), 10);
      const rows = db.prepare('SELECT hex(id) AS id, status FROM workflows ORDER BY id').all();
      const marks = db.prepare('SELECT hex(id) FROM graceful_drain_marks').pluck().all();
      expect({ results, pausing, rows, marks }).toEqual({
        results: [],
        pausing: 1,
        rows: [
          { id: '00D86100', status: 'paused' },
          { id: '00D861DC', status: 'pausing' },
        ],
        marks: ['00D861DC'],
      });
    });

    it('over a host with an index on the status alone (paused ids not in id order), resumes exactly the marked ones', async () => {
      // Inserted out of id order: the rowid order of the status index is not the id order.
      const ids = Array.from({ length: 40 }, (_, i) => `wf-${String((i * 7) % 40).padStart(2, '0')}`);
      const { db, s } = await parked(
        ids.map((id): [string, string] => [id, 'running']),
        WITH_PAUSING,
        'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL); CREATE INDEX workflows_status ON workflows (status)',
      );
      db.exec("UPDATE workflows SET status = 'paused' WHERE status = 'pausing' AND id <> 'wf-13'");
      insert(db, [
        ['wf-05x', 'paused'],
        ['wf-31x', 'paused'],
      ]);
      // With statistics, the planner reads the range's paused ids by a scan in rowid order: their JSON is
      // then never the listing's, and every page goes by a search per mark.
      db.exec('ANALYZE');
      const { results, pausing } = await unparkAllPages(s, fence(2n), 3);
      const sorted = [...ids].sort().filter((id) => id !== 'wf-13');
      expect(pausing).toBe(1);
      expect(results).toEqual(sorted.map((id) => ({ id, outcome: 'resumed' })));
      const after = statusesById(db);
      for (const id of sorted) expect(after[id]).toBe('running');
      expect(after).toMatchObject({ 'wf-13': 'pausing', 'wf-05x': 'paused', 'wf-31x': 'paused' });
      expect(markIds(db)).toEqual(['wf-13']);
    });

    it("a host's BEFORE UPDATE trigger that pauses a user's workflow in the range during the resume: it stays paused", async () => {
      const { db, s } = await parked(
        [
          ['a', 'running'],
          ['b', 'done'],
          ['c', 'running'],
        ],
        PLAIN,
      );
      db.exec(`CREATE TRIGGER host_pause BEFORE UPDATE OF status ON workflows
        WHEN NEW.id = 'a' AND NEW.status = 'running' BEGIN UPDATE workflows SET status = 'paused' WHERE id = 'b'; END`);
      const { results } = await unparkAllPages(s, fence(2n), 10);
      expect(results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'c', outcome: 'resumed' },
      ]);
      expect(statusesById(db)).toEqual({ a: 'running', b: 'paused', c: 'running' });
      expect(markIds(db)).toEqual([]);
    });
    it('lists ids of any text (quotes, backslashes, control characters, astral ones) as they are, page by page', async () => {
      const { db } = hostDatabase();
      const ids = [
        '"q"',
        'back\\slash',
        'ctl\u0001\u001f',
        'line\u2028sep',
        'new\nline',
        'star\u{1F600}',
        'é',
        '\uFFFD',
      ];
      insert(
        db,
        ids.map((id): [string, string] => [id, 'running']),
      );
      const s = store({
        database: db,
        table: 'workflows',
        statuses: { running: 'running', paused: 'paused' },
      });
      await parkAllPages(s, fence(1n));
      const { results } = await unparkAllPages(s, fence(2n), 3);
      // In SQLite's order (BINARY: the bytes of UTF-8), which the marks table keeps.
      const order = db.prepare('SELECT id FROM workflows ORDER BY id').pluck().all() as string[];
      expect(results).toEqual(order.map((id) => ({ id, outcome: 'resumed' })));
      expect(new Set(order)).toEqual(new Set(ids));
      expect(Object.values(statusesById(db))).toEqual(ids.map(() => 'running'));
      expect(markIds(db)).toEqual([]);
    });

    // The range read is the page's own, from its first mark to its last: a workflow a user paused before
    // the first mark (no mark) used to be read with the first page (all ids up to its last), whose text
    // then differed from the marks', and the page went by a search per mark.
    it("reads a page's range from its first mark: a user's pause before it does not send the page to a search", async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['a', 'done'],
        ['b', 'running'],
        ['c', 'running'],
        ['d', 'running'],
      ]);
      const recorded = recording(db);
      const s = store({ database: recorded.db, table: 'workflows', statuses: PLAIN });
      await parkAllPages(s, fence(1n));
      // a user pauses a, which was not running: paused, no mark, before the page's first mark
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'a'");
      recorded.ran.length = 0;
      const { results } = await unparkAllPages(s, fence(2n), 10);
      expect(results.map((r) => [r.id, r.outcome])).toEqual([
        ['b', 'resumed'],
        ['c', 'resumed'],
        ['d', 'resumed'],
      ]);
      expect(statusesById(db)).toEqual({ a: 'paused', b: 'running', c: 'running', d: 'running' });
      expect(markIds(db)).toEqual([]);
      const byRange = recorded.ran.filter((sql) => sql.startsWith('UPDATE') && sql.includes('>= ?'));
      expect(byRange).toHaveLength(1);
    });

    it('a page of exactly the limit with nothing after it ends the listing', async () => {
      const { s } = await parked(
        [
          ['a', 'running'],
          ['b', 'running'],
        ],
        PLAIN,
      );
      const page = await s.unparkPage!(fence(2n), { limit: 2 });
      expect(page.results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
      ]);
      expect(page.cursor).toBeUndefined();
    });
  });
});
