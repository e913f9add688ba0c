/**
 * Helpers for the tests of peer recovery (a live member recovers a crashed peer's workflows): a group of
 * members on the memory adapters with fake timers, each behind a FaultyCoordinator so that it can crash
 * like SIGKILL, a seeded store, and the counts to check.
 */
import { afterEach, beforeEach, vi } from 'vitest';
import {
  DrainController,
  type DrainControllerOptions,
  type RecoveryReport,
  type StoreWarning,
} from '../../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../../src/adapters/memory/index.js';
import { FaultyCoordinator } from '../../src/testing/index.js';
import { fakeTimers } from './drain.js';

/** The members' TTL (ms). */
export const TTL = 1_000;
export const GROUP = 'engines';

/** A member of the group, with what it reported. */
export interface Member {
  readonly drain: DrainController;
  readonly coordinator: FaultyCoordinator;
  readonly warnings: StoreWarning[];
  readonly recoveries: RecoveryReport[];
}

/** A group of members (`m1`, `m2`, … in the order made) sharing one coordinator backend and one store. */
export interface Cluster {
  readonly backend: MemoryBackend;
  readonly store: MemoryWorkflowStore;
  /** A new member, not started. */
  member(options?: DrainControllerOptions): Member;
  /** A new member, started and resumed. */
  running(options?: DrainControllerOptions): Promise<Member>;
  /** The member ids the store's generation record lists. */
  registered(): Promise<string[]>;
}

/**
 * Fakes the timers before each test and, after each, restores them and runs what `cleanup` holds (each
 * member shut down, forced, and its coordinator closed; push more). Call once, at the top of a test file.
 */
export function peerClusters(): {
  readonly cleanup: (() => Promise<unknown>)[];
  cluster(storeOptions?: { owners?: boolean; pauseDelayMs?: number }): Cluster;
} {
  const cleanup: (() => Promise<unknown>)[] = [];
  beforeEach(() => fakeTimers());
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(cleanup.splice(0).map((f) => f()));
  });
  const cluster = (storeOptions: { owners?: boolean; pauseDelayMs?: number } = { owners: true }): Cluster => {
    const backend = new MemoryBackend();
    const store = new MemoryWorkflowStore(storeOptions);
    let n = 0;
    const member = (options: DrainControllerOptions = {}): Member => {
      const coordinator = new FaultyCoordinator(new MemoryCoordinator({ backend }));
      const drain = new DrainController({
        group: GROUP,
        memberId: `m${++n}`,
        memberTtlMs: TTL,
        shutdownTimeoutMs: 5_000,
        resumeIntervalMs: 20,
        store,
        ...options,
        coordinator,
      });
      const warnings: StoreWarning[] = [];
      const recoveries: RecoveryReport[] = [];
      drain.on('warning', (w) => warnings.push(w));
      drain.on('recovery', (r) => recoveries.push(r));
      cleanup.push(async () => {
        await drain.shutdown({ force: true });
        await coordinator.close();
      });
      return { drain, coordinator, warnings, recoveries };
    };
    const running = async (options?: DrainControllerOptions): Promise<Member> => {
      const m = member(options);
      await m.drain.start();
      await m.drain.whenResumed();
      return m;
    };
    const registered = async () => (await store.readGeneration(GROUP)).members.map((m) => m.memberId);
    return { backend, store, member, running, registered };
  };
  return { cleanup, cluster };
}

/**
 * m1 drives a1, a2 (running), a-user (paused by a user) and a-done; m2 drives b1; m3 drives c1; `free`
 * has no owner.
 */
export function seed(store: MemoryWorkflowStore): void {
  store.add('a1', 'running', 'm1');
  store.add('a2', 'running', 'm1');
  store.add('a-user', 'paused', 'm1');
  store.add('a-done', 'succeeded', 'm1');
  store.add('b1', 'running', 'm2');
  store.add('c1', 'running', 'm3');
  store.add('free', 'running');
}

/** How many times the store recovered, parked and resumed workflow `id`. */
export const counts = (store: MemoryWorkflowStore, id: string) => ({
  recoveries: store.recoveryCount(id),
  parks: store.parkCount(id),
  resumes: store.resumeCount(id),
});
export const untouched = { recoveries: 0, parks: 0, resumes: 0 };
export const recoveredOnce = { recoveries: 1, parks: 1, resumes: 1 };

/**
 * `store` with the calls in `overrides` replaced: every other property is read from `store`, its
 * methods bound to it.
 */
export function overriding(
  store: MemoryWorkflowStore,
  overrides: Partial<MemoryWorkflowStore>,
): MemoryWorkflowStore {
  return new Proxy(store, {
    get(target, key) {
      if (Object.hasOwn(overrides, key)) return overrides[key as keyof MemoryWorkflowStore];
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Advances the fake clock in steps until `done()` holds (or `maxMs` passed). */
export async function until(done: () => boolean, stepMs = 50, maxMs = 30_000): Promise<void> {
  for (let t = 0; !done() && t < maxMs; t += stepMs) await vi.advanceTimersByTimeAsync(stepMs);
}

/** Crashes a member like SIGKILL (heartbeats stop), then lets its membership expire. */
export async function crash(m: Member): Promise<void> {
  m.coordinator.crash();
  await vi.advanceTimersByTimeAsync(TTL + 1);
}
