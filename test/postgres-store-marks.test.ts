/**
 * PostgresWorkflowStore: a mark belongs to the pause it created. The trigger its first use (or
 * `migrate({ stores })`) installs on the host's table drops the mark when the workflow leaves
 * pausing/paused or its row is deleted; `notePaused()` drops it when a user pauses a workflow that is
 * parked already. And `diagnose()`, which reports a status mapping that matches no row.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  migrate,
  type PostgresWorkflowStore,
  type PostgresWorkflowStoreOptions,
} from '../src/adapters/postgres/index.js';
import { ConfigurationError } from '../src/errors.js';
import type { Fence } from '../src/workflow-store.js';
import { testSchema } from './fixtures/postgres-setup.js';
import { POSTGRES_URL, uniqueName } from './support/env.js';
import { STATUSES, pgStoreTables, sqlName } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_marks', { strictClose: true });
const { db, hostTable, setStatus, marks } = tables;
const FENCE: Fence = Object.freeze({ memberId: 'm1', token: undefined });

/**
 * A store over `options.table`, on the shared pool unless `options` give another source; closed after the
 * test, a close() that rejects failing it.
 */
const store = ({ table, ...options }: Partial<PostgresWorkflowStoreOptions> & { table: string }) =>
  tables.store(table, options);

async function statusOf(table: string, id: string, column = 'status'): Promise<string | undefined> {
  const { rows } = await db.pool.query<{ s: string }>(
    `SELECT "${column}"::text AS s FROM ${sqlName(table)} WHERE id::text = $1`,
    [id],
  );
  return rows[0]?.s;
}

async function triggersOn(table: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ name: string }>(
    `SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY 1`,
    [sqlName(table)],
  );
  return rows.map((row) => row.name);
}

/** Parks `ids` (running) and brings them to paused, as the host's engine would. */
async function parkAndPause(s: PostgresWorkflowStore, table: string, ids: string[]): Promise<void> {
  const results = await s.park(ids, FENCE);
  expect(results.every((r) => r.outcome === 'pausing')).toBe(true);
  for (const id of ids) await setStatus(table, id, 'paused');
}

