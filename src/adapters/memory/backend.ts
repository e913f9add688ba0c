import type { MemberInfo } from '../../coordinator.js';

/**
 * The state that in-memory coordinators share: locks, fencing counters and group members.
 *
 * Coordinators built on one backend see each other's locks and members, as processes sharing a
 * server would. The backend is passive: it owns no timer, and judges expiry lazily, on the clock
 * reading each call brings, so coordinators sharing a backend must share a clock.
 *
 * @example
 * ```ts
 * const backend = new MemoryBackend();
 * const a = new MemoryCoordinator({ backend });
 * const b = new MemoryCoordinator({ backend }); // sees a's locks and members
 * ```
 */
export class MemoryBackend {
  constructor() {
    states.set(this, new BackendState());
  }
}

/** How a holder learns that the backend took its lock or membership away. */
type LostCallback = (why: 'expired' | 'replaced') => void;

interface LockEntry {
  readonly owner: string;
  readonly token: bigint;
  expiresAt: number;
  readonly onLost: LostCallback;
}

interface MemberEntry {
  readonly memberId: string;
  readonly incarnation: string;
  readonly ttlMs: number;
  expiresAt: number;
  readonly onLost: LostCallback;
}

/** The outcome of one attempt to take a lock. */
export type TryAcquireResult =
  | { readonly acquired: true; readonly token: bigint; readonly expiresAt: number }
  | { readonly acquired: false; readonly expiresAt: number };

/**
 * The backend's state and operations. Every method is synchronous, so each is atomic: JavaScript
 * runs one at a time. Loss callbacks run after the state is updated, before the method returns, so
 * a holder's signal is aborted before anyone else can take what it lost.
 *
 * @internal
 */
export class BackendState {
  readonly #locks = new Map<string, LockEntry>();
  readonly #tokens = new Map<string, bigint>();
  readonly #groups = new Map<string, Map<string, MemberEntry>>();
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Takes `name` for `owner` if it is free (or its holder expired). */
  tryAcquire(
    name: string,
    owner: string,
    ttlMs: number,
    now: number,
    onLost: LostCallback,
  ): TryAcquireResult {
    this.#expireLock(name, now);
    const held = this.#locks.get(name);
    if (held !== undefined) return { acquired: false, expiresAt: held.expiresAt };
    const token = (this.#tokens.get(name) ?? 0n) + 1n;
    this.#tokens.set(name, token);
    const expiresAt = now + ttlMs;
    this.#locks.set(name, { owner, token, expiresAt, onLost });
    return { acquired: true, token, expiresAt };
  }

  /** Extends `owner`'s hold on `name`; the new expiry, or `undefined` when it no longer holds it. */
  renew(name: string, owner: string, ttlMs: number, now: number): number | undefined {
    this.#expireLock(name, now);
    const held = this.#locks.get(name);
    if (held === undefined || held.owner !== owner) return undefined;
    held.expiresAt = now + ttlMs;
    return held.expiresAt;
  }

  /** Frees `name` if `owner` holds it; never touches another holder's lock. */
  release(name: string, owner: string): void {
    const held = this.#locks.get(name);
    if (held === undefined || held.owner !== owner) return;
    this.#locks.delete(name);
    this.#notify(name);
  }

  /** Calls `wake` (in a microtask) whenever `name` is freed, until the returned function is called. */
  onFree(name: string, wake: () => void): () => void {
    let set = this.#waiters.get(name);
    if (set === undefined) {
      set = new Set();
      this.#waiters.set(name, set);
    }
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0 && this.#waiters.get(name) === set) this.#waiters.delete(name);
    };
  }

  /** Adds a member; a live member with the same id is replaced (and told so). */
  join(
    group: string,
    memberId: string,
    incarnation: string,
    ttlMs: number,
    now: number,
    onLost: LostCallback,
  ): number {
    this.#expireMembers(group, now);
    let members = this.#groups.get(group);
    if (members === undefined) {
      members = new Map();
      this.#groups.set(group, members);
    }
    const previous = members.get(memberId);
    const expiresAt = now + ttlMs;
    members.set(memberId, { memberId, incarnation, ttlMs, expiresAt, onLost });
    previous?.onLost('replaced');
    return expiresAt;
  }

  /** Extends a membership; the new expiry, or `undefined` when this incarnation is no longer a member. */
  heartbeat(group: string, memberId: string, incarnation: string, now: number): number | undefined {
    this.#expireMembers(group, now);
    const entry = this.#groups.get(group)?.get(memberId);
    if (entry === undefined || entry.incarnation !== incarnation) return undefined;
    entry.expiresAt = now + entry.ttlMs;
    return entry.expiresAt;
  }

  /** Removes this incarnation of a member, if it is still there. */
  leave(group: string, memberId: string, incarnation: string): void {
    const members = this.#groups.get(group);
    const entry = members?.get(memberId);
    if (members === undefined || entry === undefined || entry.incarnation !== incarnation) return;
    members.delete(memberId);
    if (members.size === 0) this.#groups.delete(group);
  }

  /** The live members of `group`, expired ones removed first. */
  members(group: string, now: number): MemberInfo[] {
    this.#expireMembers(group, now);
    const members = this.#groups.get(group);
    if (members === undefined) return [];
    return [...members.values()].map((m) =>
      Object.freeze({
        memberId: m.memberId,
        incarnation: m.incarnation,
        expiresInMs: Math.max(0, m.expiresAt - now),
        ttlMs: m.ttlMs,
      }),
    );
  }

  #expireLock(name: string, now: number): void {
    const held = this.#locks.get(name);
    if (held === undefined || held.expiresAt > now) return;
    this.#locks.delete(name);
    held.onLost('expired');
    this.#notify(name);
  }

  #expireMembers(group: string, now: number): void {
    const members = this.#groups.get(group);
    if (members === undefined) return;
    const expired = [...members.values()].filter((m) => m.expiresAt <= now);
    for (const m of expired) members.delete(m.memberId);
    if (members.size === 0) this.#groups.delete(group);
    for (const m of expired) m.onLost('expired');
  }

  // Deferred, so a waiter never takes a lock in the middle of another backend call.
  #notify(name: string): void {
    const set = this.#waiters.get(name);
    if (set === undefined) return;
    const wakes = [...set];
    queueMicrotask(() => {
      for (const wake of wakes) wake();
    });
  }
}

const states = new WeakMap<MemoryBackend, BackendState>();

/** The state behind a backend. @internal */
export function stateOf(backend: MemoryBackend): BackendState {
  return states.get(backend) as BackendState;
}

/** The backend coordinators use when given none: one per process, like a process scope. @internal */
export const defaultBackend = new MemoryBackend();
