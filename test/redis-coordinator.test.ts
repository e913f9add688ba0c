import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Coordinator, Lease, Membership } from '../src/coordinator.js';
import { RedisCoordinator, type RedisCoordinatorOptions } from '../src/adapters/redis/index.js';
import { ACQUIRE, JOIN } from '../src/adapters/redis/scripts.js';
import {
  ClosedError,
  CoordinatorUnavailableError,
  LockLostError,
  LockTimeoutError,
  MembershipLostError,
} from '../src/errors.js';
import { delay, now, randomId } from '../src/internal/time.js';
import { coordinatorContract } from '../src/testing/vitest/index.js';
import { safetyMarginOf } from '../src/internal/keep-alive.js';
import { REDIS_URL, uniqueName } from './support/env.js';
import { TcpProxy } from './support/tcp-proxy.js';

// Every test in this file shares one Redis server, and CLIENT PAUSE (below) stops all of its clients:
// the Redis tests live in this one file so that vitest runs them one after another.

const PREFIX = `${uniqueName('gd_redis_test')}:`;
const FIXTURE = fileURLToPath(new URL('./fixtures/redis-holder.ts', import.meta.url));
const TTL = 1_000;

/** Fails fast when the server is missing: a command never waits for a connection that is not there. */
const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectionName: 'gd-test-admin' });
admin.on('error', () => {});

const made: Coordinator[] = [];
function make(options: Partial<RedisCoordinatorOptions> = {}): RedisCoordinator {
  const c = new RedisCoordinator({ url: REDIS_URL, keyPrefix: PREFIX, ...options });
  made.push(c);
  return c;
}

const proxies: TcpProxy[] = [];
const children: ChildProcess[] = [];
/** A coordinator whose connection goes through a loopback proxy the test can break. */
async function proxied(
  options: Partial<RedisCoordinatorOptions> = {},
): Promise<{ coordinator: RedisCoordinator; proxy: TcpProxy }> {
  const target = new URL(REDIS_URL);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 6379));
  proxies.push(proxy);
  const url = new URL(REDIS_URL);
  url.hostname = '127.0.0.1';
  url.port = String(await proxy.listen());
  return { coordinator: make({ url: url.toString(), ...options }), proxy };
}

const lockKey = (name: string, part: 'owner' | 'fence'): string => `{${PREFIX}lock:${name}}:${part}`;
const groupKey = (name: string, part: 'members' | 'info'): string => `{${PREFIX}group:${name}}:${part}`;

