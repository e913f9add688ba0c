/** Helpers for tests that need a store that misbehaves in one way: a memory store with calls replaced. */
import type { WorkflowStore } from '../../src/index.js';
import type { MemoryWorkflowStore } from '../../src/adapters/memory/index.js';

/** A store that delegates every call to `host`, except the ones given in `overrides`. */
export function over(host: MemoryWorkflowStore, overrides: Partial<WorkflowStore>): WorkflowStore {
  return {
    capabilities: host.capabilities,
    listActive: (o) => host.listActive(o),
    park: (ids, f, o) => host.park(ids, f, o),
    listParked: (o) => host.listParked(o),
    unpark: (ids, f, o) => host.unpark(ids, f, o),
    raiseFence: (f, o) => host.raiseFence(f, o),
    notePaused: (ids, o) => host.notePaused(ids, o),
    readGeneration: (g, o) => host.readGeneration(g, o),
    enterGeneration: (g, m, f, o) => host.enterGeneration(g, m, f, o),
    leaveGeneration: (g, ids, end, f, o) => host.leaveGeneration(g, ids, end, f, o),
    recover: (ids, f, o) => host.recover(ids, f, o),
    ...overrides,
  };
}
