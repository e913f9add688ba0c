import { describe, expect, it } from 'vitest';
import type { Coordinator } from '../src/index.js';
import { MemoryBackend, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { cleanedUp } from './support/drain.js';

const { member, memory } = cleanedUp();

describe('start()', () => {
  it('a join that lands after startTimeoutMs is left at once: no phantom member', async () => {
    const backend = new MemoryBackend();
    const inner = memory(backend);
    const slow: Coordinator = {
      capabilities: inner.capabilities,
      acquire: (n, o) => inner.acquire(n, o),
      members: (g) => inner.members(g),
      close: () => inner.close(),
      // Ignores its signal, as a sloppy adapter might, and answers late.
      join: async (g, m, o) => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        return inner.join(g, m, { ttlMs: o.ttlMs });
      },
    };
    const a = member({
      memberId: 'a',
      coordinator: slow,
      store: new MemoryWorkflowStore(),
      startTimeoutMs: 50,
    });
    await expect(a.start()).rejects.toMatchObject({ code: 'ERR_DRAIN_TIMEOUT' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await memory(backend).members('g')).toEqual([]);
  });
});
