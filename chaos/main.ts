/**
 * `npm run chaos`: real member processes (the demo's engine in a DrainController) run workflows on a
 * real backend while a seeded scheduler injects faults; then a calm phase lets everything finish, and a
 * checker asserts the invariants of DESIGN.md over the merged history. See docs/reliability.md.
 *
 *   npm run chaos -- --backend sqlite|redis|postgres --members 3 --seconds 60 --seed 7
 *
 * Exit code: 0 when every check holds, 1 when one does not (or the run could not go on), 2 on a bad
 * flag, 130 when interrupted.
 */
import { writeFileSync } from 'node:fs';
import { BACKENDS } from '../harness/backend.js';
import {
  choice,
  integer,
  optionalInteger,
  parseCommandLine,
  parseFlags,
  text,
  toggle,
  usage,
} from '../harness/flags.js';
import { killAllChildren } from '../harness/process.js';
import { SERVERS_HELP } from '../harness/servers.js';
import { ChaosRun, RunError, type RunResult } from './running/run.js';

const flags = {
  backend: choice(BACKENDS, 'sqlite', 'the coordinator and store under test'),
  members: integer(1, 8, 3, 'member processes running at once'),
  seconds: integer(1, 3600, 30, 'how long faults are injected, in seconds', 'S'),
  seed: optionalInteger(
    0,
    2 ** 32 - 1,
    'seeds every choice of the scheduler (default: from the clock, printed)',
  ),
  history: text('keep the history (one JSON-lines file per member) in this folder', 'DIR'),
  json: text('write the result as JSON to this file', 'FILE'),
  help: toggle('show this help'),
};

/** The run under way, for a last clean-up when something escapes. */
let current: ChaosRun | undefined;

function summary(result: RunResult, command: string): string {
  const lines: string[] = [];
  const kinds = Object.entries(result.faults).sort((a, b) => b[1] - a[1]);
  lines.push(
    '',
    `Faults injected: ${result.faultCount} (${kinds
      .map(
        ([k, n]) =>
          `${k} ${n}${(result.faultMs[k] ?? 0) > 0 ? ` [${((result.faultMs[k] ?? 0) / 1000).toFixed(1)} s]` : ''}`,
      )
      .join(', ')})`,
    `Members started: ${result.membersStarted} · workflows ${result.workflows} · steps committed ${result.stepsCommitted} · ` +
      `run ${(result.durationMs / 1000).toFixed(1)} s`,
    '',
    'Checks',
  );
  for (const c of result.checks) {
    lines.push(
      `  ${c.ok ? '✔' : '✘'} [${c.invariant}] ${c.name}: ${c.ok ? c.detail : `${c.violations.length} violation(s)`}`,
    );
    for (const note of c.notes.slice(0, 5)) lines.push(`      note: ${note}`);
    if (c.notes.length > 5) lines.push(`      note: ... and ${c.notes.length - 5} more`);
  }
  if (!result.ok) lines.push('', result.report);
  lines.push(
    '',
    `checker: ${result.checks.filter((c) => c.ok).length}/${result.checks.length} checks held, ${result.faultCount} faults injected`,
  );
  if (result.historyDir !== undefined) lines.push(`history kept in ${result.historyDir}`);
  lines.push(`reproduce: ${command}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const o = parseCommandLine('chaos', () => parseFlags(process.argv.slice(2), flags));
  if (o.help) {
    console.log(`Usage: npm run chaos -- [options]\n\n${usage(flags)}\n\n${SERVERS_HELP}`);
    return 0;
  }
  const seed = o.seed ?? Date.now() % 2 ** 32;
  const command = `npm run chaos -- --backend ${o.backend} --members ${o.members} --seconds ${o.seconds} --seed ${seed}`;
  const run = (current = new ChaosRun({
    backend: o.backend,
    members: o.members,
    seconds: o.seconds,
    seed,
    historyDir: o.history,
  }));
  const interrupt = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      killAllChildren();
      process.exit(130);
    }
    console.log(`\n${signal}: stopping the run, ending every member, cleaning up (again to quit at once)`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: RunResult;
  try {
    result = await run.run(interrupt.signal);
  } catch (error) {
    if (interrupt.signal.aborted) {
      run.removeFolder();
      return 130;
    }
    console.error(
      `chaos: ${error instanceof RunError ? error.message : ((error as Error).stack ?? String(error))}`,
    );
    console.error(`history kept in ${run.historyDir}\nreproduce: ${command}`);
    return 1;
  }
  console.log(summary(result, command));
  if (o.json !== undefined) {
    writeFileSync(
      o.json,
      `${JSON.stringify({ seed, backend: o.backend, members: o.members, seconds: o.seconds, command, ...result }, null, 2)}\n`,
    );
  }
  if (result.historyDir === undefined || o.history !== undefined) run.removeFolder();
  return result.ok ? 0 : 1;
}

// Whatever ends this process, no member outlives it.
process.on('exit', () => killAllChildren());
process.on('uncaughtException', (error) => {
  console.error(error);
  killAllChildren();
  // Still remove what the run created on the servers, within a bound.
  const cleanup = current?.cleanup() ?? Promise.resolve();
  void Promise.race([cleanup, new Promise((resolve) => setTimeout(resolve, 10_000))]).finally(() =>
    process.exit(1),
  );
});
main().then((code) => {
  process.exitCode = code;
});