/** Resolves with `now()` at the moment `signal` aborts; rejects when it has not within `ms`. */
function abortTime(signal: AbortSignal, ms = 5000): Promise<number> {
  if (signal.aborted) return Promise.resolve(now());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the signal did not abort within ${ms} ms`)), ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve(now());
      },
      { once: true },
    );
  });
}

/** The last command of the connection named `name`, as CLIENT LIST shows it (`cmd=`). */
async function lastCommand(name: string): Promise<string | undefined> {
  const list = (await admin.client('LIST')) as string;
  return list
    .split('\n')
    .find((l) => l.includes(` name=${name} `))
    ?.match(/ cmd=(\S+)/)?.[1];
}

/** The id of the connection named `name` in CLIENT LIST. */
async function connectionId(name: string): Promise<string> {
  const list = (await admin.client('LIST')) as string;
  const line = list.split('\n').find((l) => l.includes(` name=${name} `));
  const id = line?.match(/^id=(\d+) /)?.[1];
  if (id === undefined) throw new Error(`no connection named ${name} in CLIENT LIST`);
  return id;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('Expected the promise to reject, but it resolved');
}

async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = now() + ms;
  for (;;) {
    if (await check()) return true;
    if (now() >= deadline) return false;
    await delay(10);
  }
}

/** Resolves once `coordinator` answers again after its connection was dropped. */
async function reconnected(coordinator: Coordinator): Promise<void> {
  const answered = await eventually(
    () =>
      coordinator.members('reconnected').then(
        () => true,
        () => false,
      ),
    3000,
  );
  if (!answered) throw new Error('the coordinator did not reconnect within 3 s');
}

/** Starts the holder fixture in its own process; `nextLine()` resolves its stdout line by line. */
function startHolder(
  mode: 'hold' | 'close',
  lock: string,
  group: string,
  ttlMs = TTL,
): { child: ChildProcess; nextLine: () => Promise<string>; exited: Promise<unknown[]> } {
  const args = ['--import', 'tsx', FIXTURE, mode, REDIS_URL, PREFIX, lock, group, 'child', String(ttlMs)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      const waiter = waiters.shift();
      if (waiter === undefined) lines.push(line);
      else waiter(line);
    }
  });
  const nextLine = (): Promise<string> => {
    const line = lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return Promise.race([
      new Promise<string>((resolve) => waiters.push(resolve)),
      exited.then(([code]) => Promise.reject(new Error(`holder exited with ${String(code)}: ${stderr}`))),
    ]);
  };
  return { child, nextLine, exited };
}

afterEach(async () => {
  // proxies first: a coordinator behind a blackholed one would spend its whole close() bound waiting
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(made.splice(0).map((c) => c.close()));
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

afterAll(async () => {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `{${PREFIX}*`, 'COUNT', 1000);
    if (keys.length > 0) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await admin.quit();
});

coordinatorContract(() => make(), { name: 'RedisCoordinator', ttlMs: TTL });

describe('RedisCoordinator', () => {
  describe('acquire', () => {
    it('stores the owner and the fencing counter under one hash tag, the token being the counter', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      const lease = await c.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
      expect(await admin.get(lockKey(lock, 'fence'))).toBe(String(lease.token));
      expect(await admin.pttl(lockKey(lock, 'owner'))).toBeGreaterThan(0);
      expect(await admin.pttl(lockKey(lock, 'owner'))).toBeLessThanOrEqual(TTL);
      expect(await admin.pttl(lockKey(lock, 'fence'))).toBe(-1); // never expires: tokens keep growing
      await lease.release();
      expect(await admin.exists(lockKey(lock, 'owner'))).toBe(0);
    });

    it('gives the lease a local deadline ahead of the server expiry, computed from the send time', async () => {
      const c = make();
      await c.members('warm-up'); // connected, so the send time is close to the call
      const before = now();
      const lease = await c.acquire(`lock-${randomId()}`, { ttlMs: TTL, timeoutMs: TTL });
      expect(lease.deadline).toBeGreaterThanOrEqual(before + TTL - safetyMarginOf(TTL));
      expect(lease.deadline).toBeLessThanOrEqual(before + TTL - safetyMarginOf(TTL) + (now() - before));
      await lease.release();
    });

    it('uses a client passed in through duplicate(): its own connection, never the client key prefix, never closing it', async () => {
      const user = new Redis(REDIS_URL, { keyPrefix: 'user-prefix:', lazyConnect: true });
      user.on('error', () => {});
      try {
        const name = `gd-test-${randomId().slice(0, 8)}`;
        const c = make({ url: undefined, client: user, connectionName: name });
        const lock = `lock-${randomId()}`;
        const lease = await c.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
        expect(await admin.exists(lockKey(lock, 'owner'))).toBe(1);
        expect(await connectionId(name)).toMatch(/^\d+$/);
        expect(user.status).toBe('wait'); // the coordinator never used the user's connection
        await c.close();
        expect(lease.signal.reason).toBeInstanceOf(LockLostError);
        expect(await admin.exists(lockKey(lock, 'owner'))).toBe(0);
        expect(await user.ping()).toBe('PONG'); // still usable: not closed
      } finally {
        user.disconnect();
      }
    });

    it('leaves nothing behind when its script is answered only after the acquire gave up', async () => {
      const { coordinator, proxy } = await proxied();
      await coordinator.members('warm-up');
      const lock = `lock-${randomId()}`;
      proxy.blackhole(); // the script reaches Redis only once traffic passes again
      const error = await rejectionOf(coordinator.acquire(lock, { ttlMs: 60_000, timeoutMs: 600 }));
      expect(error).toBeInstanceOf(CoordinatorUnavailableError);
      proxy.pass();
      // the script did run late (the counter moved), and the delete queued behind it undid it
      expect(await eventually(async () => (await admin.get(lockKey(lock, 'fence'))) === '1', 2000)).toBe(
        true,
      );
      expect(await eventually(async () => (await admin.exists(lockKey(lock, 'owner'))) === 0, 2000)).toBe(
        true,
      );
    });

    it('times a script out at its own deadline, though sent after one with a later deadline', async () => {
      const { coordinator, proxy } = await proxied({ commandTimeoutMs: 5000 });
      const lease = await coordinator.acquire(`lock-${randomId()}`, { ttlMs: 60_000, timeoutMs: 1000 });
      proxy.blackhole();
      const releasing = lease.release(); // may wait up to commandTimeoutMs
      const started = now();
      const error = await rejectionOf(
        coordinator.acquire(`lock-${randomId()}`, { ttlMs: 60_000, timeoutMs: 600 }),
      );
      expect(error).toBeInstanceOf(CoordinatorUnavailableError);
      expect(now() - started).toBeLessThan(1500);
      proxy.pass();
      await releasing;
    });

    it('rejects with CoordinatorUnavailableError within about timeoutMs when Redis is unreachable', async () => {
      const { coordinator, proxy } = await proxied();
      await coordinator.members('warm-up');
      proxy.down();
      const started = now();
      const error = await rejectionOf(
        coordinator.acquire(`lock-${randomId()}`, { ttlMs: TTL, timeoutMs: 700 }),
      );
      expect(error).toBeInstanceOf(CoordinatorUnavailableError);
      expect(now() - started).toBeGreaterThanOrEqual(695);
      expect(now() - started).toBeLessThan(1500);
    });

    it('sends a script whole once per connection, then by digest, and whole again after SCRIPT FLUSH', async () => {
      const name = `gd-test-${randomId().slice(0, 8)}`;
      const c = make({ connectionName: name });
      const lock = `lock-${randomId()}`;
      const group = `group-${randomId()}`;
      const options = { ttlMs: TTL, timeoutMs: 2000 };
      await (await c.acquire(lock, options)).release();
      expect(await lastCommand(name)).toBe('eval');
      const second = await c.acquire(lock, options);
      expect(await lastCommand(name)).toBe('evalsha');
      // The cache is gone: the release's EVALSHA gets NOSCRIPT, and the release is sent whole.
      await admin.script('FLUSH');
      await second.release();
      expect(await eventually(async () => (await admin.exists(lockKey(lock, 'owner'))) === 0, 2000)).toBe(
        true,
      );
      await admin.script('FLUSH');
      const third = await c.acquire(lock, options); // NOSCRIPT, then the script whole
      expect(await lastCommand(name)).toBe('eval');
      expect(third.token).toBe(3n);
      await third.release();
      const membership = await c.join(group, 'm1', { ttlMs: TTL });
      await admin.script('FLUSH');
      expect((await c.members(group)).map((m) => m.memberId)).toEqual(['m1']); // resent once, whole
      await membership.leave();
    });

    it('takes a lock as soon as the holder key expires, not at the next backoff step only', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      await admin.set(lockKey(lock, 'owner'), 'someone-else', 'PX', 300);
      const started = now();
      const lease = await c.acquire(lock, { ttlMs: TTL, timeoutMs: 2000 });
      expect(now() - started).toBeLessThan(600);
      await lease.release();
    });
  });

  describe('Lease', () => {
    it('keeps the key alive past ttlMs by renewing every ttlMs / 3', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      const lease = await c.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
      await delay(2 * TTL);
      const pttl = await admin.pttl(lockKey(lock, 'owner'));
      expect(pttl).toBeGreaterThan(TTL / 3);
      expect(lease.signal.aborted).toBe(false);
      await lease.release();
    });

    it('signal aborts with LockLostError at the next renewal when the key was deleted behind its back', async () => {
      const [a, b] = [make(), make()];
      const lock = `lock-${randomId()}`;
      const lease = await a.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
      const lost = abortTime(lease.signal);
      const deletedAt = now();
      await admin.del(lockKey(lock, 'owner'));
      expect((await lost) - deletedAt).toBeLessThan(TTL / 3 + 100);
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      expect((lease.signal.reason as Error).message).toMatch(/no longer holds it/);
      const next = await b.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
      await lease.release(); // owner-checked: does not free the new holder
      expect(await admin.get(lockKey(lock, 'owner'))).not.toBeNull();
      expect(next.signal.aborted).toBe(false);
      await next.release();
    });

    it('signal aborts at its local deadline when renewals cannot get through, while the key still exists', async () => {
      const { coordinator, proxy } = await proxied();
      const lock = `lock-${randomId()}`;
      const lease = await coordinator.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
      proxy.blackhole();
      const pttlAtAbort = new Promise<number>((resolve) =>
        lease.signal.addEventListener('abort', () => resolve(admin.pttl(lockKey(lock, 'owner'))), {
          once: true,
        }),
      );
      const deadline = lease.deadline;
      const lostAt = await abortTime(lease.signal);
      expect(lostAt).toBeGreaterThanOrEqual(deadline - 1);
      expect(lostAt).toBeLessThan(deadline + 100);
      expect(await pttlAtAbort).toBeGreaterThan(0); // the server had not expired it yet
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      expect((lease.signal.reason as Error).message).toMatch(/local deadline/);
    });
  });

  describe('membership', () => {
    it('join writes a sorted set scored by server-clock expiry and a hash of incarnations, under one tag', async () => {
      const c = make();
      const group = `group-${randomId()}`;
      const m = await c.join(group, 'm1', { ttlMs: TTL });
      const [seconds, micros] = (await admin.time()) as [number | string, number | string];
      const serverNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      const score = Number(await admin.zscore(groupKey(group, 'members'), 'm1'));
      expect(score - serverNow).toBeGreaterThan(0);
      expect(score - serverNow).toBeLessThanOrEqual(TTL);
      expect(await admin.hget(groupKey(group, 'info'), 'm1')).toBe(`${m.incarnation}|${TTL}`);
      await m.leave();
      expect(await admin.zscore(groupKey(group, 'members'), 'm1')).toBeNull();
      expect(await admin.hexists(groupKey(group, 'info'), 'm1')).toBe(0);
    });

    it('members() judges expiry by the server clock and removes expired entries', async () => {
      const c = make();
      const group = `group-${randomId()}`;
      const [seconds, micros] = (await admin.time()) as [number | string, number | string];
      const serverNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      await admin.zadd(groupKey(group, 'members'), serverNow - 1000, 'ghost', serverNow + 60_000, 'future');
      await admin.hset(groupKey(group, 'info'), 'ghost', 'inc-ghost|500', 'future', 'inc-future|60000');
      const list = await c.members(group);
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ memberId: 'future', incarnation: 'inc-future', ttlMs: 60_000 });
      expect(list[0]?.expiresInMs).toBeGreaterThan(59_000);
      expect(list[0]?.expiresInMs).toBeLessThanOrEqual(60_000);
      expect(await admin.zscore(groupKey(group, 'members'), 'ghost')).toBeNull();
      expect(await admin.hexists(groupKey(group, 'info'), 'ghost')).toBe(0);
    });

    it('signal aborts with MembershipLostError when the member is removed, and it is never re-added', async () => {
      const [a, b] = [make(), make()];
      const group = `group-${randomId()}`;
      const m = await a.join(group, 'm1', { ttlMs: TTL });
      const lost = abortTime(m.signal);
      const removedAt = now();
      await admin.zrem(groupKey(group, 'members'), 'm1');
      expect((await lost) - removedAt).toBeLessThan(TTL / 3 + 100);
      expect(m.signal.reason).toBeInstanceOf(MembershipLostError);
      await delay(TTL);
      expect(await b.members(group)).toEqual([]);
      await m.leave(); // idempotent after a loss
    });

    it('a newer incarnation of the same member id ends the older membership', async () => {
      const [a, b] = [make(), make()];
      const group = `group-${randomId()}`;
      const old = await a.join(group, 'm1', { ttlMs: TTL });
      const lost = abortTime(old.signal);
      const current = await b.join(group, 'm1', { ttlMs: TTL });
      await lost;
      expect(old.signal.reason).toBeInstanceOf(MembershipLostError);
      await old.leave(); // incarnation-checked: the newer one stays
      const list = await a.members(group);
      expect(list.map((m) => [m.memberId, m.incarnation])).toEqual([['m1', current.incarnation]]);
      expect(current.signal.aborted).toBe(false);
    });

    it('join and members reject with CoordinatorUnavailableError after commandTimeoutMs when unreachable', async () => {
      const { coordinator, proxy } = await proxied({ commandTimeoutMs: 300 });
      await coordinator.members('warm-up');
      proxy.blackhole();
      for (const call of [
        () => coordinator.join(`group-${randomId()}`, 'm1', { ttlMs: TTL }),
        () => coordinator.members(`group-${randomId()}`),
      ]) {
        const started = now();
        expect(await rejectionOf(call())).toBeInstanceOf(CoordinatorUnavailableError);
        expect(now() - started).toBeLessThan(1000);
      }
    });

    it('leave() rejects with CoordinatorUnavailableError when Redis cannot confirm, and a retry succeeds', async () => {
      const { coordinator, proxy } = await proxied({ commandTimeoutMs: 300 });
      const group = `group-${randomId()}`;
      const m = await coordinator.join(group, 'm1', { ttlMs: 10 * TTL });
      proxy.blackhole();
      expect(await rejectionOf(m.leave())).toBeInstanceOf(CoordinatorUnavailableError);
      proxy.pass();
      await m.leave();
      expect(await admin.zscore(groupKey(group, 'members'), 'm1')).toBeNull();
    });
  });

  describe('signals of members, leave and release', () => {
    it('members() rejects with signal.reason as soon as it aborts, waiting for an answer or for the connection', async () => {
      const { coordinator, proxy } = await proxied({ commandTimeoutMs: 5000 });
      await coordinator.members('warm-up');
      for (const fault of [() => proxy.blackhole(), () => proxy.down()]) {
        fault();
        await delay(50); // the drop is seen: the call then waits for a connection
        const controller = new AbortController();
        const reason = new Error('given up');
        const listing = rejectionOf(
          coordinator.members(`group-${randomId()}`, { signal: controller.signal }),
        );
        await delay(50);
        const abortedAt = now();
        controller.abort(reason);
        expect(await listing).toBe(reason);
        expect(now() - abortedAt).toBeLessThan(100);
        proxy.pass();
      }
      expect(await rejectionOf(coordinator.members('g', { signal: AbortSignal.abort(TTL) }))).toBe(TTL);
    });

    it('release() with an aborted signal sends nothing and stops renewing: the key expires with its TTL', async () => {
      const [a, b] = [make(), make()];
      const lock = `lock-${randomId()}`;
      const lease = await a.acquire(lock, { ttlMs: TTL, timeoutMs: TTL });
      const reason = new Error('given up');
      expect(await rejectionOf(lease.release({ signal: AbortSignal.abort(reason) }))).toBe(reason);
      expect(await admin.get(lockKey(lock, 'owner'))).not.toBeNull();
      await delay(TTL + 100);
      expect(await admin.exists(lockKey(lock, 'owner'))).toBe(0);
      expect(lease.signal.aborted).toBe(false);
      const next = await b.acquire(lock, { ttlMs: TTL, timeoutMs: 0 });
      await lease.release(); // owner-checked: the next holder keeps it
      expect(await admin.get(lockKey(lock, 'owner'))).not.toBeNull();
      await next.release();
    });

    it('release() rejects with signal.reason as soon as it aborts while Redis does not answer, and retries nothing', async () => {
      const { coordinator, proxy } = await proxied({ commandTimeoutMs: 5000 });
      const lock = `lock-${randomId()}`;
      const lease = await coordinator.acquire(lock, { ttlMs: 3 * TTL, timeoutMs: TTL });
      proxy.blackhole();
      const controller = new AbortController();
      const reason = new Error('given up');
      const releasing = rejectionOf(lease.release({ signal: controller.signal }));
      await delay(50);
      const abortedAt = now();
      controller.abort(reason);
      expect(await releasing).toBe(reason);
      expect(now() - abortedAt).toBeLessThan(100);
      // the connection drops: nothing is kept to send on the next one, and the key expires with its TTL
      proxy.dropAll();
      proxy.pass();
      await reconnected(coordinator);
      expect(await admin.get(lockKey(lock, 'owner'))).not.toBeNull();
      // a later release() tries again, and frees it
      await lease.release();
      expect(await admin.exists(lockKey(lock, 'owner'))).toBe(0);
    });

    it('leave() with an aborted signal sends nothing and stops the heartbeats: the member expires with its TTL', async () => {
      const [a, b] = [make(), make()];
      const group = `group-${randomId()}`;
      const m = await a.join(group, 'm1', { ttlMs: TTL });
      const reason = new Error('given up');
      expect(await rejectionOf(m.leave({ signal: AbortSignal.abort(reason) }))).toBe(reason);
      expect(await admin.zscore(groupKey(group, 'members'), 'm1')).not.toBeNull();
      await delay(TTL + 100);
      expect(await b.members(group)).toEqual([]);
      expect(m.signal.aborted).toBe(false);
      await m.leave();
    });

    it('leave() rejects with signal.reason as soon as it aborts while Redis does not answer; a later leave() confirms', async () => {
      const { coordinator, proxy } = await proxied({ commandTimeoutMs: 5000 });
      const group = `group-${randomId()}`;
      const m = await coordinator.join(group, 'm1', { ttlMs: 10 * TTL });
      proxy.blackhole();
      const controller = new AbortController();
      const reason = new Error('given up');
      const leaving = rejectionOf(m.leave({ signal: controller.signal }));
      await delay(50);
      const abortedAt = now();
      controller.abort(reason);
      expect(await leaving).toBe(reason);
      expect(now() - abortedAt).toBeLessThan(100);
      proxy.dropAll();
      proxy.pass();
      await reconnected(coordinator);
      await m.leave();
      expect(await admin.zscore(groupKey(group, 'members'), 'm1')).toBeNull();
    });

    it('rejects a signal that is not an AbortSignal and unknown options, naming them', async () => {
      const c = make();
      const lease = await c.acquire(`lock-${randomId()}`, { ttlMs: TTL, timeoutMs: TTL });
      const m = await c.join(`group-${randomId()}`, 'm1', { ttlMs: TTL });
      expect(await rejectionOf(c.members('g', { signal: 'x' } as never))).toMatchObject({
        code: 'ERR_CONFIGURATION',
        message: expect.stringMatching(/`signal`/),
      });
      expect(await rejectionOf(lease.release({ sigal: 1 } as never))).toMatchObject({
        message: expect.stringMatching(/Unknown option `sigal`/),
      });
      expect(await rejectionOf(m.leave({ signal: 5 } as never))).toMatchObject({
        message: expect.stringMatching(/`signal`/),
      });
      await lease.release();
      await m.leave();
    });
  });

  describe('faults', () => {
    it('CLIENT KILL of its connection aborts the lease signal before the key expires, and the membership signal; both are cleaned up after the reconnect', async () => {
      const name = `gd-test-${randomId().slice(0, 8)}`;
      const [a, b] = [make({ connectionName: name }), make()];
      const lock = `lock-${randomId()}`;
      const group = `group-${randomId()}`;
      const ttlMs = 5000; // long: only the clean-up can free them within the checks below
      const lease = await a.acquire(lock, { ttlMs, timeoutMs: TTL });
      const membership = await a.join(group, 'm1', { ttlMs });
      const leaseLost = abortTime(lease.signal);
      const membershipLost = abortTime(membership.signal);
      const killedAt = now();
      await admin.client('KILL', 'ID', await connectionId(name));
      const lostAt = await leaseLost;
      expect(lostAt).toBeLessThan(lease.deadline);
      expect(lostAt - killedAt).toBeLessThan(500);
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      expect((lease.signal.reason as Error).message).toMatch(/connection to Redis was lost/);
      expect((await membershipLost) - killedAt).toBeLessThan(500);
      expect(membership.signal.reason).toBeInstanceOf(MembershipLostError);
      // after the reconnect, the lock is freed and the member removed well before their TTL
      const next = await b.acquire(lock, { ttlMs: TTL, timeoutMs: 1500 });
      expect(next.token).toBeGreaterThan(lease.token);
      expect(await eventually(async () => (await b.members(group)).length === 0, 1500)).toBe(true);
      // and the coordinator keeps working on its new connection
      const again = await a.acquire(`lock-${randomId()}`, { ttlMs: TTL, timeoutMs: TTL });
      expect(again.signal.aborted).toBe(false);
    });

    it('a holder process killed with SIGKILL frees its lock and leaves its group within the TTL', async () => {
      const b = make();
      const lock = `lock-${randomId()}`;
      const group = `group-${randomId()}`;
      const holder = startHolder('hold', lock, group);
      const [token] = (await holder.nextLine()).split(' ').slice(1) as [string, string];
      expect((await b.members(group)).map((m) => m.memberId)).toEqual(['child']);
      const killedAt = now();
      holder.child.kill('SIGKILL');
      await holder.exited;
      const lease = await b.acquire(lock, { ttlMs: TTL, timeoutMs: 3 * TTL });
      expect(now() - killedAt).toBeLessThan(TTL + 300);
      expect(lease.token).toBeGreaterThan(BigInt(token));
      expect(await eventually(async () => (await b.members(group)).length === 0, 3 * TTL)).toBe(true);
      expect(now() - killedAt).toBeLessThan(TTL + 300);
    });

    it('close() leaves nothing holding the process: a closed holder exits on its own, its lock free', async () => {
      const b = make();
      const lock = `lock-${randomId()}`;
      const group = `group-${randomId()}`;
      const holder = startHolder('close', lock, group, 60_000);
      await holder.nextLine(); // ready
      expect(await holder.nextLine()).toBe('closed');
      const closedAt = now();
      expect(await holder.exited).toEqual([0, null]);
      expect(now() - closedAt).toBeLessThan(1000);
      // a 60 s TTL: only close() can have freed them
      const lease = await b.acquire(lock, { ttlMs: TTL, timeoutMs: 0 });
      await lease.release();
      expect(await b.members(group)).toEqual([]);
    });

    it.each(['WRITE', 'ALL'] as const)(
      'CLIENT PAUSE %s longer than the TTL never gives two holders: the first signal aborts before the second acquire resolves',
      async (mode) => {
        const ttlMs = 300;
        const [a, b] = [make(), make()];
        const lock = `lock-${randomId()}`;
        const first: Lease = await a.acquire(lock, { ttlMs, timeoutMs: TTL });
        const firstLost = abortTime(first.signal);
        const second = b.acquire(lock, { ttlMs, timeoutMs: 10_000 }).then((lease) => ({
          lease,
          at: now(),
          firstAborted: first.signal.aborted,
        }));
        await delay(ttlMs / 3);
        const pausedAt = now();
        await admin.call('CLIENT', 'PAUSE', 3 * ttlMs, mode);
        const { lease, at, firstAborted } = await second;
        expect(firstAborted).toBe(true);
        expect(await firstLost).toBeLessThan(at);
        expect(first.signal.reason).toBeInstanceOf(LockLostError);
        expect(at - pausedAt).toBeGreaterThanOrEqual(3 * ttlMs - 50); // it waited out the pause
        expect(lease.token).toBeGreaterThan(first.token);
        await lease.release();
      },
    );

    it('close() resolves within its bound while the server is unreachable (blackhole), aborting every signal', async () => {
      const { coordinator, proxy } = await proxied();
      const lease = await coordinator.acquire(`lock-${randomId()}`, { ttlMs: TTL, timeoutMs: TTL });
      const membership = await coordinator.join(`group-${randomId()}`, 'm1', { ttlMs: TTL });
      proxy.blackhole();
      const started = now();
      await coordinator.close();
      expect(now() - started).toBeLessThan(2500);
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      expect(membership.signal.reason).toBeInstanceOf(MembershipLostError);
      await lease.release(); // resolves: nothing to release any more
      expect(await rejectionOf(coordinator.members('g'))).toBeInstanceOf(ClosedError);
    });

    it('close() resolves at once while the server is down, and rejects a pending acquire with ClosedError', async () => {
      const { coordinator, proxy } = await proxied();
      const lock = `lock-${randomId()}`;
      await admin.set(lockKey(lock, 'owner'), 'someone-else', 'PX', 10_000);
      const waiting = rejectionOf(coordinator.acquire(lock, { ttlMs: TTL, timeoutMs: 10_000 }));
      await delay(50);
      proxy.down();
      const started = now();
      await coordinator.close();
      expect(now() - started).toBeLessThan(500);
      expect(await waiting).toBeInstanceOf(ClosedError);
    });

    it('a waiter that times out on a lock held by another gets LockTimeoutError, not Unavailable', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      await admin.set(lockKey(lock, 'owner'), 'someone-else', 'PX', 10_000);
      expect(await rejectionOf(c.acquire(lock, { ttlMs: TTL, timeoutMs: 0 }))).toBeInstanceOf(
        LockTimeoutError,
      );
    });
  });
});

/**
 * Races of `close()` with calls in flight, and `leave()` of a lost membership: defects found in review,
 * each test failing before its fix (close() landing as the ACQUIRE or JOIN script is answered handed out a
 * live lease or membership it had already freed; leave() of a lost membership rejected where release() of a
 * lost lease resolves). Here, with the other Redis tests, so that CLIENT PAUSE never overlaps them.
 */
describe('RedisCoordinator: close() racing calls in flight, leave() of a lost membership', () => {
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
