import { randomUUID } from 'node:crypto';

/** The servers the adapter suites need: the local ones unless the environment says otherwise. */
export const POSTGRES_URL = process.env.GD_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.GD_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A name unique to this run (a plain identifier), so runs never collide and clean-up is targeted. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

/** Rethrows a connection failure with what to do about it, never echoing the URL (it may hold a password). */
export function serverMissing(what: string, variable: string, error: unknown): Error {
  return new Error(
    `${what} is not reachable (set ${variable} to point the bench at one): ${
      error instanceof Error ? error.message : String(error)
    }`,
    { cause: error },
  );
}
