import createDebug from 'debug';
import { ConfigurationError } from '../../errors.js';
import { advisoryKey, quote } from '../../internal/sql-names.js';
import { hasMethods, type PgQueryable } from './driver.js';
import { markTrigger } from './mark-trigger.js';
import { compileMigrateOptions, type MigrateOptions } from './options.js';
import { inspectHostTable, type QueryRows, recoveryTables } from './store-sql.js';

const debug = createDebug('graceful-drain:postgres');

/** The schema version this release of graceful-drain needs; `migrate()` brings a schema up to it. */
export const SCHEMA_VERSION = 3;

/**
 * The DDL taking a schema (`s` quoted, `schema` as validated) from `version - 1` to `version`. Append
 * only: a released migration is never edited, and each is additive, so an older release works on a
 * newer schema.
 */
const MIGRATIONS: readonly {
  readonly version: number;
  readonly ddl: (s: string, schema: string) => string;
}[] = [
  {
    version: 1,
    ddl: (s) => `
      -- The fencing token of every lock name, bumped each time the lock is taken.
      CREATE TABLE ${s}.lock_fences (
        name text PRIMARY KEY,
        token bigint NOT NULL
      );
      -- Group members; a row counts only while its backend holds the member's advisory lock.
      CREATE TABLE ${s}.members (
        group_name text NOT NULL,
        member_id text NOT NULL,
        incarnation text NOT NULL UNIQUE,
        backend_pid integer NOT NULL,
        lock_key bigint NOT NULL,
        ttl_ms bigint NOT NULL,
        joined_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (group_name, member_id)
      );
      -- Parked-by-shutdown marks, per store (its table) and workflow id (as text, "C" order for paging).
      CREATE TABLE ${s}.parked (
        store_key text NOT NULL,
        workflow_id text COLLATE "C" NOT NULL,
        member_id text NOT NULL,
        token bigint,
        parked_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (store_key, workflow_id)
      );
      -- The highest fencing token each store has accepted.
      CREATE TABLE ${s}.store_fences (
        store_key text PRIMARY KEY,
        token bigint NOT NULL
      );`,
  },
  {
    version: 2,
    ddl: (_s, schema) => {
      const { G, M, R } = recoveryTables(schema);
      return `
      -- Crash recovery, per store: each group's generation record and registered members...
      CREATE TABLE ${G} (
        store_key text NOT NULL,
        grp text NOT NULL,
        generation bigint NOT NULL,
        dirty boolean NOT NULL,
        PRIMARY KEY (store_key, grp)
      );
      CREATE TABLE ${M} (
        store_key text NOT NULL,
        grp text NOT NULL,
        member_id text NOT NULL,
        incarnation text NOT NULL,
        PRIMARY KEY (store_key, grp, member_id)
      );
      -- ...and each workflow's recoveries since the last clean end of a generation.
      CREATE TABLE ${R} (
        store_key text NOT NULL,
        workflow_id text COLLATE "C" NOT NULL,
        count integer NOT NULL,
        PRIMARY KEY (store_key, workflow_id)
      );`;
    },
  },
  {
    version: 3,
    ddl: (_s, schema) => {
      const { I } = recoveryTables(schema);
      return `
      -- Owner-aware recovery, per store: the incarnations that called with a fence (a row each call
      -- locks, so an eviction and the calls of its incarnation are ordered), and those evicted, for good.
      CREATE TABLE ${I} (
        store_key text NOT NULL,
        incarnation text NOT NULL,
        member_id text NOT NULL,
        grp text,
        evicted_at timestamptz,
        PRIMARY KEY (store_key, incarnation)
      );`;
    },
  },
];

/** What {@link migrate} did. */
export interface MigrateResult {
  /** The schema migrated. */
  readonly schema: string;
  /** Its version now. */
  readonly version: number;
}

/**
 * The `DO` block applying `migration` to `schema` unless already applied: one statement (one transaction,
 * on any queryable), under a transaction-scoped advisory lock so that concurrent calls wait for each other.
 */
