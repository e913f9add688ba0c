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
  LockTimeoutError,
} from '../../errors.js';
import { checkAcquire, checkJoin, checkMembers } from '../../internal/coordinator-args.js';
import { delay, linkSignals, now, randomId } from '../../internal/time.js';
import { checkPositive, describeValue } from '../../validate.js';
import { debug, isBusy, SqliteConnection, type WorkOptions } from './connection.js';
import { isLive, selfOwner, setUpCoordinator, type CoordinatorStatements } from './coordinator-sql.js';
import type { SqliteDatabase } from './driver.js';
import type { HoldContext, SqliteHold } from './hold.js';
import { sqliteLease } from './lease.js';
import { sqliteMembership } from './membership.js';
import { compileCoordinatorOptions, type SqliteCoordinatorOptions } from './options.js';

const CAPABILITIES = Object.freeze({ scope: 'host', liveness: 'ttl', fencing: 'monotonic' } as const);

/** What a take that needs a reservation answers: try again, committing at FULL. */
const RESERVE = Symbol('reserve');

/** Lock names remembered as reserved by this instance; past this many, forgotten (and reserved again). */
const RESERVED_NAMES = 1024;

/**
 * A {@link Coordinator} on one SQLite file, for the processes of one host. Leases and memberships are
 * rows with a TTL, renewed every `ttlMs / 3`, that record the owner's process: a row whose process is
 * gone is free at once. Fencing tokens strictly increase per lock name for the life of the file.
 * Local filesystems only, never NFS or SMB. See docs/adapters/sqlite.md.
 *
 * @example
 * ```ts
 * import { SqliteCoordinator } from 'graceful-drain/sqlite';
 * const coordinator = new SqliteCoordinator({ path: '/var/lib/my-worker/coordination.db' });
 * ```
 */
export class SqliteCoordinator implements Coordinator {
  /** One host, TTL-based liveness (plus immediate detection of dead processes), monotonic tokens. */
  readonly capabilities: CoordinatorCapabilities = CAPABILITIES;

