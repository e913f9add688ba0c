/**
 * PostgresWorkflowStore's fused pages: `parkPage()` (listActive and park of what it lists, one
 * transaction, one statement) and `unparkPage()` (listParked and unpark of what it lists but those still
 * pausing). Paging equal to the listings, outcomes, fencing and eviction with nothing written, signals
 * rolling back, marks (a user's pause never resumed), host rows locked by another transaction, ids of
 * every kind, and a DrainController's shutdown and start over them.
 */
import { describe, expect, it } from 'vitest';
import type { PgPool, PgPoolClient, PostgresWorkflowStore } from '../src/adapters/postgres/index.js';
import { MemoryBackend, MemoryCoordinator } from '../src/adapters/memory/index.js';
import { EvictedMemberError, StaleTokenError } from '../src/errors.js';
import { DrainController } from '../src/index.js';
import type { Fence, ParkPage, UnparkPage } from '../src/workflow-store.js';
import { uniqueName } from './support/env.js';
import {
  BEAT_COLUMNS,
  fence,
  outcomes,
  pgStoreTables,
  rejection,
  sqlName,
  waitFor,
} from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_pages', { columns: BEAT_COLUMNS });
const {
  db,
  cleanup,
  hostTable,
  hostTransaction,
  store,
  rows,
  statuses,
  setStatus,
  marks,
  namedStore: namedStoreOf,
  parkedTable,
} = tables;

/** The store's fused methods, asserted present. */
function pages(s: PostgresWorkflowStore) {
  const { parkPage, unparkPage } = s;
  expect(typeof parkPage).toBe('function');
  expect(typeof unparkPage).toBe('function');
  return {
    parkPage: (f: Fence, o: { limit: number; cursor?: string; signal?: AbortSignal }) => s.parkPage(f, o),
    unparkPage: (f: Fence, o: { limit: number; cursor?: string; signal?: AbortSignal }) => s.unparkPage(f, o),
  };
}

/** Everything a rejected call must leave alone. */
const everything = async (table: string) => ({
  statuses: await statuses(table),
  marks: await rows(
    `SELECT workflow_id, member_id, token::text FROM "${db.schema}".parked WHERE store_key = $1 ORDER BY 1`,
    [table],
  ),
  fence: await rows(`SELECT token::text FROM "${db.schema}".store_fences WHERE store_key = $1`, [table]),
});

/** Every page of parkPage from the first, with the cursors it gave. */
async function parkAll(s: PostgresWorkflowStore, limit: number, f = fence(1n)) {
  const all: ParkPage[] = [];
  let cursor: string | undefined;
  do {
    const page = await s.parkPage(f, cursor === undefined ? { limit } : { limit, cursor });
    all.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined && all.length < 1000);
  return all;
}

/** Every page of unparkPage from the first. */
async function unparkAll(s: PostgresWorkflowStore, limit: number, f = fence(2n)) {
  const all: UnparkPage[] = [];
  let cursor: string | undefined;
  do {
    const page = await s.unparkPage(f, cursor === undefined ? { limit } : { limit, cursor });
    all.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined && all.length < 1000);
  return all;
}

/** A store on a pool of its own whose backends can be found by name; first use done beforehand. */
const namedStore = (table: string) => namedStoreOf(table, 'gd_pages');

