/**
 * Crash recovery through DrainController on the memory adapters (docs/protocol.md, "After a crash"): the
 * start gate before intake opens, what it recovers after members crash, its policies and cap, and how a
 * shutdown leaves the generation. A crash is a FaultyCoordinator crash (heartbeats stop; the membership
 * expires with its TTL, on fake timers) plus a store that refuses every later call of that member.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DrainClosedError,
  StaleTokenError,
  DrainController,
  type DrainControllerOptions,
  type RecoveryMessage,
  type RecoveryReport,
  type StoreWarning,
  subscribe,
  type WorkflowStore,
} from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { FaultyCoordinator } from '../src/testing/index.js';
import { deferred, fakeTimers, never } from './support/drain.js';

const TTL = 1_000;
const GROUP = 'engines';
const RUNNING = ['r1', 'r2', 'r3', 'r4'];
const METHODS = [
  'listActive',
  'park',
  'listParked',
  'unpark',
  'raiseFence',
  'notePaused',
  'readGeneration',
  'enterGeneration',
  'leaveGeneration',
  'recover',
  'parkPage',
  'unparkPage',
  'recoverPage',
] as const;
type Method = (typeof METHODS)[number];
type Call = (...args: unknown[]) => Promise<unknown>;

/** `inner` with every call going through `around` (the method's name, and the call to make). */
function around(
  inner: WorkflowStore,
  via: (method: Method, call: () => Promise<unknown>) => Promise<unknown>,
) {
  const store: Record<string, unknown> = { capabilities: inner.capabilities };
  for (const method of METHODS) {
    const f = inner[method] as Call | undefined;
    if (typeof f === 'function')
      store[method] = (...args: unknown[]) => via(method, () => f.apply(inner, args));
  }
  return store as unknown as WorkflowStore;
}

/** `inner` with some methods replaced (each gets the original call and its arguments). */
function patched(
  inner: WorkflowStore,
  overrides: Partial<Record<Method, (call: Call, ...args: never[]) => Promise<unknown>>>,
) {
  const store: Record<string, unknown> = { capabilities: inner.capabilities };
  for (const method of METHODS) {
    const f = inner[method] as Call | undefined;
    if (typeof f !== 'function') continue;
    const call: Call = (...args) => f.apply(inner, args);
    const override = overrides[method];
    store[method] = override === undefined ? call : (...args: never[]) => override(call, ...args);
  }
  return store as unknown as WorkflowStore;
}

interface Member {
  readonly drain: DrainController;
  readonly coordinator: FaultyCoordinator;
  readonly warnings: StoreWarning[];
  readonly recoveries: RecoveryReport[];
  /** Like SIGKILL: heartbeats stop, and no later store call of this member lands. */
  crash(): void;
}

const cleanup: (() => Promise<unknown>)[] = [];
beforeEach(() => fakeTimers());
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

function cluster(storeOptions?: { pauseDelayMs?: number; pages?: boolean }) {
  const backend = new MemoryBackend();
  const store = new MemoryWorkflowStore(storeOptions);
  let n = 0;
  const member = (options: DrainControllerOptions = {}): Member => {
    const coordinator = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    let dead = false;
    const guarded = around(options.store ?? store, (_, call) =>
      dead ? Promise.reject(new Error('the member crashed')) : call(),
    );
    const drain = new DrainController({
      group: GROUP,
      memberId: `m${++n}`,
      memberTtlMs: TTL,
      shutdownTimeoutMs: 5_000,
      resumeIntervalMs: 20,
      ...options,
      coordinator,
      store: guarded,
    });
    const warnings: StoreWarning[] = [];
    const recoveries: RecoveryReport[] = [];
    drain.on('warning', (w) => warnings.push(w));
    drain.on('recovery', (r) => recoveries.push(r));
    cleanup.push(async () => {
      await drain.shutdown({ force: true });
      await coordinator.close();
    });
    const crash = (): void => {
      dead = true;
      coordinator.crash();
    };
    return { drain, coordinator, warnings, recoveries, crash };
  };
  /** Starts a member and waits for its background resume. */
  const running = async (options?: DrainControllerOptions): Promise<Member> => {
    const m = member(options);
    await m.drain.start();
    await m.drain.whenResumed();
    return m;
  };
  /** Crashes members, then lets their memberships expire. */
  const crash = async (...members: Member[]): Promise<void> => {
    for (const m of members) m.crash();
    await vi.advanceTimersByTimeAsync(TTL + 1);
  };
  const record = () => store.readGeneration(GROUP);
  const registered = async () => (await record()).members.map((m) => m.memberId);
  return { backend, store, member, running, crash, record, registered };
}