describe('PostgresWorkflowStore marks: the trigger', () => {
  it('park, a user resumes, then pauses again: the next unpark does not resume it', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store({ table });
    await parkAndPause(s, table, ['a', 'b']);
    await setStatus(table, 'a', 'running'); // the user resumes it...
    expect(await marks(table)).toEqual(['b']);
    await setStatus(table, 'a', 'paused'); // ...and pauses it again, before any start
    expect((await s.listParked({ limit: 10 })).items.map((p) => p.id)).toEqual(['b']);
    expect(await s.unpark(['a', 'b'], FENCE)).toEqual([
      { id: 'a', outcome: 'skipped' },
      { id: 'b', outcome: 'resumed' },
    ]);
    expect(await statusOf(table, 'a')).toBe('paused');
    expect(await statusOf(table, 'b')).toBe('running');
  });

  it('a parked workflow cancelled, completed, or deleted loses its mark; pausing -> paused keeps it', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'running'],
      ['d', 'running'],
    ]);
    const s = store({ table });
    expect((await s.park(['a', 'b', 'c', 'd'], FENCE)).map((r) => r.outcome)).toEqual([
      'pausing',
      'pausing',
      'pausing',
      'pausing',
    ]);
    await setStatus(table, 'a', 'paused');
    await setStatus(table, 'b', 'cancelled');
    await setStatus(table, 'c', 'succeeded');
    await db.pool.query(`DELETE FROM ${sqlName(table)} WHERE id = 'd'`);
    expect(await marks(table)).toEqual(['a']);
    // a row re-created under the id of a deleted one, paused by a user, is never resumed
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('d', 'paused')`);
    expect(await s.unpark(['a', 'd'], FENCE)).toEqual([
      { id: 'a', outcome: 'resumed' },
      { id: 'd', outcome: 'skipped' },
    ]);
    expect(await statusOf(table, 'd')).toBe('paused');
  });

  it("the store's own unpark skips the trigger for its transaction only: the connection's next user fires it", async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    pool.on('error', () => {});
    try {
      const s = store({ table, pool });
      await parkAndPause(s, table, ['a', 'b']);
      expect(await s.unpark(['a'], FENCE)).toEqual([{ id: 'a', outcome: 'resumed' }]);
      expect(await marks(table)).toEqual(['b']);
      // the host, on the very connection the unpark used
      await pool.query(`UPDATE ${sqlName(table)} SET status = 'running' WHERE id = 'b'`);
      expect(await marks(table)).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it('works on an enum status column and an integer id column', async () => {
    const type = uniqueName('wf_state');
    await db.pool.query(
      `CREATE TYPE "${db.schema}"."${type}" AS ENUM ('RUNNING', 'PAUSING', 'PAUSED', 'DONE')`,
    );
    const table = await hostTable([], `id bigint PRIMARY KEY, status "${db.schema}"."${type}" NOT NULL`);
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES (1, 'RUNNING'), (2, 'RUNNING')`);
    const s = store({ table, statuses: { running: 'RUNNING', pausing: 'PAUSING', paused: 'PAUSED' } });
    await s.park(['1', '2'], FENCE);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'PAUSED'`);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'RUNNING' WHERE id = 1`);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'PAUSED' WHERE id = 1`);
    expect(await marks(table)).toEqual(['2']);
    // notePaused takes another spelling of the same id
    expect(await s.notePaused(['002'])).toEqual([{ id: '002', outcome: 'released' }]);
    expect(await s.unpark(['1', '2'], FENCE)).toEqual([
      { id: '1', outcome: 'skipped' },
      { id: '2', outcome: 'skipped' },
    ]);
  });

  it('a host role with no rights on the marks still updates its table: the trigger runs as its owner', async () => {
    const role = uniqueName('gd_host_role');
    const table = await hostTable([['a', 'running']]);
    await db.pool.query(`CREATE ROLE "${role}" LOGIN`);
    const host = new pg.Client({ connectionString: POSTGRES_URL.replace('postgres@', `${role}@`) });
    try {
      await db.pool.query(`GRANT USAGE ON SCHEMA "${db.schema}" TO "${role}"`);
      await db.pool.query(`GRANT SELECT, UPDATE ON ${sqlName(table)} TO "${role}"`);
      const s = store({ table });
      await parkAndPause(s, table, ['a']);
      await host.connect();
      await host.query(`UPDATE ${sqlName(table)} SET status = 'running' WHERE id = 'a'`);
      expect(await marks(table)).toEqual([]);
    } finally {
      await host.end().catch(() => {});
      await db.pool.query(`DROP OWNED BY "${role}"`);
      await db.pool.query(`DROP ROLE "${role}"`);
    }
  });

  it('is installed once when many stores start at once, and replaced when the statuses change', async () => {
    const table = await hostTable([['a', 'running']]);
    await Promise.all(Array.from({ length: 5 }, () => store({ table }).listActive({ limit: 1 })));
    const installed = await triggersOn(table);
    expect(installed).toHaveLength(2);
    // the same table, other statuses: the trigger follows them
    const halted = { running: 'running', paused: 'halted' };
    const s = store({ table, statuses: halted });
    await s.park(['a'], FENCE);
    expect(await triggersOn(table)).toEqual(installed);
    expect(await marks(table)).toEqual(['a']);
    await setStatus(table, 'a', 'paused'); // "paused" means nothing to this store: the pause is over
    expect(await marks(table)).toEqual([]);
  });

  it('stores with marks in different schemas over one table keep a trigger each', async () => {
    const other = await testSchema('gd_pg_marks_other');
    try {
      const table = await hostTable([
        ['a', 'running'],
        ['b', 'running'],
      ]);
      const first = store({ table });
      const second = store({ table, schema: other.schema });
      await first.park(['a'], FENCE);
      await second.park(['b'], FENCE);
      expect(await triggersOn(table)).toHaveLength(4);
      await setStatus(table, 'a', 'paused');
      await setStatus(table, 'b', 'paused');
      expect(await marks(table)).toEqual(['a']);
      expect(await marks(table, other.schema)).toEqual(['b']);
      await setStatus(table, 'a', 'running');
      await setStatus(table, 'b', 'running');
      expect(await marks(table)).toEqual([]);
      expect(await marks(table, other.schema)).toEqual([]);
    } finally {
      await other.drop();
    }
  });

  it('its install drops the marks left on rows that are neither pausing nor paused (stale since before it)', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const without = store({ table, markTrigger: 'off' });
    await parkAndPause(without, table, ['a', 'b']);
    await setStatus(table, 'a', 'running'); // no trigger: the mark of a stays
    expect(await marks(table)).toEqual(['a', 'b']);
    expect(await triggersOn(table)).toEqual([]);
    await store({ table }).listParked({ limit: 10 });
    expect(await marks(table)).toEqual(['b']);
  });

  it('one trigger set whatever the spelling of the table: `wf` on the search_path is `schema.wf`', async () => {
    const table = await hostTable([['a', 'running']]);
    await store({ table }).listActive({ limit: 1 });
    const pool = new pg.Pool({
      connectionString: POSTGRES_URL,
      max: 1,
      options: `-c search_path=${db.schema}`,
    });
    pool.on('error', () => {});
    try {
      const unqualified = table.slice(db.schema.length + 1);
      const s = store({ table: unqualified, pool, markTrigger: 'verify' });
      expect((await s.listActive({ limit: 1 })).items).toEqual(['a']);
    } finally {
      await pool.end();
    }
  });

  it("a view takes no trigger: a ConfigurationError that says so; with markTrigger 'off' the store works on it", async () => {
    const table = await hostTable([['a', 'running']]);
    const view = `${table}_v`;
    await db.pool.query(`CREATE VIEW ${sqlName(view)} AS SELECT * FROM ${sqlName(table)}`);
    const error = await store({ table: view })
      .listActive({ limit: 1 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/Give the store the table itself.*markTrigger: 'off'/);
    const off = store({ table: view, markTrigger: 'off' });
    expect(await off.park(['a'], FENCE)).toEqual([{ id: 'a', outcome: 'pausing' }]);
  });

  it("markTrigger 'verify' asks for migrate({ stores }) until the trigger is there, and never creates it", async () => {
    const table = await hostTable([['a', 'running']]);
    const error = await store({ table, markTrigger: 'verify' })
      .listActive({ limit: 1 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/migrate\(pool, \{ schema: .*stores: \[\{ table: /);
    expect(await triggersOn(table)).toEqual([]);
    await migrate(db.pool, { schema: db.schema, stores: [{ table, statuses: STATUSES }] });
    expect(await triggersOn(table)).toHaveLength(2);
    const s = store({ table, markTrigger: 'verify' });
    expect((await s.listActive({ limit: 1 })).items).toEqual(['a']);
    // made for other statuses: outdated
    const other = store({ table, markTrigger: 'verify', statuses: { running: 'running', paused: 'halted' } });
    await expect(other.listActive({ limit: 1 })).rejects.toThrow(/other statuses/);
  });

  it("without the rights to create it: a ConfigurationError that says what to do; 'off' works with notePaused", async () => {
    const role = uniqueName('gd_noddl');
    const table = await hostTable([['a', 'running']]);
    await db.pool.query(`CREATE ROLE "${role}" LOGIN`);
    const pool = new pg.Pool({ connectionString: POSTGRES_URL.replace('postgres@', `${role}@`), max: 2 });
    pool.on('error', () => {});
    try {
      await db.pool.query(`GRANT USAGE ON SCHEMA "${db.schema}" TO "${role}"`);
      await db.pool.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${db.schema}" TO "${role}"`,
      );
      const error = await store({ table, pool })
        .listActive({ limit: 1 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toContain('TRIGGER privilege');
      expect((error as Error).message).toContain("markTrigger: 'off'");
      expect((error as ConfigurationError).cause).toMatchObject({ code: '42501' });
      // installed by a role that may: the store's first use finds it and goes on
      await migrate(db.pool, { schema: db.schema, stores: [{ table, statuses: STATUSES }] });
      expect((await store({ table, pool }).listActive({ limit: 1 })).items).toEqual(['a']);
      // 'off': the host tells the store of each pause
      const table2 = await hostTable([['b', 'running']]);
      await db.pool.query(`GRANT SELECT, UPDATE ON ${sqlName(table2)} TO "${role}"`);
      const off = store({ table: table2, pool, markTrigger: 'off' });
      await parkAndPause(off, table2, ['b']);
      await setStatus(table2, 'b', 'running');
      await setStatus(table2, 'b', 'paused');
      expect(await off.notePaused(['b'])).toEqual([{ id: 'b', outcome: 'released' }]);
      expect(await off.unpark(['b'], FENCE)).toEqual([{ id: 'b', outcome: 'skipped' }]);
      expect(await triggersOn(table2)).toEqual([]);
    } finally {
      await pool.end();
      await db.pool.query(`DROP OWNED BY "${role}"`);
      await db.pool.query(`DROP ROLE "${role}"`);
    }
  });
});

