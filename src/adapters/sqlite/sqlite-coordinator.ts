import type BetterSqlite3 from 'better-sqlite3';
import createDebug from 'debug';
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
  LockLostError,
  LockTimeoutError,
  MembershipLostError,
} from '../../errors.js';
import { anySignal, delay, now, randomId } from '../../internal/time.js';
import {
  checkName,
  checkNonNegative,
  checkOptionsObject,
  checkPositive,
  describeValue,
} from '../../validate.js';
import { callSignal } from './call-options.js';
import { checkSource, checkTimings, isBusy, SqliteConnection, type SqliteDatabase } from './connection.js';
import {
  createTables,
  ownerOf,
  prepareStatements,
  type CoordinatorStatements,
} from './coordinator-tables.js';
import { checkIdentifier } from './identifiers.js';
import { HeldRow, type AbortCause } from './held-row.js';
import { isGone, selfIdentity } from './process-identity.js';

const debug = createDebug('graceful-drain:sqlite');

/** Options of {@link SqliteCoordinator}. Give exactly one of `database` and `path`. */
export interface SqliteCoordinatorOptions {
  /**
   * A better-sqlite3 database you opened on a file. The coordinator switches it to WAL journal mode
   * (a lasting property of the file), and never closes it.
   */
  readonly database?: BetterSqlite3.Database | undefined;
  /**
   * The path of the database file, opened (and created if missing) by the coordinator, which loads
   * `better-sqlite3` when first used and closes the file on `close()`.
   */
  readonly path?: string | undefined;
  /**
   * The prefix of the coordinator's tables (`<prefix>locks`, `<prefix>members`): a plain identifier.
   * @defaultValue `'graceful_drain_'`
   */
  readonly tablePrefix?: string | undefined;
  /**
   * The longest one statement may block the event loop waiting for another connection's write lock,
   * in milliseconds; past it the statement is retried asynchronously. It must be below `ttlMs / 5`
   * (`acquire()` and `join()` reject a `ttlMs` of 5 × `busyTimeoutMs` or less with
   * `ConfigurationError`), and is best kept well below.
   * @defaultValue `50`
   */
  readonly busyTimeoutMs?: number | undefined;
  /**
   * How often a waiting `acquire()` tries again, in milliseconds (jittered by ±25%).
   * @defaultValue `50`
   */
  readonly pollIntervalMs?: number | undefined;
  /**
   * How long `join()`, `leave()`, `release()` and `members()` keep retrying while the database stays
   * busy before rejecting with `CoordinatorUnavailableError`, in milliseconds.
   * @defaultValue `5000`
   */
  readonly operationTimeoutMs?: number | undefined;
}

const DEFAULTS = Object.freeze({
  tablePrefix: 'graceful_drain_',
  busyTimeoutMs: 50,
  pollIntervalMs: 50,
  operationTimeoutMs: 5000,
});

const LOCK_LOST: Readonly<Record<AbortCause, string>> = Object.freeze({
  gone: 'was taken over or freed',
  expired: 'could not be renewed before its deadline',
  closed: 'was released: the coordinator closed',
  unreleased: 'could not be released: it expires with its TTL',
});

const MEMBER_LOST: Readonly<Record<AbortCause, string>> = Object.freeze({
  gone: 'was removed or expired',
  expired: 'could not be renewed before its deadline',
  closed: 'was left: the coordinator closed',
  unreleased: 'could not be left: it expires with its TTL',
});

const OPTION_NAMES = [
  'database',
  'path',
  'tablePrefix',
  'busyTimeoutMs',
  'pollIntervalMs',
  'operationTimeoutMs',
];

