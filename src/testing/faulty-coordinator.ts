import createDebug from 'debug';
import type {
  AcquireOptions,
  Coordinator,
  CoordinatorCallOptions,
  CoordinatorCapabilities,
  JoinOptions,
  Lease,
  MemberInfo,
  Membership,
} from '../coordinator.js';
import {
  ClosedError,
  ConfigurationError,
  CoordinatorUnavailableError,
  LockLostError,
  MembershipLostError,
} from '../errors.js';
import { checkOneOf, invalid } from '../validate.js';

const debug = createDebug('graceful-drain:testing');

/** An operation of a coordinator that {@link FaultyCoordinator} can make hang or fail. */
export type CoordinatorOperation = 'acquire' | 'join' | 'leave' | 'members' | 'release';

const OPERATIONS: readonly CoordinatorOperation[] = ['acquire', 'join', 'leave', 'members', 'release'];

/** A coordinator that can simulate a SIGKILL of its process (`MemoryCoordinator` can). */
export interface CrashableCoordinator extends Coordinator {
  /** Stops renewals and heartbeats without releasing or leaving; later calls reject. */
  simulateCrash(): void;
}

function checkOperations(ops: unknown): readonly CoordinatorOperation[] {
  if (!Array.isArray(ops)) invalid('ops', `an array of ${OPERATIONS.join(', ')}`, ops);
  return ops.map((op: unknown, i) => checkOneOf(`ops[${i}]`, op, OPERATIONS));
}

/** A call held by `hang()` until `heal()`. */
type HeldCall = { readonly proceed: () => void; readonly cancel: (error: unknown) => void };
/** A handed-out lease or membership: the wrapped one, and the controller of the wrapper's signal. */
type Tracked<T> = { readonly inner: T; readonly controller: AbortController };

/**
 * Wraps a {@link Coordinator} and injects faults, for tests of what uses it: lost leases, dropped
 * memberships, hanging or failing operations, and a crash of the process. The leases and memberships
 * it hands out have signals that follow the wrapped ones and also abort when a fault takes them away.
 * Faults apply to calls made after they are injected.
 *
 * @example
 * ```ts
 * const coordinator = new FaultyCoordinator(new MemoryCoordinator({ backend }));
 * coordinator.hang(['leave']);          // leave() never settles...
 * setTimeout(() => coordinator.heal(), 100); // ...until heal()
 * await coordinator.expireLease();      // every held lease aborts with LockLostError, lock freed
 * coordinator.crash();                  // like SIGKILL: memberships and locks expire after their TTL
 * ```
 */
export class FaultyCoordinator implements Coordinator {
  /** The wrapped coordinator. */
  readonly inner: Coordinator;
  readonly #hung = new Set<CoordinatorOperation>();
  readonly #failing = new Map<CoordinatorOperation, unknown>();
  readonly #held = new Set<HeldCall>();
  readonly #leases = new Set<Tracked<Lease>>();
  readonly #memberships = new Set<Tracked<Membership>>();
  #state: 'open' | 'crashed' | 'closed' = 'open';

  constructor(inner: Coordinator) {
    if (inner === null || typeof inner !== 'object' || typeof inner.acquire !== 'function') {
      invalid('inner', 'a Coordinator', inner);
    }
    this.inner = inner;
  }

  /** The wrapped coordinator's capabilities. */
  get capabilities(): CoordinatorCapabilities {
    return this.inner.capabilities;
  }

  /** Whether `crash()` was called. */
  get crashed(): boolean {
    return this.#state === 'crashed';
  }

