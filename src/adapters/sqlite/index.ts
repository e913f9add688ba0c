/**
 * `graceful-drain/sqlite`: a {@link SqliteCoordinator} for the processes of one host, and a
 * {@link SqliteWorkflowStore} over a table the host already has, both on Node's built-in `node:sqlite`
 * (Node.js 22.13 and later) or on better-sqlite3 (an optional peer dependency, loaded only when an
 * adapter opens a database from a `path` and `node:sqlite` is not there or not chosen), and
 * {@link openSqliteDatabase} to open a file with the same choice of driver.
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
