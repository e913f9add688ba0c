/**
 * The owner capability of the SQLite store (issue #13, item 4): `ownerColumn`, `listOwned()`,
 * `evictMembers()`, and every fenced call of an evicted incarnation rejected before it writes.
 */
import { describe, expect, it } from 'vitest';
import type { SqliteWorkflowStore, SqliteWorkflowStoreOptions } from '../src/adapters/sqlite/index.js';
import { ConfigurationError, EvictedMemberError, StaleTokenError } from '../src/errors.js';
import type { Fence, ListOptions, Page } from '../src/workflow-store.js';
import { forEachDriver, sqliteDriver, type TestDatabase } from './support/sqlite.js';
import { sqliteHost } from './support/sqlite-host.js';

const { hostDatabase, store } = sqliteHost('gd-sqlite-owners-');

const SCHEMA = 'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL, owner TEXT)';
const fence = (token?: bigint, memberId = 'm1', incarnation?: string): Fence => ({
  memberId,
  token,
  incarnation,
});

/** A host table with an owner column and `rows` (id, status, owner), and a store on it. */
function setUp(
  rows: [string, string, string | null][] = [],
  options: Partial<SqliteWorkflowStoreOptions> = {},
  schema = SCHEMA,
): { db: TestDatabase; path: string; s: SqliteWorkflowStore } {
  const { db, path } = hostDatabase(schema);
  if (rows.length > 0) {
    const insert = db.prepare('INSERT INTO workflows (id, status, owner) VALUES (?, ?, ?)');
    db.transaction(() => rows.forEach((row) => insert.run(...row))).immediate();
  }
  return { db, path, s: store({ database: db, table: 'workflows', ownerColumn: 'owner', ...options }) };
}

