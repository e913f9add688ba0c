import { describe, expect, it } from 'vitest';
import type { Coordinator } from '../src/index.js';
import { MemoryBackend, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { FaultyCoordinator } from '../src/testing/index.js';
import { cleanedUp, never } from './support/drain.js';

const { member, memory } = cleanedUp();

describe('shutdown(): the hand-off outcome', () => {
  it('a lease lost while listing members is reported as lease-lost, not as an unreachable coordinator', async () => {
    const backend = new MemoryBackend();
    const faulty = new FaultyCoordinator(memory(backend));
    const inner = faulty;
    const losing: Coordinator = {
      capabilities: inner.capabilities,
      join: (g, m, o) => inner.join(g, m, o),
      acquire: (n, o) => inner.acquire(n, o),
      close: () => inner.close(),
      members: async () => {
        await faulty.expireLease();
        return never;
      },
    };
    const store = new MemoryWorkflowStore();
    store.add('w1');
    const a = member({ coordinator: losing, store, unreachablePolicy: 'park' });
    await a.start();
    await a.whenResumed();
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'lease-lost', parked: 0 });
    expect(store.get('w1')?.status).toBe('running');
  });

  it('a coordinator without fencing parks without a token', async () => {
    const inner = memory();
    const unfenced: Coordinator = {
      capabilities: { ...inner.capabilities, fencing: 'none' },
      join: (g, m, o) => inner.join(g, m, o),
      acquire: (n, o) => inner.acquire(n, o),
      members: (g) => inner.members(g),
      close: () => inner.close(),
    };
    const store = new MemoryWorkflowStore();
    store.add('w1');
    const a = member({ coordinator: unfenced, store });
    await a.start();
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 1, token: undefined });
    expect(store.highestToken).toBeUndefined();
  });
});
