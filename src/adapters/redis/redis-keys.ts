/**
 * The key layout. Every key of one lock, and every key of one group, carries the same hash tag
 * (`{...}`), so each script touches a single Redis Cluster slot, while different locks and groups
 * spread over the slots.
 *
 * @internal
 */

/** The keys of one lock: who holds it, and its fencing counter. @internal */
export interface LockKeys {
  /** A string holding the owner id of the current holder, with the lease's TTL. */
  readonly owner: string;
  /** An integer incremented by every successful acquisition; it never expires. */
  readonly fence: string;
}

/** The keys of one group: member ids scored by expiry, and their incarnations. @internal */
export interface GroupKeys {
  /** A sorted set: member id -> expiry, in milliseconds on the server's clock. */
  readonly members: string;
  /** A hash: member id -> `<incarnation>|<ttlMs>`. */
  readonly info: string;
}

/** `{<prefix>lock:<name>}:owner` and `{<prefix>lock:<name>}:fence`. @internal */
export function lockKeys(prefix: string, name: string): LockKeys {
  const tag = `{${prefix}lock:${name}}`;
  return { owner: `${tag}:owner`, fence: `${tag}:fence` };
}

/** `{<prefix>group:<name>}:members` and `{<prefix>group:<name>}:info`. @internal */
export function groupKeys(prefix: string, group: string): GroupKeys {
  const tag = `{${prefix}group:${group}}`;
  return { members: `${tag}:members`, info: `${tag}:info` };
}

/** The record a member's hash field holds, compared verbatim by the scripts. @internal */
export function memberRecord(incarnation: string, ttlMs: number): string {
  return `${incarnation}|${ttlMs}`;
}

/** Splits a member record; `undefined` parts when it is not one of ours. @internal */
export function parseMemberRecord(record: string): { incarnation: string; ttlMs: number | undefined } {
  const bar = record.lastIndexOf('|');
  if (bar < 0) return { incarnation: record, ttlMs: undefined };
  const ttlMs = Number(record.slice(bar + 1));
  return { incarnation: record.slice(0, bar), ttlMs: Number.isFinite(ttlMs) ? ttlMs : undefined };
}
