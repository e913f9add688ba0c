/**
 * parkPage() writes a page by the range of ids it listed only where each id's text is the value's own
 * (text or integer ids): REAL and NULL ids are written one by one, as listActive() then park() would.
 */
import { describe, expect, it } from 'vitest';
import type { Fence } from '../src/workflow-store.js';
import { forEachDriver, type TestDatabase } from './support/sqlite.js';
import { insert, sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-page-ids-');
const fence = (token?: bigint): Fence => ({ memberId: 'm1', token });

const marks = (db: TestDatabase) =>
  db.prepare('SELECT id FROM graceful_drain_marks ORDER BY id').pluck().all() as string[];

forEachDriver(() => {
  describe('parkPage() on a REAL id column', () => {
    it("a user's pause, noted by notePaused() under the id the page listed, is never undone", async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id REAL PRIMARY KEY, status TEXT NOT NULL)');
      insert(db, [
        [1, 'running'],
        [2, 'running'],
        [3, 'running'],
      ]);
      const s = store({ database: db, table: 'workflows' });
      const listed = (await s.listActive({ limit: 10 })).items;
      const page = await s.parkPage(fence(1n), { limit: 10 });
      expect(page.results.map((r) => r.id)).toEqual(listed);
      db.exec("UPDATE workflows SET status = 'paused'");
      // A user pauses workflow 2 (already paused: the host's own pause path calls notePaused).
      const id = listed[1] as string;
      await s.notePaused([id]);
      await s.unparkPage(fence(2n), { limit: 10 });
      expect(db.prepare('SELECT status FROM workflows WHERE id = 2').pluck().get()).toBe('paused');
      // (why: the page wrote its marks under CAST(id AS TEXT), '2.0', not under the id it reported, '2')
    });

    it('parks under the same mark ids as listActive() then park()', async () => {
      const schema = 'CREATE TABLE workflows (id NUMERIC PRIMARY KEY, status TEXT NOT NULL)';
      const rows: [number, string][] = [
        [1e21, 'running'],
        [2.5, 'running'],
        [1e-7, 'running'],
      ];
      const a = hostDatabase(schema).db;
      const b = hostDatabase(schema).db;
      insert(a, rows);
      insert(b, rows);
      const sa = store({ database: a, table: 'workflows' });
      const ids = (await sa.listActive({ limit: 10 })).items;
      await sa.park(ids, fence(1n));
      await store({ database: b, table: 'workflows' }).parkPage(fence(1n), { limit: 10 });
      expect(marks(b)).toEqual(marks(a));
    });
  });
  describe('parkPage() when a listed id is NULL', () => {
    it('parks nothing outside the page listed, and reports what listActive() then park() report', async () => {
      // A rowid table's TEXT PRIMARY KEY accepts NULL (SQLite's legacy rule): listed first, as 'null'.
      const schema = 'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)';
      const seed = (db: TestDatabase) => {
        db.prepare("INSERT INTO workflows VALUES (NULL, 'running')").run();
        db.prepare("INSERT INTO workflows VALUES ('a', 'running')").run();
      };
      const a = hostDatabase(schema).db;
      const b = hostDatabase(schema).db;
      seed(a);
      seed(b);
      // The pair of calls: the page lists the NULL row ('null'), and park() of it skips it.
      const sa = store({ database: a, table: 'workflows' });
      const listed = await sa.listActive({ limit: 1 });
      const pair = await sa.park(listed.items, fence(1n));
      const page = await store({ database: b, table: 'workflows' }).parkPage(fence(1n), { limit: 1 });
      expect(page.results).toEqual(pair);
      expect(page.cursor).toBe(listed.cursor);
      // 'a' was not in the page: it must stay running and unmarked.
      expect(b.prepare("SELECT status FROM workflows WHERE id = 'a'").pluck().get()).toBe('running');
      expect(marks(b)).toEqual(marks(a));
    });
  });
});
