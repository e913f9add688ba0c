/**
 * In-memory adapters: a {@link MemoryCoordinator} (locks and groups shared through a
 * {@link MemoryBackend}) and a {@link MemoryWorkflowStore} (a host table with its park marks).
 * For single-process hosts, demos and tests. Import from `graceful-drain/memory`.
 *
 * @packageDocumentation
 */
export { MemoryBackend } from './backend.js';
export { MemoryCoordinator } from './coordinator.js';
export type { MemoryCoordinatorOptions, MemoryWorkflowStoreOptions } from './options.js';
export { MemoryWorkflowStore } from './workflow-store.js';
export type { MemoryWorkflow, MemoryWorkflowStatus, MemoryWorkflowStoreStats } from './workflow-store.js';
