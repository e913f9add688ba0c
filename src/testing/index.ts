/**
 * `graceful-drain/testing`: fault injection for coordinators, and the harness the workflow-store
 * suite drives, with one over the in-memory store. No test runner needed: the vitest contract suites
 * are in `graceful-drain/testing/vitest`.
 *
 * @packageDocumentation
 */
export {
  FaultyCoordinator,
  type CoordinatorOperation,
  type CrashableCoordinator,
} from './faulty-coordinator.js';
export { memoryStoreHarness, type MemoryStoreHarness } from './memory-store-harness.js';
export type { HostStatus, WorkflowStoreHarness } from './workflow-store-harness.js';
