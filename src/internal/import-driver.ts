/**
 * Lazy loading of a driver package (an optional peer dependency), on first use only.
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