describe('PostgresWorkflowStore parkPage()', () => {
  it('pages exactly as listActive does, for several page sizes, and parks what each page lists', async () => {
    const ids = Array.from({ length: 23 }, (_, i) => `wf-${String(i).padStart(3, '0')}`);
    const rowsOf = ids.map((id, i) => [id, i % 5 === 0 ? 'succeeded' : 'running'] as const);
    for (const limit of [1, 4, 7, 18, 19, 100]) {
      const table = await hostTable(rowsOf);
      const s = store(table);
      // what listActive lists, page by page, before anything is parked
      const listed: { items: readonly string[]; cursor: string | undefined }[] = [];
      let cursor: string | undefined;
      do {
        const page = await s.listActive(cursor === undefined ? { limit } : { limit, cursor });
        listed.push(page);
        cursor = page.cursor;
      } while (cursor !== undefined);
      const parked = await parkAll(s, limit);
      expect(parked.map((p) => [p.results.map((r) => r.id), p.cursor])).toEqual(
        listed.map((p) => [[...p.items], p.cursor]),
      );
      const running = rowsOf.filter(([, st]) => st === 'running').map(([id]) => id);
      expect(parked.flatMap((p) => outcomes(p.results))).toEqual(running.map((id) => [id, 'pausing']));
      expect(await marks(table)).toEqual(running);
      // a pass after it finds nothing: one empty page
      expect(await s.parkPage(fence(1n), { limit })).toEqual({ results: [], cursor: undefined });
    }
  });

  it('a page resumes after the cursor as listActive does, whatever was parked before it', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'paused'],
      ['d', 'running'],
      ['e', 'running'],
    ]);
    const s = store(table);
    const { parkPage } = pages(s);
    expect(await parkPage(fence(1n), { limit: 2, cursor: 'a' })).toEqual({
      results: [
        { id: 'b', outcome: 'pausing' },
        { id: 'd', outcome: 'pausing' },
      ],
      cursor: 'd',
    });
    expect(await s.listActive({ limit: 2, cursor: 'd' })).toEqual({ items: ['e'], cursor: undefined });
    expect(await parkPage(fence(1n), { limit: 2, cursor: 'd' })).toEqual({
      results: [{ id: 'e', outcome: 'pausing' }],
      cursor: undefined,
    });
    expect(await statuses(table)).toEqual({
      a: 'running',
      b: 'pausing',
      c: 'paused',
      d: 'pausing',
      e: 'pausing',
    });
    const parked = await s.listParked({ limit: 10 });
    expect(parked.items).toEqual(
      ['b', 'd', 'e'].map((id) => ({ id, state: 'pausing', memberId: 'm1', token: 1n })),
    );
  });

  it('writes `paused` without a pausing status; unfenced with token undefined', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store(table, { statuses: { running: 'running', paused: 'paused' } });
    const page = await s.parkPage(fence(undefined), { limit: 5 });
    expect(outcomes(page.results)).toEqual([
      ['a', 'paused'],
      ['b', 'paused'],
    ]);
    const listed = await s.listParked({ limit: 5 });
    expect(listed.items.map((i) => [i.id, i.state, i.token])).toEqual([
      ['a', 'paused', undefined],
      ['b', 'paused', undefined],
    ]);
  });

  it('a stale token: StaleTokenError and nothing written, the fence included', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store(table);
    await s.raiseFence(fence(5n));
    const before = await everything(table);
    const error = await rejection(s.parkPage(fence(4n), { limit: 10 }));
    expect(error).toBeInstanceOf(StaleTokenError);
    expect(await everything(table)).toEqual(before);
    // the current token writes
    expect(outcomes((await s.parkPage(fence(5n), { limit: 10 })).results)).toEqual([
      ['a', 'pausing'],
      ['b', 'pausing'],
    ]);
  });

  it('replaces a stale mark left on a running workflow (a store without the trigger)', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const off = store(table, { markTrigger: 'off' });
    await off.park(['a'], fence(1n, 'old'));
    await setStatus(table, 'a', 'running'); // no trigger: the mark stays
    const s = store(table);
    const page = await s.parkPage(fence(2n, 'new'), { limit: 10 });
    expect(outcomes(page.results)).toEqual([
      ['a', 'pausing'],
      ['b', 'pausing'],
    ]);
    expect(
      await rows(`SELECT workflow_id, member_id FROM "${db.schema}".parked WHERE store_key = $1 ORDER BY 1`, [
        table,
      ]),
    ).toEqual([
      { workflow_id: 'a', member_id: 'new' },
      { workflow_id: 'b', member_id: 'new' },
    ]);
  });

  it('commits without waiting for the WAL flush (batchCommit deferred), as park() batches do', async () => {
    const table = await hostTable([['a', 'running']]);
    const sent: string[] = [];
    const counting: PgPool = {
      query: (text, values) => db.pool.query(text, values),
      connect: async () => {
        const client = (await db.pool.connect()) as PgPoolClient;
        const query = client.query.bind(client) as PgPoolClient['query'];
        return Object.assign(Object.create(client) as PgPoolClient, {
          query: (text: string, values?: unknown[]) => {
            sent.push(text);
            return query(text, values);
          },
          release: (error?: Error | boolean) => client.release(error),
        });
      },
    };
    const deferred = store(table, { pool: counting });
    await deferred.parkPage(fence(1n), { limit: 10 });
    expect(sent.filter((t) => t.includes('synchronous_commit = off'))).toHaveLength(1);
    sent.length = 0;
    await setStatus(table, 'a', 'running');
    await store(table, { pool: counting, batchCommit: 'synchronous' }).parkPage(fence(3n), { limit: 10 });
    expect(sent.some((t) => t.includes('synchronous_commit'))).toBe(false);
  });

  it('unparkPage() commits its pages without waiting for the flush, but the last, which waits as the session is configured', async () => {
    const table = await hostTable(['a', 'b', 'c', 'd', 'e'].map((id) => [id, 'running'] as const));
    // What the commit of each write to the host's table runs under: read at commit by a deferred trigger.
    const seen = `"${db.schema}"."${uniqueName('seen')}"`;
    const record = `"${db.schema}"."${uniqueName('record')}"`;
    await db.pool.query(`CREATE TABLE ${seen} (n serial, setting text)`);
    await db.pool.query(`CREATE FUNCTION ${record}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO ${seen} (setting) VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$`);
    const settings = async (): Promise<string[]> => {
      const { rows: found } = await db.pool.query<{ setting: string }>(
        `SELECT setting FROM ${seen} ORDER BY n`,
      );
      await db.pool.query(`DELETE FROM ${seen}`);
      return found.map((r) => r.setting);
    };
    // Sessions configured to commit locally (a plain SET on each connection): the last page keeps that.
    const local: PgPool = {
      query: (text, values) => db.pool.query(text, values),
      connect: async () => {
        const client = (await db.pool.connect()) as PgPoolClient;
        await client.query('SET synchronous_commit = local');
        return client;
      },
    };
    for (const [batchCommit, expected, token] of [
      ['deferred', ['off', 'off', 'off', 'off', 'local'], 1n],
      ['synchronous', ['local', 'local', 'local', 'local', 'local'], 3n],
    ] as const) {
      const s = store(table, { pool: local, batchCommit });
      await parkAll(s, 10, fence(token));
      await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
      await db.pool.query(
        `CREATE CONSTRAINT TRIGGER record AFTER UPDATE ON ${sqlName(table)} DEFERRABLE INITIALLY DEFERRED
          FOR EACH ROW EXECUTE FUNCTION ${record}()`,
      );
      let cursor: string | undefined;
      const resumed: string[] = [];
      do {
        const next = cursor === undefined ? { limit: 2 } : { limit: 2, cursor };
        const page = await s.unparkPage(fence(token + 1n), next);
        resumed.push(...page.results.filter((r) => r.outcome === 'resumed').map((r) => r.id));
        cursor = page.cursor;
      } while (cursor !== undefined);
      expect(resumed).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(await settings()).toEqual(expected);
      await db.pool.query(`DROP TRIGGER record ON ${sqlName(table)}`);
      await s.close();
    }
  });
});

