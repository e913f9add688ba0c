/**
 * The history of a chaos run: one JSON line per event, appended by every member process to a file of
 * its own and by the harness to another, merged and sorted by time after the run.
 *
 * Times are the host's monotonic clock, anchored on the wall clock once, by the run's first process, and
 * shared with every member: so times compare across processes (to well under a millisecond on one
 * host), and a wall-clock step during the run changes nothing. A process stopped with SIGSTOP
 * sees the clock run on while it is frozen, as it must.
 */
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineEvent } from '../harness/engine.js';
import { type ErrorJson, errorJson } from '../harness/member.js';
import type { FaultKind } from './faults.js';

export type { FaultKind } from './faults.js';

/**
 * Where the shared clock stands against the host's monotonic clock (`process.hrtime`, one clock for every
 * process of the host): the wall clock minus the monotonic clock, read once by the first process of the
 * run and handed down to the members through the environment. Each process anchoring on the wall clock
 * by itself (`performance.timeOrigin`) put processes started on either side of a wall-clock step (an NTP
 * correction) hundreds of milliseconds apart, and the checks then saw events out of order.
 */
const ANCHOR_ENV = 'GD_CHAOS_CLOCK_ANCHOR';
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * `other()` minus the monotonic clock. Two clocks cannot be read at once: a process preempted between
 * the two reads (a loaded CI host, or a garbage collection while a member loads) gets a difference off by
 * the whole pause, and a member whose clock was 14 ms ahead of its peers' made every time-ordered check
 * fail. So one read of the monotonic clock is bracketed by two of `other()`, and the tightest bracket of
 * a few dozen tries is kept (its error is half its width: microseconds).
 */
export function differenceTo(other: () => number, monotonic: () => number = monotonicMs): number {
  let width = Infinity;
  let difference = 0;
  for (let i = 0; i < 64 && width > 0.01; i++) {
    const before = other();
    const at = monotonic();
    const after = other();
    if (after - before < width) {
      width = after - before;
      difference = (before + after) / 2 - at;
    }
  }
  return difference;
}

const inherited = Number(process.env[ANCHOR_ENV]);
const anchor = Number.isFinite(inherited) ? inherited : differenceTo(Date.now);
process.env[ANCHOR_ENV] = String(anchor);
/** This process's `performance.now()` on the shared clock: add it. */
const offset = anchor - differenceTo(() => performance.now());

/** Now, on the clock every process of the run shares (ms, epoch-based, monotonic). */
export function clock(): number {
  return offset + performance.now();
}

/** A `performance.now()` reading of this process, on the shared clock. */
export function fromNow(performanceNow: number): number {
  return offset + performanceNow;
}

/** An error as it goes into the history: `{ name, code, message }`, as the members' lines have it. */
export type ErrorRecord = ErrorJson;

/** An error (or anything thrown) for the history. */
export const errorRecord = errorJson;

/** The outcomes of one park or unpark call, grouped: outcome -> ids. */
export type Outcomes = Readonly<Record<string, readonly string[]>>;

/** Where a write's lease stood when the write was sent. */
export interface LeaseAtWrite {
  /** The lease's signal was aborted already. */
  readonly aborted: boolean;
  /** Its local deadline, on the shared clock. */
  readonly deadline: number;
}

