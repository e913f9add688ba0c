/**
 * The tools' command lines (the demo and its workers, the chaos harness and its members, the
 * benchmarks), over `node:util` `parseArgs`: `--name value` or `--name=value`, typed values, defaults,
 * an optional environment variable per flag, and errors that name the flag and the value.
 */
import { parseArgs } from 'node:util';

/** A bad command line: the message names the flag and the value. The process exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** One flag: how to read its value, its default, and a line of help. */
export interface Flag<T> {
  readonly help: string;
  /** What the value looks like in the help (`N`, `PATH`); none for a switch (`--help`). */
  readonly value?: string;
  /** The value when the flag is absent. */
  readonly default: T;
  /** Reads a raw value; throws a `UsageError` naming the flag and the value when it cannot. */
  readonly parse: (raw: string, flag: string) => T;
  /** The environment variable read when the flag is absent. */
  readonly env?: string;
  /** A one-letter alias (`h` for `-h`). */
  readonly short?: string;
}

/** The flags of a command, by the name their value is returned under. */
export type FlagSpecs = Record<string, Flag<unknown>>;

/** The parsed values, typed after the specs. */
export type Parsed<S extends FlagSpecs> = {
  -readonly [K in keyof S]: S[K] extends Flag<infer T> ? T : never;
};

/** `workerCount` -> `--worker-count`. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function bad(flag: string, raw: string, expected: string): never {
  throw new UsageError(`${flag} expects ${expected}, got ${JSON.stringify(raw)}`);
}

/** A flag whose value is checked by `accept` (`expected` says what it wants). */
function flag<T>(
  fallback: T,
  help: string,
  value: string,
  expected: string,
  accept: (raw: string) => T | undefined,
  env?: string,
): Flag<T> {
  return {
    help,
    value,
    default: fallback,
    ...(env === undefined ? {} : { env }),
    parse: (raw, name) => accept(raw) ?? bad(name, raw, expected),
  };
}

function wholeNumber(min: number, max: number): (raw: string) => number | undefined {
  return (raw) => {
    const n = Number(raw);
    return raw.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max ? undefined : n;
  };
}

const nonEmpty = (raw: string): string | undefined => (raw.length === 0 ? undefined : raw);

/** A whole number in [min, max]. */
export function integer(min: number, max: number, fallback: number, help: string, value = 'N'): Flag<number> {
  return flag(fallback, help, value, `a whole number from ${min} to ${max}`, wholeNumber(min, max));
}

/** A whole number in [min, max], or nothing. */
export function optionalInteger(
  min: number,
  max: number,
  help: string,
  value = 'N',
): Flag<number | undefined> {
  return flag<number | undefined>(
    undefined,
    help,
    value,
    `a whole number from ${min} to ${max}`,
    wholeNumber(min, max),
  );
}

/** A non-empty string, or nothing. */
export function text(help: string, value = 'TEXT', env?: string): Flag<string | undefined> {
  return flag<string | undefined>(undefined, help, value, 'a non-empty value', nonEmpty, env);
}

/** A non-empty string with a default. */
export function textOr(fallback: string, help: string, value = 'TEXT', env?: string): Flag<string> {
  return flag(fallback, help, value, 'a non-empty value', nonEmpty, env);
}

/** A file path ending with `extension` (`.svg`), or nothing. */
export function filePath(extension: string, help: string, value = 'FILE'): Flag<string | undefined> {
  return flag<string | undefined>(undefined, help, value, `a file path ending in ${extension}`, (raw) =>
    raw.length === 0 || raw.startsWith('--') || !raw.toLowerCase().endsWith(extension) ? undefined : raw,
  );
}

/** One of a fixed set of words. */
export function choice<T extends string>(values: readonly T[], fallback: T, help: string): Flag<T> {
  return flag(fallback, help, values.join('|'), `one of ${values.join(', ')}`, (raw) =>
    values.find((v) => v === raw),
  );
}

/** A switch (`--help`), with an optional one-letter alias. */
export function toggle(help: string, short?: string): Flag<boolean> {
  return { help, default: false, parse: () => true, ...(short === undefined ? {} : { short }) };
}

/** Levenshtein distance, to suggest the flag a typo meant. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * Parses `argv` against `specs`. Flags are `--kebab-case` forms of the spec keys. Unknown flags,
 * missing values, repeated flags and stray arguments are `UsageError`s. A flag that is absent takes
 * its environment variable from `env` (when it has one and it is not empty), else its default.
 */
export function parseFlags<S extends FlagSpecs>(
  argv: readonly string[],
  specs: S,
  env: NodeJS.ProcessEnv = {},
): Parsed<S> {
  const byName = new Map(Object.keys(specs).map((key) => [flagName(key).slice(2), key]));
  const options = Object.fromEntries(
    Object.entries(specs).map(([key, spec]) => [
      flagName(key).slice(2),
      {
        type: spec.value === undefined ? ('boolean' as const) : ('string' as const),
        ...(spec.short === undefined ? {} : { short: spec.short }),
      },
    ]),
  );
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const out: Record<string, unknown> = {};
  for (const token of tokens) {
    if (token.kind !== 'option') {
      const arg = token.kind === 'positional' ? token.value : '--';
      throw new UsageError(`Unexpected argument ${JSON.stringify(arg)}: every option is a --flag`);
    }
    const key = byName.get(token.name);
    if (key === undefined) {
      const near = [...byName.keys()].find((name) => distance(`--${name}`, token.rawName) <= 2);
      throw new UsageError(
        `Unknown option ${token.rawName}${near === undefined ? '' : ` (did you mean --${near}?)`}; see --help`,
      );
    }
    const name = `--${token.name}`;
    if (key in out) throw new UsageError(`${name} is given twice`);
    const spec = specs[key] as Flag<unknown>;
    if (spec.value === undefined) {
      if (token.value !== undefined) {
        throw new UsageError(`${name} takes no value, got ${JSON.stringify(token.value)}`);
      }
      out[key] = spec.parse('', name);
    } else if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      throw new UsageError(`${name} needs a value (${spec.value})`);
    } else out[key] = spec.parse(token.value, name);
  }
  for (const [key, spec] of Object.entries(specs)) {
    if (key in out) continue;
    const fromEnv = spec.env === undefined ? undefined : env[spec.env];
    out[key] =
      fromEnv !== undefined && fromEnv !== ''
        ? spec.parse(fromEnv, `${spec.env} (environment)`)
        : spec.default;
  }
  return out as Parsed<S>;
}

/**
 * Parses a command line with `parse`. On a `UsageError`, prints `<command>: <message>` on stderr (and
 * `help` below it, when given) and exits with code 2.
 */
export function parseCommandLine<T>(command: string, parse: () => T, help?: string): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${command}: ${error.message}${help === undefined ? '' : `\n\n${help}`}`);
    process.exit(2);
  }
}

/** The help text of `specs`, one flag a line. */
export function usage(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([key, spec]) => {
    const short = spec.short === undefined ? '' : `-${spec.short}, `;
    const left = `  ${short}${flagName(key)}${spec.value === undefined ? '' : ` ${spec.value}`}`;
    const fallback =
      spec.default === undefined || spec.default === false ? '' : ` (default: ${String(spec.default)})`;
    const env = spec.env === undefined ? '' : ` [env ${spec.env}]`;
    return [left, `${spec.help}${fallback}${env}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => left.padEnd(width) + right).join('\n');
}
