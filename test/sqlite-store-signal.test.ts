import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteWorkflowStore } from '../src/adapters/sqlite/index.js';
import { ConfigurationError } from '../src/errors.js';
import { randomId } from '../src/internal/time.js';
import { forEachDriver, openDatabase, sqliteDriver, type TestDatabase } from './support/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'gd-sqlite-signal-'));
const databases: TestDatabase[] = [];
const stores: SqliteWorkflowStore[] = [];

/** A host database file with `workflows (id, status)`, a host connection, and a store on its own connection. */
async function setUp(): Promise<{ host: TestDatabase; store: SqliteWorkflowStore; path: string }> {
  const path = join(dir, `${randomId()}.db`);
  const host = openDatabase(path);
  databases.push(host);
  host.pragma('journal_mode = WAL');
  host.exec(
    "CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL); INSERT INTO workflows VALUES ('w1', 'running'), ('w2', 'paused')",
  );
  const store = new SqliteWorkflowStore({
    driver: sqliteDriver(),
    path,
    table: 'workflows',
    busyTimeoutMs: 5,
  });
  stores.push(store);
  await store.listActive({ limit: 1 }); // set-up done: tables and triggers
  return { host, store, path };
}

/** Another connection holding SQLite's write lock, as a busy host transaction would. */
function lockWrites(path: string): TestDatabase {
  const blocker = openDatabase(path);
  databases.push(blocker);
  blocker.exec('BEGIN IMMEDIATE');
  return blocker;
}

/** `value` becomes `'committed'` when `promise` resolves, or its rejection reason. */
function settledState(promise: Promise<unknown>): { value: unknown } {
  const state: { value: unknown } = { value: 'pending' };
  promise.then(
    () => (state.value = 'committed'),
    (error: unknown) => (state.value = error),
  );
  return state;
}

const row = (host: TestDatabase, id: string) =>
  host.prepare('SELECT status FROM workflows WHERE id = ?').pluck().get(id);
const marks = (host: TestDatabase) =>
  host.prepare('SELECT id FROM graceful_drain_marks ORDER BY id').pluck().all();
const highest = (host: TestDatabase) =>
  host.prepare('SELECT highest FROM graceful_drain_marks_fence').pluck().get();

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.splice(0).map((s) => s.close()));
  for (const db of databases.splice(0)) {
    if (db.inTransaction) db.exec('ROLLBACK');
    if (db.open) db.close();
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

forEachDriver(() => {
  describe('SqliteWorkflowStore signal', () => {
    it('park() waiting on a busy database stops at abort and never commits later, even once the lock is free', async () => {
      const { host, store, path } = await setUp();
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const blocker = lockWrites(path);
      const controller = new AbortController();
      // The first attempt runs (and finds the database busy) before park() returns its promise.
      const parking = store.park(['w1'], { memberId: 'm1', token: 7n }, { signal: controller.signal });
      const outcome = settledState(parking);
      const reason = new Error('the shutdown gave up on the park');
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(outcome.value).toBe(reason); // at once, while the lock is still held
      blocker.exec('COMMIT');
      // far past every backoff and the operation timeout: a retry still pending would have run by now
      await vi.advanceTimersByTimeAsync(10_000);
      expect(outcome.value).toBe(reason);
      expect(row(host, 'w1')).toBe('running');
      expect(marks(host)).toEqual([]);
      expect(highest(host)).toBeUndefined();
      // the store still works, under the same token
      expect(await store.park(['w1'], { memberId: 'm1', token: 7n })).toEqual([
        { id: 'w1', outcome: 'pausing' },
      ]);
    });

    it('unpark(), raiseFence() and notePaused() waiting on a busy database stop at abort and write nothing', async () => {
      const { host, store, path } = await setUp();
      await store.park(['w1'], { memberId: 'm1', token: 1n });
      host.exec("UPDATE workflows SET status = 'paused' WHERE id = 'w1'");
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const blocker = lockWrites(path);
      const controller = new AbortController();
      const { signal } = controller;
      const calls = [
        store.unpark(['w1'], { memberId: 'm1', token: 2n }, { signal }),
        store.raiseFence({ memberId: 'm1', token: 3n }, { signal }),
        store.notePaused(['w1'], { signal }),
      ].map(settledState);
      const reason = new Error('given up');
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(calls.map((call) => call.value)).toEqual([reason, reason, reason]);
      blocker.exec('COMMIT');
      await vi.advanceTimersByTimeAsync(10_000);
      expect(row(host, 'w1')).toBe('paused');
      expect(marks(host)).toEqual(['w1']);
      expect(highest(host)).toBe(1);
    });

    it('a call whose signal aborts while the first set-up waits on a busy database rejects at once', async () => {
      const path = join(dir, `${randomId()}.db`);
      const host = openDatabase(path);
      databases.push(host);
      host.exec('CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)');
      const store = new SqliteWorkflowStore({
        driver: sqliteDriver(),
        path,
        table: 'workflows',
        busyTimeoutMs: 5,
      });
      stores.push(store);
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const blocker = lockWrites(path);
      const controller = new AbortController();
      const listing = store
        .listActive({ limit: 1, signal: controller.signal })
        .catch((error: unknown) => error);
      await vi.advanceTimersByTimeAsync(20);
      const reason = new Error('stop');
      controller.abort(reason);
      expect(await listing).toBe(reason);
      blocker.exec('COMMIT');
    });

    it('refuses a signal that is not an AbortSignal and unknown call options, naming them', async () => {
      const { store } = await setUp();
      const fence = { memberId: 'm1', token: undefined };
      const bad = { signal: 'soon' } as unknown as { signal: AbortSignal };
      for (const call of [
        () => store.park(['w1'], fence, bad),
        () => store.unpark(['w1'], fence, bad),
        () => store.raiseFence(fence, bad),
        () => store.notePaused(['w1'], bad),
        () => store.diagnose(bad),
        () => store.listActive({ limit: 1, ...bad }),
        () => store.listParked({ limit: 1, ...bad }),
      ]) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigurationError);
        expect((error as Error).message).toMatch(/`signal`.*"soon"/);
      }
      await expect(store.park(['w1'], fence, { sginal: 1 } as never)).rejects.toThrow(
        /Unknown option `sginal` for park/,
      );
    });
  });
});
