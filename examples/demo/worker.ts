/**
 * One worker process of the demo cluster: a small workflow engine (harness/engine.ts) wrapped in a
 * DrainController with the backend's coordinator and store. It prints its lines on stdout (see
 * harness/member.ts) and shuts down on SIGTERM/SIGINT through `installSignalHandlers`: drain the steps
 * in flight, leave the group, and, if it is the last member, park the running workflows. At start, it
 * recovers what a crash of the last member left running (`--recovery resume`, the default).
 *
 *   npx tsx examples/demo/worker.ts --db /tmp/demo.db --id worker-1 [--backend sqlite|redis|postgres] ...
 *
 * Every flag can also come from the environment as `GD_WORKER_<FLAG>` (`GD_WORKER_STEP_MS=500`); the
 * server URLs come from `GD_REDIS_URL` and `GD_POSTGRES_URL`. `--help` lists them.
 */
import { appendFileSync } from 'node:fs';
import type { ShutdownReport } from 'graceful-drain';
import type { EngineEvent } from '../../harness/engine.js';
import {
  type FlagSpecs,
  flagName,
  integer,
  parseCommandLine,
  text,
  textOr,
  toggle,
  usage,
} from '../../harness/flags.js';
import {
  errorJson,
  memberLines,
  outcomesJson,
  recoveryReportJson,
  resumeReportJson,
  shutdownReportJson,
} from '../../harness/member.js';
import {
  memberController,
  memberEngine,
  memberFlags,
  observeRecover,
  openMemberBackend,
  parseMemberFlags,
  startMember,
} from '../../harness/member-setup.js';
import { DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL } from '../../harness/servers.js';

/** The worker's flags, with their defaults: the orchestrator passes the ones it changes. */
export const workerFlags = {
  ...memberFlags('demo', 'worker', {
    stepMs: 300,
    claimTtlMs: 5000,
    shutdownTimeoutMs: 5000,
    memberTtlMs: 3000,
    lockTtlMs: 3000,
  }),
  stepJitter: integer(0, 100, 50, 'how much a step duration varies, in % of --step-ms', 'PCT'),
  pollMs: integer(1, 60_000, 100, 'wait when there is nothing to claim', 'MS'),
  sweepMs: integer(
    1,
    60_000,
    100,
    'how often `pausing` workflows with no step in flight become `paused`',
    'MS',
  ),
  history: text('append every engine event and state change to this file, as JSON lines', 'FILE'),
  redisUrl: textOr(DEFAULT_REDIS_URL, 'Redis server (redis)', 'URL', 'GD_REDIS_URL'),
  postgresUrl: textOr(DEFAULT_POSTGRES_URL, 'PostgreSQL server (postgres)', 'URL', 'GD_POSTGRES_URL'),
  help: toggle('show this help'),
} satisfies FlagSpecs;

/** `stepMs` -> `GD_WORKER_STEP_MS`, for the flags that have no environment variable of their own. */
function withEnv<S extends FlagSpecs>(specs: S): S {
  return Object.fromEntries(
    Object.entries(specs).map(([key, spec]) => [
      key,
      spec.env !== undefined || spec.value === undefined
        ? spec
        : { ...spec, env: `GD_WORKER_${flagName(key).slice(2).replace(/-/g, '_').toUpperCase()}` },
    ]),
  ) as S;
}

/** The worker's configuration, parsed. */
export type WorkerConfig = ReturnType<typeof parseWorkerArgs>;

/** Parses the worker's command line (and environment). */
export function parseWorkerArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  return parseMemberFlags(argv, withEnv(workerFlags), env);
}

async function main(): Promise<void> {
  const config = parseCommandLine('worker', () => parseWorkerArgs(process.argv.slice(2)));
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
  const { host, coordinator } = await openMemberBackend(config);
  // Which workflows the start gate recovered, one line per batch (the report has only counts).
  const store = observeRecover(host.store, (results, fence) => {
    const data = { outcomes: outcomesJson(results), token: fence.token?.toString() ?? null };
    history?.({ type: 'recovered', ...data });
    void memberLines.send('RECOVERED', data);
  });
  const drain = memberController(config, coordinator, store);
  drain.on('recovery', (report) => {
    history?.({ type: 'recovery', report: recoveryReportJson(report) });
    void memberLines.send('RECOVERY', recoveryReportJson(report));
  });
  drain.on('stateChange', ({ from, to }) => {
    history?.({ type: 'state', from, to });
    void memberLines.send('STATE', { from, to });
  });
  drain.on('resume', (progress) => {
    history?.({ type: 'resume', progress: resumeReportJson(progress) });
    void memberLines.send('RESUME', resumeReportJson(progress));
  });
  drain.on('park', ({ parked, stillPausing, skipped, token }) => {
    const data = { parked, stillPausing, skipped, token: token === undefined ? null : token.toString() };
    history?.({ type: 'park', ...data });
    void memberLines.send('PARK', data);
  });
  const engine = memberEngine(config, host.db, drain, {
    stepJitter: config.stepJitter / 100,
    pollMs: config.pollMs,
    sweepMs: config.sweepMs,
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
    await memberLines.send('REPORT', shutdownReportJson(report));
  };
  const started = await startMember(config, drain, engine, {
    finish,
    exit: (code) => process.exit(code),
    onReady: () => history?.({ type: 'ready', group: config.group }),
  });
  if (!started) return;
  void drain.whenResumed()?.then(
    (report) => {
      history?.({ type: 'resumed', report: resumeReportJson(report) });
      return memberLines.send('RESUMED', resumeReportJson(report));
    },
    () => {},
  );
}

main().catch(async (error: unknown) => {
  await memberLines.send('FAILED', errorJson(error));
  process.exit(1);
});
