/**
 * One member process of a chaos run: the demo's workflow engine (examples/demo/engine.ts) in a
 * DrainController, on the backend's real coordinator and store, each wrapped in a recorder that writes
 * the member's history (see recording.ts). It shuts down on SIGTERM through `installSignalHandlers`,
 * records its report, closes everything and then lets the process end by itself: a process that
 * lingers is recorded (`lingering`, with what holds it) and ended.
 *
 *   npx tsx chaos/worker.ts --backend redis --db /tmp/x.db --id m1 --group g --history /tmp/h/m1.jsonl
 *
 * The server URLs come from `GD_REDIS_URL` and `GD_POSTGRES_URL` (the harness points them at its proxy).
 * On stdout it prints the demo's protocol lines (`READY`, `STATE`, `REPORT`, `FAILED`).
 */
import {
  DrainController,
  installSignalHandlers,
  type Coordinator,
  type ShutdownReport,
} from 'graceful-drain';
import {
  BACKENDS,
  DEFAULT_POSTGRES_URL,
  DEFAULT_REDIS_URL,
  type Host,
  openHost,
} from '../examples/demo/backend.js';
import { STORE_STATUSES, WORKFLOWS_TABLE } from '../examples/demo/host-db.js';
import { choice, integer, parseFlags, text, textOr, UsageError } from '../examples/demo/cli.js';
import { Engine, type EngineEvent } from '../examples/demo/engine.js';
import {
  encode,
  errorJson,
  type MessageKind,
  type Messages,
  shutdownReportJson,
} from '../examples/demo/protocol.js';
import { seededRandom } from '../examples/demo/random.js';
import { errorRecord, fromNow, historyFile, type MemberEvent, type Recorder } from './history.js';
import { type LeaseRegistry, RecordingCoordinator, RecordingStore } from './recording.js';

/** The worker's flags. The harness passes every one of them. */
export const chaosWorkerFlags = {
  backend: choice(BACKENDS, 'sqlite', 'the coordinator and store to use'),
  db: text('the SQLite file of the host tables (sqlite, redis) and of the coordinator (sqlite)', 'PATH'),
  id: textOr(`member-${process.pid}`, 'this member id in the group', 'ID'),
  group: textOr('chaos', 'the group', 'NAME'),
  history: text('the file this member appends its history to', 'FILE'),
  connectionName: textOr(
    'graceful-drain-chaos',
    'Redis connection name / PostgreSQL application_name',
    'NAME',
  ),
  concurrency: integer(1, 64, 2, 'steps run at once'),
  stepMs: integer(1, 600_000, 150, 'mean duration of a step, in ms', 'MS'),
  claimTtlMs: integer(100, 600_000, 3000, 'lease of a claimed workflow', 'MS'),
  shutdownTimeoutMs: integer(100, 600_000, 4000, 'DrainController shutdownTimeoutMs', 'MS'),
  memberTtlMs: integer(100, 600_000, 1500, 'DrainController memberTtlMs', 'MS'),
  lockTtlMs: integer(100, 600_000, 1500, 'DrainController lockTtlMs', 'MS'),
  resumeIntervalMs: integer(1, 600_000, 200, 'DrainController resumeIntervalMs', 'MS'),
  resumeTimeoutMs: integer(1, 3_600_000, 30_000, 'DrainController resumeTimeoutMs', 'MS'),
  closeTimeoutMs: integer(
    100,
    600_000,
    8000,
    'how long closing the engine, coordinator and database may take',
    'MS',
  ),
  seed: integer(0, 2 ** 32 - 1, 1, 'seed of the step durations'),
  redisKeyPrefix: textOr('graceful-drain-chaos:', 'prefix of the coordinator keys (redis)', 'PREFIX'),
  pgSchema: textOr('graceful_drain_chaos', 'schema of the host and graceful-drain tables (postgres)', 'NAME'),
};

/** How long the process may live on after everything is closed before it counts as held open. */
const LINGER_MS = 5000;

