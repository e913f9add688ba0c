/**
 * The Coordinator contract (docs/coordinator.md): a distributed lock plus group membership. Honest
 * `capabilities`; `acquire()` bounded by `timeoutMs`, leaving no lock behind when it rejects; a lease's
 * `signal` aborted before another holder can get the lock; idempotent `release()` and `leave()` (resolved
 * once the backend confirms); a lost membership never silently re-created; every call gives up its write
 * when its `signal` aborts; `close()` idempotent, bounded, never throwing, closing only what it created.
 * No leader election or fairness. `coordinatorContract()` (`graceful-drain/testing`) checks an adapter.
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
  readonly scope: CoordinatorScope;
  readonly liveness: CoordinatorLiveness;
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
  readonly name: string;
  /** The fencing token: strictly increasing per lock name where fencing is `monotonic`. */
  readonly token: bigint;
  /** Aborted with `LockLostError` before another holder can get the lock. */
  readonly signal: AbortSignal;
  /** The local deadline (`performance.now()` clock): the signal aborts then at the latest unless renewed. */
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
  readonly group: string;
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
  readonly memberId: string;
  /** The incarnation of its current membership. */
  readonly incarnation: string;
  /** Milliseconds until it expires without a heartbeat (backend clock); `undefined` for `connection`. */
  readonly expiresInMs?: number | undefined;
  /** The TTL the member joined with, when the backend records it. */
  readonly ttlMs?: number | undefined;
}

/** A distributed lock plus group membership. See docs/coordinator.md for the contract. */
export interface Coordinator {
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
