/**
 * Property-based race tests of the last-member protocol on the memory adapters: members start and shut
 * down in random interleavings (fast-check's scheduler decides when every coordinator and store call
 * returns), over workflows in random states. Checks invariants 2 to 6 of DESIGN.md.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DrainController } from '../src/index.js';
import type { Coordinator, Lease, Membership, WorkflowStore } from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';

type Scheduler = fc.Scheduler;
type Initial = 'running' | 'pausing' | 'user-paused' | 'succeeded' | 'cancelled';

/**
 * Delivers the result of `call` when the scheduler says. The call itself runs at once: a call blocked
 * inside the adapter (an acquire waiting for the lock) must not stall the scheduler.
 */
function later<A extends unknown[], T>(
  s: Scheduler,
  call: (...args: A) => Promise<T>,
): (...args: A) => Promise<T> {
  return (...args) =>
    call(...args).then(
      (value) => s.schedule(Promise.resolve(value)),
      (error: unknown) => s.schedule(Promise.reject(error as Error)),
    );
}

/** Every call through the coordinator (and its leases and memberships) returns when the scheduler says. */
function scheduledCoordinator(inner: Coordinator, s: Scheduler): Coordinator {
  const wrapLease = (lease: Lease): Lease => ({
    name: lease.name,
    token: lease.token,
    signal: lease.signal,
    deadline: lease.deadline,
    release: later(s, () => lease.release()),
  });
  const wrapMembership = (m: Membership): Membership => ({
    group: m.group,
    memberId: m.memberId,
    incarnation: m.incarnation,
    signal: m.signal,
    leave: later(s, () => m.leave()),
  });
  return {
    capabilities: inner.capabilities,
    acquire: later(s, async (name: string, options: Parameters<Coordinator['acquire']>[1]) =>
      wrapLease(await inner.acquire(name, options)),
    ),
    join: later(s, async (group: string, memberId: string, options: Parameters<Coordinator['join']>[2]) =>
      wrapMembership(await inner.join(group, memberId, options)),
    ),
    members: later(s, (group: string) => inner.members(group)),
    close: () => inner.close(),
  };
}

function scheduledStore(inner: WorkflowStore, s: Scheduler): WorkflowStore {
  return {
    capabilities: inner.capabilities,
    listActive: later(s, (o: Parameters<WorkflowStore['listActive']>[0]) => inner.listActive(o)),
    park: later(s, (ids: readonly string[], fence: Parameters<WorkflowStore['park']>[1]) =>
      inner.park(ids, fence),
    ),
    listParked: later(s, (o: Parameters<WorkflowStore['listParked']>[0]) => inner.listParked(o)),
    unpark: later(s, (ids: readonly string[], fence: Parameters<WorkflowStore['unpark']>[1]) =>
      inner.unpark(ids, fence),
    ),
    raiseFence: later(s, (fence: Parameters<WorkflowStore['raiseFence']>[0]) => inner.raiseFence(fence)),
    notePaused: later(s, (ids: readonly string[]) => inner.notePaused(ids)),
  };
}

/**
 * Releases scheduled tasks, in the scheduler's order, until `promise` settles. Unlike `s.waitFor`, it
 * also releases tasks scheduled before the call.
 */
async function until<T>(s: Scheduler, promise: Promise<T>): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    if (s.count() > 0) await s.waitOne();
    else await new Promise((resolve) => setImmediate(resolve));
  }
  return promise;
}

const initialState = fc.constantFrom<Initial>(
  'running',
  'running',
  'pausing',
  'user-paused',
  'succeeded',
  'cancelled',
);