/** What a member process records (`m` is its member id). */
export type MemberEvent =
  | { readonly type: 'boot'; readonly backend: string; readonly group: string }
  | { readonly type: 'join-start'; readonly group: string }
  | { readonly type: 'join'; readonly incarnation: string }
  | { readonly type: 'join-failed'; readonly error: ErrorRecord }
  | { readonly type: 'membership-lost'; readonly incarnation: string; readonly error: ErrorRecord }
  | { readonly type: 'leave-start'; readonly incarnation: string }
  | { readonly type: 'leave'; readonly incarnation: string }
  | { readonly type: 'leave-failed'; readonly incarnation: string; readonly error: ErrorRecord }
  | { readonly type: 'members-start' }
  | {
      readonly type: 'members';
      readonly members: readonly { readonly memberId: string; readonly expiresInMs?: number }[];
    }
  | { readonly type: 'members-failed'; readonly error: ErrorRecord }
  | { readonly type: 'acquire-start'; readonly name: string }
  | { readonly type: 'acquire'; readonly name: string; readonly token: string; readonly deadline: number }
  | { readonly type: 'acquire-failed'; readonly name: string; readonly error: ErrorRecord }
  | { readonly type: 'renew'; readonly token: string; readonly deadline: number }
  | { readonly type: 'lease-lost'; readonly token: string; readonly error: ErrorRecord }
  | { readonly type: 'release-start'; readonly token: string }
  | { readonly type: 'release'; readonly token: string }
  | { readonly type: 'release-failed'; readonly token: string; readonly error: ErrorRecord }
  | {
      readonly type: 'park-start' | 'unpark-start';
      readonly token: string | null;
      readonly ids: readonly string[];
      readonly lease: LeaseAtWrite | null;
    }
  | { readonly type: 'park' | 'unpark'; readonly token: string | null; readonly outcomes: Outcomes }
  | {
      readonly type: 'park-failed' | 'unpark-failed';
      readonly token: string | null;
      readonly error: ErrorRecord;
    }
  | {
      readonly type: 'recover-start';
      readonly token: string | null;
      readonly ids: readonly string[];
      readonly lease: LeaseAtWrite | null;
      readonly mode: string;
      readonly maxRecoveries: number;
    }
  | { readonly type: 'recover'; readonly token: string | null; readonly outcomes: Outcomes }
  /** `evictMembers()` of a peer check or a start gate: the incarnations it evicted (or the error). */
  | {
      readonly type: 'evict';
      readonly token: string | null;
      readonly members: readonly { readonly memberId: string; readonly incarnation: string }[];
      readonly error?: ErrorRecord;
    }
  | { readonly type: 'recover-failed'; readonly token: string | null; readonly error: ErrorRecord }
  /** The store's generation record, as the start gate read it. */
  | {
      readonly type: 'generation-read';
      readonly generation: number;
      readonly members: readonly { readonly memberId: string; readonly incarnation: string }[];
      readonly dirty: boolean;
    }
  /** A change of the generation record: a member registered (`enter`), or members removed (`leave`). */
  | {
      readonly type: 'generation-write';
      readonly op: 'enter' | 'leave';
      readonly token: string | null;
      readonly memberIds: readonly string[];
      /** How a `leave` ends the generation. */
      readonly end?: string;
      /** Why it failed, if it did. */
      readonly error?: ErrorRecord;
    }
  /** The controller's `recovery` event: what the start gate found of a crash and did. */
  | {
      readonly type: 'recovery';
      readonly policy: string;
      readonly reason: string;
      readonly generation: number | null;
      readonly deadMembers: readonly string[];
      readonly found: number;
      readonly recovered: number;
      readonly failed: number;
      readonly skipped: number;
      readonly complete: boolean;
      readonly errors: readonly ErrorRecord[];
    }
  | { readonly type: 'fence-start' | 'fence'; readonly token: string | null }
  | { readonly type: 'fence-failed'; readonly token: string | null; readonly error: ErrorRecord }
  | { readonly type: 'note-paused-start'; readonly ids: readonly string[] }
  | { readonly type: 'note-paused'; readonly outcomes: Outcomes }
  | { readonly type: 'note-paused-failed'; readonly error: ErrorRecord }
  | { readonly type: 'list-parked-start' }
  | {
      readonly type: 'list-parked';
      readonly parked: readonly { readonly id: string; readonly state: string }[];
      readonly more: boolean;
    }
  | { readonly type: 'state'; readonly from: string; readonly to: string }
  | { readonly type: 'ready' }
  | {
      readonly type: 'resume-round';
      readonly resumed: number;
      readonly stillPausing: number;
      readonly complete: boolean;
      readonly errors: number;
    }
  | {
      readonly type: 'resumed';
      readonly resumed: number;
      readonly rounds: number;
      readonly complete: boolean;
    }
  | {
      readonly type: 'report';
      readonly outcome: string;
      readonly handOff: string;
      readonly durationMs: number;
      readonly budgetMs: number;
      readonly parked: number;
      readonly token: string | null;
      readonly inFlightAtStart: number;
      readonly aborted: number;
      readonly stragglers: number;
      readonly errors: readonly { readonly phase: string; readonly error: ErrorRecord }[];
    }
  | { readonly type: 'closed'; readonly coordinatorCloseMs: number; readonly totalMs: number }
  | { readonly type: 'close-timeout'; readonly afterMs: number }
  | { readonly type: 'lingering'; readonly handles: readonly string[] }
  /** The event loop did not turn for `ms` from `from` (a busy machine): an unannounced short freeze. */
  | { readonly type: 'stall'; readonly from: number; readonly ms: number }
  /** The harness asked for a stall of the event loop at a chosen point (see the `stall-at-park` fault). */
  | { readonly type: 'stall-armed'; readonly ms: number }
  | { readonly type: 'stall-injected'; readonly ms: number; readonly where: string }
  /** The harness armed a host lock for the next fence raise in `phase` (`ms` 0: disarmed). */
  | { readonly type: 'host-lock-armed'; readonly ms: number; readonly phase: string; readonly how: string }
  /** A connection of this member's own took a lock on the host's database, for `ms` (see faults.ts). */
  | {
      readonly type: 'host-lock';
      readonly ms: number;
      readonly phase: 'park' | 'resume';
      readonly what: string;
    }
  | { readonly type: 'host-lock-released' }
  | { readonly type: 'host-lock-failed'; readonly error: ErrorRecord }
  | { readonly type: 'failed'; readonly error: ErrorRecord }
  /** The controller emitted `stopped` (once per controller, whoever calls `shutdown()`). */
  | { readonly type: 'stopped' }
  /** The controller's `warning` event (a store's configuration at odds with the host's data). */
  | { readonly type: 'warning'; readonly code: string; readonly message: string }
  /** An error escaped to the process (`uncaughtExceptionMonitor`): the process dies of it. */
  | { readonly type: 'uncaught'; readonly origin: string; readonly error: ErrorRecord }
  /** This member's listeners and intake stoppers misbehave (the `hostile-listeners` fault). */
  | { readonly type: 'hostile'; readonly mode: HostileMode }
  /** A listener or an intake stopper called `shutdown()` (the state the controller was in then). */
  | { readonly type: 'hostile-shutdown'; readonly where: string; readonly state: string }
  /** What a `shutdown()` called from a listener or a stopper resolved with, against the report. */
  | {
      readonly type: 'reentrant';
      readonly where: string;
      readonly samePromise: boolean;
      readonly sameReport: boolean;
    }
  /** `start()` called from a `stopped` listener: how it ended (`null`: it resolved). */
  | { readonly type: 'start-after-stop'; readonly error: ErrorRecord | null }
  // The engine's events (see harness/engine.ts), with its `release` of a claim as `unclaim`, its `error`
  // as `engine-error`.
  | Exclude<EngineEvent, { readonly type: 'release' | 'error' }>
  | Rename<Extract<EngineEvent, { readonly type: 'release' }>, 'unclaim'>
  | Rename<Extract<EngineEvent, { readonly type: 'error' }>, 'engine-error'>;

