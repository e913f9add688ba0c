/**
 * Runs the checks again on a kept history (the folder a run names in "history kept in ..."), with the
 * host's tables and the marks the run saw at its end (`final-state.json`, beside the history): to look
 * again at a violation, or at what a changed check says about an old run.
 *
 *   npx tsx chaos/checking/recheck.ts DIR [--backend sqlite|redis|postgres]
 *
 * The backend and the seed are read from the history. Exit code: 0 when every check holds, 1 when one
 * does not, 2 on a bad folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParkedWorkflow } from 'graceful-drain';
import type { BackendName } from '../../harness/backend.js';
import type { HostSnapshot } from '../../harness/host-db.js';
import { runChecks } from './checker.js';
import { readHistory } from '../history.js';
import { TIMINGS } from '../faults.js';

function main(): number {
  const [dir] = process.argv.slice(2);
  const state = dir === undefined ? undefined : join(dir, 'final-state.json');
  if (state === undefined || !existsSync(state)) {
    console.error('usage: npx tsx chaos/checking/recheck.ts DIR (a kept history, with its final-state.json)');
    return 2;
  }
  const history = readHistory(dir as string);
  const run = history.find((e) => e.type === 'run');
  if (run?.type !== 'run') {
    console.error(`chaos recheck: no run in ${dir}`);
    return 2;
  }
  const { snapshot, parkedLeft } = JSON.parse(readFileSync(state, 'utf8')) as {
    snapshot: HostSnapshot;
    parkedLeft: (Omit<ParkedWorkflow, 'token'> & { token: string | null })[];
  };
  const { checks, report } = runChecks({
    history,
    snapshot,
    parkedLeft: parkedLeft.map((p) => ({ ...p, token: p.token === null ? undefined : BigInt(p.token) })),
    timings: TIMINGS,
    backend: run.backend as BackendName,
    seed: run.seed,
    problems: [],
  });
  for (const c of checks) {
    console.log(
      `${c.ok ? '✔' : '✘'} [${c.invariant}] ${c.name}: ${c.ok ? c.detail : `${c.violations.length} violation(s)`}`,
    );
    for (const note of c.notes.slice(0, 5)) console.log(`    note: ${note}`);
  }
  if (report !== '') console.log(`\n${report}`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

process.exitCode = main();