function emit<K extends MessageKind>(kind: K, data: Messages[K]): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${encode(kind, data)}\n`, () => resolve()));
}

/** `postgres://...` with `application_name` set, so the harness can find (and kill) our connections. */
function withApplicationName(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

type Config = ReturnType<typeof parseFlags<typeof chaosWorkerFlags>>;

async function openCoordinator(config: Config): Promise<Coordinator> {
  switch (config.backend) {
    case 'sqlite': {
      const { SqliteCoordinator } = await import('graceful-drain/sqlite');
      return new SqliteCoordinator({ path: config.db as string });
    }
    case 'redis': {
      const { RedisCoordinator } = await import('graceful-drain/redis');
      return new RedisCoordinator({
        url: process.env.GD_REDIS_URL ?? DEFAULT_REDIS_URL,
        keyPrefix: config.redisKeyPrefix,
        connectionName: config.connectionName,
      });
    }
    case 'postgres': {
      const { PostgresCoordinator } = await import('graceful-drain/postgres');
      return new PostgresCoordinator({
        connectionString: withApplicationName(
          process.env.GD_POSTGRES_URL ?? DEFAULT_POSTGRES_URL,
          `${config.connectionName}-c`,
        ),
        schema: config.pgSchema,
      });
    }
  }
}

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

/**
 * Reads the harness's commands on stdin, and ends this process at once (as a crash) when the harness
 * goes away: no member outlives its harness. One command: `STALL <ms>` arms a stall of the event loop
 * for the next time the park step's listing of active workflows comes back (`STALL 0` disarms it).
 */
function watchHarness(record: Recorder<MemberEvent>, onStall: (ms: number) => void): void {
  const stdin = process.stdin as NodeJS.ReadStream & { unref?: () => void };
  let buffer = '';
  stdin.setEncoding('utf8');
  stdin.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const [command, arg] = buffer.slice(0, newline).split(' ');
      buffer = buffer.slice(newline + 1);
      if (command === 'STALL') {
        const ms = Number(arg) > 0 ? Number(arg) : 0;
        record({ type: 'stall-armed', ms });
        onStall(ms);
      }
    }
  });
  stdin.on('end', () => process.kill(process.pid, 'SIGKILL'));
  stdin.on('error', () => process.kill(process.pid, 'SIGKILL'));
  // Watching must not keep the process alive: it has to end by itself after its shutdown.
  stdin.unref?.();
}

/** Blocks the event loop for `ms`, as a long GC pause or a starved CPU would. */
function stallFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The host's database and the store. On SQLite, as the demo builds them. On PostgreSQL the store gets
 * a pool of its own, set up as its documentation asks (an 'error' listener for idle connections, no
 * more), so that the harness tests the store as a user runs it; the demo's host database checks
 * connections out without a listener of its own (a crash when one drops mid-transaction, a bug of the
 * example reported apart), so its pool gets one on every connection.
 */
