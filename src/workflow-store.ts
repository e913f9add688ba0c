/**
 * # The WorkflowStore contract
 *
 * The host's view of its workflows. graceful-drain never interprets a workflow: it knows an id, the
 * host's state of it (running, pausing, paused, or something else), and its own parked-by-shutdown mark.
 *
 * ## What a store guarantees
 *
 * - **Active** workflows are those the host runs (status running). `listActive()` returns them a page
 *   at a time, in a stable order, resuming after `cursor`. A parked workflow is paused or pausing, so it
 *   is not active; a mark left on a running workflow (a user resumed it without an unpark) is stale.
 * - **`park(ids, fence, { signal })`** requests a pause of each workflow that is still running and records a
 *   parked-by-shutdown mark (member id and fencing token) kept apart from the host's own pause state.
 *   Per id the outcome is `paused` (paused now), `pausing` (the host is still winding it down) or
 *   `skipped` (not running, unknown, or already parked: parking twice is a no-op). A stale mark on a
 *   running workflow is replaced. The marks and the pause requests of one call are written together
 *   or not at all.
 * - **`listParked()`** returns the marked workflows with the host's state of each: `pausing`,
 *   `paused`, or `other` (a user cancelled, completed or resumed it since), a page at a time.
 * - **`unpark(ids, fence, { signal })`** resumes each workflow that is still paused *and* marked, and
 *   clears the mark: `resumed`. A marked workflow that is no longer paused has its mark cleared and
 *   nothing else done: `skipped`. A workflow still `pausing` keeps its mark: `skipped` (it is unparked
 *   later). A workflow a user paused carries no mark and is never resumed.
 * - **A mark belongs to the pause it created.** Any move of the host's status away from `pausing` or
 *   `paused` (a user resumed, cancelled or completed it) drops the mark, with no change to the host's
 *   code, so a later pause by a user is never undone. A user who pauses a workflow that is already
 *   parked (the status does not change) is told apart through **`notePaused(ids)`**, which the host's
 *   own "pause" path calls: it drops the marks of those ids, and the library never resumes them.
 * - **Fencing.** A store that can (see `fencing`) remembers the highest token it has seen and rejects a
 *   write carrying a lower one with `StaleTokenError`, writing nothing. A write without a token
 *   (`token: undefined`) is accepted unfenced. **`raiseFence(fence)`** records a token without writing
 *   anything else: the next holder of the start-stop lock calls it before it reads, so a write sent
 *   under an older token and delayed in flight is rejected when it lands.
 * - **Cancellation.** Every call takes an `AbortSignal`. When it aborts, the store stops retrying and
 *   rolls back what it has not committed, then rejects with `signal.reason`: nothing the caller gave up
 *   on lands later (a commit already on its way is caught by the fence above).
 * - Every operation is idempotent, batched and paged, so memory stays flat at a million workflows.
 *
 * ## What it leaves out
 *
 * Running workflows: the host does that. Deciding who is last: the protocol does that.
 * Connections: a store never closes a client or a database handle the user passed in.
 *
 * Use `workflowStoreContract()` from `graceful-drain/testing` to check a store against this contract.
 *
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
  /**
   * Cancels the call: the store stops retrying, rolls back what it has not committed, and rejects
   * with `signal.reason`.
   */
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
  /** The items of this page. */
  readonly items: readonly T[];
  /** Pass as `cursor` to get the next page; `undefined` when this was the last page. */
  readonly cursor: string | undefined;
}

/** A parked workflow, as {@link WorkflowStore.listParked} lists it. */
export interface ParkedWorkflow {
  /** The workflow's id. */
  readonly id: string;
  /** The host's state of it. */
  readonly state: ParkedState;
  /** The member that parked it. */
  readonly memberId: string;
  /** The token it was parked under, if any. */
  readonly token: bigint | undefined;
}

/** The result of parking or unparking one workflow. */
export interface ItemResult<O extends string> {
  /** The workflow's id. */
  readonly id: string;
  /** What happened to it. */
  readonly outcome: O;
}

/** The outcome of {@link WorkflowStore.notePaused} for one workflow. */
export type NotePausedOutcome = 'released' | 'skipped';

/**
 * Something a store noticed about its configuration that would make the hand-off do nothing, or the
 * wrong thing: for example a status mapping that matches no row of a non-empty table.
 */
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

/** The host's workflows, seen through ids and states. See the contract at the top of this file. */
export interface WorkflowStore {
  /** What this store can guarantee. */
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
   * Tells the store that a user paused these workflows: the parked-by-shutdown mark of each is dropped
   * (`released`), so the library never resumes it; `skipped` when it carried no mark. Call it from
   * the host's own "pause" path. One result per id, in the order given.
   */
  notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]>;
  /**
   * Checks the store's configuration against the host's data, for example that the status mapping
   * matches the values the host's table holds. Optional; the controller calls it at start and reports
   * each warning.
   */
  diagnose?(options?: StoreCallOptions): Promise<readonly StoreWarning[]>;
  /** Releases what the store created. Idempotent; never throws. Optional. */
  close?(): Promise<void>;
}