function migrationSql(schema: string, migration: (typeof MIGRATIONS)[number]): string {
  const s = quote(schema);
  // `schema` is a validated plain identifier, so it can sit inside a string literal as it is.
  return `DO $graceful_drain$
BEGIN
  PERFORM pg_advisory_xact_lock(${advisoryKey(schema, 'migrate')});
  -- Existence checks rather than IF NOT EXISTS: those demand CREATE rights even when nothing is created.
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '${schema}') THEN CREATE SCHEMA ${s}; END IF;
  IF to_regclass('${s}.schema_version') IS NULL THEN
    CREATE TABLE ${s}.schema_version (
      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version integer NOT NULL);
    INSERT INTO ${s}.schema_version (singleton, version) VALUES (true, 0);
  END IF;
  IF (SELECT version FROM ${s}.schema_version) < ${migration.version} THEN
    ${migration.ddl(s, schema)}
    UPDATE ${s}.schema_version SET version = ${migration.version};
  END IF;
END
$graceful_drain$`;
}

/**
 * Creates or upgrades the tables of `PostgresCoordinator` and `PostgresWorkflowStore` in `schema`, and
 * installs the mark trigger of `stores`. Idempotent and safe to run concurrently. Call it explicitly (at
 * deploy time): the adapters never migrate on their own, and refuse to start on a missing or old schema.
 *
 * @param queryable - A `pg.Client`, `pg.Pool` or anything with `query(text, values)`, with the rights
 *   to create the schema (or to create tables in it, when it exists).
 * @example
 * ```ts
 * import pg from 'pg';
 * import { migrate } from 'graceful-drain/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * await migrate(pool); // schema "graceful_drain"
 * ```
 */
export async function migrate(queryable: PgQueryable, options?: MigrateOptions): Promise<MigrateResult> {
  if (!hasMethods(queryable, 'query')) {
    throw new ConfigurationError(
      'Expected the first argument of migrate() to be a pg.Client, a pg.Pool or an object with query(text, values)',
    );
  }
  const { schema, stores } = compileMigrateOptions(options);
  for (const migration of MIGRATIONS) await queryable.query(migrationSql(schema, migration));
  const rows: QueryRows = async (text, values) => (await queryable.query(text, values)).rows;
  const version = await readVersion(rows, schema);
  debug('migrate: schema %s at version %d', schema, version);
  for (const [index, host] of stores.entries()) {
    const info = await inspectHostTable(rows, host, `stores[${index}].`);
    await queryable.query(markTrigger(schema, host, info).installSql);
    debug('migrate: mark trigger on %s', info.storeKey);
  }
  return { schema, version: version ?? 0 };
}

/** The schema's version, or `undefined` when it has none (no schema or no version table). */
async function readVersion(query: QueryRows, schema: string): Promise<number | undefined> {
  try {
    const rows = await query(`SELECT version FROM ${quote(schema)}.schema_version`, []);
    return (rows[0] as { version: number } | undefined)?.version;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === '42P01' || code === '3F000') return undefined; // undefined_table, invalid_schema_name
    throw error;
  }
}

/**
 * Throws a `ConfigurationError` asking for `migrate()` when `schema` is missing or older than this
 * release needs. A newer schema is accepted: migrations are additive.
 */
export async function checkSchema(query: QueryRows, schema: string, adapter: string): Promise<void> {
  const version = await readVersion(query, schema);
  if (version === undefined || version < SCHEMA_VERSION) {
    const found =
      version === undefined
        ? `has no graceful-drain tables (version ${SCHEMA_VERSION} needed)`
        : `is at version ${version}; this release needs version ${SCHEMA_VERSION}`;
    throw new ConfigurationError(
      `${adapter}: the schema "${schema}" ${found}. Run \`await migrate(client, { schema: '${schema}' })\` ` +
        "from 'graceful-drain/postgres' first (once per deploy: adapters never change the database on their own)",
    );
  }
  if (version > SCHEMA_VERSION) {
    debug('%s: schema %s is at version %d, newer than %d', adapter, schema, version, SCHEMA_VERSION);
  }
}
