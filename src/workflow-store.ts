/**
 * The WorkflowStore contract (docs/workflow-store.md): the host's workflows through ids, states and a
 * parked-by-shutdown mark kept apart from the host's pause state. One call's marks and states are written
 * together or not at all; a mark belongs to the pause it created, so a user's pause is never undone; a
 * fencing store rejects a lower token than one it has seen; every call is idempotent, batched, paged, and
 * rolls back when its signal aborts; a client the user passed in is never closed.
 * `workflowStoreContract()` (`graceful-drain/testing`) checks a store.
 * @packageDocumentation
 */

/** The outcome of parking one workflow. */
export type ParkOutcome = 'paused' | 'pausing' | 'skipped';

/** The outcome of unparking one workflow. */
export type UnparkOutcome = 'resumed' | 'skipped';

/** The host's state of a parked workflow. */
export type ParkedState = 'pausing' | 'paused' | 'other';

/** Who writes, under which fencing token. */
export interface Fence {
  /** The member writing. */
  readonly memberId: string;
  /** The lease's fencing token; `undefined` writes unfenced. */
  readonly token: bigint | undefined;
  /**
   * The writer's incarnation (its membership's), when it has one. A store with the owner capability
   * ({@link WorkflowStore.evictMembers}) rejects every call whose incarnation was evicted, with
   * `EvictedMemberError`, before it writes anything.
   */
  readonly incarnation?: string | undefined;
}

/** Options every store call takes. */
export interface StoreCallOptions {
  /** Cancels the call: the store stops retrying, rolls back what it has not committed and rejects. */
  readonly signal?: AbortSignal | undefined;
}

/** Options of the listing methods. */
export interface ListOptions extends StoreCallOptions {
  /** The page size: at most this many items. */
  readonly limit: number;
  /** Resume after this cursor (from the previous page); omit for the first page. */
  readonly cursor?: string | undefined;
}

/** A page of results. */
export interface Page<T> {
  readonly items: readonly T[];
  /** Pass as `cursor` to get the next page; `undefined` when this was the last page. */
  readonly cursor: string | undefined;
}

/** A parked workflow, as {@link WorkflowStore.listParked} lists it. */
export interface ParkedWorkflow {
  readonly id: string;
  readonly state: ParkedState;
  /** The member that parked it. */
  readonly memberId: string;
  /** The token it was parked under, if any. */
  readonly token: bigint | undefined;
}

/** The result of parking or unparking one workflow. */
export interface ItemResult<O extends string> {
  readonly id: string;
  readonly outcome: O;
}

/** The outcome of {@link WorkflowStore.notePaused} for one workflow. */
export type NotePausedOutcome = 'released' | 'skipped';

/** A member registered as running in a group's generation record. */
export interface GenerationMember {
  readonly memberId: string;
  /** The incarnation of its membership: a restarted member under the same id is another incarnation. */
  readonly incarnation: string;
}

/** A group's generation record: who runs, and whether the last park was cut short. See docs/protocol.md. */
export interface GenerationRecord {
  /** Raised by one each time a generation ends cleanly (a complete park, or a complete recovery). */
  readonly generation: number;
  /** The members registered as running, by id. */
  readonly members: readonly GenerationMember[];
  /** A last member's park was cut short: workflows may be left running. */
  readonly dirty: boolean;
}

/**
 * How {@link WorkflowStore.leaveGeneration} ends the generation: `none` only removes the members;
 * `clean` also clears `dirty`, raises `generation` and resets every workflow's recovery count; `dirty`
 * also sets `dirty`.
 */
export type GenerationEnd = 'none' | 'clean' | 'dirty';

/** The outcome of recovering one workflow. */
export type RecoverOutcome = 'paused' | 'pausing' | 'counted' | 'failed' | 'skipped';

/** Options of {@link WorkflowStore.recover}. */
export interface RecoverOptions extends StoreCallOptions {
  /** `park`: pause and mark each, as `park()` does, so that unpark resumes it; `count`: only count it. */
  readonly mode: 'park' | 'count';
  /** A workflow recovered this many times already moves to the host's failed status instead. */
  readonly maxRecoveries: number;
}

/** The result of {@link WorkflowStore.parkPage}: the workflows one page listed, each parked or skipped. */
export interface ParkPage {
  /** One result per active workflow the page listed, in id order. */
  readonly results: readonly ItemResult<ParkOutcome>[];
  /** Pass as `cursor` to get the next page; `undefined` when this was the last page. */
  readonly cursor: string | undefined;
}

/** The result of {@link WorkflowStore.unparkPage}: the parked workflows one page listed. */
export interface UnparkPage {
  /** One result per listed workflow not `pausing` (those were unparked or skipped), in id order. */
  readonly results: readonly ItemResult<UnparkOutcome>[];
  /** How many listed workflows were still `pausing`: left parked, for a later round. */
  readonly pausing: number;
  /** Pass as `cursor` to get the next page; `undefined` when this was the last page. */
  readonly cursor: string | undefined;
}

/** Options of {@link WorkflowStore.recoverPage}: a page's, and how to recover it. */
export interface RecoverPageOptions extends ListOptions {
  /** As {@link RecoverOptions.mode}. */
  readonly mode: 'park' | 'count';
  /** As {@link RecoverOptions.maxRecoveries}. */
  readonly maxRecoveries: number;
}

