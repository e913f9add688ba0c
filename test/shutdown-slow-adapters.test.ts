import { describe, expect, it } from 'vitest';
import type { Coordinator, WorkflowStore } from '../src/index.js';
import { MemoryBackend, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { cleanedUp, never } from './support/drain.js';

const { member, memory } = cleanedUp();

describe('shutdown(): the budget holds whatever the adapters do', () => {
  it('a resume stuck in the store is cut short at shutdown, and the last member still parks', async () => {
    const host = new MemoryWorkflowStore();
    host.add('parked-earlier', 'running');
    await host.park(['parked-earlier'], { memberId: 'old', token: undefined });
    host.add('w1');
    const stuck: WorkflowStore = {
      capabilities: host.capabilities,
      raiseFence: (f, o) => host.raiseFence(f, o),
      notePaused: (ids, o) => host.notePaused(ids, o),
      listActive: (o) => host.listActive(o),
      park: (ids, f) => host.park(ids, f),
      listParked: (o) => host.listParked(o),
      unpark: () => never,
    };
    const a = member({ coordinator: memory(), store: stuck, shutdownTimeoutMs: 1_000 });
    await a.start();
    await new Promise((resolve) => setTimeout(resolve, 20)); // the resume is now stuck in unpark
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 1 });
    expect(host.get('w1')?.status).toBe('paused');
  });

  it('an acquire that never answers cannot overrun the budget', async () => {
    const inner = memory();
    let deafNow = false;
    const deaf: Coordinator = {
      capabilities: inner.capabilities,
      join: (g, m, o) => inner.join(g, m, o),
      members: (g) => inner.members(g),
      close: () => inner.close(),
      acquire: (n, o) => (deafNow ? never : inner.acquire(n, o)),
    };
    const a = member({ coordinator: deaf, store: new MemoryWorkflowStore(), shutdownTimeoutMs: 500 });
    await a.start();
    await a.whenResumed();
    deafNow = true;
    const started = performance.now();
    const report = await a.shutdown();
    expect(report.handOff).toBe('lock-timeout');
    // The core bounds the wait itself (the budget's half plus a fixed slack for adapters).
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('a slow park stops short of the budget so the lock is still released', async () => {
    const host = new MemoryWorkflowStore();
    for (let i = 0; i < 50; i++) host.add(`w${String(i).padStart(2, '0')}`);
    const slow: WorkflowStore = {
      capabilities: host.capabilities,
      raiseFence: (f, o) => host.raiseFence(f, o),
      notePaused: (ids, o) => host.notePaused(ids, o),
      listActive: (o) => host.listActive(o),
      listParked: (o) => host.listParked(o),
      unpark: (ids, f) => host.unpark(ids, f),
      park: async (ids, f) => {
        await new Promise((resolve) => setTimeout(resolve, 150));
        return host.park(ids, f);
      },
    };
    const backend = new MemoryBackend();
    const a = member({ coordinator: memory(backend), store: slow, shutdownTimeoutMs: 1_000, batchSize: 5 });
    await a.start();
    await a.whenResumed();
    const report = await a.shutdown();
    expect(report.phases.find((p) => p.name === 'release')).toMatchObject({ outcome: 'ok' });
    // The lock is free right after the report.
    const lease = await memory(backend).acquire('g:start-stop', { ttlMs: 1_000, timeoutMs: 0 });
    await lease.release();
  });
});
