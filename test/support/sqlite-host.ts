/**
 * The host databases and stores of the SQLite store tests, each in a temporary directory and closed
 * after each test (the directory is removed after the file's tests). Call `sqliteHost()` at the top of
 * a test file, outside any block.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, vi } from 'vitest';
import { SqliteWorkflowStore, type SqliteWorkflowStoreOptions } from '../../src/adapters/sqlite/index.js';
import type { Fence, ItemResult, WorkflowStore } from '../../src/workflow-store.js';
import { randomId } from '../../src/internal/time.js';
import { openDatabase, type TestDatabase } from './sqlite.js';

export interface SqliteHost {
  /** The temporary directory the database files are in. */
  readonly dir: string;
  /** A fresh database file with the host's table, by default `workflows (id TEXT, status TEXT)`. */
  hostDatabase(schema?: string): { db: TestDatabase; path: string };
  /** A store, closed after the test. */
  store(options: SqliteWorkflowStoreOptions): SqliteWorkflowStore;
}

/**
 * `db` behind a proxy that records the SQL of every statement it runs (its handle otherwise untouched), so
 * that a test can tell which way a page went; `before` is called with each statement's SQL before it runs.
 */
export function recording(
  db: TestDatabase,
  before?: (sql: string) => void,
): { readonly db: TestDatabase; readonly ran: string[] } {
  const ran: string[] = [];
  const wrap = (statement: object, sql: string): object =>
    new Proxy(statement, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]): unknown => {
          if (key === 'run' || key === 'get' || key === 'all' || key === 'iterate') {
            ran.push(sql);
            before?.(sql);
          }
          const result: unknown = value.apply(target, args);
          return result === target ? wrap(target, sql) : result;
        };
      },
    });
  const proxied = new Proxy(db, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (key === 'prepare' && typeof value === 'function') {
        return (sql: string): object => wrap(value.call(target, sql) as object, sql);
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { db: proxied, ran };
}

/**
 * `db` recorded as {@link recording} does, with the clock the store reads (`performance.now()`) made to
 * jump by a second as the first statement that `slow` matches runs: a statement that took long, without
 * having to build data that slow. Undo the clock with `vi.restoreAllMocks()`.
 */
export function slowOnce(
  db: TestDatabase,
  slow: (sql: string) => boolean,
): { readonly db: TestDatabase; readonly ran: string[] } {
  const real = performance.now.bind(performance);
  let offset = 0;
  let pending = true;
  vi.spyOn(performance, 'now').mockImplementation(() => real() + offset);
  return recording(db, (sql) => {
    if (pending && slow(sql)) {
      pending = false;
      offset += 1_000;
    }
  });
}

/** Inserts `rows` (id, status) into the host's table in one transaction. */
export function insert(db: TestDatabase, rows: [string | number, string][], table = 'workflows'): void {
  const statement = db.prepare(`INSERT INTO ${table} VALUES (?, ?)`);
  db.transaction(() => rows.forEach((row) => statement.run(...row))).immediate();
}

/** The status of the host's workflow `id`. */
export function statusOf(db: TestDatabase, id: string | number): unknown {
  return db.prepare('SELECT status FROM workflows WHERE id = ?').pluck().get(id);
}

/** The ids of the store's marks, in order. */
export function markIds(db: TestDatabase, table = 'graceful_drain_marks'): unknown[] {
  return db.prepare(`SELECT id FROM ${table} ORDER BY id`).pluck().all();
}

/** The status of every row of the host's table, by id (as text), in id order. */
export function statusesById(db: TestDatabase, table = 'workflows'): Record<string, unknown> {
  const rows = db.prepare(`SELECT id, status FROM ${table} ORDER BY id`).all() as {
    id: unknown;
    status: unknown;
  }[];
  return Object.fromEntries(rows.map((r) => [String(r.id), r.status]));
}

/** Parks every running workflow through `parkPage()`, page after page. */
export async function parkAllPages(s: WorkflowStore, f: Fence, limit = 1000): Promise<void> {
  let cursor: string | undefined;
  do cursor = (await s.parkPage!(f, { limit, cursor })).cursor;
  while (cursor !== undefined);
}

/** Unparks through `unparkPage()` until no page is left: every result, the pausing count, the pages. */
export async function unparkAllPages(s: WorkflowStore, f: Fence, limit: number) {
  const results: ItemResult<string>[] = [];
  let pausing = 0;
  let pages = 0;
  let cursor: string | undefined;
  do {
    const page = await s.unparkPage!(f, { limit, cursor });
    results.push(...page.results);
    pausing += page.pausing;
    cursor = page.cursor;
    pages++;
  } while (cursor !== undefined);
  return { results, pausing, pages };
}

/** Registers the hooks that close what the helpers opened; `prefix` names the temporary directory. */
export function sqliteHost(prefix: string): SqliteHost {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const databases: TestDatabase[] = [];
  const stores: SqliteWorkflowStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    for (const db of databases.splice(0)) if (db.open) db.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    hostDatabase(schema = 'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)') {
      const path = join(dir, `${randomId()}.db`);
      const db = openDatabase(path);
      databases.push(db);
      db.exec(schema);
      return { db, path };
    },
    store(options) {
      const s = new SqliteWorkflowStore(options);
      stores.push(s);
      return s;
    },
  };
}
