/**
 * A small, dependency-free flag parser shared by the demo's orchestrator and its workers: `--name value`
 * or `--name=value`, typed values, defaults, and errors that name the flag and the value.
 */

/** A bad command line: the message names the flag and the value. The process exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** One flag: how to read its value, its default, and a line of help. */
export interface Flag<T> {
  /** The help text. */
  readonly help: string;
  /** What the value looks like in the help (`N`, `PATH`); omit for a switch. */
  readonly value?: string;
  /** The value when the flag is absent (`undefined`: none). */
  readonly default: T;
  /** Reads a raw value; throws a `UsageError` naming the flag and the value when it cannot. */
  readonly parse: (raw: string, flag: string) => T;
  /** A switch: takes no value (`--help`). */
  readonly switch?: boolean;
  /** The environment variable read when the flag is absent. */
  readonly env?: string;
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

/** A whole number in [min, max]. */
export function integer(min: number, max: number, fallback: number, help: string, value = 'N'): Flag<number> {
  return {
    help,
    value,
    default: fallback,
    parse: (raw, flag) => {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max) {
        bad(flag, raw, `a whole number from ${min} to ${max}`);
      }
      return n;
    },
  };
}

/** A whole number in [min, max], or nothing. */
export function optionalInteger(
  min: number,
  max: number,
  help: string,
  value = 'N',
): Flag<number | undefined> {
  const inner = integer(min, max, 0, help, value);
  return { help, value, default: undefined, parse: inner.parse };
}

/** A non-empty string, or nothing. */
export function text(help: string, value = 'TEXT', env?: string): Flag<string | undefined> {
  return {
    help,
    value,
    default: undefined,
    ...(env === undefined ? {} : { env }),
    parse: (raw, flag) => {
      if (raw.length === 0) bad(flag, raw, 'a non-empty value');
      return raw;
    },
  };
}

/** A non-empty string with a default. */
export function textOr(fallback: string, help: string, value = 'TEXT', env?: string): Flag<string> {
  return {
    help,
    value,
    default: fallback,
    ...(env === undefined ? {} : { env }),
    parse: (raw, flag) => {
      if (raw.length === 0) bad(flag, raw, 'a non-empty value');
      return raw;
    },
  };
}

/** A file path ending with `extension` (`.svg`), or nothing. */
export function filePath(extension: string, help: string, value = 'FILE'): Flag<string | undefined> {
  return {
    help,
    value,
    default: undefined,
    parse: (raw, flag) => {
      if (raw.length === 0 || raw.startsWith('--') || !raw.toLowerCase().endsWith(extension)) {
        bad(flag, raw, `a file path ending in ${extension}`);
      }
      return raw;
    },
  };
}

/** One of a fixed set of words. */
export function choice<T extends string>(values: readonly T[], fallback: T, help: string): Flag<T> {
  return {
    help,
    value: values.join('|'),
    default: fallback,
    parse: (raw, flag) => {
      if (!values.includes(raw as T)) bad(flag, raw, `one of ${values.join(', ')}`);
      return raw as T;
    },
  };
}

/** A switch (`--help`). */
export function toggle(help: string): Flag<boolean> {
  return { help, default: false, switch: true, parse: () => true };
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
 * missing values, repeated flags and stray arguments are `UsageError`s.
 */
export function parseFlags<S extends FlagSpecs>(
  argv: readonly string[],
  specs: S,
  env: NodeJS.ProcessEnv = {},
): Parsed<S> {
  const byFlag = new Map(Object.keys(specs).map((key) => [flagName(key), key]));
  const seen = new Set<string>();
  const out: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      throw new UsageError(`Unexpected argument ${JSON.stringify(arg)}: every option is a --flag`);
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const key = byFlag.get(flag);
    if (key === undefined) {
      const near = [...byFlag.keys()].find((f) => distance(f, flag) <= 2);
      throw new UsageError(
        `Unknown option ${flag}${near === undefined ? '' : ` (did you mean ${near}?)`}; see --help`,
      );
    }
    if (seen.has(flag)) throw new UsageError(`${flag} is given twice`);
    seen.add(flag);
    const spec = specs[key] as Flag<unknown>;
    if (spec.switch === true) {
      if (eq !== -1) throw new UsageError(`${flag} takes no value, got ${JSON.stringify(arg.slice(eq + 1))}`);
      out[key] = spec.parse('', flag);
      continue;
    }
    let raw: string;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new UsageError(`${flag} needs a value (${spec.value ?? 'a value'})`);
      }
      raw = next;
      i++;
    }
    out[key] = spec.parse(raw, flag);
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

/** The help text of `specs`, one flag a line. */
export function usage(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([key, spec]) => {
    const left = `  ${flagName(key)}${spec.value === undefined ? '' : ` ${spec.value}`}`;
    const fallback =
      spec.default === undefined || spec.default === false ? '' : ` (default: ${String(spec.default)})`;
    const env = spec.env === undefined ? '' : ` [env ${spec.env}]`;
    return [left, `${spec.help}${fallback}${env}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => left.padEnd(width) + right).join('\n');
}
