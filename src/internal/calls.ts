/**
 * How the protocol calls an adapter: every call gets an `AbortSignal` that aborts exactly when the
 * protocol stops waiting for it, so nothing the caller abandoned lands later. Plus the start-stop lock,
 * the retries and the lease checks.
 * @internal
 */
import type { AcquireOptions, Coordinator, Lease } from '../coordinator.js';
import { EvictedMemberError, LockLostError, LockTimeoutError, StaleTokenError } from '../errors.js';
import { publish } from '../metrics.js';
import { bounded, delay, linkSignals, now } from './time.js';

/** Milliseconds left until `end` (monotonic), never negative. */
export function remaining(end: number): number {
  return Math.max(0, end - now());
}

/** How the caller waits for an adapter call. */
export interface CallOptions {
  /** The moment (monotonic) the caller stops waiting, rejecting with `onTimeout()`; the signal aborts too. */
  readonly end: number;
  readonly onTimeout: () => unknown;
  /** Aborts the adapter's signal, and the caller stops waiting at once. */
  readonly stop?: AbortSignal | undefined;
  /** Aborts the adapter's signal, but its answer is awaited (until `end`): for a write to count. */
  readonly cancel?: AbortSignal | undefined;
}

/** Runs one adapter call under `options`; a synchronous throw becomes a rejection. */
export async function call<T>(run: (signal: AbortSignal) => Promise<T>, options: CallOptions): Promise<T> {
  const { end, onTimeout, stop, cancel } = options;
  stop?.throwIfAborted();
  const giveUp = new AbortController();
  const link = linkSignals(stop, cancel, giveUp.signal);
  const { signal } = link;
  const running = Promise.resolve().then(() => run(signal));
  const timedOut = (): unknown => {
    const error = onTimeout();
    giveUp.abort(error);
    return error;
  };
  try {
    return await bounded(running, remaining(end), timedOut, stop);
  } catch (error) {
    if (!signal.aborted) giveUp.abort(error);
    throw error;
  } finally {
    // The call may still run (the caller gave up on it): its signal has aborted then, and stays so.
    link.dispose();
  }
}

/**
 * Runs `attempt` until it succeeds, retrying failures with a jittered exponential backoff (50 ms doubling
 * up to 1 s) while `end` leaves room. What another try cannot mend (a stale token, a lost lease, an
 * evicted incarnation, `stop` aborted, a deadline of the protocol) is thrown at once; each retried failure goes to `onFailure`.
 */
export async function retrying<T>(
  attempt: () => Promise<T>,
  options: { readonly end: number; readonly stop: AbortSignal; readonly onFailure: (error: unknown) => void },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const final =
        code === 'ERR_DRAIN_TIMEOUT' ||
        error instanceof StaleTokenError ||
        error instanceof LockLostError ||
        error instanceof EvictedMemberError;
      if (options.stop.aborted || final) throw error;
      const wait = Math.min(1_000, 50 * 2 ** n) * (0.5 + Math.random() / 2);
      if (remaining(options.end) <= wait) throw error;
      options.onFailure(error);
      await delay(wait, options.stop);
    }
  }
}

/**
 * How much longer than `timeoutMs` an adapter may take to answer an acquire (some give a first try a
 * minimum time, so that `timeoutMs: 0` works as a try-lock).
 */
const ACQUIRE_SLACK_MS = 750;

/**
 * Takes the group's start-stop lock, publishing how long the wait took. Bounded here too (`timeoutMs`
 * plus a slack, never past `end`) against an adapter that ignores `timeoutMs`; a late lease is released.
 */
export async function timedAcquire(
  coordinator: Coordinator,
  scope: { readonly group: string; readonly memberId: string },
  reason: 'shutdown' | 'resume' | 'recovery',
  acquire: AcquireOptions & { readonly signal: AbortSignal; readonly end: number },
): Promise<Lease> {
  const { group, memberId } = scope;
  const { ttlMs, timeoutMs, signal: stop, end } = acquire;
  const lock = `${group}:start-stop`;
  const startedAt = now();
  let acquired = false;
  let acquiring: Promise<Lease> | undefined;
  const run = (signal: AbortSignal): Promise<Lease> =>
    (acquiring = coordinator.acquire(lock, { ttlMs, timeoutMs, signal }));
  try {
    const lease = await call(run, {
      end: Math.min(end, now() + timeoutMs + ACQUIRE_SLACK_MS),
      onTimeout: () =>
        new LockTimeoutError(`The coordinator did not answer an acquire of "${lock}" within its timeout`),
      stop,
    });
    acquired = true;
    return lease;
  } catch (error) {
    acquiring?.then(
      (late) => late.release().catch(() => {}),
      () => {},
    );
    throw error;
  } finally {
    publish('lockWait', () => ({ group, memberId, lock, waitMs: now() - startedAt, acquired, reason }));
  }
}

/** Whether a lease can no longer be written under (its deadline may pass before its timer fires). */
export function lost(lease: Lease): boolean {
  return lease.signal.aborted || now() >= lease.deadline;
}

/** Why a lease can no longer be written under. */
export function leaseLostReason(lease: Lease): unknown {
  return lease.signal.aborted
    ? lease.signal.reason
    : new LockLostError(`The lease on "${lease.name}" passed its local deadline before the next write`);
}
