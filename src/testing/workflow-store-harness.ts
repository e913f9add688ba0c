/**
 * What `workflowStoreContract()` drives: a store plus the host's side of its table. No test runner
 * here, so `graceful-drain/testing` imports without vitest.
 */
import type { WorkflowStore } from '../workflow-store.js';

/** The host's status of a workflow, as the contract suite drives it. */
export type HostStatus = 'running' | 'pausing' | 'paused' | 'succeeded' | 'cancelled';

/** A store plus the host's side of its table, for the contract suite. */
export interface WorkflowStoreHarness {
  /** The store under test. */
  readonly store: WorkflowStore;
  /** Adds a workflow to the host's table with this status. */
  add(id: string, status: HostStatus): Promise<void>;
  /** The host's status of a workflow (undefined when unknown). */
  status(id: string): Promise<HostStatus | undefined>;
  /**
   * Sets the host's status, as the host engine or a user would (e.g. 'pausing' to 'paused'): the way
   * the host's own code writes it, with no call into the store. A move away from 'pausing' or
   * 'paused' must drop the workflow's park mark (the contract), so the suite checks it through here.
   */
  setStatus(id: string, status: HostStatus): Promise<void>;
  /**
   * Deletes a workflow from the host's table, as the host's own code would. Optional: when given, the
   * suite checks that the deleted workflow's park mark goes with it.
   */
  remove?(id: string): Promise<void>;
  /** Drops what the harness created (tables, keys) and closes the store. */
  close(): Promise<void>;
}
