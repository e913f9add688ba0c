/**
 * One member process of a chaos run: the tools' workflow engine (harness/engine.ts, sticky: a member
 * drives the workflows it took up, so a crash strands them) in a DrainController, with crash recovery
 * at start, on the backend's real coordinator and store, each wrapped in a recorder that writes
 * the member's history (recording.ts); armed with faults by the harness (armed.ts), its listeners
 * hostile now and then (hostile.ts). It shuts down on SIGTERM through `installSignalHandlers`, records
 * its report, closes everything and then lets the process end by itself: a process that lingers is
 * recorded (`lingering`, with what holds it) and ended.
 *
 *   npx tsx chaos/members/worker.ts --backend redis --db /tmp/x.db --id m1 --group g --history h/m1.jsonl
 *
 * The server URLs come from `GD_REDIS_URL` and `GD_POSTGRES_URL` (the harness points them at its proxy).
 * On stdout it prints the members' lines (`READY`, `STATE`, `REPORT`, `FAILED`: harness/member.ts).
 */
import type { ShutdownReport } from 'graceful-drain';
import type { EngineEvent } from '../../harness/engine.js';
import { choice, integer, parseCommandLine, text, textOr, UsageError } from '../../harness/flags.js';
import { memberLines, shutdownReportJson } from '../../harness/member.js';
import {
  memberController,
  memberEngine,
  memberFlags,
  openMemberBackend,
  parseMemberFlags,
  startMember,
} from '../../harness/member-setup.js';
import { TIMINGS } from '../faults.js';
import { errorRecord, historyFile, HOSTILE_MODES, type MemberEvent } from '../history.js';
import { type HostLockArm, holdHostLock, stallFor, watchHarness, watchStalls } from './armed.js';
import { misbehave, type ReentrantCall } from './hostile.js';
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

async function main(): Promise<void> {
  const config = parseCommandLine('chaos worker', () => {
    const parsed = parseMemberFlags(process.argv.slice(2), chaosWorkerFlags);
    if (parsed.history === undefined) throw new UsageError('--history is required');
    return { ...parsed, history: parsed.history };
  });
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
  drain.on('recovery', (r) =>
    record({
      type: 'recovery',
      policy: r.policy,
      reason: r.reason,
      generation: r.generation ?? null,
      deadMembers: r.deadMembers,
      found: r.found,
      recovered: r.recovered,
      failed: r.failed,
      skipped: r.skipped,
      complete: r.complete,
      errors: r.errors.map(errorRecord),
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
