/**
 * PostgresWorkflowStore on a pool: a connection that drops while the store has it checked out for a
 * transaction makes that call reject, and nothing else. Found by the chaos harness (a member process
 * crashed with "Unhandled 'error' event" on a pg Client when its server connections were dropped):
 * a checked-out `pg.PoolClient` has no listener of the pool's, so its 'error' event went unhandled.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PostgresWorkflowStore } from '../src/adapters/postgres/index.js';
import { urlWithApplicationName } from './fixtures/postgres-setup.js';
import { uniqueName } from './support/env.js';
import { STATUSES, pgStoreTables, sqlName, waitFor } from './support/pg-store-tables.js';
import { TcpProxy } from './support/tcp-proxy.js';

const { db, hostTable } = pgStoreTables('gd_pg_store_loss');

describe('PostgresWorkflowStore on a pool, when a connection drops mid-transaction', () => {
  for (const operation of ['park', 'unpark'] as const) {
    it(`${operation}() rejects, and the process does not crash`, async () => {
      const table = await hostTable([['a', 'running']]);
      const t = sqlName(table);
      const target = new URL(db.pool.options.connectionString as string);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      const port = await proxy.listen();
      const url = new URL(urlWithApplicationName(uniqueName('gd_loss')));
      url.hostname = '127.0.0.1';
      url.port = String(port);
      const application = url.searchParams.get('application_name') as string;
      // The user's pool, set up as its documentation says: an 'error' listener for idle connections.
      const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
      pool.on('error', () => {});
      const store = new PostgresWorkflowStore({ pool, table, schema: db.schema, statuses: STATUSES });
      const crashes: unknown[] = [];
      const onCrash = (error: unknown): void => void crashes.push(error);
      process.on('uncaughtException', onCrash);
      // Another session holds the row: the store's statement waits inside its transaction.
      const holder = await db.pool.connect();
      try {
        if (operation === 'unpark') {
          await expect(store.park(['a'], { memberId: 'm', token: undefined })).resolves.toEqual([
            { id: 'a', outcome: 'pausing' },
          ]);
          await db.pool.query(`UPDATE ${t} SET status = 'paused'`);
        }
        await holder.query('BEGIN');
        await holder.query(`SELECT * FROM ${t} FOR UPDATE`);
        const call =
          operation === 'park'
            ? store.park(['a'], { memberId: 'm', token: 1n })
            : store.unpark(['a'], { memberId: 'm', token: 2n });
        const settled = call.then(
          () => 'resolved',
          (error: unknown) => error,
        );
        await waitFor('the store to wait on the row lock', async () => {
          const { rows } = await db.pool.query(
            `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
            [application],
          );
          return rows.length > 0;
        });
        proxy.dropAll();
        const outcome = await settled;
        // Let the socket's close and error events play out.
        await new Promise((r) => setTimeout(r, 100));
        expect(outcome).toBeInstanceOf(Error);
        expect(crashes).toEqual([]);
        // The store goes on working once the path is back, on a fresh connection.
        await holder.query('ROLLBACK');
        // The write that lost its connection was rolled back: only an unpark's workflow is still parked.
        const page = await store.listParked({ limit: 10 });
        expect(page.items.map((item) => item.id)).toEqual(operation === 'unpark' ? ['a'] : []);
      } finally {
        process.off('uncaughtException', onCrash);
        await holder.query('ROLLBACK').catch(() => {});
        holder.release();
        await store.close();
        await pool.end();
        await proxy.close();
        await db.pool.query(`DROP TABLE ${t}`);
      }
    });
  }
});