/**
 * A {@link Coordinator} on one SQLite file, for the processes of one host.
 *
 * Leases and memberships are rows with a TTL, renewed every `ttlMs / 3`, that also record the owner's
 * process (pid, and on Linux its start time): a row whose process is gone from the host is free at
 * once, without waiting for its TTL. Fencing tokens are bumped in the transaction that takes the lock
 * and never reset, so they strictly increase per lock name for the life of the file.
 *
 * Use it on a local filesystem only, never on a network one (NFS, SMB): SQLite's locking and WAL
 * need one kernel. See `docs/adapters/sqlite.md`.
 *
 * @example
 * ```ts
 * import { SqliteCoordinator } from 'graceful-drain/sqlite';
 * const coordinator = new SqliteCoordinator({ path: '/var/lib/my-worker/coordination.db' });
 * ```
 */
export class SqliteCoordinator implements Coordinator {
  /** One host, TTL-based liveness (plus immediate detection of dead processes), monotonic tokens. */
  readonly capabilities: CoordinatorCapabilities = Object.freeze({
    scope: 'host',
    liveness: 'ttl',
    fencing: 'monotonic',
  });

  readonly #connection: SqliteConnection;
  readonly #prefix: string;
  readonly #pollIntervalMs: number;
  readonly #busyTimeoutMs: number;
  readonly #held = new Set<HeldRow>();
  readonly #closing = new AbortController();
  #statements: CoordinatorStatements | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: SqliteCoordinatorOptions) {
    const given = checkOptionsObject('SqliteCoordinator', options, OPTION_NAMES);
    const source = checkSource('SqliteCoordinator', given.database, given.path);
    if (source.database?.memory === true || source.path === ':memory:') {
      throw new ConfigurationError(
        'SqliteCoordinator needs a database file: an in-memory database cannot be shared between processes',
      );
    }
    if (source.database?.readonly === true) {
      throw new ConfigurationError('SqliteCoordinator needs a writable database: `database` is read-only');
    }
    const merged = { ...DEFAULTS, ...withoutUndefined(given) };
    this.#prefix = checkIdentifier('tablePrefix', merged.tablePrefix);
    const [busyTimeoutMs, operationTimeoutMs] = checkTimings(merged.busyTimeoutMs, merged.operationTimeoutMs);
    this.#pollIntervalMs = checkPositive('pollIntervalMs', merged.pollIntervalMs);
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#connection = new SqliteConnection(source, {
      adapter: 'SqliteCoordinator',
      busyTimeoutMs,
      operationTimeoutMs,
      setup: (db) => this.#setup(db),
    });
  }

  #setup(db: SqliteDatabase): void {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new ConfigurationError(
        `SqliteCoordinator needs WAL journal mode, the database is in ${String(mode)}`,
      );
    }
    createTables(db, this.#prefix);
    this.#statements = prepareStatements(db, this.#prefix);
  }

  get #sql(): CoordinatorStatements {
    if (this.#statements === undefined) throw new ClosedError();
    return this.#statements;
  }

  #checkOpen(): void {
    if (this.#closed !== undefined) throw new ClosedError();
  }

  /** Takes the lock `name`, polling every `pollIntervalMs` until `timeoutMs`. */
  async acquire(name: string, options: AcquireOptions): Promise<Lease> {
    this.#checkOpen();
    checkName('name', name);
    const given = checkOptionsObject('acquire', options, ['ttlMs', 'timeoutMs', 'signal']);
    const ttlMs = this.#checkTtl(given.ttlMs);
    const timeoutMs = checkNonNegative('timeoutMs', given.timeoutMs);
    const signal = anySignal(options.signal, this.#closing.signal);
    if (signal.aborted) throw signal.reason;
    const until = now() + timeoutMs;
    const owner = randomId();
    for (;;) {
      let taken: { row: HeldRow; token: bigint } | undefined;
      try {
        taken = await this.#connection.run((db) => this.#take(db, name, owner, ttlMs), {
          what: `acquire the lock ${JSON.stringify(name)}`,
          signal,
          until,
          durable: true,
        });
      } catch (error) {
        // A database that stayed busy until the deadline is a lock we could not get in time.
        if (error instanceof CoordinatorUnavailableError && isBusy(error.cause)) {
          throw lockTimeout(name, timeoutMs, error);
        }
        throw error;
      }
      if (taken !== undefined) {
        // close() may have run while the commit's continuation was queued: it freed the row already.
        this.#checkOpen();
        return this.#lease(name, taken.row, taken.token);
      }
      const left = until - now();
      if (left <= 0) throw lockTimeout(name, timeoutMs);
      await delay(Math.min(left, this.#pollIntervalMs * (0.75 + Math.random() / 2)), signal);
    }
  }

  /**
   * `ttlMs` must be above 5 × `busyTimeoutMs`: one attempt blocked for `busyTimeoutMs` must fit in
   * the safety share (a fifth of the TTL) kept between a lease's local deadline and its expiry.
   */
  #checkTtl(value: unknown): number {
    const ttlMs = checkPositive('ttlMs', value);
    if (this.#busyTimeoutMs * 5 >= ttlMs) {
      throw new ConfigurationError(
        `Expected \`ttlMs\` to be more than 5 × the SqliteCoordinator's \`busyTimeoutMs\` (${this.#busyTimeoutMs}), got ${describeValue(ttlMs)}: \`busyTimeoutMs\` must stay below \`ttlMs / 5\``,
      );
    }
    return ttlMs;
  }

  /** One attempt to take the lock, in one `BEGIN IMMEDIATE` transaction. */
  #take(
    db: SqliteDatabase,
    name: string,
    owner: string,
    ttlMs: number,
  ): { row: HeldRow; token: bigint } | undefined {
    const startedAt = now();
    const token = db
      .transaction(() => {
        const row = this.#sql.lock.get(name);
        const wall = Date.now();
        const held = row?.owner != null && Number(row.expires_at) > wall && !isGone(ownerOf(row));
        if (held) return undefined;
        const next = (row?.token ?? 0n) + 1n;
        const me = selfIdentity();
        this.#sql.take.run(name, next, owner, Math.floor(wall + ttlMs), me.pid, me.start, me.scope);
        return next;
      })
      .immediate();
    if (token === undefined) return undefined;
    debug('acquired %s token %s', name, token);
    const quoted = JSON.stringify(name);
    // Registered in the same synchronous step as the commit, so that close() always frees it.
    const row = this.#hold(
      new HeldRow({
        label: `lock ${quoted} token ${token}`,
        ttlMs,
        startedAt,
        renew: (until) =>
          this.#write(`renew the lock ${quoted}`, until, () => {
            const wall = Date.now();
            return this.#sql.renewLock.run(Math.floor(wall + ttlMs), name, owner, wall).changes === 1;
          }),
        free: async (signal) => {
          await this.#write(
            `release the lock ${quoted}`,
            undefined,
            () => this.#sql.freeLock.run(name, owner),
            signal,
          );
        },
        reason: (cause, error) =>
          new LockLostError(`The lock ${quoted} (token ${token}) ${LOCK_LOST[cause]}`, { cause: error }),
      }),
    );
    return { row, token };
  }

  #hold(row: HeldRow): HeldRow {
    this.#held.add(row);
    return row;
  }

  async #write<T>(what: string, until: number | undefined, work: () => T, signal?: AbortSignal): Promise<T> {
    return this.#connection.run(work, { what, until, signal });
  }

  /** Gives `row` back (release, leave); once it is freed, `close()` has nothing left to free of it. */
  async #give(row: HeldRow, options: unknown, where: string): Promise<void> {
    const signal = callSignal(where, options);
    await row.give(signal);
    this.#held.delete(row);
  }

  #lease(name: string, row: HeldRow, token: bigint): Lease {
    return {
      name,
      token,
      signal: row.signal,
      get deadline() {
        return row.deadline;
      },
      release: (options?: CoordinatorCallOptions) => this.#give(row, options, 'release'),
    };
  }

  /** Joins `group` as `memberId`, replacing an older incarnation of the same member. */
  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    this.#checkOpen();
    checkName('group', group);
    checkName('memberId', memberId);
    const given = checkOptionsObject('join', options, ['ttlMs', 'signal']);
    const ttlMs = this.#checkTtl(given.ttlMs);
    const signal = anySignal(options.signal, this.#closing.signal);
    if (signal.aborted) throw signal.reason;
    const incarnation = randomId();
    const row = await this.#connection.run(
      (db) => {
        const startedAt = now();
        db.transaction(() => {
          const wall = Date.now();
          // Tidy the group: rows of expired members and of processes that are gone.
          for (const other of this.#sql.group.all(group)) {
            if (Number(other.expires_at) <= wall || isGone(ownerOf(other))) {
              this.#sql.removeMember.run(group, other.member_id, other.incarnation);
            }
          }
          const me = selfIdentity();
          const expiresAt = Math.floor(wall + ttlMs);
          this.#sql.putMember.run(group, memberId, incarnation, ttlMs, expiresAt, me.pid, me.start, me.scope);
        }).immediate();
        debug('joined %s as %s (%s)', group, memberId, incarnation);
        return this.#hold(this.#memberRow(group, memberId, incarnation, ttlMs, startedAt));
      },
      { what: `join the group ${JSON.stringify(group)}`, signal },
    );
    this.#checkOpen();
    return {
      group,
      memberId,
      incarnation,
      signal: row.signal,
      leave: (options?: CoordinatorCallOptions) => this.#give(row, options, 'leave'),
    };
  }

  #memberRow(
    group: string,
    memberId: string,
    incarnation: string,
    ttlMs: number,
    startedAt: number,
  ): HeldRow {
    const who = `${JSON.stringify(memberId)} of ${JSON.stringify(group)}`;
    return new HeldRow({
      label: `member ${who}`,
      ttlMs,
      startedAt,
      renew: (until) =>
        this.#write(`renew the membership ${who}`, until, () => {
          const wall = Date.now();
          const expiresAt = Math.floor(wall + ttlMs);
          return this.#sql.heartbeat.run(expiresAt, group, memberId, incarnation, wall).changes === 1;
        }),
      free: async (signal) => {
        await this.#write(
          `leave the group ${JSON.stringify(group)}`,
          undefined,
          () => this.#sql.removeMember.run(group, memberId, incarnation),
          signal,
        );
      },
      reason: (cause, error) =>
        new MembershipLostError(`The membership ${who} ${MEMBER_LOST[cause]}`, { cause: error }),
    });
  }

  /** Lists the live members of `group`: not expired, and their process not gone. */
  async members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    this.#checkOpen();
    checkName('group', group);
    const signal = anySignal(callSignal('members', options), this.#closing.signal);
    return this.#connection.run(
      () => {
        const wall = Date.now();
        const live: MemberInfo[] = [];
        for (const row of this.#sql.group.all(group)) {
          const expiresAt = Number(row.expires_at);
          if (expiresAt <= wall || isGone(ownerOf(row))) continue;
          live.push({
            memberId: row.member_id,
            incarnation: row.incarnation,
            expiresInMs: expiresAt - wall,
            ttlMs: Number(row.ttl_ms),
          });
        }
        return live;
      },
      { what: `list the members of ${JSON.stringify(group)}`, signal },
    );
  }

  /**
   * Stops every renewal, aborts the signals of the leases and memberships this instance holds, releases
   * those locks and leaves those groups (within `operationTimeoutMs`), and closes the database if it
   * opened it. Waiting calls reject with `ClosedError`. Idempotent; never throws.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort(new ClosedError());
      const held = [...this.#held];
      this.#held.clear();
      const results = await Promise.allSettled(held.map((row) => row.close()));
      for (const result of results) {
        if (result.status === 'rejected') debug('close could not free a row: %O', result.reason);
      }
      this.#connection.close();
      debug('closed');
    })().catch((error: unknown) => debug('close failed: %O', error));
    return this.#closed;
  }
}

function lockTimeout(name: string, timeoutMs: number, cause?: unknown): LockTimeoutError {
  return new LockTimeoutError(`The lock ${JSON.stringify(name)} could not be acquired in ${timeoutMs} ms`, {
    cause,
  });
}

function withoutUndefined(options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}
