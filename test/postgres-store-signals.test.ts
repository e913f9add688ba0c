/**
 * PostgresWorkflowStore and AbortSignal: a call given up before its COMMIT is rolled back and rejects
 * with the signal's reason, a statement stuck on a row lock of the host's is cancelled, and nothing the
 * caller gave up on lands later. And the fence: once the next lock holder raised it, a write sent under
 * an older token is rejected.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  PostgresWorkflowStore,
  type PgPool,
  type PgPoolClient,
  type PostgresWorkflowStoreOptions,
} from '../src/adapters/postgres/index.js';
import { StaleTokenError } from '../src/errors.js';
import { urlWithApplicationName } from './fixtures/postgres-setup.js';
import { uniqueName } from './support/env.js';
import { STATUSES, pgStoreTables, settle, sqlName, waitFor } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_signals');
const { db, cleanup, hostTable, store: storeOver, waitingOnLock, allIdle, holdLock } = tables;

/** What the park would have written: statuses, marks and the fence row. */
async function written(table: string): Promise<{ statuses: string[]; marks: number; fence: string | null }> {
  const { rows } = await db.pool.query<{ status: string }>(
    `SELECT status FROM ${sqlName(table)} ORDER BY id`,
  );
  const marks = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".parked WHERE store_key = $1`,
    [table],
  );
  const fence = await db.pool.query<{ token: string }>(
    `SELECT token::text AS token FROM "${db.schema}".store_fences WHERE store_key = $1`,
    [table],
  );
  return {
    statuses: rows.map((r) => r.status),
    marks: marks.rows[0]?.n ?? 0,
    fence: fence.rows[0]?.token ?? null,
  };
}

/** A store on a connection (or pool) of its own, named so that its backends can be found. */
async function namedStore(
  table: string,
  via: 'pool' | 'client',
  extra: Partial<PostgresWorkflowStoreOptions> = {},
): Promise<{ store: PostgresWorkflowStore; application: string }> {
  const application = uniqueName('gd_sig');
  const url = urlWithApplicationName(application);
  let source: Pick<PostgresWorkflowStoreOptions, 'pool' | 'client'>;
  if (via === 'pool') {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
    cleanup.push(() => pool.end());
    source = { pool };
  } else {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    cleanup.push(() => client.end());
    source = { client };
  }
  const store = storeOver(table, { ...source, ...extra });
  // First use (checks, trigger) done beforehand: the statement that blocks is the call's own.
  await store.listActive({ limit: 1 });
  return { store, application };
}

/** Another session holding the rows of `table` locked, as a host's transaction would. */
const lockRows = (table: string, how = 'SELECT * FROM %t FOR UPDATE'): Promise<() => Promise<void>> =>
  holdLock(how.replace('%t', sqlName(table)));

