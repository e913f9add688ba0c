import { runParkSuite, type ParkBackend } from '../lib/park-harness.js';
import { openPostgresTables } from '../lib/postgres-tables.js';
import type { Suite } from '../lib/result.js';

async function open(): Promise<ParkBackend> {
  const t = await openPostgresTables();
  return {
    name: `PostgreSQL ${t.version}`,
    description:
      `PostgreSQL: host table \`workflows (id text PRIMARY KEY, status text NOT NULL)\` with an index on ` +
      `\`status\`, rebuilt (TRUNCATE, INSERT, VACUUM ANALYZE) before every run; the store on a \`pg.Pool\` ` +
      `(max 4). Raw park: \`WITH p AS (UPDATE workflows SET status = 'paused' WHERE status = 'running' ` +
      `RETURNING id) INSERT INTO raw_marks ... SELECT ... FROM p\` (one statement, \`raw_marks\` shaped ` +
      `like the store's marks table); raw unpark: \`WITH m AS (DELETE FROM raw_marks ... RETURNING ` +
      `workflow_id) UPDATE workflows ... FROM m\`.`,
    store: t.store,
    reset: (n) => t.reset(n),
    rawPark: async () => (await t.pool.query(t.rawPark)).rowCount ?? 0,
    rawUnpark: async () => (await t.pool.query(t.rawUnpark)).rowCount ?? 0,
    count: async () => {
      const { rows } = await t.pool.query<{ running: number; paused: number }>(
        `SELECT count(*) FILTER (WHERE status = 'running')::int AS running,
                count(*) FILTER (WHERE status = 'paused')::int AS paused FROM "${t.schema}".workflows`,
      );
      return rows[0] ?? { running: -1, paused: -1 };
    },
    close: () => t.close(),
  };
}

export const suite: Suite = { run: (context) => runParkSuite(context, open) };