function seed(store: MemoryWorkflowStore): void {
  for (const id of RUNNING) store.add(id, 'running');
  store.add('user-paused', 'paused');
  store.add('done', 'succeeded');
}

/** Settles `promise` while advancing the fake clock (a shutdown's budget, a resume's interval). */
async function settle<T>(promise: Promise<T>, stepMs = 50, maxMs = 30_000): Promise<T> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  for (let t = 0; !done && t < maxMs; t += stepMs) await vi.advanceTimersByTimeAsync(stepMs);
  return promise;
}

const counts = (store: MemoryWorkflowStore, id: string) => ({
  recoveries: store.recoveryCount(id),
  parks: store.parkCount(id),
  resumes: store.resumeCount(id),
});

describe('DrainController crash recovery: the start gate', () => {
  it('runs before intake opens: state starting, track() rejects, until readGeneration answers', async () => {
    const { store, member } = cluster();
    const gate = deferred();
    const a = member({
      store: patched(store, { readGeneration: async (call, ...args) => (await gate.promise, call(...args)) }),
    });
    const starting = a.drain.start();
    await vi.advanceTimersByTimeAsync(100);
    expect([a.drain.state, a.drain.ready]).toEqual(['starting', false]);
    await expect(a.drain.track(() => 1)).rejects.toBeInstanceOf(DrainClosedError);
    expect(a.drain.whenResumed()).toBeUndefined();
    gate.resolve();
    await starting;
    expect(a.drain.state).toBe('running');
    expect(await a.drain.track(() => 1)).toBe(1);
  });

  it('runs before intake opens: state starting, track() rejects, until recover answers', async () => {
    const { store, running, member, crash } = cluster();
    seed(store);
    await crash(await running());
    const gate = deferred();
    const b = member({
      store: patched(store, { recover: async (call, ...args) => (await gate.promise, call(...args)) }),
    });
    const starting = b.drain.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(b.drain.state).toBe('starting');
    await expect(b.drain.track(() => 1)).rejects.toBeInstanceOf(DrainClosedError);
    expect(store.get('r1')).toMatchObject({ status: 'running', parked: false });
    gate.resolve();
    await starting;
    expect(b.drain.state).toBe('running');
    expect(b.recoveries).toMatchObject([{ reason: 'crash', recovered: 4 }]);
  });

  it.each([false, true])(
    'after the last member crashed, recovers every running workflow once; the background resume resumes them (page methods: %s)',
    async (pages) => {
      const { store, running, member, crash, record } = cluster({ pages });
      seed(store);
      const a = await running();
      // parked by an earlier shutdown: resumed by the background resume, never recovered
      store.add('parked');
      await store.park(['parked'], { memberId: 'earlier', token: undefined });
      await crash(a);
      // Spied before the member wraps the store: with the page methods, the pair of calls is never made.
      const pairs = [
        vi.spyOn(store, 'listActive'),
        vi.spyOn(store, 'recover'),
        vi.spyOn(store, 'listParked'),
      ];
      const fused = pages ? [vi.spyOn(store, 'recoverPage'), vi.spyOn(store, 'unparkPage')] : [];

      const published: RecoveryMessage[] = [];
      const unsubscribe = subscribe('recovery', (m) => published.push(m));
      const b = member();
      try {
        await b.drain.start();
      } finally {
        unsubscribe();
      }
      const expected = {
        policy: 'resume',
        reason: 'crash',
        generation: 0,
        deadMembers: ['m1'],
        found: 4,
        recovered: 4,
        failed: 0,
        skipped: 0,
        complete: true,
        errors: [],
      };
      expect(b.recoveries).toMatchObject([expected]);
      expect(published).toMatchObject([{ group: GROUP, memberId: 'm2', ...expected }]);
      expect(b.warnings).toEqual([]);
      const resumed = await b.drain.whenResumed();
      expect(resumed).toMatchObject({ resumed: 5, skipped: 0, complete: true });
      expect(resumed?.recovery).toBe(b.recoveries[0]);
      for (const spy of pairs) expect(spy.mock.calls.length > 0).toBe(!pages);
      for (const spy of fused) expect(spy).toHaveBeenCalled();
      for (const id of RUNNING) {
        expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
        expect(counts(store, id)).toEqual({ recoveries: 1, parks: 1, resumes: 1 });
      }
      expect(store.get('parked')).toMatchObject({ status: 'running', parked: false });
      expect(counts(store, 'parked')).toEqual({ recoveries: 0, parks: 1, resumes: 1 });
      expect(store.get('user-paused')).toEqual({ id: 'user-paused', status: 'paused', parked: false });
      expect(counts(store, 'user-paused')).toEqual({ recoveries: 0, parks: 0, resumes: 0 });
      expect(store.get('done')?.status).toBe('succeeded');
      expect(await record()).toEqual({
        generation: 0,
        members: [{ memberId: 'm2', incarnation: expect.any(String) }],
        dirty: false,
      });

      // The next start finds the record closed: nothing more is recovered.
      const c = member();
      await c.drain.start();
      expect(c.recoveries).toEqual([]);
      expect((await c.drain.whenResumed())?.recovery).toMatchObject({
        reason: 'none',
        found: 0,
        recovered: 0,
      });
    },
  );

  it('after every member crashed at once, the next start recovers each workflow once', async () => {
    const { store, running, crash, registered } = cluster();
    seed(store);
    const members = [await running(), await running(), await running()];
    expect(await registered()).toEqual(['m1', 'm2', 'm3']);
    await crash(...members);
    const d = await running();
    expect(d.recoveries).toMatchObject([
      { reason: 'crash', deadMembers: ['m1', 'm2', 'm3'], found: 4, recovered: 4, complete: true },
    ]);
    for (const id of RUNNING) expect(counts(store, id)).toEqual({ recoveries: 1, parks: 1, resumes: 1 });
    expect(await registered()).toEqual(['m4']);
  });

  it('two members starting at once after a crash recover each workflow exactly once', async () => {
    const { store, running, member, crash, registered } = cluster();
    seed(store);
    await crash(await running());
    const [b, c] = [member(), member()];
    await Promise.all([b.drain.start(), c.drain.start()]);
    await Promise.all([b.drain.whenResumed(), c.drain.whenResumed()]);
    const reports = [b, c].map((m) => m.drain.whenResumed()).map(async (p) => (await p)?.recovery);
    const [rb, rc] = await Promise.all(reports);
    expect([rb?.reason, rc?.reason].sort()).toEqual(['crash', 'none']);
    expect((rb?.recovered ?? 0) + (rc?.recovered ?? 0)).toBe(4);
    for (const id of RUNNING) {
      expect(counts(store, id)).toEqual({ recoveries: 1, parks: 1, resumes: 1 });
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    }
    expect(await registered()).toEqual(['m2', 'm3']);
  });

  it('two members starting at once right after a crash: the gate waits out the dying member, whatever the fresh peer', async () => {
    const { store, running, member, registered } = cluster();
    seed(store);
    const a = await running();
    a.crash();
    // Its heartbeats stopped: near expiry, not gone yet, when the two start.
    await vi.advanceTimersByTimeAsync(TTL / 2 + 50);
    const [b, c] = [member(), member()];
    const starts = Promise.all([b.drain.start(), c.drain.start()]);
    await vi.advanceTimersByTimeAsync(TTL);
    await starts;
    const reports = await Promise.all([b, c].map(async (m) => (await m.drain.whenResumed())?.recovery));
    expect(reports.map((r) => r?.reason).sort()).toEqual(['crash', 'none']);
    for (const id of RUNNING) {
      expect(counts(store, id)).toEqual({ recoveries: 1, parks: 1, resumes: 1 });
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    }
    expect(await registered()).toEqual(['m2', 'm3']);
  });

  it('live registered peers block recovery: reason live-peers, a warning, nothing touched', async () => {
    const { store, running, crash, registered } = cluster();
    seed(store);
    const a = await running();
    await running();
    await crash(a);
    const c = await running();
    expect(c.recoveries).toMatchObject([
      { reason: 'live-peers', deadMembers: ['m1'], found: 0, recovered: 0, complete: false },
    ]);
    expect(c.warnings).toMatchObject([
      { code: 'recovery', message: expect.stringMatching(/live-peers.*dead members: m1.*left running/) },
    ]);
    for (const id of RUNNING) expect(counts(store, id)).toEqual({ recoveries: 0, parks: 0, resumes: 0 });
    expect(await registered()).toEqual(['m1', 'm2', 'm3']);
  });

  it('a re-joined member (membership lost) registers its new incarnation and is not taken for dead', async () => {
    const { store, running, record } = cluster();
    seed(store);
    const a = await running();
    const before = (await record()).members[0]?.incarnation;
    const resumedAgain = new Promise((resolve) => a.drain.once('resume', resolve));
    await a.coordinator.dropMembership();
    await resumedAgain; // the re-join registered, then resumed
    const live = await a.coordinator.members(GROUP);
    expect(live).toHaveLength(1);
    expect(live[0]?.incarnation).not.toBe(before);
    expect((await record()).members).toEqual([{ memberId: 'm1', incarnation: live[0]?.incarnation }]);
    const b = await running();
    expect(b.recoveries).toEqual([]);
    expect((await b.drain.whenResumed())?.recovery).toMatchObject({ reason: 'none', deadMembers: [] });
    for (const id of RUNNING) expect(counts(store, id).recoveries).toBe(0);
  });

  it('a custom store without the four methods: one no-recovery warning, no recovery report', async () => {
    const { store, running } = cluster();
    const basic = ['listActive', 'park', 'listParked', 'unpark', 'raiseFence', 'notePaused'] as const;
    const custom = Object.fromEntries(basic.map((m) => [m, store[m].bind(store)]));
    const a = await running({ store: { capabilities: store.capabilities, ...custom } as WorkflowStore });
    expect(a.warnings).toMatchObject([{ code: 'no-recovery', message: expect.stringMatching(/stranded/) }]);
    const resumed = await a.drain.whenResumed();
    expect(resumed?.recovery).toBeUndefined();
    expect(resumed?.warnings.map((w) => w.code)).toEqual(['no-recovery']);
    expect(a.recoveries).toEqual([]);
  });

  it('a shutdown during the gate stops it: start() rejects, and no recovery warning or event is raised', async () => {
    const { store, member, registered } = cluster();
    let reads = 0;
    const a = member({
      store: patched(store, { readGeneration: (call, ...args) => (++reads === 1 ? never : call(...args)) }),
    });
    const starting = a.drain.start().catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(100);
    const report = await settle(a.drain.shutdown());
    expect(await starting).toBeInstanceOf(DrainClosedError);
    expect(report).toMatchObject({ outcome: 'clean', handOff: 'parked', errors: [] });
    expect([a.warnings, a.recoveries]).toEqual([[], []]);
    expect(await registered()).toEqual([]);
  });

  it('when the store fails, the gate reports it and still registers this member and opens intake', async () => {
    const { store, member, registered } = cluster();
    const failure = new Error('store down');
    const a = member({ store: patched(store, { readGeneration: () => Promise.reject(failure) }) });
    await a.drain.start();
    expect(a.drain.state).toBe('running');
    expect(a.recoveries).toMatchObject([
      { reason: 'none', generation: undefined, complete: false, errors: [failure] },
    ]);
    expect(a.warnings).toMatchObject([{ code: 'recovery', message: expect.stringMatching(/store down/) }]);
    expect(await registered()).toEqual(['m1']);
  });
});

