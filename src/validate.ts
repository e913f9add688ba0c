import { ConfigurationError } from './errors.js';

/** Renders a value for an error message: the value in backticks, then its type (`"x" (string)`). */
export function describeValue(value: unknown): string {
  let shown: string;
  if (typeof value === 'string') shown = JSON.stringify(value);
  else if (typeof value === 'bigint') shown = `${value}n`;
  else if (typeof value === 'function') shown = value.name ? `[function ${value.name}]` : '[function]';
  else if (typeof value === 'symbol') shown = value.toString();
  else if (value === null || typeof value !== 'object') shown = String(value);
  else if (Array.isArray(value)) shown = '[array]';
  else shown = '[object]';
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `\`${shown}\` (${type})`;
}

/** Throws a {@link ConfigurationError} naming the option and the value it got. */
export function invalid(name: string, expected: string, value: unknown): never {
  throw new ConfigurationError(`Expected \`${name}\` to be ${expected}, got ${describeValue(value)}`);
}

/** The longest delay a Node.js timer accepts; a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** A duration in milliseconds greater than zero that a timer can wait (at most about 24.8 days). */
export function checkPositive(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    invalid(name, 'a finite number greater than 0', value);
  }
  if (value > MAX_TIMER_MS) invalid(name, `a number of milliseconds up to ${MAX_TIMER_MS}`, value);
  return value;
}

/** A duration in milliseconds from zero up that a timer can wait. */
export function checkNonNegative(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    invalid(name, 'a finite number from 0 up', value);
  }
  if (value > MAX_TIMER_MS) invalid(name, `a number of milliseconds up to ${MAX_TIMER_MS}`, value);
  return value;
}

/** A whole number from one up (a batch size, a count). */
export function checkCount(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    invalid(name, 'a whole number from 1 up', value);
  }
  return value;
}

/** A non-empty string. */
export function checkName(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) invalid(name, 'a non-empty string', value);
  return value;
}

/** One of a fixed set of strings. */
export function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    invalid(name, `one of ${allowed.map((a) => `\`${a}\``).join(', ')}`, value);
  }
  return value as T;
}

/** A boolean. */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') invalid(name, 'a boolean', value);
  return value;
}

/** Whether `value` is an object with each of the methods `names`: a structural check. */
export function hasMethods(value: unknown, ...names: string[]): value is Record<string, unknown> {
  const o = value as Record<string, unknown> | null;
  return o !== null && typeof o === 'object' && names.every((name) => typeof o[name] === 'function');
}

/** A function. */
export function checkFunction<T>(name: string, value: unknown): T {
  if (typeof value !== 'function') invalid(name, 'a function', value);
  return value as T;
}

/**
 * Checks that `options` is a plain object (or undefined) whose keys are all known, so that a misspelt
 * option (`shutdownTimeoutMS`) is an error rather than silently ignored.
 */
export function checkOptionsObject(
  where: string,
  options: unknown,
  known: readonly string[],
): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    invalid(`${where} options`, 'an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const close = known.find((k) => k.toLowerCase() === key.toLowerCase());
      const hint = close === undefined ? `known options: ${known.join(', ')}` : `did you mean \`${close}\`?`;
      throw new ConfigurationError(`Unknown option \`${key}\` for ${where} (${hint})`);
    }
  }
  return options as Record<string, unknown>;
}
