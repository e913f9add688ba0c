/**
 * The owner capability of the PostgreSQL store (`ownerColumn`): `listOwned()`, `evictMembers()`, and the
 * rejection of every call an evicted incarnation makes, ordered against the eviction by a row lock.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  migrate,
  type PostgresWorkflowStore,
  type PostgresWorkflowStoreOptions,
} from '../src/adapters/postgres/index.js';
import { ConfigurationError, EvictedMemberError, StaleTokenError } from '../src/errors.js';
import type { Fence } from '../src/workflow-store.js';
import { urlWithApplicationName } from './fixtures/postgres-setup.js';
import { uniqueName } from './support/env.js';
import { STATUSES_WITH_FAILED, pgStoreTables, rejection, sqlName } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_owners', { statuses: STATUSES_WITH_FAILED });
const { db, cleanup, rows, statuses } = tables;

const DEAD = Object.freeze({ memberId: 'm-dead', incarnation: 'inc-dead' });
const LIVE = Object.freeze({ memberId: 'm-live', incarnation: 'inc-live' });
/** A call of the dead incarnation, with or without a token. */
const deadFence = (token?: bigint): Fence => ({ ...DEAD, token });
const liveFence = (token?: bigint): Fence => ({ ...LIVE, token });

/** A host table `(id, status, owner)` in the test schema with `rows` `[id, status, owner]`. */
async function hostTable(list: [string, string, string | null][], ownerType = 'text'): Promise<string> {
  const table = `${db.schema}.${uniqueName('wf')}`;
  await db.pool.query(
    `CREATE TABLE ${sqlName(table)} (id text PRIMARY KEY, status text NOT NULL, owner ${ownerType})`,
  );
  await db.pool.query(`CREATE INDEX ON ${sqlName(table)} (owner, id)`);
  for (const [id, status, owner] of list) {
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ($1, $2, $3)`, [id, status, owner]);
  }
  return table;
}

/** Store options, `ownerColumn: null` for none. */
type Options = Omit<Partial<PostgresWorkflowStoreOptions>, 'ownerColumn'> & { ownerColumn?: string | null };

function store(table: string, { ownerColumn = 'owner', ...options }: Options = {}): PostgresWorkflowStore {
  return tables.store(table, { ...(ownerColumn === null ? {} : { ownerColumn }), ...options });
}

/** A store with the owner capability, its methods asserted present. */
function ownerStore(table: string, options: Options = {}) {
  const s = store(table, options);
  const { listOwned, evictMembers } = s;
  if (listOwned === undefined || evictMembers === undefined) throw new Error('no owner capability');
  return { store: s, listOwned, evictMembers };
}

async function allOwned(
  listOwned: NonNullable<PostgresWorkflowStore['listOwned']>,
  memberIds: string[],
  limit = 2,
): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = await listOwned(memberIds, cursor === undefined ? { limit } : { limit, cursor });
    pages.push([...page.items]);
    cursor = page.cursor;
  } while (cursor !== undefined && pages.length < 100);
  return pages;
}

/** Everything a rejected call must leave alone. */
const everything = async (table: string) => ({
  statuses: await statuses(table),
  marks: await rows(
    `SELECT workflow_id, member_id FROM "${db.schema}".parked WHERE store_key = $1 ORDER BY 1`,
    [table],
  ),
  counts: await rows(`SELECT workflow_id, count FROM "${db.schema}".parked_recoveries WHERE store_key = $1`, [
    table,
  ]),
  fence: await rows(`SELECT token::text FROM "${db.schema}".store_fences WHERE store_key = $1`, [table]),
  members: await rows(
    `SELECT grp, member_id, incarnation FROM "${db.schema}".parked_generation_members
     WHERE store_key = $1 ORDER BY 1, 2`,
    [table],
  ),
});
const evicted = (table: string) =>
  rows<{ incarnation: string; member_id: string; grp: string }>(
    `SELECT incarnation, member_id, grp FROM "${db.schema}".parked_incarnations
     WHERE store_key = $1 AND evicted_at IS NOT NULL ORDER BY incarnation`,
    [table],
  );

describe('PostgresWorkflowStore ownerColumn', () => {
  it('without ownerColumn the store offers neither listOwned nor evictMembers', async () => {
    const table = await hostTable([]);
    const s = store(table, { ownerColumn: null });
    expect(typeof s.listOwned).toBe('undefined');
    expect(typeof s.evictMembers).toBe('undefined');
    const withOwner = store(table);
    expect(typeof withOwner.listOwned).toBe('function');
    expect(typeof withOwner.evictMembers).toBe('function');
  });

  it('refuses an ownerColumn that is not a plain identifier at once, naming the option and the value', async () => {
    for (const bad of ['', 'a.b', 'x"; DROP TABLE y; --', 42]) {
      expect(() => store('t', { ownerColumn: bad as string })).toThrow(ConfigurationError);
      expect(() => store('t', { ownerColumn: bad as string })).toThrow(/`ownerColumn`/);
    }
  });

  it('refuses at first use an ownerColumn the table does not have, naming the option and the value', async () => {
    const table = await hostTable([['a', 'running', 'm1']]);
    const s = store(table, { ownerColumn: 'driver' });
    const error = await rejection(s.listActive({ limit: 1 }));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toBe(
      `Expected \`ownerColumn\` to name a column of ${sqlName(table)}, got \`"driver"\` (string)`,
    );
  });

  it('migrate({ stores }) checks the ownerColumn too', async () => {
    const table = await hostTable([]);
    const error = await rejection(
      migrate(db.pool, {
        schema: db.schema,
        stores: [{ table, statuses: STATUSES_WITH_FAILED, ownerColumn: 'driver' }],
      }),
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/`stores\[0\]\.ownerColumn`.*"driver"/);
    await migrate(db.pool, {
      schema: db.schema,
      stores: [{ table, statuses: STATUSES_WITH_FAILED, ownerColumn: 'owner' }],
    });
  });
});

