/**
 * The fault list: every fault the harness injects, defined once, with the backends it applies to and
 * how likely the scheduler draws it; and the timings of a run, which the members, the faults and the
 * checks share. Imports nothing of chaos/, so every module of it can read it.
 */
import type { BackendName } from '../harness/backend.js';

/** The timings of a run, shared by the members' flags, the faults and the checker. */
export interface Timings {
  readonly memberTtlMs: number;
  readonly lockTtlMs: number;
  readonly claimTtlMs: number;
  readonly shutdownTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly stepMs: number;
  /** The members' `peerCheckIntervalMs`: how often a live member looks for crashed peers. */
  readonly peerCheckIntervalMs: number;
}

/** The timings every run uses: short TTLs, so that a few seconds hold many expiries. */
export const TIMINGS: Timings = Object.freeze({
  memberTtlMs: 1500,
  lockTtlMs: 1500,
  claimTtlMs: 3000,
  shutdownTimeoutMs: 4000,
  closeTimeoutMs: 8000,
  stepMs: 150,
  peerCheckIntervalMs: 500,
});

/** One fault of the list. */
export interface FaultSpec {
  /**
   * How likely the scheduler draws it every 0.3 to 1.2 s, relative to the others; 0 when it is
   * scheduled apart (see `what`).
   */
  readonly weight: number;
  /** The backends it applies to. */
  readonly backends: readonly BackendName[];
  /** What it does, in a line. */
  readonly what: string;
}

const ALL: readonly BackendName[] = ['sqlite', 'redis', 'postgres'];
const NETWORK: readonly BackendName[] = ['redis', 'postgres'];
const SQLITE_FILE: readonly BackendName[] = ['sqlite', 'redis'];

/**
 * Every fault the harness injects: the one place a fault is defined. A `...-at-...` fault is a trap:
 * drawn like the others, then sprung on the next member that reaches the state it waits for.
 */
export const FAULTS = {
  sigterm: { weight: 2, backends: ALL, what: 'graceful stop of one member' },
  sigkill: { weight: 2, backends: ALL, what: 'crash of one member' },
  freeze: { weight: 2, backends: ALL, what: 'SIGSTOP for 1.2 to 2.5 TTLs, then SIGCONT' },
  'freeze-at-handoff': {
    weight: 2,
    backends: ALL,
    what: 'the same, sprung 0 to 25 ms after the next member enters `handing-off` (it takes or holds the lock)',
  },
  'freeze-at-start': {
    weight: 1,
    backends: ALL,
    what: 'the same, sprung 0 to 25 ms after the next member starts (its resume takes the lock)',
  },
  'stall-at-park': {
    weight: 2,
    backends: ALL,
    what: 'every live member is armed: the next one to park stalls its event loop for 1.2 to 2.5 TTLs right after listing',
  },
  'conn-kill': {
    weight: 2,
    backends: NETWORK,
    what: "`CLIENT KILL` / `pg_terminate_backend` of a member's coordinator, store or host connections",
  },
  partition: {
    weight: 2,
    backends: NETWORK,
    what: "the member's proxy holds every byte both ways, FIN included, for 0.3 to 2.5 TTLs",
  },
  delay: {
    weight: 1,
    backends: NETWORK,
    what: "the member's proxy forwards every chunk 20 to 400 ms late, for 0.5 to 2 TTLs",
  },
  'server-restart': {
    weight: 1,
    backends: NETWORK,
    what: 'every proxy drops its connections and refuses new ones for 0.3 to 3 s',
  },
  'sqlite-stall': {
    weight: 1,
    backends: SQLITE_FILE,
    what: "the harness holds the SQLite file's write lock for 0.2 to 1.5 s, at any moment",
  },
  'host-lock-at-park': {
    weight: 2,
    backends: ALL,
    what:
      'host-database lock contention during the park: every live member is armed, and the next to list active workflows at its hand-off has ' +
      "a connection of its own hold the SQLite file's write lock (`BEGIN IMMEDIATE`) for 0.3 to 3.5 s, or on PostgreSQL the host rows " +
      '(`SELECT ... FOR UPDATE`) or the host table (`LOCK TABLE ... IN EXCLUSIVE MODE`) for 0.5 to 4.5 s, before it parks them',
  },
  'host-lock-at-resume': {
    weight: 2,
    backends: ALL,
    what: 'the same during the resume: the next member to start is armed, and takes the lock when its resume lists parked workflows, before it unparks them',
  },
  'user-pause': {
    weight: 2,
    backends: ALL,
    what: 'a user pauses a running workflow in the host table (no park mark)',
  },
  'user-resume': {
    weight: 2,
    backends: ALL,
    what: 'a user resumes a paused workflow (one a shutdown parked first, else one it paused itself), and half the time pauses it again 0 to 300 ms later',
  },
  'user-pause-parked': {
    weight: 1,
    backends: ALL,
    what: "a user pauses a workflow that is already parked: the status stays, the host's pause path calls the store's `notePaused`",
  },
  'user-at-park': {
    weight: 2,
    backends: ALL,
    what: "a user's pause (3 in 5) or resume of its own pause, sprung 0 to 50 ms after the next member enters `handing-off`: it races the park",
  },
  'user-at-resume': {
    weight: 2,
    backends: ALL,
    what: "a user's pause of a parked workflow (half the time), or resume of one (and, 7 in 10, pause again), sprung 0 to 150 ms after the next member starts: it races the resume",
  },
  'user-at-cluster-stop': {
    weight: 0,
    backends: ALL,
    what: "at three cluster stops in four and at the calm phase's, once everything is parked and before the next start: a user resumes and pauses again a parked workflow, or pauses one (`notePaused`), once or twice",
  },
  'hostile-listeners': {
    weight: 0,
    backends: ALL,
    what:
      "at a member's start in the chaos phase, 3 in 10: its listeners and intake stoppers throw, or call `shutdown()` " +
      'during the shutdown (and `start()` after it), or a `resume` listener calls `shutdown()` at its first round',
  },
  'stop-all': {
    weight: 2,
    backends: ALL,
    what: 'SIGTERM to every member at once, whatever else is going on',
  },
  'cluster-stop': {
    weight: 0,
    backends: ALL,
    what: 'every fault healed, then every member stopped gracefully at once (about once per 20 s)',
  },
  'crash-last': {
    weight: 0,
    backends: ALL,
    what:
      'in place of one cluster stop in four, and at the start of the calm phase half the time: every fault healed, every member but one ' +
      'stopped gracefully, then the last one SIGKILLed mid-run; once it is out of the group, 3 in 4 a user pauses a running workflow, and ' +
      'new members start (their start recovers what it left running)',
  },
  'crash-all': {
    weight: 0,
    backends: ALL,
    what: 'the same, with every member SIGKILLed at once',
  },
  'crash-peer': {
    weight: 0,
    backends: ALL,
    what:
      'at the start of the calm phase: every fault healed, one member (never the last one running) SIGKILLed mid-run while the others run on; ' +
      "their peer check (the store's owner column) must evict it and hand back the workflows it drove, within 3 membership TTLs",
  },
} as const satisfies Record<string, FaultSpec>;

/** A fault's kind. */
export type FaultKind = keyof typeof FAULTS;

/** Every fault's kind, in the order of the list. */
export const FAULT_KINDS = Object.keys(FAULTS) as FaultKind[];

/** Which faults each backend can take. */
export function faultsFor(backend: BackendName): readonly FaultKind[] {
  return FAULT_KINDS.filter((k) => FAULTS[k].backends.includes(backend));
}
