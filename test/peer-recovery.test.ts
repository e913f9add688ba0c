/**
 * A live member recovers a crashed peer's workflows while the group runs, through a store that knows who
 * drives what (docs/protocol.md, "A peer crashes while the group runs"): the periodic peer check, the start
 * gate with live peers, and the zombie whose later writes the store rejects. On the memory adapters with
 * fake timers; a crash is a FaultyCoordinator crash (heartbeats stop; the membership expires with its TTL).
 */
import { describe, expect, it, vi } from 'vitest';
import {
  ConfigurationError,
  DrainController,
  EvictedMemberError,
  type RecoveryMessage,
  subscribe,
} from '../src/index.js';
import { MemoryCoordinator } from '../src/adapters/memory/index.js';
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

describe('DrainController peer recovery: the periodic peer check', () => {
  it("recovers exactly a crashed peer's running workflows, once: never a user's pause, nor a live member's; the group keeps running", async () => {
    const { store, running, registered } = cluster();
    seed(store);
    const [a, b, c] = [await running(), await running(), await running()];
    const published: RecoveryMessage[] = [];
    const unsubscribe = subscribe('recovery', (m) => published.push(m));
    cleanup.push(async () => unsubscribe());
    await crash(a);
    const reports = () => [...b.recoveries, ...c.recoveries];
    await until(() => reports().length > 0);
    // several more intervals: nothing is recovered twice
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(reports()).toMatchObject([
      { reason: 'peer-crash', policy: 'resume', deadMembers: ['m1'], found: 2, recovered: 2, complete: true },
    ]);
    expect(published).toMatchObject([{ group: GROUP, reason: 'peer-crash', deadMembers: ['m1'] }]);
    for (const id of ['a1', 'a2']) {
      expect([id, counts(store, id)]).toEqual([id, recoveredOnce]);
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    }
    for (const id of ['a-user', 'a-done', 'b1', 'c1', 'free'])
      expect([id, counts(store, id)]).toEqual([id, untouched]);
    expect(store.get('a-user')?.status).toBe('paused');
    expect(await registered()).toEqual(['m2', 'm3']);
    expect([b.drain.state, c.drain.state]).toEqual(['running', 'running']);
    expect([...b.warnings, ...c.warnings]).toEqual([]);
    // the group still hands off as usual: the last one parks what runs
    await b.drain.shutdown();
    const last = await c.drain.shutdown();
    expect(last).toMatchObject({ handOff: 'parked', parked: 5 });
  });

  it('takes no lock while every registered peer is alive', async () => {
    const { store, running, backend } = cluster();
    seed(store);
    const waits: string[] = [];
    const unsubscribe = subscribe('lockWait', (m) => waits.push(m.reason));
    cleanup.push(async () => unsubscribe());
    await running();
    await running();
    waits.length = 0;
    await vi.advanceTimersByTimeAsync(10 * TTL);
    expect(waits).toEqual([]);
    void backend;
  });

  it('never acts on a dead entry whose member id a live member holds (a restart in its start gate)', async () => {
    const { store, running, backend } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    a.coordinator.crash();
    // m1 again, joined but not registered yet (as in its start gate): its id is live
    const restarted = new MemoryCoordinator({ backend });
    cleanup.push(() => restarted.close());
    const membership = await restarted.join(GROUP, 'm1', { ttlMs: 60_000 });
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(b.recoveries).toEqual([]);
    expect(counts(store, 'a1')).toEqual(untouched);
    await membership.leave();
    await until(() => b.recoveries.length > 0);
    expect(b.recoveries).toMatchObject([{ reason: 'peer-crash', deadMembers: ['m1'], recovered: 2 }]);
  });

  it('skips a round while the start-stop lock is busy, and recovers once it is free', async () => {
    const { store, running, backend } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    const other = new MemoryCoordinator({ backend });
    cleanup.push(() => other.close());
    const lease = await other.acquire(`${GROUP}:start-stop`, { ttlMs: 60_000, timeoutMs: 0 });
    await crash(a);
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(b.recoveries).toEqual([]);
    expect(b.drain.state).toBe('running');
    await lease.release();
    await until(() => b.recoveries.length > 0);
    expect(b.recoveries).toMatchObject([{ reason: 'peer-crash', recovered: 2 }]);
    expect(counts(store, 'a1')).toEqual(recoveredOnce);
  });

  it("policy 'report': counts a crashed peer's workflows once, with a warning; evicts and touches nothing", async () => {
    const { store, running, registered } = cluster();
    seed(store);
    const a = await running({ recovery: 'report' });
    const b = await running({ recovery: 'report' });
    await crash(a);
    await until(() => b.recoveries.length > 0);
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(b.recoveries).toMatchObject([
      { reason: 'peer-crash', policy: 'report', deadMembers: ['m1'], found: 2, recovered: 0 },
    ]);
    expect(b.warnings).toMatchObject([
      { code: 'recovery', message: expect.stringMatching(/peer-crash.*2 found.*m1.*left running/) },
    ]);
    expect(counts(store, 'a1')).toEqual(untouched);
    expect(await registered()).toEqual(['m1', 'm2']);
  });

  it("a recovery hook gets the crashed peer's workflows once, counted, with the generation", async () => {
    const { store, running } = cluster();
    seed(store);
    const batches: (readonly string[])[] = [];
    const recovery = async (ids: readonly string[]) => void batches.push(ids);
    const a = await running({ recovery });
    const b = await running({ recovery });
    await crash(a);
    await until(() => b.recoveries.length > 0);
    await vi.advanceTimersByTimeAsync(5 * TTL);
    expect(batches).toEqual([['a1', 'a2']]);
    expect(b.recoveries).toMatchObject([{ policy: 'hook', recovered: 2 }]);
    expect(counts(store, 'a1')).toEqual({ recoveries: 1, parks: 0, resumes: 0 });
  });

  it('workflows still pausing when recovered are resumed once the host has paused them', async () => {
    const { store, running } = cluster({ owners: true, pauseDelayMs: 300 });
    seed(store);
    const a = await running();
    const b = await running();
    await crash(a);
    await until(() => b.recoveries.length > 0);
    expect(store.get('a1')).toMatchObject({ status: 'pausing', parked: true });
    await until(() => store.get('a1')?.status === 'running' && store.get('a2')?.status === 'running');
    expect(counts(store, 'a1')).toEqual(recoveredOnce);
    expect(store.get('a2')).toMatchObject({ status: 'running', parked: false });
  });

  it('a failed unpark is reported with a warning, and retried by the next round', async () => {
    const { store, running } = cluster();
    seed(store);
    let failures = 1;
    const flaky = overriding(store, {
      unpark: (...args) =>
        failures-- > 0 ? Promise.reject(new Error('unpark failed')) : store.unpark(...args),
    });
    const a = await running();
    const b = await running({ store: flaky });
    await crash(a);
    await until(() => b.recoveries.length > 0);
    expect(b.recoveries).toMatchObject([
      { reason: 'peer-crash', recovered: 2, complete: false, errors: [{ message: 'unpark failed' }] },
    ]);
    expect(b.warnings).toMatchObject([{ code: 'recovery', message: expect.stringMatching(/unpark failed/) }]);
    await until(() => store.get('a1')?.status === 'running');
    for (const id of ['a1', 'a2']) {
      expect([id, counts(store, id)]).toEqual([id, recoveredOnce]);
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    }
  });

  it('a listener that throws breaks nothing: the next crash is recovered too', async () => {
    const { store, running } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    const c = await running();
    b.drain.on('recovery', () => {
      throw new Error('a bad listener');
    });
    c.drain.on('recovery', () => {
      throw new Error('a bad listener');
    });
    await crash(a);
    await until(() => b.recoveries.length + c.recoveries.length > 0);
    const survivor = b.recoveries.length > 0 ? c : b;
    const checker = survivor === b ? c : b;
    await crash(survivor);
    await until(() => checker.recoveries.length > 1 || survivor.recoveries.length > 0, 50, 10 * TTL);
    const all = [...b.recoveries, ...c.recoveries].map((r) => r.deadMembers);
    expect(all).toContainEqual(['m1']);
    expect(all).toHaveLength(2);
    expect(counts(store, 'a1')).toEqual(recoveredOnce);
  });

  it('stops when the shutdown begins: no store call after it, and the hand-off is not held up', async () => {
    const { store, running } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    const stopped = b.drain.shutdown();
    await until(() => b.drain.state === 'stopped');
    expect(await stopped).toMatchObject({ handOff: 'peers-remain', outcome: 'clean' });
    const spy = vi.spyOn(store, 'readGeneration');
    await vi.advanceTimersByTimeAsync(10 * TTL);
    // only the survivor still checks
    expect(spy.mock.calls.length).toBeGreaterThan(0);
    await a.drain.shutdown();
    spy.mockClear();
    await vi.advanceTimersByTimeAsync(10 * TTL);
    expect(spy).not.toHaveBeenCalled();
  });

  it('does nothing without the store capability, nor with peerCheckIntervalMs 0', async () => {
    for (const [storeOptions, options] of [
      [{ owners: false }, {}],
      [{ owners: true }, { peerCheckIntervalMs: 0 }],
    ] as const) {
      const { store, running } = cluster(storeOptions);
      seed(store);
      const a = await running(options);
      const b = await running(options);
      await crash(a);
      await vi.advanceTimersByTimeAsync(10 * TTL);
      expect([storeOptions, b.recoveries]).toEqual([storeOptions, []]);
      expect(counts(store, 'a1')).toEqual(untouched);
    }
  });
});

