import { describe, expect, it } from 'vitest';
import { MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { cleanedUp } from './support/drain.js';

const { member, memory } = cleanedUp();

describe('on(): a listener that throws', () => {
  it('never breaks a shutdown: the report still comes and the last member still parks', async () => {
    const store = new MemoryWorkflowStore();
    store.add('w1');
    const a = member({ coordinator: memory(), store });
    for (const event of ['drained', 'stateChange', 'park', 'stopped'] as const) {
      a.on(event, () => {
        throw new Error(`${event} listener`);
      });
    }
    await a.start();
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 1 });
    expect(a.state).toBe('stopped');
  });

  it('on `resume` causes no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const a = member({ coordinator: memory(), store: new MemoryWorkflowStore() });
      a.on('resume', () => {
        throw new Error('resume listener');
      });
      await a.start();
      await expect(a.whenResumed()).resolves.toMatchObject({ complete: true });
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
