/**
 * The options of `PostgresCoordinator`, their defaults, and their compilation into what the
 * coordinator and its sessions use.
 *
 * @packageDocumentation
 */

import { ConfigurationError } from '../../errors.js';
import { checkCount, checkFunction, checkName, checkOptionsObject, checkPositive } from '../../validate.js';
import { loadPg } from './driver.js';
import { checkIdentifier, quote } from './identifiers.js';
import { DEFAULT_SCHEMA } from './migrate.js';
import type { PgSessionClient } from './queryable.js';
import type { SessionSettings } from './session.js';

/** Options of `PostgresCoordinator`: give exactly one of `client`, `connectionString` or `url`. */
export interface PostgresCoordinatorOptions {
  /**
   * A factory of a new, not yet connected client (a `pg.Client`). The coordinator connects it, owns
   * it, and ends it on `close()`; it calls the factory again after a connection is lost. Create it with
   * `keepAlive: true`. Never a pool, nor a connection through a transaction-pooling proxy: session
   * advisory locks live on one session.
   */
  readonly client?: () => PgSessionClient | Promise<PgSessionClient>;
  /** A PostgreSQL URL: the coordinator creates a dedicated `pg.Client` (loading `pg` lazily). */
  readonly connectionString?: string;
  /** Same as `connectionString`. */
  readonly url?: string;
  /**
   * The schema of the tables `migrate()` created.
   * @defaultValue `'graceful_drain'`
   */
  readonly schema?: string;
  /**
   * Idle time before TCP keepalive probes start, on both ends (the server takes whole seconds).
   * @defaultValue `5000`
   */
  readonly keepAliveIdleMs?: number;
  /**
   * Time between two keepalive probes (server side, whole seconds).
   * @defaultValue `1000`
   */
  readonly keepAliveIntervalMs?: number;
  /**
   * Unanswered probes after which the server drops the session (and frees its locks).
   * @defaultValue `3`
   */
  readonly keepAliveCount?: number;
  /**
   * `idle_in_transaction_session_timeout` of the session: a connection stuck inside a transaction is
   * dropped after this long.
   * @defaultValue `10000`
   */
  readonly idleInTransactionTimeoutMs?: number;
  /**
   * How long connecting may take before the call fails with `CoordinatorUnavailableError`.
   * @defaultValue `5000`
   */
  readonly connectTimeoutMs?: number;
  /**
   * How long one statement may take; past it the session is deemed broken and given up.
   * @defaultValue `5000`
   */
  readonly queryTimeoutMs?: number;
  /**
   * How long `close()` may take, even when the server is unreachable.
   * @defaultValue `2000`
   */
  readonly closeTimeoutMs?: number;
  /**
   * The longest wait between two attempts at a held lock (attempts start at 10 ms apart and back off).
   * @defaultValue `250`
   */
  readonly pollIntervalMs?: number;
}

const DEFAULTS = Object.freeze({
  schema: DEFAULT_SCHEMA,
  keepAliveIdleMs: 5000,
  keepAliveIntervalMs: 1000,
  keepAliveCount: 3,
  idleInTransactionTimeoutMs: 10_000,
  connectTimeoutMs: 5000,
  queryTimeoutMs: 5000,
  closeTimeoutMs: 2000,
  pollIntervalMs: 250,
});

const OPTION_NAMES = ['client', 'connectionString', 'url', ...Object.keys(DEFAULTS)];

/** The options, validated, with defaults applied. @internal */
export interface CompiledCoordinatorOptions {
  readonly schema: string;
  readonly settings: SessionSettings;
  readonly closeTimeoutMs: number;
  readonly pollIntervalMs: number;
  /** Makes a new, not yet connected client. */
  readonly createClient: () => Promise<PgSessionClient>;
}

/** Validates `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileCoordinatorOptions(options: unknown): CompiledCoordinatorOptions {
  const given = checkOptionsObject('PostgresCoordinator', options, OPTION_NAMES);
  const sources = ['client', 'connectionString', 'url'].filter((key) => given[key] !== undefined);
  if (sources.length !== 1) {
    throw new ConfigurationError(
      `PostgresCoordinator needs exactly one of \`client\`, \`connectionString\` or \`url\`, got ${
        sources.length === 0 ? 'none' : sources.map((s) => `\`${s}\``).join(' and ')
      }`,
    );
  }
  const o = { ...DEFAULTS, ...given };
  const schema = checkIdentifier('schema', o.schema);
  const settings: SessionSettings = Object.freeze({
    schemaSql: quote(schema),
    keepAliveIdleMs: checkPositive('keepAliveIdleMs', o.keepAliveIdleMs),
    keepAliveIntervalMs: checkPositive('keepAliveIntervalMs', o.keepAliveIntervalMs),
    keepAliveCount: checkCount('keepAliveCount', o.keepAliveCount),
    idleInTransactionTimeoutMs: checkPositive('idleInTransactionTimeoutMs', o.idleInTransactionTimeoutMs),
    connectTimeoutMs: checkPositive('connectTimeoutMs', o.connectTimeoutMs),
    queryTimeoutMs: checkPositive('queryTimeoutMs', o.queryTimeoutMs),
  });
  return Object.freeze({
    schema,
    settings,
    closeTimeoutMs: checkPositive('closeTimeoutMs', o.closeTimeoutMs),
    pollIntervalMs: checkPositive('pollIntervalMs', o.pollIntervalMs),
    createClient: clientFactory(given, settings),
  });
}

function clientFactory(
  given: Record<string, unknown>,
  settings: SessionSettings,
): () => Promise<PgSessionClient> {
  if (given.client !== undefined) {
    const factory = checkFunction<() => PgSessionClient | Promise<PgSessionClient>>('client', given.client);
    return async () => factory();
  }
  const key = given.connectionString === undefined ? 'url' : 'connectionString';
  // Never echoed in a message or a log: it may carry a password.
  const connectionString = checkName(key, given[key]);
  return async () => {
    const pg = await loadPg('PostgresCoordinator');
    return new pg.Client({
      connectionString,
      // Client-side keepalives make a dead peer an 'error' on the socket instead of silence.
      keepAlive: true,
      keepAliveInitialDelayMillis: settings.keepAliveIdleMs,
      connectionTimeoutMillis: settings.connectTimeoutMs,
      application_name: 'graceful-drain',
    });
  };
}
