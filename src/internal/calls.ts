/**
 * How the protocol calls an adapter: every call gets an `AbortSignal` that aborts exactly when the
 * protocol stops waiting for it (its deadline, the shutdown being forced, the lease being lost), so a
 * built-in adapter gives up its write at the moment the caller gives up on it, and nothing the caller
 * abandoned lands later. Plus the start-stop lock's name, the acquire wrapper and the lease checks.
 *
 * @internal
 */
import type { AcquireOptions, Coordinator, Lease } from '../coordinator.js';
import { LockLostError, LockTimeoutError, StaleTokenError } from '../errors.js';
import { publish } from '../metrics.js';
import { anySignal, bounded, delay, now } from './time.js';

/** The name of a group's start-stop lock. */
export function lockName(group: string): string {
  return `${group}:start-stop`;
}

/** Milliseconds left until `end` (monotonic), never negative. */
export function remaining(end: number): number {
  return Math.max(0, end - now());
}

/** How the caller waits for an adapter call. */
export interface CallOptions {
  /** The moment (monotonic) the caller stops waiting; the adapter's signal aborts then too. */
  readonly end: number;
  /** The error the call rejects with at `end`. */
  readonly onTimeout: () => unknown;
  /** Aborts the adapter's signal, and the caller stops waiting at once. */
  readonly stop?: AbortSignal | undefined;
  /**
   * Aborts the adapter's signal, but the caller keeps waiting for its answer (until `end`): for a
   * write whose outcome must be counted. A store that honours its signal answers at once, committed
   * or rolled back.
   */
  readonly cancel?: AbortSignal | undefined;
}

/**
 * Runs one adapter call with a signal that aborts when `stop` or `cancel` does, or at `end`; stops
 * waiting at `end` or when `stop` aborts. A synchronous throw becomes a rejection.
 */
export async function call<T>(run: (signal: AbortSignal) => Promise<T>, options: CallOptions): Promise<T> {
  const { end, onTimeout, stop, cancel } = options;
  stop?.throwIfAborted();
  const giveUp = new AbortController();
  const signal = anySignal(stop, cancel, giveUp.signal);
  const running = Promise.resolve().then(() => run(signal));
  try {
    return await bounded(
      running,
      remaining(end),
      () => {
        const error = onTimeout();
        giveUp.abort(error);
        return error;
      },
      stop,
    );
  } catch (error) {
    if (!signal.aborted) giveUp.abort(error);
    throw error;
  }
}

/** The first retry waits this long; each next one twice as long, up to {@link MAX_BACKOFF_MS}. */
const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1_000;

/**
 * Runs `attempt` until it succeeds, retrying failures with a jittered exponential backoff while
 * `end` leaves room for another try. Errors that another try cannot mend (a stale token, a lost
 * lease, `stop` aborted, the deadline) are thrown at once; every failure is passed to `onFailure`.
 */
export async function retrying<T>(
  attempt: () => Promise<T>,
  options: { readonly end: number; readonly stop: AbortSignal; readonly onFailure: (error: unknown) => void },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (options.stop.aborted || !retriable(error)) throw error;
      const wait = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** n) * (0.5 + Math.random() / 2);
      if (remaining(options.end) <= wait) throw error;
      options.onFailure(error);
      await delay(wait, options.stop);
    }
  }
}

/** Whether another try could succeed where this one failed (a deadline of the protocol is never retried). */
function retriable(error: unknown): boolean {
  return !(error instanceof StaleTokenError || error instanceof LockLostError || isBudgetError(error));
}

function isBudgetError(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ERR_DRAIN_TIMEOUT';
}

/**
 * How much longer than `timeoutMs` an adapter may take to answer an acquire before the core gives up
 * on it (some adapters give a first try a minimum time, so `timeoutMs: 0` works as a try-lock). Never
 * past the caller's `end`.
 */
const ACQUIRE_SLACK_MS = 750;

/**
 * Takes the group's start-stop lock, publishing how long the wait took. Bounded here too, at
 * `timeoutMs` plus a little slack and never past `end`, so that an adapter that ignores its
 * `timeoutMs` cannot overrun the caller's budget; a lease that arrives too late is released at once.
 */
export async function timedAcquire(
  coordinator: Coordinator,
  scope: { readonly group: string; readonly memberId: string },
  reason: 'shutdown' | 'resume',
  acquire: AcquireOptions & { readonly signal: AbortSignal; readonly end: number },
): Promise<Lease> {
  const lock = lockName(scope.group);
  const startedAt = now();
  let acquired = false;
  let acquiring: Promise<Lease> | undefined;
  try {
    const lease = await call(
      (signal) =>
        (acquiring = coordinator.acquire(lock, {
          ttlMs: acquire.ttlMs,
          timeoutMs: acquire.timeoutMs,
          signal,
        })),
      {
        end: Math.min(acquire.end, now() + acquire.timeoutMs + ACQUIRE_SLACK_MS),
        onTimeout: () =>
          new LockTimeoutError(`The coordinator did not answer an acquire of "${lock}" within its timeout`),
        stop: acquire.signal,
      },
    );
    acquired = true;
    return lease;
  } catch (error) {
    acquiring?.then(
      (late) => late.release().catch(() => {}),
      () => {},
    );
    throw error;
  } finally {
    publish('lockWait', () => ({
      group: scope.group,
      memberId: scope.memberId,
      lock,
      waitMs: now() - startedAt,
      acquired,
      reason,
    }));
  }
}

/**
 * Whether a lease can no longer be written under: its signal aborted, or its local deadline passed
 * already (a stalled event loop can run code past the deadline before the lease's own timer fires).
 */
export function lost(lease: Lease): boolean {
  return lease.signal.aborted || now() >= lease.deadline;
}

/** Why a lease can no longer be written under. */
export function leaseLostReason(lease: Lease): unknown {
  return lease.signal.aborted
    ? lease.signal.reason
    : new LockLostError(`The lease on "${lease.name}" passed its local deadline before the next write`);
}

/**
 * The start-stop lease the background resume holds, so that a shutdown that cannot wait for the
 * resume to wind down takes the lease over instead of waiting for its own lock.
 */
export class LeaseSlot {
  #lease: Lease | undefined;

  /** The resume holds `lease` now. */
  hold(lease: Lease): void {
    this.#lease = lease;
  }

  /** The resume is done with `lease`: true when it must release it (it was not taken over). */
  drop(lease: Lease): boolean {
    if (this.#lease !== lease) return false;
    this.#lease = undefined;
    return true;
  }

  /** Takes the held lease over, if one is held and still good; the resume will not release it. */
  take(): Lease | undefined {
    const lease = this.#lease;
    if (lease === undefined || lost(lease)) return undefined;
    this.#lease = undefined;
    return lease;
  }
}
