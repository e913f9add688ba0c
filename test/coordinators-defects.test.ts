/**
 * Defects found in a review of the coordinators (Redis, PostgreSQL) against the contract of
 * src/coordinator.ts and docs/coordinator.md. Each test shows one defect on the real servers, and failed
 * before its fix:
 * - Redis: close() landing as the ACQUIRE script is answered handed out a live lease over the lock close()
 *   had freed (src/adapters/redis/coordinator.ts, acquire);
 * - Redis: the same race in join() handed out a live membership close() had removed (join);
 * - Redis: leave() of a membership already lost rejected (ClosedError after close(); after
 *   `commandTimeoutMs` when lost to a dropped connection), where release() of a lost lease resolves
 *   (src/adapters/redis/membership.ts);
 * - PostgreSQL: a `ttlMs` shorter than a round trip was accepted, and its watchdog dropped the session with
 *   every other lease on it (src/adapters/postgres/coordinator.ts, checkTtl);
 * - PostgreSQL: a name over the btree row limit failed as an outage (`CoordinatorUnavailableError`)
 *   instead of a `ConfigurationError` naming it (checkNameSize).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PostgresCoordinator } from '../src/adapters/postgres/index.js';
import { RedisCoordinator } from '../src/adapters/redis/index.js';
import { ACQUIRE, JOIN } from '../src/adapters/redis/scripts.js';
import type { Coordinator, Lease, Membership } from '../src/coordinator.js';
import { ClosedError, ConfigurationError, CoordinatorUnavailableError } from '../src/errors.js';
import { randomId } from '../src/internal/time.js';
import { testSchema, type TestSchema } from './fixtures/postgres-setup.js';
import { POSTGRES_URL, REDIS_URL, uniqueName } from './support/env.js';
import { TcpProxy } from './support/tcp-proxy.js';

const REDIS_PREFIX = `${uniqueName('gd_review_coord')}:`;

const made: Coordinator[] = [];
const users: Redis[] = [];
const proxies: TcpProxy[] = [];

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(made.splice(0).map((c) => c.close()));
  for (const user of users.splice(0)) user.disconnect();
});

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');

/**
 * A real ioredis client whose `duplicate()` (the coordinator's own connection) reports every script reply
 * to `onReply` in a reaction queued right after the coordinator's own: the moment a reply has been handed
 * to the coordinator, before the code awaiting it has resumed. No server is mocked: the commands go to Redis.
 */
function observedClient(onReply: (script: string) => void): Redis {
  const user = new Redis(REDIS_URL, { lazyConnect: true });
  user.on('error', () => {});
  users.push(user);
  const duplicate = user.duplicate.bind(user);
  user.duplicate = (override?: Partial<RedisOptions>) => {
    const connection = duplicate(override);
    for (const method of ['eval', 'evalsha'] as const) {
      const send = (connection[method] as (...args: unknown[]) => Promise<unknown>).bind(connection);
      (connection as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        const reply = send(...args);
        const script = String(args[0]);
        // Queued after the session's own reaction to the reply, which is attached synchronously.
        queueMicrotask(
          () =>
            void reply.then(
              () => onReply(method === 'eval' ? sha1(script) : script),
              () => {},
            ),
        );
        return reply;
      };
    }
    return connection;
  };
  return user;
}

function redisCoordinator(client?: Redis): RedisCoordinator {
  const c =
    client === undefined
      ? new RedisCoordinator({ url: REDIS_URL, keyPrefix: REDIS_PREFIX })
      : new RedisCoordinator({ client, keyPrefix: REDIS_PREFIX });
  made.push(c);
  return c;
}

