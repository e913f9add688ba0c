/**
 * PostgresWorkflowStore over a host table that spans several tables, partitioned or with inheritance
 * children: a row's ctid is unique within one of them only (each partition's first row is at (0,1)), so
 * the statements that write rows again where they listed them (`parkPage`, `unparkPage`, `unpark`,
 * `recoverPage`) must not write by ctid alone there. Each test failed before the store wrote such tables
 * by key: it wrote the other partitions' rows at the same place too.
 */
import { describe, expect, it } from 'vitest';
import { fence, pgStoreTables, sqlName } from './support/pg-store-tables.js';
import { uniqueName } from './support/env.js';

const { db, store: pgStore, marks: pgMarks } = pgStoreTables('gd_pg_partitions');

/**
 * A host table partitioned by range of id: ids below 'm' in one partition, the others in a second. A
 * partition's first row is at ctid (0,1), whatever the other partition holds: ctids repeat across them.
 */
async function partitionedTable(rows: readonly (readonly [string, string])[]): Promise<string> {
  const table = `${db.schema}.${uniqueName('wfp')}`;
  const name = sqlName(table);
  await db.pool.query(
    `CREATE TABLE ${name} (id text PRIMARY KEY, status text NOT NULL) PARTITION BY RANGE (id)`,
  );
  await db.pool.query(
    `CREATE TABLE ${sqlName(`${table}_lo`)} PARTITION OF ${name} FOR VALUES FROM (MINVALUE) TO ('m')`,
  );
  await db.pool.query(
    `CREATE TABLE ${sqlName(`${table}_hi`)} PARTITION OF ${name} FOR VALUES FROM ('m') TO (MAXVALUE)`,
  );
  for (const [id, status] of rows) {
    await db.pool.query(`INSERT INTO ${name} (id, status) VALUES ($1, $2)`, [id, status]);
  }
  return table;
}

/** A host table with an inheritance child: `child` rows go there, the others in the parent. */
async function inheritedTable(
  rows: readonly (readonly [string, string])[],
  child: readonly (readonly [string, string])[],
): Promise<string> {
  const table = `${db.schema}.${uniqueName('wfi')}`;
  const name = sqlName(table);
  await db.pool.query(`CREATE TABLE ${name} (id text PRIMARY KEY, status text NOT NULL)`);
  await db.pool.query(`CREATE TABLE ${sqlName(`${table}_child`)} () INHERITS (${name})`);
  for (const [id, status] of rows) {
    await db.pool.query(`INSERT INTO ${name} (id, status) VALUES ($1, $2)`, [id, status]);
  }
  for (const [id, status] of child) {
    await db.pool.query(`INSERT INTO ${sqlName(`${table}_child`)} (id, status) VALUES ($1, $2)`, [
      id,
      status,
    ]);
  }
  return table;
}
const pgStatus = async (table: string, id: string): Promise<string> =>
  (
    (await db.pool.query(`SELECT status FROM ${sqlName(table)} WHERE id = $1`, [id])).rows[0] as {
      status: string;
    }
  ).status;
const pgCtid = async (table: string, id: string): Promise<string> =>
  (
    (await db.pool.query(`SELECT ctid::text AS c FROM ${sqlName(table)} WHERE id = $1`, [id])).rows[0] as {
      c: string;
    }
  ).c;