describe('PostgresWorkflowStore unparkPage()', () => {
  it('pages exactly as listParked does; resumes the paused, counts the pausing and leaves them parked', async () => {
    const ids = Array.from({ length: 17 }, (_, i) => `wf-${String(i).padStart(3, '0')}`);
    for (const limit of [1, 3, 16, 17, 50]) {
      const table = await hostTable(ids.map((id) => [id, 'running'] as const));
      const s = store(table);
      await parkAll(s, 5);
      // the host paused all but every fourth, still pausing
      const pausing = ids.filter((_, i) => i % 4 === 0);
      for (const id of ids) if (!pausing.includes(id)) await setStatus(table, id, 'paused');
      const listed: { items: readonly { id: string }[]; cursor: string | undefined }[] = [];
      let cursor: string | undefined;
      do {
        const page = await s.listParked(cursor === undefined ? { limit } : { limit, cursor });
        listed.push(page);
        cursor = page.cursor;
      } while (cursor !== undefined);
      const resumed = await unparkAll(s, limit);
      expect(resumed.map((p) => p.cursor)).toEqual(listed.map((p) => p.cursor));
      expect(resumed.map((p) => p.results.length + p.pausing)).toEqual(listed.map((p) => p.items.length));
      expect(resumed.flatMap((p) => outcomes(p.results))).toEqual(
        ids.filter((id) => !pausing.includes(id)).map((id) => [id, 'resumed']),
      );
      expect(resumed.reduce((n, p) => n + p.pausing, 0)).toBe(pausing.length);
      expect(await marks(table)).toEqual(pausing);
      const now = await statuses(table);
      for (const id of ids) expect(now[id]).toBe(pausing.includes(id) ? 'pausing' : 'running');
      // the host finishes pausing them: the next round resumes them
      for (const id of pausing) await setStatus(table, id, 'paused');
      const next = await unparkAll(s, limit, fence(3n));
      expect(next.flatMap((p) => outcomes(p.results))).toEqual(pausing.map((id) => [id, 'resumed']));
      expect(await marks(table)).toEqual([]);
    }
  });

  it("never resumes a user's pause: notePaused, or a resume and a pause again (the trigger)", async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'running'],
      ['d', 'running'],
    ]);
    const s = store(table);
    await s.parkPage(fence(1n), { limit: 10 });
    for (const id of ['a', 'b', 'c', 'd']) await setStatus(table, id, 'paused');
    // a: a user paused it while parked (no status change), and said so
    expect(await s.notePaused(['a'])).toEqual([{ id: 'a', outcome: 'released' }]);
    // b: a user resumed it, then paused it again: the trigger dropped the mark on the resume
    await setStatus(table, 'b', 'running');
    await setStatus(table, 'b', 'paused');
    // c: cancelled meanwhile
    await setStatus(table, 'c', 'cancelled');
    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(page).toEqual({ results: [{ id: 'd', outcome: 'resumed' }], pausing: 0, cursor: undefined });
    expect(await statuses(table)).toEqual({ a: 'paused', b: 'paused', c: 'cancelled', d: 'running' });
    expect(await marks(table)).toEqual([]);
  });

  it('a mark on a workflow in another state (no trigger): cleared and skipped, nothing resumed', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store(table, { markTrigger: 'off' });
    await s.parkPage(fence(1n), { limit: 10 });
    await setStatus(table, 'a', 'cancelled');
    await setStatus(table, 'b', 'paused');
    await db.pool.query(`DELETE FROM ${sqlName(table)} WHERE id = 'b'`);
    await db.pool.query(`INSERT INTO ${sqlName(table)} (id, status) VALUES ('b', 'running')`);
    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(outcomes(page.results)).toEqual([
      ['a', 'skipped'],
      ['b', 'skipped'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'cancelled', b: 'running' });
    expect(await marks(table)).toEqual([]);
  });

  it('a stale token: StaleTokenError and nothing written', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store(table);
    await s.parkPage(fence(3n), { limit: 10 });
    await setStatus(table, 'a', 'paused');
    const before = await everything(table);
    expect(await rejection(s.unparkPage(fence(2n), { limit: 10 }))).toBeInstanceOf(StaleTokenError);
    expect(await everything(table)).toEqual(before);
    expect(outcomes((await s.unparkPage(fence(3n), { limit: 10 })).results)).toEqual([['a', 'resumed']]);
  });

  it('a page after a bulk park reads the marks by key, however stale their statistics', async () => {
    const n = 3000;
    const table = await hostTable([]);
    await db.pool.query(
      `INSERT INTO ${sqlName(table)} (id, status) SELECT 'wf-' || lpad(g::text, 6, '0'), 'running'
       FROM generate_series(1, ${n}) g`,
    );
    const s = store(table);
    await parkAll(s, 1000);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
    const resumed = await unparkAll(s, 700);
    expect(resumed.map((p) => p.results.length)).toEqual([700, 700, 700, 700, 200]);
    expect(resumed.flatMap((p) => p.results).every((r) => r.outcome === 'resumed')).toBe(true);
    expect(await marks(table)).toEqual([]);
  });
});

