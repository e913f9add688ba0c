/**
 * `shutdown()` settles within `shutdownTimeoutMs` whatever the adapters do (invariant 13), on fake
 * timers so that every duration is exact; and the background resume winds down within its share.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type Coordinator,
  CoordinatorUnavailableError,
  DrainController,
  type DrainControllerOptions,
  type ShutdownReport,
  type WorkflowStore,
} from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { over } from './support/stores.js';

const never = new Promise<never>(() => {});

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
  });
});
afterEach(() => {
  vi.useRealTimers();
});

function member(options: DrainControllerOptions & { store: WorkflowStore }): DrainController {
  return new DrainController({
    group: 'g',
    coordinator: new MemoryCoordinator({ backend: new MemoryBackend() }),
    ...options,
  });
}

/** Advances the fake clock in small steps until `promise` settles (at most `limitMs`). */
async function settle<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
  let done = false;
  const watched = promise.finally(() => {
    done = true;
  });
  for (let t = 0; !done && t < limitMs; t += 10) await vi.advanceTimersByTimeAsync(10);
  return watched;
}

describe('shutdown() budget', () => {
  it('an acquire that ignores its timeout cannot push the shutdown past shutdownTimeoutMs', async () => {
    const inner = new MemoryCoordinator({ backend: new MemoryBackend() });
    let acquires = 0;
    const deaf: Coordinator = {
      capabilities: inner.capabilities,
      join: (g, m, o) => inner.join(g, m, o),
      members: (g, o) => inner.members(g, o),
      close: () => inner.close(),
      acquire: (n, o) => (++acquires === 1 ? inner.acquire(n, o) : never),
    };
    const host = new MemoryWorkflowStore();
    const drain = member({ coordinator: deaf, store: host, shutdownTimeoutMs: 500 });
    await settle(drain.start());
    await settle(drain.whenResumed() as Promise<unknown>);
    const report = await settle(drain.shutdown());
    expect(report.handOff).toBe('lock-timeout');
    expect(report.durationMs).toBeLessThanOrEqual(500);
    await inner.close();
  });

  it('a store that keeps failing cannot push it past the budget either', async () => {
    const host = new MemoryWorkflowStore();
    host.add('w1', 'running');
    const store = over(host, { listActive: () => Promise.reject(new CoordinatorUnavailableError('down')) });
    const drain = member({ store, shutdownTimeoutMs: 800 });
    await settle(drain.start());
    await settle(drain.whenResumed() as Promise<unknown>);
    const report = await settle(drain.shutdown());
    expect(report.handOff).toBe('error');
    expect(report.durationMs).toBeLessThanOrEqual(800);
  });
});

describe('shutdown() and the background resume', () => {
  it('a resume stuck in a store that ignores its signal winds down within its share, and its lease is taken over', async () => {
    const host = new MemoryWorkflowStore();
    host.add('parked-earlier', 'running');
    await host.park(['parked-earlier'], { memberId: 'old', token: undefined });
    host.add('w1', 'running');
    let unparks = 0;
    const store = over(host, {
      unpark: () => {
        unparks++;
        return never;
      },
    });
    const drain = member({ store, shutdownTimeoutMs: 1_000 });
    await settle(drain.start());
    for (let i = 0; i < 10 && unparks === 0; i++) await vi.advanceTimersByTimeAsync(1);
    expect(unparks).toBe(1);
    const report: ShutdownReport = await settle(drain.shutdown());
    const windDown = report.phases.find((p) => p.name === 'resume-wind-down');
    expect(windDown).toMatchObject({ outcome: 'timeout' });
    expect(windDown?.durationMs).toBeLessThanOrEqual(100);
    expect(report).toMatchObject({ handOff: 'parked', parked: 1 });
    expect(report.durationMs).toBeLessThanOrEqual(1_000);
    expect(host.get('w1')?.status).toBe('paused');
  });

  it('a batch the store commits while the resume is told to stop is still counted', async () => {
    const host = new MemoryWorkflowStore();
    for (const id of ['p1', 'p2']) host.add(id, 'running');
    await host.park(['p1', 'p2'], { memberId: 'old', token: undefined });
    const late: { drain?: DrainController } = {};
    const store = over(host, {
      unpark: async (ids, f, o) => {
        // The shutdown begins while this batch is on its way; the commit lands all the same.
        void late.drain?.shutdown();
        await Promise.resolve();
        return host.unpark(ids, f, { ...o, signal: undefined });
      },
    });
    const drain = (late.drain = member({ store, shutdownTimeoutMs: 1_000 }));
    await settle(drain.start());
    const resumed = await settle(drain.whenResumed() as Promise<{ resumed: number }>);
    expect(resumed.resumed).toBe(2);
    // Both were resumed once (and, this member being the last, parked again by its shutdown).
    expect([host.resumeCount('p1'), host.resumeCount('p2')]).toEqual([1, 1]);
    await settle(drain.shutdown());
  });
});
