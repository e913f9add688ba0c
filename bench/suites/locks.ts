import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redlock } from '@sesamecare-oss/redlock';
import { Mutex } from 'async-mutex';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Coordinator } from 'graceful-drain';
import { duration, iqr, times } from '../lib/format.js';
import { blocksOf, interleaveLatency, type LatencyVariant } from '../lib/interleave.js';
import { memory, postgres, redis, sqlite } from '../lib/library.js';
import { status, type Check, type Suite } from '../lib/result.js';
import { POSTGRES_URL, REDIS_URL, serverMissing, uniqueName } from '../../harness/servers.js';
import { summarize } from '../lib/stats.js';

const TTL_MS = 10_000;
const OPTIONS = { ttlMs: TTL_MS, timeoutMs: 2_000 };

/** One acquire and release through a Coordinator. */
function coordinatorVariant(name: string, coordinator: Coordinator, lock: string): LatencyVariant {
  return {
    name,
    async once() {
      const lease = await coordinator.acquire(lock, OPTIONS);
      await lease.release();
    },
  };
}

/** A comparison: the adapter against its baseline; `target` when the issue sets one. */
interface Pair {
  readonly adapter: string;
  readonly baseline: string;
  readonly baselineLabel: string;
  /**
   * The target, if any: within {@link RAW_TARGET} of raw statements with the same guarantees, or on
   * par with a peer library (within {@link PEER_TARGET}, or ahead).
   */
  readonly target: 'raw' | 'peer' | undefined;
}

const RAW_TARGET = 1.2;
const PEER_TARGET = 1.05;

