/**
 * `graceful-drain/testing`: the contract suites every adapter runs (with vitest), fault injection
 * for coordinators, and a harness over the in-memory store.
 *
 * @packageDocumentation
 */
export { coordinatorContract, type CoordinatorContractOptions } from './coordinator-contract.js';
export {
  workflowStoreContract,
  type HostStatus,
  type WorkflowStoreContractOptions,
  type WorkflowStoreHarness,
} from './workflow-store-contract.js';
export {
  FaultyCoordinator,
  type CoordinatorOperation,
  type CrashableCoordinator,
} from './faulty-coordinator.js';
export { memoryStoreHarness, type MemoryStoreHarness } from './memory-store-harness.js';
