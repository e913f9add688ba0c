import type {
  AcquireOptions,
  Coordinator,
  CoordinatorCallOptions,
  CoordinatorCapabilities,
  JoinOptions,
  Lease,
  MemberInfo,
  Membership,
} from '../../coordinator.js';
import {
  ClosedError,
  ConfigurationError,
  CoordinatorUnavailableError,
  GracefulDrainError,
  LockTimeoutError,
} from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { checkAcquire, checkJoin, checkMembers } from '../../internal/coordinator-args.js';
import { advisoryKey } from '../../internal/sql-names.js';
import { bounded, delay, linkSignals, now, randomId } from '../../internal/time.js';
import { checkPositive, invalid } from '../../validate.js';
import { messageOf, type PgSessionClient } from './driver.js';
import { pgLease } from './lease.js';
import { type MemberItem, pgMembership } from './membership.js';
import { checkSchema } from './migrate.js';
import {
  type CompiledCoordinatorOptions,
  compileCoordinatorOptions,
  type PostgresCoordinatorOptions,
} from './options.js';
import { debug, PgSession } from './session.js';

const FIRST_POLL_MS = 10;
const MAX_CACHED_KEYS = 256;
/**
 * The shortest TTL accepted. The session's watchdog fires at the shortest TTL held on it and drops the
 * session with everything on it: a TTL shorter than a few round trips would take the other leases down.
 */
const MIN_TTL_MS = 100;
/**
 * The longest lock name, group or member id, in UTF-8 bytes. They are keys of btree indexes (`lock_fences`,
 * `members`), whose rows cannot exceed about 2.7 kB: the server would refuse a longer one.
 */
const MAX_NAME_BYTES = 1000;
const CAPABILITIES: CoordinatorCapabilities = Object.freeze({
  scope: 'cluster',
  liveness: 'connection',
  fencing: 'monotonic',
});

/** Our own errors pass; anything else (the driver's) means the backend failed us. */
function unavailable(error: unknown, doing: string): unknown {
  if (error instanceof GracefulDrainError) return error;
  return new CoordinatorUnavailableError(`PostgreSQL failed while ${doing}`, { cause: error });
}

function checkTtl(value: unknown): number {
  const ttlMs = checkPositive('ttlMs', value);
  if (ttlMs < MIN_TTL_MS) invalid('ttlMs', `at least ${MIN_TTL_MS} (milliseconds)`, value);
  return ttlMs;
}

/** Refuses a name the server could not index, before anything is sent; `value` is a string already. */
function checkNameSize(argument: 'name' | 'group' | 'memberId', value: string): void {
  // A UTF-16 code unit takes at most 3 bytes in UTF-8: a short string needs no count.
  if (value.length * 3 <= MAX_NAME_BYTES) return;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes <= MAX_NAME_BYTES) return;
  throw new ConfigurationError(
    `Expected \`${argument}\` to be at most ${MAX_NAME_BYTES} bytes in UTF-8 (the PostgresCoordinator ` +
      `indexes it), got ${bytes} bytes: ${JSON.stringify(value.slice(0, 40))}…`,
  );
}

/** Waits for `attempt` until `wait` aborts; what it obtains after all is given back at once. */
async function orGiveBack<T>(attempt: Promise<T>, wait: AbortSignal, back: (got: T) => unknown): Promise<T> {
  try {
    return await abortable(attempt, wait);
  } catch (error) {
    void attempt.then(back, () => {}).catch(() => {});
    throw error;
  }
}

/**
 * A `Coordinator` on PostgreSQL session advisory locks, with fencing tokens and group membership bound
 * to the session: a crashed process frees its locks and leaves its groups as soon as the server sees its
 * connection close. Capabilities: `{ scope: 'cluster', liveness: 'connection', fencing: 'monotonic' }`.
 * Call `migrate()` once before use. One dedicated connection per instance, never through a
 * transaction-pooling proxy (it refuses to start there).
 *
 * @example
 * ```ts
 * import { migrate, PostgresCoordinator } from 'graceful-drain/postgres';
 *
 * await migrate(pool);
 * const coordinator = new PostgresCoordinator({ connectionString: process.env.DATABASE_URL });
 * ```
 */
export class PostgresCoordinator implements Coordinator {
  readonly capabilities: CoordinatorCapabilities = CAPABILITIES;
  readonly #o: CompiledCoordinatorOptions;
  readonly #closing = new AbortController();
  /** The lock names this instance holds or is trying. */
  readonly #locks = new Map<string, Lease | 'pending'>();
  readonly #memberships = new Set<MemberItem>();
  /** The advisory keys of the lock names used lately (a SHA-256 each): a few names, taken again and again. */
  readonly #lockKeys = new Map<string, string>();
  #session: PgSession | undefined;
  #opening: Promise<PgSession> | undefined;
  #schemaChecked = false;
  #closed: Promise<void> | undefined;

