import type {
  AcquireOptions,
  Coordinator,
  CoordinatorCallOptions,
  CoordinatorCapabilities,
  JoinOptions,
  Lease,
  MemberInfo,
  Membership,
} from '../../coordinator.js';
import { ClosedError, LockTimeoutError } from '../../errors.js';
import { checkAcquire, checkJoin, checkMembers } from '../../internal/coordinator-args.js';
import { backgroundTimer } from '../../internal/keep-alive.js';
import { randomId } from '../../internal/time.js';
import { debug, type HoldContext, type MemoryHold } from './hold.js';
import { memoryLease } from './lease.js';
import { memoryMembership } from './membership.js';
import { compileCoordinatorOptions, type MemoryCoordinatorOptions } from './options.js';

const CAPABILITIES = Object.freeze({ scope: 'process', liveness: 'ttl', fencing: 'monotonic' } as const);

/**
 * A {@link Coordinator} whose locks and groups live in memory, shared by the coordinators of one
 * {@link MemoryBackend}: for a single process, and for tests. Leases and memberships renew every
 * `ttlMs / 3`; tokens strictly increase per lock name on a backend; waiters for a lock wake when it is
 * released or expires.
 *
 * @example
 * ```ts
 * const backend = new MemoryBackend();
 * const a = new MemoryCoordinator({ backend });
 * const b = new MemoryCoordinator({ backend }); // sees a's locks and members
 * const lease = await a.acquire('start-stop', { ttlMs: 5_000, timeoutMs: 1_000 });
 * await lease.release();
 * ```
 */
export class MemoryCoordinator implements Coordinator {
  /** `{ scope: 'process', liveness: 'ttl', fencing: 'monotonic' }`. */
  readonly capabilities: CoordinatorCapabilities = CAPABILITIES;
  readonly #holds = new Set<MemoryHold>();
  readonly #waits = new Set<(error: Error) => void>();
  readonly #context: HoldContext;
  #state: 'open' | 'crashed' | 'closed' = 'open';

  constructor(options?: MemoryCoordinatorOptions) {
    const { backend, clock } = compileCoordinatorOptions(options);
    this.#context = { backend, clock, holds: this.#holds, crashed: () => this.#state === 'crashed' };
  }

  /** Takes the lock `name`, waiting up to `timeoutMs` for its holder to release it or expire. */
  async acquire(name: string, options: AcquireOptions): Promise<Lease> {
    this.#checkOpen();
    const { ttlMs, timeoutMs, signal } = checkAcquire(name, options);
    const { backend, clock } = this.#context;
    const owner = randomId();
    return new Promise<Lease>((resolve, reject) => {
      let settled = false;
      let hold: MemoryHold | undefined;
      const wait: { recheck?: NodeJS.Timeout; timeout?: NodeJS.Timeout; unsubscribe?: () => void } = {};
      const cancel = (error: unknown): void => {
        if (settled) return;
        finish();
        reject(error);
      };
      const onAbort = (): void => cancel(signal?.reason);
      const finish = (): void => {
        settled = true;
        clearTimeout(wait.recheck);
        clearTimeout(wait.timeout);
        wait.unsubscribe?.();
        signal?.removeEventListener('abort', onAbort);
        this.#waits.delete(cancel);
      };
      const attempt = (): boolean => {
        if (settled) return true;
        const result = backend.tryAcquire(name, owner, ttlMs, clock(), (why) =>
          hold?.lost(`it ${why} in the backend`),
        );
        if (typeof result === 'bigint') {
          finish();
          const taken = memoryLease(this.#context, name, owner, result, ttlMs);
          hold = taken.hold;
          debug('lease %s acquired (token %s)', name, result);
          resolve(taken.lease);
          return true;
        }
        // Expiry frees a lock without any event, so look again when the holder's TTL runs out.
        clearTimeout(wait.recheck);
        wait.recheck = backgroundTimer(Math.max(1, result - clock()), attempt);
        return false;
      };
      if (attempt()) return;
      const timedOut = (): void =>
        cancel(new LockTimeoutError(`The lock "${name}" could not be acquired within ${timeoutMs} ms`));
      if (timeoutMs === 0) return timedOut();
      wait.unsubscribe = backend.onFree(name, attempt);
      // Not unref'd: the caller is waiting on this, and it is cleared as soon as the wait ends.
      wait.timeout = setTimeout(() => attempt() || timedOut(), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waits.add(cancel);
    });
  }

  /** Joins `group` as `memberId` with a fresh incarnation, replacing a live member of that id. */
  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    this.#checkOpen();
    const { ttlMs } = checkJoin(group, memberId, options);
    const membership = memoryMembership(this.#context, group, memberId, ttlMs);
    debug('member %s joined %s (%s)', memberId, group, membership.incarnation);
    return membership;
  }

  /** Lists the live members of `group`; rejects with `signal.reason` only if `signal` is aborted already. */
  async members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    this.#checkOpen();
    checkMembers(group, options);
    return this.#context.backend.members(group, this.#context.clock());
  }

  /** Releases its leases, leaves its groups, clears every timer; pending `acquire()` calls reject. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const crashed = this.#state === 'crashed';
    this.#state = 'closed';
    for (const cancel of [...this.#waits]) cancel(new ClosedError('The MemoryCoordinator was closed'));
    // Holders are told before the lock is free, as the contract's loss signal promises. A crashed
    // instance stays crashed: it must not touch the backend.
    for (const hold of [...this.#holds]) hold.dispose(!crashed, 'the coordinator was closed');
    debug('coordinator closed%s', crashed ? ' (after a simulated crash)' : '');
  }

  /**
   * Simulates a SIGKILL, for tests (`FaultyCoordinator.crash()` calls it): renewals stop, nothing is
   * released, so locks and memberships expire after their TTL and lease signals abort at their local
   * deadline. Pending and later calls reject with `ClosedError`; `close()` then only clears timers.
   */
  simulateCrash(): void {
    if (this.#state !== 'open') return;
    this.#state = 'crashed';
    for (const cancel of [...this.#waits]) cancel(new ClosedError('The MemoryCoordinator crashed'));
    for (const hold of this.#holds) hold.halt();
    debug('coordinator crashed (simulated)');
  }

  #checkOpen(): void {
    if (this.#state === 'closed') throw new ClosedError('The MemoryCoordinator is closed');
    if (this.#state === 'crashed') throw new ClosedError('The MemoryCoordinator crashed');
  }
}
