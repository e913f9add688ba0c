/**
 * One member process of a chaos run: the tools' workflow engine (harness/engine.ts) in a
 * DrainController, on the backend's real coordinator and store, each wrapped in a recorder that writes
 * the member's history (see recording.ts). It shuts down on SIGTERM through `installSignalHandlers`,
 * records its report, closes everything and then lets the process end by itself: a process that
 * lingers is recorded (`lingering`, with what holds it) and ended.
 *
 *   npx tsx chaos/worker.ts --backend redis --db /tmp/x.db --id m1 --group g --history /tmp/h/m1.jsonl
 *
 * The server URLs come from `GD_REDIS_URL` and `GD_POSTGRES_URL` (the harness points them at its proxy).
 * On stdout it prints the members' lines (`READY`, `STATE`, `REPORT`, `FAILED`: harness/member.ts).
 *
 * With `--hostile MODE` (the `hostile-listeners` fault) its own listeners and intake stoppers misbehave,
 * as a careless host's would: they throw, or call `shutdown()` from inside the shutdown, or stop the
 * member from a `resume` listener (see {@link misbehave}). The controller must shrug all of it off.
 */
import type { DrainController, DrainEvents, ShutdownReport } from 'graceful-drain';
import type { EngineEvent } from '../harness/engine.js';
import { choice, integer, text, textOr, UsageError } from '../harness/flags.js';
import { WORKFLOWS_TABLE } from '../harness/host-db.js';
import { memberLines, shutdownReportJson } from '../harness/member.js';
import {
  memberController,
  memberEngine,
  memberFlags,
  openMemberBackend,
  parseMemberFlags,
  startMember,
} from '../harness/member-setup.js';
import { POSTGRES_URL, withApplicationName } from '../harness/servers.js';
import { TIMINGS } from './faults.js';
import {
  errorRecord,
  fromNow,
  historyFile,
  HOSTILE_MODES,
  type HostileMode,
  type MemberEvent,
  type Recorder,
} from './history.js';
import { type LeaseRegistry, RecordingCoordinator, RecordingStore } from './recording.js';

/** The worker's flags. The harness passes every one of them. */
export const chaosWorkerFlags = {
  ...memberFlags('chaos', 'member', TIMINGS),
  history: text('the file this member appends its history to', 'FILE'),
  connectionName: textOr(
    'graceful-drain-chaos',
    'Redis connection name / PostgreSQL application_name',
    'NAME',
  ),
  closeTimeoutMs: integer(
    100,
    600_000,
    TIMINGS.closeTimeoutMs,
    'how long closing the engine, coordinator and database may take',
    'MS',
  ),
  hostile: choice(['none', ...HOSTILE_MODES], 'none', 'how its listeners and intake stoppers misbehave'),
};

/** How long the process may live on after everything is closed before it counts as held open. */
const LINGER_MS = 5000;

type Config = ReturnType<typeof parseMemberFlags<typeof chaosWorkerFlags>>;

/** A turn of the event loop later than this is recorded as a stall. */
const STALL_MS = 250;

/** Records the event loop's stalls: on a busy machine a member may miss its deadlines without any fault. */
function watchStalls(record: Recorder<MemberEvent>): void {
  let last = performance.now();
  const timer = setInterval(() => {
    const at = performance.now();
    if (at - last > STALL_MS) record({ type: 'stall', from: fromNow(last), ms: at - last });
    last = at;
  }, 50);
  timer.unref();
}

/** A host lock the harness armed: taken before the next write of `phase`. */
interface HostLockArm {
  readonly ms: number;
  readonly phase: 'park' | 'resume';
  /** `file`: the SQLite file's write lock; `rows` / `table`: on PostgreSQL. */
  readonly how: 'file' | 'rows' | 'table';
}

/**
 * Reads the harness's commands on stdin, and ends this process at once (as a crash) when the harness
 * goes away: no member outlives its harness. Commands:
 *
 * - `STALL <ms>` arms a stall of the event loop for the next time the park step's listing of active
 *   workflows comes back (`STALL 0` disarms it);
 * - `LOCK <ms> <park|resume> <file|rows|table>` arms a host lock for the next time the park finds
 *   active workflows, or the resume parked ones, before it writes: see {@link holdHostLock} (`LOCK 0`
 *   disarms it).
 */
