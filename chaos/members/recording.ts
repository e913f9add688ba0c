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
  GenerationEnd,
  GenerationMember,
  GenerationRecord,
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
  RecoverOptions,
  RecoverOutcome,
  StoreCallOptions,
  StoreWarning,
  UnparkOutcome,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from 'graceful-drain';
import {
  type ErrorRecord,
  errorRecord,
  fromNow,
  type LeaseAtWrite,
  type MemberEvent,
  type Outcomes,
  type Recorder,
} from '../history.js';

/** The leases this process holds, by token: the store recorder reads their state at each write. */
export type LeaseRegistry = Map<string, Lease>;

/** What a batch call of the store resolves. */
type Results<O extends string> = Promise<readonly ItemResult<O>[]>;

/** The fencing token of a write, as the history has it. */
function tokenOf(fence: Fence): string | null {
  return fence.token === undefined ? null : fence.token.toString();
}

function outcomes<O extends string>(results: readonly ItemResult<O>[]): Outcomes {
  const grouped: Record<string, string[]> = {};
  for (const r of results) (grouped[r.outcome] ??= []).push(r.id);
  return grouped;
}

/**
 * Records `start`, runs `call`, and records what it resolved (`done`), or how it failed (`failed`, and
 * the error is rethrown).
 */
async function recorded<T>(
  record: Recorder<MemberEvent>,
  start: MemberEvent,
  call: () => Promise<T>,
  failed: (error: ErrorRecord) => MemberEvent,
  done: (result: T) => MemberEvent,
): Promise<T> {
  record(start);
  let result: T;
  try {
    result = await call();
  } catch (error) {
    record(failed(errorRecord(error)));
    throw error;
  }
  record(done(result));
  return result;
}

/** Calls `onAbort` when `signal` aborts, or at once when it has. */
function onAborted(signal: AbortSignal, onAbort: () => void): void {
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
}

/** A lease that records its release, its loss and its renewals. */
function recordingLease(
  inner: Lease,
  record: Recorder<MemberEvent>,
  ttlMs: number,
  registry: LeaseRegistry,
): Lease {
  const token = inner.token.toString();
  registry.set(token, inner);
  let deadline = inner.deadline;
  const sampler = setInterval(
    () => {
      if (inner.deadline === deadline) return;
      deadline = inner.deadline;
      record({ type: 'renew', token, deadline: fromNow(deadline) });
    },
    Math.max(10, ttlMs / 8),
  );
  sampler.unref();
  onAborted(inner.signal, () => {
    clearInterval(sampler);
    record({ type: 'lease-lost', token, error: errorRecord(inner.signal.reason) });
  });
  return {
    name: inner.name,
    token: inner.token,
    signal: inner.signal,
    get deadline() {
      return inner.deadline;
    },
    release: async (options?: CoordinatorCallOptions): Promise<void> => {
      clearInterval(sampler);
      await recorded(
        record,
        { type: 'release-start', token },
        () => inner.release(options),
        (error) => ({ type: 'release-failed', token, error }),
        () => ({ type: 'release', token }),
      );
    },
  };
}

