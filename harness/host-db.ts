/**
 * The host's database, as a workflow engine would have it: a `workflows` table (id, status, step,
 * steps, owner, lease_until, ...), a step log, and an audit log of status changes written by a trigger.
 * graceful-drain's stores map onto the `workflows` table (id and status columns) and keep their marks
 * apart. Two implementations: SQLite (`host-db-sqlite.ts`) and PostgreSQL (`host-db-postgres.ts`).
 *
 * Every write that must be atomic is one statement or one transaction, so that any number of worker
 * processes can share the table: a claim is one `UPDATE` that sets an owner and a lease; a step is
 * recorded, and the workflow advanced and released (or, for a sticky engine, kept under the next
 * step's owner), in one transaction that checks the owner first.
 *
 * The owner is `<worker id>#<n>`, new for every step; `lease_until` says until when a step may be in
 * flight. A paused workflow has no owner: a pause completes only once no step is in flight, and every
 * pause clears the owner, so that whatever resumes it (the library's unpark, a user) makes it runnable.
 */

/** The host's status values. graceful-drain's store is configured with the first three. */
export const STATUS = Object.freeze({
  running: 'running',
  pausing: 'pausing',
  paused: 'paused',
  succeeded: 'succeeded',
  /** Where crash recovery moves a workflow it recovered `maxRecoveries` times already. */
  failed: 'failed',
} as const);

/** A workflow's status. */
export type WorkflowStatus = (typeof STATUS)[keyof typeof STATUS];

/** The statuses graceful-drain's stores are configured with. */
export const STORE_STATUSES = Object.freeze({
  running: STATUS.running,
  pausing: STATUS.pausing,
  paused: STATUS.paused,
  failed: STATUS.failed,
});

/** The host table's name (and, for PostgreSQL, the table inside the run's schema). */
export const WORKFLOWS_TABLE = 'workflows';

/** A workflow claimed by one worker to run its next step. */
export interface Claim {
  /** The workflow. */
  readonly id: string;
  /** The step to run (0-based): the number of steps done so far. */
  readonly step: number;
  /** How many steps the workflow has. */
  readonly steps: number;
  /** The owner written by the claim: unique per claim, so a late commit of an old claim is refused. */
  readonly owner: string;
  /** When it was claimed (epoch ms). */
  readonly claimedAt: number;
}

/**
 * What recording a step did: `advanced` (the workflow runs on), `finished` (that was its last step),
 * `paused` (the workflow was `pausing`: the step was recorded and the pause completed), or `lost` (the
 * claim was no longer ours, its lease expired and was taken over: nothing recorded).
 */
export type CommitOutcome = 'advanced' | 'finished' | 'paused' | 'lost';

/** Counters of the table, for progress lines and the timeline. */
export interface Counts {
  readonly total: number;
  /** Status `running` (claimed or waiting). */
  readonly running: number;
  /** Running with a step in flight (a live claim). */
  readonly inFlight: number;
  readonly pausing: number;
  readonly paused: number;
  readonly succeeded: number;
  /** Steps recorded so far. */
  readonly stepsDone: number;
  /** Steps of every workflow. */
  readonly stepsTotal: number;
}

/** How a sticky engine keeps a workflow after a step: under the next step's owner and lease. */
export interface NextStep {
  readonly owner: string;
  readonly leaseMs: number;
}

/** A row of `workflows`. */
export interface WorkflowRow {
  readonly id: string;
  readonly status: string;
  readonly step: number;
  readonly steps: number;
  readonly owner: string | null;
}

/** What a commit writes to a workflow's row after its step (see {@link HostDb.commit}). */
export interface AfterStep {
  readonly outcome: Exclude<CommitOutcome, 'lost'>;
  readonly step: number;
  readonly status: string;
  /** `next`'s owner and lease end for a workflow that runs on under it; otherwise released (null). */
  readonly owner: string | null;
  readonly leaseUntil: number | null;
}

/**
 * What committing `row`'s step at `at` makes of it: the next step, finished after its last one, paused
 * when a pause was requested meanwhile; kept under `next` when it runs on, released otherwise.
 */
export function afterStep(
  row: Pick<WorkflowRow, 'status' | 'step' | 'steps'>,
  at: number,
  next: NextStep | undefined,
): AfterStep {
  const step = row.step + 1;
  const outcome: AfterStep['outcome'] =
    step >= row.steps ? 'finished' : row.status === STATUS.pausing ? 'paused' : 'advanced';
  const status =
    outcome === 'finished' ? STATUS.succeeded : outcome === 'paused' ? STATUS.paused : row.status;
  const keep = outcome === 'advanced' ? next : undefined;
  return {
    outcome,
    step,
    status,
    owner: keep?.owner ?? null,
    leaseUntil: keep === undefined ? null : at + keep.leaseMs,
  };
}

/** A row of the step log: one per step recorded. */
export interface StepLogRow {
  readonly seq: number;
  readonly workflowId: string;
  readonly step: number;
  readonly worker: string;
  readonly claim: string;
  readonly startedAt: number;
  readonly finishedAt: number;
}

