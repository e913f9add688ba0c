/**
 * The leases and memberships of `PostgresCoordinator`: each lives on one session, is kept alive by it,
 * and is aborted when it is lost.
 *
 * @internal
 */

import createDebug from 'debug';
import type { CoordinatorCallOptions, Lease, Membership } from '../../coordinator.js';
import { LockLostError, MembershipLostError } from '../../errors.js';
import { now } from '../../internal/time.js';
import { callSignal, untilAborted } from './call-options.js';
import type { PgSession, SessionItem } from './session.js';

const debug = createDebug('graceful-drain:postgres');

function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

/** A session advisory lock held by this process, with its fencing token. */
export class PgLease implements Lease, SessionItem {
  readonly name: string;
  readonly token: bigint;
  readonly ttlMs: number;
  readonly incarnation = undefined;
  readonly #session: PgSession;
  readonly #key: string;
  readonly #controller = new AbortController();
  readonly #onDone: (lease: PgLease) => void;
  #lostAt: number | undefined;
  #released: Promise<void> | undefined;
  #releaseDone = false;

  constructor(
    session: PgSession,
    name: string,
    key: string,
    token: bigint,
    ttlMs: number,
    onDone: (lease: PgLease) => void,
  ) {
    this.#session = session;
    this.name = name;
    this.#key = key;
    this.token = token;
    this.ttlMs = ttlMs;
    this.#onDone = onDone;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get deadline(): number {
    return this.#lostAt ?? this.#session.deadline(this.ttlMs);
  }

  lost(cause: unknown): void {
    if (this.#released !== undefined || this.#lostAt !== undefined) return;
    this.#lostAt = now();
    debug('lease %s (token %s): lost', this.name, this.token);
    this.#controller.abort(new LockLostError(`Lost the lock "${this.name}": ${messageOf(cause)}`, { cause }));
    this.#onDone(this);
  }

  /**
   * Unlocks; idempotent. Given a signal, the call stops waiting when it aborts and rejects with its
   * reason, but the unlock goes on (a lock given up must not stay held: nothing else would ever free
   * it while the session lives). Once released, it resolves whatever the signal.
   */
  async release(options?: CoordinatorCallOptions): Promise<void> {
    const signal = callSignal('release()', options);
    this.#released ??= this.#release().then(() => {
      this.#releaseDone = true;
    });
    if (this.#releaseDone) return;
    return untilAborted(this.#released, signal);
  }

  async #release(): Promise<void> {
    this.#session.untrack(this);
    try {
      // pg_advisory_unlock only ever frees this session's own hold: ownership is checked by nature, and
      // a lease of a lost session has nothing left to free.
      if (this.#lostAt === undefined && this.#session.alive) {
        await this.#session.query('SELECT pg_advisory_unlock($1::bigint)', [this.#key]);
      }
      debug('lease %s (token %s): released', this.name, this.token);
    } catch (error) {
      // The session failed and was given up: the lock goes with it.
      debug('lease %s: unlock failed (%s); the session was dropped', this.name, messageOf(error));
    } finally {
      this.#onDone(this);
    }
  }
}

/** What a membership needs from its coordinator. */
export interface MembershipHooks {
  /** Called once the membership is lost or has left. */
  readonly done: (membership: PgMembership) => void;
  /** Deletes the row of `incarnation` on a working session (to confirm a leave after a lost session). */
  readonly deleteRow: (incarnation: string) => Promise<void>;
}

/** A group membership: a shared advisory lock plus a row, both bound to the session. */
export class PgMembership implements Membership, SessionItem {
  readonly group: string;
  readonly memberId: string;
  readonly incarnation: string;
  readonly ttlMs: number;
  readonly #session: PgSession;
  readonly #key: string;
  readonly #schemaSql: string;
  readonly #hooks: MembershipHooks;
  readonly #controller = new AbortController();
  #lost = false;
  #left: Promise<void> | undefined;
  #hasLeft = false;

  constructor(
    session: PgSession,
    schemaSql: string,
    fields: { group: string; memberId: string; incarnation: string; key: string; ttlMs: number },
    hooks: MembershipHooks,
  ) {
    this.#session = session;
    this.#schemaSql = schemaSql;
    this.group = fields.group;
    this.memberId = fields.memberId;
    this.incarnation = fields.incarnation;
    this.#key = fields.key;
    this.ttlMs = fields.ttlMs;
    this.#hooks = hooks;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  lost(cause: unknown): void {
    if (this.#lost || this.#left !== undefined) return;
    this.#lost = true;
    debug('member %s of %s: lost', this.memberId, this.group);
    this.#controller.abort(
      new MembershipLostError(
        `Lost the membership of "${this.memberId}" in group "${this.group}": ${messageOf(cause)}`,
        { cause },
      ),
    );
    this.#session.untrack(this);
    this.#hooks.done(this);
    // Removed while the session lives on (the row was deleted or replaced): drop our hold as well.
    if (this.#session.alive) {
      this.#session.query('SELECT pg_advisory_unlock_shared($1::bigint)', [this.#key]).catch(() => {});
    }
  }

  /**
   * Leaves; resolves once the row is gone. Given a signal, the call stops waiting when it aborts and
   * rejects with its reason, but the leave goes on (a member given up must not stay listed), and a
   * later `leave()` joins it. Once left, it resolves whatever the signal.
   */
  async leave(options?: CoordinatorCallOptions): Promise<void> {
    const signal = callSignal('leave()', options);
    this.#left ??= this.#leave().then(
      () => {
        this.#hasLeft = true;
      },
      (error: unknown) => {
        this.#left = undefined;
        throw error;
      },
    );
    if (this.#hasLeft) return;
    return untilAborted(this.#left, signal);
  }

  async #leave(): Promise<void> {
    this.#session.untrack(this);
    if (!this.#lost && this.#session.alive) {
      try {
        await this.#session.query(
          `WITH gone AS (DELETE FROM ${this.#schemaSql}.members WHERE incarnation = $2)
           SELECT pg_advisory_unlock_shared($1::bigint)`,
          [this.#key, this.incarnation],
        );
        debug('member %s of %s: left', this.memberId, this.group);
        this.#hooks.done(this);
        return;
      } catch (error) {
        debug('member %s: leave failed on its session (%s)', this.memberId, messageOf(error));
      }
    }
    // A lost session may linger on the server until its keepalive gives up, still holding the lock
    // that makes the row count: deleting the row from a working session confirms the leave.
    await this.#hooks.deleteRow(this.incarnation);
    debug('member %s of %s: left (row deleted)', this.memberId, this.group);
    this.#hooks.done(this);
  }
}
