import { serializeError } from './errors.js';
import type { StoreWarning } from './workflow-store.js';

/** The phases of a shutdown, in the order they run. */
export type PhaseName =
  | 'stop-intake'
  | 'drain'
  | 'grace'
  | 'resume-wind-down'
  | 'leave'
  | 'lock'
  | 'members'
  | 'park'
  | 'generation'
  | 'release';

/** One phase of a shutdown and how long it took. */
export interface PhaseReport {
  readonly name: PhaseName;
  /** How long it took, in milliseconds (monotonic clock). */
  readonly durationMs: number;
  /** `ok`, or why it ended otherwise: `timeout`, `error`, `forced`, `skipped`. */
  readonly outcome: 'ok' | 'timeout' | 'error' | 'forced' | 'skipped';
}

/** An error met during a shutdown, with the phase it was met in. */
export interface ReportedError {
  /** The phase, or `intake-stopper` for an intake stopper that threw or hung. */
  readonly phase: PhaseName | 'intake-stopper';
  /** The error itself (never swallowed). */
  readonly error: unknown;
}

/** Why the hand-off did or did not park. */
export type HandOffDecision =
  /** No coordinator or store was configured: there is no hand-off. */
  | 'disabled'
  /** This member never joined its group (`start()` not called, failed or cancelled): it hands nothing off. */
  | 'not-joined'
  /** A live peer remains: it keeps running the group's workflows. */
  | 'peers-remain'
  /** This member was the last: it parked the active workflows. */
  | 'parked'
  /** The coordinator could not be reached and the policy is `skip`. */
  | 'unreachable-skipped'
  /** The coordinator could not be reached and the policy is `park`: parked unfenced. */
  | 'unreachable-parked'
  /** The start-stop lock could not be taken within the budget. */
  | 'lock-timeout'
  /** The lease was lost while parking: parking stopped before the next batch. */
  | 'lease-lost'
  /** The store kept failing (listing or parking) until the budget ran out, retries included. */
  | 'error'
  /** The budget ran out, or the shutdown was forced, before the hand-off could finish. */
  | 'aborted'
  /**
   * The store rejected this member's writes with `EvictedMemberError`: its membership had expired and a
   * live member recovered its workflows. It parked nothing; its workflows are another member's now.
   */
  | 'evicted';

/** What a shutdown did, exactly. Every caller of `shutdown()` gets the same report. */
export interface ShutdownReport {
  /** The reason given to `shutdown()` (for example the signal's name). */
  readonly reason: string | undefined;
  /** `clean` when everything in flight settled and nothing failed; otherwise why not. */
  readonly outcome: 'clean' | 'timed-out' | 'forced' | 'failed';
  /** Whether the shutdown was escalated with `force`. */
  readonly forced: boolean;
  /** From `shutdown()` to this report, in milliseconds. */
  readonly durationMs: number;
  /** The phases that ran, in order. */
  readonly phases: readonly PhaseReport[];
  /** Tasks in flight when the shutdown began. */
  readonly inFlightAtStart: number;
  /** Of those, how many settled before the drain deadline. */
  readonly completed: number;
  /** Tasks still in flight at the drain deadline, whose `signal` was aborted. */
  readonly aborted: number;
  /** The labels of the aborted tasks that had one. */
  readonly abortedLabels: readonly string[];
  /** Tasks still in flight when the shutdown gave up on them (after the grace). */
  readonly stragglers: number;
  /** The labels of the stragglers that had one. */
  readonly stragglerLabels: readonly string[];
  /** Whether this member was the last of its group; `undefined` when it could not be told. */
  readonly lastMember: boolean | undefined;
  /** What the hand-off decided. */
  readonly handOff: HandOffDecision;
  /** Workflows parked by this member. */
  readonly parked: number;
  /** Of those, how many the host was still winding down (`pausing`) when parked. */
  readonly stillPausing: number;
  /** The fencing token the parking ran under, if any. */
  readonly token: bigint | undefined;
  /** What the store reported about its configuration at start (see `WorkflowStore.diagnose`). */
  readonly warnings: readonly StoreWarning[];
  /** Every error met on the way, in order. */
  readonly errors: readonly ReportedError[];
  /** What `JSON.stringify(report)` renders: `token` a string, errors as `{ name, code, message, cause }`. */
  toJSON(): Record<string, unknown>;
}