  readonly #connection: SqliteConnection;
  readonly #options: ReturnType<typeof compileCoordinatorOptions>;
  readonly #held = new Set<SqliteHold>();
  readonly #closing = new AbortController();
  readonly #context: HoldContext = {
    run: (work, options) => this.#connection.run(() => work(this.#sql), options),
    held: this.#held,
  };
  #statements: CoordinatorStatements | undefined;
  #closed: Promise<void> | undefined;
  /**
   * The lock names this instance has made a reserving take of (committed at FULL): its later takes of
   * them may commit at the handle's level while the reservation lasts. A new instance, such as one
   * started after a power loss, reserves first.
   */
  readonly #reserved = new Set<string>();

  constructor(options: SqliteCoordinatorOptions) {
    const o = (this.#options = compileCoordinatorOptions(options));
    this.#connection = new SqliteConnection(o, (db) => (this.#statements = setUpCoordinator(db, o)));
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
    const checked = checkAcquire(name, options, (value) => this.#checkTtl(value));
    const { ttlMs, timeoutMs } = checked;
    // Without a signal of the caller's, the coordinator's own is the only one: nothing to link.
    const link = checked.signal === undefined ? undefined : linkSignals(checked.signal, this.#closing.signal);
    const signal = link === undefined ? this.#closing.signal : link.signal;
    try {
      const until = now() + timeoutMs;
      const owner = randomId();
      let reserving = !this.#reserved.has(name);
      let work = new TakeWork(name, signal, until, reserving);
      for (;;) {
        let lease: Lease | typeof RESERVE | undefined;
        try {
          const reserve = reserving;
          lease = await this.#connection.run((db) => this.#take(db, name, owner, ttlMs, reserve), work);
        } catch (error) {
          // A database that stayed busy until the deadline is a lock we could not get in time.
          if (error instanceof CoordinatorUnavailableError && isBusy(error.cause)) {
            throw lockTimeout(name, timeoutMs, error);
          }
          throw error;
        }
        if (lease === RESERVE) {
          // Free, but the reservation is used up (or the row gone, or its holder's process): at once,
          // a reserving take.
          reserving = true;
          work = new TakeWork(name, signal, until, true);
          continue;
        }
        if (lease !== undefined) {
          // close() may have run while the commit's continuation was queued: it freed the row already.
          this.#checkOpen();
          return lease;
        }
        const left = until - now();
        if (left <= 0) throw lockTimeout(name, timeoutMs);
        await delay(Math.min(left, this.#options.pollIntervalMs * (0.75 + Math.random() / 2)), signal);
      }
    } finally {
      link?.dispose();
    }
  }

  /** One blocked attempt (`busyTimeoutMs`) must fit in the safety margin: at least a fifth of the TTL. */
  #checkTtl(value: unknown): number {
    const ttlMs = checkPositive('ttlMs', value);
    const { busyTimeoutMs } = this.#options;
    if (busyTimeoutMs * 5 >= ttlMs) {
      throw new ConfigurationError(
        `Expected \`ttlMs\` to be more than 5 × the SqliteCoordinator's \`busyTimeoutMs\` (${busyTimeoutMs}), got ${describeValue(ttlMs)}: \`busyTimeoutMs\` must stay below \`ttlMs / 5\``,
      );
    }
    return ttlMs;
  }

  /**
   * One attempt to take the lock. Within this instance's reservation of the name (the usual case): one
   * conditional update when the lock is free or expired, committed at the handle's level; `RESERVE` when
   * that cannot take it and the lock is not held by a live owner. Reserving (`reserve`, committed at
   * FULL): one conditional upsert when it is free or expired; else, in one `BEGIN IMMEDIATE`
   * transaction, a takeover when its holder's process is gone.
   */
  #take(
    db: SqliteDatabase,
    name: string,
    owner: string,
    ttlMs: number,
    reserve: boolean,
  ): Lease | typeof RESERVE | undefined {
    const sentAt = now();
    const wall = Date.now();
    const [pid, start, scope] = selfOwner();
    let token: bigint | undefined;
    if (!reserve) {
      token = this.#sql.takeReserved.get(owner, Math.floor(wall + ttlMs), pid, start, scope, name, wall);
      if (token === undefined) {
        const row = this.#sql.lock.get(name);
        return row?.owner != null && isLive(row, wall) ? undefined : RESERVE;
      }
    } else {
      token =
        this.#sql.takeFree.get(name, owner, Math.floor(wall + ttlMs), pid, start, scope, wall) ??
        this.#takeOver(db, name, owner, ttlMs);
      if (token === undefined) return undefined;
      // Committed at FULL: later takes of this instance may use the reservation.
      if (this.#reserved.size >= RESERVED_NAMES) this.#reserved.clear();
      this.#reserved.add(name);
    }
    if (debug.enabled) debug('acquired %s token %s', name, token);
    // Registered in the same synchronous step as the commit, so that close() always frees it.
    return sqliteLease(this.#context, name, owner, token, ttlMs, sentAt);
  }

  /** The lock's row is held and unexpired: taken over only when its holder's process is gone. */
  #takeOver(db: SqliteDatabase, name: string, owner: string, ttlMs: number): bigint | undefined {
    return db
      .transaction(() => {
        const row = this.#sql.lock.get(name);
        const wall = Date.now();
        if (row?.owner != null && isLive(row, wall)) return undefined;
        return this.#sql.take.get(name, owner, Math.floor(wall + ttlMs), ...selfOwner());
      })
      .immediate();
  }

  /** Joins `group` as `memberId`, replacing an older incarnation of the same member. */
  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    this.#checkOpen();
    const { ttlMs, ...given } = checkJoin(group, memberId, options, (value) => this.#checkTtl(value));
    const link = linkSignals(given.signal, this.#closing.signal);
    const signal = link.signal;
    try {
      const incarnation = randomId();
      const membership = await this.#connection.run(
        (db) => {
          const sentAt = now();
          db.transaction(() => {
            const wall = Date.now();
            // Tidy the group: rows of expired members and of processes that are gone.
            for (const other of this.#sql.group.all(group)) {
              if (!isLive(other, wall)) this.#sql.removeMember.run(group, other.member_id, other.incarnation);
            }
            const expiresAt = Math.floor(wall + ttlMs);
            this.#sql.putMember.run(group, memberId, incarnation, ttlMs, expiresAt, ...selfOwner());
          }).immediate();
          debug('joined %s as %s (%s)', group, memberId, incarnation);
          return sqliteMembership(this.#context, group, memberId, incarnation, ttlMs, sentAt);
        },
        { what: `join the group ${JSON.stringify(group)}`, signal },
      );
      this.#checkOpen();
      return membership;
    } finally {
      link.dispose();
    }
  }

  /** Lists the live members of `group`: not expired, and their process not gone. */
  async members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    this.#checkOpen();
    const link = linkSignals(checkMembers(group, options), this.#closing.signal);
    const signal = link.signal;
    try {
      return await this.#connection.run(
        () => {
          const wall = Date.now();
          return this.#sql.group
            .all(group)
            .filter((row) => isLive(row, wall))
            .map((row) => ({
              memberId: row.member_id,
              incarnation: row.incarnation,
              expiresInMs: Number(row.expires_at) - wall,
              ttlMs: Number(row.ttl_ms),
            }));
        },
        { what: `list the members of ${JSON.stringify(group)}`, signal },
      );
    } finally {
      link.dispose();
    }
  }

  /**
   * Stops every renewal, aborts the signals of the leases and memberships held, frees their rows
   * (within `operationTimeoutMs`), and closes the database if it opened it. Waiting calls reject with
   * `ClosedError`. Idempotent; never throws.
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

/**
 * The options of a take: durable when it reserves (committed at FULL, the reservation survives a power
 * loss), its `what` made only when needed.
 */
class TakeWork implements WorkOptions {
  readonly durable: boolean;
  readonly #name: string;
  readonly signal: AbortSignal;
  readonly until: number;

  constructor(name: string, signal: AbortSignal, until: number, durable: boolean) {
    this.#name = name;
    this.signal = signal;
    this.until = until;
    this.durable = durable;
  }

  get what(): string {
    return `acquire the lock ${JSON.stringify(this.#name)}`;
  }
}

function lockTimeout(name: string, timeoutMs: number, cause?: unknown): LockTimeoutError {
  return new LockTimeoutError(`The lock ${JSON.stringify(name)} could not be acquired in ${timeoutMs} ms`, {
    cause,
  });
}