function watchHarness(
  record: Recorder<MemberEvent>,
  onStall: (ms: number) => void,
  onLock: (arm: HostLockArm | undefined) => void,
): void {
  const stdin = process.stdin as NodeJS.ReadStream & { unref?: () => void };
  let buffer = '';
  stdin.setEncoding('utf8');
  stdin.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const [command, arg, phase, how] = buffer.slice(0, newline).split(' ');
      buffer = buffer.slice(newline + 1);
      if (command === 'STALL') {
        const ms = Number(arg) > 0 ? Number(arg) : 0;
        record({ type: 'stall-armed', ms });
        onStall(ms);
      } else if (command === 'LOCK') {
        const ms = Number(arg) > 0 ? Number(arg) : 0;
        record({ type: 'host-lock-armed', ms, phase: phase ?? '', how: how ?? '' });
        const valid =
          ms > 0 &&
          (phase === 'park' || phase === 'resume') &&
          (how === 'file' || how === 'rows' || how === 'table');
        onLock(valid ? { ms, phase, how } : undefined);
      }
    }
  });
  stdin.on('end', () => process.kill(process.pid, 'SIGKILL'));
  stdin.on('error', () => process.kill(process.pid, 'SIGKILL'));
  // Watching must not keep the process alive: it has to end by itself after its shutdown.
  stdin.unref?.();
}

/**
 * Takes a lock on the host's database through a connection of its own (not the store's, not the
 * host database's: another transaction of the same service, say), and releases it `ms` later: the
 * SQLite file's write lock (`BEGIN IMMEDIATE`), or on PostgreSQL the host rows that are running,
 * pausing or paused (`SELECT ... FOR UPDATE`) or the host table (`LOCK TABLE ... IN EXCLUSIVE MODE`).
 * Resolves once it holds the lock (`true`), or gave up (`false`, recorded): the store's next writes
 * wait behind it.
 */