/** A membership that records its loss and its leave. */
function recordingMembership(inner: Membership, record: Recorder<MemberEvent>): Membership {
  const { incarnation } = inner;
  onAborted(inner.signal, () =>
    record({ type: 'membership-lost', incarnation, error: errorRecord(inner.signal.reason) }),
  );
  return {
    group: inner.group,
    memberId: inner.memberId,
    incarnation,
    signal: inner.signal,
    leave: (options?: CoordinatorCallOptions) =>
      recorded(
        record,
        { type: 'leave-start', incarnation },
        () => inner.leave(options),
        (error) => ({ type: 'leave-failed', incarnation, error }),
        () => ({ type: 'leave', incarnation }),
      ),
  };
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
    const lease = await recorded(
      this.#record,
      { type: 'acquire-start', name },
      () => this.#inner.acquire(name, options),
      (error) => ({ type: 'acquire-failed', name, error }),
      (l) => ({ type: 'acquire', name, token: l.token.toString(), deadline: fromNow(l.deadline) }),
    );
    return recordingLease(lease, this.#record, options.ttlMs, this.#registry);
  }

  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    const membership = await recorded(
      this.#record,
      { type: 'join-start', group },
      () => this.#inner.join(group, memberId, options),
      (error) => ({ type: 'join-failed', error }),
      (m) => ({ type: 'join', incarnation: m.incarnation }),
    );
    return recordingMembership(membership, this.#record);
  }

  members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    return recorded(
      this.#record,
      { type: 'members-start' },
      () => this.#inner.members(group, options),
      (error) => ({ type: 'members-failed', error }),
      (members) => ({
        type: 'members',
        members: members.map((m) => ({
          memberId: m.memberId,
          ...(m.expiresInMs === undefined ? {} : { expiresInMs: m.expiresInMs }),
        })),
      }),
    );
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/**
 * A {@link WorkflowStore} that records every fence raise, park, unpark, notePaused and listParked in
 * the history; and, when the store can recover, every read and change of the generation record and
 * every `recover()`.
 */
export class RecordingStore implements WorkflowStore {
  readonly #inner: WorkflowStore;
  readonly #record: Recorder<MemberEvent>;
  readonly #registry: LeaseRegistry;
  readonly readGeneration?: (group: string, options?: StoreCallOptions) => Promise<GenerationRecord>;
  readonly enterGeneration?: (
    group: string,
    member: GenerationMember,
    fence: Fence,
    options?: StoreCallOptions,
  ) => Promise<void>;
  readonly leaveGeneration?: (
    group: string,
    memberIds: readonly string[],
    end: GenerationEnd,
    fence: Fence,
    options?: StoreCallOptions,
  ) => Promise<void>;
  readonly recover?: (
    ids: readonly string[],
    fence: Fence,
    options: RecoverOptions,
  ) => Results<RecoverOutcome>;
  readonly listOwned?: (memberIds: readonly string[], options: ListOptions) => Promise<Page<string>>;
  readonly evictMembers?: (
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options?: StoreCallOptions,
  ) => Promise<void>;

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
    // Only a store that can recover gets the four methods: the controller tells by their presence.
    const { readGeneration, enterGeneration, leaveGeneration, recover } = inner;
    this.#owners(inner, record);
    if (
      readGeneration === undefined ||
      enterGeneration === undefined ||
      leaveGeneration === undefined ||
      recover === undefined
    )
      return;
    this.readGeneration = async (group, options) => {
      const r = await readGeneration.call(inner, group, options);
      record({
        type: 'generation-read',
        generation: r.generation,
        members: r.members.map((m) => ({ memberId: m.memberId, incarnation: m.incarnation })),
        dirty: r.dirty,
      });
      return r;
    };
    const written = async (
      op: 'enter' | 'leave',
      fence: Fence,
      memberIds: readonly string[],
      end: GenerationEnd | undefined,
      write: () => Promise<void>,
    ): Promise<void> => {
      const base = {
        type: 'generation-write',
        op,
        token: tokenOf(fence),
        memberIds,
        ...(end === undefined ? {} : { end }),
      } as const;
      try {
        await write();
      } catch (error) {
        record({ ...base, error: errorRecord(error) });
        throw error;
      }
      record(base);
    };
    this.enterGeneration = (group, member, fence, options) =>
      written('enter', fence, [member.memberId], undefined, () =>
        enterGeneration.call(inner, group, member, fence, options),
      );
    this.leaveGeneration = (group, memberIds, end, fence, options) =>
      written('leave', fence, memberIds, end, () =>
        leaveGeneration.call(inner, group, memberIds, end, fence, options),
      );
    this.recover = (ids, fence, options) => {
      const token = tokenOf(fence);
      return recorded(
        record,
        {
          type: 'recover-start',
          token,
          ids,
          lease: this.#leaseAtWrite(token),
          mode: options.mode,
          maxRecoveries: options.maxRecoveries,
        },
        () => recover.call(inner, ids, fence, options),
        (error) => ({ type: 'recover-failed', token, error }),
        (results) => ({ type: 'recover', token, outcomes: outcomes(results) }),
      );
    };
  }

  /** The owner capability, passed through (the controller tells it by the presence of both methods). */
  #owners(inner: WorkflowStore, record: Recorder<MemberEvent>): void {
    const { listOwned, evictMembers } = inner;
    if (listOwned === undefined || evictMembers === undefined) return;
    Object.assign(this, {
      listOwned: (memberIds: readonly string[], options: ListOptions) =>
        listOwned.call(inner, memberIds, options),
      evictMembers: async (
        group: string,
        members: readonly GenerationMember[],
        fence: Fence,
        options?: StoreCallOptions,
      ) => {
        const base = {
          type: 'evict',
          token: tokenOf(fence),
          members: members.map((m) => ({ memberId: m.memberId, incarnation: m.incarnation })),
        } as const;
        try {
          await evictMembers.call(inner, group, members, fence, options);
        } catch (error) {
          record({ ...base, error: errorRecord(error) });
          throw error;
        }
        record(base);
      },
    });
  }

  /** Where the lease of `token` stood as a write was sent. */
  #leaseAtWrite(token: string | null): LeaseAtWrite | null {
    const lease = token === null ? undefined : this.#registry.get(token);
    return lease === undefined ? null : { aborted: lease.signal.aborted, deadline: fromNow(lease.deadline) };
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

  park(ids: readonly string[], fence: Fence, options?: StoreCallOptions): Results<ParkOutcome> {
    return this.#write('park', ids, fence, () => this.#inner.park(ids, fence, options));
  }

  unpark(ids: readonly string[], fence: Fence, options?: StoreCallOptions): Results<UnparkOutcome> {
    return this.#write('unpark', ids, fence, () => this.#inner.unpark(ids, fence, options));
  }

  raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    const token = tokenOf(fence);
    return recorded(
      this.#record,
      { type: 'fence-start', token },
      () => this.#inner.raiseFence(fence, options),
      (error) => ({ type: 'fence-failed', token, error }),
      () => ({ type: 'fence', token }),
    );
  }

  notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    return recorded(
      this.#record,
      { type: 'note-paused-start', ids },
      () => this.#inner.notePaused(ids, options),
      (error) => ({ type: 'note-paused-failed', error }),
      (results) => ({ type: 'note-paused', outcomes: outcomes(results) }),
    );
  }

  diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    return this.#inner.diagnose?.(options) ?? Promise.resolve([]);
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  #write<O extends string>(
    kind: 'park' | 'unpark',
    ids: readonly string[],
    fence: Fence,
    write: () => Results<O>,
  ): Results<O> {
    const token = tokenOf(fence);
    return recorded(
      this.#record,
      { type: `${kind}-start`, token, ids, lease: this.#leaseAtWrite(token) },
      write,
      (error) => ({ type: `${kind}-failed`, token, error }),
      (results) => ({ type: kind, token, outcomes: outcomes(results) }),
    );
  }
}
