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
 * - **`park(ids, fence)`** requests a pause of each workflow that is still running and records a
 *   parked-by-shutdown mark (member id and fencing token) kept apart from the host's own pause state.
 *   Per id the outcome is `paused` (paused now), `pausing` (the host is still winding it down) or
 *   `skipped` (not running, unknown, or already parked: parking twice is a no-op). A stale mark on a
 *   running workflow is replaced. The marks and the pause requests of one call are written together
 *   or not at all.
 * - **`listParked()`** returns the marked workflows with the host's state of each: `pausing`,
 *   `paused`, or `other` (a user cancelled, completed or resumed it since), a page at a time.
 * - **`unpark(ids, fence)`** resumes each workflow that is still paused *and* marked, and clears the
 *   mark: `resumed`. A marked workflow that is no longer paused has its mark cleared and nothing else
 *   done: `skipped`. A workflow still `pausing` keeps its mark: `skipped` (it is unparked later).
 *   A workflow a user paused carries no mark and is never resumed.
 * - **Fencing.** A store that can (see `fencing`) remembers the highest token it has seen and rejects a
 *   write carrying a lower one with `StaleTokenError`, writing nothing. A write without a token
 *   (`token: undefined`) is accepted unfenced.
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

/** Options of the listing methods. */
export interface ListOptions {
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
  park(ids: readonly string[], fence: Fence): Promise<readonly ItemResult<ParkOutcome>[]>;
  /** Lists parked workflows with their state, a page at a time. */
  listParked(options: ListOptions): Promise<Page<ParkedWorkflow>>;
  /** Resumes and unmarks a batch of parked workflows; one result per id, in the order given. */
  unpark(ids: readonly string[], fence: Fence): Promise<readonly ItemResult<UnparkOutcome>[]>;
  /** Releases what the store created. Idempotent; never throws. Optional. */
  close?(): Promise<void>;
}
