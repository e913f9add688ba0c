/**
 * An attacker's review of the peer check (docs/protocol.md, "A peer crashes while the group runs"): a failed
 * round retried after a hook already took part of the dead peer's workflows, a retry round's report, a
 * shutdown that begins while a round holds the lock and waits on a store that never answers. On the memory
 * adapters with fake timers.
 */
import { describe, expect, it, vi } from 'vitest';
import { type RecoveryMessage, subscribe } from '../src/index.js';
import {
  counts,
  crash,
  GROUP,
  overriding,
  peerClusters,
  recoveredOnce,
  seed,
  TTL,
  until,
  untouched,
} from './support/peer-cluster.js';

const { cleanup, cluster } = peerClusters();

describe('DrainController peer recovery review: a failed round retried', () => {
  it('with a hook, a retried round hands back only what the failed one had not: the hook never gets a workflow twice, nor is it counted twice', async () => {
    const { store, running } = cluster();
    seed(store);
    const batches: (readonly string[])[] = [];
    let failures = 1;
    const recovery = async (ids: readonly string[]) => {
      batches.push(ids);
      if (ids.includes('a2') && failures-- > 0) throw new Error('the queue is down');
    };
    const a = await running({ recovery, batchSize: 1 });
    const b = await running({ recovery, batchSize: 1 });
    await crash(a);
    await until(() => b.recoveries.length > 1);
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(batches).toEqual([['a1'], ['a2'], ['a2']]);
    expect(counts(store, 'a1')).toEqual({ recoveries: 1, parks: 0, resumes: 0 });
    expect(counts(store, 'a2')).toEqual({ recoveries: 2, parks: 0, resumes: 0 });
  });
});

describe('DrainController peer recovery review: reports', () => {
  it('a round that finishes what a failed round left (the dead peer evicted already) is reported too, with what it recovered', async () => {
    const { store, running } = cluster();
    seed(store);
    let failures = 1;
    const flaky = overriding(store, {
      recover: (...args) =>
        failures-- > 0 ? Promise.reject(new Error('recover failed')) : store.recover(...args),
    });
    const a = await running();
    const b = await running({ store: flaky });
    const published: RecoveryMessage[] = [];
    const unsubscribe = subscribe('recovery', (m) => published.push(m));
    cleanup.push(async () => unsubscribe());
    await crash(a);
    await until(() => store.get('a1')?.status === 'running' && counts(store, 'a1').resumes === 1);
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(b.recoveries).toMatchObject([
      { reason: 'peer-crash', deadMembers: ['m1'], recovered: 0, complete: false },
      { reason: 'peer-crash', deadMembers: ['m1'], found: 2, recovered: 2, complete: true },
    ]);
    expect(published.map((m) => m.recovered)).toEqual([0, 2]);
    for (const id of ['a1', 'a2']) expect([id, counts(store, id)]).toEqual([id, recoveredOnce]);
  });
});

describe('DrainController peer recovery review: shutdown in the middle of a round', () => {
  it('a round waiting on a store that never answers, holding the lock, gives up at once: the hand-off takes the lock and parks, within the budget', async () => {
    const { store, running } = cluster();
    seed(store);
    let hang = true;
    const deaf = overriding(store, {
      // never answers, and ignores its signal
      listOwned: (...args) => (hang ? new Promise(() => {}) : store.listOwned!(...args)),
    });
    const a = await running();
    const b = await running({ store: deaf, shutdownTimeoutMs: 4_000 });
    const evict = vi.spyOn(store, 'evictMembers');
    await crash(a);
    await until(() => evict.mock.calls.length > 0);
    hang = false;
    const stopped = b.drain.shutdown();
    let report: Awaited<typeof stopped> | undefined;
    void stopped.then((r) => (report = r));
    await until(() => report !== undefined, 50, 4_000);
    expect(report).toMatchObject({ handOff: 'parked', lastMember: true, forced: false });
    expect(report?.durationMs).toBeLessThanOrEqual(4_000);
    expect(store.get('a1')).toMatchObject({ parked: true });
  });
});

