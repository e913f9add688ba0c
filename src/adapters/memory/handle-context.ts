import { checkOptionsObject, invalid } from '../../validate.js';
import type { BackendState } from './memory-backend.js';

/** What a lease or a membership needs from the coordinator that made it. @internal */
export interface HandleContext {
  readonly backend: BackendState;
  readonly clock: () => number;
  /** True once the coordinator simulated a crash: nothing may touch the backend any more. */
  readonly crashed: boolean;
  /** Stops tracking a handle that is released, left or lost. */
  forget(handle: object): void;
}

/**
 * A timer for background work (renewals, heartbeats, local deadlines). Unref'd: none of them is a
 * reason to keep the process alive.
 *
 * @internal
 */
export function backgroundTimer(ms: number, fn: () => void): ReturnType<typeof setTimeout> {
  const timer = setTimeout(fn, Math.max(0, ms));
  timer.unref();
  return timer;
}

const CALL_OPTION_NAMES = Object.freeze(['signal']);

/** The `signal` of `{ signal }` options (members, leave, release), checked. @internal */
export function checkCallSignal(where: string, options: unknown): AbortSignal | undefined {
  const { signal } = checkOptionsObject(where, options, CALL_OPTION_NAMES);
  if (signal !== undefined && !(signal instanceof AbortSignal)) invalid('signal', 'an AbortSignal', signal);
  return signal;
}