describe('PostgresWorkflowStore.notePaused', () => {
  it('drops the mark of a workflow a user paused while it was parked: it is never resumed', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store({ table });
    await parkAndPause(s, table, ['a', 'b']);
    // the user pauses "a": the status does not change, so only the host's pause path can say so
    expect(await s.notePaused(['a', 'x', 'a'])).toEqual([
      { id: 'a', outcome: 'released' },
      { id: 'x', outcome: 'skipped' },
      { id: 'a', outcome: 'skipped' },
    ]);
    expect(await s.notePaused(['a'])).toEqual([{ id: 'a', outcome: 'skipped' }]);
    expect(await s.notePaused([])).toEqual([]);
    expect((await s.listParked({ limit: 10 })).items.map((p) => p.id)).toEqual(['b']);
    expect(await s.unpark(['a', 'b'], FENCE)).toEqual([
      { id: 'a', outcome: 'skipped' },
      { id: 'b', outcome: 'resumed' },
    ]);
    expect(await statusOf(table, 'a')).toBe('paused');
  });

  it('rejects bad arguments with a ConfigurationError naming them', async () => {
    const s = store({ table: await hostTable() });
    await expect(s.notePaused('a' as never)).rejects.toThrow(/`ids`/);
    await expect(s.notePaused([''])).rejects.toThrow(/`ids\[0\]`/);
    await expect(s.notePaused(['a'], { signal: 'x' } as never)).rejects.toThrow(/`signal`/);
    await expect(s.notePaused(['a'], { sigal: undefined } as never)).rejects.toThrow(
      /Unknown option `sigal`/,
    );
  });
});

