// One member of the group whose shutdown bench/suites/shutdown-members.ts times: a DrainController on a
// PostgreSQL or Redis coordinator and a PostgresWorkflowStore over the suite's host table, with the
// library's signal handlers, as a worker runs it. Says READY once started (and resumed), and on SIGTERM
// REPORT with its shutdown report, then exits. Argument: one JSON object, a `MemberConfig`.
import pg from 'pg';
import { core, postgres, redis } from './lib/library.js';
import { type MemberConfig, shutdownMemberLines } from './lib/member-lines.js';
import { POSTGRES_URL, REDIS_URL } from '../harness/servers.js';

const errorText = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

async function main(config: MemberConfig): Promise<void> {
  const { DrainController, installSignalHandlers } = await core();
  const { PostgresCoordinator, PostgresWorkflowStore } = await postgres();
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 });
  const store = new PostgresWorkflowStore({
    pool,
    table: `${config.schema}.workflows`,
    schema: config.schema,
  });
  const coordinator =
    config.coordinator === 'postgres'
      ? new PostgresCoordinator({ connectionString: POSTGRES_URL, schema: config.schema })
      : new (await redis()).RedisCoordinator({ url: REDIS_URL, keyPrefix: config.keyPrefix });
  const drain = new DrainController({
    group: config.group,
    memberId: config.memberId,
    coordinator,
    store,
    shutdownTimeoutMs: 120_000,
  });
  let signalledAt = Number.NaN;
  // Before the library's handler: the time the signal arrived.
  process.on('SIGTERM', () => (signalledAt = performance.now()));
  installSignalHandlers(drain, {
    signals: ['SIGTERM'],
    onShutdown: async (report) => {
      const ms = performance.now() - signalledAt;
      await shutdownMemberLines.send('REPORT', {
        memberId: config.memberId,
        handOff: report.handOff,
        parked: report.parked,
        ms,
        phases: report.phases.map((p) => ({ name: p.name, durationMs: p.durationMs })),
        errors: report.errors.map((e) => `${e.phase}: ${errorText(e.error)}`),
      });
      await coordinator.close();
      await store.close();
      await pool.end();
    },
  });
  await drain.start();
  await drain.whenResumed();
  await shutdownMemberLines.send('READY', { memberId: config.memberId });
}

try {
  await main(JSON.parse(process.argv[2] ?? '') as MemberConfig);
} catch (error) {
  await shutdownMemberLines.send('FAILED', { error: errorText(error) });
  process.exit(1);
}
