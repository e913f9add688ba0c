/**
 * Regression tests for failure modes found in review: slow or misbehaving adapters, throwing
 * listeners, budgets that must hold whatever the adapters do.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { DrainController, installSignalHandlers } from '../src/index.js';
import type { Coordinator, DrainControllerOptions, WorkflowStore } from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { FaultyCoordinator } from '../src/testing/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

function member(options: DrainControllerOptions): DrainController {
  const drain = new DrainController({ group: 'g', shutdownTimeoutMs: 5_000, ...options });
  cleanup.push(() => drain.shutdown({ force: true }));
  return drain;
}

function memory(backend = new MemoryBackend()): MemoryCoordinator {
  const c = new MemoryCoordinator({ backend });
  cleanup.push(() => c.close());
  return c;
}

const never = new Promise<never>(() => {});

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

describe('listeners that throw', () => {
  it('never break a shutdown: the report still comes and the last member still parks', async () => {
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

  it('a throwing resume listener causes no unhandled rejection', async () => {
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

describe('the budget holds whatever the adapters do', () => {
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
    let calls = 0;
    const deaf: Coordinator = {
      capabilities: inner.capabilities,
      join: (g, m, o) => inner.join(g, m, o),
      members: (g) => inner.members(g),
      close: () => inner.close(),
      acquire: (n, o) => (++calls === 1 ? inner.acquire(n, o) : never),
    };
    const a = member({ coordinator: deaf, store: new MemoryWorkflowStore(), shutdownTimeoutMs: 500 });
    await a.start();
    await a.whenResumed();
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

describe('the hand-off decides right', () => {
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

describe('small things', () => {
  it('an intake stopper that unregisters itself does not make the next one be skipped', async () => {
    const a = member({});
    await a.start();
    const ran: string[] = [];
    a.onStopIntake(() => void ran.push('one'));
    const off = a.onStopIntake(() => {
      off();
      ran.push('two');
    });
    a.onStopIntake(() => void ran.push('three'));
    await a.shutdown();
    expect(ran).toEqual(['one', 'two', 'three']);
  });

  it('onIdle() leaves no listener on a long-lived signal', async () => {
    const a = member({});
    await a.start();
    const app = new AbortController();
    for (let i = 0; i < 20; i++) {
      let done!: () => void;
      void a.track(() => new Promise<void>((resolve) => (done = resolve)));
      const idle = a.onIdle({ signal: app.signal });
      done();
      await idle;
    }
    expect(getEventListeners(app.signal, 'abort')).toHaveLength(0);
    await expect(a.onIdle({ signal: 5 as never })).rejects.toThrow(
      'Expected `signal` to be an AbortSignal, got `5` (number)',
    );
  });

  it('durations a timer cannot wait are refused', () => {
    expect(() => new DrainController({ shutdownTimeoutMs: 3e9 })).toThrow(
      'Expected `shutdownTimeoutMs` to be a number of milliseconds up to 2147483647, got `3000000000` (number)',
    );
  });

  it('a bad label is reported even when intake is closed', () => {
    const a = new DrainController();
    expect(() => a.track(() => 1, { label: 1 as never })).toThrow('Expected `label` to be a string');
  });

  it('installSignalHandlers refuses unknown, uncatchable and duplicate signals are counted once', async () => {
    const a = member({});
    expect(() => installSignalHandlers(a, { signals: ['SIGTREM' as never] })).toThrow(
      'Expected `signals` to be catchable signal names such as "SIGTERM", got `"SIGTREM"` (string)',
    );
    expect(() => installSignalHandlers(a, { signals: ['SIGUSR2', 'SIGKILL'] })).toThrow('got `"SIGKILL"`');
    const before = process.listenerCount('SIGUSR2');
    const uninstall = installSignalHandlers(a, { signals: ['SIGUSR2', 'SIGUSR2'], exit: () => {} });
    expect(process.listenerCount('SIGUSR2')).toBe(before + 1);
    uninstall();
  });
});
