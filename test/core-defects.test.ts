/**
 * Defects of the core found in review, each pinned by a test that failed before its fix: the start gate's
 * lock release holding a shutdown past its budget, a throwing listener silencing the next ones, state
 * events out of order when a listener shuts down, and bad input accepted silently (a non-controller given
 * to installSignalHandlers(), a misspelt coordinator capability), a membership lost during the start gate
 * leaving a stale incarnation registered, an `escalate` sent after `stopped`, and a late intake stopper's
 * signal not aborting at the drain deadline.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type Coordinator,
  ConfigurationError,
  DrainController,
  type DrainState,
  installSignalHandlers,
  type ShutdownReport,
} from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { FaultyCoordinator } from '../src/testing/index.js';
import { over } from './support/stores.js';

afterEach(() => {
  vi.useRealTimers();
});

/** Advances the fake clock in small steps until `promise` settles (at most `limitMs`). */
async function settle<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
  let done = false;
  const watched = promise.finally(() => {
    done = true;
  });
  for (let t = 0; !done && t < limitMs; t += 10) await vi.advanceTimersByTimeAsync(10);
  return watched;
}

describe('invariant 13: shutdown() settles within shutdownTimeoutMs', () => {
  it('a shutdown that cuts the start gate short is not held up by the gate releasing its lock (release hangs)', async () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
    });
    const coordinator = new FaultyCoordinator(new MemoryCoordinator({ backend: new MemoryBackend() }));
    const host = new MemoryWorkflowStore();
    let reads = 0;
    // The start gate holds the start-stop lease and waits on the store (honouring its signal); from
    // now on the coordinator does not answer a release (it still rejects once its signal aborts).
    const store = over(host, {
      readGeneration: (_group, o) => {
        reads++;
        coordinator.hang(['release']);
        return new Promise((_, reject) =>
          o?.signal?.addEventListener('abort', () => reject(o.signal?.reason), { once: true }),
        );
      },
    });
    const drain = new DrainController({ group: 'g', coordinator, store, shutdownTimeoutMs: 1_000 });
    drain.start().catch(() => {});
    for (let i = 0; i < 20 && reads === 0; i++) await vi.advanceTimersByTimeAsync(1);
    expect(reads).toBe(1);
    const t0 = performance.now();
    const report = await settle(drain.shutdown());
    // It took lockTtlMs (10_000 ms) when the gate's release was bounded by lockTtlMs only, not by the
    // shutdown, which waits for start() to give the mutex back.
    expect(performance.now() - t0).toBeLessThanOrEqual(1_000);
    expect(report.durationMs).toBeLessThanOrEqual(1_000);
  });
});

describe('event listeners', () => {
  it('a listener that throws does not keep the next listeners of the same event from running', async () => {
    const drain = new DrainController({ shutdownTimeoutMs: 2_000 });
    await drain.start();
    // Documented for `idle`: "A listener that throws is logged and changes nothing else".
    drain.on('idle', () => {
      throw new Error('metrics listener bug');
    });
    let idles = 0;
    drain.on('idle', () => idles++);
    drain.on('stopped', () => {
      throw new Error('logging listener bug');
    });
    const reports: ShutdownReport[] = [];
    drain.on('stopped', (report) => reports.push(report));
    await drain.track(() => Promise.resolve());
    const report = await drain.shutdown();
    expect(idles).toBe(1);
    expect(reports).toEqual([report]);
  });

  it('a listener that shuts down on `running` does not make later listeners see `running` after `draining`', async () => {
    const drain = new DrainController({ shutdownTimeoutMs: 2_000 });
    let stopping: Promise<ShutdownReport> | undefined;
    drain.on('stateChange', ({ to }) => {
      if (to === 'running') stopping = drain.shutdown({ reason: 'bad config' });
    });
    // A readiness flag kept from the events, as a host might keep one.
    const states: DrainState[] = [];
    let ready = false;
    drain.on('stateChange', ({ to }) => {
      states.push(to);
      ready = to === 'running';
    });
    await drain.start();
    // Mid-shutdown, the flag registered second said "ready" while the controller was draining.
    expect({ state: drain.state, ready }).toEqual({ state: 'draining', ready: false });
    await stopping;
    expect(states).toEqual(['starting', 'running', 'draining', 'stopped']);
  });
});

