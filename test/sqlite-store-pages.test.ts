/**
 * The SQLite store's `parkPage()` and `unparkPage()`: a page listed and parked (or unparked) in one
 * transaction, with the pages, cursors, outcomes, fencing, marks and signal handling of `listActive()`
 * then `park()` (or `listParked()` then `unpark()`). The usual case writes by the range of ids listed;
 * anything else (a count short) falls back to the exact path in the same transaction: both are pinned.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from '../src/adapters/memory/index.js';
import type { SqliteWorkflowStoreOptions } from '../src/adapters/sqlite/index.js';
import { EvictedMemberError, StaleTokenError } from '../src/errors.js';
import type { Fence, ItemResult, ParkedWorkflow, WorkflowStore } from '../src/workflow-store.js';
import { cleanedUp } from './support/drain.js';
import { forEachDriver, openDatabase, sqliteDriver, type TestDatabase } from './support/sqlite.js';
import { insert, slowOnce, sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-pages-');
const { member, memory } = cleanedUp();
const fence = (token?: bigint, incarnation?: string): Fence => ({ memberId: 'm1', token, incarnation });

type Row = { id: string | number; status: string };
const rows = (db: TestDatabase, table = 'workflows') =>
  db.prepare(`SELECT id, status FROM ${table} ORDER BY id`).all() as Row[];
const statuses = (db: TestDatabase) => Object.fromEntries(rows(db).map((r) => [String(r.id), r.status]));
const marks = (db: TestDatabase, table = 'graceful_drain_marks') =>
  db.prepare(`SELECT id FROM ${table} ORDER BY id`).pluck().all() as string[];
const markRows = (db: TestDatabase) =>
  db.prepare('SELECT id, member_id, token FROM graceful_drain_marks ORDER BY id').all();
const highest = (db: TestDatabase) =>
  db.prepare('SELECT highest FROM graceful_drain_marks_fence').pluck().get();

/** Every page of a listing, `limit` at a time: items and cursors. */
async function pagesOf<T>(
  list: (o: {
    limit: number;
    cursor?: string;
  }) => Promise<{ items: readonly T[]; cursor: string | undefined }>,
  limit: number,
) {
  const pages: { items: readonly T[]; cursor: string | undefined }[] = [];
  let cursor: string | undefined;
  do {
    const page = await list({ limit, ...(cursor === undefined ? {} : { cursor }) });
    pages.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return pages;
}

/** Every page of `parkPage()`: results and cursors. */
async function parkPages(s: WorkflowStore, f: Fence, limit: number) {
  const pages: { results: readonly ItemResult<string>[]; cursor: string | undefined }[] = [];
  let cursor: string | undefined;
  do {
    const page = await s.parkPage!(f, { limit, cursor });
    pages.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return pages;
}

/** Every page of `unparkPage()`: results, pausing counts and cursors. */
async function unparkPages(s: WorkflowStore, f: Fence, limit: number) {
  const pages: { results: readonly ItemResult<string>[]; pausing: number; cursor: string | undefined }[] = [];
  let cursor: string | undefined;
  do {
    const page = await s.unparkPage!(f, { limit, cursor });
    pages.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return pages;
}

/** Ids that test the ordering and the quoting: JSON's specials, SQL's, spaces, BMP and astral characters. */
const ODD_IDS = [
  'plain',
  "it's",
  'say "hi"',
  'back\\slash',
  'new\nline',
  'tab\there',
  ' leading space',
  '%_like',
  '[bracket]',
  '{"json":1}',
  'é-accent',
  'É-upper',
  '日本語',
  '\u{1F600}-emoji',
  '\uE000-private',
  '\uFFFD-replacement',
  'Zed',
  'a'.repeat(300),
  '0',
  '10',
  '9',
];

/** A host table with `running`, `paused`, `pausing` and finished workflows among them, in two copies. */
function twinHosts(ids: readonly string[], schema?: string) {
  const states = ['running', 'running', 'paused', 'succeeded', 'running', 'pausing'];
  const data = ids.map((id, i): [string, string] => [id, states[i % states.length] as string]);
  const a = hostDatabase(schema);
  const b = hostDatabase(schema);
  insert(a.db, data);
  insert(b.db, data);
  return { a: a.db, b: b.db, data };
}

afterEach(() => {
  vi.restoreAllMocks();
});

forEachDriver(() => {
  describe('SqliteWorkflowStore parkPage()', () => {
    it('a listing that took long (running workflows sparse) writes its page id by id, with the same outcomes', async () => {
      const { db } = hostDatabase();
      const ids = Array.from({ length: 12 }, (_, i) => `w${String(i).padStart(2, '0')}`);
      insert(
        db,
        ids.map((id) => [id, 'running']),
      );
      const isListing = (sql: string): boolean => sql.startsWith('SELECT t.') && sql.includes('LIMIT ?');
      // The first page takes long to list, as a listing that walked many finished workflows would.
      const recorded = slowOnce(db, isListing);
      const s = store({
        database: recorded.db,
        table: 'workflows',
        statuses: { running: 'running', paused: 'paused' },
      });
      const pages = await parkPages(s, fence(1n), 4);
      expect(pages.flatMap((p) => p.results.map((r) => r.outcome))).toEqual(ids.map(() => 'paused'));
      expect(Object.values(statuses(db))).toEqual(ids.map(() => 'paused'));
      expect(marks(db)).toEqual(ids);
      // The first page by its ids (no write by range), the next two by their ranges.
      const byRange = recorded.ran.filter((sql) => /^(INSERT|UPDATE)/.test(sql) && sql.includes('<= ?'));
      expect(recorded.ran.filter(isListing)).toHaveLength(3);
      expect(byRange).toHaveLength(4);
    });

    it('lists the pages listActive() lists, with the same cursors, and parks each: marks and pause together', async () => {
      const ids = Array.from({ length: 60 }, (_, i) => `w${String(i).padStart(3, '0')}`);
      for (const limit of [1, 2, 7, 20, 59, 60, 61, 500]) {
        const { a, b } = twinHosts(ids);
        const listed = await pagesOf((o) => store({ database: a, table: 'workflows' }).listActive(o), limit);
        const s = store({ database: b, table: 'workflows' });
        const parked = await parkPages(s, fence(3n), limit);
        expect(parked.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
        expect(parked.map((p) => p.results.map((r) => r.id))).toEqual(listed.map((p) => p.items));
        expect(parked.flatMap((p) => p.results.map((r) => r.outcome))).toEqual(
          listed.flatMap((p) => p.items.map(() => 'pausing')),
        );
        const running = listed.flatMap((p) => p.items);
        expect(marks(b)).toEqual(running);
        for (const id of running) expect(statuses(b)[id]).toBe('pausing');
        expect(markRows(b)[0]).toEqual({ id: running[0], member_id: 'm1', token: 3 });
        // the others untouched
        expect(Object.values(statuses(b)).filter((s) => s === 'running')).toEqual([]);
        expect(rows(b).filter((r) => !running.includes(String(r.id)))).toEqual(
          rows(a).filter((r) => !running.includes(String(r.id))),
        );
        // nothing left: a pass over the table finds nothing
        expect(await s.parkPage!(fence(3n), { limit })).toEqual({ results: [], cursor: undefined });
      }
    });

    it('answers `paused` without a pausing status, and replaces a stale mark on a running workflow', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['a', 'running'],
        ['b', 'running'],
        ['c', 'paused'],
      ]);
      const s = store({
        database: db,
        table: 'workflows',
        statuses: { running: 'running', paused: 'paused' },
      });
      await s.listActive({ limit: 1 }); // set up
      db.prepare("INSERT INTO graceful_drain_marks VALUES ('b', 'old', 1, 0)").run();
      expect(await s.parkPage(fence(5n), { limit: 10 })).toEqual({
        results: [
          { id: 'a', outcome: 'paused' },
          { id: 'b', outcome: 'paused' },
        ],
        cursor: undefined,
      });
      expect(markRows(db)).toEqual([
        { id: 'a', member_id: 'm1', token: 5 },
        { id: 'b', member_id: 'm1', token: 5 },
      ]);
      expect(statuses(db)).toEqual({ a: 'paused', b: 'paused', c: 'paused' });
    });

    it('odd ids: the same pages as listActive(), each one parked and marked under its own id', async () => {
      const { a, b } = twinHosts(ODD_IDS);
      for (const limit of [1, 4, 100]) {
        const listed = await pagesOf((o) => store({ database: a, table: 'workflows' }).listActive(o), limit);
        const { db } = hostDatabase();
        insert(
          db,
          rows(b).map((r) => [String(r.id), r.status]),
        );
        const parked = await parkPages(store({ database: db, table: 'workflows' }), fence(1n), limit);
        expect(parked.map((p) => p.results.map((r) => r.id))).toEqual(listed.map((p) => p.items));
        expect(parked.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
        const running = listed.flatMap((p) => p.items);
        expect(running.length).toBe(ODD_IDS.filter((_, i) => [0, 1, 4].includes(i % 6)).length);
        expect([...marks(db)].sort()).toEqual([...running].sort());
        for (const id of running) expect(statuses(db)[id]).toBe('pausing');
      }
    });

    it('integer ids, a NOCASE id and an id column without affinity: the same pages as listActive(), each parked', async () => {
      const schemas = [
        'CREATE TABLE workflows (id INTEGER PRIMARY KEY, status TEXT NOT NULL)',
        'CREATE TABLE workflows (id INTEGER NOT NULL UNIQUE, status TEXT NOT NULL)',
        'CREATE TABLE workflows (id TEXT COLLATE NOCASE PRIMARY KEY, status TEXT NOT NULL)',
        'CREATE TABLE workflows (id PRIMARY KEY, status TEXT NOT NULL)',
        'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL) WITHOUT ROWID',
      ];
      const ids = [...Array.from({ length: 25 }, (_, i) => String(i * 7 + 1)), 'B', 'a', 'C'];
      for (const schema of schemas) {
        const integer = schema.includes('INTEGER');
        const { a, b } = twinHosts(integer ? ids.filter((id) => /^\d+$/.test(id)) : ids, schema);
        for (const limit of [1, 3, 50]) {
          const listed = await pagesOf(
            (o) => store({ database: a, table: 'workflows' }).listActive(o),
            limit,
          );
          const { db } = hostDatabase(schema);
          insert(
            db,
            rows(b).map((r) => [r.id, r.status]),
          );
          const parked = await parkPages(store({ database: db, table: 'workflows' }), fence(1n), limit);
          expect(parked.map((p) => p.results.map((r) => r.id))).toEqual(listed.map((p) => p.items));
          expect(parked.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
          const running = listed.flatMap((p) => p.items);
          expect(running.length).toBeGreaterThan(3);
          expect(parked.flatMap((p) => p.results.map((r) => r.outcome))).toEqual(
            running.map(() => 'pausing'),
          );
          expect([...marks(db)].sort()).toEqual([...running].sort());
          for (const id of running) expect(statuses(db)[id]).toBe('pausing');
          // and back: the unpark pages resume them all
          db.exec("UPDATE workflows SET status = 'paused' WHERE status = 'pausing'");
          const unparked = await unparkPages(store({ database: db, table: 'workflows' }), fence(2n), limit);
          expect(unparked.flatMap((p) => p.results.map((r) => r.outcome))).toEqual(
            running.map(() => 'resumed'),
          );
          expect(marks(db)).toEqual([]);
          for (const id of running) expect(statuses(db)[id]).toBe('running');
        }
      }
    });

    it('running workflows few among many finished ones: the same pages as listActive(), each parked', async () => {
      const ids = Array.from({ length: 30_000 }, (_, i) => `w${String(i).padStart(6, '0')}`);
      const running = ids.filter((_, i) => i % 997 === 5);
      const data = ids.map((id): [string, string] => [id, running.includes(id) ? 'running' : 'succeeded']);
      const a = hostDatabase().db;
      const b = hostDatabase().db;
      insert(a, data);
      insert(b, data);
      const listed = await pagesOf((o) => store({ database: a, table: 'workflows' }).listActive(o), 4);
      const parked = await parkPages(store({ database: b, table: 'workflows' }), fence(1n), 4);
      expect(parked.map((p) => p.results.map((r) => r.id))).toEqual(listed.map((p) => p.items));
      expect(parked.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
      expect(marks(b)).toEqual(running);
      expect(
        b.prepare("SELECT id FROM workflows WHERE status = 'pausing' ORDER BY id").pluck().all(),
      ).toEqual(running);
    });

    it('a workflow the host keeps from being paused (its own trigger) is skipped and left unmarked: the exact path', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['a', 'running'],
        ['b', 'running'],
        ['c', 'running'],
      ]);
      db.exec(`CREATE TRIGGER keep_b BEFORE UPDATE OF status ON workflows WHEN OLD.id = 'b'
        BEGIN SELECT RAISE(IGNORE); END`);
      const s = store({ database: db, table: 'workflows' });
      expect(await s.parkPage(fence(1n), { limit: 10 })).toEqual({
        results: [
          { id: 'a', outcome: 'pausing' },
          { id: 'b', outcome: 'skipped' },
          { id: 'c', outcome: 'pausing' },
        ],
        cursor: undefined,
      });
      expect(marks(db)).toEqual(['a', 'c']);
      expect(statuses(db)).toEqual({ a: 'pausing', b: 'running', c: 'pausing' });
    });

    it('a stale token rejects with StaleTokenError and writes nothing', async () => {
      const { db } = hostDatabase();
      insert(db, [
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const s = store({ database: db, table: 'workflows' });
      await s.raiseFence(fence(9n));
      const before = rows(db);
      await expect(s.parkPage(fence(8n), { limit: 10 })).rejects.toThrowError(StaleTokenError);
      await expect(s.parkPage(fence(8n), { limit: 1, cursor: 'a' })).rejects.toThrowError(StaleTokenError);
      expect(rows(db)).toEqual(before);
      expect(marks(db)).toEqual([]);
      expect(highest(db)).toBe(9);
      // an equal or higher token, or none, parks
      expect((await s.parkPage(fence(9n), { limit: 1 })).results).toEqual([{ id: 'a', outcome: 'pausing' }]);
      expect((await s.parkPage(fence(), { limit: 1 })).results).toEqual([{ id: 'b', outcome: 'pausing' }]);
      expect(highest(db)).toBe(9);
    });

    it('raises the fence: a page parked under a higher token rejects a later lower one', async () => {
      const { db } = hostDatabase();
      insert(db, [['a', 'running']]);
      const s = store({ database: db, table: 'workflows' });
      await s.parkPage(fence(4n), { limit: 10 });
      expect(highest(db)).toBe(4);
      await expect(s.unparkPage(fence(3n), { limit: 10 })).rejects.toThrowError(StaleTokenError);
    });

    it('an aborted signal rejects with its reason, having written nothing, the fence included', async () => {
      const { db } = hostDatabase();
      insert(db, [['a', 'running']]);
      const s = store({ database: db, table: 'workflows' });
      await s.listActive({ limit: 1 }); // set up
      const controller = new AbortController();
      const reason = new Error('stop');
      controller.abort(reason);
      await expect(s.parkPage(fence(2n), { limit: 10, signal: controller.signal })).rejects.toBe(reason);
      await expect(s.unparkPage(fence(2n), { limit: 10, signal: controller.signal })).rejects.toBe(reason);
      expect(statuses(db)).toEqual({ a: 'running' });
      expect(marks(db)).toEqual([]);
      expect(highest(db)).toBeUndefined();
    });

    it('checks its arguments as listActive() and park() do', async () => {
      const { db } = hostDatabase();
      const s = store({ database: db, table: 'workflows' });
      await expect(s.parkPage(fence(1n), { limit: 0 })).rejects.toThrowError(/limit/);
      await expect(s.parkPage({ memberId: '', token: 1n }, { limit: 1 })).rejects.toThrowError(/memberId/);
      await expect(
        s.unparkPage(fence(1n), { limit: 1, cursor: 3 as unknown as string }),
      ).rejects.toThrowError(/cursor/);
      await expect(
        s.unparkPage(fence(1n), { limit: 1, extra: true } as unknown as { limit: number }),
      ).rejects.toThrowError(/extra/);
    });
  });

  describe('SqliteWorkflowStore unparkPage()', () => {
    /** Workflows parked by a store and paused by the host, some still pausing, on a store on the same table. */
    async function parked(ids: readonly string[], pausingEvery = 0) {
      const { db, path } = hostDatabase();
      insert(
        db,
        ids.map((id): [string, string] => [id, 'running']),
      );
      const s = store({ database: db, table: 'workflows' });
      await parkPages(s, fence(1n), 1000);
      db.exec("UPDATE workflows SET status = 'paused'");
      if (pausingEvery > 0) {
        const keep = db.prepare("UPDATE workflows SET status = 'pausing' WHERE id = ?");
        ids.forEach((id, i) => i % pausingEvery === 1 && keep.run(id));
      }
      return { db, s, path };
    }

    it('lists the pages listParked() lists, with the same cursors: the pausing ones counted and left parked', async () => {
      const ids = Array.from({ length: 50 }, (_, i) => `w${String(i).padStart(3, '0')}`);
      for (const limit of [1, 2, 3, 7, 49, 50, 51]) {
        for (const every of [0, 3, 17]) {
          const { db, s } = await parked(ids, every);
          const listed = await pagesOf<ParkedWorkflow>((o) => s.listParked(o), limit);
          const pages = await unparkPages(s, fence(2n), limit);
          expect(pages.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
          expect(pages.map((p) => p.pausing)).toEqual(
            listed.map((p) => p.items.filter((w) => w.state === 'pausing').length),
          );
          expect(pages.map((p) => p.results)).toEqual(
            listed.map((p) =>
              p.items.filter((w) => w.state !== 'pausing').map((w) => ({ id: w.id, outcome: 'resumed' })),
            ),
          );
          const pausing = ids.filter((_, i) => every > 0 && i % every === 1);
          expect(marks(db)).toEqual(pausing);
          for (const id of ids) expect(statuses(db)[id]).toBe(pausing.includes(id) ? 'pausing' : 'running');
          // once the host is done pausing them, the next round resumes them
          db.exec("UPDATE workflows SET status = 'paused' WHERE status = 'pausing'");
          const again = await unparkPages(s, fence(3n), limit);
          expect(again.flatMap((p) => p.results.map((r) => r.id))).toEqual(pausing);
          expect(again.every((p) => p.pausing === 0)).toBe(true);
          expect(marks(db)).toEqual([]);
          expect(Object.values(statuses(db)).every((status) => status === 'running')).toBe(true);
        }
      }
    });

    it('a mark on a workflow in another state is cleared and skipped, nothing else done', async () => {
      const { db, s } = await parked(['a', 'b', 'c', 'd']);
      // b: a stale mark on a running workflow (the trigger was missing when a user resumed it);
      // d: a mark whose workflow row is gone
      db.exec('DROP TRIGGER graceful_drain_marks_unpaused; DROP TRIGGER graceful_drain_marks_deleted');
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'b'; DELETE FROM workflows WHERE id = 'd'");
      const s2 = store({ database: db, table: 'workflows' }); // installs the triggers again
      expect(await s2.unparkPage(fence(2n), { limit: 10 })).toEqual({
        results: [
          { id: 'a', outcome: 'resumed' },
          { id: 'b', outcome: 'skipped' },
          { id: 'c', outcome: 'resumed' },
          { id: 'd', outcome: 'skipped' },
        ],
        pausing: 0,
        cursor: undefined,
      });
      expect(marks(db)).toEqual([]);
      expect(statuses(db)).toEqual({ a: 'running', b: 'running', c: 'running' });
      expect(await s.listParked({ limit: 10 })).toEqual({ items: [], cursor: undefined });
    });

    it("never resumes a user's pause: a mark notePaused() dropped, or one the trigger dropped", async () => {
      for (const limit of [1, 2, 10]) {
        const { db, s } = await parked(['a', 'b', 'c', 'd', 'e']);
        // a: the user paused it while parked; c: resumed and paused again by a user (the trigger drops the
        // mark on the way); e: the user paused it, with the host's own audit trigger writing rows too
        db.exec(`CREATE TABLE audit (id TEXT, at INTEGER);
          CREATE TRIGGER audit_update AFTER UPDATE ON workflows BEGIN INSERT INTO audit VALUES (NEW.id, 0); END;`);
        expect(await s.notePaused(['a', 'e'])).toEqual([
          { id: 'a', outcome: 'released' },
          { id: 'e', outcome: 'released' },
        ]);
        db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c'");
        db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'c'");
        const pages = await unparkPages(s, fence(2n), limit);
        expect(pages.flatMap((p) => p.results)).toEqual([
          { id: 'b', outcome: 'resumed' },
          { id: 'd', outcome: 'resumed' },
        ]);
        expect(statuses(db)).toEqual({ a: 'paused', b: 'running', c: 'paused', d: 'running', e: 'paused' });
        expect(marks(db)).toEqual([]);
      }
    });

    it('without the trigger, still clears the marks of the workflows it resumed', async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      db.exec('DROP TRIGGER graceful_drain_marks_unpaused');
      expect((await s.unparkPage(fence(2n), { limit: 2 })).results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
      ]);
      expect(marks(db)).toEqual(['c']);
      expect(statuses(db)).toEqual({ a: 'running', b: 'running', c: 'paused' });
    });

    // A page's UPDATE runs with the trigger `_unpaused` quiet (the page's marks go in one DELETE): these
    // pin what must hold around it.
    it("a host's trigger that resumes another parked workflow during a page: its mark goes too", async () => {
      const { db, s } = await parked(['a', 'b', 'c', 'd']);
      db.exec(`CREATE TRIGGER resume_d AFTER UPDATE OF status ON workflows
        WHEN NEW.id = 'a' AND NEW.status = 'running' BEGIN UPDATE workflows SET status = 'running' WHERE id = 'd'; END`);
      expect((await s.unparkPage(fence(2n), { limit: 2 })).results).toEqual([
        { id: 'a', outcome: 'resumed' },
        { id: 'b', outcome: 'resumed' },
      ]);
      expect(marks(db)).toEqual(['c']);
      // A user pauses d again: that pause is the user's, the next page leaves it.
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'd'");
      expect((await unparkPages(s, fence(2n), 2)).flatMap((p) => p.results)).toEqual([
        { id: 'c', outcome: 'resumed' },
      ]);
      expect(statuses(db)).toEqual({ a: 'running', b: 'running', c: 'running', d: 'paused' });
      expect(marks(db)).toEqual([]);
    });

    it("the host's next update on the same handle drops a mark as before, after a page", async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      await s.unparkPage(fence(2n), { limit: 1 });
      // A user resumes c, then pauses it again, on the store's own handle.
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c'");
      db.prepare("UPDATE workflows SET status = 'paused' WHERE id = ?").run('c');
      expect(marks(db)).toEqual(['b']);
      await unparkPages(s, fence(2n), 1);
      expect(statuses(db)).toEqual({ a: 'running', b: 'running', c: 'paused' });
    });

    it("a page whose UPDATE fails leaves the host's next update dropping a mark as before", async () => {
      const { db, s } = await parked(['a', 'b', 'c']);
      db.exec(`CREATE TRIGGER refuse_b BEFORE UPDATE OF status ON workflows
        WHEN OLD.id = 'b' AND NEW.status = 'running' BEGIN SELECT RAISE(ABORT, 'b is held'); END`);
      await expect(s.unparkPage(fence(2n), { limit: 2 })).rejects.toThrowError(/b is held/);
      expect(marks(db)).toEqual(['a', 'b', 'c']);
      db.exec("UPDATE workflows SET status = 'running' WHERE id = 'c'");
      expect(marks(db)).toEqual(['a', 'b']);
    });

    it('over a host table with ids not unique, a page that counts out keeps the mark of one still pausing', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id TEXT, status TEXT NOT NULL)');
      insert(db, [
        ['a', 'running'],
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const s = store({ database: db, table: 'workflows' });
      await parkPages(s, fence(1n), 10);
      db.exec("UPDATE workflows SET status = 'paused' WHERE id = 'a'");
      // Two rows of a resumed: as many as the page's marks, though b is still pausing.
      await s.unparkPage(fence(2n), { limit: 10 });
      expect(marks(db)).toEqual(['b']);
      expect(db.prepare("SELECT status FROM workflows WHERE id = 'b'").pluck().get()).toBe('pausing');
    });

    it('odd ids: every one resumed and unmarked, page by page', async () => {
      for (const limit of [1, 5, 100]) {
        const { db, s } = await parked(ODD_IDS, 4);
        const listed = await pagesOf<ParkedWorkflow>((o) => s.listParked(o), limit);
        const pages = await unparkPages(s, fence(2n), limit);
        expect(pages.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
        expect(pages.flatMap((p) => p.results.map((r) => r.id))).toEqual(
          listed.flatMap((p) => p.items.filter((w) => w.state !== 'pausing').map((w) => w.id)),
        );
        const pausing = ODD_IDS.filter((_, i) => i % 4 === 1);
        expect(pages.reduce((n, p) => n + p.pausing, 0)).toBe(pausing.length);
        expect([...marks(db)].sort()).toEqual([...pausing].sort());
        for (const id of ODD_IDS) expect(statuses(db)[id]).toBe(pausing.includes(id) ? 'pausing' : 'running');
      }
    });

    it('a stale token rejects with StaleTokenError and writes nothing', async () => {
      const { db, s } = await parked(['a', 'b'], 0);
      await s.raiseFence(fence(9n));
      await expect(s.unparkPage(fence(8n), { limit: 10 })).rejects.toThrowError(StaleTokenError);
      await expect(s.unparkPage(fence(8n), { limit: 1, cursor: 'a' })).rejects.toThrowError(StaleTokenError);
      expect(statuses(db)).toEqual({ a: 'paused', b: 'paused' });
      expect(marks(db)).toEqual(['a', 'b']);
      expect(highest(db)).toBe(9);
    });

    it('on a busy database, stops at abort and never commits later, even once the lock is free', async () => {
      const { db, path } = await parked(['a', 'b']);
      const s = store({ driver: sqliteDriver(), path, table: 'workflows', busyTimeoutMs: 5 });
      await s.listParked({ limit: 1 }); // set up
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        const blocker = openDatabase(path);
        blocker.exec('BEGIN IMMEDIATE');
        const controller = new AbortController();
        const outcomes: unknown[] = ['pending', 'pending'];
        [
          s.unparkPage(fence(5n), { limit: 10, signal: controller.signal }),
          s.parkPage(fence(5n), { limit: 10, signal: controller.signal }),
        ].forEach((call, i) =>
          call.then(
            () => (outcomes[i] = 'committed'),
            (error: unknown) => (outcomes[i] = error),
          ),
        );
        await vi.advanceTimersByTimeAsync(20);
        expect(outcomes).toEqual(['pending', 'pending']);
        const reason = new Error('given up');
        controller.abort(reason);
        await vi.advanceTimersByTimeAsync(0);
        expect(outcomes).toEqual([reason, reason]);
        blocker.exec('COMMIT');
        blocker.close();
        await vi.advanceTimersByTimeAsync(10_000);
        expect(outcomes).toEqual([reason, reason]);
        expect(statuses(db)).toEqual({ a: 'paused', b: 'paused' });
        expect(marks(db)).toEqual(['a', 'b']);
        expect(highest(db)).toBe(1);
      } finally {
        vi.useRealTimers();
      }
    });
  });

  describe('SqliteWorkflowStore pages on a busy database', () => {
    it('are retried while another connection holds the write lock, and written once it is free', async () => {
      const { db, path } = hostDatabase();
      insert(db, [
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const s = store({ driver: sqliteDriver(), path, table: 'workflows', busyTimeoutMs: 5 });
      await s.listActive({ limit: 1 }); // set up
      const blocker = openDatabase(path);
      blocker.exec('BEGIN IMMEDIATE');
      let settled = false;
      const parking = s.parkPage(fence(1n), { limit: 10 }).finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(settled).toBe(false);
      expect(statuses(db)).toEqual({ a: 'running', b: 'running' });
      blocker.exec('COMMIT');
      blocker.close();
      expect((await parking).results.map((r) => r.outcome)).toEqual(['pausing', 'pausing']);
      expect(marks(db)).toEqual(['a', 'b']);
      db.exec("UPDATE workflows SET status = 'paused'");
      const again = openDatabase(path);
      again.exec('BEGIN IMMEDIATE');
      const unparking = s.unparkPage(fence(2n), { limit: 10 });
      await new Promise((resolve) => setTimeout(resolve, 60));
      again.exec('COMMIT');
      again.close();
      expect((await unparking).results.map((r) => r.outcome)).toEqual(['resumed', 'resumed']);
      expect(statuses(db)).toEqual({ a: 'running', b: 'running' });
      expect(marks(db)).toEqual([]);
    });
  });

  describe('SqliteWorkflowStore pages of an evicted incarnation', () => {
    it('reject with EvictedMemberError before writing anything, the fence included', async () => {
      const { db } = hostDatabase(
        'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL, owner TEXT)',
      );
      db.exec("INSERT INTO workflows VALUES ('a', 'running', 'm1'), ('b', 'paused', 'm1')");
      const options: SqliteWorkflowStoreOptions = { database: db, table: 'workflows', ownerColumn: 'owner' };
      const s = store(options);
      await s.park(['a'], fence(1n)); // a: pausing and marked
      db.exec(
        "UPDATE workflows SET status = 'paused' WHERE id = 'a'; UPDATE workflows SET status = 'running' WHERE id = 'b'",
      );
      await s.evictMembers!('g', [{ memberId: 'm1', incarnation: 'i1' }], { memberId: 'm2', token: 2n });
      const before = rows(db);
      await expect(s.parkPage(fence(3n, 'i1'), { limit: 10 })).rejects.toThrowError(EvictedMemberError);
      await expect(s.unparkPage(fence(3n, 'i1'), { limit: 10 })).rejects.toThrowError(EvictedMemberError);
      expect(rows(db)).toEqual(before);
      expect(marks(db)).toEqual(['a']);
      expect(highest(db)).toBe(2);
      // another incarnation of the same member is not affected
      expect((await s.parkPage(fence(3n, 'i2'), { limit: 10 })).results).toEqual([
        { id: 'b', outcome: 'pausing' },
      ]);
      expect((await s.unparkPage(fence(3n, 'i2'), { limit: 10 })).results).toEqual([
        { id: 'a', outcome: 'resumed' },
      ]);
    });
  });

  describe('DrainController with the SQLite store', () => {
    it('a last member parks every running workflow page by page, and the next start resumes them all', async () => {
      const { db, path } = hostDatabase();
      const ids = Array.from({ length: 250 }, (_, i) => `w${String(i).padStart(4, '0')}`);
      insert(db, [
        ...ids.map((id): [string, string] => [id, 'running']),
        ['user', 'paused'],
        ['done', 'succeeded'],
        ...ODD_IDS.map((id): [string, string] => [id, 'running']),
      ]);
      const running = [...ids, ...ODD_IDS];
      const options = {
        driver: sqliteDriver(),
        path,
        table: 'workflows',
        statuses: { running: 'running', paused: 'paused' },
      };
      const backend = new MemoryBackend();
      const first = store(options);
      const parkPage = vi.spyOn(first, 'parkPage');
      const a = member({ memberId: 'a', coordinator: memory(backend), store: first, batchSize: 7 });
      await a.start();
      await a.whenResumed();
      const report = await a.shutdown();
      expect(report).toMatchObject({ handOff: 'parked', parked: running.length });
      expect(parkPage.mock.calls.length).toBeGreaterThan(running.length / 7);
      expect(marks(db).length).toBe(running.length);
      expect(statuses(db)).toMatchObject({ user: 'paused', done: 'succeeded' });
      expect(rows(db).filter((r) => r.status === 'running')).toEqual([]);

      const second = store(options);
      const unparkPage = vi.spyOn(second, 'unparkPage');
      const b = member({ memberId: 'b', coordinator: memory(backend), store: second, batchSize: 7 });
      await b.start();
      expect(await b.whenResumed()).toMatchObject({ resumed: running.length, complete: true, errors: [] });
      expect(unparkPage.mock.calls.length).toBeGreaterThan(running.length / 7);
      expect(marks(db)).toEqual([]);
      const after = statuses(db);
      expect(after).toMatchObject({ user: 'paused', done: 'succeeded' });
      for (const id of running) expect(after[id]).toBe('running');
    });
  });
});
