/**
 * No silent misconfiguration: settings that would strand or resume work are refused, or reported
 * loudly at start.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigurationError, DrainController, type StoreWarning, type WorkflowStore } from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { over } from './support/stores.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
  vi.restoreAllMocks();
});

function coordinator(): MemoryCoordinator {
  const c = new MemoryCoordinator({ backend: new MemoryBackend() });
  cleanup.push(() => c.close());
  return c;
}

const mismatch: StoreWarning = Object.freeze({
  code: 'status-mismatch',
  message: 'Expected `statuses.running` ("running") to match rows of "workflows", saw "RUNNING", "PAUSED"',
});

function diagnosing(warnings: readonly StoreWarning[]): WorkflowStore {
  return over(new MemoryWorkflowStore(), { diagnose: async () => warnings });
}

describe('DrainController options that would strand work', () => {
  it('`group` is required with a coordinator', () => {
    expect(
      () => new DrainController({ coordinator: coordinator(), store: new MemoryWorkflowStore() }),
    ).toThrow(ConfigurationError);
    expect(
      () => new DrainController({ coordinator: coordinator(), store: new MemoryWorkflowStore() }),
    ).toThrow(/`group`.*got `undefined`.*required with a `coordinator`/);
    // Without a coordinator there is no group to share, and the default stays.
    expect(new DrainController().group).toBe('default');
  });

  it('a store without the calls the protocol needs is refused, naming them', () => {
    const old = { ...diagnosing([]), raiseFence: undefined, notePaused: undefined };
    expect(
      () => new DrainController({ group: 'g', coordinator: coordinator(), store: old as never }),
    ).toThrow(/`store` to be a WorkflowStore \(.*raiseFence, notePaused\)/);
  });
});

describe('store warnings at start', () => {
  it('are emitted, and kept in the resume and shutdown reports', async () => {
    const drain = new DrainController({
      group: 'g',
      coordinator: coordinator(),
      store: diagnosing([mismatch]),
    });
    const seen: StoreWarning[] = [];
    drain.on('warning', (w) => seen.push(w));
    await drain.start();
    const resumed = await drain.whenResumed();
    expect(resumed?.warnings).toEqual([mismatch]);
    expect(seen).toEqual([mismatch]);
    const report = await drain.shutdown();
    expect(report.warnings).toEqual([mismatch]);
  });

  it('are printed through process.emitWarning when nobody listens', async () => {
    const emitted = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const drain = new DrainController({
      group: 'g',
      coordinator: coordinator(),
      store: diagnosing([mismatch]),
    });
    await drain.start();
    await drain.whenResumed();
    expect(emitted).toHaveBeenCalledWith(mismatch.message, {
      type: 'GracefulDrainWarning',
      code: 'status-mismatch',
    });
    await drain.shutdown();
  });

  it('none for a store whose mapping fits', async () => {
    const emitted = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const drain = new DrainController({ group: 'g', coordinator: coordinator(), store: diagnosing([]) });
    await drain.start();
    expect((await drain.whenResumed())?.warnings).toEqual([]);
    expect(emitted).not.toHaveBeenCalled();
    expect((await drain.shutdown()).warnings).toEqual([]);
  });
});