describe('DrainController crash recovery: policies and the cap', () => {
  it("policy 'report' writes nothing and warns at every start while the record stays open", async () => {
    const { store, running, crash, registered } = cluster();
    seed(store);
    await crash(await running());
    const b = await running({ recovery: 'report' });
    expect(b.recoveries).toMatchObject([
      { policy: 'report', reason: 'crash', deadMembers: ['m1'], found: 4, recovered: 0, complete: true },
    ]);
    expect(b.warnings).toMatchObject([
      { code: 'recovery', message: expect.stringMatching(/4 found.*left running/) },
    ]);
    for (const id of RUNNING) {
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
      expect(counts(store, id)).toEqual({ recoveries: 0, parks: 0, resumes: 0 });
    }
    expect(await registered()).toEqual(['m1', 'm2']);
    await crash(b);
    const c = await running({ recovery: 'report' });
    expect(c.recoveries).toMatchObject([{ reason: 'crash', deadMembers: ['m1', 'm2'], found: 4 }]);
    expect(c.warnings).toMatchObject([{ code: 'recovery' }]);
    for (const id of RUNNING) expect(counts(store, id).recoveries).toBe(0);
  });

  it('a hook gets the counted ids in batches, a live signal and the generation; the store only counts them', async () => {
    const { store, running, crash, registered } = cluster();
    seed(store);
    await crash(await running());
    const calls: { ids: readonly string[]; aborted: boolean; generation: number }[] = [];
    const hook = async (
      ids: readonly string[],
      { signal, generation }: { signal: AbortSignal; generation: number },
    ) => {
      expect(signal).toBeInstanceOf(AbortSignal);
      calls.push({ ids, aborted: signal.aborted, generation });
    };
    const b = await running({ recovery: hook, batchSize: 3 });
    expect(calls).toEqual([
      { ids: ['r1', 'r2', 'r3'], aborted: false, generation: 0 },
      { ids: ['r4'], aborted: false, generation: 0 },
    ]);
    expect(b.recoveries).toMatchObject([
      { policy: 'hook', reason: 'crash', found: 4, recovered: 4, complete: true },
    ]);
    for (const id of RUNNING) {
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
      expect(counts(store, id)).toEqual({ recoveries: 1, parks: 0, resumes: 0 });
    }
    expect(await registered()).toEqual(['m2']);
  });

  it('a hook that throws leaves the record open; the member still registers and opens intake', async () => {
    const { store, running, crash, registered } = cluster();
    seed(store);
    await crash(await running());
    const failure = new Error('dispatcher down');
    const b = await running({ recovery: () => Promise.reject(failure) });
    expect(b.drain.state).toBe('running');
    expect(b.recoveries).toMatchObject([
      { policy: 'hook', reason: 'crash', complete: false, errors: [failure] },
    ]);
    expect(b.warnings).toMatchObject([
      { code: 'recovery', message: expect.stringMatching(/dispatcher down/) },
    ]);
    expect(await registered()).toEqual(['m1', 'm2']);
    // Once b is gone too, the next start finds both dead and hands the workflows back again.
    await crash(b);
    const c = await running();
    expect(c.recoveries).toMatchObject([{ reason: 'crash', deadMembers: ['m1', 'm2'], recovered: 4 }]);
    for (const id of RUNNING) expect(counts(store, id)).toEqual({ recoveries: 2, parks: 1, resumes: 1 });
  });

  it('maxRecoveries: a workflow stranded again and again moves to failed once recovered that many times', async () => {
    const { store, running, crash } = cluster();
    store.add('poison');
    const options = { maxRecoveries: 2 };
    let m = await running(options);
    for (let recovery = 1; recovery <= 2; recovery++) {
      await crash(m);
      m = await running(options);
      expect(m.recoveries).toMatchObject([{ reason: 'crash', recovered: 1, failed: 0 }]);
      expect(store.get('poison')).toMatchObject({ status: 'running', parked: false });
      expect(store.recoveryCount('poison')).toBe(recovery);
    }
    await crash(m);
    m = await running(options);
    expect(m.recoveries).toMatchObject([{ reason: 'crash', found: 1, recovered: 0, failed: 1 }]);
    expect(m.warnings).toMatchObject([
      { code: 'recovery', message: expect.stringMatching(/1 moved to failed/) },
    ]);
    expect(store.get('poison')).toMatchObject({ status: 'failed', parked: false });
  });

  it('refuses a bad recovery or maxRecoveries, naming the option and the value', () => {
    const coordinator = new MemoryCoordinator();
    const store = new MemoryWorkflowStore();
    const make = (options: Record<string, unknown>) => () =>
      new DrainController({ group: GROUP, coordinator, store, ...options });
    expect(make({ recovery: 'park' })).toThrow(/`recovery`.*'resume'.*`"park"` \(string\)/);
    expect(make({ recovery: 3 })).toThrow(/`recovery`.*`3` \(number\)/);
    expect(make({ maxRecoveries: -1 })).toThrow(
      /`maxRecoveries` to be a whole number from 0 up, got `-1` \(number\)/,
    );
    expect(make({ maxRecoveries: 1.5 })).toThrow(/`maxRecoveries`.*`1.5` \(number\)/);
    expect(make({ maxRecoveries: '3' })).toThrow(/`maxRecoveries`.*`"3"` \(string\)/);
    expect(make({ maxRecoveries: 0, recovery: 'report' })).not.toThrow();
  });
});

