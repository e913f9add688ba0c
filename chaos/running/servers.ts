/**
 * What a run creates and holds on the servers: the backend's tables or keys (under names of the run's
 * own), the harness's own connections (to kill members' connections and to read the host's tables),
 * and a proxy per member slot between the members and the server. `close()` removes all of it.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ParkedWorkflow, WorkflowStore } from 'graceful-drain';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  type BackendConfig,
  type BackendName,
  cleanupBackend,
  type Host,
  listAllParked,
  openHost,
  prepareBackend,
  runBackend,
} from '../../harness/backend.js';
import type { HostDb } from '../../harness/host-db.js';
import { hostPort } from '../../harness/servers.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';

/** The servers' side of a run. */
export class RunServers {
  readonly config: BackendConfig;
  /** The proxy of each slot (index = slot - 1); none on SQLite. */
  readonly proxies: TcpProxy[] = [];
  readonly #runId: string;
  readonly #folder: string;
  #host: Host | undefined;
  /** The harness's own connection to Redis: `CLIENT KILL` (redis). */
  redis: Redis | undefined;
  /** The harness's own pool on PostgreSQL: `pg_terminate_backend` (postgres). */
  pg: pg.Pool | undefined;

  /**
   * @param folder - the run's temporary folder: the SQLite file goes there.
   */
  constructor(backend: BackendName, runId: string, folder: string) {
    this.#runId = runId;
    this.#folder = folder;
    this.config = runBackend(backend, 'chaos', runId, join(folder, 'chaos.db'));
  }

  /** The host's database, as the harness reads and writes it (seeding, user pauses, snapshots). */
  get db(): HostDb {
    return (this.#host as Host).db;
  }

  /** The harness's store over the host's table (the user's `notePaused`, the marks left). */
  get store(): WorkflowStore {
    return (this.#host as Host).store;
  }

  /** What the run created on the servers, to check it is gone afterwards. */
  get created(): { readonly pgSchema: string | null; readonly redisKeyPrefix: string | null } {
    const c = this.config;
    return {
      pgSchema: c.backend === 'postgres' ? c.pgSchema : null,
      redisKeyPrefix: c.backend === 'redis' ? c.redisKeyPrefix : null,
    };
  }

  /** Creates the tables (or checks the server answers), opens the harness's connections and proxies. */
  async open(slots: number): Promise<void> {
    const c = this.config;
    this.#host = await openHost(c, { poolSize: 2 });
    await prepareBackend(c, this.#host);
    if (c.backend === 'redis') {
      this.redis = new Redis(c.redisUrl, { maxRetriesPerRequest: 1 });
      this.redis.on('error', () => {});
    }
    if (c.backend === 'postgres') {
      this.pg = new pg.Pool({ connectionString: c.postgresUrl, max: 1 });
      this.pg.on('error', () => {});
    }
    if (c.backend === 'sqlite') return;
    const target = c.backend === 'redis' ? hostPort(c.redisUrl, 6379) : hostPort(c.postgresUrl, 5432);
    for (let i = 0; i < slots; i++) {
      const proxy = new TcpProxy(target.host, target.port);
      await proxy.listen();
      this.proxies.push(proxy);
    }
  }

  /** Every workflow the store holds a park mark for. */
  listParked(): Promise<ParkedWorkflow[]> {
    return listAllParked(this.store);
  }

  /**
   * Closes the proxies and the harness's connections, terminates any connection of the run's members
   * still on PostgreSQL (by `application_name`), drops the schema or deletes the keys, and removes the
   * SQLite file. Call it once the members have exited. Throws nothing: a failure is returned, to show.
   */
  async close(): Promise<string | undefined> {
    let failure: string | undefined;
    await Promise.all(this.proxies.map((p) => p.close()));
    if (this.pg !== undefined) {
      await this.pg
        .query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`, [
          `gdc-${this.#runId}-%`,
        ])
        .catch(() => {});
      await this.pg.end().catch(() => {});
    }
    this.redis?.disconnect();
    try {
      await cleanupBackend(this.config, this.#host);
    } catch (error) {
      failure = `clean-up of the ${this.config.backend} backend failed: ${(error as Error).message}`;
    }
    await this.#host?.close();
    for (const suffix of ['', '-wal', '-shm'])
      rmSync(join(this.#folder, `chaos.db${suffix}`), { force: true });
    return failure;
  }
}