/** An event under another `type`. */
type Rename<E, T extends string> = Omit<E, 'type'> & { readonly type: T };

/**
 * How a member's listeners and intake stoppers misbehave (see the `hostile-listeners` fault):
 * `throw` (every listener throws, one stopper throws and one rejects), `reentrant` (listeners and a
 * stopper call `shutdown()` during the shutdown, and `start()` after it), `stop-in-resume` (a `resume`
 * listener calls `shutdown()` at the first resume round: a member that stops itself while resuming).
 */
export const HOSTILE_MODES = ['throw', 'reentrant', 'stop-in-resume'] as const;

/** One of {@link HOSTILE_MODES}. */
export type HostileMode = (typeof HOSTILE_MODES)[number];

/** The phases of a run. */
export type Phase = 'chaos' | 'calm' | 'final-stop' | 'done';

/** What the harness records (`m` is `harness`). */
export type HarnessEvent =
  | {
      readonly type: 'run';
      readonly backend: string;
      readonly seed: number;
      readonly members: number;
      readonly seconds: number;
      readonly timings: Readonly<Record<string, number>>;
    }
  | { readonly type: 'phase'; readonly phase: Phase }
  | {
      readonly type: 'spawn';
      readonly member: string;
      readonly slot: number;
      readonly pid: number | undefined;
    }
  | { readonly type: 'signal'; readonly member: string; readonly signal: string }
  | {
      readonly type: 'exit';
      readonly member: string;
      readonly code: number | null;
      readonly signal: string | null;
    }
  | {
      readonly type: 'fault';
      /** Unique in the run: its `heal` names it. */
      readonly fault: number;
      readonly kind: FaultKind;
      /** The members it hits directly (signals, killed connections). */
      readonly targets: readonly string[];
      /** The slots whose network path it hits (partition, delay, server restart): whoever runs there. */
      readonly slots: readonly number[];
      /** How long it lasts (0: at once). */
      readonly durationMs: number;
      readonly detail: string;
    }
  | { readonly type: 'heal'; readonly fault: number }
  | {
      /** A crash stop: members killed (`crash-last`: the others stopped gracefully first). */
      readonly type: 'crash-stop';
      readonly kind: 'crash-last' | 'crash-all';
      readonly killed: readonly string[];
      /** The workflows the killed members held when they died: running, held by nobody alive. */
      readonly stranded: readonly string[];
    }
  | {
      /**
       * The members started after a crash stop are all ready (their start gates done): the running
       * workflows held by a member that is not alive then (`stranded`: none, if the start recovered).
       */
      readonly type: 'crash-settled';
      readonly kind: 'crash-last' | 'crash-all';
      readonly members: readonly string[];
      readonly stranded: readonly { readonly id: string; readonly owner: string }[];
      /** How long the dead members took to leave the group, in ms. */
      readonly leftAfterMs: number;
    }
  | {
      /** One member killed while the others run (`crash-peer`): what it drove, running and held by it. */
      readonly type: 'crash-peer';
      readonly killed: string;
      readonly survivors: readonly string[];
      readonly stranded: readonly string[];
    }
  | {
      /**
       * The survivors' peer check has had its time (or handed everything back): the running workflows
       * still held by the killed member (`stranded`: none, if a peer check recovered them).
       */
      readonly type: 'crash-peer-settled';
      readonly killed: string;
      readonly members: readonly string[];
      readonly stranded: readonly string[];
      /** How long after the kill, in ms. */
      readonly afterMs: number;
    }
  | {
      readonly type: 'cluster-stopped';
      readonly members: readonly string[];
      /** Workflows still `running` once they had all exited. */
      readonly running: readonly string[];
    }
  | {
      /**
       * A user paused a workflow: a running one (`how: 'running'`), one the user had resumed
       * (`'re-pause'`), or one already parked (`'parked'`: the status stays, the host's pause path
       * calls the store's `notePaused`, whose outcome is `mark`). Recorded once it took effect.
       */
      readonly type: 'user-pause';
      readonly id: string;
      readonly step: number;
      readonly claim: string | null;
      readonly how?: 'running' | 're-pause' | 'parked';
      /** The `seq` of the workflow's last status-log row at the pause. */
      readonly statusSeq?: number;
      readonly mark?: string;
    }
  | {
      /** A user resumed a paused (or pausing) workflow: its own pause, or a park (`marked`). */
      readonly type: 'user-resume';
      readonly id: string;
      readonly step: number;
      readonly from: string;
      readonly marked: boolean;
      readonly userPaused: boolean;
      readonly statusSeq: number;
    }
  | {
      /** A user action that did not happen (the workflow moved on meanwhile), or failed. */
      readonly type: 'user-missed';
      readonly action: string;
      readonly id: string;
      readonly why: string;
    }
  | { readonly type: 'seed'; readonly ids: readonly string[] };

