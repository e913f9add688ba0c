import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  PostgresCoordinator,
  type PgSessionClient,
  type PostgresCoordinatorOptions,
} from '../src/adapters/postgres/index.js';
import type { Lease, Membership } from '../src/coordinator.js';
import {
  ConfigurationError,
  CoordinatorUnavailableError,
  LockLostError,
  LockTimeoutError,
  MembershipLostError,
} from '../src/errors.js';
import { now, randomId } from '../src/internal/time.js';
import { coordinatorContract } from '../src/testing/vitest/index.js';
import { testSchema, urlWithApplicationName, type TestSchema } from './fixtures/postgres-setup.js';
import { POSTGRES_URL } from './support/env.js';
import { ChildProcesses, kill } from './support/processes.js';
import { TcpProxy } from './support/tcp-proxy.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/postgres-holder.ts', import.meta.url));
const TTL = 600;

let db: TestSchema;
beforeAll(async () => {
  db = await testSchema('gd_pg_coord');
});
afterAll(async () => {
  await db.drop();
});

const made: PostgresCoordinator[] = [];
function make(options: Partial<PostgresCoordinatorOptions> = {}): PostgresCoordinator {
  const source = options.client === undefined ? { url: POSTGRES_URL } : {};
  const c = new PostgresCoordinator({ ...source, schema: db.schema, ...options });
  made.push(c);
  return c;
}

const proxies: TcpProxy[] = [];
/** A loopback proxy to the test server, and the URL through it. */
async function proxy(): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(POSTGRES_URL);
  const p = new TcpProxy(target.hostname, Number(target.port || 5432));
  proxies.push(p);
  const port = await p.listen();
  const url = new URL(POSTGRES_URL);
  url.port = String(port);
  return { proxy: p, url: url.toString() };
}

const children = new ChildProcesses();

afterEach(async () => {
  await Promise.all(made.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await children.killAll();
});

/** Resolves with the abort reason of `signal`, or rejects after `ms`. */
async function abortReason(signal: AbortSignal, ms: number): Promise<unknown> {
  if (!signal.aborted) {
    await Promise.race([
      once(signal, 'abort'),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`not aborted within ${ms} ms`)), ms).unref(),
      ),
    ]);
  }
  return signal.reason;
}

const lockName = (): string => `lock-${randomId()}`;
const groupName = (): string => `group-${randomId()}`;
const memberIds = async (c: PostgresCoordinator, group: string): Promise<string[]> =>
  (await c.members(group)).map((m) => m.memberId);

coordinatorContract(() => make(), { name: 'PostgresCoordinator', ttlMs: TTL });