/** A row of the status audit log, written by a trigger on every status change, whoever makes it. */
export interface StatusLogRow {
  readonly seq: number;
  readonly workflowId: string;
  readonly from: string;
  readonly to: string;
  readonly step: number;
  readonly at: number;
}

/**
 * A workflow a user paused: when, at which step, the audit row of that pause, and the claim of the step
 * that was in flight then (which may still finish and be recorded: the pause completes after it).
 */
export interface UserPauseRow {
  readonly workflowId: string;
  /** Steps done when the user paused it. */
  readonly step: number;
  /** The `seq` of the status log row of the pause: any later row of this workflow is a change after it. */
  readonly statusSeq: number;
  readonly pausedAt: number;
  /** The owner of the step in flight at the pause (the pause went through `pausing`), or `null`. */
  readonly claim: string | null;
}

/** Everything the checks read, taken at the end of a run. */
export interface HostSnapshot {
  readonly workflows: readonly WorkflowRow[];
  readonly stepLog: readonly StepLogRow[];
  readonly statusLog: readonly StatusLogRow[];
  readonly userPauses: readonly UserPauseRow[];
}

/** The host database: the engine's operations, and the orchestrator's. */
export interface HostDb {
  /** `sqlite` or `postgres`. */
  readonly kind: 'sqlite' | 'postgres';
  /** Creates the tables and the audit trigger (idempotent). */
  createSchema(): Promise<void>;
  /** Inserts workflows, all `running` at step 0. */
  seed(workflows: readonly { readonly id: string; readonly steps: number }[], at: number): Promise<void>;
  /**
   * Claims one runnable workflow (`running`, unowned or with an expired lease) for `leaseMs`, in one
   * `UPDATE`; the least recently advanced first, so workflows progress side by side.
   */
  claim(owner: string, leaseMs: number, at: number): Promise<Claim | undefined>;
  /**
   * Takes up one running workflow that no worker holds (no owner, whatever the lease), for a sticky
   * engine: its first step's lease is `leaseMs`. A workflow held by a worker that died stays held.
   */
  take(owner: string, leaseMs: number, at: number): Promise<Claim | undefined>;
  /**
   * In one transaction, if the claim is still ours: records the step in the step log, advances the
   * workflow (finishing it after its last step, completing a pause requested meanwhile) and releases it;
   * with `next`, a workflow that runs on (`advanced`) is kept under `next.owner` instead.
   */
  commit(
    claim: Claim,
    worker: string,
    startedAt: number,
    at: number,
    next?: NextStep,
  ): Promise<CommitOutcome>;
  /** Releases a claim whose step did not run (or was abandoned); `false` when it was no longer ours. */
  release(claim: Claim, at: number): Promise<boolean>;
  /**
   * Completes pauses the way a host does: a `pausing` workflow with no step in flight (no owner, or an
   * expired lease) becomes `paused`. Returns how many did.
   */
  completePauses(at: number): Promise<number>;
  /**
   * What a user could pause now: running workflows, except those running their last step (which would
   * finish rather than pause).
   */
  pauseCandidates(at: number): Promise<WorkflowRow[]>;
  /**
   * A user pauses `id` directly in the table, with no park mark, as a host's API would: `paused` at
   * once (the owner of a lapsed claim cleared), or `pausing` when a step is in flight (the engine
   * completes the pause after it). Recorded in `user_pauses`. `undefined` when it was no longer running.
   */
  userPause(id: string, at: number): Promise<UserPauseRow | undefined>;
  /** The counters, `at` deciding which leases are live. */
  counts(at: number): Promise<Counts>;
  /** The running workflows that have an owner (a step in flight, or held by a sticky engine), by id. */
  held(): Promise<WorkflowRow[]>;
  /** Everything the checks need. */
  snapshot(): Promise<HostSnapshot>;
  /** Closes what this instance opened. Idempotent. */
  close(): Promise<void>;
}

/**
 * The column of `workflows` naming the member that drives each workflow: the worker id of `owner`, kept
 * by a trigger whoever writes the owner (NULL with no owner). A store given `ownerColumn: OWNER_COLUMN`
 * has the owner capability (`listOwned`, `evictMembers`): live members recover a crashed peer's
 * workflows while the group runs (the demo's `--crash-peer`, the chaos fault `crash-peer`).
 */
export const OWNER_COLUMN = 'member';

/** The worker an owner (`<worker id>#<n>`) belongs to; `undefined` for no owner. */
export function ownerWorker(owner: string | null): string | undefined {
  if (owner === null) return undefined;
  const hash = owner.lastIndexOf('#');
  return hash === -1 ? owner : owner.slice(0, hash);
}

/** `wf-007` for 7 of 24 workflows: ids that sort in creation order. */
export function workflowId(index: number, total: number): string {
  return `wf-${String(index).padStart(Math.max(2, String(total).length), '0')}`;
}