describe('migrate({ stores })', () => {
  it('validates each entry, naming it', async () => {
    await expect(migrate(db.pool, { schema: db.schema, stores: 'x' as never })).rejects.toThrow(/`stores`/);
    await expect(migrate(db.pool, { schema: db.schema, stores: [{ table: 'a b' }] })).rejects.toThrow(
      /`stores\[0\]\.table`/,
    );
    await expect(
      migrate(db.pool, { schema: db.schema, stores: [{ table: 'x', statuses: { running: 'r' } as never }] }),
    ).rejects.toThrow(/`stores\[0\]\.statuses\.paused`/);
    await expect(
      migrate(db.pool, { schema: db.schema, stores: [{ table: `${db.schema}.no_such_table` }] }),
    ).rejects.toThrow(/`stores\[0\]\.table`.*no_such_table/);
    await expect(
      migrate(db.pool, { schema: db.schema, stores: [{ table: 'x', pool: db.pool } as never] }),
    ).rejects.toThrow(/Unknown option `pool` for stores\[0\]/);
  });
});

describe('PostgresWorkflowStore.diagnose', () => {
  it('says nothing of an empty table, nor of one where a configured status matches', async () => {
    expect(await store({ table: await hostTable() }).diagnose()).toEqual([]);
    const table = await hostTable([
      ['a', 'succeeded'],
      ['b', 'paused'],
    ]);
    expect(await store({ table }).diagnose()).toEqual([]);
  });

  it("warns when the rows say 'RUNNING' while statuses.running is 'running', naming the options and the values seen", async () => {
    const table = await hostTable([
      ['a', 'RUNNING'],
      ['b', 'PAUSED'],
      ['c', 'DONE'],
    ]);
    const warnings = await store({ table }).diagnose();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.code).toBe('status-mismatch');
    const message = warnings[0]?.message ?? '';
    expect(message).toContain('statuses.running "running"');
    expect(message).toContain('statuses.paused "paused"');
    expect(message).toContain('"DONE", "PAUSED", "RUNNING"');
    expect(message).toContain('did you mean statuses.running "RUNNING", statuses.paused "PAUSED"?');
  });

  it('names a bounded sample of the values, and finds a match beyond the sample', async () => {
    const table = await hostTable();
    await db.pool.query(
      `INSERT INTO ${sqlName(table)} SELECT 'w' || g, 'state-' || lpad((g % 20)::text, 2, '0') FROM generate_series(1, 3000) g`,
    );
    const s = store({ table });
    const [warning] = await s.diagnose();
    expect(warning?.message).toContain('"state-00", "state-01"');
    expect(warning?.message).toContain('"state-09", ...');
    expect(warning?.message).not.toContain('state-10');
    // one running row, far past the 1000 rows sampled: no warning
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('z', 'running')`);
    expect(await s.diagnose()).toEqual([]);
  });

  it('works on an enum status column', async () => {
    const type = uniqueName('wf_state');
    await db.pool.query(`CREATE TYPE "${db.schema}"."${type}" AS ENUM ('RUNNING', 'PAUSED')`);
    const table = await hostTable([], `id text PRIMARY KEY, status "${db.schema}"."${type}" NOT NULL`);
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('a', 'RUNNING')`);
    const [warning] = await store({ table }).diagnose();
    expect(warning?.message).toContain('holds "RUNNING"');
    expect(await store({ table, statuses: { running: 'RUNNING', paused: 'PAUSED' } }).diagnose()).toEqual([]);
  });
});