export const suite: Suite = {
  async run({ quick, progress }) {
    const cleanups: (() => Promise<unknown> | unknown)[] = [];
    const cleanUp = async (): Promise<void> => {
      for (const c of cleanups.reverse())
        await Promise.resolve()
          .then(c)
          .catch(() => undefined);
    };
    try {
      const variants: LatencyVariant[] = [];
      const lock = uniqueName('bench_lock');

      // In-process: MemoryCoordinator against async-mutex (there is no backend round trip to compare with).
      const { MemoryCoordinator, MemoryBackend } = await memory();
      const mem = new MemoryCoordinator({ backend: new MemoryBackend() });
      cleanups.push(() => mem.close());
      const mutex = new Mutex();
      variants.push(coordinatorVariant('MemoryCoordinator', mem, lock), {
        name: 'async-mutex',
        async once() {
          const release = await mutex.acquire();
          release();
        },
      });

      // SQLite: the coordinator on a host's handle (WAL, synchronous NORMAL), against raw statements on
      // more handles to the same file. With the same guarantees (the target): one conditional upsert that
      // takes the lock and bumps its fencing token, committed at synchronous FULL (a durable counter), and
      // an owner-checked UPDATE that frees the lock and keeps the token, at NORMAL. For information: the
      // adapter's own scheme done raw (tokens reserved in durable blocks: a conditional UPDATE within the
      // reservation at NORMAL, a reserving upsert at FULL once per block), and the upsert without a
      // counter with an owner-checked DELETE.
      const { openSqliteDatabase, SqliteCoordinator } = await sqlite();
      const path = join(tmpdir(), `${uniqueName('gd-bench-locks')}.sqlite`);
      cleanups.push(() => {
        for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
      });
      const hostDb = await openSqliteDatabase(path);
      cleanups.push(() => hostDb.close());
      hostDb.pragma('journal_mode = WAL');
      hostDb.pragma('synchronous = NORMAL');
      hostDb.exec(
        'CREATE TABLE raw_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL)',
      );
      hostDb.exec(
        'CREATE TABLE raw_fenced_locks (name TEXT PRIMARY KEY, token INTEGER NOT NULL, owner TEXT, expires_at INTEGER NOT NULL)',
      );
      const sqliteCoordinator = new SqliteCoordinator({ database: hostDb });
      cleanups.push(() => sqliteCoordinator.close());
      hostDb.exec(
        'CREATE TABLE raw_reserved_locks (name TEXT PRIMARY KEY, token INTEGER NOT NULL, ceiling INTEGER NOT NULL, owner TEXT, expires_at INTEGER NOT NULL)',
      );
      const takeDb = await openSqliteDatabase(path);
      const freeDb = await openSqliteDatabase(path);
      const reserveDb = await openSqliteDatabase(path);
      cleanups.push(
        () => takeDb.close(),
        () => freeDb.close(),
        () => reserveDb.close(),
      );
      takeDb.pragma('synchronous = FULL');
      freeDb.pragma('synchronous = NORMAL');
      reserveDb.pragma('synchronous = NORMAL');
      const reservedTake = reserveDb.prepare(
        `UPDATE raw_reserved_locks SET token = token + 1, owner = ?, expires_at = ?
         WHERE name = ? AND (owner IS NULL OR expires_at <= ?) AND token < ceiling RETURNING token`,
      );
      const reservingTake = reserveDb.prepare(
        `INSERT INTO raw_reserved_locks (name, token, ceiling, owner, expires_at) VALUES (?, 1, 1001, ?, ?)
         ON CONFLICT (name) DO UPDATE SET token = max(token, ceiling) + 1, ceiling = max(token, ceiling) + 1001,
           owner = excluded.owner, expires_at = excluded.expires_at
         WHERE raw_reserved_locks.owner IS NULL OR raw_reserved_locks.expires_at <= ? RETURNING token`,
      );
      const reserveFull = reserveDb.prepare('PRAGMA synchronous = FULL');
      const reserveNormal = reserveDb.prepare('PRAGMA synchronous = NORMAL');
      const reservedFree = freeDb.prepare(
        'UPDATE raw_reserved_locks SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ?',
      );
      const take = takeDb.prepare(
        `INSERT INTO raw_locks (name, owner, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE raw_locks.expires_at <= ?`,
      );
      const free = freeDb.prepare('DELETE FROM raw_locks WHERE name = ? AND owner = ?');
      const sqliteFencedTake = takeDb.prepare(
        `INSERT INTO raw_fenced_locks (name, token, owner, expires_at) VALUES (?, 1, ?, ?)
         ON CONFLICT (name) DO UPDATE SET token = raw_fenced_locks.token + 1, owner = excluded.owner,
           expires_at = excluded.expires_at
         WHERE raw_fenced_locks.expires_at <= ? RETURNING token`,
      );
      const sqliteFencedFree = freeDb.prepare(
        'UPDATE raw_fenced_locks SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ?',
      );
      variants.push(
        coordinatorVariant('SqliteCoordinator', sqliteCoordinator, lock),
        {
          name: 'SQLite raw fenced',
          async once() {
            const owner = randomUUID();
            const wall = Date.now();
            if (sqliteFencedTake.get(lock, owner, wall + TTL_MS, wall) === undefined)
              throw new Error('raw fenced SQLite lock held');
            await Promise.resolve();
            if (sqliteFencedFree.run(lock, owner).changes !== 1)
              throw new Error('raw fenced SQLite lock lost');
          },
        },
        {
          name: 'SQLite raw reserved',
          async once() {
            const owner = randomUUID();
            const wall = Date.now();
            if (reservedTake.get(owner, wall + TTL_MS, lock, wall) === undefined) {
              reserveFull.run();
              const taken = reservingTake.get(lock, owner, wall + TTL_MS, wall);
              reserveNormal.run();
              if (taken === undefined) throw new Error('raw reserved SQLite lock held');
            }
            await Promise.resolve();
            if (reservedFree.run(lock, owner).changes !== 1) throw new Error('raw reserved SQLite lock lost');
          },
        },
        {
          name: 'SQLite raw',
          async once() {
            const owner = randomUUID();
            const wall = Date.now();
            if (take.run(lock, owner, wall + TTL_MS, wall).changes !== 1)
              throw new Error('raw SQLite lock held');
            await Promise.resolve();
            free.run(lock, owner);
          },
        },
      );

      // Redis: the coordinator, SET NX PX plus an owner-checked delete script, and redlock.
      const { RedisCoordinator } = await redis();
      const raw = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await raw.connect();
      } catch (error) {
        raw.disconnect();
        throw serverMissing('Redis', 'GD_REDIS_URL', error);
      }
      cleanups.push(() => raw.quit());
      const redisVersion = ((await raw.info('server')).match(/redis_version:(\S+)/) ?? [])[1] ?? '?';
      const prefix = `${uniqueName('gd-bench')}:`;
      const redisCoordinator = new RedisCoordinator({ url: REDIS_URL, keyPrefix: prefix });
      cleanups.push(() => redisCoordinator.close());
      const release = raw.defineCommand.bind(raw);
      release('gdBenchRelease', {
        numberOfKeys: 1,
        lua: "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
      });
      const rawKey = `${prefix}raw`;
      // The same guarantees as the adapter (the target): one script, sent with EVALSHA, that takes the lock
      // with SET NX PX and, when it got it, bumps the lock's fencing counter (INCR); then the
      // owner-checked delete script.
      release('gdBenchFencedAcquire', {
        numberOfKeys: 2,
        lua: `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            return redis.call('INCR', KEYS[2])
          end
          return false`,
      });
      const fencedRedisKey = `${prefix}fenced`;
      const redlockClient = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      cleanups.push(() => redlockClient.quit());
      const redlock = new Redlock([redlockClient], { retryCount: 0 });
      const redlockKey = `${prefix}redlock`;
      cleanups.push(async () => {
        // The coordinator's keys open with their hash tag (`{prefix...}`): its fencing counters, kept
        // for good by design, were left behind by every run.
        const keys = [...(await raw.keys(`${prefix}*`)), ...(await raw.keys(`{${prefix}*`))];
        if (keys.length > 0) await raw.del(...keys);
      });
      variants.push(
        coordinatorVariant('RedisCoordinator', redisCoordinator, lock),
        {
          name: 'Redis raw',
          async once() {
            const owner = randomUUID();
            if ((await raw.set(rawKey, owner, 'PX', TTL_MS, 'NX')) !== 'OK')
              throw new Error('raw Redis lock held');
            const r = raw as unknown as { gdBenchRelease(key: string, owner: string): Promise<number> };
            if ((await r.gdBenchRelease(rawKey, owner)) !== 1) throw new Error('raw Redis lock lost');
          },
        },
        {
          name: 'Redis raw fenced',
          async once() {
            const owner = randomUUID();
            const r = raw as unknown as {
              gdBenchFencedAcquire(key: string, fence: string, owner: string, ttl: number): Promise<unknown>;
              gdBenchRelease(key: string, owner: string): Promise<number>;
            };
            const token = await r.gdBenchFencedAcquire(
              fencedRedisKey,
              `${fencedRedisKey}:fence`,
              owner,
              TTL_MS,
            );
            if (typeof token !== 'number') throw new Error('raw fenced Redis lock held');
            if ((await r.gdBenchRelease(fencedRedisKey, owner)) !== 1)
              throw new Error('raw fenced Redis lock lost');
          },
        },
        {
          name: 'redlock',
          async once() {
            const held = await redlock.acquire([redlockKey], TTL_MS);
            await held.release();
          },
        },
      );

      // PostgreSQL: the coordinator against raw statements on one client. With the same guarantees (the
      // target): one statement that takes a session advisory lock and, when it got it, bumps the lock's
      // fencing token in a table (a durable counter: its commit waits for the WAL flush, as the adapter's
      // does), then pg_advisory_unlock. Without a token (for information): pg_try_advisory_lock, then
      // pg_advisory_unlock.
      const { migrate, PostgresCoordinator } = await postgres();
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      try {
        await client.connect();
      } catch (error) {
        throw serverMissing('PostgreSQL', 'GD_POSTGRES_URL', error);
      }
      cleanups.push(() => client.end());
      const pgVersion = (
        await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")
      ).rows[0]?.v.split(' ')[0];
      const schema = uniqueName('gd_bench');
      await migrate(client, { schema });
      cleanups.push(() => client.query(`DROP SCHEMA "${schema}" CASCADE`));
      const pgCoordinator = new PostgresCoordinator({ connectionString: POSTGRES_URL, schema });
      cleanups.push(() => pgCoordinator.close());
      const randomKey = (): string =>
        String(BigInt.asIntN(64, BigInt(`0x${randomUUID().replaceAll('-', '').slice(0, 16)}`)));
      const key = randomKey();
      const fencedKey = randomKey();
      await client.query(
        `CREATE TABLE "${schema}".raw_fences (name text PRIMARY KEY, token bigint NOT NULL)`,
      );
      const fencedTake = `WITH l AS (SELECT pg_try_advisory_lock($1::bigint) AS got)
        INSERT INTO "${schema}".raw_fences AS f (name, token) SELECT 'raw', 1 FROM l WHERE l.got
        ON CONFLICT (name) DO UPDATE SET token = f.token + 1 RETURNING f.token`;
      variants.push(
        coordinatorVariant('PostgresCoordinator', pgCoordinator, lock),
        {
          name: 'PostgreSQL raw',
          async once() {
            const { rows } = await client.query<{ ok: boolean }>(
              'SELECT pg_try_advisory_lock($1::bigint) AS ok',
              [key],
            );
            if (rows[0]?.ok !== true) throw new Error('raw advisory lock held');
            await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
          },
        },
        {
          // The same with a durable fencing token, bumped in the statement that takes the lock.
          name: 'PostgreSQL raw fenced',
          async once() {
            const { rows } = await client.query(fencedTake, [fencedKey]);
            if (rows.length !== 1) throw new Error('raw fenced advisory lock held');
            await client.query('SELECT pg_advisory_unlock($1::bigint)', [fencedKey]);
          },
        },
      );

      const iterations = quick ? 150 : 2_000;
      const warmup = quick ? 20 : 100;
      const samples = await interleaveLatency(variants, {
        iterations,
        warmup,
        onProgress: (i, of) =>
          progress(`iteration ${i.toLocaleString('en-US')}/${of.toLocaleString('en-US')}`),
      });

      const pairs: Pair[] = [
        {
          adapter: 'MemoryCoordinator',
          baseline: 'async-mutex',
          baselineLabel: 'async-mutex acquire + release',
          target: undefined,
        },
        {
          adapter: 'SqliteCoordinator',
          baseline: 'SQLite raw fenced',
          baselineLabel: 'raw: upsert that takes the lock and bumps its token (FULL) + owner-checked UPDATE',
          target: 'raw',
        },
        {
          adapter: 'SqliteCoordinator',
          baseline: 'SQLite raw reserved',
          baselineLabel:
            "raw, the adapter's scheme: UPDATE within a reserved block of tokens (NORMAL; a reserving upsert at FULL every 1,000) + owner-checked UPDATE",
          target: undefined,
        },
        {
          adapter: 'SqliteCoordinator',
          baseline: 'SQLite raw',
          baselineLabel: 'raw without a token: conditional upsert (FULL) + owner-checked DELETE',
          target: undefined,
        },
        {
          adapter: 'RedisCoordinator',
          baseline: 'Redis raw fenced',
          baselineLabel: 'raw: one EVALSHA script (SET NX PX, then INCR of the token) + DEL script',
          target: 'raw',
        },
        {
          adapter: 'RedisCoordinator',
          baseline: 'Redis raw',
          baselineLabel: 'raw without a token: SET NX PX + owner-checked DEL script',
          target: undefined,
        },
        {
          adapter: 'RedisCoordinator',
          baseline: 'redlock',
          baselineLabel: '@sesamecare-oss/redlock, one Redis (no token)',
          target: 'peer',
        },
        {
          adapter: 'PostgresCoordinator',
          baseline: 'PostgreSQL raw fenced',
          baselineLabel: 'raw: advisory lock + token upsert in one statement + pg_advisory_unlock',
          target: 'raw',
        },
        {
          adapter: 'PostgresCoordinator',
          baseline: 'PostgreSQL raw',
          baselineLabel: 'raw without a token: pg_try_advisory_lock + pg_advisory_unlock',
          target: undefined,
        },
      ];
      const blocks = 10;
      const rows: string[][] = [];
      const checks: Check[] = [];
      const get = (name: string): number[] => samples.get(name) ?? [];
      const labelled = new Set<string>();
      for (const pair of pairs) {
        const a = get(pair.adapter);
        const b = get(pair.baseline);
        const sa = summarize(a);
        const sb = summarize(b);
        // The p50 ratio block by block (blocks of consecutive iterations), for its spread.
        const blockRatios = summarize(
          blocksOf(a, blocks).map(
            (block, i) => summarize(block).median / summarize(blocksOf(b, blocks)[i] ?? []).median,
          ),
        );
        const p99Ratio = sa.p99 / sb.p99;
        if (!labelled.has(pair.adapter)) {
          rows.push([pair.adapter, duration(sa.median), duration(sa.p99), '', '']);
          labelled.add(pair.adapter);
        }
        rows.push([
          `↳ vs ${pair.baselineLabel}`,
          duration(sb.median),
          duration(sb.p99),
          iqr(blockRatios, times),
          times(p99Ratio),
        ]);
        if (pair.target !== undefined) {
          const limit = pair.target === 'raw' ? RAW_TARGET : PEER_TARGET;
          checks.push({
            target:
              pair.target === 'raw'
                ? `${pair.adapter} acquire + release within ${RAW_TARGET}x of raw statements with the same guarantees (lock + fencing token)`
                : `${pair.adapter} acquire + release on par with ${pair.baseline} (p50 within ${PEER_TARGET}x, or ahead)`,
            measured: `p50 ${duration(sa.median)} vs ${duration(sb.median)}: ${iqr(blockRatios, times)}; p99 ${times(p99Ratio)}`,
            status: status(blockRatios.median <= limit),
          });
        }
      }
      return {
        method:
          `Acquire then release of one uncontended lock (TTL ${TTL_MS / 1000} s), timed as one operation. ` +
          `Every iteration runs all contenders once, in a fresh random order: ${iterations.toLocaleString('en-US')} ` +
          `iterations after ${warmup} warm-up ones. The targets compare each adapter with raw statements that ` +
          `give the same guarantees: a lock plus a durable fencing counter bumped by each take (the ` +
          `adapters' \`fencing: 'monotonic'\`), each baseline on a connection of its own. SQLite ` +
          `(\`openSqliteDatabase()\`: node:sqlite on Node.js 22.13 and later, better-sqlite3 before; WAL): one ` +
          `\`INSERT ... ON CONFLICT DO UPDATE SET token = token + 1 ... WHERE expires_at <= now RETURNING token\` ` +
          `committed at synchronous FULL, then an owner-checked \`UPDATE\` that frees the lock and keeps its ` +
          `token, at NORMAL. The adapter runs on the host's handle, at synchronous NORMAL, and reserves its ` +
          `tokens in durable blocks: a take within this instance's reservation is one conditional \`UPDATE\` ` +
          `committed at NORMAL (no fsync), and one take in 1,000 (and the first of each instance) reserves ` +
          `the next block at FULL; the guarantee is the same (no token is handed out twice, even across a ` +
          `power loss: see docs/adapters/sqlite.md). For information, the same scheme done raw on a ` +
          `connection of its own. Redis ${redisVersion}: one script sent with EVALSHA, \`SET key owner NX PX\` then ` +
          `\`INCR\` of the lock's counter, then an owner-checked delete script (EVALSHA); and ` +
          `@sesamecare-oss/redlock (no fencing token) on the same single Redis, which the adapter should match ` +
          `or beat. PostgreSQL ${pgVersion ?? '?'}: one statement that takes \`pg_try_advisory_lock\` and, when ` +
          `it got it, upserts the lock's token row (\`token = token + 1\`, committed with a WAL flush, as ` +
          `the adapter's \`synchronous_commit = on\` session does), then \`pg_advisory_unlock\`. For ` +
          `information, the same baselines without a token: SQLite's conditional upsert (FULL) and ` +
          `owner-checked \`DELETE\`, Redis's \`SET NX PX\` and delete script, PostgreSQL's ` +
          `\`pg_try_advisory_lock\` and \`pg_advisory_unlock\`. MemoryCoordinator has no backend: it is shown ` +
          `against async-mutex for scale, without a target. Ratios: the p50 ratio in ${blocks} blocks of ` +
          `consecutive iterations, median [interquartile range]; and the ratio of the overall p99s.`,
        tables: [
          {
            title: 'Acquire + release',
            columns: ['Contender', 'p50', 'p99', 'p50 ratio', 'p99 ratio'],
            rows,
          },
        ],
        checks,
        notes: [],
      };
    } finally {
      await cleanUp();
    }
  },
};