async function all(list: (options: ListOptions) => Promise<Page<string>>, limit: number): Promise<string[]> {
  const items: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await list(cursor === undefined ? { limit } : { limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return items;
}

const state = (db: TestDatabase) => ({
  workflows: db.prepare('SELECT id, status FROM workflows ORDER BY id').all(),
  marks: db.prepare('SELECT id, member_id, token FROM graceful_drain_marks ORDER BY id').all(),
  fence: db.prepare('SELECT highest FROM graceful_drain_marks_fence').pluck().get(),
  members: db.prepare('SELECT * FROM graceful_drain_marks_generation_members ORDER BY grp, member_id').all(),
  generations: db.prepare('SELECT * FROM graceful_drain_marks_generations ORDER BY grp').all(),
  recoveries: db.prepare('SELECT * FROM graceful_drain_marks_recoveries ORDER BY id').all(),
  evictions: db.prepare('SELECT incarnation, member_id, grp FROM graceful_drain_marks_evictions').all(),
});

forEachDriver(() => {
  describe('SqliteWorkflowStore ownerColumn', () => {
    it('without it, the store has neither listOwned nor evictMembers', () => {
      const { s } = setUp([], { ownerColumn: undefined });
      expect('listOwned' in s || 'evictMembers' in s).toBe(false);
      expect([typeof s.listOwned, typeof s.evictMembers]).toEqual(['undefined', 'undefined']);
      const { s: owning } = setUp();
      expect([typeof owning.listOwned, typeof owning.evictMembers]).toEqual(['function', 'function']);
    });

    it('a value that is not a plain identifier is a ConfigurationError naming it, at construction', () => {
      const { db } = hostDatabase(SCHEMA);
      for (const bad of ['', 'owner; DROP TABLE x', 'a"b', 7]) {
        expect(() => store({ database: db, table: 'workflows', ownerColumn: bad as string })).toThrowError(
          ConfigurationError,
        );
      }
      expect(() => store({ database: db, table: 'workflows', ownerColumn: 'a"b' })).toThrowError(
        /`ownerColumn`.*"a\\"b"/,
      );
    });

    it('a column the host table lacks is a ConfigurationError naming the option and the value, at set-up', async () => {
      const { s } = setUp([], { ownerColumn: 'worker' });
      const error = await s.listOwned?.(['m1'], { limit: 10 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toBe(
        'Expected `ownerColumn` to name a column of "workflows", got "worker"',
      );
      // every call fails the same way, not only the owner's
      await expect(s.listActive({ limit: 1 })).rejects.toThrowError(/`ownerColumn`/);
    });

    it('a generated column is a valid owner (derived from a claim, say), but never a status the store writes', async () => {
      const generated =
        'CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL, owner TEXT, ' +
        "member TEXT GENERATED ALWAYS AS (substr(owner, 1, instr(owner, '#') - 1)) VIRTUAL, " +
        'state TEXT GENERATED ALWAYS AS (status) STORED)';
      const { s } = setUp(
        [
          ['w1', 'running', 'm1#7'],
          ['w2', 'running', 'm2#3'],
        ],
        { ownerColumn: 'member' },
        generated,
      );
      expect(await all((o) => (s.listOwned as NonNullable<typeof s.listOwned>)(['m1'], o), 10)).toEqual([
        'w1',
      ]);
      const { s: bad } = setUp([], { statusColumn: 'state' }, generated);
      await expect(bad.listActive({ limit: 1 })).rejects.toThrowError(
        'Expected `statusColumn` to name a column the store can write, got "state", a generated column of "workflows"',
      );
    });

    it('set-up creates <marksTable>_evictions with or without it, and again over a database set up before', async () => {
      const { db, path, s } = setUp([], { ownerColumn: undefined });
      const evictions = "SELECT count(*) FROM sqlite_master WHERE name = 'graceful_drain_marks_evictions'";
      await s.listActive({ limit: 1 });
      expect(db.prepare(evictions).pluck().get()).toBe(1);
      // a database set up by a version before the evictions table
      db.exec('DROP TABLE graceful_drain_marks_evictions');
      const other = store({ driver: sqliteDriver(), path, table: 'workflows' });
      await other.listActive({ limit: 1 });
      expect(db.prepare('SELECT count(*) FROM graceful_drain_marks_evictions').pluck().get()).toBe(0);
    });
  });

  describe('SqliteWorkflowStore listOwned()', () => {
    const rows: [string, string, string | null][] = [
      ['a1', 'running', 'dead'],
      ['a2', 'paused', 'dead'], // paused: not listed
      ['a3', 'running', 'live'],
      ['a4', 'running', null],
      ['a5', 'succeeded', 'dead'],
      ['b1', 'running', 'dead'],
      ['b2', 'pausing', 'dead'],
      ['b3', 'running', 'other'],
      ['c1', 'running', 'dead'],
      ['c2', 'running', 'other'],
    ];

    it('lists the running workflows of the given owners, in id order, a page at a time', async () => {
      const { s } = setUp(rows);
      const list = (ids: string[], limit: number) => all((o) => s.listOwned!(ids, o), limit);
      expect(await list(['dead'], 10)).toEqual(['a1', 'b1', 'c1']);
      for (const limit of [1, 2, 3]) expect(await list(['dead'], limit)).toEqual(['a1', 'b1', 'c1']);
      expect(await list(['dead', 'other'], 2)).toEqual(['a1', 'b1', 'b3', 'c1', 'c2']);
      expect(await list(['other', 'dead', 'other'], 10)).toEqual(['a1', 'b1', 'b3', 'c1', 'c2']);
      expect(await list(['nobody'], 10)).toEqual([]);
      expect(await list([], 10)).toEqual([]);
      expect(await s.listOwned!(['dead'], { limit: 3 })).toEqual({
        items: ['a1', 'b1', 'c1'],
        cursor: undefined,
      });
      expect(await s.listOwned!(['dead'], { limit: 1, cursor: 'a1' })).toEqual({
        items: ['b1'],
        cursor: 'b1',
      });
    });

    it('keeps the host status values and integer ids', async () => {
      const { db, s } = setUp(
        [],
        { idColumn: 'n', statusColumn: 'st', ownerColumn: 'by', statuses: { running: 'R', paused: 'P' } },
        'CREATE TABLE workflows (n INTEGER PRIMARY KEY, st TEXT NOT NULL, by TEXT)',
      );
      const insert = db.prepare('INSERT INTO workflows (n, st, by) VALUES (?, ?, ?)');
      for (const [n, st, by] of [
        [2, 'R', 'x'],
        [10, 'R', 'x'],
        [9, 'P', 'x'],
        [1, 'R', 'y'],
      ] as const)
        insert.run(n, st, by);
      expect(await all((o) => s.listOwned!(['x'], o), 1)).toEqual(['2', '10']);
      expect(await all((o) => s.listOwned!(['x', 'y'], o), 1)).toEqual(['1', '2', '10']);
    });

    it("reads one owner's rows through an index on (owner, id) in id order, without sorting", () => {
      const { db } = setUp(rows);
      db.exec('CREATE INDEX workflows_owner ON workflows (owner, id)');
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[])
          .map((r) => r.detail)
          .join('; ');
      const one = plan(
        `SELECT t."id" FROM "workflows" AS t WHERE t."owner" = 'dead' AND t."status" = 'running' AND t."id" > 'a' ORDER BY t."id" LIMIT 10`,
      );
      expect(one).toMatch(/SEARCH t USING INDEX workflows_owner \(owner=\? AND id>\?\)/);
      expect(one).not.toMatch(/TEMP B-TREE/);
    });

    it('rejects bad arguments with a ConfigurationError naming them', async () => {
      const { s } = setUp();
      await expect(s.listOwned!('dead' as never, { limit: 1 })).rejects.toThrowError(/`memberIds`/);
      await expect(s.listOwned!([''], { limit: 1 })).rejects.toThrowError(/`memberIds\[0\]`/);
      await expect(s.listOwned!(['dead'], { limit: 0 })).rejects.toThrowError(/`limit`/);
    });
  });

  describe('SqliteWorkflowStore evictMembers()', () => {
    it("removes the members' entries (of that incarnation only) and records their incarnations, fenced", async () => {
      const { db, s } = setUp();
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n));
      await s.enterGeneration('g', { memberId: 'b', incarnation: 'b2' }, fence(1n));
      await s.enterGeneration('g', { memberId: 'c', incarnation: 'c1' }, fence(1n));
      await s.enterGeneration('h', { memberId: 'a', incarnation: 'a1' }, fence(1n));
      await s.evictMembers!(
        'g',
        [
          { memberId: 'a', incarnation: 'a1' },
          { memberId: 'b', incarnation: 'b1' }, // b restarted as b2 since: its entry stays
          { memberId: 'absent', incarnation: 'x1' },
        ],
        fence(2n, 'c', 'c1'),
      );
      expect(await s.readGeneration('g')).toEqual({
        generation: 0,
        members: [
          { memberId: 'b', incarnation: 'b2' },
          { memberId: 'c', incarnation: 'c1' },
        ],
        dirty: false,
      });
      // another group's entry is its own
      expect((await s.readGeneration('h')).members).toEqual([{ memberId: 'a', incarnation: 'a1' }]);
      expect(state(db).evictions).toEqual([
        { incarnation: 'a1', member_id: 'a', grp: 'g' },
        { incarnation: 'b1', member_id: 'b', grp: 'g' },
        { incarnation: 'x1', member_id: 'absent', grp: 'g' },
      ]);
      expect(state(db).fence).toBe(2);
      await expect(
        s.evictMembers!('g', [{ memberId: 'c', incarnation: 'c1' }], fence(1n, 'old')),
      ).rejects.toBeInstanceOf(StaleTokenError);
      expect((await s.readGeneration('g')).members).toHaveLength(2);
    });

    it('is idempotent', async () => {
      const { db, s } = setUp();
      await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n));
      await s.evictMembers!('g', [{ memberId: 'a', incarnation: 'a1' }], fence(2n));
      const once = state(db);
      await s.evictMembers!('g', [{ memberId: 'a', incarnation: 'a1' }], fence(2n));
      await s.evictMembers!('g', [{ memberId: 'a', incarnation: 'a1' }], fence(3n));
      expect({ ...state(db), fence: once.fence }).toEqual(once);
      await s.evictMembers!('g', [], fence(3n));
    });

    it('rejects bad arguments with a ConfigurationError naming them', async () => {
      const { s } = setUp();
      await expect(s.evictMembers!('', [], fence())).rejects.toThrowError(/`group`/);
      await expect(s.evictMembers!('g', {} as never, fence())).rejects.toThrowError(/`members`/);
      await expect(s.evictMembers!('g', [null as never], fence())).rejects.toThrowError(/`members\[0\]`/);
      await expect(s.evictMembers!('g', [{ memberId: 'a', incarnation: '' }], fence())).rejects.toThrowError(
        /`members\[0\]\.incarnation`/,
      );
      await expect(s.evictMembers!('g', [], fence(1n, 'm', '' as never))).rejects.toThrowError(
        /`fence\.incarnation`/,
      );
    });
  });

  describe('SqliteWorkflowStore calls of an evicted incarnation', () => {
    const evicted = fence(9n, 'dead', 'dead-1');
    const rows: [string, string, string | null][] = [
      ['r1', 'running', 'dead'],
      ['p1', 'paused', 'live'],
    ];

    /** A store where `dead-1` was evicted, `p1` parked and paused, and the state before the call. */
    async function evictedSetUp(options: Partial<SqliteWorkflowStoreOptions> = {}) {
      const { db, path, s } = setUp(rows);
      await s.enterGeneration('g', { memberId: 'dead', incarnation: 'dead-1' }, fence(1n));
      await s.enterGeneration('g', { memberId: 'live', incarnation: 'live-1' }, fence(1n));
      db.prepare("UPDATE workflows SET status = 'running' WHERE id = 'p1'").run();
      await s.park(['p1'], fence(2n, 'live', 'live-1'));
      db.prepare("UPDATE workflows SET status = 'paused' WHERE id = 'p1'").run();
      await s.evictMembers!('g', [{ memberId: 'dead', incarnation: 'dead-1' }], fence(3n, 'live', 'live-1'));
      // The calls below run on a store of the dead member, with or without the owner capability.
      const dead = store({ driver: sqliteDriver(), path, table: 'workflows', ...options });
      return { db, s: dead, before: state(db) };
    }

    const calls: [string, (s: SqliteWorkflowStore) => Promise<unknown>][] = [
      ['park', (s) => s.park(['r1'], evicted)],
      ['unpark', (s) => s.unpark(['p1'], evicted)],
      ['raiseFence', (s) => s.raiseFence(evicted)],
      ['raiseFence (no token)', (s) => s.raiseFence(fence(undefined, 'dead', 'dead-1'))],
      ['recover', (s) => s.recover(['r1'], evicted, { mode: 'park', maxRecoveries: 3 })],
      [
        'enterGeneration',
        (s) => s.enterGeneration('g', { memberId: 'dead', incarnation: 'dead-2' }, evicted),
      ],
      ['leaveGeneration', (s) => s.leaveGeneration('g', ['live'], 'clean', evicted)],
      ['evictMembers', (s) => s.evictMembers!('g', [{ memberId: 'live', incarnation: 'live-1' }], evicted)],
    ];

    for (const [name, call] of calls) {
      it(`${name}() rejects with EvictedMemberError and writes nothing`, async () => {
        const { db, s, before } = await evictedSetUp({ ownerColumn: 'owner' });
        const error = await call(s).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EvictedMemberError);
        expect(error).toMatchObject({ code: 'ERR_EVICTED_MEMBER', memberId: 'dead', incarnation: 'dead-1' });
        expect(state(db)).toEqual(before);
      });
    }

    it('a store without ownerColumn rejects them too (the evictions live in the database)', async () => {
      const { db, s, before } = await evictedSetUp();
      await expect(s.park(['r1'], evicted)).rejects.toBeInstanceOf(EvictedMemberError);
      expect(state(db)).toEqual(before);
    });

    it('enterGeneration() never registers an evicted incarnation again, whatever the fence', async () => {
      const { db, s, before } = await evictedSetUp();
      await expect(
        s.enterGeneration('g', { memberId: 'dead', incarnation: 'dead-1' }, fence(10n, 'someone')),
      ).rejects.toBeInstanceOf(EvictedMemberError);
      expect(state(db)).toEqual(before);
      // a new incarnation of the same member id registers as usual
      await s.enterGeneration('g', { memberId: 'dead', incarnation: 'dead-2' }, fence(10n, 'dead', 'dead-2'));
      expect((await s.readGeneration('g')).members).toContainEqual({
        memberId: 'dead',
        incarnation: 'dead-2',
      });
    });

    it('calls of other incarnations, and calls without one, go on as before', async () => {
      const { db, s } = await evictedSetUp();
      expect(await s.park(['r1'], fence(10n, 'live', 'live-1'))).toEqual([{ id: 'r1', outcome: 'pausing' }]);
      expect(await s.unpark(['p1'], fence(10n, 'dead'))).toEqual([{ id: 'p1', outcome: 'resumed' }]);
      expect(state(db).fence).toBe(10);
    });
  });
});