describe('PostgresWorkflowStore listOwned', () => {
  it('lists the running workflows of the given owners, paged, in id order', async () => {
    const table = await hostTable([
      ['a', 'running', 'm1'],
      ['b', 'running', 'm2'],
      ['c', 'paused', 'm1'],
      ['d', 'running', 'm3'],
      ['e', 'running', 'm1'],
      ['f', 'running', null],
      ['g', 'running', 'm2'],
      ['h', 'pausing', 'm2'],
    ]);
    const { listOwned } = ownerStore(table);
    expect(await allOwned(listOwned, ['m1', 'm2'])).toEqual([
      ['a', 'b'],
      ['e', 'g'],
    ]);
    expect(await allOwned(listOwned, ['m2', 'm1', 'm2'], 10)).toEqual([['a', 'b', 'e', 'g']]);
    expect(await allOwned(listOwned, ['m3'])).toEqual([['d']]);
    expect(await allOwned(listOwned, ['nobody'])).toEqual([[]]);
    expect(await listOwned([], { limit: 5 })).toEqual({ items: [], cursor: undefined });
  });

  it('compares member ids in the owner column type, as text when one cannot be of that type', async () => {
    const owner = '8c3f3b9e-0c4e-4c4e-9d6a-2f1e1a6b7c11';
    const table = await hostTable(
      [
        ['a', 'running', owner],
        ['b', 'running', null],
      ],
      'uuid',
    );
    const { listOwned } = ownerStore(table);
    expect(await allOwned(listOwned, [owner])).toEqual([['a']]);
    expect(await allOwned(listOwned, [owner.toUpperCase()])).toEqual([['a']]);
    expect(await allOwned(listOwned, ['not-a-uuid', owner])).toEqual([['a']]);
  });

  it('checks its arguments, naming each', async () => {
    const table = await hostTable([]);
    const { listOwned } = ownerStore(table);
    await expect(listOwned('m1' as unknown as string[], { limit: 1 })).rejects.toThrow(/`memberIds`/);
    await expect(listOwned([''], { limit: 1 })).rejects.toThrow(/`memberIds\[0\]`/);
    await expect(listOwned(['m1'], { limit: 0 })).rejects.toThrow(/`limit`/);
  });
});

