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

/** A configuration at odds with the host's data, for example a status mapping that matches no row. */
export interface StoreWarning {
  /** A stable code: `status-mismatch` when the configured statuses match no row of the host's table. */
  readonly code: 'status-mismatch';
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
  /** Lists parked workflows with their state, a page at a time. */
  listParked(options: ListOptions): Promise<Page<ParkedWorkflow>>;
  /** Resumes and unmarks a batch of parked workflows; one result per id, in the order given. */
  unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]>;
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
  /** Releases what the store created. Idempotent; never throws. Optional. */
  close?(): Promise<void>;
}
