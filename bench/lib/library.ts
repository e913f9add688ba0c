import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pLimit from 'p-limit';
import type * as Core from 'graceful-drain';
import type * as Memory from 'graceful-drain/memory';
import type * as Postgres from 'graceful-drain/postgres';
import type * as Redis from 'graceful-drain/redis';
import type * as Sqlite from 'graceful-drain/sqlite';

/** The environment variable through which main.ts tells suites where the built library is. */
export const LIBRARY_ENV = 'GD_BENCH_LIBRARY';

/**
 * Imports one entry point of the library as `buildLibrary()` emitted it (typed from the sources).
 * Suites use only the public entry points, as users do.
 */
async function load<T>(entry: string): Promise<T> {
  const dir = process.env[LIBRARY_ENV];
  if (dir === undefined) throw new Error(`${LIBRARY_ENV} is not set: run the bench through bench/main.ts`);
  return (await import(pathToFileURL(join(dir, entry)).href)) as T;
}

export const core = (): Promise<typeof Core> => load('index.js');
export const memory = (): Promise<typeof Memory> => load('adapters/memory/index.js');
export const sqlite = (): Promise<typeof Sqlite> => load('adapters/sqlite/index.js');
export const postgres = (): Promise<typeof Postgres> => load('adapters/postgres/index.js');
export const redis = (): Promise<typeof Redis> => load('adapters/redis/index.js');

/** What the `track()` suites compare: a started DrainController, an unbounded p-limit, a label. */
export async function trackContenders() {
  const { DrainController } = await core();
  const drain = new DrainController();
  await drain.start();
  return { drain, limit: pLimit(Number.POSITIVE_INFINITY), label: { label: 'job' } };
}
