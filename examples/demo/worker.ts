/**
 * One worker process of the demo cluster: a small workflow engine wrapped in a DrainController with
 * the backend's coordinator and store. It prints its messages on stdout (see `protocol.ts`) and shuts
 * down on SIGTERM/SIGINT through `installSignalHandlers`: drain the steps in flight, leave the group,
 * and, if it is the last member, park the running workflows.
 *
 *   npx tsx examples/demo/worker.ts --db /tmp/demo.db --id worker-1 [--backend sqlite|redis|postgres] ...
 *
 * Every flag can also come from the environment as `GD_WORKER_<FLAG>` (`GD_WORKER_STEP_MS=500`); the
 * server URLs come from `GD_REDIS_URL` and `GD_POSTGRES_URL`. `--help` lists them.
 */
import { appendFileSync } from 'node:fs';
import {
  type Coordinator,
  DrainController,
  installSignalHandlers,
  type ShutdownReport,
} from 'graceful-drain';
import {
  BACKENDS,
  type BackendConfig,
  DEFAULT_POSTGRES_URL,
  DEFAULT_REDIS_URL,
  type Host,
  openCoordinator,
  openHost,
} from './backend.js';
import {
  choice,
  type FlagSpecs,
  flagName,
  integer,
  parseFlags,
  text,
  textOr,
  toggle,
  usage,
  UsageError,
} from './cli.js';
import { Engine, type EngineEvent } from './engine.js';
import {
  encode,
  errorJson,
  type MessageKind,
  type Messages,
  resumeReportJson,
  shutdownReportJson,
} from './protocol.js';
import { seededRandom } from './random.js';

/** The worker's flags, with their defaults: the orchestrator passes the ones it changes. */
export const workerFlags = {
  db: text('the SQLite file of the host tables (sqlite, redis) and of the coordinator (sqlite)', 'PATH'),
  backend: choice(BACKENDS, 'sqlite', 'the coordinator and store to use'),
  id: textOr(`worker-${process.pid}`, 'this member id in the group', 'ID'),
  group: textOr('demo', 'the group shared by the workers', 'NAME'),
  concurrency: integer(1, 64, 2, 'steps run at once'),
  stepMs: integer(1, 600_000, 300, 'mean duration of a step, in ms', 'MS'),
  stepJitter: integer(0, 100, 50, 'how much a step duration varies, in % of --step-ms', 'PCT'),
  claimTtlMs: integer(
    100,
    600_000,
    5000,
    'lease of a claimed workflow: a dead worker frees it after this',
    'MS',
  ),
  pollMs: integer(1, 60_000, 100, 'wait when there is nothing to claim', 'MS'),
  sweepMs: integer(
    1,
    60_000,
    100,
    'how often `pausing` workflows with no step in flight become `paused`',
    'MS',
  ),
  shutdownTimeoutMs: integer(100, 600_000, 5000, 'DrainController shutdownTimeoutMs', 'MS'),
  memberTtlMs: integer(100, 600_000, 3000, 'DrainController memberTtlMs', 'MS'),
  lockTtlMs: integer(100, 600_000, 3000, 'DrainController lockTtlMs', 'MS'),
  resumeIntervalMs: integer(1, 600_000, 200, 'DrainController resumeIntervalMs', 'MS'),
  resumeTimeoutMs: integer(1, 3_600_000, 30_000, 'DrainController resumeTimeoutMs', 'MS'),
  seed: integer(0, 2 ** 32 - 1, 1, 'seed of the step durations'),
  history: text('append every engine event and state change to this file, as JSON lines', 'FILE'),
  redisUrl: textOr(DEFAULT_REDIS_URL, 'Redis server (redis)', 'URL', 'GD_REDIS_URL'),
  redisKeyPrefix: textOr('graceful-drain-demo:', 'prefix of the coordinator keys (redis)', 'PREFIX'),
  postgresUrl: textOr(DEFAULT_POSTGRES_URL, 'PostgreSQL server (postgres)', 'URL', 'GD_POSTGRES_URL'),
  pgSchema: textOr('graceful_drain_demo', 'schema of the host and graceful-drain tables (postgres)', 'NAME'),
  help: toggle('show this help'),
} satisfies FlagSpecs;

/** `stepMs` -> `GD_WORKER_STEP_MS`, for the flags that have no environment variable of their own. */
function withEnv<S extends FlagSpecs>(specs: S): S {
  return Object.fromEntries(
    Object.entries(specs).map(([key, spec]) => [
      key,
      spec.env !== undefined || spec.switch === true
        ? spec
        : { ...spec, env: `GD_WORKER_${flagName(key).slice(2).replace(/-/g, '_').toUpperCase()}` },
    ]),
  ) as S;
}

