/**
 * The `Lease` and `Membership` objects every coordinator adapter hands out, their options checked.
 * @internal
 */
import type { CoordinatorCallOptions, Lease, Membership } from '../coordinator.js';
import { checkCallOptions } from './store-args.js';

/** What a lease shows of its hold: its loss signal and its local deadline. */
export interface HoldView {
  readonly signal: AbortSignal;
  readonly deadline: number;
}

/** A lease on `hold`, given back by `release(signal)`. */
export function leaseOf(
  name: string,
  token: bigint,
  hold: HoldView,
  release: (signal: AbortSignal | undefined) => unknown,
): Lease {
  return Object.freeze({
    name,
    token,
    signal: hold.signal,
    get deadline() {
      return hold.deadline;
    },
    release: async (options?: CoordinatorCallOptions) => {
      await release(checkCallOptions('release()', options));
    },
  });
}

/** A membership whose loss `signal` is its hold's, given back by `leave(signal)`. */
export function membershipOf(
  group: string,
  memberId: string,
  incarnation: string,
  signal: AbortSignal,
  leave: (signal: AbortSignal | undefined) => unknown,
): Membership {
  return Object.freeze({
    group,
    memberId,
    incarnation,
    signal,
    leave: async (options?: CoordinatorCallOptions) => {
      await leave(checkCallOptions('leave()', options));
    },
  });
}
