/**
 * # The Coordinator contract
 *
 * A distributed lock plus group membership (in the manner of OpenStack tooz), with what tooz lacks:
 * declared capabilities, bounded and cancellable acquisition, fencing tokens, and loss signals.
 * The last-member protocol of `DrainController` is written against this interface only.
 *
 * ## What an adapter guarantees
 *
 * - **Capabilities are honest.** `scope` says where members can see each other (`process`: only
 *   inside this process; `host`: processes on one machine; `cluster`: any machine). `liveness` says
 *   what keeps a lease or a membership alive (`ttl`: periodic renewal; `connection`: an open session).
 *   `fencing` says how far tokens can be trusted (`monotonic`: strictly increasing per lock name, even
 *   across a crash of the backend; `best-effort`: increasing unless the backend loses data; `none`).
 *   The protocol refuses configurations the capabilities cannot support.
 * - **`acquire(name, { ttlMs, timeoutMs, signal })`** resolves a {@link Lease} or rejects with
 *   `LockTimeoutError` after `timeoutMs`, or with `signal.reason` as soon as `signal` aborts. It never
 *   waits unboundedly and leaves no lock behind when it rejects.
 * - **A `Lease`** carries a fencing `token` (a `bigint`, strictly increasing per lock name where
 *   `fencing` is `monotonic`), and a `signal` aborted with `LockLostError` *before* another holder can
 *   get the lock: the adapter renews every `ttlMs / 3` and, when a renewal does not succeed, aborts
 *   the signal at a local deadline measured on a monotonic clock, ahead of the backend's expiry.
 *   `release()` is idempotent, checks ownership (it never deletes another holder's lock) and resolves
 *   even when the lease was already lost.
 * - **`join(group, memberId, { ttlMs })`** resolves a {@link Membership} with a fresh `incarnation`.
 *   Its `signal` is aborted with `MembershipLostError` when the membership is lost (expired, removed
 *   or its connection dropped); a lost membership is never re-created silently. `leave()` resolves
 *   only once the backend has confirmed the member is gone; it is idempotent.
 * - **`members(group)`** lists the live members, expiry judged by the backend's clock.
 * - **Cancellation.** Every call the protocol makes takes an `AbortSignal` (`acquire`, `join`,
 *   `members`, `Membership.leave`, `Lease.release`). When it aborts, the adapter stops retrying, gives
 *   up its write, and rejects with `signal.reason`: nothing the caller gave up on lands later.
 * - **`close()`** stops every timer, releases what this instance holds where it can, closes the
 *   connections the adapter created (never one the user passed in), is idempotent, bounded in time,
 *   and never throws. After `close()`, other calls reject with `ClosedError`.
 *
 * ## What it leaves out
 *
 * Leader election, queues of waiters and fairness: locks are taken by polling or notification as the
 * backend allows, and a waiter may be overtaken.
 *
 * Use `coordinatorContract()` from `graceful-drain/testing` to check an adapter against this contract.
 *
 * @packageDocumentation
 */

/** Where the members of a group can see each other through this coordinator. */
export type CoordinatorScope = 'process' | 'host' | 'cluster';

/** What keeps a lease or a membership alive. */
export type CoordinatorLiveness = 'ttl' | 'connection';

/** How far fencing tokens can be trusted. */
export type FencingGuarantee = 'monotonic' | 'best-effort' | 'none';

/** What a coordinator can guarantee; the protocol reads these. */
export interface CoordinatorCapabilities {
  /** Where members can see each other. */
  readonly scope: CoordinatorScope;
  /** What keeps leases and memberships alive. */
  readonly liveness: CoordinatorLiveness;
  /** How far fencing tokens can be trusted. */
  readonly fencing: FencingGuarantee;
}

/** Options of {@link Coordinator.acquire}. */
export interface AcquireOptions {
  /** How long the lock lives without renewal, in milliseconds. The adapter renews every `ttlMs / 3`. */
  readonly ttlMs: number;
  /** How long to wait for the lock before rejecting with `LockTimeoutError`, in milliseconds. */
  readonly timeoutMs: number;
  /** Cancels the wait: the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal | undefined;
}

/** A held lock. */
export interface Lease {
  /** The lock's name. */
  readonly name: string;
  /** The fencing token: strictly increasing per lock name where fencing is `monotonic`. */
  readonly token: bigint;
  /** Aborted with `LockLostError` before another holder can get the lock. */
  readonly signal: AbortSignal;
  /**
   * The local deadline of the lease on the `performance.now()` clock: the signal aborts at this moment
   * at the latest unless a renewal moves it.
   */
  readonly deadline: number;
  /** Releases the lock if this lease still owns it. Idempotent; never rejects once the lease is lost. */
  release(options?: CoordinatorCallOptions): Promise<void>;
}

/** Options of the coordinator calls that take nothing else. */
export interface CoordinatorCallOptions {
  /** Cancels the call: the adapter stops retrying and rejects with `signal.reason`. */
  readonly signal?: AbortSignal | undefined;
}

/** Options of {@link Coordinator.join}. */
export interface JoinOptions {
  /** How long the membership lives without a heartbeat, in milliseconds (for `ttl` liveness). */
  readonly ttlMs: number;
  /** Cancels the join: the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal | undefined;
}

/** A member's place in a group. */
export interface Membership {
  /** The group joined. */
  readonly group: string;
  /** This member's id. */
  readonly memberId: string;
  /** A fresh value for every join, so a restarted member is never mistaken for its former self. */
  readonly incarnation: string;
  /** Aborted with `MembershipLostError` when the membership is lost. */
  readonly signal: AbortSignal;
  /** Leaves the group; resolves once the backend confirms. Idempotent. */
  leave(options?: CoordinatorCallOptions): Promise<void>;
}

/** A live member, as {@link Coordinator.members} lists it. */
export interface MemberInfo {
  /** The member's id. */
  readonly memberId: string;
  /** The incarnation of its current membership. */
  readonly incarnation: string;
  /**
   * Milliseconds until the member expires unless it sends a heartbeat, judged by the backend's clock;
   * `undefined` when liveness is bound to a connection.
   */
  readonly expiresInMs?: number | undefined;
  /** The TTL the member joined with, when the backend records it. */
  readonly ttlMs?: number | undefined;
}

/** A distributed lock plus group membership. See the contract at the top of this file. */
export interface Coordinator {
  /** What this coordinator can guarantee. */
  readonly capabilities: CoordinatorCapabilities;
  /** Takes the lock `name`. */
  acquire(name: string, options: AcquireOptions): Promise<Lease>;
  /** Joins `group` as `memberId`. */
  join(group: string, memberId: string, options: JoinOptions): Promise<Membership>;
  /** Lists the live members of `group`. */
  members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]>;
  /** Releases what this instance holds and closes what it created. Idempotent, bounded, never throws. */
  close(): Promise<void>;
}
