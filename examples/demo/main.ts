/**
 * `npm run demo`: a cluster of workflow-engine workers on one SQLite file, stopped one at a time and
 * restarted, with graceful-drain parking the running workflows when the last one stops and resuming
 * them when the cluster comes back; it ends with a summary and checks (exit 1 when a check fails).
 *
 *   npx tsx examples/demo/main.ts [--workers 3] [--workflows 24] [--steps 6] [--user-paused 3]
 *     [--backend sqlite|redis|postgres] [--db PATH] [--timeline FILE.svg] [--seed N] [--help]
 *     [--crash [--recovery resume|report] | --crash-peer]
 *
 * `--crash` (crash.ts): the last worker is killed with SIGKILL mid-run instead of stopped, and the next
 * start recovers what it left running. `--crash-peer` (crash-peer.ts): one worker, not the last, is killed
 * with SIGKILL while the others run; their peer check recovers what it left running.
 *
 * See examples/demo/README.md.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { BACKENDS } from '../../harness/backend.js';
import {
  choice,
  type FlagSpecs,
  filePath,
  integer,
  parseCommandLine,
  parseFlags,
  text,
  toggle,
  usage,
  UsageError,
} from '../../harness/flags.js';
import type { Check } from '../../harness/host-checks.js';
import { SERVERS_HELP } from '../../harness/servers.js';
import { CrashScenario } from './crash.js';
import { CrashPeerScenario } from './crash-peer.js';
import { Scenario, ScenarioError } from './scenario.js';
import { formatChecks, formatWorker } from './summary.js';

const flags = {
  workers: integer(1, 16, 3, 'worker processes in the cluster'),
  workflows: integer(1, 5000, 24, 'workflows to run'),
  steps: integer(1, 100, 8, 'steps of each workflow'),
  userPaused: integer(0, 4999, 3, 'workflows a user pauses mid-run (fewer than --workflows)'),
  stepMs: integer(10, 10_000, 300, 'mean duration of a step, in ms', 'MS'),
  backend: choice(BACKENDS, 'sqlite', 'coordinator and store: SQLite, Redis (+ SQLite), or PostgreSQL'),
  db: text('the SQLite file to create (default: one in a temporary folder, removed at the end)', 'PATH'),
  timeline: filePath('.svg', 'draw the run (worker lanes, workflow counts) to this SVG file', 'FILE.svg'),
  json: filePath('.json', 'write the summary and checks as JSON to this file', 'FILE.json'),
  crash: toggle(
    'SIGKILL the last worker mid-run instead of stopping it: the next start recovers its workflows',
  ),
  crashPeer: toggle(
    'SIGKILL one worker (not the last) mid-run while the others run on: their peer check recovers its workflows',
  ),
  recovery: choice(
    ['resume', 'report'] as const,
    'resume',
    "with --crash: the workers' crash recovery (report: only report it, and see the crash strand them)",
  ),
  seed: integer(
    0,
    2 ** 32 - 1,
    1,
    'seed of every random choice (which workflows a user pauses, step durations)',
  ),
  help: toggle('show this help'),
} satisfies FlagSpecs;

type Options = ReturnType<typeof parseFlags<typeof flags>>;

function parseOptions(argv: readonly string[]): Options {
  const o = parseFlags(argv, flags);
  if (o.userPaused >= o.workflows) {
    throw new UsageError(
      `--user-paused expects a whole number below --workflows (${o.workflows}), got "${o.userPaused}"`,
    );
  }
  if (o.crash && o.crashPeer) throw new UsageError('--crash and --crash-peer cannot be given together');
  if (o.crashPeer && o.workers < 2) {
    throw new UsageError(
      `--crash-peer expects --workers of 2 or more (one is killed, the others run on), got "${o.workers}"`,
    );
  }
  if (o.recovery !== 'resume' && !o.crash) {
    throw new UsageError(`--recovery ${o.recovery} needs --crash`);
  }
  if (o.db !== undefined && existsSync(o.db)) {
    throw new UsageError(`--db expects the path of a new file, got "${o.db}", which exists`);
  }
  if (o.db !== undefined && !existsSync(dirname(resolve(o.db)))) {
    throw new UsageError(`--db expects a path in an existing folder, got "${o.db}"`);
  }
  return o;
}

async function main(): Promise<number> {
  const options = parseCommandLine('demo', () => parseOptions(process.argv.slice(2)));
  if (options.help) {
    console.log(
      `Usage: npm run demo -- [options]\n\nA cluster of workflow-engine workers stopped one at a time and restarted:\n` +
        `graceful-drain parks the running workflows when the last one stops and resumes them on restart.\n\n` +
        `With --crash, the last worker is killed mid-run instead: the next start recovers what it held.\n` +
        `With --crash-peer, one worker is killed while the others run on: their peer check recovers what it held.\n\n` +
        `${usage(flags)}\n\n${SERVERS_HELP}`,
    );
    return 0;
  }
  const demo = options.crash
    ? new CrashScenario(options)
    : options.crashPeer
      ? new CrashPeerScenario(options)
      : new Scenario(options);
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    demo.failure ??= new ScenarioError('interrupted (Ctrl-C)');
  });
  let error: unknown;
  try {
    await demo.run();
  } catch (e) {
    error = e;
    console.error(`\ndemo: the run failed: ${(e as Error).message}`);
    await demo.stopEverything();
  }
  const end = demo.clock();
  let ok = error === undefined;
  let checks: Check[] = [];
  try {
    if (demo.prepared) {
      try {
        checks = await demo.checks();
      } catch (e) {
        error ??= e;
        console.error(`\ndemo: could not run the checks: ${(e as Error).message}`);
      }
      ok &&= checks.length > 0 && checks.every((c) => c.ok);
      console.log('\nWorkers (each start; shutdown phases in ms)');
      for (const w of demo.summaries()) for (const line of formatWorker(w)) console.log(`  ${line}`);
      console.log(error === undefined ? '\nChecks' : '\nChecks (of what the run did before it failed)');
      for (const line of formatChecks(checks)) console.log(`  ${line}`);
    }
    if (options.timeline !== undefined && demo.workers.length > 0) {
      await writeFile(options.timeline, demo.timeline(end));
      console.log(`\nTimeline written to ${options.timeline}`);
    }
    if (options.json !== undefined) {
      const json = {
        ok,
        error: error === undefined ? null : (error as Error).message,
        options: { ...options, help: undefined },
        // Where the run kept its state (no URL: they may hold credentials).
        run: {
          group: demo.group,
          db: demo.config.backend === 'postgres' ? null : demo.config.dbPath,
          pgSchema: demo.config.backend === 'postgres' ? demo.config.pgSchema : null,
          redisKeyPrefix: demo.config.backend === 'redis' ? demo.config.redisKeyPrefix : null,
        },
        durationMs: end,
        ...demo.json(),
        workers: demo.summaries(),
        checks,
      };
      await writeFile(options.json, `${JSON.stringify(json, null, 2)}\n`);
    }
  } finally {
    await demo.cleanup();
  }
  if (interrupted) return 130;
  console.log(
    ok
      ? `\nDone in ${(end / 1000).toFixed(1)}s.`
      : `\nThe demo FAILED${error === undefined ? ': a check failed' : `: ${(error as Error).message}`}.`,
  );
  return ok ? 0 : 1;
}

process.exitCode = await main();
