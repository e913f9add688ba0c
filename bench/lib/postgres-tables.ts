import pg from 'pg';
import type * as Postgres from 'graceful-drain/postgres';
import { POSTGRES_URL, serverMissing, uniqueName } from '../../harness/servers.js';
import { postgres } from './library.js';

/**
 * The PostgreSQL side of the parking suites: a `pg.Pool` (max 4) on the server, a schema of the run's
 * own with graceful-drain's tables (`migrate()`), a host table `workflows (id text PRIMARY KEY, status
 * text NOT NULL)` with an index on `status`, a `raw_marks` table shaped like the store's marks table
 * for the raw baseline, and the store over them.
 */
export interface PostgresTables {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly store: Postgres.PostgresWorkflowStore;
  /** The server's version, `16.4`. */
  readonly version: string;
  /** The raw baseline: one statement that pauses every running workflow and marks it. */
  readonly rawPark: string;
  /** The raw baseline: one statement that resumes every marked workflow and drops the marks. */
  readonly rawUnpark: string;
  /** Empties the tables (the recovery counts too), fills `workflows` with `n` running ones, and vacuums. */
  reset(n: number): Promise<void>;
  /** Closes the store, drops the schema, ends the pool. */
  close(): Promise<void>;
}

/** Opens the pool and creates the tables; an unreachable server is said so, with what to do. */
export async function openPostgresTables(): Promise<PostgresTables> {
  const { migrate, PostgresWorkflowStore } = await postgres();
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 });
  let version: string;
  try {
    version =
      (await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '?';
  } catch (error) {
    await pool.end();
    throw serverMissing('PostgreSQL', 'GD_POSTGRES_URL', error);
  }
  const schema = uniqueName('gd_bench');
  const s = `"${schema}"`;
  const dropAll = async (): Promise<void> => {
    await pool.query(`DROP SCHEMA ${s} CASCADE`).catch(() => undefined);
    await pool.end();
  };
  try {
    await migrate(pool, { schema });
    await pool.query(`CREATE TABLE ${s}.workflows (id text PRIMARY KEY, status text NOT NULL)`);
    await pool.query(`CREATE INDEX ON ${s}.workflows (status)`);
    await pool.query(`CREATE TABLE ${s}.raw_marks (LIKE ${s}.parked INCLUDING ALL)`);
  } catch (error) {
    await dropAll();
    throw error;
  }
  const store = new PostgresWorkflowStore({ pool, table: `${schema}.workflows`, schema });
  return {
    pool,
    schema,
    store,
    version: version.split(' ')[0] ?? version,
    rawPark: `WITH p AS (UPDATE ${s}.workflows SET status = 'paused' WHERE status = 'running' RETURNING id)
      INSERT INTO ${s}.raw_marks (store_key, workflow_id, member_id, token) SELECT 'raw', id, 'raw', 1 FROM p`,
    rawUnpark: `WITH m AS (DELETE FROM ${s}.raw_marks WHERE store_key = 'raw' RETURNING workflow_id)
      UPDATE ${s}.workflows t SET status = 'running' FROM m WHERE t.id = m.workflow_id AND t.status = 'paused'`,
    async reset(n) {
      // The recovery counts too: a clean end deletes them, and a million dead rows left for the next
      // round (autovacuum has not come yet in a bench) would slow its recovery's inserts of counts.
      await pool.query(`TRUNCATE ${s}.workflows, ${s}.parked, ${s}.raw_marks, ${s}.parked_recoveries`);
      await pool.query(
        `INSERT INTO ${s}.workflows SELECT 'wf-' || lpad(g::text, 8, '0'), 'running' FROM generate_series(1, $1::int) g`,
        [n],
      );
      for (const table of ['workflows', 'parked', 'raw_marks', 'parked_recoveries'])
        await pool.query(`VACUUM ANALYZE ${s}.${table}`);
    },
    async close() {
      await store.close();
      await dropAll();
    },
  };
}
