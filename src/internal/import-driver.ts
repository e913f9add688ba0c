/**
 * Lazy loading of a driver package (an optional peer dependency): only the adapters that build a
 * connection themselves load it, on first use, and its absence is an actionable error.
 *
 * @internal
 */
import { MissingDriverError } from '../errors.js';

/** Imports `specifier`; `MissingDriverError` naming it and `adapter` when it is not installed. */
export async function importDriver<T>(specifier: string, adapter: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new MissingDriverError(specifier, adapter, { cause: error });
    }
    throw error;
  }
}