describe('PostgresWorkflowStore pages: ids of every kind', () => {
  it('ids with quotes, backslashes, braces, commas, "NULL", $1, unicode and newlines', async () => {
    const ids = [
      "it's",
      'say "hi"',
      'back\\slash',
      '\\\\',
      '{braced}',
      'a,b',
      'NULL',
      'null',
      '$1',
      ' spaced ',
      'ünï',
      "E'x'",
      '"',
      'line\nbreak',
      'tab\there',
      '[1]',
      '😀',
    ];
    const table = await hostTable(ids.map((id) => [id, 'running'] as const));
    const s = store(table);
    const parked = await parkAll(s, 4);
    const listedOrder = (await rows<{ id: string }>(`SELECT id FROM ${sqlName(table)} ORDER BY id`)).map(
      (r) => r.id,
    );
    expect(parked.flatMap((p) => outcomes(p.results))).toEqual(listedOrder.map((id) => [id, 'pausing']));
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
    const resumed = await unparkAll(s, 3);
    const markOrder = [...ids].sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1));
    expect(resumed.flatMap((p) => outcomes(p.results))).toEqual(markOrder.map((id) => [id, 'resumed']));
    expect(Object.values(await statuses(table)).every((st) => st === 'running')).toBe(true);
  });

  it('an integer id column: pages in numeric order, the cursor in its text form', async () => {
    const table = await hostTable([], 'id bigint PRIMARY KEY, status text NOT NULL');
    await db.pool.query(
      `INSERT INTO ${sqlName(table)} (id, status) SELECT g, 'running' FROM generate_series(1, 12) g`,
    );
    const s = store(table);
    const parked = await parkAll(s, 5);
    expect(parked.map((p) => [p.results.map((r) => r.id), p.cursor])).toEqual([
      [['1', '2', '3', '4', '5'], '5'],
      [['6', '7', '8', '9', '10'], '10'],
      [['11', '12'], undefined],
    ]);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id <> 7`);
    // marks page by id as text, in "C" order
    const resumed = await unparkAll(s, 5);
    expect(resumed.map((p) => [outcomes(p.results), p.pausing, p.cursor])).toEqual([
      [
        [
          ['1', 'resumed'],
          ['10', 'resumed'],
          ['11', 'resumed'],
          ['12', 'resumed'],
          ['2', 'resumed'],
        ],
        0,
        '2',
      ],
      [
        [
          ['3', 'resumed'],
          ['4', 'resumed'],
          ['5', 'resumed'],
          ['6', 'resumed'],
        ],
        1,
        '7',
      ],
      [
        [
          ['8', 'resumed'],
          ['9', 'resumed'],
        ],
        0,
        undefined,
      ],
    ]);
    expect(await marks(table)).toEqual(['7']);
  });

  it('a uuid id column and an enum status column', async () => {
    const type = uniqueName('wf_state');
    await db.pool.query(
      `CREATE TYPE "${db.schema}"."${type}" AS ENUM ('RUNNING', 'PAUSING', 'PAUSED', 'DONE')`,
    );
    const table = await hostTable([], `id uuid PRIMARY KEY, status "${db.schema}"."${type}" NOT NULL`);
    const ids = [
      '00000000-0000-0000-0000-000000000003',
      '00000000-0000-0000-0000-000000000001',
      '00000000-0000-0000-0000-000000000002',
    ];
    for (const id of ids) {
      await db.pool.query(`INSERT INTO ${sqlName(table)} (id, status) VALUES ($1, 'RUNNING')`, [id]);
    }
    const s = store(table, { statuses: { running: 'RUNNING', pausing: 'PAUSING', paused: 'PAUSED' } });
    const parked = await parkAll(s, 2);
    expect(parked.flatMap((p) => outcomes(p.results))).toEqual([...ids].sort().map((id) => [id, 'pausing']));
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'PAUSED' WHERE id = $1`, [ids[1]]);
    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(page).toEqual({ results: [{ id: ids[1], outcome: 'resumed' }], pausing: 2, cursor: undefined });
    expect(await marks(table)).toEqual([ids[2], ids[0]]);
  });
});

