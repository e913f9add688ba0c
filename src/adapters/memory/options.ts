import { withDefaults } from '../../internal/defaults.js';
import { now } from '../../internal/time.js';
import {
  checkBoolean,
  checkFunction,
  checkNonNegative,
  checkOptionsObject,
  invalid,
} from '../../validate.js';
import { type BackendState, defaultBackend, MemoryBackend, stateOf } from './backend.js';

/** Options of {@link MemoryCoordinator}. */
export interface MemoryCoordinatorOptions {
  /**
   * The state this coordinator shares with others: coordinators on one backend see each other's
   * locks and members.
   * @defaultValue one backend shared by every coordinator of the process
   */
  readonly backend?: MemoryBackend | undefined;
  /**
   * The monotonic clock, in milliseconds, that expiry is judged by and local deadlines are set on.
   * Coordinators sharing a backend must share a clock. `Lease.deadline` is still given on the
   * `performance.now()` clock, assuming both advance alike. Timers are plain `setTimeout`s, so vitest's
   * fake timers (which also fake `performance.now()`) drive the whole coordinator.
   * @defaultValue `() => performance.now()`
   */
  readonly clock?: (() => number) | undefined;
}

/** Options of {@link MemoryWorkflowStore}. */
export interface MemoryWorkflowStoreOptions {
  /**
   * How long the simulated host takes to pause a parked workflow, in milliseconds. With `0` a park
   * pauses at once (outcome `paused`); above, it leaves the workflow `pausing` (outcome `pausing`)
   * and pauses it after this delay, unless the host or a user set its status meanwhile.
   * @defaultValue 0
   */
  readonly pauseDelayMs?: number | undefined;
  /**
   * Offers the owner capability: `listOwned()` and `evictMembers()`, over an owner per workflow that the
   * host sets (`add(id, status, owner)`, `setOwner()`), so that a live member recovers a crashed peer's
   * workflows while the group runs (docs/protocol.md, "A peer crashes while the group runs"). Without it
   * the store has neither method, and a crashed peer's workflows wait for the group's next lonely start.
   * @defaultValue false
   */
  readonly owners?: boolean | undefined;
  /**
   * Offers `parkPage()` and `unparkPage()`, as the SQL stores do: the controller then lists and writes
   * each page in one call. For tests of code that uses them; the results are the same either way.
   * @defaultValue false
   */
  readonly pages?: boolean | undefined;
}

const COORDINATOR_DEFAULTS = Object.freeze({ backend: defaultBackend, clock: now });
const STORE_DEFAULTS = Object.freeze({ pauseDelayMs: 0, owners: false, pages: false });

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileCoordinatorOptions(options: unknown): { backend: BackendState; clock: () => number } {
  const given = checkOptionsObject('MemoryCoordinator', options, Object.keys(COORDINATOR_DEFAULTS));
  const { backend, clock } = withDefaults(COORDINATOR_DEFAULTS, given);
  if (!(backend instanceof MemoryBackend)) invalid('backend', 'a MemoryBackend', backend);
  return { backend: stateOf(backend), clock: checkFunction<() => number>('clock', clock) };
}

/** Checks `options` (messages name the option and the value) and applies the defaults. @internal */
export function compileStoreOptions(options: unknown): {
  pauseDelayMs: number;
  owners: boolean;
  pages: boolean;
} {
  const given = checkOptionsObject('MemoryWorkflowStore', options, Object.keys(STORE_DEFAULTS));
  const { pauseDelayMs, owners, pages } = withDefaults(STORE_DEFAULTS, given);
  return {
    pauseDelayMs: checkNonNegative('pauseDelayMs', pauseDelayMs),
    owners: checkBoolean('owners', owners),
    pages: checkBoolean('pages', pages),
  };
}