describe('invariant 10: bad input gets a clear error naming it', () => {
  it('installSignalHandlers() refuses something that is not a DrainController', () => {
    // Once accepted: the TypeError came only when the first SIGTERM arrived, inside the signal
    // handler, and the process crashed without draining.
    const uninstall: unknown[] = [];
    try {
      expect(() => uninstall.push(installSignalHandlers(undefined as never, { exit: () => {} }))).toThrow(
        ConfigurationError,
      );
      expect(() => uninstall.push(installSignalHandlers({} as never, { exit: () => {} }))).toThrow(/`drain`/);
    } finally {
      for (const u of uninstall) (u as () => void)();
    }
  });

  it('a coordinator whose capabilities.fencing is not a known value is refused', () => {
    const inner = new MemoryCoordinator({ backend: new MemoryBackend() });
    const misdeclared: Coordinator = {
      // A typo for 'none': the protocol would trust its tokens as fences.
      capabilities: { ...inner.capabilities, fencing: 'None' as never },
      acquire: (n, o) => inner.acquire(n, o),
      join: (g, m, o) => inner.join(g, m, o),
      members: (g, o) => inner.members(g, o),
      close: () => inner.close(),
    };
    expect(
      () => new DrainController({ group: 'g', coordinator: misdeclared, store: new MemoryWorkflowStore() }),
    ).toThrow(/coordinator\.capabilities\.fencing/);
  });
});

describe('a membership lost during the start gate', () => {
  it('leaves the re-joined incarnation registered in the generation record, and one resume at a time', async () => {
    const coordinator = new FaultyCoordinator(new MemoryCoordinator({ backend: new MemoryBackend() }));
    const host = new MemoryWorkflowStore();
    let releaseGate!: () => void;
    const gateHeld = new Promise<void>((resolve) => (releaseGate = resolve));
    let gateReading!: () => void;
    const reading = new Promise<void>((resolve) => (gateReading = resolve));
    let reentered!: (incarnation: string) => void;
    const reenter = new Promise<string>((resolve) => (reentered = resolve));
    let entries = 0;
    let listing = 0;
    let listingsAtOnce = 0;
    const store = over(host, {
      // The gate reads the record while the membership is lost and re-joined, then goes on.
      readGeneration: async (group, o) => {
        gateReading();
        await gateHeld;
        return host.readGeneration(group, o);
      },
      enterGeneration: async (group, member, fence, o) => {
        await host.enterGeneration(group, member, fence, o);
        // The first entry is the re-join's (the gate waits): it names the new incarnation.
        if (entries++ === 0) reentered(member.incarnation);
      },
      listParked: async (o) => {
        listing++;
        listingsAtOnce = Math.max(listingsAtOnce, listing);
        try {
          return await host.listParked(o);
        } finally {
          listing--;
        }
      },
    });
    const drain = new DrainController({
      group: 'g',
      memberId: 'm1',
      coordinator,
      store,
      shutdownTimeoutMs: 2_000,
    });
    const started = drain.start();
    await reading;
    await coordinator.dropMembership('m1');
    const incarnation = await reenter;
    releaseGate();
    await started;
    await drain.whenResumed();
    // The gate registered the incarnation it started with after the re-join had registered the new one: a
    // peer's start would then take this live member for dead and recover what it runs.
    const members = await coordinator.members('g');
    expect(members.map((m) => m.incarnation)).toEqual([incarnation]);
    expect((await host.readGeneration('g')).members).toEqual([{ memberId: 'm1', incarnation }]);
    expect(listingsAtOnce).toBe(1);
    await drain.shutdown();
  });
});

describe('shutdown({ force }) after the shutdown finished', () => {
  it('emits no escalate after stopped, and returns the same report', async () => {
    const drain = new DrainController({ shutdownTimeoutMs: 2_000 });
    await drain.start();
    const events: string[] = [];
    drain.on('stopped', () => events.push('stopped'));
    drain.on('escalate', () => events.push('escalate'));
    const report = await drain.shutdown();
    expect(await drain.shutdown({ force: true, reason: 'SIGINT' })).toBe(report);
    expect(events).toEqual(['stopped']);
  });
});

describe('an intake stopper registered once shutdown has begun', () => {
  it('is called at once with a signal that aborts at the drain deadline, as the others get', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const drain = new DrainController({ shutdownTimeoutMs: 1_000, abortGraceMs: 100 });
    await drain.start();
    // A task that ignores its signals: the drain runs to its deadline.
    void drain.track(() => new Promise(() => {})).catch(() => {});
    const stopping = drain.shutdown();
    let late: AbortSignal | undefined;
    drain.onStopIntake((signal) => {
      late = signal;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(late?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(late?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    await stopping;
  });
});