describe('PostgresWorkflowStore pages and the owner column: an evicted incarnation', () => {
  it('parkPage and unparkPage of an evicted incarnation: EvictedMemberError, nothing written', async () => {
    const table = await hostTable(
      [
        ['a', 'running'],
        ['b', 'running'],
      ],
      'id text PRIMARY KEY, status text NOT NULL, owner text',
    );
    const s = store(table, { ownerColumn: 'owner' });
    const evictMembers = s.evictMembers;
    if (evictMembers === undefined) throw new Error('no owner capability');
    // b parked and paused before the eviction, so an unpark would have something to write
    await s.park(['b'], fence(1n, 'm1', 'inc-1'));
    await setStatus(table, 'b', 'paused');
    await evictMembers('g', [{ memberId: 'm1', incarnation: 'inc-1' }], fence(2n, 'm2', 'inc-2'));
    const before = await everything(table);
    for (const call of [
      () => s.parkPage(fence(3n, 'm1', 'inc-1'), { limit: 10 }),
      () => s.unparkPage(fence(3n, 'm1', 'inc-1'), { limit: 10 }),
      () => s.parkPage(fence(undefined, 'm1', 'inc-1'), { limit: 10 }),
    ]) {
      const error = await rejection(call());
      expect(error).toBeInstanceOf(EvictedMemberError);
      expect(error).toMatchObject({ memberId: 'm1', incarnation: 'inc-1' });
      expect(await everything(table)).toEqual(before);
    }
    // another incarnation of the same member id is not affected
    expect(outcomes((await s.parkPage(fence(3n, 'm1', 'inc-3'), { limit: 10 })).results)).toEqual([
      ['a', 'pausing'],
    ]);
    expect((await s.unparkPage(fence(3n, 'm1', 'inc-3'), { limit: 10 })).results).toEqual([
      { id: 'b', outcome: 'resumed' },
    ]);
  });
});

