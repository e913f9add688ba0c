import type { FencingGuarantee } from '../../coordinator.js';
import { ConfigurationError } from '../../errors.js';
import { withDefaults } from '../../internal/defaults.js';
import { checkName, checkOneOf, checkOptionsObject, checkPositive, invalid } from '../../validate.js';
import type { Redis } from './driver.js';

/** How the Redis server keeps its data across a crash; see {@link RedisCoordinatorOptions.persistence}. */
export type RedisPersistence = 'none' | 'sync';

/** Options of {@link RedisCoordinator}. Give exactly one of `client` and `url`. */
export interface RedisCoordinatorOptions {
  /**
   * An ioredis client of yours. The coordinator opens a connection of its own with
   * `client.duplicate()` (same server, credentials, TLS and database) and never closes yours.
   * A `Cluster` client is not accepted (see docs/adapters/redis.md).
   */
  readonly client?: Redis | undefined;
  /**
   * A Redis URL (`redis://` or `rediss://`) to connect to. ioredis is then loaded on first use;
   * `MissingDriverError` when it is not installed. Never logged.
   */
  readonly url?: string | undefined;
  /**
   * Prepended to every key the coordinator writes, inside the hash tag. No braces.
   * @defaultValue `'graceful-drain:'`
   */
  readonly keyPrefix?: string | undefined;
  /**
   * `'sync'` declares that the server persists every write before answering (AOF with
   * `appendfsync always`, or `WAIT` on replicas that fail over safely), so fencing counters survive a
   * crash and `capabilities.fencing` is `'monotonic'`; with `'none'` it is `'best-effort'`. Not checked
   * against the server. See docs/adapters/redis.md#fencing.
   * @defaultValue `'none'`
   */
  readonly persistence?: RedisPersistence | undefined;
  /**
   * The name of the coordinator's connection (`CLIENT SETNAME`), as `CLIENT LIST` shows it. Printable
   * ASCII without spaces.
   * @defaultValue `'graceful-drain'`
   */
  readonly connectionName?: string | undefined;
  /**
   * How long `join()`, `members()`, `leave()`, `release()` and the clean-ups of `close()` wait for
   * the connection and one answer before giving up (`acquire()` is bounded by its `timeoutMs`).
   * @defaultValue `5000`
   */
  readonly commandTimeoutMs?: number | undefined;
}

/** {@link RedisCoordinatorOptions} checked, with defaults applied. @internal */
export type CompiledCoordinatorOptions = ReturnType<typeof compileCoordinatorOptions>;

const DEFAULTS = Object.freeze({
  keyPrefix: 'graceful-drain:',
  persistence: 'none' as RedisPersistence,
  connectionName: 'graceful-drain',
  commandTimeoutMs: 5000,
});

function checkClient(value: unknown): Redis {
  if (value === null || typeof value !== 'object' || typeof (value as Redis).duplicate !== 'function') {
    invalid('client', 'an ioredis client (an object with a `duplicate()` method)', value);
  }
  if ((value as { isCluster?: unknown }).isCluster === true) {
    invalid('client', 'an ioredis `Redis` client, not a `Cluster`', value);
  }
  return value as Redis;
}

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileCoordinatorOptions(options: unknown) {
  const given = checkOptionsObject('RedisCoordinator', options, ['client', 'url', ...Object.keys(DEFAULTS)]);
  const o = withDefaults(DEFAULTS, given);
  const client = o.client === undefined ? undefined : checkClient(o.client);
  const url = o.url === undefined ? undefined : checkName('url', o.url);
  if ((client === undefined) === (url === undefined)) {
    const got = client === undefined ? 'neither' : 'both';
    throw new ConfigurationError(
      `Expected exactly one of \`client\` and \`url\` in RedisCoordinator options, got ${got}`,
    );
  }
  const keyPrefix = checkName('keyPrefix', o.keyPrefix);
  if (/[{}]/.test(keyPrefix)) invalid('keyPrefix', 'a string without `{` or `}`', keyPrefix);
  const persistence = checkOneOf('persistence', o.persistence, ['none', 'sync']);
  const fencing: FencingGuarantee = persistence === 'sync' ? 'monotonic' : 'best-effort';
  const connectionName = checkName('connectionName', o.connectionName);
  if (!/^[!-~]+$/.test(connectionName))
    invalid('connectionName', 'printable ASCII without spaces', connectionName);
  const commandTimeoutMs = checkPositive('commandTimeoutMs', o.commandTimeoutMs);
  return { client, url, keyPrefix, persistence, fencing, connectionName, commandTimeoutMs } as const;
}
