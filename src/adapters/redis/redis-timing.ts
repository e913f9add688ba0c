/**
 * Timing shared by leases and memberships.
 *
 * @internal
 */

/** The shortest TTL accepted: below it the safety margin leaves no room for a renewal. */
export const MIN_TTL_MS = 100;

/**
 * How long before the server can expire a key the local deadline falls: room for the server's clock
 * running faster than ours (far below 1 % of the TTL in practice) and, above all, for a late timer on
 * a busy event loop, which is what actually eats the margin: 10 % of the TTL, 50 ms at least.
 */
export function safetyMarginOf(ttlMs: number): number {
  return Math.max(50, ttlMs / 10);
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
