import pg from 'pg';
import { postgres } from '../lib/library.js';
import { runParkSuite, type ParkBackend } from '../lib/park-harness.js';
import type { Suite } from '../lib/result.js';
import { POSTGRES_URL, serverMissing, uniqueName } from '../lib/servers.js';

async function open(): Promise<ParkBackend> {
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
  await migrate(pool, { schema });
  await pool.query(`CREATE TABLE ${s}.workflows (id text PRIMARY KEY, status text NOT NULL)`);
  await pool.query(`CREATE INDEX ON ${s}.workflows (status)`);
  // The raw baseline's marks: the same shape as the store's own table.
  await pool.query(`CREATE TABLE ${s}.raw_marks (LIKE ${s}.parked INCLUDING ALL)`);
  const store = new PostgresWorkflowStore({ pool, table: `${schema}.workflows`, schema });
  const counts = async (): Promise<{ running: number; paused: number }> => {
    const { rows } = await pool.query<{ running: number; paused: number }>(
      `SELECT count(*) FILTER (WHERE status = 'running')::int AS running,
              count(*) FILTER (WHERE status = 'paused')::int AS paused FROM ${s}.workflows`,
    );
    return rows[0] ?? { running: -1, paused: -1 };
  };
  const rawPark = `WITH p AS (UPDATE ${s}.workflows SET status = 'paused' WHERE status = 'running' RETURNING id)
    INSERT INTO ${s}.raw_marks (store_key, workflow_id, member_id, token) SELECT 'raw', id, 'raw', 1 FROM p`;
  const rawUnpark = `WITH m AS (DELETE FROM ${s}.raw_marks WHERE store_key = 'raw' RETURNING workflow_id)
    UPDATE ${s}.workflows t SET status = 'running' FROM m WHERE t.id = m.workflow_id AND t.status = 'paused'`;
  return {
    name: `PostgreSQL ${version.split(' ')[0]}`,
    description:
      `PostgreSQL: host table \`workflows (id text PRIMARY KEY, status text NOT NULL)\` with an index on ` +
      `\`status\`, rebuilt (TRUNCATE, INSERT, VACUUM ANALYZE) before every run; the store on a \`pg.Pool\` ` +
      `(max 4). Raw park: \`WITH p AS (UPDATE workflows SET status = 'paused' WHERE status = 'running' ` +
      `RETURNING id) INSERT INTO raw_marks ... SELECT ... FROM p\` (one statement, \`raw_marks\` shaped ` +
      `like the store's marks table); raw unpark: \`WITH m AS (DELETE FROM raw_marks ... RETURNING ` +
      `workflow_id) UPDATE workflows ... FROM m\`.`,
    store,
    async reset(n) {
      await pool.query(`TRUNCATE ${s}.workflows, ${s}.parked, ${s}.raw_marks`);
      await pool.query(
        `INSERT INTO ${s}.workflows SELECT 'wf-' || lpad(g::text, 8, '0'), 'running' FROM generate_series(1, $1::int) g`,
        [n],
      );
      for (const table of ['workflows', 'parked', 'raw_marks'])
        await pool.query(`VACUUM ANALYZE ${s}.${table}`);
    },
    rawPark: async () => (await pool.query(rawPark)).rowCount ?? 0,
    rawUnpark: async () => (await pool.query(rawUnpark)).rowCount ?? 0,
    count: counts,
    async close() {
      await store.close();
      await pool.query(`DROP SCHEMA ${s} CASCADE`).catch(() => undefined);
      await pool.end();
    },
  };
}

export const suite: Suite = { run: (context) => runParkSuite(context, open) };