/** One line of the history, as read back. */
export type HistoryEntry = (MemberEvent | HarnessEvent) & {
  /** When, on the shared clock. */
  readonly t: number;
  /** Who: a member id, or `harness`. */
  readonly m: string;
  /** The process id. */
  readonly pid: number;
  /** Its place in the merged history (set when read). */
  readonly seq: number;
};

/** The events of one kind. */
export type EntryOf<T extends HistoryEntry['type']> = Extract<HistoryEntry, { type: T }>;

/** A function that appends one event to a history file. */
export type Recorder<E> = (event: E) => void;

/** Appends events to `file` as JSON lines, each stamped with the time, `who` and the pid. */
export function historyFile<E extends { readonly type: string }>(file: string, who: string): Recorder<E> {
  return (event) => {
    // One write() per line: a process killed mid-run leaves whole lines (or a last one cut short).
    appendFileSync(
      file,
      `${JSON.stringify({ t: clock(), m: who, pid: process.pid, ...event }, (_, v: unknown) =>
        typeof v === 'bigint' ? v.toString() : v,
      )}\n`,
    );
  };
}

/** Reads every `*.jsonl` file of `folder` and merges them by time (ties keep each file's order). */
export function readHistory(folder: string): HistoryEntry[] {
  const entries: (Omit<HistoryEntry, 'seq'> & { file: number; line: number })[] = [];
  const files = readdirSync(folder)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  files.forEach((name, file) => {
    const lines = readFileSync(join(folder, name), 'utf8').split('\n');
    lines.forEach((text, line) => {
      if (text.trim() === '') return;
      try {
        entries.push({ ...(JSON.parse(text) as Omit<HistoryEntry, 'seq'>), file, line });
      } catch {
        // The last line of a process killed while writing it: nothing to read there.
      }
    });
  });
  entries.sort((a, b) => a.t - b.t || a.file - b.file || a.line - b.line);
  return entries.map(({ file: _file, line: _line, ...entry }, seq) => ({ ...entry, seq }) as HistoryEntry);
}

/** A short, one-line rendering of an entry, for the stretch of history shown around a violation. */
export function describeEntry(entry: HistoryEntry, origin: number): string {
  const { t, m, pid: _pid, seq: _seq, type, ...rest } = entry as HistoryEntry & Record<string, unknown>;
  let detail = JSON.stringify(rest);
  if (detail.length > 160) detail = `${detail.slice(0, 157)}...`;
  return `${((t - origin) / 1000).toFixed(3).padStart(8)}s  ${m.padEnd(12)} ${type.padEnd(18)} ${detail === '{}' ? '' : detail}`;
}
