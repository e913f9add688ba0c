import { describe, expect, it } from 'vitest';
import { RedisCoordinator, type RedisCoordinatorOptions } from '../src/adapters/redis/index.js';
import { importDriver } from '../src/internal/import-driver.js';
import { ConfigurationError, MissingDriverError } from '../src/errors.js';
import { REDIS_URL } from './support/env.js';

/** A stand-in with the shape the constructor checks; it is never connected. */
const fakeClient = (extra: object = {}): RedisCoordinatorOptions['client'] =>
  ({ duplicate: () => undefined, ...extra }) as unknown as RedisCoordinatorOptions['client'];

describe('RedisCoordinator options', () => {
  it.each([
    [{}, /exactly one of `client` and `url`.*got neither/],
    [undefined, /exactly one of `client` and `url`.*got neither/],
    [{ url: REDIS_URL, client: fakeClient() }, /exactly one of `client` and `url`.*got both/],
    [{ url: '' }, /`url` to be a non-empty string, got `""`/],
    [{ client: {} }, /`client` to be an ioredis client.*got `\[object\]`/],
    [
      { client: fakeClient({ isCluster: true }) },
      /`client` to be an ioredis `Redis` client, not a `Cluster`/,
    ],
    [
      { url: REDIS_URL, keyPrefix: '{app}:' },
      /`keyPrefix` to be a string without `\{` or `\}`, got `"\{app\}:"`/,
    ],
    [{ url: REDIS_URL, keyPrefix: '' }, /`keyPrefix` to be a non-empty string/],
    [{ url: REDIS_URL, persistence: 'aof' }, /`persistence` to be one of `none`, `sync`, got `"aof"`/],
    [{ url: REDIS_URL, connectionName: 'my app' }, /`connectionName` to be printable ASCII without spaces/],
    [
      { url: REDIS_URL, commandTimeoutMs: 0 },
      /`commandTimeoutMs` to be a finite number greater than 0, got `0`/,
    ],
    [{ url: REDIS_URL, keyprefix: 'x' }, /Unknown option `keyprefix`.*did you mean `keyPrefix`/],
  ])('constructor rejects %o with a ConfigurationError naming the option', (options, message) => {
    const make = (): RedisCoordinator => new RedisCoordinator(options as RedisCoordinatorOptions);
    expect(make).toThrow(ConfigurationError);
    expect(make).toThrow(message);
  });

  it('capabilities: cluster scope, ttl liveness, fencing from persistence', async () => {
    const plain = new RedisCoordinator({ url: REDIS_URL });
    const sync = new RedisCoordinator({ url: REDIS_URL, persistence: 'sync' });
    expect(plain.capabilities).toEqual({ scope: 'cluster', liveness: 'ttl', fencing: 'best-effort' });
    expect(sync.capabilities).toEqual({ scope: 'cluster', liveness: 'ttl', fencing: 'monotonic' });
    expect(Object.isFrozen(plain.capabilities)).toBe(true);
    await Promise.all([plain.close(), sync.close()]);
  });

  it('acquire() and join() reject bad arguments with a ConfigurationError naming them', async () => {
    const c = new RedisCoordinator({ url: REDIS_URL });
    try {
      await expect(c.acquire('', { ttlMs: 1000, timeoutMs: 0 })).rejects.toThrow(/`name` to be a non-empty/);
      await expect(c.acquire('x', { ttlMs: 99, timeoutMs: 0 })).rejects.toThrow(
        /`ttlMs` to be at least 100 \(milliseconds\), got `99`/,
      );
      await expect(c.acquire('x', { ttlMs: 1000, timeoutMs: -1 })).rejects.toThrow(/`timeoutMs`.*got `-1`/);
      await expect(
        c.acquire('x', { ttlMs: 1000, timeoutMs: 0, signal: 'no' as unknown as AbortSignal }),
      ).rejects.toThrow(/`signal` to be an AbortSignal/);
      await expect(c.join('g', '', { ttlMs: 1000 })).rejects.toThrow(/`memberId` to be a non-empty/);
      await expect(c.join('g', 'm', { ttlMs: Number.NaN })).rejects.toThrow(ConfigurationError);
      await expect(c.members('')).rejects.toThrow(/`group` to be a non-empty/);
    } finally {
      await c.close();
    }
  });

  it('loads the driver lazily, and a missing one is a MissingDriverError naming the package', async () => {
    const error = await importDriver('graceful-drain-no-such-driver', 'RedisCoordinator').catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MissingDriverError);
    expect(error).toMatchObject({ code: 'ERR_MISSING_DRIVER' });
    expect((error as Error).message).toMatch(/npm install graceful-drain-no-such-driver/);
  });
});