/** The result of {@link WorkflowStore.recoverPage}: the running workflows one page listed, each recovered. */
export interface RecoverPage {
  /** One result per running workflow the page listed, in id order. */
  readonly results: readonly ItemResult<RecoverOutcome>[];
  /** Pass as `cursor` to get the next page; `undefined` when this was the last page. */
  readonly cursor: string | undefined;
}

/** A configuration at odds with the host's data, or a capability missing, reported at start. */
export interface StoreWarning {
  /**
   * A stable code: `status-mismatch` when the configured statuses match no row of the host's table;
   * `no-recovery` when the store keeps no generation record (a crash of the last member strands its
   * running workflows); `recovery` when the start could not check for, or finish, a crash recovery.
   */
  readonly code: 'status-mismatch' | 'no-recovery' | 'recovery';
  /** What is wrong, naming the option and the values seen. */
  readonly message: string;
}

/** What a store can guarantee. */
export interface WorkflowStoreCapabilities {
  /** `monotonic` when stale tokens are rejected; `none` when tokens are recorded but not checked. */
  readonly fencing: 'monotonic' | 'none';
}

/** The host's workflows, seen through ids and states. See docs/workflow-store.md for the contract. */
export interface WorkflowStore {
  readonly capabilities: WorkflowStoreCapabilities;
  /** Lists active (running) workflows, a page at a time. */
  listActive(options: ListOptions): Promise<Page<string>>;
  /** Pauses and marks a batch of workflows; one result per id, in the order given. */
  park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]>;
  /**
   * Optional, for speed: `listActive(options)` and `park()` of the ids it lists, fenced, in one
   * transaction (one set-based statement where the database allows). The same outcomes, cursor, fencing,
   * marks and signal handling as the two calls; the controller uses it when present.
   */
  parkPage?(fence: Fence, options: ListOptions): Promise<ParkPage>;
  /** Lists parked workflows with their state, a page at a time. */
  listParked(options: ListOptions): Promise<Page<ParkedWorkflow>>;
  /** Resumes and unmarks a batch of parked workflows; one result per id, in the order given. */
  unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]>;
  /**
   * Optional, for speed: `listParked(options)` and `unpark()` of the listed ids not `pausing`, fenced, in
   * one transaction; the `pausing` ones are counted and left parked. The same outcomes, cursor, fencing
   * and signal handling as the two calls; the controller uses it when present.
   */
  unparkPage?(fence: Fence, options: ListOptions): Promise<UnparkPage>;
  /**
   * Records `fence.token` as seen, writing nothing else; rejects with `StaleTokenError` when a higher
   * token was seen already. A no-op for `token: undefined` and for a store without fencing.
   */
  raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void>;
  /**
   * Tells the store a user paused these workflows (call it from the host's own pause path): each mark is
   * dropped (`released`, never resumed by the library), `skipped` without one. One result per id, in order.
   */
  notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]>;
  /** Optional: checks the configuration against the host's data; each warning is reported at start. */
  diagnose?(options?: StoreCallOptions): Promise<readonly StoreWarning[]>;
  /**
   * Crash recovery (optional: all four methods or none). Reads `group`'s generation record; a group never
   * seen reads `{ generation: 0, members: [], dirty: false }`.
   */
  readGeneration?(group: string, options?: StoreCallOptions): Promise<GenerationRecord>;
  /** Registers `member` as running in `group`, replacing an entry with the same id. Fenced. */
  enterGeneration?(
    group: string,
    member: GenerationMember,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void>;
  /** Removes the entries of `memberIds` (absent ones ignored) and ends the generation as `end` says. Fenced. */
  leaveGeneration?(
    group: string,
    memberIds: readonly string[],
    end: GenerationEnd,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void>;
  /**
   * Hands back workflows a crash left running, one result per id, in order, in one transaction: not
   * running, `skipped`; recovered `maxRecoveries` times already, moved to the host's failed status,
   * `failed`; otherwise counted, then parked (`paused` or `pausing`) or only counted (`counted`). Fenced.
   */
  recover?(
    ids: readonly string[],
    fence: Fence,
    options: RecoverOptions,
  ): Promise<readonly ItemResult<RecoverOutcome>[]>;
  /**
   * Optional, for speed, on a store with `recover`: `listActive(options)` and `recover()` of the ids it
   * lists, fenced, in one transaction. The same outcomes, cursor, fencing, counts and signal handling as
   * the two calls; the start gate uses it when present.
   */
  recoverPage?(fence: Fence, options: RecoverPageOptions): Promise<RecoverPage>;
  /**
   * Owner-aware recovery (optional: `listOwned` and `evictMembers` together, on a store that keeps the
   * generation record). Lists the running workflows whose owner, as the host records it (for example an
   * owner column holding the member id of the worker that drives it), is one of `memberIds`, a page at a
   * time, ordered by id.
   */
  listOwned?(memberIds: readonly string[], options: ListOptions): Promise<Page<string>>;
  /**
   * Removes these members' entries from `group`'s generation record (an entry only when its incarnation
   * is the one given: a restarted member's newer entry stays; absent ones ignored) and records
   * their incarnations as evicted, for good: from then on every call whose `fence.incarnation` is one of
   * them rejects with `EvictedMemberError` and writes nothing (`enterGeneration` included, so an evicted
   * incarnation never registers again). Idempotent. Fenced.
   */
  evictMembers?(
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void>;
  /** Releases what the store created. Idempotent; never throws. Optional. */
  close?(): Promise<void>;
}
