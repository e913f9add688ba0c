/**
 * The three setups of the demo, built the same way in the orchestrator and in every worker:
 *
 * - `sqlite`: `SqliteCoordinator` and `SqliteWorkflowStore` on the one SQLite file of the host tables.
 * - `redis`: `RedisCoordinator` (keys under a prefix of the run's own); host tables and store on SQLite.
 * - `postgres`: `PostgresCoordinator` and `PostgresWorkflowStore`; the host tables and graceful-drain's
 *   tables in a PostgreSQL schema of the run's own, dropped at the end.
 *
 * Drivers are loaded only by the backend that needs them.
 */
import type { Coordinator, WorkflowStore } from 'graceful-drain';
import { type HostDb, STORE_STATUSES, WORKFLOWS_TABLE } from './host-db.js';

/** The backends the demo runs on. */
export const BACKENDS = ['sqlite', 'redis', 'postgres'] as const;

/** A backend's name. */
export type BackendName = (typeof BACKENDS)[number];

/** The local servers' URLs, unless the environment says otherwise. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** Where a run keeps its state. Workers receive it on their command line. */
export interface BackendConfig {
  readonly backend: BackendName;
  /** The SQLite file of the host tables (sqlite, redis) and of the coordinator (sqlite). */
  readonly dbPath: string;
  /** The Redis server (redis). */
  readonly redisUrl: string;
  /** The prefix of the coordinator's Redis keys: unique per run (redis). */
  readonly redisKeyPrefix: string;
  /** The PostgreSQL server (postgres). */
  readonly postgresUrl: string;
  /** The run's PostgreSQL schema (postgres). */
  readonly pgSchema: string;
}

/** The host's side: its database, and graceful-drain's store over it. */
export interface Host {
  readonly db: HostDb;
  readonly store: WorkflowStore;
  /** Creates the host tables (and on PostgreSQL the run's schema, and graceful-drain's tables with `migrate()`). */
  prepare(): Promise<void>;
  /** Drops what `prepare()` created on a shared server (the PostgreSQL schema); nothing on SQLite. */
  drop(): Promise<void>;
  /** Closes the store, then the database. */
  close(): Promise<void>;
}

/** Opens the host database and the store over its `workflows` table. */
export async function openHost(config: BackendConfig, poolSize = 4): Promise<Host> {
  if (config.backend === 'postgres') {
    const [{ default: pg }, { PostgresHostDb }, { PostgresWorkflowStore, migrate }] = await Promise.all([
      import('pg'),
      import('./host-db-postgres.js'),
      import('graceful-drain/postgres'),
    ]);
    const pool = new pg.Pool({ connectionString: config.postgresUrl, max: poolSize });
    // An idle connection that fails must not crash the process: the next query reports it.
    pool.on('error', () => {});
    const db = new PostgresHostDb(pool, config.pgSchema);
    const store = new PostgresWorkflowStore({
      pool,
      table: `${config.pgSchema}.${WORKFLOWS_TABLE}`,
      schema: config.pgSchema,
      statuses: STORE_STATUSES,
    });
    return {
      db,
      store,
      prepare: async () => {
        await db.createSchema();
        await migrate(pool, { schema: config.pgSchema });
      },
      drop: () => db.dropSchema(),
      close: () => closeBoth(store, db),
    };
  }
  const [{ SqliteHostDb }, { SqliteWorkflowStore }] = await Promise.all([
    import('./host-db-sqlite.js'),
    import('graceful-drain/sqlite'),
  ]);
  const db = new SqliteHostDb(config.dbPath);
  // The host owns the handle; the store works through it and never closes it.
  const store = new SqliteWorkflowStore({
    database: db.database,
    table: WORKFLOWS_TABLE,
    statuses: STORE_STATUSES,
  });
  return {
    db,
    store,
    prepare: () => db.createSchema(),
    drop: async () => {},
    close: () => closeBoth(store, db),
  };
}

async function closeBoth(store: WorkflowStore, db: HostDb): Promise<void> {
  await store.close?.();
  await db.close();
}

/** Builds the backend's coordinator. */
export async function openCoordinator(config: BackendConfig): Promise<Coordinator> {
  switch (config.backend) {
    case 'sqlite': {
      const { SqliteCoordinator } = await import('graceful-drain/sqlite');
      return new SqliteCoordinator({ path: config.dbPath });
    }
    case 'redis': {
      const { RedisCoordinator } = await import('graceful-drain/redis');
      return new RedisCoordinator({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix });
    }
    case 'postgres': {
      const { PostgresCoordinator } = await import('graceful-drain/postgres');
      return new PostgresCoordinator({ connectionString: config.postgresUrl, schema: config.pgSchema });
    }
  }
}

/**
 * Creates what a run needs before its first worker starts (see {@link Host.prepare}). Fails with a clear
 * message when the backend's server cannot be reached.
 */
export async function prepareBackend(config: BackendConfig, host: Host): Promise<void> {
  if (config.backend === 'redis') await pingRedis(config);
  await host.prepare();
}

async function pingRedis(config: BackendConfig): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 3000,
  });
  // ioredis reports the cause (ECONNREFUSED, ...) as an event, and rejects with "Connection is closed".
  let cause: Error | undefined;
  redis.on('error', (error: Error) => (cause = error));
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw cause ?? error;
  } finally {
    redis.disconnect();
  }
}

/**
 * Removes what the run left on shared servers: the PostgreSQL schema, the Redis keys under the run's
 * prefix (fencing counters never expire on their own). The SQLite file is the caller's to remove.
 */
export async function cleanupBackend(config: BackendConfig, host: Host | undefined): Promise<void> {
  await host?.drop();
  if (config.backend === 'redis') {
    const { Redis } = await import('ioredis');
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      // Every key of the coordinator starts with `{<prefix>` (the prefix sits inside the hash tag).
      const pattern = `{${config.redisKeyPrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  }
}
