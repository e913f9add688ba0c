/**
 * `graceful-drain/sqlite`: a {@link SqliteCoordinator} for the processes of one host, and a
 * {@link SqliteWorkflowStore} over a table the host already has, both on better-sqlite3 (an optional
 * peer dependency, loaded only when an adapter opens a database from a `path`).
 *
 * @packageDocumentation
 */
export { SqliteCoordinator } from './coordinator.js';
export type { SqliteDatabase, SqliteStatement } from './driver.js';
export type { SqliteCoordinatorOptions, SqliteWorkflowStoreOptions } from './options.js';
export { SqliteWorkflowStore } from './workflow-store.js';
export type { WorkflowStatuses as SqliteWorkflowStatuses } from '../../internal/statuses.js';