async function holdHostLock(
  config: Config,
  arm: HostLockArm,
  record: Recorder<MemberEvent>,
): Promise<boolean> {
  const release = (done: () => Promise<void> | void): void => {
    const timer = setTimeout(() => {
      void Promise.resolve()
        .then(done)
        .catch(() => {})
        .finally(() => record({ type: 'host-lock-released' }));
    }, arm.ms);
    // Should the process end first, the lock goes with it.
    timer.unref();
  };
  try {
    if (arm.how === 'file') {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(config.db as string, { timeout: 250 });
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (error) {
        db.close();
        throw error;
      }
      record({ type: 'host-lock', ms: arm.ms, phase: arm.phase, what: "the SQLite file's write lock" });
      release(() => {
        db.exec('ROLLBACK');
        db.close();
      });
      return true;
    }
    const { default: pg } = await import('pg');
    const client = new pg.Client({
      connectionString: withApplicationName(POSTGRES_URL, `${config.connectionName}-l`),
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('BEGIN');
      // Never wait long behind another transaction: give up the fault instead.
      await client.query(`SET LOCAL lock_timeout = '1s'`);
      const table = `"${config.pgSchema}"."${WORKFLOWS_TABLE}"`;
      let what: string;
      if (arm.how === 'rows') {
        const locked = await client.query(
          `SELECT id FROM ${table} WHERE status IN ('running', 'pausing', 'paused') FOR UPDATE`,
        );
        what = `${locked.rowCount ?? 0} host rows FOR UPDATE`;
      } else {
        await client.query(`LOCK TABLE ${table} IN EXCLUSIVE MODE`);
        what = 'the host table IN EXCLUSIVE MODE';
      }
      record({ type: 'host-lock', ms: arm.ms, phase: arm.phase, what });
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    release(async () => {
      await client.query('ROLLBACK');
      await client.end();
    });
    return true;
  } catch (error) {
    record({ type: 'host-lock-failed', error: errorRecord(error) });
    return false;
  }
}

/** Blocks the event loop for `ms`, as a long GC pause or a starved CPU would. */
function stallFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A `shutdown()` a listener or a stopper made: its promise, to compare with the report. */
interface ReentrantCall {
  readonly where: string;
  readonly promise: Promise<ShutdownReport>;
}

/** The events a hostile member's listeners throw from. */
const THROWING_EVENTS: readonly (keyof DrainEvents)[] = [
  'stateChange',
  'drained',
  'drainTimeout',
  'escalate',
  'park',
  'resume',
  'membershipLost',
  'idle',
  'warning',
  'stopped',
];

/**
 * Registers listeners and intake stoppers that misbehave, after the member's own (an emitter stops
 * calling the listeners of an event at the first that throws: the recording ones come first).
 *
 * - `throw`: a listener of every event throws; one intake stopper throws, another rejects.
 * - `reentrant`: listeners call `shutdown()` at every step of the shutdown (`draining`,
 *   `handing-off`, `stopped`, `drained`, each `park` batch) and so does an intake stopper; the
 *   `stopped` listener calls `start()` too. Each call must get the shutdown's own promise and report.
 * - `stop-in-resume`: a `resume` listener calls `shutdown()` at the first resume round (`selfStop`):
 *   a member that stops while its background resume is under way.
 */
function misbehave(
  drain: DrainController,
  mode: HostileMode,
  record: Recorder<MemberEvent>,
  calls: ReentrantCall[],
  selfStop: (reason: string) => void,
): void {
  record({ type: 'hostile', mode });
  const shutdown = (where: string): void => {
    record({ type: 'hostile-shutdown', where, state: drain.state });
    calls.push({ where, promise: drain.shutdown() });
  };
  switch (mode) {
    case 'throw':
      for (const event of THROWING_EVENTS) {
        drain.on(event, () => {
          throw new Error(`chaos: a hostile ${event} listener`);
        });
      }
      drain.onStopIntake(() => {
        throw new Error('chaos: a hostile intake stopper');
      });
      drain.onStopIntake(() => Promise.reject(new Error('chaos: a hostile intake stopper (async)')));
      break;
    case 'reentrant':
      drain.on('stateChange', ({ to }) => {
        if (to === 'draining' || to === 'handing-off' || to === 'stopped') shutdown(`stateChange ${to}`);
      });
      drain.onStopIntake(() => shutdown('intake stopper'));
      drain.on('drained', () => shutdown('drained'));
      drain.on('park', () => shutdown('park'));
      drain.on('stopped', () => {
        shutdown('stopped');
        drain.start().then(
          () => record({ type: 'start-after-stop', error: null }),
          (error: unknown) => record({ type: 'start-after-stop', error: errorRecord(error) }),
        );
      });
      break;
    case 'stop-in-resume': {
      let done = false;
      drain.on('resume', () => {
        if (done) return;
        done = true;
        record({ type: 'hostile-shutdown', where: 'resume', state: drain.state });
        selfStop('a resume listener');
      });
      break;
    }
  }
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = parseMemberFlags(process.argv.slice(2), chaosWorkerFlags);
    if (config.history === undefined) throw new UsageError('--history is required');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`chaos worker: ${error.message}`);
    process.exit(2);
  }
  const record = historyFile<MemberEvent>(config.history, config.id);
  record({ type: 'boot', backend: config.backend, group: config.group });
  // Whatever escapes to the process is written down before it ends the process.
  process.on('uncaughtExceptionMonitor', (error, origin) =>
    record({ type: 'uncaught', origin, error: errorRecord(error) }),
  );
  let stall: number | undefined;
  let lock: HostLockArm | undefined;
  watchHarness(
    record,
    (ms) => (stall = ms > 0 ? ms : undefined),
    (arm) => (lock = arm),
  );
  watchStalls(record);
  const leases: LeaseRegistry = new Map();
  const failed = (error: unknown): void => record({ type: 'failed', error: errorRecord(error) });
  // The host database and the store as the demo builds them; on PostgreSQL each with a pool of its own,
  // and every connection named, so that the harness can find and kill them (see harness/backend.ts).
  const { host, coordinator: inner } = await openMemberBackend(
    config,
    { poolSize: 3, connectionName: config.connectionName },
    failed,
  );
  const coordinator = new RecordingCoordinator(inner, record, leases);
  const store = new RecordingStore(
    host.store,
    record,
    leases,
    () => {
      if (stall === undefined) return;
      record({ type: 'stall-injected', ms: stall, where: 'after listActive' });
      stallFor(stall);
      stall = undefined;
    },
    async (what, items) => {
      // Right before the write the listing leads to: a park after active workflows, an unpark after
      // parked ones.
      if (lock === undefined || items === 0 || lock.phase !== (what === 'active' ? 'park' : 'resume')) return;
      const arm = lock;
      lock = undefined;
      if (await holdHostLock(config, arm, record)) process.stdout.write('CHAOS host-lock\n');
    },
  );
  const drain = memberController(config, coordinator, store);
  drain.on('stateChange', ({ from, to }) => {
    record({ type: 'state', from, to });
    void memberLines.send('STATE', { from, to });
  });
  drain.on('resume', (p) =>
    record({
      type: 'resume-round',
      resumed: p.resumed,
      stillPausing: p.stillPausing,
      complete: p.complete,
      errors: p.errors.length,
    }),
  );
  drain.on('stopped', () => record({ type: 'stopped' }));
  drain.on('warning', (w) => record({ type: 'warning', code: w.code, message: w.message }));
  const engine = memberEngine(config, host.db, drain, {
    stepJitter: 0.5,
    pollMs: 50,
    sweepMs: 100,
    onEvent: (event: EngineEvent) => {
      if (event.type === 'release') record({ ...event, type: 'unclaim' });
      else if (event.type === 'error') record({ ...event, type: 'engine-error' });
      else record(event);
    },
  });

  const closeAll = async (): Promise<void> => {
    const startedAt = performance.now();
    const timer = setTimeout(() => {
      record({ type: 'close-timeout', afterMs: config.closeTimeoutMs });
      process.exit(3);
    }, config.closeTimeoutMs);
    timer.unref();
    await engine.stop();
    const coordinatorAt = performance.now();
    await coordinator.close();
    const coordinatorCloseMs = performance.now() - coordinatorAt;
    await host.close();
    clearTimeout(timer);
    record({ type: 'closed', coordinatorCloseMs, totalMs: performance.now() - startedAt });
    // Nothing of ours is left: the process should now end by itself. If something holds it, say what.
    const linger = setTimeout(() => {
      const handles =
        (process as unknown as { _getActiveHandles?: () => object[] })._getActiveHandles?.() ?? [];
      record({ type: 'lingering', handles: handles.map((h) => h.constructor.name) });
      process.exit(4);
    }, LINGER_MS);
    linger.unref();
  };
  let reported = false;
  const calls: ReentrantCall[] = [];
  const finish = async (report: ShutdownReport): Promise<void> => {
    if (reported) return;
    reported = true;
    // Every shutdown() a listener or a stopper made: the same promise, the same report.
    const own = drain.shutdown();
    for (const call of calls) {
      const theirs = await call.promise.catch(() => undefined);
      record({
        type: 'reentrant',
        where: call.where,
        samePromise: call.promise === own,
        sameReport: theirs === report,
      });
    }
    const json = shutdownReportJson(report);
    record({
      type: 'report',
      outcome: report.outcome,
      handOff: report.handOff,
      durationMs: report.durationMs,
      budgetMs: config.shutdownTimeoutMs,
      parked: report.parked,
      token: json.token,
      inFlightAtStart: report.inFlightAtStart,
      aborted: report.aborted,
      stragglers: report.stragglers,
      errors: json.errors,
    });
    await memberLines.send('REPORT', json);
    await closeAll();
  };
  if (config.hostile !== 'none') {
    misbehave(drain, config.hostile, record, calls, (reason) => {
      void drain.shutdown({ reason }).then(finish);
    });
  }
  // The process ends by itself once everything is closed: no process.exit() on the happy path.
  const started = await startMember(config, drain, engine, {
    finish,
    exit: (code) => {
      process.exitCode = code;
    },
    onFailed: failed,
    onReady: () => record({ type: 'ready' }),
  });
  if (!started) return;
  void drain.whenResumed()?.then(
    (r) => record({ type: 'resumed', resumed: r.resumed, rounds: r.rounds, complete: r.complete }),
    () => {},
  );
}

main().catch(async (error: unknown) => {
  await memberLines.send('FAILED', errorRecord(error));
  process.exit(1);
});
