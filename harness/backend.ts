/**
 * The backends the tools run on, built the same way by a run's orchestrator and by every member:
 *
 * - `sqlite`: `SqliteCoordinator` and `SqliteWorkflowStore` on the one SQLite file of the host tables.
 * - `redis`: `RedisCoordinator` (keys under a prefix of the run's own); host tables and store on SQLite.
 * - `postgres`: `PostgresCoordinator` and `PostgresWorkflowStore`; the host tables and graceful-drain's
 *   tables in a PostgreSQL schema of the run's own, dropped at the end.
 *
 * Drivers are loaded only by the backend that needs them.
 */
import type { Coordinator, ParkedWorkflow, WorkflowStore } from 'graceful-drain';
import { type HostDb, STORE_STATUSES, WORKFLOWS_TABLE } from './host-db.js';
import { POSTGRES_URL, REDIS_URL, withApplicationName } from './servers.js';

/** The backends the tools run on. */
export const BACKENDS = ['sqlite', 'redis', 'postgres'] as const;

/** A backend's name. */
export type BackendName = (typeof BACKENDS)[number];

/** Where a run keeps its state. Members receive it on their command line. */
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

/** A run's backend: the servers of the environment, and names of the run's own (`gd-<tool>-<runId>`). */
export function runBackend(backend: BackendName, tool: string, runId: string, dbPath: string): BackendConfig {
  return {
    backend,
    dbPath,
    redisUrl: REDIS_URL,
    redisKeyPrefix: `gd-${tool}-${runId}:`,
    postgresUrl: POSTGRES_URL,
    pgSchema: `gd_${tool}_${runId}`,
  };
}

/** How a process connects: its pool size, and a name to find its connections by on the server. */
export interface ConnectOptions {
  /** The host database's pool size (postgres). Default 4. */
  readonly poolSize?: number;
  /**
   * Names the connections (Redis connection name; PostgreSQL `application_name` with a suffix: `-c`
   * the coordinator, `-h` the host database, `-s` the store, which then gets a pool of its own).
   */
  readonly connectionName?: string;
  /**
   * The host column the store reads owners from (`ownerColumn`): the owner capability, with which live
   * members recover a crashed peer's workflows while the group runs. None by default.
   */
  readonly ownerColumn?: string | undefined;
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
export async function openHost(config: BackendConfig, options: ConnectOptions = {}): Promise<Host> {
  if (config.backend === 'postgres') {
    const [{ default: pg }, { PostgresHostDb }, { PostgresWorkflowStore, migrate }] = await Promise.all([
      import('pg'),
      import('./host-db-postgres.js'),
      import('graceful-drain/postgres'),
    ]);
    const named = options.connectionName;
    const pool = (suffix: string, max: number): InstanceType<typeof pg.Pool> => {
      const url =
        named === undefined
          ? config.postgresUrl
          : withApplicationName(config.postgresUrl, `${named}-${suffix}`);
      const p = new pg.Pool({ connectionString: url, max });
      // An idle connection that fails must not crash the process: the next query reports it.
      p.on('error', () => {});
      return p;
    };
    const hostPool = pool('h', options.poolSize ?? 4);
    // Named connections are the chaos harness's, which kills them: the store gets a pool of its own, set
    // up as its documentation asks (an 'error' listener, no more), and the host database's connections
    // a listener each, so that one dropped mid-transaction fails the transaction, not the process.
    if (named !== undefined) hostPool.on('connect', (client) => client.on('error', () => {}));
    const storePool = named === undefined ? hostPool : pool('s', 2);
    const db = new PostgresHostDb(hostPool, config.pgSchema);
    const store = new PostgresWorkflowStore({
      pool: storePool,
      table: `${config.pgSchema}.${WORKFLOWS_TABLE}`,
      schema: config.pgSchema,
      statuses: STORE_STATUSES,
      ...(options.ownerColumn === undefined ? {} : { ownerColumn: options.ownerColumn }),
    });
    return {
      db,
      store,
      prepare: async () => {
        await db.createSchema();
        await migrate(hostPool, { schema: config.pgSchema });
      },
      drop: () => db.dropSchema(),
      close: async () => {
        await closeBoth(store, db);
        if (storePool !== hostPool) await storePool.end();
      },
    };
  }
  const [{ SqliteHostDb }, { SqliteWorkflowStore }] = await Promise.all([
    import('./host-db-sqlite.js'),
    import('graceful-drain/sqlite'),
  ]);
  const db = await SqliteHostDb.open(config.dbPath);
  // The host owns the handle; the store works through it and never closes it.
  const store = new SqliteWorkflowStore({
    database: db.database,
    table: WORKFLOWS_TABLE,
    statuses: STORE_STATUSES,
    ownerColumn: options.ownerColumn,
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
export async function openCoordinator(
  config: BackendConfig,
  options: ConnectOptions = {},
): Promise<Coordinator> {
  const named = options.connectionName;
  switch (config.backend) {
    case 'sqlite': {
      const { SqliteCoordinator } = await import('graceful-drain/sqlite');
      return new SqliteCoordinator({ path: config.dbPath });
    }
    case 'redis': {
      const { RedisCoordinator } = await import('graceful-drain/redis');
      return new RedisCoordinator({
        url: config.redisUrl,
        keyPrefix: config.redisKeyPrefix,
        ...(named === undefined ? {} : { connectionName: named }),
      });
    }
    case 'postgres': {
      const { PostgresCoordinator } = await import('graceful-drain/postgres');
      return new PostgresCoordinator({
        connectionString:
          named === undefined ? config.postgresUrl : withApplicationName(config.postgresUrl, `${named}-c`),
        schema: config.pgSchema,
      });
    }
  }
}

/**
 * Creates what a run needs before its first member starts (see {@link Host.prepare}). Fails with a clear
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

/** Every workflow the store holds a park mark for, page after page. */
export async function listAllParked(store: WorkflowStore): Promise<ParkedWorkflow[]> {
  const all: ParkedWorkflow[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listParked({ limit: 500, cursor });
    all.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return all;
}
