import type { MemberInfo } from '../../coordinator.js';

/**
 * The state that in-memory coordinators share: locks, fencing counters and group members. Coordinators
 * on one backend see each other's locks and members, as processes sharing a server would (see the
 * example of {@link MemoryCoordinator}). It owns no timer and judges expiry on the clock reading each
 * call brings, so they must share a clock too.
 */
export class MemoryBackend {
  constructor() {
    states.set(this, new BackendState());
  }
}

/** How a holder learns that the backend took its lock or membership away. */
type Lost = (why: 'expired' | 'replaced') => void;
type MemberEntry = { memberId: string; incarnation: string; ttlMs: number; expiresAt: number; onLost: Lost };

/**
 * The backend's state. Every method is synchronous, hence atomic; loss callbacks run once the state is
 * updated, before the method returns, so a holder's signal aborts before anyone can take what it lost.
 * @internal
 */
export class BackendState {
  readonly #locks = new Map<string, { owner: string; expiresAt: number; onLost: Lost }>();
  readonly #tokens = new Map<string, bigint>();
  readonly #groups = new Map<string, Map<string, MemberEntry>>();
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Takes `name` for `owner` if it is free (or its holder expired): its token, else the holder's expiry. */
  tryAcquire(name: string, owner: string, ttlMs: number, now: number, onLost: Lost): bigint | number {
    this.#expireLock(name, now);
    const held = this.#locks.get(name);
    if (held !== undefined) return held.expiresAt;
    const token = (this.#tokens.get(name) ?? 0n) + 1n;
    this.#tokens.set(name, token);
    this.#locks.set(name, { owner, expiresAt: now + ttlMs, onLost });
    return token;
  }

  /** Extends `owner`'s hold on `name`; false when it no longer holds it. */
  renew(name: string, owner: string, ttlMs: number, now: number): boolean {
    this.#expireLock(name, now);
    const held = this.#locks.get(name);
    if (held?.owner !== owner) return false;
    held.expiresAt = now + ttlMs;
    return true;
  }

  /** Frees `name` if `owner` holds it. */
  release(name: string, owner: string): void {
    if (this.#locks.get(name)?.owner !== owner) return;
    this.#locks.delete(name);
    this.#notify(name);
  }

  /** Calls `wake` (in a microtask) whenever `name` is freed, until the returned function is called. */
  onFree(name: string, wake: () => void): () => void {
    let set = this.#waiters.get(name);
    if (set === undefined) this.#waiters.set(name, (set = new Set()));
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0 && this.#waiters.get(name) === set) this.#waiters.delete(name);
    };
  }

  /** Adds a member; a live member with the same id is replaced (and told so). */
  join(group: string, memberId: string, incarnation: string, ttlMs: number, now: number, onLost: Lost): void {
    this.#expireMembers(group, now);
    let members = this.#groups.get(group);
    if (members === undefined) this.#groups.set(group, (members = new Map()));
    const previous = members.get(memberId);
    members.set(memberId, { memberId, incarnation, ttlMs, expiresAt: now + ttlMs, onLost });
    previous?.onLost('replaced');
  }

  /** Extends a membership; false when this incarnation is no longer a member. */
  heartbeat(group: string, memberId: string, incarnation: string, now: number): boolean {
    this.#expireMembers(group, now);
    const entry = this.#groups.get(group)?.get(memberId);
    if (entry?.incarnation !== incarnation) return false;
    entry.expiresAt = now + entry.ttlMs;
    return true;
  }

  /** Removes this incarnation of a member, if it is still there. */
  leave(group: string, memberId: string, incarnation: string): void {
    const members = this.#groups.get(group);
    if (members?.get(memberId)?.incarnation !== incarnation) return;
    members.delete(memberId);
    if (members.size === 0) this.#groups.delete(group);
  }

  /** The live members of `group`, expired ones removed first. */
  members(group: string, now: number): MemberInfo[] {
    this.#expireMembers(group, now);
    return [...(this.#groups.get(group)?.values() ?? [])].map(({ memberId, incarnation, expiresAt, ttlMs }) =>
      Object.freeze({ memberId, incarnation, expiresInMs: Math.max(0, expiresAt - now), ttlMs }),
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
    const wakes = [...(this.#waiters.get(name) ?? [])];
    if (wakes.length > 0) queueMicrotask(() => wakes.forEach((wake) => wake()));
  }
}

const states = new WeakMap<MemoryBackend, BackendState>();

/** The state behind a backend. @internal */
export function stateOf(backend: MemoryBackend): BackendState {
  return states.get(backend) as BackendState;
}

/** The backend coordinators use when given none: one per process, like a process scope. @internal */
export const defaultBackend = new MemoryBackend();
