import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PostgresWorkflowStore, type PostgresWorkflowStoreOptions } from '../src/adapters/postgres/index.js';
import { ClosedError, ConfigurationError, StaleTokenError } from '../src/errors.js';
import type { HostStatus, WorkflowStoreHarness } from '../src/testing/index.js';
import { workflowStoreContract } from '../src/testing/vitest/index.js';
import { POSTGRES_URL, uniqueName } from './support/env.js';
import { STATUSES, pgStoreTables, sqlName } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_store', { strictClose: true });
const { db } = tables;

/** The store's tables in the schema, each keyed by the host table's name. */
const KEYED_TABLES = [
  'parked',
  'store_fences',
  'parked_generations',
  'parked_generation_members',
  'parked_recoveries',
  'parked_incarnations',
];

/** A new host table `(id text, status text)`, or of `columns`, in the test schema; its qualified name. */
const hostTable = (columns?: string): Promise<string> => tables.hostTable([], columns);

/**
 * A harness over a fresh host table, with the store on the shared pool or on a client of its own; with
 * `failed`, the store moves a workflow recovered too often to `failed` (else it keeps its status); with
 * `owners`, the table has an owner column and the store the owner capability.
 */
async function harness(
  via: 'pool' | 'client',
  failed?: 'failed',
  owners = false,
): Promise<WorkflowStoreHarness> {
  const table = await hostTable(`id text PRIMARY KEY, status text NOT NULL${owners ? ', owner text' : ''}`);
  const t = sqlName(table);
  let client: pg.Client | undefined;
  if (via === 'client') {
    client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
  }
  const store = new PostgresWorkflowStore({
    ...(client === undefined ? { pool: db.pool } : { client }),
    table,
    schema: db.schema,
    statuses: { ...STATUSES, failed },
    ...(owners ? { ownerColumn: 'owner' } : {}),
  });
  return {
    store,
    add: async (id, status) => {
      await db.pool.query(`INSERT INTO ${t} (id, status) VALUES ($1, $2)`, [id, status]);
    },
    status: async (id) => {
      const { rows } = await db.pool.query<{ status: HostStatus }>(`SELECT status FROM ${t} WHERE id = $1`, [
        id,
      ]);
      return rows[0]?.status;
    },
    setStatus: async (id, status) => {
      await db.pool.query(`UPDATE ${t} SET status = $2 WHERE id = $1`, [id, status]);
    },
    ...(owners
      ? {
          setOwner: async (id: string, owner: string | undefined) => {
            await db.pool.query(`UPDATE ${t} SET owner = $2 WHERE id = $1`, [id, owner ?? null]);
          },
        }
      : {}),
    close: async () => {
      await store.close();
      await client?.end();
      await db.pool.query(`DROP TABLE ${t}`);
      for (const keyed of KEYED_TABLES)
        await db.pool.query(`DELETE FROM "${db.schema}".${keyed} WHERE store_key = $1`, [table]);
    },
  };
}

workflowStoreContract(() => harness('pool', 'failed', true), {
  name: 'PostgresWorkflowStore (pool, ownerColumn)',
});
workflowStoreContract(() => harness('client'), { name: 'PostgresWorkflowStore (client)' });

/**
 * A store over `options.table`, on the shared pool unless `options` give another source; closed after the
 * test, a close() that rejects failing it.
 */
const store = ({ table, ...options }: Partial<PostgresWorkflowStoreOptions> & { table: string }) =>
  tables.store(table, options);

const member = 'm1';

