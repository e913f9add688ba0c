import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  migrate,
  PostgresCoordinator,
  PostgresWorkflowStore,
  SCHEMA_VERSION,
} from '../src/adapters/postgres/index.js';
import { ConfigurationError } from '../src/errors.js';
import { POSTGRES_URL, uniqueName } from './support/env.js';

const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 6, connectionTimeoutMillis: 5000 });
pool.on('error', () => {});
const schemas: string[] = [];
/** Every table of a schema at the current version, by name. */
const TABLES = [
  'lock_fences',
  'members',
  'parked',
  'parked_generation_members',
  'parked_generations',
  'parked_incarnations',
  'parked_recoveries',
  'schema_version',
  'store_fences',
];

function freshSchema(): string {
  const schema = uniqueName('gd_pg_migrate');
  schemas.push(schema);
  return schema;
}

async function tables(schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ table_name: string }>(
    'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
    [schema],
  );
  return rows.map((row) => row.table_name);
}

afterAll(async () => {
  for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe('migrate', () => {
  it('creates the schema and the tables of both adapters, at the current version', async () => {
    const schema = freshSchema();
    expect(await migrate(pool, { schema })).toEqual({ schema, version: SCHEMA_VERSION });
    expect(await tables(schema)).toEqual(TABLES);
  });

  it('is idempotent: a second run changes nothing and keeps the data', async () => {
    const schema = freshSchema();
    await migrate(pool, { schema });
    await pool.query(`INSERT INTO "${schema}".lock_fences (name, token) VALUES ('kept', 41)`);
    expect(await migrate(pool, { schema })).toEqual({ schema, version: SCHEMA_VERSION });
    const { rows } = await pool.query(`SELECT token::int AS token FROM "${schema}".lock_fences`);
    expect(rows).toEqual([{ token: 41 }]);
    const { rows: versions } = await pool.query(`SELECT version FROM "${schema}".schema_version`);
    expect(versions).toEqual([{ version: SCHEMA_VERSION }]);
  });

  it('is safe when run concurrently on separate connections', async () => {
    const schema = freshSchema();
    const clients = Array.from({ length: 5 }, () => new pg.Client({ connectionString: POSTGRES_URL }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const results = await Promise.all(clients.map((c) => migrate(c, { schema })));
      expect(results).toEqual(Array.from({ length: 5 }, () => ({ schema, version: SCHEMA_VERSION })));
      expect(await tables(schema)).toEqual(TABLES);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('upgrades a version 1 schema: adds the crash-recovery tables, keeps the data, leaves version 1 as it was', async () => {
    const schema = freshSchema();
    await migrate(pool, { schema });
    // What release 1 made: the same schema without the version 2 and 3 tables.
    const later = [
      'parked_generations',
      'parked_generation_members',
      'parked_recoveries',
      'parked_incarnations',
    ];
    for (const table of later) {
      await pool.query(`DROP TABLE "${schema}"."${table}"`);
    }
    await pool.query(`UPDATE "${schema}".schema_version SET version = 1`);
    await pool.query(
      `INSERT INTO "${schema}".parked (store_key, workflow_id, member_id, token) VALUES ('s.t', 'wf', 'm', 7)`,
    );
    const store = new PostgresWorkflowStore({ pool, table: 'whatever', schema });
    const error = await store.readGeneration('g').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/version 1; this release needs version 3.*migrate\(/);
    await store.close();
    expect(await migrate(pool, { schema })).toEqual({ schema, version: 3 });
    expect(await tables(schema)).toEqual(TABLES);
    const { rows } = await pool.query(`SELECT workflow_id, token::int AS token FROM "${schema}".parked`);
    expect(rows).toEqual([{ workflow_id: 'wf', token: 7 }]);
    const columns = await pool.query<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = $1 AND table_name LIKE 'parked\\_%' ORDER BY table_name, ordinal_position`,
      [schema],
    );
    expect(columns.rows.map((c) => `${c.table_name}.${c.column_name}`)).toEqual([
      'parked_generation_members.store_key',
      'parked_generation_members.grp',
      'parked_generation_members.member_id',
      'parked_generation_members.incarnation',
      'parked_generations.store_key',
      'parked_generations.grp',
      'parked_generations.generation',
      'parked_generations.dirty',
      'parked_incarnations.store_key',
      'parked_incarnations.incarnation',
      'parked_incarnations.member_id',
      'parked_incarnations.grp',
      'parked_incarnations.evicted_at',
      'parked_recoveries.store_key',
      'parked_recoveries.workflow_id',
      'parked_recoveries.count',
    ]);
  });

  it('upgrades a version 2 schema: adds the incarnations table, keeps the generation record', async () => {
    const schema = freshSchema();
    await migrate(pool, { schema });
    // What release 2 made: the same schema without the version 3 table.
    await pool.query(`DROP TABLE "${schema}".parked_incarnations`);
    await pool.query(`UPDATE "${schema}".schema_version SET version = 2`);
    await pool.query(
      `INSERT INTO "${schema}".parked_generation_members (store_key, grp, member_id, incarnation)
       VALUES ('s.t', 'g', 'm', 'i')`,
    );
    const store = new PostgresWorkflowStore({ pool, table: 'whatever', schema });
    const error = await store.readGeneration('g').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/version 2; this release needs version 3.*migrate\(/);
    await store.close();
    expect(await migrate(pool, { schema })).toEqual({ schema, version: 3 });
    expect(await tables(schema)).toEqual(TABLES);
    const { rows } = await pool.query(
      `SELECT member_id, incarnation FROM "${schema}".parked_generation_members`,
    );
    expect(rows).toEqual([{ member_id: 'm', incarnation: 'i' }]);
    const { rows: evicted } = await pool.query(
      `SELECT count(*)::int AS n FROM "${schema}".parked_incarnations`,
    );
    expect(evicted).toEqual([{ n: 0 }]);
  });

  it('refuses a schema that is not a plain identifier, naming the option and the value', async () => {
    for (const schema of ['', 'a.b', 'x"; DROP TABLE y; --', '1abc', 'a'.repeat(64), 42]) {
      const error = await migrate(pool, { schema: schema as string }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toContain('`schema`');
      expect((error as Error).message).toContain(JSON.stringify(schema));
    }
    await expect(migrate(pool, { schma: 'x' } as never)).rejects.toThrow(/Unknown option `schma`/);
    await expect(migrate({} as never)).rejects.toThrow(ConfigurationError);
  });
});

describe('adapters before migrate()', () => {
  it('PostgresCoordinator refuses to start on a missing schema, asking for migrate()', async () => {
    const schema = freshSchema();
    const coordinator = new PostgresCoordinator({ url: POSTGRES_URL, schema });
    try {
      const error = await coordinator.acquire('x', { ttlMs: 1000, timeoutMs: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/migrate\(/);
      expect((error as Error).message).toContain(schema);
      // nothing was created behind the user's back
      expect(await tables(schema)).toEqual([]);
    } finally {
      await coordinator.close();
    }
  });

  it('PostgresCoordinator refuses an old schema version, and starts once migrate() has run', async () => {
    const schema = freshSchema();
    await migrate(pool, { schema });
    await pool.query(`UPDATE "${schema}".schema_version SET version = 0`);
    const coordinator = new PostgresCoordinator({ url: POSTGRES_URL, schema });
    try {
      await expect(coordinator.members('g')).rejects.toThrow(/version 0.*migrate\(/);
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await migrate(pool, { schema });
      expect(await coordinator.members('g')).toEqual([]);
    } finally {
      await coordinator.close();
    }
  });

  it('PostgresWorkflowStore refuses to start on a missing schema, asking for migrate()', async () => {
    const schema = freshSchema();
    const store = new PostgresWorkflowStore({ pool, table: 'whatever', schema });
    const error = await store.listActive({ limit: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/PostgresWorkflowStore.*migrate\(/);
    await store.close();
  });
});
