/**
 * `graceful-drain/testing/vitest`: the contract suites every adapter runs, registered with vitest's
 * `describe` and `it` (vitest is an optional peer, needed only here).
 *
 * @packageDocumentation
 */
export { coordinatorContract, type CoordinatorContractOptions } from './coordinator-contract.js';
export { workflowStoreContract, type WorkflowStoreContractOptions } from './workflow-store-contract.js';