describe('PostgresWorkflowStore', () => {
  it('refuses names that are not plain identifiers, naming the option and the value', () => {
    const cases: [Partial<PostgresWorkflowStoreOptions>, string][] = [
      [{ table: 'wf; DROP TABLE x' }, '`table`'],
      [{ table: 'a.b.c' }, '`table`'],
      [{ table: '"quoted"' }, '`table`'],
      [{ table: 'public.' }, '`table`'],
      [{ table: 'wf', idColumn: 'id"; --' }, '`idColumn`'],
      [{ table: 'wf', statusColumn: '' }, '`statusColumn`'],
      [{ table: 'wf', schema: 'my schema' }, '`schema`'],
      [{ table: 'x'.repeat(64) }, '`table`'],
    ];
    for (const [options, name] of cases) {
      const value = Object.values(options).at(-1) as string;
      let error: unknown;
      try {
        new PostgresWorkflowStore({ pool: db.pool, table: 'wf', ...options });
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toContain(name);
      expect((error as Error).message).toContain(JSON.stringify(value));
    }
  });

  it('rejects invalid options', () => {
    expect(() => new PostgresWorkflowStore({ table: 'wf' })).toThrow(/exactly one of `client`, `pool`/);
    expect(() => new PostgresWorkflowStore({ pool: db.pool, client: db.pool, table: 'wf' })).toThrow(
      /`client` and `pool`/,
    );
    expect(() => new PostgresWorkflowStore({ pool: {} as never, table: 'wf' })).toThrow(/`pool`/);
    expect(
      () =>
        new PostgresWorkflowStore({ pool: db.pool, table: 'wf', statuses: { running: 'x', paused: 'x' } }),
    ).toThrow(/`statuses` to hold distinct values/);
    expect(
      () => new PostgresWorkflowStore({ pool: db.pool, table: 'wf', statuses: { running: 'r' } as never }),
    ).toThrow(/`statuses.paused`/);
    expect(() => new PostgresWorkflowStore({ pool: db.pool, table: 'wf', idcolumn: 'id' } as never)).toThrow(
      /did you mean `idColumn`/,
    );
  });

  it('a missing table or column is a ConfigurationError at first use', async () => {
    const missing = store({ table: `${db.schema}.no_such_table` });
    await expect(missing.listActive({ limit: 1 })).rejects.toThrow(/`table`.*no_such_table/);
    const table = await hostTable();
    await expect(store({ table, idColumn: 'uuid' }).listActive({ limit: 1 })).rejects.toThrow(
      /`idColumn`.*"uuid"/,
    );
    await expect(
      store({ table, statusColumn: 'state' }).park(['x'], { memberId: member, token: 1n }),
    ).rejects.toThrow(ConfigurationError);
    // names are used as written: no case folding
    await expect(store({ table: table.toUpperCase() }).listActive({ limit: 1 })).rejects.toThrow(
      ConfigurationError,
    );
  });

  it('rejects invalid arguments', async () => {
    const s = store({ table: await hostTable() });
    await expect(s.park('a' as never, { memberId: member, token: undefined })).rejects.toThrow(/`ids`/);
    await expect(s.park(['a'], { memberId: '', token: undefined })).rejects.toThrow(/`fence.memberId`/);
    await expect(s.park(['a'], { memberId: member, token: 1 as never })).rejects.toThrow(/`fence.token`/);
    await expect(s.listActive({ limit: 0 })).rejects.toThrow(/`limit`/);
  });

  it('the fencing high-water mark is shared by every store instance on the table', async () => {
    const table = await hostTable();
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('a', 'running'), ('b', 'running')`);
    const first = store({ table });
    const second = store({ table });
    await first.park(['a'], { memberId: 'new', token: 100n });
    const error = await second.park(['b'], { memberId: 'old', token: 99n }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StaleTokenError);
    expect(error).toMatchObject({ token: 99n, highest: 100n });
    const { rows } = await db.pool.query(`SELECT status FROM ${sqlName(table)} WHERE id = 'b'`);
    expect(rows).toEqual([{ status: 'running' }]);
  });

  it('without statuses.pausing, park writes paused directly', async () => {
    const table = await hostTable();
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('a', 'running')`);
    const s = store({ table, statuses: { running: 'running', paused: 'paused' } });
    expect(await s.park(['a'], { memberId: member, token: undefined })).toEqual([
      { id: 'a', outcome: 'paused' },
    ]);
    expect((await s.listParked({ limit: 10 })).items).toEqual([
      { id: 'a', state: 'paused', memberId: member, token: undefined },
    ]);
  });

  it('maps an integer id column and an enum status column, paging in the column order', async () => {
    const type = uniqueName('wf_state');
    await db.pool.query(
      `CREATE TYPE "${db.schema}"."${type}" AS ENUM ('RUNNING', 'PAUSING', 'PAUSED', 'DONE')`,
    );
    const table = await hostTable(`wf_id bigint PRIMARY KEY, state "${db.schema}"."${type}" NOT NULL`);
    await db.pool.query(
      `INSERT INTO ${sqlName(table)} SELECT g, (CASE WHEN g = 5 THEN 'DONE' ELSE 'RUNNING' END)::"${db.schema}"."${type}"
       FROM generate_series(1, 12) g`,
    );
    const s = store({
      table,
      idColumn: 'wf_id',
      statusColumn: 'state',
      statuses: { running: 'RUNNING', pausing: 'PAUSING', paused: 'PAUSED' },
    });
    const first = await s.listActive({ limit: 3 });
    expect(first.items).toEqual(['1', '2', '3']);
    const rest = await s.listActive({ limit: 100, cursor: first.cursor });
    expect(rest).toEqual({ items: ['4', '6', '7', '8', '9', '10', '11', '12'], cursor: undefined });
    // an id that is not a bigint is skipped, not an error for the whole batch
    expect(await s.park(['10', 'not-a-number', '2', '5', '99'], { memberId: member, token: 7n })).toEqual([
      { id: '10', outcome: 'pausing' },
      { id: 'not-a-number', outcome: 'skipped' },
      { id: '2', outcome: 'pausing' },
      { id: '5', outcome: 'skipped' },
      { id: '99', outcome: 'skipped' },
    ]);
    await db.pool.query(`UPDATE ${sqlName(table)} SET state = 'PAUSED' WHERE wf_id = 10`);
    expect((await s.listParked({ limit: 10 })).items).toEqual([
      { id: '10', state: 'paused', memberId: member, token: 7n },
      { id: '2', state: 'pausing', memberId: member, token: 7n },
    ]);
    expect(await s.unpark(['2', '10'], { memberId: member, token: 8n })).toEqual([
      { id: '2', outcome: 'skipped' },
      { id: '10', outcome: 'resumed' },
    ]);
    const { rows } = await db.pool.query(
      `SELECT wf_id::int AS id, state::text FROM ${sqlName(table)} WHERE wf_id IN (2, 10) ORDER BY 1`,
    );
    expect(rows).toEqual([
      { id: 2, state: 'PAUSING' },
      { id: 10, state: 'RUNNING' },
    ]);
  });

  it('duplicate ids in one batch: the first occurrence gets the outcome, the others are skipped', async () => {
    const table = await hostTable();
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('a', 'running')`);
    const s = store({ table });
    expect(await s.park(['a', 'a'], { memberId: member, token: undefined })).toEqual([
      { id: 'a', outcome: 'pausing' },
      { id: 'a', outcome: 'skipped' },
    ]);
  });

  it("on one client, concurrent calls are serialised: no statement lands inside another call's transaction", async () => {
    const table = await hostTable();
    await db.pool.query(
      `INSERT INTO ${sqlName(table)} SELECT 'w' || g, 'running' FROM generate_series(1, 50) g`,
    );
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      const s = store({ table, client });
      const batches = Array.from({ length: 10 }, (_, b) =>
        Array.from({ length: 5 }, (_, i) => `w${b * 5 + i + 1}`),
      );
      const results = await Promise.all([
        ...batches.map((ids, i) =>
          s.park(ids, { memberId: member, token: BigInt(i + 1) }).catch((e: unknown) => e),
        ),
        s.listActive({ limit: 100 }),
      ]);
      // every park either wrote its batch or was refused as stale (a later token won the race): never half
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${sqlName(table)} WHERE status = 'pausing'`,
      );
      const written = results.slice(0, 10).filter((r) => Array.isArray(r)).length;
      expect(rows[0]?.n).toBe(written * 5);
      for (const r of results.slice(0, 10)) if (!Array.isArray(r)) expect(r).toBeInstanceOf(StaleTokenError);
      await s.close();
      // a client passed in is never closed by the store
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('with a connectionString, creates its own pool and ends it on close(); afterwards calls reject', async () => {
    const table = await hostTable();
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('a', 'running')`);
    const s = store({ table, connectionString: POSTGRES_URL });
    expect((await s.listActive({ limit: 10 })).items).toEqual(['a']);
    await s.close();
    await s.close();
    await expect(s.listActive({ limit: 10 })).rejects.toThrow(ClosedError);
    // the shared pool (never passed to it) is untouched
    expect((await db.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('parks 10 000 workflows in batches of 1000, page after page, and unparks them', async () => {
    const table = await hostTable();
    const t = sqlName(table);
    await db.pool.query(
      `INSERT INTO ${t} SELECT 'wf-' || lpad(g::text, 5, '0'), 'running' FROM generate_series(1, 10000) g`,
    );
    await db.pool.query(`INSERT INTO ${t} VALUES ('user-paused', 'paused')`);
    const s = store({ table });
    const fence = { memberId: member, token: 42n };
    let parked = 0;
    let batches = 0;
    for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
      const page = await s.listActive(cursor === undefined ? { limit: 1000 } : { limit: 1000, cursor });
      const results = await s.park(page.items, fence);
      parked += results.filter((r) => r.outcome === 'pausing').length;
      batches += page.items.length > 0 ? 1 : 0;
      cursor = page.cursor;
    }
    expect(parked).toBe(10_000);
    expect(batches).toBe(10);
    const counts = await db.pool.query(`SELECT status, count(*)::int AS n FROM ${t} GROUP BY 1 ORDER BY 1`);
    expect(counts.rows).toEqual([
      { status: 'paused', n: 1 },
      { status: 'pausing', n: 10_000 },
    ]);
    await db.pool.query(`UPDATE ${t} SET status = 'paused' WHERE status = 'pausing'`);
    let resumed = 0;
    for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
      const page = await s.listParked(cursor === undefined ? { limit: 1000 } : { limit: 1000, cursor });
      expect(page.items.every((p) => p.state === 'paused' && p.token === 42n)).toBe(true);
      const results = await s.unpark(
        page.items.map((p) => p.id),
        fence,
      );
      resumed += results.filter((r) => r.outcome === 'resumed').length;
      cursor = page.cursor;
    }
    expect(resumed).toBe(10_000);
    const after = await db.pool.query(`SELECT status, count(*)::int AS n FROM ${t} GROUP BY 1 ORDER BY 1`);
    expect(after.rows).toEqual([
      { status: 'paused', n: 1 },
      { status: 'running', n: 10_000 },
    ]);
    expect((await s.listParked({ limit: 10 })).items).toEqual([]);
  });
});