describe('PostgreSQL pages over a partitioned host table (ctids repeat across partitions)', () => {
  it("unparkPage never resumes a user's pause in another partition", async () => {
    // Without a pausing status a park is one update, as is the user's pause: both rows at (0,2).
    const table = await partitionedTable([
      ['a-parked', 'running'],
      ['z-user', 'running'],
    ]);
    const s = pgStore(table, { statuses: { running: 'running', paused: 'paused' } });
    expect(await s.park(['a-parked'], fence(1n))).toEqual([{ id: 'a-parked', outcome: 'paused' }]);
    // A user pauses z-user through the host: no mark, never to be resumed by the library.
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = 'z-user'`);
    expect(await pgCtid(table, 'z-user')).toBe(await pgCtid(table, 'a-parked'));
    expect(await pgMarks(table)).toEqual(['a-parked']);

    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(page.results).toEqual([{ id: 'a-parked', outcome: 'resumed' }]);
    expect(await pgStatus(table, 'a-parked')).toBe('running');
    expect(await pgStatus(table, 'z-user')).toBe('paused');
  });

  it('parkPage with a limit of 1 parks only the workflow its page lists, and reports every one it parks', async () => {
    const table = await partitionedTable([
      ['a', 'running'],
      ['z', 'running'],
    ]);
    expect(await pgCtid(table, 'z')).toBe(await pgCtid(table, 'a'));
    const s = pgStore(table);
    const first = await s.parkPage(fence(1n), { limit: 1 });
    expect(first.results).toEqual([{ id: 'a', outcome: 'pausing' }]);
    // 'z' was not listed: as listActive() then park() would leave it, running and unmarked.
    expect(await pgStatus(table, 'z')).toBe('running');
    expect(await pgMarks(table)).toEqual(['a']);
  });

  it('recoverPage never moves a workflow it did not list, nor one never recovered, to the failed status', async () => {
    const table = await partitionedTable([
      ['a-spent', 'running'],
      ['z-fresh', 'running'],
    ]);
    expect(await pgCtid(table, 'z-fresh')).toBe(await pgCtid(table, 'a-spent'));
    const s = pgStore(table, {
      statuses: { running: 'running', pausing: 'pausing', paused: 'paused', failed: 'failed' },
    });
    // a-spent was recovered once already (mode count leaves it running, where it is).
    expect(await s.recover(['a-spent'], fence(1n), { mode: 'count', maxRecoveries: 1 })).toEqual([
      { id: 'a-spent', outcome: 'counted' },
    ]);
    const page = await s.recoverPage(fence(2n), { limit: 1, mode: 'park', maxRecoveries: 1 });
    expect(page.results).toEqual([{ id: 'a-spent', outcome: 'failed' }]);
    expect(await pgStatus(table, 'a-spent')).toBe('failed');
    // z-fresh: never recovered, not on the page. It must still be running.
    expect(await pgStatus(table, 'z-fresh')).toBe('running');
  });

  it("unpark() never resumes a user's pause in another partition", async () => {
    const table = await partitionedTable([
      ['a-parked', 'running'],
      ['z-user', 'running'],
    ]);
    const s = pgStore(table, { statuses: { running: 'running', paused: 'paused' } });
    expect(await s.park(['a-parked'], fence(1n))).toEqual([{ id: 'a-parked', outcome: 'paused' }]);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = 'z-user'`);
    expect(await pgCtid(table, 'z-user')).toBe(await pgCtid(table, 'a-parked'));
    expect(await s.unpark(['a-parked', 'z-user'], fence(2n))).toEqual([
      { id: 'a-parked', outcome: 'resumed' },
      { id: 'z-user', outcome: 'skipped' },
    ]);
    expect(await pgStatus(table, 'z-user')).toBe('paused');
  });
});

describe('PostgreSQL pages over a host table with an inheritance child', () => {
  it('parkPage and unparkPage write only the rows they list, in the parent and in the child', async () => {
    // The parent's and the child's first rows are both at (0,1).
    const table = await inheritedTable([['a', 'running']], [['z', 'running']]);
    expect(await pgCtid(table, 'z')).toBe(await pgCtid(table, 'a'));
    const s = pgStore(table, { statuses: { running: 'running', paused: 'paused' } });
    const first = await s.parkPage(fence(1n), { limit: 1 });
    expect(first.results).toEqual([{ id: 'a', outcome: 'paused' }]);
    expect(await pgStatus(table, 'z')).toBe('running');
    // The user pauses z; the library's unpark of its own page leaves it paused.
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = 'z'`);
    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(page.results).toEqual([{ id: 'a', outcome: 'resumed' }]);
    expect(await pgStatus(table, 'a')).toBe('running');
    expect(await pgStatus(table, 'z')).toBe('paused');
  });
});
