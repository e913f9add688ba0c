/**
 * `graceful-drain/postgres`: a `Coordinator` on session advisory locks and a `WorkflowStore` over the
 * host's own table, both on PostgreSQL through `pg` (an optional peer dependency, `>= 8`).
 *
 * Call {@link migrate} once (at deploy time) before using either adapter: they check the schema
 * version at first use and never change the database on their own.
 *
 * @packageDocumentation
 */
export { PostgresCoordinator } from './coordinator.js';
export type { PgPool, PgPoolClient, PgQueryable, PgQueryResult, PgSessionClient } from './driver.js';
export { migrate, SCHEMA_VERSION, type MigrateResult } from './migrate.js';
export type {
  MarkTriggerMode,
  MigrateOptions,
  PostgresCoordinatorOptions,
  PostgresHostTableOptions,
  PostgresWorkflowStoreOptions,
} from './options.js';
export { PostgresWorkflowStore } from './workflow-store.js';
export type { WorkflowStatuses as PostgresWorkflowStatuses } from '../../internal/statuses.js';