describe('PostgresWorkflowStore with an AbortSignal', () => {
  for (const via of ['pool', 'client'] as const) {
    it(`park() stuck on a host row lock (${via}): aborting rejects at once, and the park never lands`, async () => {
      const table = await hostTable([
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const { store, application } = await namedStore(table, via);
      const release = await lockRows(table);
      const controller = new AbortController();
      const outcome = settle(
        store.park(['a', 'b'], { memberId: 'm', token: 5n }, { signal: controller.signal }),
      );
      await waitFor('the park to wait on the row lock', waitingOnLock(application));
      const reason = new Error('the shutdown gave up on this park');
      controller.abort(reason);
      // rejected while the host still holds its lock
      expect(await outcome).toBe(reason);
      if (via === 'pool') {
        // the stuck statement was cancelled and the transaction rolled back, lock or no lock
        await waitFor('the transaction to be rolled back', allIdle(application));
      }
      await release();
      await waitFor('the transaction to be rolled back', allIdle(application));
      expect(await written(table)).toEqual({ statuses: ['running', 'running'], marks: 0, fence: null });
      // the store goes on working
      expect(await store.park(['a'], { memberId: 'm', token: 6n })).toEqual([
        { id: 'a', outcome: 'pausing' },
      ]);
    });
  }

  it('unpark() and notePaused() stuck on a row lock: aborted, they are rolled back', async () => {
    const table = await hostTable([['a', 'running']]);
    const { store, application } = await namedStore(table, 'pool');
    await store.park(['a'], { memberId: 'm', token: 1n });
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
    const release = await lockRows(table);
    const controller = new AbortController();
    const unpark = settle(store.unpark(['a'], { memberId: 'm', token: 2n }, { signal: controller.signal }));
    await waitFor('the unpark to wait on the row lock', waitingOnLock(application));
    controller.abort(new Error('unpark given up'));
    expect(await unpark).toMatchObject({ message: 'unpark given up' });
    await waitFor('the rollback', allIdle(application));
    await release();
    expect(await written(table)).toEqual({ statuses: ['paused'], marks: 1, fence: '1' });
    // notePaused waits on the mark's row lock, held here by a transaction of the host's
    const marksLock = await lockRows(table, `SELECT * FROM "${db.schema}".parked FOR UPDATE`);
    const second = new AbortController();
    const note = settle(store.notePaused(['a'], { signal: second.signal }));
    await waitFor('notePaused to wait on the row lock', waitingOnLock(application));
    second.abort(new Error('notePaused given up'));
    expect(await note).toMatchObject({ message: 'notePaused given up' });
    await waitFor('the rollback', allIdle(application));
    await marksLock();
    expect((await written(table)).marks).toBe(1);
  });

  it('a signal aborted when the call starts: rejects at once, with nothing sent', async () => {
    const table = await hostTable([['a', 'running']]);
    let sent = 0;
    const counting: PgPool = {
      query: (text, values) => {
        sent++;
        return db.pool.query(text, values);
      },
      connect: async () => {
        sent++;
        return (await db.pool.connect()) as PgPoolClient;
      },
    };
    const store = new PostgresWorkflowStore({ pool: counting, table, schema: db.schema, statuses: STATUSES });
    cleanup.push(() => store.close());
    await store.listActive({ limit: 1 });
    sent = 0;
    const reason = new Error('already given up');
    const signal = AbortSignal.abort(reason);
    const fence = { memberId: 'm', token: 9n };
    const calls: Promise<unknown>[] = [
      store.park(['a'], fence, { signal }),
      store.unpark(['a'], fence, { signal }),
      store.raiseFence(fence, { signal }),
      store.raiseFence({ memberId: 'm', token: undefined }, { signal }),
      store.notePaused(['a'], { signal }),
      store.listActive({ limit: 10, signal }),
      store.listParked({ limit: 10, signal }),
      store.diagnose({ signal }),
    ];
    for (const call of calls) expect(await settle(call)).toBe(reason);
    expect(sent).toBe(0);
    expect(await written(table)).toEqual({ statuses: ['running'], marks: 0, fence: null });
  });

  it('a call given up while it waits for a pool connection sends nothing once it gets one', async () => {
    const table = await hostTable([['a', 'running']]);
    const application = uniqueName('gd_sig');
    const pool = new pg.Pool({ connectionString: urlWithApplicationName(application), max: 1 });
    pool.on('error', () => {});
    cleanup.push(() => pool.end());
    const store = new PostgresWorkflowStore({ pool, table, schema: db.schema, statuses: STATUSES });
    cleanup.push(() => store.close());
    await store.listActive({ limit: 1 });
    const busy = await pool.connect();
    const controller = new AbortController();
    const park = settle(store.park(['a'], { memberId: 'm', token: 1n }, { signal: controller.signal }));
    await waitFor('the park to queue for a connection', async () => pool.waitingCount === 1);
    controller.abort(new Error('gave up waiting'));
    expect(await park).toMatchObject({ message: 'gave up waiting' });
    busy.release();
    await waitFor('the pool to be idle', async () => pool.waitingCount === 0 && pool.idleCount === 1);
    expect(await written(table)).toEqual({ statuses: ['running'], marks: 0, fence: null });
  });

  it('aborted once COMMIT is on its way: waits for it and reports what was committed', async () => {
    const table = await hostTable([['a', 'running']]);
    const controller = new AbortController();
    // The user's pool, seen through a wrapper that aborts the signal as the COMMIT goes out.
    const pool: PgPool = {
      query: (text, values) => db.pool.query(text, values),
      connect: async () => {
        const connection = await db.pool.connect();
        return {
          query: (text: string, values?: unknown[]) => {
            if (text === 'COMMIT') controller.abort(new Error('too late'));
            return connection.query(text, values);
          },
          release: (error?: Error | boolean) => connection.release(error),
        };
      },
    };
    const store = new PostgresWorkflowStore({ pool, table, schema: db.schema, statuses: STATUSES });
    cleanup.push(() => store.close());
    expect(await store.park(['a'], { memberId: 'm', token: 3n }, { signal: controller.signal })).toEqual([
      { id: 'a', outcome: 'pausing' },
    ]);
    expect(controller.signal.aborted).toBe(true);
    expect(await written(table)).toEqual({ statuses: ['pausing'], marks: 1, fence: '3' });
  });

  it('a read blocked by a lock of the host rejects at once when aborted', async () => {
    const table = await hostTable([['a', 'running']]);
    const { store, application } = await namedStore(table, 'pool');
    const release = await lockRows(table, 'LOCK TABLE %t IN ACCESS EXCLUSIVE MODE');
    const controller = new AbortController();
    const list = settle(store.listActive({ limit: 10, signal: controller.signal }));
    await waitFor('the read to wait on the lock', waitingOnLock(application));
    controller.abort(new Error('list given up'));
    expect(await list).toMatchObject({ message: 'list given up' });
    await release();
  });

  it('diagnose() blocked past its bound says nothing rather than wait', async () => {
    const table = await hostTable([['a', 'RUNNING']]);
    const { store } = await namedStore(table, 'pool');
    const release = await lockRows(table, 'LOCK TABLE %t IN ACCESS EXCLUSIVE MODE');
    const started = Date.now();
    expect(await store.diagnose()).toEqual([]);
    expect(Date.now() - started).toBeLessThan(4000);
    await release();
    expect(await store.diagnose()).toHaveLength(1);
  });

  it('rejects a signal that is not an AbortSignal, and unknown options, naming them', async () => {
    const table = await hostTable([]);
    const { store } = await namedStore(table, 'pool');
    const fence = { memberId: 'm', token: 1n };
    await expect(store.park([], fence, { signal: {} } as never)).rejects.toThrow(/`signal`/);
    await expect(store.unpark([], fence, { signl: undefined } as never)).rejects.toThrow(
      /Unknown option `signl`/,
    );
    await expect(store.raiseFence(fence, { signal: 1 } as never)).rejects.toThrow(/`signal`/);
    await expect(store.listActive({ limit: 1, signal: 'x' } as never)).rejects.toThrow(/`signal`/);
    await expect(store.listParked({ limit: 0, signal: undefined })).rejects.toThrow(/`limit`/);
    await expect(store.diagnose({ signal: null } as never)).rejects.toThrow(/`signal`/);
  });
});

describe('PostgresWorkflowStore.raiseFence', () => {
  it('records the token; a write delayed in flight under an older token is rejected, writing nothing', async () => {
    const table = await hostTable([['a', 'running']]);
    const { store } = await namedStore(table, 'pool');
    await store.raiseFence({ memberId: 'old', token: 5n });
    // the next holder raises the fence before it reads...
    await store.raiseFence({ memberId: 'new', token: 6n });
    expect((await written(table)).fence).toBe('6');
    // ...so the old holder's park, arriving late, is refused
    const error = await store.park(['a'], { memberId: 'old', token: 5n }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StaleTokenError);
    expect(error).toMatchObject({ token: 5n, highest: 6n });
    expect(await written(table)).toEqual({ statuses: ['running'], marks: 0, fence: '6' });
    // an older raise is refused too; the same one again and no token are fine
    await expect(store.raiseFence({ memberId: 'old', token: 5n })).rejects.toBeInstanceOf(StaleTokenError);
    await store.raiseFence({ memberId: 'new', token: 6n });
    await store.raiseFence({ memberId: 'any', token: undefined });
    expect((await written(table)).fence).toBe('6');
    await expect(store.raiseFence({ memberId: '', token: 1n })).rejects.toThrow(/`fence.memberId`/);
  });

  it('waits for a park in flight that holds the fence; once that park is given up, the fence rises and the park never lands', async () => {
    const table = await hostTable([['a', 'running']]);
    const old = await namedStore(table, 'pool');
    const next = await namedStore(table, 'pool');
    const release = await lockRows(table);
    const controller = new AbortController();
    const park = settle(old.store.park(['a'], { memberId: 'old', token: 5n }, { signal: controller.signal }));
    await waitFor('the park to wait on the host row', waitingOnLock(old.application));
    const raise = settle(next.store.raiseFence({ memberId: 'new', token: 6n }));
    await waitFor('the raise to wait on the fence row', waitingOnLock(next.application));
    controller.abort(new Error('the old shutdown gave up'));
    expect(await park).toMatchObject({ message: 'the old shutdown gave up' });
    expect(await raise).toEqual({ resolved: undefined });
    await release();
    await waitFor('the rollback', allIdle(old.application));
    expect(await written(table)).toEqual({ statuses: ['running'], marks: 0, fence: '6' });
  });
});