describe('PostgresWorkflowStore pages and other transactions', () => {
  it('parkPage waits for a host row lock, then judges the row as it is: finished, skipped; touched, parked', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'running'],
      ['d', 'running'],
    ]);
    const { store: s, waiting } = await namedStore(table);
    const host = await hostTransaction();
    // b finishes; c only has a column of its own touched (a heartbeat): it is still running
    await host.run(`UPDATE ${sqlName(table)} SET status = 'succeeded' WHERE id = 'b'`);
    await host.run(`UPDATE ${sqlName(table)} SET beat = beat + 1 WHERE id = 'c'`);
    const parking = s.parkPage(fence(1n), { limit: 10 });
    await waitFor('the page to wait on the host row lock', waiting);
    await host.commit();
    const page = await parking;
    expect(outcomes(page.results)).toEqual([
      ['a', 'pausing'],
      ['b', 'skipped'],
      ['c', 'pausing'],
      ['d', 'pausing'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'pausing', b: 'succeeded', c: 'pausing', d: 'pausing' });
    expect(await marks(table)).toEqual(['a', 'c', 'd']);
  });

  it('unparkPage waits for a host row lock; a workflow the host resumed meanwhile is skipped, its mark gone', async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b', 'c'], 'gd_pages');
    const host = await hostTransaction();
    await host.run(`SELECT * FROM ${sqlName(table)} WHERE id = 'b' FOR UPDATE`);
    await host.run(`UPDATE ${sqlName(table)} SET beat = beat + 1 WHERE id = 'c'`);
    const unparking = s.unparkPage(fence(2n), { limit: 10 });
    await waitFor('the page to wait on the host row lock', waiting);
    await host.commit();
    expect(outcomes((await unparking).results)).toEqual([
      ['a', 'resumed'],
      ['b', 'resumed'],
      ['c', 'resumed'],
    ]);
    // b held by a host transaction that cancels it: the page waits, then finds it cancelled
    const other = await parkedTable(['a', 'b'], 'gd_pages');
    const again = other.table;
    const cancelling = await hostTransaction();
    await cancelling.run(`SELECT * FROM ${sqlName(again)} WHERE id = 'b' FOR UPDATE`);
    const second = other.store.unparkPage(fence(2n), { limit: 10 });
    await waitFor('the page to wait on the host row lock', other.waiting);
    await cancelling.run(`UPDATE ${sqlName(again)} SET status = 'cancelled' WHERE id = 'b'`);
    await cancelling.commit();
    expect(outcomes((await second).results)).toEqual([
      ['a', 'resumed'],
      ['b', 'skipped'],
    ]);
    expect(await statuses(again)).toEqual({ a: 'running', b: 'cancelled' });
    expect(await marks(again)).toEqual([]);
  });

  it('unpark() and a host cancelling a parked workflow at the same time: no deadlock (the trigger drops the mark)', async () => {
    // unpark() deleted the marks first and then waited for the host's row, while the host's update held
    // the row and its mark trigger waited for the mark: a deadlock, one of the two rolled back.
    const { table, store: s, waiting } = await parkedTable(['a', 'b'], 'gd_pages', { via: 'park' });
    const host = await hostTransaction();
    await host.run(`SELECT * FROM ${sqlName(table)} WHERE id = 'b' FOR UPDATE`);
    const unparking = s.unpark(['a', 'b'], fence(2n));
    await waitFor('the unpark to wait on the host row lock', waiting);
    await host.run(`UPDATE ${sqlName(table)} SET status = 'cancelled' WHERE id = 'b'`);
    await host.commit();
    expect(outcomes(await unparking)).toEqual([
      ['a', 'resumed'],
      ['b', 'skipped'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'running', b: 'cancelled' });
    expect(await marks(table)).toEqual([]);
  });

  it('unpark() waits for notePaused() holding the mark: the workflow a user paused is not resumed', async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b'], 'gd_pages', { via: 'park' });
    // the user's pause path, inside a transaction of the host's: notePaused's delete, as a statement
    const host = await hostTransaction();
    await host.run(`DELETE FROM "${db.schema}".parked WHERE store_key = '${table}' AND workflow_id = 'b'`);
    const unparking = s.unpark(['a', 'b'], fence(2n));
    await waitFor('the unpark to wait on the mark', waiting);
    await host.commit();
    expect(outcomes(await unparking)).toEqual([
      ['a', 'resumed'],
      ['b', 'skipped'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'running', b: 'paused' });
  });

  it('unparkPage() and notePaused() at once: the workflow a user paused is not resumed, its mark gone', async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b', 'c'], 'gd_pages');
    // The user's pause path inside a transaction of the host's: notePaused's delete of b's mark.
    const host = await hostTransaction();
    await host.run(`DELETE FROM "${db.schema}".parked WHERE store_key = '${table}' AND workflow_id = 'b'`);
    const unparking = s.unparkPage(fence(2n), { limit: 10 });
    await waitFor('the page to wait on the mark', waiting);
    // The page holds the rows of a, b and c and waits for b's mark: nobody sees b running.
    expect((await statuses(table)).b).toBe('paused');
    await host.commit();
    expect(outcomes((await unparking).results)).toEqual([
      ['a', 'resumed'],
      ['b', 'skipped'],
      ['c', 'resumed'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'running', b: 'paused', c: 'running' });
    expect(await marks(table)).toEqual([]);
  });

  it('unparkPage() waits for a host moving a paused workflow back to pausing: its mark is kept, counted as pausing', async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b'], 'gd_pages');
    const host = await hostTransaction();
    await host.run(`UPDATE ${sqlName(table)} SET status = 'pausing' WHERE id = 'b'`);
    const unparking = s.unparkPage(fence(2n), { limit: 10 });
    await waitFor('the page to wait on the host row lock', waiting);
    await host.commit();
    const page = await unparking;
    expect(outcomes(page.results)).toEqual([['a', 'resumed']]);
    expect(page.pausing).toBe(1);
    expect(await statuses(table)).toEqual({ a: 'running', b: 'pausing' });
    expect(await marks(table)).toEqual(['b']);
  });

  for (const method of ['parkPage', 'unparkPage'] as const) {
    it(`${method} stuck on a host row lock: aborting rejects at once and rolls back`, async () => {
      const table = await hostTable([
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const { store: s, waiting, idle } = await namedStore(table);
      if (method === 'unparkPage') {
        await s.parkPage(fence(1n), { limit: 10 });
        await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
      }
      const before = await everything(table);
      const host = await hostTransaction();
      await host.run(`SELECT * FROM ${sqlName(table)} WHERE id = 'b' FOR UPDATE`);
      const controller = new AbortController();
      const call = rejection(s[method](fence(2n), { limit: 10, signal: controller.signal }));
      await waitFor('the page to wait on the host row lock', waiting);
      const reason = new Error(`${method} given up`);
      controller.abort(reason);
      expect(await call).toBe(reason);
      // cancelled and rolled back while the host still holds its lock
      await waitFor('the rollback', idle);
      await host.rollback();
      expect(await everything(table)).toEqual(before);
    });
  }

  it('an already aborted signal: rejects with its reason, nothing sent', async () => {
    const table = await hostTable([['a', 'running']]);
    const s = store(table);
    await s.listActive({ limit: 1 });
    const before = await everything(table);
    const reason = new Error('aborted before');
    const signal = AbortSignal.abort(reason);
    expect(await rejection(s.parkPage(fence(1n), { limit: 5, signal }))).toBe(reason);
    expect(await rejection(s.unparkPage(fence(1n), { limit: 5, signal }))).toBe(reason);
    expect(await everything(table)).toEqual(before);
  });
});