/** The worker's configuration, parsed. */
export type WorkerConfig = ReturnType<typeof parseWorkerArgs>;

/** Parses the worker's command line (and environment). */
export function parseWorkerArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const specs = withEnv(workerFlags);
  const config = parseFlags(argv, specs, env);
  if (!config.help && config.backend !== 'postgres' && config.db === undefined) {
    throw new UsageError(`--db is required with --backend ${config.backend}`);
  }
  return config;
}

function emit<K extends MessageKind>(kind: K, data: Messages[K]): Promise<void> {
  // Resolves once written, so that a message is out before the process exits.
  return new Promise((resolve) => process.stdout.write(`${encode(kind, data)}\n`, () => resolve()));
}

async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = parseWorkerArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`worker: ${error.message}`);
    process.exit(2);
  }
  if (config.help) {
    console.log(`Usage: tsx examples/demo/worker.ts --db PATH [options]\n\n${usage(withEnv(workerFlags))}`);
    return;
  }
  const memberId = config.id;
  const history =
    config.history === undefined
      ? undefined
      : (event: Record<string, unknown>): void =>
          appendFileSync(
            config.history as string,
            `${JSON.stringify({ at: Date.now(), worker: memberId, pid: process.pid, ...event })}\n`,
          );
  const backend: BackendConfig = {
    backend: config.backend,
    dbPath: config.db ?? '',
    redisUrl: config.redisUrl,
    redisKeyPrefix: config.redisKeyPrefix,
    postgresUrl: config.postgresUrl,
    pgSchema: config.pgSchema,
  };

  let host: Host | undefined;
  let coordinator: Coordinator | undefined;
  try {
    host = await openHost(backend);
    coordinator = await openCoordinator(backend);
  } catch (error) {
    await emit('FAILED', errorJson(error));
    await coordinator?.close();
    await host?.close();
    process.exit(1);
  }
  const drain = new DrainController({
    group: config.group,
    memberId,
    coordinator,
    store: host.store,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    memberTtlMs: config.memberTtlMs,
    lockTtlMs: config.lockTtlMs,
    resumeIntervalMs: config.resumeIntervalMs,
    resumeTimeoutMs: config.resumeTimeoutMs,
  });
  drain.on('stateChange', ({ from, to }) => {
    history?.({ type: 'state', from, to });
    void emit('STATE', { from, to });
  });
  drain.on('resume', (progress) => {
    history?.({ type: 'resume', progress: resumeReportJson(progress) });
    void emit('RESUME', resumeReportJson(progress));
  });
  drain.on('park', ({ parked, stillPausing, skipped, token }) => {
    const data = { parked, stillPausing, skipped, token: token === undefined ? null : token.toString() };
    history?.({ type: 'park', ...data });
    void emit('PARK', data);
  });
  const engine = new Engine({
    db: host.db,
    drain,
    workerId: memberId,
    concurrency: config.concurrency,
    stepMs: config.stepMs,
    stepJitter: config.stepJitter / 100,
    claimTtlMs: config.claimTtlMs,
    pollMs: config.pollMs,
    sweepMs: config.sweepMs,
    random: seededRandom(config.seed),
    onEvent: history === undefined ? undefined : (event: EngineEvent) => history(event),
  });

  let closing: Promise<void> | undefined;
  // Once, whoever asks first (the signal handler, or a failed start): engine, coordinator, database.
  const closeAll = (): Promise<void> =>
    (closing ??= (async () => {
      await engine.stop();
      await coordinator.close();
      await host.close();
    })());
  let reported = false;
  const finish = async (report: ShutdownReport): Promise<void> => {
    await closeAll();
    if (reported) return;
    reported = true;
    history?.({ type: 'report', report: shutdownReportJson(report), stats: engine.stats });
    await emit('REPORT', shutdownReportJson(report));
  };
  installSignalHandlers(drain, { onShutdown: finish });
  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (signalled = true));

  try {
    await drain.start();
  } catch (error) {
    // A signal during the start: the handler shuts down, reports and exits. Anything else: a failed start.
    if (signalled) return;
    await emit('FAILED', errorJson(error));
    const report = await drain.shutdown({ reason: 'start failed' });
    await finish(report);
    process.exit(1);
  }
  history?.({ type: 'ready', group: config.group });
  await emit('READY', { memberId, pid: process.pid, group: config.group });
  engine.start();
  void drain.whenResumed()?.then(
    (report) => {
      history?.({ type: 'resumed', report: resumeReportJson(report) });
      return emit('RESUMED', resumeReportJson(report));
    },
    () => {},
  );
}

main().catch(async (error: unknown) => {
  await emit('FAILED', errorJson(error));
  process.exit(1);
});