describe('DrainController crash recovery: how a shutdown leaves the generation', () => {
  it('a park cut short by the budget leaves the record dirty; the next start recovers the rest (incomplete-park)', async () => {
    const { store, running, record } = cluster();
    seed(store);
    let parks = 0;
    const hanging = patched(store, {
      park: (call, ids, fence, options: { signal: AbortSignal }) =>
        ++parks === 1
          ? call(ids, fence, options)
          : new Promise((_, reject) =>
              options.signal.addEventListener('abort', () => reject(options.signal.reason)),
            ),
    });
    const a = await running({ store: hanging, batchSize: 2, shutdownTimeoutMs: 2_000 });
    const report = await settle(a.drain.shutdown());
    expect(report).toMatchObject({ handOff: 'aborted', parked: 2 });
    expect(await record()).toEqual({ generation: 0, members: [], dirty: true });

    const b = await running();
    expect(b.recoveries).toMatchObject([
      { reason: 'incomplete-park', deadMembers: [], found: 2, recovered: 2, complete: true },
    ]);
    // r1, r2 parked by a; r3, r4 recovered by b (whose clean end of the dirty record reset their counts)
    for (const id of RUNNING) {
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
      expect(counts(store, id)).toEqual({ recoveries: 0, parks: 1, resumes: 1 });
    }
    expect(await record()).toEqual({
      generation: 1,
      members: [{ memberId: 'm2', incarnation: expect.any(String) }],
      dirty: false,
    });
  });

  it('a lease lost mid-park: the record stays dirty, and the next start recovers what was not parked, uncounted', async () => {
    const { store, member, running, record } = cluster();
    seed(store);
    let parks = 0;
    const a: Member = member({
      batchSize: 2,
      store: patched(store, {
        park: async (call, ...args) => {
          const result = await call(...args);
          if (++parks === 1) await a.coordinator.expireLease();
          return result;
        },
      }),
    });
    await a.drain.start();
    await a.drain.whenResumed();
    const report = await settle(a.drain.shutdown());
    expect(report).toMatchObject({ handOff: 'lease-lost', parked: 2 });
    // It wrote 'dirty' (removing itself) before it parked.
    expect(await record()).toMatchObject({ members: [], dirty: true });

    const b = await running();
    expect(b.recoveries).toMatchObject([
      { reason: 'incomplete-park', deadMembers: [], found: 2, recovered: 2 },
    ]);
    for (const id of RUNNING) expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    // A park cut short is not the workflows' doing: it does not count towards maxRecoveries.
    for (const id of ['r3', 'r4']) expect(counts(store, id).recoveries).toBe(0);
  });

  it('a generation write the fence rejects (the lease lost while it was sent) leaves the member marked leaving: the next start recovers', async () => {
    const { backend, store, member, running, record } = cluster();
    seed(store);
    const other = new MemoryCoordinator({ backend });
    cleanup.push(() => other.close());
    let parks = 0;
    const a: Member = member({
      batchSize: 2,
      shutdownTimeoutMs: 2_000,
      store: patched(store, {
        // the second batch hangs until the budget cuts the park short
        park: (call, ids, fence, options: { signal: AbortSignal }) =>
          ++parks === 1
            ? call(ids, fence, options)
            : new Promise((_, reject) =>
                options.signal.addEventListener('abort', () => reject(options.signal.reason)),
              ),
        // while the 'dirty' leave is on its way, the lease is lost and the next holder raises the fence
        leaveGeneration: async (call, ...args) => {
          await a.coordinator.expireLease();
          const lease = await other.acquire(`${GROUP}:start-stop`, { ttlMs: 5_000, timeoutMs: 100 });
          await store.raiseFence({ memberId: 'other', token: lease.token });
          await lease.release();
          return call(...args);
        },
      }),
    });
    await a.drain.start();
    await a.drain.whenResumed();
    const report = await settle(a.drain.shutdown());
    // The 'dirty' write before the park is the one rejected; the lease is gone, so nothing is parked.
    expect(report).toMatchObject({
      handOff: 'lease-lost',
      parked: 0,
      errors: expect.arrayContaining([{ phase: 'generation', error: expect.any(StaleTokenError) }]),
    });
    expect(await record()).toMatchObject({
      members: [{ memberId: 'm1', incarnation: expect.stringMatching(/:leaving$/) }],
      dirty: false,
    });

    const b = await running();
    expect(b.recoveries).toMatchObject([
      { reason: 'incomplete-park', deadMembers: [], found: 4, recovered: 4 },
    ]);
    for (const id of RUNNING) expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
  });

  it('a graceful last member ends the generation cleanly: the next start recovers nothing and resets no one', async () => {
    const { store, running, record } = cluster();
    seed(store);
    const a = await running();
    const b = await running();
    expect(await settle(a.drain.shutdown())).toMatchObject({ handOff: 'peers-remain' });
    expect((await record()).members.map((m) => m.memberId)).toEqual(['m2']);
    expect(await settle(b.drain.shutdown())).toMatchObject({ handOff: 'parked', parked: 4 });
    expect(await record()).toEqual({ generation: 1, members: [], dirty: false });
    const c = await running();
    expect(c.recoveries).toEqual([]);
    for (const id of RUNNING) expect(counts(store, id)).toEqual({ recoveries: 0, parks: 1, resumes: 1 });
  });

  it('a member that stops while its only peer is still in its start gate leaves the record dirty: that peer recovers', async () => {
    const { store, running, member, record } = cluster();
    seed(store);
    const a = await running();
    const b = member();
    b.coordinator.hang(['acquire']); // b has joined; its gate waits for the lock
    const starting = b.drain.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(await settle(a.drain.shutdown())).toMatchObject({ handOff: 'peers-remain', parked: 0 });
    expect(await record()).toEqual({ generation: 0, members: [], dirty: true });
    b.coordinator.heal();
    await starting;
    expect(b.recoveries).toMatchObject([{ reason: 'incomplete-park', recovered: 4 }]);
    await b.drain.whenResumed();
    for (const id of RUNNING) expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
  });

  it('... and when that peer dies before it registers, the next start still recovers what was left running', async () => {
    const { store, running, member, crash } = cluster();
    seed(store);
    const a = await running();
    const b = member();
    b.coordinator.hang(['acquire']);
    const starting = b.drain.start().catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(10);
    await settle(a.drain.shutdown());
    await crash(b);
    await starting; // its gate fails, and nothing of it lands
    const c = await running();
    expect(c.recoveries).toMatchObject([{ reason: 'incomplete-park', found: 4, recovered: 4 }]);
    for (const id of RUNNING) {
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
      expect(counts(store, id)).toEqual({ recoveries: 0, parks: 1, resumes: 1 }); // reset by the clean end
    }
  });
});