describe('DrainController peer recovery: the start gate while live peers run', () => {
  it("a member restarted under a crashed member's id recovers its earlier incarnation's workflows before intake opens", async () => {
    const { store, running, registered } = cluster();
    seed(store);
    const a = await running({ peerCheckIntervalMs: 60_000 });
    const b = await running({ peerCheckIntervalMs: 60_000 });
    await crash(a);
    const again = await running({ memberId: 'm1', peerCheckIntervalMs: 60_000 });
    expect(again.recoveries).toMatchObject([
      { reason: 'peer-crash', deadMembers: ['m1'], found: 2, recovered: 2, complete: true },
    ]);
    expect(again.warnings).toEqual([]);
    for (const id of ['a1', 'a2']) expect([id, counts(store, id)]).toEqual([id, recoveredOnce]);
    expect(counts(store, 'b1')).toEqual(untouched);
    expect(await registered()).toEqual(['m1', 'm2']);
    expect(b.recoveries).toEqual([]);
  });

  it("a new member's start gate evicts a crashed peer and recovers its workflows (reason peer-crash, not live-peers)", async () => {
    const { store, running, registered } = cluster();
    seed(store);
    const a = await running({ peerCheckIntervalMs: 60_000 });
    await running({ peerCheckIntervalMs: 60_000 });
    await crash(a);
    const c = await running({ peerCheckIntervalMs: 60_000 });
    expect(c.recoveries).toMatchObject([{ reason: 'peer-crash', deadMembers: ['m1'], recovered: 2 }]);
    expect(await registered()).toEqual(['m2', 'm3']);
    expect(counts(store, 'a1')).toEqual(recoveredOnce);
  });
});