describe('last-member protocol under random interleavings (memory adapters)', () => {
  it('invariants 2-6: nothing left running, no park over a live peer, only parked ones resumed, once each', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 5 }),
        fc.array(initialState, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 0, max: 2 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.scheduler(),
        async (memberCount, states, lateCount, repeatShutdown, batchSize, firstWaveSize, s) => {
          const backend = new MemoryBackend();
          const store = new MemoryWorkflowStore();
          const ids = states.map((state, i) => {
            const id = `w${i}`;
            if (state === 'user-paused') store.add(id, 'paused');
            else store.add(id, state);
            return id;
          });
          const wasRunning = ids.filter((_, i) => states[i] === 'running');
          const untouchable = ids.filter((_, i) => states[i] !== 'running');
          const coordinators: Coordinator[] = [];
          let n = 0;
          const member = (): DrainController => {
            const coordinator = new MemoryCoordinator({ backend });
            coordinators.push(coordinator);
            return new DrainController({
              group: 'g',
              memberId: `m${++n}`,
              coordinator: scheduledCoordinator(coordinator, s),
              store: scheduledStore(store, s),
              shutdownTimeoutMs: 60_000,
              batchSize,
            });
          };
          // Park calls are observed to check invariant 3: who was running when a member parked.
          const initial = Array.from({ length: memberCount }, member);
          try {
            // 1. Every initial member starts (concurrently) and settles its resume.
            await until(s, Promise.all(initial.map((m) => m.start())));
            await until(s, Promise.all(initial.map((m) => m.whenResumed())));
            expect(store.stats).toEqual({ parks: 0, resumes: 0 });

            // 2a. A first wave of members stops (racing) while at least one peer keeps running.
            // Invariant 3: none of them parks.
            const firstWave = initial.slice(0, Math.min(firstWaveSize, memberCount - 1));
            const firstReports = await until(s, Promise.all(firstWave.map((m) => m.shutdown())));
            for (const r of firstReports) expect(r).toMatchObject({ handOff: 'peers-remain', parked: 0 });
            expect(store.stats.parks).toBe(0);

            // 2b. All initial members shut down (some twice, racing), while late members start.
            const late = Array.from({ length: lateCount }, member);
            const shutdowns = initial.map((m) => m.shutdown());
            const repeats = initial.filter((_, i) => repeatShutdown[i]).map((m) => m.shutdown());
            const starts = late.map((m) => m.start().then(() => m.whenResumed()));
            const reports = await until(s, Promise.all([...shutdowns, ...repeats]));
            await until(s, Promise.all(starts));

            // Invariant 5: one effective park (the same report for repeated calls; parks counted once).
            for (const [i, m] of initial.entries()) {
              if (repeatShutdown[i]) expect(await m.shutdown()).toBe(reports[i]);
            }
            const parkedByReports = reports.slice(0, memberCount).reduce((sum, r) => sum + r.parked, 0);
            expect(parkedByReports).toBe(store.stats.parks);
            expect(store.stats.parks).toBeLessThanOrEqual(wasRunning.length);

            if (lateCount === 0) {
              // Invariant 2: every member stopped gracefully, so nothing is left running.
              for (const id of wasRunning)
                expect(store.get(id)).toMatchObject({ status: 'paused', parked: true });
              // Invariant 3: members that stopped while a peer lived parked nothing.
              expect(
                reports.slice(0, memberCount).filter((r) => r.handOff === 'parked').length,
              ).toBeGreaterThan(0);
            } else {
              // Invariant 6: a member started while the last one stopped: once its resume settles, nothing
              // the group ran is left parked (either nobody parked, or the starter resumed after the park).
              for (const id of wasRunning)
                expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
              // Invariant 3: whoever parked did so before the late member joined; every park was resumed.
              expect(store.stats.resumes).toBe(store.stats.parks);
              // 3. The late members stop too: now nothing is left running.
              await until(s, Promise.all(late.map((m) => m.shutdown())));
              for (const id of wasRunning)
                expect(store.get(id)).toMatchObject({ status: 'paused', parked: true });
            }

            // 4. A fresh member starts: it resumes exactly the parked workflows, once each.
            const fresh = member();
            await until(s, fresh.start());
            const resumed = await until(s, fresh.whenResumed() as Promise<unknown>);
            expect(resumed).toMatchObject({ complete: true, stillPausing: 0 });
            for (const id of wasRunning) {
              expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
              expect(store.resumeCount(id)).toBe(store.parkCount(id));
            }
            // Invariant 4: nothing a user paused (or that was not running) was ever parked or resumed.
            for (const id of untouchable) {
              expect(store.parkCount(id)).toBe(0);
              expect(store.resumeCount(id)).toBe(0);
              expect(store.get(id)?.status).toBe(
                states[ids.indexOf(id)] === 'user-paused' ? 'paused' : states[ids.indexOf(id)],
              );
            }
            await until(s, fresh.shutdown());
          } finally {
            await Promise.all(coordinators.map((c) => c.close()));
          }
        },
      ),
      { numRuns: Number(process.env.RACE_RUNS ?? 150), timeout: 3000, verbose: 1 },
    );
  });
});
