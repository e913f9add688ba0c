/**
 * In-memory adapters: a {@link MemoryCoordinator} (locks and groups shared through a
 * {@link MemoryBackend}) and a {@link MemoryWorkflowStore} (a host table with its park marks).
 * For single-process hosts, demos and tests. Import from `graceful-drain/memory`.
 *
 * @packageDocumentation
 */
export { MemoryBackend } from './memory-backend.js';
export { MemoryCoordinator, type MemoryCoordinatorOptions } from './memory-coordinator.js';
export {
  MemoryWorkflowStore,
  type MemoryWorkflow,
  type MemoryWorkflowStatus,
  type MemoryWorkflowStoreOptions,
  type MemoryWorkflowStoreStats,
} from './memory-workflow-store.js';
