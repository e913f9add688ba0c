/** The command line of `npm run bench`. */
import { type FlagSpecs, parseFlags, text, toggle, usage, UsageError } from '../../harness/flags.js';
import { SERVERS_HELP } from '../../harness/servers.js';

const flags = {
  quick: toggle('small sizes and few rounds (about 30 s); writes no document unless --out is given'),
  out: text('write the report here (default: docs/performance.md, on full runs of every suite)', 'PATH'),
  only: text('run only these suites (comma-separated); writes no document unless --out is given', 'IDS'),
  strict: toggle('exit with code 1 when a target is missed'),
  base: text(
    "an earlier run's --json: its suites that this run does not run complete the report (each marked so)",
    'PATH',
  ),
  json: text('also write the results as JSON here (machine, suites, tables, targets, charts)', 'PATH'),
  help: toggle('show this help', 'h'),
} satisfies FlagSpecs;

/** The help text. */
export const USAGE = `Usage: npm run bench -- [options]\n\n${usage(flags)}\n\n${SERVERS_HELP}`;

/** The command line, parsed. */
export interface Args {
  /** Small sizes and few rounds: checks that the bench runs; writes no document unless `out` is given. */
  readonly quick: boolean;
  /** Where to write the document; defaults to docs/performance.md on full runs of every suite, else nowhere. */
  readonly out: string | undefined;
  /** Suites to run (all when empty). */
  readonly only: readonly string[];
  /** Exit with code 1 when a target is missed (a failed suite always exits 1). */
  readonly strict: boolean;
  /** An earlier run's `--json`, whose other suites complete this run's report. */
  readonly base: string | undefined;
  /** Where to write the results as JSON (a `Run` of render.ts), if anywhere. */
  readonly json: string | undefined;
  readonly help: boolean;
}

/** Parses `argv`; `known` are the suites `--only` may name. Throws a `UsageError`. */
export function parseArgs(argv: readonly string[], known: readonly string[]): Args {
  const o = parseFlags(argv, flags);
  const only = (o.only ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const id of only) {
    if (!known.includes(id)) throw new UsageError(`Unknown suite "${id}"; known: ${known.join(', ')}`);
  }
  return { ...o, only };
}
