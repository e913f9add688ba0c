/**
 * The `{ signal }` options every call of the PostgreSQL adapters takes, checked so that a misspelt key
 * or a value that is not an `AbortSignal` is a `ConfigurationError` naming it; and the wait that gives
 * up when the signal aborts.
 *
 * @internal
 */

import { bounded } from '../../internal/time.js';
import { checkOptionsObject, invalid } from '../../validate.js';

/** `value` must be an `AbortSignal` or undefined. */
export function checkSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value !== undefined && !(value instanceof AbortSignal)) invalid(name, 'an AbortSignal', value);
  return value;
}

/** The `signal` of a call named `where` that takes only `{ signal }`. */
export function callSignal(where: string, options: unknown): AbortSignal | undefined {
  return checkSignal('signal', checkOptionsObject(where, options, ['signal']).signal);
}

/** Settles with `promise`, or rejects with `signal.reason` as soon as `signal` aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return bounded(promise, 2 ** 31 - 1, () => new Error('unreachable'), signal);
}
