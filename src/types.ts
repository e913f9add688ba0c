/**
 * The public types of a `DrainController`: its states, task context, method options and events.
 * @packageDocumentation
 */
import type { ParkProgress, RecoveryReport, ResumeProgress, ShutdownReport } from './report.js';
import type { StoreWarning } from './workflow-store.js';

/**
 * The lifecycle of a `DrainController`:
 *
 * - `idle`: created, intake closed; `track()` rejects until `start()`.
 * - `starting`: `start()` is joining the group and, with a store that can, checking for a crash to recover
 *   (with a coordinator); `track()` still rejects.
 * - `running`: intake open, `ready` is true; with a coordinator, parked workflows resume in the background.
 * - `draining`: shutdown began: intake closed, `ready` false, in-flight work winding down.
 * - `handing-off`: the drain is over; leaving the group and, if this member is last, parking workflows.
 * - `stopped`: the shutdown finished; its report is final.
 * - `failed`: `start()` failed (for example the group could not be joined); `shutdown()` still works.
 */
export type DrainState = 'idle' | 'starting' | 'running' | 'draining' | 'handing-off' | 'stopped' | 'failed';

/** What every tracked function receives. One object, shared by every task. */
export interface TaskContext {
  /** Aborted at the drain deadline ("stop now") with a `DrainTimeoutError` (or `DrainForcedError`) reason. */
  readonly signal: AbortSignal;
  /** Aborted when shutdown begins ("wrap up"): finish the current step, take no new one. */
  readonly stopping: AbortSignal;
}

/** Options of `DrainController.track`. */
export interface TrackOptions {
  /** A name for the task, reported when it is aborted or left behind as a straggler. */
  readonly label?: string;
}

/** Options of `DrainController.shutdown`. */
export interface ShutdownOptions {
  /** Escalate: abort every task's `signal` now and await nothing more. @defaultValue `false` */
  readonly force?: boolean;
  /** Why the shutdown happens (for example the signal's name); recorded in the report. */
  readonly reason?: string;
}

/** Options of `DrainController.onIdle`. */
export interface OnIdleOptions {
  /** Stops waiting: the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/**
 * The events a `DrainController` emits, with their arguments. A listener that throws is logged and
 * changes nothing else: the next listeners still run.
 */
export interface DrainEvents {
  /**
   * The state changed. A change made by a listener (`shutdown()` on `running`) is sent once the change
   * being sent has reached every listener: each sees the states in order.
   */
  stateChange: [change: { readonly from: DrainState; readonly to: DrainState }];
  /** Everything in flight settled before the drain deadline. */
  drained: [info: { readonly durationMs: number; readonly completed: number }];
  /** The drain deadline passed with tasks in flight; their `signal` was aborted. */
  drainTimeout: [info: { readonly inFlight: number; readonly labels: readonly string[] }];
  /** The shutdown was escalated with `force` (or a second signal). */
  escalate: [info: { readonly reason: string | undefined; readonly inFlight: number }];
  /** A batch of workflows was parked at shutdown. */
  park: [progress: ParkProgress];
  /**
   * The start gate found registered members dead, or a park cut short: what it recovered (before intake
   * opened); or a periodic peer check evicted crashed peers and handed their workflows back (reason
   * `peer-crash`), or failed.
   */
  recovery: [report: RecoveryReport];
  /** A round of the background resume at start finished. */
  resume: [progress: ResumeProgress];
  /** This member's group membership was lost; the controller re-joins with a new incarnation. */
  membershipLost: [error: unknown];
  /** The last task in flight settled. A listener that throws is logged and changes nothing else. */
  idle: [];
  /** The store's configuration is at odds with the host's data; without a listener, `process.emitWarning`. */
  warning: [warning: StoreWarning];
  /** The shutdown finished. */
  stopped: [report: ShutdownReport];
}
