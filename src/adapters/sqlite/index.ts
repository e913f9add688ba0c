/**
 * `graceful-drain/sqlite`: a {@link SqliteCoordinator} for the processes of one host, and a
 * {@link SqliteWorkflowStore} over a table the host already has, both on better-sqlite3 (an optional
 * peer dependency, loaded only when an adapter opens a database from a `path`).
 *
 * @packageDocumentation
 */

export { SqliteCoordinator, type SqliteCoordinatorOptions } from './sqlite-coordinator.js';
export {
  SqliteWorkflowStore,
  type SqliteWorkflowStatuses,
  type SqliteWorkflowStoreOptions,
} from './sqlite-workflow-store.js';
