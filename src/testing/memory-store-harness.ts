import { MemoryWorkflowStore, type MemoryWorkflowStoreOptions } from '../adapters/memory/index.js';
import type { HostStatus, WorkflowStoreHarness } from './workflow-store-harness.js';

/** A {@link WorkflowStoreHarness} whose store is a {@link MemoryWorkflowStore}, reachable as such. */
export interface MemoryStoreHarness extends WorkflowStoreHarness {
  /** The store, with its host side (`add`, `userPause`, `stats`, ...). */
  readonly store: MemoryWorkflowStore;
}

/**
 * A harness over a new, empty {@link MemoryWorkflowStore}: for `workflowStoreContract()`, and for
 * tests that need a store and its host side.
 *
 * @example
 * ```ts
 * workflowStoreContract(() => memoryStoreHarness());
 * workflowStoreContract(() => memoryStoreHarness({ pauseDelayMs: 20 }), { name: 'pausing later' });
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
    close: () => store.close(),
  };
}