describe('PostgresWorkflowStore evictMembers', () => {
  it('removes the members entries of that incarnation and records the incarnation as evicted, idempotently', async () => {
    const table = await hostTable([]);
    const { store: s, evictMembers } = ownerStore(table);
    await s.enterGeneration('g', DEAD, liveFence());
    await s.enterGeneration('g', LIVE, liveFence());
    // The same member id, restarted: its entry is another incarnation's, kept.
    await s.enterGeneration('g', { memberId: 'm-back', incarnation: 'inc-back-2' }, liveFence());
    await s.enterGeneration('other', DEAD, liveFence());
    const gone = [
      DEAD,
      { memberId: 'm-back', incarnation: 'inc-back-1' },
      { memberId: 'm-x', incarnation: 'inc-x' },
    ];
    await evictMembers('g', gone, liveFence(5n));
    await evictMembers('g', gone, liveFence(5n));
    expect((await s.readGeneration('g')).members).toEqual([
      { memberId: 'm-back', incarnation: 'inc-back-2' },
      LIVE,
    ]);
    // Another group's record is left alone, though the incarnation is evicted from every call.
    expect((await s.readGeneration('other')).members).toEqual([DEAD]);
    expect(await evicted(table)).toEqual([
      { incarnation: 'inc-back-1', member_id: 'm-back', grp: 'g' },
      { incarnation: 'inc-dead', member_id: 'm-dead', grp: 'g' },
      { incarnation: 'inc-x', member_id: 'm-x', grp: 'g' },
    ]);
    expect(
      await rows(`SELECT token::text FROM "${db.schema}".store_fences WHERE store_key = $1`, [table]),
    ).toEqual([{ token: '5' }]);
  });

  it('every later call of an evicted incarnation rejects with EvictedMemberError and writes nothing', async () => {
    const table = await hostTable([
      ['run', 'running', 'm-dead'],
      ['park', 'paused', 'm-dead'],
    ]);
    const { store: s, evictMembers } = ownerStore(table);
    await s.enterGeneration('g', DEAD, deadFence());
    expect(await s.park(['park'], liveFence(1n))).toEqual([{ id: 'park', outcome: 'skipped' }]);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'running' WHERE id = 'park'`);
    await s.park(['park'], liveFence(1n));
    await evictMembers('g', [DEAD], liveFence(2n));
    const before = await everything(table);
    const calls: [string, (token?: bigint) => Promise<unknown>][] = [
      ['park', (t) => s.park(['run'], deadFence(t))],
      ['unpark', (t) => s.unpark(['park'], deadFence(t))],
      ['raiseFence', (t) => s.raiseFence(deadFence(t))],
      ['recover', (t) => s.recover(['run'], deadFence(t), { mode: 'park', maxRecoveries: 3 })],
      ['enterGeneration', (t) => s.enterGeneration('g', DEAD, deadFence(t))],
      ['leaveGeneration', (t) => s.leaveGeneration('g', [LIVE.memberId], 'clean', deadFence(t))],
      ['evictMembers', (t) => evictMembers('g', [LIVE], deadFence(t))],
    ];
    for (const [name, call] of calls) {
      for (const token of [undefined, 9n]) {
        const error = await rejection(call(token));
        expect([name, token, error]).toEqual([name, token, expect.any(EvictedMemberError)]);
        expect(error).toMatchObject({
          code: 'ERR_EVICTED_MEMBER',
          memberId: 'm-dead',
          incarnation: 'inc-dead',
        });
      }
    }
    expect(await everything(table)).toEqual(before);
    // Registering the evicted incarnation is refused whoever asks.
    const error = await rejection(s.enterGeneration('g', DEAD, liveFence()));
    expect(error).toBeInstanceOf(EvictedMemberError);
    // Calls with no incarnation, or another one of the same member id, go on.
    expect(await s.park(['run'], { memberId: 'm-dead', token: 3n })).toEqual([
      { id: 'run', outcome: 'pausing' },
    ]);
    await s.raiseFence({ memberId: 'm-dead', token: 4n, incarnation: 'inc-dead-2' });
  });

  it('is fenced: a stale token evicts nothing; a store without the capability does not check incarnations', async () => {
    const table = await hostTable([]);
    const { store: s, evictMembers } = ownerStore(table);
    await s.enterGeneration('g', DEAD, liveFence());
    await s.raiseFence(liveFence(7n));
    await expect(evictMembers('g', [DEAD], liveFence(6n))).rejects.toBeInstanceOf(StaleTokenError);
    expect((await s.readGeneration('g')).members).toEqual([DEAD]);
    expect(await evicted(table)).toEqual([]);
    await evictMembers('g', [DEAD], liveFence(7n));
    const plain = store(table, { ownerColumn: null });
    await plain.raiseFence(deadFence(8n));
  });

  it('checks its arguments, naming each', async () => {
    const table = await hostTable([]);
    const { evictMembers } = ownerStore(table);
    await expect(evictMembers('', [DEAD], liveFence())).rejects.toThrow(/`group`/);
    await expect(evictMembers('g', {} as never, liveFence())).rejects.toThrow(/`members`/);
    await expect(evictMembers('g', [{ memberId: 'm', incarnation: '' }], liveFence())).rejects.toThrow(
      /`members\[0\]\.incarnation`/,
    );
    await expect(
      evictMembers('g', [DEAD], { memberId: 'm', token: undefined, incarnation: '' }),
    ).rejects.toThrow(/`fence\.incarnation`/);
  });

  it('leaveGeneration() forgets the incarnations seen of the members leaving, never an evicted one', async () => {
    const table = await hostTable([]);
    const { store: s, evictMembers } = ownerStore(table);
    await s.raiseFence(liveFence());
    await s.raiseFence(deadFence());
    await evictMembers('g', [DEAD], liveFence());
    const seen = () =>
      rows(`SELECT incarnation FROM "${db.schema}".parked_incarnations WHERE store_key = $1 ORDER BY 1`, [
        table,
      ]);
    expect(await seen()).toEqual([{ incarnation: 'inc-dead' }, { incarnation: 'inc-live' }]);
    await s.leaveGeneration('g', [LIVE.memberId, DEAD.memberId], 'none', liveFence());
    // The live incarnation's row is taken again by its call, then forgotten.
    expect(await seen()).toEqual([{ incarnation: 'inc-dead' }]);
  });

  it('a call of the incarnation waiting on the eviction sees it once the eviction commits', async () => {
    const table = await hostTable([['run', 'running', 'm-dead']]);
    const application = uniqueName('gd_own');
    const pool = new pg.Pool({ connectionString: urlWithApplicationName(application), max: 2 });
    pool.on('error', () => {});
    cleanup.push(() => pool.end());
    const { store: s } = ownerStore(table, { pool });
    await s.raiseFence(deadFence()); // first use done, the incarnation's row taken
    // An eviction in flight: its transaction holds the incarnation's row, evicted, not yet committed.
    const evictor = await db.pool.connect();
    cleanup.push(async () => evictor.release());
    await evictor.query('BEGIN');
    await evictor.query(
      `UPDATE "${db.schema}".parked_incarnations SET evicted_at = now(), grp = 'g'
       WHERE store_key = $1 AND incarnation = $2`,
      [table, DEAD.incarnation],
    );
    const parked = rejection(s.park(['run'], deadFence(1n)));
    const waiting = async () =>
      (
        await rows(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [application],
        )
      ).length > 0;
    for (let i = 0; !(await waiting()); i++) {
      if (i > 250) throw new Error('the park never waited for the eviction');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await evictor.query('COMMIT');
    expect(await parked).toBeInstanceOf(EvictedMemberError);
    expect(await statuses(table)).toEqual({ run: 'running' });
  });
});
