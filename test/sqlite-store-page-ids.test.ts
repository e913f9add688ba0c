/**
 * parkPage() writes a page by the range of ids it listed only where each id's text is the value's own
 * (text or integer ids): REAL values (in a NUMERIC column) and NULL ids are written one by one, as listActive()
 * then park() would; a REAL id column is refused, and so is a BLOB id.
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
  describe('REAL ids', () => {
    it('a REAL id column is refused at first use, naming the option, the column and its type', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id REAL PRIMARY KEY, status TEXT NOT NULL)');
      await expect(store({ database: db, table: 'workflows' }).listActive({ limit: 1 })).rejects.toThrow(
        'Expected `idColumn` to name a column of text or integer ids, got "id", declared "REAL" (REAL affinity) in "workflows"',
      );
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
  describe('a BLOB id', () => {
    it('is refused with an error naming idColumn, rather than listed as its bytes and paged forever', async () => {
      // A TEXT column takes a BLOB as it is. Listed as String(bytes) ('97,98'), it became a cursor every
      // BLOB sorts after: each page listed the same BLOBs again until the budget ran out.
      const { db } = hostDatabase('CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)');
      db.prepare("INSERT INTO workflows VALUES ('a', 'running')").run();
      db.prepare("INSERT INTO workflows VALUES (X'6162', 'running')").run();
      const s = store({ database: db, table: 'workflows' });
      const message = /`idColumn`.*BLOB/;
      await expect(s.listActive({ limit: 10 })).rejects.toThrow(message);
      await expect(s.parkPage(fence(1n), { limit: 10 })).rejects.toThrow(message);
    });
  });
});
