// ioredis, an optional peer dependency (5 or later): its types, and its lazy loading for a `url`.
import type * as ioredis from 'ioredis';
import { importDriver } from '../../internal/import-driver.js';

export type { Redis, RedisOptions } from 'ioredis';

/** The ioredis `Redis` class; `MissingDriverError` when ioredis is not installed. */
export async function loadRedis(): Promise<typeof ioredis.Redis> {
  const driver = await importDriver<typeof ioredis>('ioredis', 'RedisCoordinator');
  return driver.Redis ?? driver.default;
}