/** Progress of a park, emitted after every batch. */
export interface ParkProgress {
  /** Workflows parked so far. */
  readonly parked: number;
  /** Of those, how many were still `pausing`. */
  readonly stillPausing: number;
  /** Workflows skipped so far (no longer running). */
  readonly skipped: number;
  /** The fencing token, if any. */
  readonly token: bigint | undefined;
}

/** What the background resume at start did. */
export interface ResumeReport {
  /** Workflows resumed. */
  readonly resumed: number;
  /** Marks cleared without resuming (a user cancelled, resumed or re-paused them meanwhile). */
  readonly skipped: number;
  /** Parked workflows still `pausing` when the resume ended (0 when it finished). */
  readonly stillPausing: number;
  /** How many rounds ran (each under the start-stop lock). */
  readonly rounds: number;
  /** Whether every parked workflow was handled. */
  readonly complete: boolean;
  /** What the store reported about its configuration (see `WorkflowStore.diagnose`). */
  readonly warnings: readonly StoreWarning[];
  /** What the start gate found of a crash and did about it; `undefined` when the store cannot recover. */
  readonly recovery: RecoveryReport | undefined;
  /** Every error met on the way. */
  readonly errors: readonly unknown[];
  /** What `JSON.stringify(report)` renders: errors as `{ name, code, message, cause }`. */
  toJSON(): Record<string, unknown>;
}

/**
 * What a crash recovery found and did: the start gate's (before intake opened), or a periodic peer check's
 * (reason `peer-crash`, while the group runs). See docs/protocol.md.
 */
export interface RecoveryReport {
  /** The policy: `resume`, `report`, or `hook` (a `RecoveryHook`). */
  readonly policy: 'resume' | 'report' | 'hook';
  /**
   * `none`: the last generation ended cleanly; `crash`: registered members died; `incomplete-park`: a last
   * member's park was cut short; `live-peers`: members died but registered ones are alive (nothing
   * recovered: the store cannot tell who drove what); `peer-crash`: members died while registered ones are
   * alive, and the store knows who drives what: the dead were evicted and their own workflows handed back.
   */
  readonly reason: 'none' | 'crash' | 'incomplete-park' | 'live-peers' | 'peer-crash';
  /** The generation the record was at; `undefined` when it could not be read. */
  readonly generation: number | undefined;
  /** The ids of the dead members found. */
  readonly deadMembers: readonly string[];
  /** Workflows found running that the dead generation left (with `peer-crash`: that the dead members owned). */
  readonly found: number;
  /** Of those, handed back (parked for the resume, or passed to the hook). */
  readonly recovered: number;
  /** Of those, moved to the failed status (recovered `maxRecoveries` times already). */
  readonly failed: number;
  /** Of those, no longer running when recovered. */
  readonly skipped: number;
  /** Whether the gate did all it had to (false when cut short, failed, or blocked by live peers). */
  readonly complete: boolean;
  /** How long the gate took, in milliseconds. */
  readonly durationMs: number;
  /** Every error met on the way. */
  readonly errors: readonly unknown[];
  /** What `JSON.stringify(report)` renders. */
  toJSON(): Record<string, unknown>;
}

/** Progress of a resume, emitted after every round. */
export type ResumeProgress = ResumeReport;

/** Where the protocol records phases and errors. @internal */
export interface Recorder {
  phase(name: PhaseName, startedAt: number, outcome: PhaseReport['outcome']): void;
  error(phase: ReportedError['phase'], error: unknown): void;
}

/** The outcome of the hand-off, as the report gives it. @internal */
export type HandOffResult = Pick<
  ShutdownReport,
  'lastMember' | 'handOff' | 'parked' | 'stillPausing' | 'token'
>;

/** A JSON-safe copy: bigints as strings, errors serialized, objects and arrays walked. */
function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint' || value instanceof Error) return serializeError(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

/** Freezes a report, giving it a `toJSON` (not enumerable) that renders it JSON-safe. @internal */
export function frozenReport<T extends object>(report: T): T & { toJSON(): Record<string, unknown> } {
  Object.defineProperty(report, 'toJSON', {
    value: () => jsonSafe({ ...report }) as Record<string, unknown>,
  });
  return Object.freeze(report) as T & { toJSON(): Record<string, unknown> };
}