/** Resolves once `signal` aborts; rejects when it has not within `ms`. */
async function aborted(signal: AbortSignal, ms: number): Promise<void> {
  if (signal.aborted) return;
  await Promise.race([
    once(signal, 'abort'),
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`not aborted within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

describe('RedisCoordinator', () => {
  it('close() landing as the acquire script is answered: acquire hands out no live lease over the lock close() freed', async () => {
    const ref: { coordinator?: RedisCoordinator } = {};
    let closing: Promise<void> | undefined;
    const client = observedClient((script) => {
      if (script === sha1(ACQUIRE) && closing === undefined) closing = ref.coordinator?.close();
    });
    const coordinator = (ref.coordinator = redisCoordinator(client));
    const name = `lock-${randomId()}`;
    const outcome = await coordinator.acquire(name, { ttlMs: 10_000, timeoutMs: 2000 }).then(
      (lease) => lease,
      (error: unknown) => error,
    );
    expect(closing).toBeDefined();
    await closing;
    // close() released the lock (the owner-checked delete of the acquire in flight): another takes it.
    const rival = await redisCoordinator().acquire(name, { ttlMs: 10_000, timeoutMs: 2000 });
    expect(rival.token).toBe(2n);
    // So the acquire must have rejected with ClosedError, or its lease be aborted already.
    const live = !(outcome instanceof Error) && !(outcome as Lease).signal.aborted;
    expect(live ? 'a live lease, while another instance holds the lock' : 'rejected or aborted').toBe(
      'rejected or aborted',
    );
  });

  it('close() landing as the join script is answered: join hands out no live membership that members() no longer lists', async () => {
    const ref: { coordinator?: RedisCoordinator } = {};
    let closing: Promise<void> | undefined;
    const client = observedClient((script) => {
      if (script === sha1(JOIN) && closing === undefined) closing = ref.coordinator?.close();
    });
    const coordinator = (ref.coordinator = redisCoordinator(client));
    const group = `group-${randomId()}`;
    const outcome = await coordinator.join(group, 'm1', { ttlMs: 10_000 }).then(
      (membership) => membership,
      (error: unknown) => error,
    );
    expect(closing).toBeDefined();
    await closing;
    const listed = (await redisCoordinator().members(group)).map((m) => m.memberId);
    expect(listed).toEqual([]); // close() removed the member
    const live = !(outcome instanceof Error) && !(outcome as Membership).signal.aborted;
    expect(live ? 'a live membership, no longer listed' : 'rejected or aborted').toBe('rejected or aborted');
    if (outcome instanceof Error) expect(outcome).toBeInstanceOf(ClosedError);
  });

  it('leave() of a membership that close() has already lost resolves, as release() of its lost lease does', async () => {
    const c = redisCoordinator();
    const membership = await c.join(`group-${randomId()}`, 'm1', { ttlMs: 10_000 });
    const lease = await c.acquire(`lock-${randomId()}`, { ttlMs: 10_000, timeoutMs: 2000 });
    const closing = c.close();
    expect(membership.signal.aborted).toBe(true); // lost: nothing is left for the holder to do
    expect(lease.signal.aborted).toBe(true);
    await expect(lease.release()).resolves.toBeUndefined();
    const left = await membership.leave().then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await closing;
    expect(left).toBe('resolved');
  });

  it('leave() of a membership lost to a dropped connection resolves at once, not after commandTimeoutMs', async () => {
    const target = new URL(REDIS_URL);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 6379));
    proxies.push(proxy);
    const url = new URL(REDIS_URL);
    url.hostname = '127.0.0.1';
    url.port = String(await proxy.listen());
    const c = new RedisCoordinator({ url: url.toString(), keyPrefix: REDIS_PREFIX, commandTimeoutMs: 1000 });
    made.push(c);
    const membership = await c.join(`group-${randomId()}`, 'm1', { ttlMs: 10_000 });
    proxy.down(); // the connection drops, and no other can be made: the removal waits for one
    await aborted(membership.signal, 2000);
    const left = await membership.leave().then(
      () => 'resolved',
      (error: unknown) => error,
    );
    expect(left).toBe('resolved');
  });
});

describe('PostgresCoordinator', () => {
  let db: TestSchema;
  beforeAll(async () => {
    db = await testSchema('gd_review_coord');
  });
  afterAll(async () => {
    await db.drop();
  });

  function pgCoordinator(): PostgresCoordinator {
    const c = new PostgresCoordinator({ url: POSTGRES_URL, schema: db.schema });
    made.push(c);
    return c;
  }

  it('a lease with a ttlMs shorter than a round trip is refused, rather than dropping the session with every other lease on it', async () => {
    const c = pgCoordinator();
    const held = await c.acquire(`lock-${randomId()}`, { ttlMs: 10_000, timeoutMs: 2000 });
    const outcome = await c.acquire(`lock-${randomId()}`, { ttlMs: 0.001, timeoutMs: 2000 }).then(
      (lease) => lease,
      (error: unknown) => error,
    );
    if (outcome instanceof Error) {
      expect(outcome).toBeInstanceOf(ConfigurationError);
    } else {
      // Accepted: it may lose itself, but never the unrelated lease held on the same session.
      await aborted((outcome as Lease).signal, 2000).catch(() => {});
    }
    expect(held.signal.aborted ? String(held.signal.reason) : 'held').toBe('held');
  });

  it('refuses a ttlMs below 100 ms in acquire() and join(), naming ttlMs and the value', async () => {
    const c = pgCoordinator();
    for (const call of [
      () => c.acquire(`lock-${randomId()}`, { ttlMs: 99, timeoutMs: 2000 }),
      () => c.join(`group-${randomId()}`, 'm1', { ttlMs: 99 }),
    ]) {
      const error = await call().then(
        () => 'accepted',
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/`ttlMs`.*100.*`99`/);
    }
    const lease = await c.acquire(`lock-${randomId()}`, { ttlMs: 100, timeoutMs: 2000 });
    await lease.release();
  });

  it('a lock name the index cannot take (3000 characters) is refused with a ConfigurationError naming it, not as an outage', async () => {
    const c = pgCoordinator();
    const name = Array.from({ length: 100 }, () => randomId().replaceAll('-', ''))
      .join('')
      .slice(0, 3000);
    const outcome = await c.acquire(name, { ttlMs: 10_000, timeoutMs: 2000 }).then(
      (lease) => lease,
      (error: unknown) => error,
    );
    // A name it cannot take is a ConfigurationError at most; CoordinatorUnavailableError says the server failed.
    expect(outcome).not.toBeInstanceOf(CoordinatorUnavailableError);
    if (!(outcome instanceof Error)) expect((outcome as Lease).token).toBe(1n);
    expect(outcome).toBeInstanceOf(ConfigurationError);
    expect((outcome as Error).message).toMatch(/`name`.*1000 bytes.*3000 bytes/);
    // The limit is in UTF-8 bytes: 1000 of them are taken.
    const lease = await c.acquire('é'.repeat(500), { ttlMs: 10_000, timeoutMs: 2000 });
    expect(lease.token).toBe(1n);
    await lease.release();
  });

  it('a group or member id over 1000 UTF-8 bytes is refused, naming it, before anything is sent', async () => {
    // No server behind this URL: a ConfigurationError comes from the check, not from a connection.
    const c = new PostgresCoordinator({ url: 'postgres://127.0.0.1:1/none', schema: db.schema });
    made.push(c);
    const long = 'é'.repeat(501); // 501 characters, 1002 bytes
    for (const [call, argument] of [
      [() => c.join(long, 'm1', { ttlMs: 10_000 }), 'group'],
      [() => c.join('g', long, { ttlMs: 10_000 }), 'memberId'],
      [() => c.members(long), 'group'],
      [() => c.acquire(long, { ttlMs: 10_000, timeoutMs: 0 }), 'name'],
    ] as const) {
      const error = await (call as () => Promise<unknown>)().then(
        () => 'accepted',
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(new RegExp(`\`${argument}\`.*1002 bytes`));
    }
  });
});
