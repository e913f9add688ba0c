/**
 * Timing shared by leases and memberships.
 *
 * @internal
 */

/** The shortest TTL accepted: below it the safety margin leaves no room for a renewal. */
export const MIN_TTL_MS = 100;

/**
 * How long before the server can expire a key the local deadline falls: room for the server's clock
 * running faster than ours (1 % of the TTL, far above real drift) and for a late timer on a busy
 * event loop (25 ms at least).
 */
export function safetyMarginOf(ttlMs: number): number {
  return Math.max(25, ttlMs / 100);
}

/**
 * A timer for background work (renewals, heartbeats, local deadlines). Unref'd: none of them is a
 * reason to keep the process alive, and each is cleared when its lease or membership ends.
 */
export function backgroundTimer(ms: number, fn: () => void): ReturnType<typeof setTimeout> {
  const timer = setTimeout(fn, Math.max(0, ms));
  timer.unref();
  return timer;
}
