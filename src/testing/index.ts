/**
 * `graceful-drain/testing`: fault injection for coordinators, and the harness the workflow-store suite
 * drives, with one over the in-memory store. No test runner needed: the vitest contract suites are in
 * `graceful-drain/testing/vitest`.
 *
 * @packageDocumentation
 */
import { MemoryWorkflowStore, type MemoryWorkflowStoreOptions } from '../adapters/memory/index.js';
import type { WorkflowStore } from '../workflow-store.js';

export {
  FaultyCoordinator,
  type CoordinatorOperation,
  type CrashableCoordinator,
} from './faulty-coordinator.js';

/**
 * The host's status of a workflow, as the contract suite drives it; `failed` is where crash recovery moves a
 * workflow past `maxRecoveries` (a harness over a store with no failed status still maps it for `add`).
 */
export type HostStatus = 'running' | 'pausing' | 'paused' | 'succeeded' | 'cancelled' | 'failed';

/** What `workflowStoreContract()` drives: a store plus the host's side of its table. */
export interface WorkflowStoreHarness {
  /** The store under test. */
  readonly store: WorkflowStore;
  /** Adds a workflow to the host's table with this status. */
  add(id: string, status: HostStatus): Promise<void>;
  /** The host's status of a workflow (undefined when unknown); `failed` once recovery moved it there. */
  status(id: string): Promise<HostStatus | undefined>;
  /**
   * Sets the host's status as the host's own code writes it, with no call into the store. A move away
   * from 'pausing' or 'paused' must drop the workflow's park mark: the suite checks it through here.
   */
  setStatus(id: string, status: HostStatus): Promise<void>;
  /** Deletes a workflow from the host's table. Optional: when given, the suite checks its mark goes too. */
  remove?(id: string): Promise<void>;
  /**
   * Sets the workflow's owner as the host's code records it (for example its owner column): the member id
   * of the worker that drives it, or `undefined` for none. Required when the store has the owner capability
   * (`listOwned` and `evictMembers`): the suite checks `listOwned()` through it.
   */
  setOwner?(id: string, owner: string | undefined): Promise<void>;
  /** Drops what the harness created (tables, keys) and closes the store. */
  close(): Promise<void>;
}

/** A {@link WorkflowStoreHarness} whose store is a {@link MemoryWorkflowStore}, reachable as such. */
export interface MemoryStoreHarness extends WorkflowStoreHarness {
  /** The store, with its host side (`add`, `userPause`, `stats`, ...). */
  readonly store: MemoryWorkflowStore;
}

/**
 * A harness over a new, empty {@link MemoryWorkflowStore}: for `workflowStoreContract()`, and for tests
 * that need a store and its host side.
 *
 * @example
 * ```ts
 * workflowStoreContract(() => memoryStoreHarness());
 * workflowStoreContract(() => memoryStoreHarness({ pauseDelayMs: 20 }), { name: 'pausing later' });
 * workflowStoreContract(() => memoryStoreHarness({ owners: true }), { name: 'with owners' });
 * ```
 */
export function memoryStoreHarness(options?: MemoryWorkflowStoreOptions): MemoryStoreHarness {
  const store = new MemoryWorkflowStore(options);
  return {
    store,
    add: async (id: string, status: HostStatus) => store.add(id, status),
    status: async (id: string) => store.get(id)?.status,
    setStatus: async (id: string, status: HostStatus) => store.setStatus(id, status),
    remove: async (id: string) => store.remove(id),
    setOwner: async (id: string, owner: string | undefined) => store.setOwner(id, owner),
    close: () => store.close(),
  };
}
