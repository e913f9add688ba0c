import diagnosticsChannel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { DrainController, channels } from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';

const subscriptions: [string, (message: unknown) => void][] = [];
function record(name: string): unknown[] {
  const messages: unknown[] = [];
  const listener = (message: unknown): void => void messages.push(message);
  diagnosticsChannel.subscribe(name, listener);
  subscriptions.push([name, listener]);
  return messages;
}
afterEach(() => {
  for (const [name, listener] of subscriptions.splice(0)) diagnosticsChannel.unsubscribe(name, listener);
});

describe('metrics through node:diagnostics_channel', () => {
  it('publishes state changes, the drain, parks, resumes and lock waits', async () => {
    const state = record(channels.state);
    const drain = record(channels.drain);
    const park = record(channels.park);
    const resume = record(channels.resume);
    const lockWait = record(channels.lockWait);
    const backend = new MemoryBackend();
    const store = new MemoryWorkflowStore();
    store.add('a');
    store.add('b');
    const options = { group: 'metrics', store, batchSize: 1 } as const;
    const first = new DrainController({
      ...options,
      memberId: 'm1',
      coordinator: new MemoryCoordinator({ backend }),
    });
    await first.start();
    await first.whenResumed();
    await first.shutdown();
    const second = new DrainController({
      ...options,
      memberId: 'm2',
      coordinator: new MemoryCoordinator({ backend }),
    });
    await second.start();
    await second.whenResumed();
    await second.shutdown({ force: true });

    expect(state).toContainEqual({
      group: 'metrics',
      memberId: 'm1',
      from: 'running',
      to: 'draining',
      inFlight: 0,
    });
    expect(drain[0]).toMatchObject({ group: 'metrics', memberId: 'm1', inFlightAtStart: 0, aborted: 0 });
    expect(park).toEqual([
      expect.objectContaining({ memberId: 'm1', parked: 1 }),
      expect.objectContaining({ memberId: 'm1', parked: 2 }),
    ]);
    expect(resume).toContainEqual(expect.objectContaining({ memberId: 'm2', resumed: 2, complete: true }));
    expect(lockWait).toContainEqual(
      expect.objectContaining({
        memberId: 'm1',
        lock: 'metrics:start-stop',
        acquired: true,
        reason: 'shutdown',
      }),
    );
    expect(lockWait).toContainEqual(
      expect.objectContaining({ memberId: 'm2', reason: 'resume', acquired: true }),
    );
  });
});