describe('DrainController peer recovery review: a restarted member under the dead id', () => {
  it('a long round never hands back what a restarted member under the dead id drives (its start gate gave up on the busy lock and opened intake)', async () => {
    const { store, running, member } = cluster();
    store.add('a1', 'running', 'm1');
    store.add('a2', 'running', 'm1');
    store.add('a3', 'running', 'm1');
    const gates: (() => void)[] = [];
    const slow = overriding(store, {
      recover: (...args) =>
        new Promise<void>((resolve) => gates.push(resolve)).then(() => store.recover(...args)),
    });
    const a = await running({ peerCheckIntervalMs: 60_000 });
    const b = await running({ store: slow, batchSize: 1, peerCheckIntervalMs: TTL });
    await crash(a);
    await until(() => gates.length > 0);
    // m1 restarts; its gate waits for the lock the round holds, gives up, and opens its intake
    const again = member({ memberId: 'm1', startTimeoutMs: 500, peerCheckIntervalMs: 60_000 });
    const starting = again.drain.start();
    await until(() => again.drain.state === 'running', 50, 5_000);
    await starting;
    store.add('n1', 'running', 'm1'); // the restarted m1 drives n1
    while (gates.length > 0 || b.recoveries.length === 0) {
      gates.splice(0).forEach((open) => open());
      await vi.advanceTimersByTimeAsync(50);
    }
    await vi.advanceTimersByTimeAsync(5 * TTL);
    gates.splice(0).forEach((open) => open());
    expect(counts(store, 'n1')).toEqual(untouched);
    expect(store.get('n1')).toMatchObject({ status: 'running', parked: false });
    expect(counts(store, 'a1')).toEqual(recoveredOnce);
  });
});

describe('DrainController peer recovery review: re-entry', () => {
  it("a recovery listener that shuts its own controller down from inside the round's report: the shutdown settles, parks as the last member, and no round follows", async () => {
    const { store, running } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    let stopped: ReturnType<typeof b.drain.shutdown> | undefined;
    b.drain.on('recovery', () => {
      stopped ??= b.drain.shutdown();
    });
    await crash(a);
    await until(() => stopped !== undefined);
    let report: Awaited<NonNullable<typeof stopped>> | undefined;
    void stopped?.then((r) => (report = r));
    await until(() => report !== undefined, 50, 10_000);
    expect(report).toMatchObject({ handOff: 'parked', lastMember: true, outcome: 'clean' });
    const spy = vi.spyOn(store, 'readGeneration');
    await vi.advanceTimersByTimeAsync(10 * TTL);
    expect(spy).not.toHaveBeenCalled();
    // recovered, then parked by the last member's hand-off (whose clean end resets the recovery counts)
    expect(store.get('a1')).toMatchObject({ parked: true });
    expect(counts(store, 'a1').resumes).toBe(1);
  });
});

describe('DrainController peer recovery review: many rounds', () => {
  it('a store that fails every other round warns once per run of failures, but the warnings kept for the reports stay bounded', async () => {
    const { store, running } = cluster();
    seed(store);
    let calls = 0;
    const flapping = overriding(store, {
      readGeneration: (...args) =>
        calls++ % 2 === 1 ? Promise.reject(new Error('a blip')) : store.readGeneration(...args),
    });
    const b = await running({ store: flapping, peerCheckIntervalMs: 100 });
    await vi.advanceTimersByTimeAsync(100 * 400);
    expect(b.warnings.length).toBeGreaterThan(100);
    const report = await b.drain.shutdown();
    expect(report.warnings.length).toBeLessThanOrEqual(20);
    expect(report.warnings.at(-1)).toMatchObject({ code: 'recovery', message: /a blip/ });
  });
});

