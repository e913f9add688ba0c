/**
 * The options every call of the SQLite adapters takes: `{ signal }`, checked so that a misspelt key or
 * a value that is not an `AbortSignal` is a `ConfigurationError` naming it.
 *
 * @internal
 */

import { checkList } from '../../internal/store-args.js';
import { checkOptionsObject, invalid } from '../../validate.js';

/** `signal` must be an `AbortSignal` or undefined. */
export function checkSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  const signal = value as Partial<AbortSignal> | null;
  if (
    signal === null ||
    typeof signal !== 'object' ||
    typeof signal.aborted !== 'boolean' ||
    typeof signal.addEventListener !== 'function'
  ) {
    invalid('signal', 'an AbortSignal or undefined', value);
  }
  return value as AbortSignal;
}

/** The `{ signal }` options of a call named `where`. */
export function callSignal(where: string, options: unknown): AbortSignal | undefined {
  return checkSignal(checkOptionsObject(where, options, ['signal']).signal);
}

/** The options of a listing: `limit`, `cursor` and `signal`. */
export function checkListCall(
  where: string,
  options: unknown,
): { limit: number; cursor: string | undefined; signal: AbortSignal | undefined } {
  if (options !== null && typeof options === 'object' && !Array.isArray(options) && 'signal' in options) {
    const { signal, ...rest } = options as Record<string, unknown>;
    return { ...checkList(where, rest), signal: checkSignal(signal) };
  }
  return { ...checkList(where, options), signal: undefined };
}

/** Rejects with `signal.reason` as soon as `signal` aborts, else settles with `promise`. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