describe('PostgresCoordinator', () => {
  it('capabilities: cluster scope, connection liveness, monotonic fencing', () => {
    expect(make().capabilities).toEqual({ scope: 'cluster', liveness: 'connection', fencing: 'monotonic' });
  });

  it('acquire on one instance excludes a second acquire of the same name on that instance', async () => {
    // A session grants its own advisory locks again: the instance must exclude itself.
    const a = make();
    const lock = lockName();
    const first = await a.acquire(lock, { ttlMs: TTL, timeoutMs: 0 });
    const [x, y] = await Promise.allSettled([
      a.acquire(lock, { ttlMs: TTL, timeoutMs: 200 }),
      a.acquire(lock, { ttlMs: TTL, timeoutMs: 0 }),
    ]);
    expect(x).toMatchObject({ status: 'rejected', reason: expect.any(LockTimeoutError) });
    expect(y).toMatchObject({ status: 'rejected', reason: expect.any(LockTimeoutError) });
    const waiting = a.acquire(lock, { ttlMs: TTL, timeoutMs: 5000 });
    await first.release();
    const second = await waiting;
    expect(second.token).toBeGreaterThan(first.token);
    await second.release();
  });

  it('concurrent acquires of one free name on one instance: exactly one wins', async () => {
    const a = make();
    const lock = lockName();
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => a.acquire(lock, { ttlMs: TTL, timeoutMs: 100 })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('fencing tokens keep growing across instances and restarts of the coordinator', async () => {
    const lock = lockName();
    const tokens: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const c = make();
      const lease = await c.acquire(lock, { ttlMs: TTL, timeoutMs: 1000 });
      tokens.push(lease.token);
      await c.close();
    }
    expect(tokens).toEqual([tokens[0], (tokens[0] as bigint) + 1n, (tokens[0] as bigint) + 2n]);
  });

  it('sets keepalives and timeouts on its session, so the server drops a vanished host within seconds', async () => {
    let client: pg.Client | undefined;
    const a = make({
      client: () => (client = new pg.Client({ connectionString: POSTGRES_URL })),
      keepAliveIdleMs: 2500,
      keepAliveIntervalMs: 2000,
      keepAliveCount: 4,
      idleInTransactionTimeoutMs: 7000,
    });
    await a.members(groupName());
    const { rows } = await (client as pg.Client).query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_interval',
         'tcp_keepalives_count', 'idle_in_transaction_session_timeout', 'synchronous_commit') ORDER BY name`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
      idle_in_transaction_session_timeout: '7000',
      synchronous_commit: 'on',
      tcp_keepalives_count: '4',
      tcp_keepalives_idle: '3',
      tcp_keepalives_interval: '2',
    });
  });

  it('lease.deadline never lies beyond the server keepalive window, whatever ttlMs', async () => {
    const a = make();
    const before = now();
    const lease = await a.acquire(lockName(), { ttlMs: 60_000, timeoutMs: 0 });
    // default window: 5 s idle + 3 probes 1 s apart
    expect(lease.deadline).toBeLessThanOrEqual(now() + 8000);
    expect(lease.deadline).toBeGreaterThan(before + 7000);
    await lease.release();
  });

  it('a membership whose row is deleted aborts at its next check, and is not re-created', async () => {
    const a = make();
    const group = groupName();
    const membership = await a.join(group, 'a', { ttlMs: TTL });
    await db.pool.query(`DELETE FROM "${db.schema}".members WHERE incarnation = $1`, [
      membership.incarnation,
    ]);
    expect(await abortReason(membership.signal, 2 * TTL)).toBeInstanceOf(MembershipLostError);
    expect(await memberIds(a, group)).toEqual([]);
  });

  it('a newer join of the same member id elsewhere replaces the former one, whose signal aborts', async () => {
    const [a, b] = [make(), make()];
    const group = groupName();
    const former = await a.join(group, 'same', { ttlMs: TTL });
    const newer = await b.join(group, 'same', { ttlMs: TTL });
    expect(await abortReason(former.signal, 2 * TTL)).toBeInstanceOf(MembershipLostError);
    expect(await a.members(group)).toEqual([
      { memberId: 'same', incarnation: newer.incarnation, ttlMs: TTL },
    ]);
    expect(newer.signal.aborted).toBe(false);
    // the former's leave does not remove the newer one
    await former.leave();
    expect(await memberIds(a, group)).toEqual(['same']);
  });

  it('rejects invalid options, naming the option and the value', () => {
    expect(() => new PostgresCoordinator({})).toThrow(/exactly one of `client`, `connectionString` or `url`/);
    expect(() => new PostgresCoordinator({ url: POSTGRES_URL, connectionString: POSTGRES_URL })).toThrow(
      /`connectionString` and `url`/,
    );
    expect(() => new PostgresCoordinator({ url: POSTGRES_URL, schema: 'my schema' })).toThrow(
      /`schema`.*"my schema"/,
    );
    expect(() => new PostgresCoordinator({ url: POSTGRES_URL, keepAliveCount: 0 })).toThrow(
      /`keepAliveCount`.*`0`/,
    );
    expect(() => new PostgresCoordinator({ url: POSTGRES_URL, closeTimeoutMs: -1 })).toThrow(
      /`closeTimeoutMs`/,
    );
    expect(() => new PostgresCoordinator({ url: POSTGRES_URL, pollintervalms: 5 } as never)).toThrow(
      /did you mean `pollIntervalMs`/,
    );
    expect(() => new PostgresCoordinator({ client: 'pg' as never })).toThrow(/`client`.*function/);
  });

  it('rejects invalid arguments of acquire and join', async () => {
    const a = make();
    await expect(a.acquire('', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(/`name`/);
    await expect(a.acquire('x', { ttlMs: 0, timeoutMs: 0 })).rejects.toThrow(/`ttlMs`/);
    await expect(a.acquire('x', { ttlMs: TTL, timeoutMs: -1 })).rejects.toThrow(/`timeoutMs`/);
    await expect(a.join('g', '', { ttlMs: TTL })).rejects.toThrow(/`memberId`/);
    await expect(a.join('g', 'm', { ttlMs: TTL, signal: 'no' as never })).rejects.toThrow(/`signal`/);
  });

  it('rejects invalid options of members, leave and release, naming them', async () => {
    const a = make();
    const lease = await a.acquire(lockName(), { ttlMs: TTL, timeoutMs: 0 });
    const membership = await a.join(groupName(), 'm', { ttlMs: TTL });
    await expect(a.members('g', { signal: 'no' } as never)).rejects.toThrow(/`signal`/);
    await expect(a.members('g', { singal: undefined } as never)).rejects.toThrow(/Unknown option `singal`/);
    await expect(membership.leave({ signal: {} } as never)).rejects.toThrow(/`signal`/);
    await expect(lease.release(null as never)).rejects.toThrow(ConfigurationError);
    await lease.release();
    await membership.leave();
  });

  it('members() on a silent connection rejects with the reason as soon as its signal aborts', async () => {
    const { proxy: p, url } = await proxy();
    const a = make({ url, queryTimeoutMs: 20_000 });
    const group = groupName();
    expect(await a.members(group)).toEqual([]);
    p.blackhole();
    const controller = new AbortController();
    const listing = a.members(group, { signal: controller.signal }).catch((e: unknown) => e);
    const reason = new Error('the shutdown stopped waiting');
    const abortedAt = now();
    setTimeout(() => controller.abort(reason), 50);
    expect(await listing).toBe(reason);
    expect(now() - abortedAt).toBeLessThan(1000);
  });

  it('an unreachable server: CoordinatorUnavailableError, never echoing the connection string', async () => {
    const a = make({ url: 'postgres://someone:s3cr3t-password@127.0.0.1:1/db', connectTimeoutMs: 1000 });
    const error = await a.acquire(lockName(), { ttlMs: TTL, timeoutMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CoordinatorUnavailableError);
    expect(JSON.stringify([(error as Error).message, String((error as Error).cause)])).not.toContain(
      's3cr3t',
    );
  });
});

describe('PostgresCoordinator faults', () => {
  it('pg_terminate_backend of its connection aborts every lease and membership, and it recovers', async () => {
    const app = `gd-test-${randomId()}`;
    const a = make({ url: urlWithApplicationName(app) });
    const b = make();
    const lock = lockName();
    const group = groupName();
    const lease = await a.acquire(lock, { ttlMs: 20 * TTL, timeoutMs: 0 });
    const membership = await a.join(group, 'a', { ttlMs: 20 * TTL });
    const { rows } = await db.pool.query<{ n: string }>(
      'SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE application_name = $1',
      [app],
    );
    expect(rows[0]?.n).toBe('1');
    expect(await abortReason(lease.signal, 2000)).toBeInstanceOf(LockLostError);
    expect(lease.signal.reason).toMatchObject({ code: 'ERR_LOCK_LOST' });
    expect(await abortReason(membership.signal, 2000)).toBeInstanceOf(MembershipLostError);
    // the session (and its locks) died with the backend
    const taken = await b.acquire(lock, { ttlMs: TTL, timeoutMs: 2000 });
    expect(taken.token).toBeGreaterThan(lease.token);
    expect(await memberIds(b, group)).toEqual([]);
    await lease.release();
    await membership.leave();
    // the instance opens a new session for later calls
    await taken.release();
    const again = await a.acquire(lock, { ttlMs: TTL, timeoutMs: 2000 });
    expect(again.token).toBeGreaterThan(taken.token);
    await again.release();
  });

  it('a holder process killed with SIGKILL frees its lock and leaves its group at once', async () => {
    const lock = lockName();
    const group = groupName();
    const holder = await children.fixture(FIXTURE, POSTGRES_URL, db.schema, lock, group, 'child');
    expect(holder.value).toMatch(/^\d+ \S+/);
    const b = make();
    expect(await memberIds(b, group)).toEqual(['child']);
    await expect(b.acquire(lock, { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
    const killedAt = now();
    await kill(holder.process);
    const lease = await b.acquire(lock, { ttlMs: TTL, timeoutMs: 5000 });
    // "at once": the server frees the lock as soon as it sees the connection close, with no TTL to wait out
    expect(now() - killedAt).toBeLessThan(1000);
    expect(await memberIds(b, group)).toEqual([]);
    await lease.release();
  });

  it('a blackholed connection: signals abort at the local deadline, while the server still holds the lock', async () => {
    const { proxy: p, url } = await proxy();
    const a = make({ url });
    const b = make();
    const lock = lockName();
    const group = groupName();
    const lease = await a.acquire(lock, { ttlMs: TTL, timeoutMs: 0 });
    const membership = await a.join(group, 'a', { ttlMs: TTL });
    const deadline = lease.deadline;
    p.blackhole();
    const reason = await abortReason(lease.signal, 3 * TTL);
    const abortedAt = now();
    expect(reason).toBeInstanceOf(LockLostError);
    expect(abortedAt).toBeLessThanOrEqual(Math.max(deadline, lease.deadline) + 100);
    expect(await abortReason(membership.signal, 100)).toBeInstanceOf(MembershipLostError);
    // Aborted before anyone else could take the lock: the server has not noticed anything yet.
    await expect(b.acquire(lock, { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
    expect(await memberIds(b, group)).toEqual(['a']);
  });

  it('leave() after a lost session deletes the row, so members() stops listing the lingering session', async () => {
    const { proxy: p, url } = await proxy();
    let calls = 0;
    // The first session goes through the proxy; later ones (for the confirming delete) go direct.
    const a = make({
      client: () => new pg.Client({ connectionString: calls++ === 0 ? url : POSTGRES_URL }),
    });
    const b = make();
    const group = groupName();
    const membership = await a.join(group, 'a', { ttlMs: TTL });
    p.blackhole();
    expect(await abortReason(membership.signal, 3 * TTL)).toBeInstanceOf(MembershipLostError);
    expect(await memberIds(b, group)).toEqual(['a']);
    await membership.leave();
    expect(await memberIds(b, group)).toEqual([]);
    expect(calls).toBe(2);
  });

  it('close() resolves within closeTimeoutMs while the server is unreachable, aborting everything first', async () => {
    const { proxy: p, url } = await proxy();
    const a = make({ url });
    const lease = await a.acquire(lockName(), { ttlMs: 20 * TTL, timeoutMs: 0 });
    const membership = await a.join(groupName(), 'a', { ttlMs: 20 * TTL });
    p.blackhole();
    const started = now();
    await a.close();
    const elapsed = now() - started;
    expect(elapsed).toBeLessThan(2000 + 300);
    expect(lease.signal.reason).toBeInstanceOf(LockLostError);
    expect(membership.signal.reason).toBeInstanceOf(MembershipLostError);
    await expect(lease.release()).resolves.toBeUndefined();
  });

  it('close() honours a shorter closeTimeoutMs', async () => {
    const { proxy: p, url } = await proxy();
    const a = make({ url, closeTimeoutMs: 300 });
    await a.acquire(lockName(), { ttlMs: 20 * TTL, timeoutMs: 0 });
    p.blackhole();
    const started = now();
    await a.close();
    expect(now() - started).toBeLessThan(300 + 200);
  });
});

/** Two real connections behind one client, the way a transaction-pooling proxy hands out backends. */
function twoBackends(switchAt: () => boolean): PgSessionClient {
  const first = new pg.Client({ connectionString: POSTGRES_URL });
  const second = new pg.Client({ connectionString: POSTGRES_URL });
  let count = 0;
  const client = {
    connect: async () => {
      await first.connect();
      await second.connect();
    },
    query: (text: string, values?: unknown[]) =>
      (switchAt() && count++ % 2 === 1 ? second : first).query(text, values),
    end: async () => {
      await Promise.allSettled([first.end(), second.end()]);
    },
    on: (event: 'error' | 'end', listener: (error: Error) => void) => {
      first.on(event, listener);
      second.on(event, listener);
    },
  };
  return client as PgSessionClient;
}

describe('PostgresCoordinator behind a transaction-pooling proxy', () => {
  it('refuses to start: the backend changes between two statements', async () => {
    const a = make({ client: () => twoBackends(() => true) });
    const error = await a.acquire(lockName(), { ttlMs: TTL, timeoutMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/different PostgreSQL backends/);
    expect((error as Error).message).toMatch(/PgBouncer/);
    expect((error as Error).message).toMatch(/session mode/);
  });

  it('a backend change noticed later, by the liveness check, aborts the leases', async () => {
    let switched = false;
    const a = make({ client: () => twoBackends(() => switched) });
    const lease: Lease = await a.acquire(lockName(), { ttlMs: TTL, timeoutMs: 0 });
    const membership: Membership = await a.join(groupName(), 'a', { ttlMs: TTL });
    switched = true;
    const reason = await abortReason(lease.signal, 3 * TTL);
    expect(reason).toBeInstanceOf(LockLostError);
    expect(String((reason as Error).message)).toMatch(/backend changed/);
    expect(membership.signal.aborted).toBe(true);
  });
});
