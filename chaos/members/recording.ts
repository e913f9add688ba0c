/**
 * A coordinator and a store that record, in a member's history, every call the protocol makes and how
 * it ended: acquire, renew, loss and release of leases; join, loss and leave of memberships; member
 * listings; fence raises, park, unpark and listParked with their tokens and outcomes. They forward to
 * the real adapters (options and their `signal` included) and change nothing else, so what the checker
 * reads is what the protocol did.
 *
 * Renewals are not visible through the `Lease` interface: a renewal moves `lease.deadline`, so the
 * recorder samples it a few times per TTL and records each move.
 */
import type {
  AcquireOptions,
  Coordinator,
  CoordinatorCallOptions,
  CoordinatorCapabilities,
  Fence,
  ItemResult,
  JoinOptions,
  Lease,
  ListOptions,
  MemberInfo,
  Membership,
  NotePausedOutcome,
  Page,
  ParkedWorkflow,
  ParkOutcome,
  StoreCallOptions,
  StoreWarning,
  UnparkOutcome,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from 'graceful-drain';
import {
  errorRecord,
  fromNow,
  type LeaseAtWrite,
  type MemberEvent,
  type Outcomes,
  type Recorder,
} from '../history.js';

/** The leases this process holds, by token: the store recorder reads their state at each write. */
export type LeaseRegistry = Map<string, Lease>;

function outcomes<O extends string>(results: readonly ItemResult<O>[]): Outcomes {
  const grouped: Record<string, string[]> = {};
  for (const r of results) (grouped[r.outcome] ??= []).push(r.id);
  return grouped;
}

/** A lease that records its release, its loss and its renewals. */
class RecordingLease implements Lease {
  readonly #inner: Lease;
  readonly #record: Recorder<MemberEvent>;
  readonly #token: string;
  #sampler: ReturnType<typeof setInterval> | undefined;

  constructor(inner: Lease, record: Recorder<MemberEvent>, ttlMs: number, registry: LeaseRegistry) {
    this.#inner = inner;
    this.#record = record;
    this.#token = inner.token.toString();
    registry.set(this.#token, inner);
    let deadline = inner.deadline;
    this.#sampler = setInterval(
      () => {
        if (inner.deadline === deadline) return;
        deadline = inner.deadline;
        record({ type: 'renew', token: this.#token, deadline: fromNow(deadline) });
      },
      Math.max(10, ttlMs / 8),
    );
    this.#sampler.unref();
    const onLost = (): void => {
      this.#stopSampling();
      record({ type: 'lease-lost', token: this.#token, error: errorRecord(inner.signal.reason) });
    };
    if (inner.signal.aborted) onLost();
    else inner.signal.addEventListener('abort', onLost, { once: true });
  }

  get name(): string {
    return this.#inner.name;
  }

  get token(): bigint {
    return this.#inner.token;
  }

  get signal(): AbortSignal {
    return this.#inner.signal;
  }

  get deadline(): number {
    return this.#inner.deadline;
  }

  async release(options?: CoordinatorCallOptions): Promise<void> {
    this.#stopSampling();
    this.#record({ type: 'release-start', token: this.#token });
    try {
      await this.#inner.release(options);
    } catch (error) {
      this.#record({ type: 'release-failed', token: this.#token, error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: 'release', token: this.#token });
  }

  #stopSampling(): void {
    clearInterval(this.#sampler);
    this.#sampler = undefined;
  }
}

/** A membership that records its loss and its leave. */
class RecordingMembership implements Membership {
  readonly #inner: Membership;
  readonly #record: Recorder<MemberEvent>;

  constructor(inner: Membership, record: Recorder<MemberEvent>) {
    this.#inner = inner;
    this.#record = record;
    const onLost = (): void =>
      record({
        type: 'membership-lost',
        incarnation: inner.incarnation,
        error: errorRecord(inner.signal.reason),
      });
    if (inner.signal.aborted) onLost();
    else inner.signal.addEventListener('abort', onLost, { once: true });
  }

  get group(): string {
    return this.#inner.group;
  }

  get memberId(): string {
    return this.#inner.memberId;
  }

  get incarnation(): string {
    return this.#inner.incarnation;
  }

  get signal(): AbortSignal {
    return this.#inner.signal;
  }

  async leave(options?: CoordinatorCallOptions): Promise<void> {
    const incarnation = this.#inner.incarnation;
    this.#record({ type: 'leave-start', incarnation });
    try {
      await this.#inner.leave(options);
    } catch (error) {
      this.#record({ type: 'leave-failed', incarnation, error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: 'leave', incarnation });
  }
}

/** A {@link Coordinator} that records every call in the history and forwards it. */
export class RecordingCoordinator implements Coordinator {
  readonly #inner: Coordinator;
  readonly #record: Recorder<MemberEvent>;
  readonly #registry: LeaseRegistry;

  constructor(inner: Coordinator, record: Recorder<MemberEvent>, registry: LeaseRegistry) {
    this.#inner = inner;
    this.#record = record;
    this.#registry = registry;
  }

  get capabilities(): CoordinatorCapabilities {
    return this.#inner.capabilities;
  }

  async acquire(name: string, options: AcquireOptions): Promise<Lease> {
    this.#record({ type: 'acquire-start', name });
    let lease: Lease;
    try {
      lease = await this.#inner.acquire(name, options);
    } catch (error) {
      this.#record({ type: 'acquire-failed', name, error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: 'acquire', name, token: lease.token.toString(), deadline: fromNow(lease.deadline) });
    return new RecordingLease(lease, this.#record, options.ttlMs, this.#registry);
  }

  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    this.#record({ type: 'join-start', group });
    let membership: Membership;
    try {
      membership = await this.#inner.join(group, memberId, options);
    } catch (error) {
      this.#record({ type: 'join-failed', error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: 'join', incarnation: membership.incarnation });
    return new RecordingMembership(membership, this.#record);
  }

  async members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    this.#record({ type: 'members-start' });
    let members: readonly MemberInfo[];
    try {
      members = await this.#inner.members(group, options);
    } catch (error) {
      this.#record({ type: 'members-failed', error: errorRecord(error) });
      throw error;
    }
    this.#record({
      type: 'members',
      members: members.map((m) => ({
        memberId: m.memberId,
        ...(m.expiresInMs === undefined ? {} : { expiresInMs: m.expiresInMs }),
      })),
    });
    return members;
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/**
 * A {@link WorkflowStore} that records every fence raise, park, unpark, notePaused and listParked in
 * the history.
 */
export class RecordingStore implements WorkflowStore {
  readonly #inner: WorkflowStore;
  readonly #record: Recorder<MemberEvent>;
  readonly #registry: LeaseRegistry;

  readonly #afterListActive: (() => void) | undefined;
  readonly #afterListing: ((what: 'active' | 'parked', items: number) => Promise<void>) | undefined;

  /**
   * @param afterListActive - runs when a listing of active workflows (the park step) has come back,
   *   before the caller hears of it: where the harness stalls a member on purpose.
   * @param afterListing - runs when a page of active (the park) or parked (the resume) workflows has
   *   come back, before the caller hears of it and writes: where a member armed with a host lock takes
   *   it.
   */
  constructor(
    inner: WorkflowStore,
    record: Recorder<MemberEvent>,
    registry: LeaseRegistry,
    afterListActive?: () => void,
    afterListing?: (what: 'active' | 'parked', items: number) => Promise<void>,
  ) {
    this.#inner = inner;
    this.#record = record;
    this.#registry = registry;
    this.#afterListActive = afterListActive;
    this.#afterListing = afterListing;
  }

  get capabilities(): WorkflowStoreCapabilities {
    return this.#inner.capabilities;
  }

  async listActive(options: ListOptions): Promise<Page<string>> {
    const page = await this.#inner.listActive(options);
    this.#afterListActive?.();
    await this.#afterListing?.('active', page.items.length);
    return page;
  }

  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    this.#record({ type: 'list-parked-start' });
    const page = await this.#inner.listParked(options);
    this.#record({
      type: 'list-parked',
      parked: page.items.map((p) => ({ id: p.id, state: p.state })),
      more: page.cursor !== undefined,
    });
    await this.#afterListing?.('parked', page.items.length);
    return page;
  }

  park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    return this.#write('park', ids, fence, () => this.#inner.park(ids, fence, options));
  }

  unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    return this.#write('unpark', ids, fence, () => this.#inner.unpark(ids, fence, options));
  }

  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    const token = fence.token === undefined ? null : fence.token.toString();
    this.#record({ type: 'fence-start', token });
    try {
      await this.#inner.raiseFence(fence, options);
    } catch (error) {
      this.#record({ type: 'fence-failed', token, error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: 'fence', token });
  }

  async notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    this.#record({ type: 'note-paused-start', ids });
    let results: readonly ItemResult<NotePausedOutcome>[];
    try {
      results = await this.#inner.notePaused(ids, options);
    } catch (error) {
      this.#record({ type: 'note-paused-failed', error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: 'note-paused', outcomes: outcomes(results) });
    return results;
  }

  diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    return this.#inner.diagnose?.(options) ?? Promise.resolve([]);
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  async #write<O extends string>(
    kind: 'park' | 'unpark',
    ids: readonly string[],
    fence: Fence,
    write: () => Promise<readonly ItemResult<O>[]>,
  ): Promise<readonly ItemResult<O>[]> {
    const token = fence.token === undefined ? null : fence.token.toString();
    const lease = token === null ? undefined : this.#registry.get(token);
    const atWrite: LeaseAtWrite | null =
      lease === undefined ? null : { aborted: lease.signal.aborted, deadline: fromNow(lease.deadline) };
    this.#record({ type: `${kind}-start`, token, ids, lease: atWrite });
    let results: readonly ItemResult<O>[];
    try {
      results = await write();
    } catch (error) {
      this.#record({ type: `${kind}-failed`, token, error: errorRecord(error) });
      throw error;
    }
    this.#record({ type: kind, token, outcomes: outcomes(results) });
    return results;
  }
}
