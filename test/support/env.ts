/** Where the real servers the tests need are: the local ones unless the environment says otherwise. */
export const POSTGRES_URL = process.env.GD_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.GD_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const AMQP_URL = process.env.GD_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A name unique to this test run, so concurrent or repeated runs never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}
