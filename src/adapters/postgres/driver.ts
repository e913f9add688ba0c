/**
 * Lazy loading of `pg`, an optional peer dependency: only users who build a connection from a URL load
 * it, and they get an actionable error when it is missing.
 *
 * @internal
 */

import type * as Pg from 'pg';
import { MissingDriverError } from '../../errors.js';

/** The parts of the `pg` module the adapters construct. */
export interface PgModule {
  readonly Client: typeof Pg.Client;
  readonly Pool: typeof Pg.Pool;
}

/** Imports `pg`, or throws `MissingDriverError` naming `adapter`. */
export async function loadPg(adapter: string): Promise<PgModule> {
  try {
    const module = (await import('pg')) as unknown as { default?: PgModule } & PgModule;
    return module.default ?? module;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new MissingDriverError('pg', adapter, { cause: error });
    }
    throw error;
  }
}
