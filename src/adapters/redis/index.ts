/**
 * `graceful-drain/redis`: a {@link RedisCoordinator} on ioredis (an optional peer dependency, 5 or
 * later). See docs/adapters/redis.md.
 *
 * @packageDocumentation
 */
export { RedisCoordinator } from './coordinator.js';
export type { RedisCoordinatorOptions, RedisPersistence } from './options.js';