describe('DrainController over the PostgreSQL store with parkPage and unparkPage', () => {
  it('a last member shutdown parks everything page by page; the next start resumes everything', async () => {
    const n = 1234;
    const table = await hostTable([]);
    await db.pool.query(
      `INSERT INTO ${sqlName(table)} (id, status) SELECT 'wf-' || lpad(g::text, 5, '0'), 'running'
       FROM generate_series(1, ${n}) g`,
    );
    await db.pool.query(`INSERT INTO ${sqlName(table)} (id, status) VALUES ('user-paused', 'paused')`);
    const s = store(table, { statuses: { running: 'running', paused: 'paused' } });
    const calls = { parkPage: 0, unparkPage: 0, park: 0, unpark: 0 };
    for (const name of Object.keys(calls) as (keyof typeof calls)[]) {
      const original = s[name].bind(s) as (...args: unknown[]) => Promise<unknown>;
      Object.defineProperty(s, name, {
        value: (...args: unknown[]) => {
          calls[name]++;
          return original(...args);
        },
      });
    }
    const backend = new MemoryBackend();
    const group = uniqueName('pages');
    const controller = () => {
      const coordinator = new MemoryCoordinator({ backend });
      cleanup.push(() => coordinator.close());
      return new DrainController({ group, coordinator, store: s, batchSize: 100 });
    };
    const first = controller();
    await first.start();
    await first.whenResumed();
    const report = await first.shutdown();
    expect(report.handOff).toBe('parked');
    expect(calls.parkPage).toBeGreaterThanOrEqual(13);
    expect(calls.park).toBe(0);
    const parked = await statuses(table);
    expect(Object.values(parked).filter((st) => st === 'paused')).toHaveLength(n + 1);
    expect((await marks(table)).length).toBe(n);

    const second = controller();
    await second.start();
    const resumed = await second.whenResumed();
    expect(resumed).toMatchObject({ complete: true, resumed: n });
    expect(calls.unparkPage).toBeGreaterThanOrEqual(13);
    expect(calls.unpark).toBe(0);
    const after = await statuses(table);
    expect(after['user-paused']).toBe('paused');
    expect(Object.values(after).filter((st) => st === 'running')).toHaveLength(n);
    expect(await marks(table)).toEqual([]);
    await second.shutdown();
  });
});