describe('DrainController peer recovery review: memory across rounds', () => {
  /** The signals an `AbortSignal.any()` result was made from, and how many results each one feeds (Node.js internals). */
  const symbol = (of: object, name: string) =>
    Object.getOwnPropertySymbols(of).find((s) => s.description === name) as symbol;
  const sources = (signal: AbortSignal): AbortSignal[] => {
    const refs = (signal as unknown as Record<symbol, Set<WeakRef<AbortSignal>>>)[
      symbol(signal, 'kSourceSignals')
    ];
    return [...(refs ?? [])].map((r) => r.deref()).filter((s): s is AbortSignal => s !== undefined);
  };
  const dependants = (signal: AbortSignal): number =>
    (signal as unknown as Record<symbol, Set<unknown> | undefined>)[symbol(signal, 'kDependantSignals')]
      ?.size ?? 0;

  it("no long-lived signal gains a dependant per round: each round's calls are signalled from a signal of its own", async () => {
    const { store, running } = cluster();
    let last: AbortSignal | undefined;
    const watched = overriding(store, {
      readGeneration: (...args) => {
        last = args[1]?.signal;
        return store.readGeneration(...args);
      },
    });
    await running();
    await running({ store: watched, peerCheckIntervalMs: 10 });
    await vi.advanceTimersByTimeAsync(10 * 1_000);
    expect(last).toBeDefined();
    // A call's signal is linked to its sources by listeners it removes when the call ends (linkSignals),
    // or made by AbortSignal.any() from short-lived ones: no source feeds a growing set of dependants.
    const fed = sources(last as AbortSignal).map(dependants);
    expect(Math.max(0, ...fed)).toBeLessThan(50);
  });
});

describe('DrainController peer recovery review: a user in the middle of a recovery', () => {
  it('a user pauses a recovered workflow the host was still pausing: the later rounds never resume it', async () => {
    const { store, running } = cluster({ owners: true, pauseDelayMs: 300 });
    seed(store);
    const a = await running();
    const b = await running();
    await crash(a);
    await until(() => b.recoveries.length > 0);
    expect(store.get('a1')).toMatchObject({ status: 'pausing', parked: true });
    store.userPause('a1');
    await until(() => store.get('a2')?.status === 'running');
    await vi.advanceTimersByTimeAsync(70 * TTL);
    expect(store.get('a1')).toMatchObject({ status: 'paused', parked: false });
    expect(counts(store, 'a1')).toEqual({ recoveries: 1, parks: 1, resumes: 0 });
    expect(counts(store, 'a2')).toEqual(recoveredOnce);
  });
});

describe('DrainController peer recovery review: a start gate cut short', () => {
  it("a peer-crash recovery the start gate left incomplete is finished by the new member's first peer check, and the hook never gets a workflow twice", async () => {
    const { store, running } = cluster();
    seed(store);
    const batches: string[][] = [];
    let failures = 1;
    const recovery = async (ids: readonly string[]) => {
      batches.push([...ids]);
      if (ids.includes('a2') && failures-- > 0) throw new Error('the queue is down');
    };
    // m1 and m2 run without a peer check of their own: only m3's start gate and check can recover m1.
    const a = await running({ recovery, batchSize: 1, peerCheckIntervalMs: 0 });
    await running({ recovery, batchSize: 1, peerCheckIntervalMs: 0 });
    await crash(a);
    const c = await running({ recovery, batchSize: 1, peerCheckIntervalMs: 100 });
    // The gate evicted m1 (no record lists it any more) and handed a1 back; a2 failed.
    expect(c.recoveries[0]).toMatchObject({ reason: 'peer-crash', complete: false, deadMembers: ['m1'] });
    expect((await store.readGeneration(GROUP)).members.map((m) => m.memberId)).not.toContain('m1');
    await until(() => c.recoveries.length > 1);
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(c.recoveries[1]).toMatchObject({ reason: 'peer-crash', complete: true, recovered: 1 });
    expect(batches).toEqual([['a1'], ['a2'], ['a2']]);
    expect(counts(store, 'b1')).toEqual(untouched);
    expect(counts(store, 'c1')).toEqual(untouched);
  });
});