  constructor(options: PostgresCoordinatorOptions) {
    this.#o = compileCoordinatorOptions(options);
  }

  /**
   * Takes the lock `name`, polling until `timeoutMs` has passed. Rejects with `LockTimeoutError`,
   * `CoordinatorUnavailableError`, `signal.reason` or `ClosedError`, and with `ConfigurationError` when
   * `ttlMs` is below 100 ms or `name` is over 1000 bytes in UTF-8.
   */
  async acquire(name: string, options: AcquireOptions): Promise<Lease> {
    this.#assertOpen();
    const { ttlMs, timeoutMs, signal } = checkAcquire(name, options, checkTtl);
    checkNameSize('name', name);
    const link = linkSignals(signal, this.#closing.signal);
    const wait = link.signal;
    try {
      const deadline = now() + timeoutMs;
      for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, this.#o.pollIntervalMs)) {
        // Not while this instance holds or tries the lock: the session would grant it twice.
        if (!this.#locks.has(name)) {
          this.#locks.set(name, 'pending');
          const lease = await orGiveBack(this.#attempt(name, ttlMs), wait, (got) => got?.release());
          if (lease !== undefined) return lease;
        }
        const remaining = deadline - now();
        if (remaining <= 0) {
          throw new LockTimeoutError(`The lock "${name}" could not be acquired within ${timeoutMs} ms`);
        }
        // Jitter spreads the retries of processes that all started waiting at once.
        await delay(Math.min(pause * (0.5 + Math.random() / 2), remaining), wait);
      }
    } finally {
      link.dispose();
    }
  }

  /** One attempt: the lease, or `undefined` when another session holds the lock. */
  async #attempt(name: string, ttlMs: number): Promise<Lease | undefined> {
    let key = this.#lockKeys.get(name);
    if (key === undefined) {
      if (this.#lockKeys.size >= MAX_CACHED_KEYS) this.#lockKeys.clear();
      this.#lockKeys.set(name, (key = advisoryKey(this.#o.schema, 'lock', name)));
    }
    let session: PgSession | undefined;
    try {
      session = await this.#sessionNow();
      // The token is bumped in the statement that takes the lock, so tokens follow the order of holders;
      // the table is durable, so tokens survive a server crash.
      const { rows } = await session.query(
        `WITH l AS (SELECT pg_try_advisory_lock($1::bigint) AS got)
         INSERT INTO ${this.#o.schemaSql}.lock_fences AS f (name, token)
         SELECT $2, 1 FROM l WHERE l.got
         ON CONFLICT (name) DO UPDATE SET token = f.token + 1
         RETURNING f.token::text AS token`,
        [key, name],
      );
      const row = rows[0] as { token: string } | undefined;
      if (row === undefined || !session.alive) {
        this.#locks.delete(name);
        return undefined;
      }
      const lease = pgLease(session, this.#locks, { name, key, token: BigInt(row.token), ttlMs });
      debug('acquire %s: token %s', name, lease.token);
      return lease;
    } catch (error) {
      // The statement may have taken the lock before failing (session locks ignore rollbacks).
      if (session?.alive === true) {
        await session.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => {});
      }
      this.#locks.delete(name);
      throw unavailable(error, `acquiring the lock "${name}"`);
    }
  }

  /**
   * Joins `group` as `memberId` with a fresh incarnation. Rejects with `CoordinatorUnavailableError`,
   * `signal.reason` or `ClosedError`, and with `ConfigurationError` when `ttlMs` is below 100 ms or
   * `group` or `memberId` is over 1000 bytes in UTF-8.
   */
  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    this.#assertOpen();
    const { ttlMs, signal } = checkJoin(group, memberId, options, checkTtl);
    checkNameSize('group', group);
    checkNameSize('memberId', memberId);
    const link = linkSignals(signal, this.#closing.signal);
    const wait = link.signal;
    try {
      return await orGiveBack(this.#join(group, memberId, ttlMs), wait, (membership) => membership.leave());
    } finally {
      link.dispose();
    }
  }

  async #join(group: string, memberId: string, ttlMs: number): Promise<Membership> {
    const s = this.#o.schemaSql;
    const key = advisoryKey(this.#o.schema, 'member', group, memberId);
    const incarnation = randomId();
    try {
      const session = await this.#sessionNow();
      // The lock is taken before the row exists, so members() never mistakes a joining member for a
      // dead one. Shared: a restarted process may rejoin under the same id while its former session
      // lingers; the newer row wins and the former membership notices.
      const { rows } = await session.query(
        `WITH l AS (SELECT pg_try_advisory_lock_shared($1::bigint) AS got)
         INSERT INTO ${s}.members AS m (group_name, member_id, incarnation, backend_pid, lock_key, ttl_ms)
         SELECT $2, $3, $4, pg_backend_pid(), $1::bigint, $5 FROM l WHERE l.got
         ON CONFLICT (group_name, member_id) DO UPDATE SET incarnation = EXCLUDED.incarnation,
           backend_pid = EXCLUDED.backend_pid, lock_key = EXCLUDED.lock_key, ttl_ms = EXCLUDED.ttl_ms,
           joined_at = now()
         RETURNING m.incarnation`,
        [key, group, memberId, incarnation, Math.ceil(ttlMs)],
      );
      if (rows.length !== 1 || !session.alive) {
        throw new CoordinatorUnavailableError(`Could not join group "${group}" as "${memberId}"`);
      }
      debug('join %s as %s: incarnation %s', group, memberId, incarnation);
      const fields = { group, memberId, incarnation, key, ttlMs };
      return pgMembership(session, s, fields, this.#memberships, (gone) => this.#deleteMember(gone));
    } catch (error) {
      throw unavailable(error, `joining group "${group}"`);
    }
  }

  async #deleteMember(incarnation: string): Promise<void> {
    // After close() the session is gone, and a row counts only while its session holds the lock.
    if (this.#closed !== undefined) return;
    const sql = `DELETE FROM ${this.#o.schemaSql}.members WHERE incarnation = $1`;
    try {
      await (await this.#sessionNow()).query(sql, [incarnation]);
    } catch (error) {
      throw unavailable(error, 'leaving a group');
    }
  }

  async members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    this.#assertOpen();
    const signal = checkMembers(group, options);
    checkNameSize('group', group);
    const link = linkSignals(signal, this.#closing.signal);
    const wait = link.signal;
    try {
      const s = this.#o.schemaSql;
      try {
        const session = await abortable(this.#sessionNow(), wait);
        // A row counts while its backend holds the member's advisory lock; the others belong to dead
        // sessions and are deleted on the way. pg_locks is read once, in one snapshot.
        const sql = `WITH held AS MATERIALIZED (
            SELECT l.pid, (l.classid::bigint << 32) | l.objid::bigint AS key FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())),
          listed AS MATERIALIZED (
            SELECT m.member_id, m.incarnation, m.ttl_ms,
              EXISTS (SELECT 1 FROM held h WHERE h.key = m.lock_key AND h.pid = m.backend_pid) AS alive
            FROM ${s}.members m WHERE m.group_name = $1),
          dead AS (DELETE FROM ${s}.members d USING listed
            WHERE NOT listed.alive AND d.group_name = $1 AND d.incarnation = listed.incarnation)
          SELECT member_id, incarnation, ttl_ms::float8 AS ttl_ms FROM listed WHERE alive ORDER BY member_id`;
        const { rows } = await abortable(session.query(sql, [group]), wait);
        return (rows as { member_id: string; incarnation: string; ttl_ms: number }[]).map((row) => ({
          memberId: row.member_id,
          incarnation: row.incarnation,
          ttlMs: row.ttl_ms,
        }));
      } catch (error) {
        if (signal?.aborted === true && error === signal.reason) throw error;
        throw unavailable(error, `listing group "${group}"`);
      }
    } finally {
      link.dispose();
    }
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const reason = new ClosedError('The PostgresCoordinator was closed');
    this.#closing.abort(reason);
    const { closeTimeoutMs } = this.#o;
    const deadline = now() + closeTimeoutMs;
    try {
      const session =
        this.#session ??
        (this.#opening === undefined
          ? undefined
          : await bounded(this.#opening, closeTimeoutMs / 2, () => reason).catch(() => undefined));
      await session?.close(reason, Math.max(0, deadline - now()));
    } catch (error) {
      debug('close: %s', messageOf(error));
    }
    debug('closed');
  }

  #assertOpen(): void {
    if (this.#closed !== undefined) throw new ClosedError('The PostgresCoordinator is closed');
  }

  /** The live session, or a new one. */
  async #sessionNow(): Promise<PgSession> {
    this.#assertOpen();
    if (this.#session?.alive === true) return this.#session;
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async #open(): Promise<PgSession> {
    let client: PgSessionClient;
    try {
      client = await this.#o.createClient();
    } catch (error) {
      throw unavailable(error, 'creating a client');
    }
    const session = new PgSession(client, this.#o, (lost) => {
      if (this.#session === lost) this.#session = undefined;
    });
    try {
      await session.connect();
      const rows = async (text: string, values: unknown[]) => (await session.query(text, values)).rows;
      if (!this.#schemaChecked) await checkSchema(rows, this.#o.schema, 'PostgresCoordinator');
      this.#schemaChecked = true;
    } catch (error) {
      session.lose(error);
      throw unavailable(error, 'connecting');
    }
    if (this.#closed !== undefined) {
      await session.close(new ClosedError(), this.#o.closeTimeoutMs / 2);
      throw new ClosedError('The PostgresCoordinator is closed');
    }
    this.#session = session;
    return session;
  }
}
