/**
 * Crash recovery in the SQLite store: the generation record, `recover()`, their fencing and
 * cancellation, the tables' set-up, and a crashed member's workflows recovered by the next start.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RecoveryReport } from '../src/index.js';
import { MemoryBackend } from '../src/adapters/memory/index.js';
import { stateOf } from '../src/adapters/memory/backend.js';
import type { SqliteWorkflowStore, SqliteWorkflowStoreOptions } from '../src/adapters/sqlite/index.js';
import { ConfigurationError, StaleTokenError } from '../src/errors.js';
import { cleanedUp } from './support/drain.js';
import { forEachDriver, openDatabase, sqliteDriver, type TestDatabase } from './support/sqlite.js';
import { insert, sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-recovery-');
const { member, memory } = cleanedUp();

afterEach(() => {
  vi.useRealTimers();
});

const fence = (token?: bigint, memberId = 'm1') => ({ memberId, token });
const status = (db: TestDatabase, id: string) =>
  db.prepare('SELECT status FROM workflows WHERE id = ?').pluck().get(id);
const statuses = (db: TestDatabase) =>
  Object.fromEntries(
    (
      db.prepare('SELECT id, status FROM workflows ORDER BY id').all() as { id: string; status: string }[]
    ).map((row) => [row.id, row.status]),
  );
const marks = (db: TestDatabase, table = 'graceful_drain_marks') =>
  db.prepare(`SELECT id, member_id AS memberId, token FROM "${table}" ORDER BY id`).all();
const counts = (db: TestDatabase, table = 'graceful_drain_marks_recoveries') =>
  Object.fromEntries(
    (db.prepare(`SELECT id, count FROM "${table}" ORDER BY id`).all() as { id: string; count: number }[]).map(
      (row) => [row.id, row.count],
    ),
  );
const tables = (db: TestDatabase) =>
  db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();

/** A host database with `rows`, and a store on it (its own handle unless `options` say otherwise). */
function setUp(
  rows: [string, string][] = [],
  options: Partial<SqliteWorkflowStoreOptions> = {},
): { db: TestDatabase; path: string; s: SqliteWorkflowStore } {
  const { db, path } = hostDatabase();
  insert(db, rows);
  return { db, path, s: store({ database: db, table: 'workflows', ...options }) };
}

const EMPTY = { generation: 0, members: [], dirty: false };

