/** The command line of `npm run bench`. */
export interface Args {
  /** Small sizes and few rounds: checks that the bench runs; writes no document unless `out` is given. */
  readonly quick: boolean;
  /** Where to write the document; defaults to docs/performance.md on full runs of every suite, else nowhere. */
  readonly out: string | undefined;
  /** Suites to run (all when empty). */
  readonly only: readonly string[];
  /** Exit with code 1 when a target is missed (a failed suite always exits 1). */
  readonly strict: boolean;
  readonly help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

  --quick          small sizes and few rounds (about 30 s); writes no document unless --out is given
  --out <path>     write the report here (default: docs/performance.md, on full runs of every suite)
  --only <ids>     run only these suites (comma-separated); writes no document unless --out is given
  --strict         exit with code 1 when a target is missed
  --help           show this help

Servers: PostgreSQL at GD_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
Redis at GD_REDIS_URL (default redis://127.0.0.1:6379).`;

export function parseArgs(argv: readonly string[], known: readonly string[]): Args {
  let quick = false;
  let out: string | undefined;
  let only: string[] = [];
  let strict = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value\n\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--quick':
        quick = true;
        break;
      case '--strict':
        strict = true;
        break;
      case '--help':
      case '-h':
        help = true;
        break;
      case '--out':
        out = value();
        break;
      case '--only':
        only = value()
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        for (const id of only) {
          if (!known.includes(id)) throw new Error(`Unknown suite "${id}"; known: ${known.join(', ')}`);
        }
        break;
      default:
        throw new Error(`Unknown argument "${arg}"\n\n${USAGE}`);
    }
  }
  return { quick, out, only, strict, help };
}