  async acquire(name: string, options: AcquireOptions): Promise<Lease> {
    const lease = await this.#run('acquire', options?.signal, () => this.inner.acquire(name, options));
    const [signal, release] = this.#track(this.#leases, lease, 'release', (o) => lease.release(o));
    return {
      name: lease.name,
      token: lease.token,
      signal,
      get deadline() {
        return lease.deadline;
      },
      release,
    };
  }

  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    const membership = await this.#run('join', options?.signal, () =>
      this.inner.join(group, memberId, options),
    );
    const [signal, leave] = this.#track(this.#memberships, membership, 'leave', (o) => membership.leave(o));
    const { incarnation } = membership;
    return { group: membership.group, memberId: membership.memberId, incarnation, signal, leave };
  }

  members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    return this.#run('members', options?.signal, () => this.inner.members(group, options));
  }

  /**
   * Closes the wrapped coordinator; held calls reject with `ClosedError`, and so do later `acquire`,
   * `join` and `members` calls (`release()` and `leave()` still resolve). Idempotent; never throws.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#cancelHeld(new ClosedError('The FaultyCoordinator was closed'));
    try {
      await this.inner.close();
    } catch (error) {
      debug('inner close failed: %O', error);
    }
  }

  /** Takes held leases away (of lock `name`, or all): their signals abort with `LockLostError`, the locks are freed. */
  async expireLease(name?: string): Promise<void> {
    const hit = [...this.#leases].filter((t) => name === undefined || t.inner.name === name);
    for (const t of hit) {
      this.#leases.delete(t);
      t.controller.abort(new LockLostError(`The lock "${t.inner.name}" expired (injected fault)`));
    }
    await Promise.all(hit.map((t) => t.inner.release()));
    debug('expired %d leases', hit.length);
  }

  /** Drops memberships (of `memberId`, or all): their signals abort with `MembershipLostError`, they leave. */
  async dropMembership(memberId?: string): Promise<void> {
    const hit = [...this.#memberships].filter((t) => memberId === undefined || t.inner.memberId === memberId);
    for (const t of hit) {
      this.#memberships.delete(t);
      const { memberId: id, group } = t.inner;
      t.controller.abort(
        new MembershipLostError(`Member "${id}" was dropped from "${group}" (injected fault)`),
      );
    }
    await Promise.all(hit.map((t) => t.inner.leave()));
    debug('dropped %d memberships', hit.length);
  }

  /**
   * Makes `ops` never settle until `heal()`. A held call still rejects with `signal.reason` when its
   * signal aborts (every operation takes one), and the wrapped call is then never made.
   */
  hang(ops: readonly CoordinatorOperation[]): void {
    for (const op of checkOperations(ops)) this.#hung.add(op);
  }

  /** Makes `ops` reject with `error` (a fresh `CoordinatorUnavailableError` by default) until `heal()`. */
  fail(ops: readonly CoordinatorOperation[], error?: unknown): void {
    for (const op of checkOperations(ops)) this.#failing.set(op, error);
  }

  /**
   * Simulates a SIGKILL: renewals and heartbeats stop, so memberships and locks expire after their TTL;
   * later calls reject with `ClosedError`. The wrapped coordinator must implement `simulateCrash()`.
   */
  crash(): void {
    if (this.#state !== 'open') return;
    const inner = this.inner as Partial<CrashableCoordinator>;
    if (typeof inner.simulateCrash !== 'function') {
      throw new ConfigurationError(
        'FaultyCoordinator.crash() needs a wrapped coordinator with simulateCrash()',
      );
    }
    this.#state = 'crashed';
    inner.simulateCrash();
    this.#cancelHeld(new ClosedError('The FaultyCoordinator crashed'));
    debug('crashed');
  }

  /** Ends `hang()` and `fail()`: held calls proceed. */
  heal(): void {
    this.#hung.clear();
    this.#failing.clear();
    const held = [...this.#held];
    this.#held.clear();
    for (const call of held) call.proceed();
  }

  #run<T>(op: CoordinatorOperation, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    const ends = op === 'release' || op === 'leave';
    if (this.#state === 'closed') {
      // close() released and left everything already: releasing or leaving again is a no-op.
      return ends ? call() : Promise.reject(new ClosedError('The FaultyCoordinator is closed'));
    }
    if (this.#state === 'crashed') return Promise.reject(new ClosedError('The FaultyCoordinator crashed'));
    if (this.#failing.has(op)) {
      const error =
        this.#failing.get(op) ?? new CoordinatorUnavailableError(`${op}() failed (injected fault)`);
      return Promise.reject(error);
    }
    if (!this.#hung.has(op)) return call();
    // A release or leave given up while hung still reaches the wrapped handle with the aborted
    // signal, so that it stops renewing: given up, the lock or membership expires with its TTL.
    const giveUp = (): void => {
      if (ends) call().catch(() => {});
    };
    if (signal?.aborted) {
      giveUp();
      return Promise.reject(signal.reason);
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        held.cancel(signal?.reason);
        giveUp();
      };
      const held: HeldCall = {
        proceed: () => {
          signal?.removeEventListener('abort', onAbort);
          this.#run(op, signal, call).then(resolve, reject);
        },
        cancel: (error) => {
          this.#held.delete(held);
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.#held.add(held);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #cancelHeld(error: Error): void {
    const held = [...this.#held];
    this.#held.clear();
    for (const call of held) call.cancel(error);
  }

  /** `inner`'s signal, followed until a fault aborts it, and its `end` (`release()`/`leave()`) run as `op`. */
  #track<T extends { readonly signal: AbortSignal }>(
    set: Set<Tracked<T>>,
    inner: T,
    op: 'release' | 'leave',
    end: (options?: CoordinatorCallOptions) => Promise<void>,
  ): [AbortSignal, (options?: CoordinatorCallOptions) => Promise<void>] {
    const tracked: Tracked<T> = { inner, controller: new AbortController() };
    const follow = (): void => {
      set.delete(tracked);
      tracked.controller.abort(inner.signal.reason);
    };
    if (inner.signal.aborted) follow();
    else {
      set.add(tracked);
      inner.signal.addEventListener('abort', follow, { once: true });
    }
    const run = (options?: CoordinatorCallOptions): Promise<void> =>
      this.#run(op, options?.signal, async () => {
        set.delete(tracked);
        await end(options);
      });
    return [tracked.controller.signal, run];
  }
}