forEachDriver(() => {
  describe('SqliteWorkflowStore generation record', () => {
    it('readGeneration() of a group never seen reads generation 0, no members, not dirty', async () => {
      const { db, s } = setUp();
      expect(await s.readGeneration('g')).toEqual(EMPTY);
      expect(tables(db)).toEqual([
        'graceful_drain_marks',
        'graceful_drain_marks_evictions',
        'graceful_drain_marks_fence',
        'graceful_drain_marks_generation_members',
        'graceful_drain_marks_generations',
        'graceful_drain_marks_recoveries',
        'workflows',
      ]);
      // reading writes nothing
      expect(db.prepare('SELECT count(*) FROM graceful_drain_marks_generations').pluck().get()).toBe(0);
    });

    it('enterGeneration() registers a member, replacing the entry of its id; members in id order, groups apart', async () => {
      const { s } = setUp();
      await s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, fence(1n));
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n));
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a2' }, fence(2n));
      await s.enterGeneration('other', { memberId: 'c', incarnation: 'c1' }, fence());
      const record = await s.readGeneration('g');
      expect(record).toEqual({
        generation: 0,
        members: [
          { memberId: 'a', incarnation: 'a2' },
          { memberId: 'b', incarnation: 'b1' },
        ],
        dirty: false,
      });
      expect(Object.isFrozen(record) && Object.isFrozen(record.members)).toBe(true);
      expect((await s.readGeneration('other')).members).toEqual([{ memberId: 'c', incarnation: 'c1' }]);
    });

    it("leaveGeneration() 'none' only removes, 'dirty' sets dirty, 'clean' clears it, raises the generation and resets every count", async () => {
      const { db, s } = setUp([
        ['w1', 'running'],
        ['w2', 'running'],
      ]);
      for (const id of ['a', 'b', 'c'])
        await s.enterGeneration('g', { memberId: id, incarnation: id }, fence());
      await s.enterGeneration('h', { memberId: 'a', incarnation: 'a' }, fence());
      await s.leaveGeneration('g', ['a', 'absent'], 'none', fence(1n));
      expect(await s.readGeneration('g')).toEqual({
        generation: 0,
        members: [
          { memberId: 'b', incarnation: 'b' },
          { memberId: 'c', incarnation: 'c' },
        ],
        dirty: false,
      });
      await s.leaveGeneration('g', ['b'], 'dirty', fence(1n));
      expect(await s.readGeneration('g')).toEqual({
        generation: 0,
        members: [{ memberId: 'c', incarnation: 'c' }],
        dirty: true,
      });
      await s.recover(['w1', 'w2'], fence(1n), { mode: 'count', maxRecoveries: 3 });
      expect(counts(db)).toEqual({ w1: 1, w2: 1 });
      await s.leaveGeneration('g', ['c', 'c'], 'clean', fence(1n));
      expect(await s.readGeneration('g')).toEqual({ generation: 1, members: [], dirty: false });
      expect(counts(db)).toEqual({});
      // another group's record is its own; a clean end of a group never seen starts it at 1
      expect((await s.readGeneration('h')).members).toEqual([{ memberId: 'a', incarnation: 'a' }]);
      await s.leaveGeneration('new', [], 'clean', fence(1n));
      await s.leaveGeneration('g', [], 'clean', fence(1n));
      expect((await s.readGeneration('new')).generation).toBe(1);
      expect((await s.readGeneration('g')).generation).toBe(2);
    });

    it('a second store on the same file reads the record the first wrote', async () => {
      const { path, s } = setUp();
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(3n));
      await s.leaveGeneration('g', [], 'dirty', fence(3n));
      const other = store({ driver: sqliteDriver(), path, table: 'workflows' });
      expect(await other.readGeneration('g')).toEqual({
        generation: 0,
        members: [{ memberId: 'a', incarnation: 'a1' }],
        dirty: true,
      });
      await expect(other.leaveGeneration('g', ['a'], 'clean', fence(2n))).rejects.toBeInstanceOf(
        StaleTokenError,
      );
    });
  });

  describe('SqliteWorkflowStore recover()', () => {
    const rows: [string, string][] = [
      ['r1', 'running'],
      ['r2', 'running'],
      ['user', 'paused'], // a user paused it: no mark
      ['parked', 'running'], // parked below, before the recovery
      ['done', 'succeeded'],
    ];

    it("mode 'park' pauses and marks what park() would, so that unpark() resumes it; the rest is skipped and untouched", async () => {
      const { db, s } = setUp(rows);
      await s.park(['parked'], fence(2n, 'old'));
      const parkedMark = marks(db);
      const results = await s.recover(['r1', 'user', 'parked', 'done', 'nope', 'r2', 'r1'], fence(4n, 'm2'), {
        mode: 'park',
        maxRecoveries: 3,
      });
      expect(results).toEqual([
        { id: 'r1', outcome: 'pausing' },
        { id: 'user', outcome: 'skipped' },
        { id: 'parked', outcome: 'skipped' },
        { id: 'done', outcome: 'skipped' },
        { id: 'nope', outcome: 'skipped' },
        { id: 'r2', outcome: 'pausing' },
        { id: 'r1', outcome: 'skipped' },
      ]);
      expect(statuses(db)).toEqual({
        done: 'succeeded',
        parked: 'pausing',
        r1: 'pausing',
        r2: 'pausing',
        user: 'paused',
      });
      // the recovery marks are park()'s, with the fence's member and token; the older mark is kept
      expect(marks(db)).toEqual([
        ...parkedMark,
        { id: 'r1', memberId: 'm2', token: 4 },
        { id: 'r2', memberId: 'm2', token: 4 },
      ]);
      expect(counts(db)).toEqual({ r1: 1, r2: 1 });
      db.prepare("UPDATE workflows SET status = 'paused' WHERE status = 'pausing'").run();
      expect((await s.listParked({ limit: 10 })).items).toEqual([
        { id: 'parked', state: 'paused', memberId: 'old', token: 2n },
        { id: 'r1', state: 'paused', memberId: 'm2', token: 4n },
        { id: 'r2', state: 'paused', memberId: 'm2', token: 4n },
      ]);
      expect(await s.unpark(['parked', 'r1', 'r2', 'user'], fence(5n))).toEqual([
        { id: 'parked', outcome: 'resumed' },
        { id: 'r1', outcome: 'resumed' },
        { id: 'r2', outcome: 'resumed' },
        { id: 'user', outcome: 'skipped' },
      ]);
      expect(status(db, 'user')).toBe('paused');
    });

    it("mode 'park' writes paused at once when the host has no pausing status", async () => {
      const { db, s } = setUp([['r1', 'running']], {
        statuses: { running: 'running', paused: 'paused' },
      });
      expect(await s.recover(['r1'], fence(), { mode: 'park', maxRecoveries: 1 })).toEqual([
        { id: 'r1', outcome: 'paused' },
      ]);
      expect(status(db, 'r1')).toBe('paused');
      expect(marks(db)).toEqual([{ id: 'r1', memberId: 'm1', token: null }]);
    });

    it("mode 'count' only counts: the status stays, no mark", async () => {
      const { db, s } = setUp(rows);
      const count = () =>
        s.recover(['r1', 'user', 'done', 'r1'], fence(1n), { mode: 'count', maxRecoveries: 5 });
      expect(await count()).toEqual([
        { id: 'r1', outcome: 'counted' },
        { id: 'user', outcome: 'skipped' },
        { id: 'done', outcome: 'skipped' },
        { id: 'r1', outcome: 'skipped' },
      ]);
      await count();
      expect(status(db, 'r1')).toBe('running');
      expect(marks(db)).toEqual([]);
      expect(counts(db)).toEqual({ r1: 2 });
    });

    it('past maxRecoveries sets statuses.failed (default `failed`), dropping the count and any mark', async () => {
      const { db, s } = setUp(rows);
      await s.recover(['r1', 'r2'], fence(1n), { mode: 'park', maxRecoveries: 1 });
      // the host resumed r1 (its mark goes with the pause), and r2 runs again with a stale mark left
      db.prepare("UPDATE workflows SET status = 'running' WHERE id = 'r1'").run();
      db.exec('DROP TRIGGER graceful_drain_marks_unpaused');
      db.prepare("UPDATE workflows SET status = 'running' WHERE id = 'r2'").run();
      expect(marks(db)).toEqual([{ id: 'r2', memberId: 'm1', token: 1 }]);
      expect(await s.recover(['r1', 'r2', 'user'], fence(2n), { mode: 'park', maxRecoveries: 1 })).toEqual([
        { id: 'r1', outcome: 'failed' },
        { id: 'r2', outcome: 'failed' },
        { id: 'user', outcome: 'skipped' },
      ]);
      expect(statuses(db)).toMatchObject({ r1: 'failed', r2: 'failed', user: 'paused' });
      expect(marks(db)).toEqual([]);
      expect(counts(db)).toEqual({});
      // a cap of 0 fails at once
      insert(db, [['r3', 'running']]);
      expect(await s.recover(['r3'], fence(2n), { mode: 'count', maxRecoveries: 0 })).toEqual([
        { id: 'r3', outcome: 'failed' },
      ]);
      expect(status(db, 'r3')).toBe('failed');
    });

    it('past maxRecoveries with given statuses: their `failed`, or without one the status left as it is', async () => {
      const { db, s } = setUp(
        [
          ['a', 'RUN'],
          ['b', 'RUN'],
        ],
        { statuses: { running: 'RUN', paused: 'STOP', failed: 'DEAD' } },
      );
      await s.recover(['a'], fence(), { mode: 'count', maxRecoveries: 1 });
      expect(await s.recover(['a', 'b'], fence(), { mode: 'park', maxRecoveries: 1 })).toEqual([
        { id: 'a', outcome: 'failed' },
        { id: 'b', outcome: 'paused' },
      ]);
      expect(statuses(db)).toEqual({ a: 'DEAD', b: 'STOP' });
      const { db: other, s: without } = setUp([['a', 'RUN']], {
        statuses: { running: 'RUN', paused: 'STOP' },
      });
      await without.recover(['a'], fence(), { mode: 'count', maxRecoveries: 1 });
      expect(await without.recover(['a'], fence(), { mode: 'park', maxRecoveries: 1 })).toEqual([
        { id: 'a', outcome: 'failed' },
      ]);
      expect(statuses(other)).toEqual({ a: 'RUN' });
      expect(counts(other)).toEqual({});
    });

    it('counts by the id as the host stores it, in an INTEGER id column too', async () => {
      const { db } = hostDatabase('CREATE TABLE workflows (id INTEGER PRIMARY KEY, status TEXT NOT NULL)');
      insert(db, [
        [10, 'running'],
        [9007199254740993n as unknown as number, 'running'],
      ]);
      const s = store({ database: db, table: 'workflows' });
      const recover = () =>
        s.recover(['10', '9007199254740993'], fence(), { mode: 'count', maxRecoveries: 1 });
      expect((await recover()).map((r) => r.outcome)).toEqual(['counted', 'counted']);
      expect(db.prepare('SELECT id FROM graceful_drain_marks_recoveries ORDER BY id').pluck().all()).toEqual([
        '10',
        '9007199254740993',
      ]);
      expect((await recover()).map((r) => r.outcome)).toEqual(['failed', 'failed']);
      expect(db.prepare('SELECT status FROM workflows ORDER BY id').pluck().all()).toEqual([
        'failed',
        'failed',
      ]);
    });

    it('takes batches past the chunk size in one transaction', async () => {
      const ids = Array.from({ length: 1300 }, (_, i) => `w${String(i).padStart(5, '0')}`);
      const { db, s } = setUp(ids.map((id, i) => [id, i % 100 === 0 ? 'succeeded' : 'running']));
      await s.recover(ids.slice(600, 700), fence(1n), { mode: 'count', maxRecoveries: 1 });
      const results = await s.recover([...ids, 'w00001'], fence(1n), { mode: 'park', maxRecoveries: 1 });
      const tally = (outcome: string) => results.filter((r) => r.outcome === outcome).length;
      expect([tally('pausing'), tally('failed'), tally('skipped')]).toEqual([1188, 99, 13 + 1]);
      expect(db.prepare("SELECT count(*) FROM workflows WHERE status = 'running'").pluck().get()).toBe(0);
      expect(db.prepare('SELECT count(*) FROM graceful_drain_marks').pluck().get()).toBe(1188);
    });

    it('the mark triggers drop a recovery mark when the host moves the status on; notePaused() releases one', async () => {
      const { db, s } = setUp(rows);
      await s.recover(['r1', 'r2'], fence(1n), { mode: 'park', maxRecoveries: 3 });
      db.prepare("UPDATE workflows SET status = 'paused' WHERE id = 'r1'").run(); // the pause completes: kept
      db.prepare("UPDATE workflows SET status = 'cancelled' WHERE id = 'r2'").run();
      expect(marks(db).map((m) => (m as { id: string }).id)).toEqual(['r1']);
      db.prepare("UPDATE workflows SET status = 'running' WHERE id = 'r1'").run();
      expect(marks(db)).toEqual([]);
      await s.recover(['r1'], fence(1n), { mode: 'park', maxRecoveries: 3 });
      expect(await s.notePaused(['r1'])).toEqual([{ id: 'r1', outcome: 'released' }]);
      expect(await s.unpark(['r1'], fence(1n))).toEqual([{ id: 'r1', outcome: 'skipped' }]);
      expect(counts(db)).toEqual({ r1: 2, r2: 1 });
    });
  });

  describe('SqliteWorkflowStore crash recovery, fenced and cancellable', () => {
    it('a stale token is refused with StaleTokenError and writes nothing; the record raises the fence', async () => {
      const { db, s } = setUp([['r1', 'running']]);
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(5n));
      const stale = fence(4n);
      const calls = [
        () => s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, stale),
        () => s.leaveGeneration('g', ['a'], 'clean', stale),
        () => s.leaveGeneration('g', ['a'], 'dirty', stale),
        () => s.recover(['r1'], stale, { mode: 'park', maxRecoveries: 0 }),
        () => s.recover(['r1'], stale, { mode: 'count', maxRecoveries: 3 }),
        () => s.park(['r1'], stale),
      ];
      for (const call of calls) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StaleTokenError);
        expect(error).toMatchObject({ token: 4n, highest: 5n });
      }
      expect(await s.readGeneration('g')).toEqual({
        generation: 0,
        members: [{ memberId: 'a', incarnation: 'a1' }],
        dirty: false,
      });
      expect([status(db, 'r1'), marks(db), counts(db)]).toEqual(['running', [], {}]);
      // the same token, a higher one and none at all are accepted
      await s.recover(['r1'], fence(5n), { mode: 'count', maxRecoveries: 3 });
      await s.leaveGeneration('g', ['a'], 'none', fence());
      await s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, fence(6n));
      await expect(s.raiseFence(fence(5n))).rejects.toBeInstanceOf(StaleTokenError);
      expect(db.prepare('SELECT highest FROM graceful_drain_marks_fence').pluck().get()).toBe(6);
    });

    it('a signal aborted already writes nothing, not even the set-up', async () => {
      const { db, s } = setUp([['r1', 'running']]);
      const reason = new Error('stop');
      const signal = AbortSignal.abort(reason);
      const calls = [
        () => s.readGeneration('g', { signal }),
        () => s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n), { signal }),
        () => s.leaveGeneration('g', [], 'dirty', fence(1n), { signal }),
        () => s.recover(['r1'], fence(1n), { mode: 'park', maxRecoveries: 3, signal }),
      ];
      for (const call of calls) expect(await call().catch((e: unknown) => e)).toBe(reason);
      expect(tables(db)).toEqual(['workflows']);
      expect(await s.readGeneration('g')).toEqual(EMPTY);
      expect([status(db, 'r1'), marks(db), counts(db)]).toEqual(['running', [], {}]);
    });

    it('a call waiting on a busy database stops at abort and never commits later', async () => {
      const { db, path } = hostDatabase();
      db.pragma('journal_mode = WAL');
      insert(db, [['r1', 'running']]);
      const s = store({ driver: sqliteDriver(), path, table: 'workflows', busyTimeoutMs: 5 });
      await s.readGeneration('g'); // set-up done
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const blocker = openDatabase(path);
      blocker.exec('BEGIN IMMEDIATE');
      const controller = new AbortController();
      const { signal } = controller;
      const settled: unknown[] = [];
      for (const call of [
        s.recover(['r1'], fence(7n), { mode: 'park', maxRecoveries: 3, signal }),
        s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(7n), { signal }),
        s.leaveGeneration('g', ['a'], 'dirty', fence(7n), { signal }),
      ]) {
        call.then(
          () => settled.push('committed'),
          (error: unknown) => settled.push(error),
        );
      }
      const reason = new Error('given up');
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(settled).toEqual([reason, reason, reason]);
      blocker.exec('COMMIT');
      blocker.close();
      await vi.advanceTimersByTimeAsync(10_000);
      expect(settled).toHaveLength(3);
      expect([status(db, 'r1'), marks(db), counts(db)]).toEqual(['running', [], {}]);
      expect(db.prepare('SELECT count(*) FROM graceful_drain_marks_fence').pluck().get()).toBe(0);
      vi.useRealTimers();
      expect(await s.readGeneration('g')).toEqual(EMPTY);
    });

    it('refuses bad arguments, naming them', async () => {
      const { s } = setUp();
      const member = { memberId: 'a', incarnation: 'a1' };
      const cases: [() => Promise<unknown>, RegExp][] = [
        [() => s.readGeneration(''), /`group`/],
        [
          () => s.enterGeneration('g', { memberId: 'a', incarnation: 3 as never }, fence()),
          /`member.incarnation`.*`3`/,
        ],
        [() => s.enterGeneration('g', undefined as never, fence()), /`member.memberId`/],
        [() => s.enterGeneration('g', member, { memberId: 'm', token: 1 as never }), /`fence.token`/],
        [() => s.leaveGeneration('g', 'a' as never, 'none', fence()), /`ids`/],
        [() => s.leaveGeneration('g', ['a'], 'half' as never, fence()), /`end`.*"half"/],
        [
          () => s.recover(['a'], fence(), { mode: 'all' as never, maxRecoveries: 1 }),
          /`options.mode`.*"all"/,
        ],
        [
          () => s.recover(['a'], fence(), { mode: 'park', maxRecoveries: -1 }),
          /`options.maxRecoveries`.*`-1`/,
        ],
        [
          () => s.recover(['a'], fence(), { mode: 'park', maxRecoveries: 1, max: 1 } as never),
          /Unknown option `max`/,
        ],
        [() => s.readGeneration('g', { signal: 'soon' } as never), /`signal`.*"soon"/],
      ];
      for (const [call, message] of cases) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigurationError);
        expect((error as Error).message).toMatch(message);
      }
    });
  });

  describe('SqliteWorkflowStore recovery tables', () => {
    it('are named from marksTable and quoted', async () => {
      const { db, s } = setUp([['r1', 'running']], { marksTable: 'select' });
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n));
      await s.recover(['r1'], fence(1n), { mode: 'park', maxRecoveries: 3 });
      expect(tables(db)).toEqual([
        'select',
        'select_evictions',
        'select_fence',
        'select_generation_members',
        'select_generations',
        'select_recoveries',
        'workflows',
      ]);
      expect(marks(db, 'select')).toEqual([{ id: 'r1', memberId: 'm1', token: 1 }]);
      expect(counts(db, 'select_recoveries')).toEqual({ r1: 1 });
    });

    it('are added to a database an older version set up, at first use; a set-up again changes no schema', async () => {
      const { db, path } = hostDatabase();
      insert(db, [
        ['r1', 'running'],
        ['p1', 'paused'],
      ]);
      // what a store of the previous version left: its marks and fence, a workflow parked under token 3
      db.exec(`CREATE TABLE graceful_drain_marks (
          id TEXT PRIMARY KEY NOT NULL, member_id TEXT NOT NULL, token INTEGER, parked_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE graceful_drain_marks_fence (id INTEGER PRIMARY KEY CHECK (id = 1), highest INTEGER NOT NULL);
        INSERT INTO graceful_drain_marks VALUES ('p1', 'old', 3, 0);
        INSERT INTO graceful_drain_marks_fence VALUES (1, 3);`);
      const s = store({ driver: sqliteDriver(), path, table: 'workflows' });
      expect(await s.readGeneration('g')).toEqual(EMPTY);
      expect(tables(db)).toContain('graceful_drain_marks_recoveries');
      expect((await s.listParked({ limit: 5 })).items).toEqual([
        { id: 'p1', state: 'paused', memberId: 'old', token: 3n },
      ]);
      await expect(s.recover(['r1'], fence(2n), { mode: 'park', maxRecoveries: 3 })).rejects.toBeInstanceOf(
        StaleTokenError,
      );
      const version = () => db.pragma('schema_version', { simple: true });
      const before = version();
      const again = store({ driver: sqliteDriver(), path, table: 'workflows' });
      expect(await again.recover(['r1'], fence(3n), { mode: 'park', maxRecoveries: 3 })).toEqual([
        { id: 'r1', outcome: 'pausing' },
      ]);
      expect(version()).toBe(before);
    });
  });

  describe('DrainController with the SQLite store', () => {
    it("a crashed last member's running workflows are recovered before the next start() resolves, then resumed", async () => {
      const { db, path } = hostDatabase();
      insert(db, [
        ['w1', 'running'],
        ['w2', 'running'],
        ['w3', 'running'],
        ['user', 'paused'],
        ['done', 'succeeded'],
      ]);
      const backend = new MemoryBackend();
      // No pausing status: a recovered workflow is paused at once and the first resume round unparks it.
      const options = {
        driver: sqliteDriver(),
        path,
        table: 'workflows',
        statuses: { running: 'running', paused: 'paused' },
      };
      const coordinatorA = memory(backend);
      const a = member({ memberId: 'a', coordinator: coordinatorA, store: store(options) });
      await a.start();
      // the store keeps a generation record: no `no-recovery` warning
      expect(await a.whenResumed()).toMatchObject({
        warnings: [],
        recovery: { reason: 'none', recovered: 0 },
      });
      const { members } = await store(options).readGeneration('g');
      expect(members.map((m) => m.memberId)).toEqual(['a']);

      // a crashes: no shutdown; its membership is gone, its entry in the record stays
      coordinatorA.simulateCrash();
      stateOf(backend).leave('g', 'a', (members[0] as { incarnation: string }).incarnation);

      const b = member({ memberId: 'b', coordinator: memory(backend), store: store(options) });
      const seen: { state: string; statuses: Record<string, unknown>; parked: unknown[] }[] = [];
      b.on('recovery', () => seen.push({ state: b.state, statuses: statuses(db), parked: marks(db) }));
      await b.start();
      expect(seen).toEqual([
        {
          state: 'starting',
          statuses: { done: 'succeeded', user: 'paused', w1: 'paused', w2: 'paused', w3: 'paused' },
          parked: ['w1', 'w2', 'w3'].map((id) => ({ id, memberId: 'b', token: expect.any(Number) })),
        },
      ]);
      const resumed = await b.whenResumed();
      expect(resumed?.recovery).toMatchObject({
        policy: 'resume',
        reason: 'crash',
        deadMembers: ['a'],
        found: 3,
        recovered: 3,
        failed: 0,
        complete: true,
      });
      expect(resumed).toMatchObject({ resumed: 3, complete: true, warnings: [] });
      expect(statuses(db)).toEqual({
        done: 'succeeded',
        user: 'paused',
        w1: 'running',
        w2: 'running',
        w3: 'running',
      });
      expect(marks(db)).toEqual([]);
      // the dead member's entry is gone, b is registered
      expect(await store(options).readGeneration('g')).toMatchObject({
        members: [{ memberId: 'b', incarnation: expect.any(String) }],
        dirty: false,
      });

      // another start finds b alive and registered: nothing to recover
      const c = member({ memberId: 'c', coordinator: memory(backend), store: store(options) });
      await c.start();
      const recovery = (await c.whenResumed())?.recovery as RecoveryReport;
      expect(recovery).toMatchObject({ reason: 'none', found: 0, recovered: 0, deadMembers: [] });
      expect(statuses(db)).toMatchObject({ w1: 'running', w2: 'running', w3: 'running' });
    });
  });
});