async function openHostOf(config: Config): Promise<Host> {
  const url = process.env.GD_POSTGRES_URL ?? DEFAULT_POSTGRES_URL;
  if (config.backend !== 'postgres') {
    return openHost({
      backend: config.backend,
      dbPath: config.db as string,
      redisUrl: '',
      redisKeyPrefix: config.redisKeyPrefix,
      postgresUrl: url,
      pgSchema: config.pgSchema,
    });
  }
  const [{ default: pg }, { PostgresHostDb }, { PostgresWorkflowStore }] = await Promise.all([
    import('pg'),
    import('../examples/demo/host-db-postgres.js'),
    import('graceful-drain/postgres'),
  ]);
  const ignore = (): void => {};
  const hostPool = new pg.Pool({
    connectionString: withApplicationName(url, `${config.connectionName}-h`),
    max: 3,
  });
  hostPool.on('error', ignore);
  hostPool.on('connect', (client) => client.on('error', ignore));
  const storePool = new pg.Pool({
    connectionString: withApplicationName(url, `${config.connectionName}-s`),
    max: 2,
  });
  storePool.on('error', ignore);
  const db = new PostgresHostDb(hostPool, config.pgSchema);
  const store = new PostgresWorkflowStore({
    pool: storePool,
    table: `${config.pgSchema}.${WORKFLOWS_TABLE}`,
    schema: config.pgSchema,
    statuses: STORE_STATUSES,
  });
  return {
    db,
    store,
    prepare: () => Promise.reject(new Error('the harness prepares the backend')),
    drop: () => Promise.reject(new Error('the harness cleans up the backend')),
    close: async () => {
      await store.close();
      await db.close();
      await storePool.end();
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = parseFlags(process.argv.slice(2), chaosWorkerFlags);
    if (config.history === undefined) throw new UsageError('--history is required');
    if (config.backend !== 'postgres' && config.db === undefined) {
      throw new UsageError(`--db is required with --backend ${config.backend}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`chaos worker: ${error.message}`);
    process.exit(2);
  }
  const record = historyFile<MemberEvent>(config.history, config.id);
  record({ type: 'boot', backend: config.backend, group: config.group });
  let stall: number | undefined;
  watchHarness(record, (ms) => (stall = ms > 0 ? ms : undefined));
  watchStalls(record);
  const leases: LeaseRegistry = new Map();

  let host: Host | undefined;
  let inner: Coordinator | undefined;
  try {
    host = await openHostOf(config);
    inner = await openCoordinator(config);
  } catch (error) {
    record({ type: 'failed', error: errorRecord(error) });
    await emit('FAILED', errorJson(error));
    await inner?.close();
    await host?.close();
    process.exit(1);
  }
  const coordinator = new RecordingCoordinator(inner, record, leases);
  const store = new RecordingStore(host.store, record, leases, () => {
    if (stall === undefined) return;
    record({ type: 'stall-injected', ms: stall, where: 'after listActive' });
    stallFor(stall);
    stall = undefined;
  });
  const drain = new DrainController({
    group: config.group,
    memberId: config.id,
    coordinator,
    store,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    memberTtlMs: config.memberTtlMs,
    lockTtlMs: config.lockTtlMs,
    resumeIntervalMs: config.resumeIntervalMs,
    resumeTimeoutMs: config.resumeTimeoutMs,
  });
  drain.on('stateChange', ({ from, to }) => {
    record({ type: 'state', from, to });
    void emit('STATE', { from, to });
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
  const engine = new Engine({
    db: host.db,
    drain,
    workerId: config.id,
    concurrency: config.concurrency,
    stepMs: config.stepMs,
    stepJitter: 0.5,
    claimTtlMs: config.claimTtlMs,
    pollMs: 50,
    sweepMs: 100,
    random: seededRandom(config.seed),
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
  const finish = async (report: ShutdownReport): Promise<void> => {
    if (reported) return;
    reported = true;
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
    await emit('REPORT', json);
    await closeAll();
  };
  // The process ends by itself once everything is closed: no process.exit() on the happy path.
  installSignalHandlers(drain, {
    onShutdown: finish,
    exit: (code) => {
      process.exitCode = code;
    },
  });
  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (signalled = true));

  try {
    await drain.start();
  } catch (error) {
    if (signalled) return;
    record({ type: 'failed', error: errorRecord(error) });
    await emit('FAILED', errorJson(error));
    await finish(await drain.shutdown({ reason: 'start failed' }));
    process.exitCode = 1;
    return;
  }
  record({ type: 'ready' });
  await emit('READY', { memberId: config.id, pid: process.pid, group: config.group });
  engine.start();
  void drain.whenResumed()?.then(
    (r) => record({ type: 'resumed', resumed: r.resumed, rounds: r.rounds, complete: r.complete }),
    () => {},
  );
}

main().catch(async (error: unknown) => {
  await emit('FAILED', errorJson(error));
  process.exit(1);
});
