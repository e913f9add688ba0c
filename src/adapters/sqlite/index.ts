/**
 * `graceful-drain/sqlite`: a {@link SqliteCoordinator} for the processes of one host, a
 * {@link SqliteWorkflowStore} over a table the host already has, and {@link openSqliteDatabase}, on
 * `node:sqlite` (Node.js 22.13 and later) or better-sqlite3 (an optional peer dependency).
 *
 * @packageDocumentation
 */
export { SqliteCoordinator } from './coordinator.js';
export { openSqliteDatabase } from './driver.js';
export type {
  OpenSqliteDatabaseOptions,
  SqliteDatabase,
  SqliteDriverName,
  SqliteDriverOption,
  SqliteStatement,
} from './driver.js';
export type {
  NodeSqliteDatabaseSync,
  SqliteCoordinatorOptions,
  SqliteWorkflowStoreOptions,
} from './options.js';
export { SqliteWorkflowStore } from './workflow-store.js';
export type { WorkflowStatuses as SqliteWorkflowStatuses } from '../../internal/statuses.js';
