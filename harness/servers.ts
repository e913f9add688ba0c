/**
 * The servers the tools run against: the local ones unless `GD_REDIS_URL` and `GD_POSTGRES_URL` say
 * otherwise; and what they need around them (names unique to a run, URLs fit to print).
 */
import { randomUUID } from 'node:crypto';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** The Redis server: `GD_REDIS_URL`, or the local one. */
export const REDIS_URL = process.env.GD_REDIS_URL || DEFAULT_REDIS_URL;
/** The PostgreSQL server: `GD_POSTGRES_URL`, or the local one. */
export const POSTGRES_URL = process.env.GD_POSTGRES_URL || DEFAULT_POSTGRES_URL;

/** Where the servers come from, for a `--help` text. */
export const SERVERS_HELP =
  `Servers: GD_REDIS_URL (default ${DEFAULT_REDIS_URL}),\n` +
  `GD_POSTGRES_URL (default ${DEFAULT_POSTGRES_URL}).`;

/** A name unique to this run (a plain identifier), so runs never collide and clean-up is targeted. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

/** `postgres://user:secret@host/db` -> `postgres://user:***@host/db`: never print a password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** The host and port of a server URL. */
export function hostPort(url: string, fallbackPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || fallbackPort) };
}

/** `url` pointed at `127.0.0.1:port` (a proxy in front of the server). */
export function throughPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

/** `postgres://...` with `application_name` set, so that its connections can be found on the server. */
export function withApplicationName(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

/** A connection failure, with what to do about it, never echoing the URL (it may hold a password). */
export function serverMissing(what: string, variable: string, error: unknown): Error {
  return new Error(
    `${what} is not reachable (set ${variable} to point at one): ${
      error instanceof Error ? error.message : String(error)
    }`,
    { cause: error },
  );
}