describe('DrainController peer recovery: the zombie', () => {
  it('a member cut off past its TTL and evicted: its later shutdown is rejected by the store (handOff evicted), parking nothing', async () => {
    const { store, running } = cluster();
    seed(store);
    // It cannot reach the coordinator at shutdown: with 'park' it would park the group's workflows unfenced.
    const a = await running({ unreachablePolicy: 'park' });
    const b = await running();
    await crash(a); // cut off from the coordinator; the store still answers it
    await until(() => b.recoveries.length > 0);
    const before = store.snapshot();
    const report = await a.drain.shutdown();
    expect(report).toMatchObject({ handOff: 'evicted', parked: 0, outcome: 'failed' });
    const evicted = report.errors.find((e) => e.error instanceof EvictedMemberError);
    expect(evicted).toMatchObject({
      phase: 'generation',
      error: { code: 'ERR_EVICTED_MEMBER', memberId: 'm1' },
    });
    expect(store.snapshot()).toEqual(before);
    expect(counts(store, 'b1')).toEqual(untouched);
    expect(store.get('b1')).toMatchObject({ status: 'running', parked: false });
  });

  it('after a lonely start recovered a crash, the dead incarnation is evicted: its writes are rejected', async () => {
    const { store, running } = cluster();
    seed(store);
    const a = await running({ unreachablePolicy: 'park' });
    await crash(a);
    const b = await running();
    expect(b.recoveries).toMatchObject([{ reason: 'crash', deadMembers: ['m1'] }]);
    store.add('later', 'running', 'm2');
    const report = await a.drain.shutdown();
    expect(report).toMatchObject({ handOff: 'evicted', parked: 0 });
    expect(store.get('later')).toMatchObject({ status: 'running', parked: false });
  });
});

describe('DrainController peer recovery: a lapsed membership', () => {
  it('a member taken for crashed while its membership was lost re-joins under a new incarnation, warned that its workflows were handed back', async () => {
    const { store, running, registered } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    a.coordinator.fail(['join']); // its re-join fails until healed
    await a.coordinator.dropMembership();
    await until(() => b.recoveries.length > 0);
    expect(b.recoveries).toMatchObject([{ reason: 'peer-crash', deadMembers: ['m1'], recovered: 2 }]);
    a.coordinator.heal();
    await until(() => a.warnings.length > 0);
    expect(a.warnings).toMatchObject([
      { code: 'recovery', message: expect.stringMatching(/evicted while its membership was lost/) },
    ]);
    expect(a.drain.state).toBe('running');
    expect(await registered()).toEqual(['m1', 'm2']);
    // the new incarnation is not evicted: its shutdown hands off as usual
    expect(await a.drain.shutdown()).toMatchObject({ handOff: 'peers-remain', outcome: 'clean' });
    expect(counts(store, 'a1')).toEqual(recoveredOnce);
  });
});

describe('DrainController option peerCheckIntervalMs', () => {
  it('rejects a bad value with a ConfigurationError naming it and the value', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '1000']) {
      const make = () => new DrainController({ peerCheckIntervalMs: bad as number });
      expect(make).toThrow(ConfigurationError);
      expect(make).toThrow(/`peerCheckIntervalMs`/);
    }
  });
});
