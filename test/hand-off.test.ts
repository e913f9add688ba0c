import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  CoordinatorUnavailableError,
  DrainController,
  type DrainControllerOptions,
  DrainTimeoutError,
  type Coordinator,
  type WorkflowStore,
} from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { FaultyCoordinator } from '../src/testing/index.js';

const controllers: DrainController[] = [];
const coordinators: Coordinator[] = [];
afterEach(async () => {
  await Promise.all(controllers.splice(0).map((c) => c.shutdown({ force: true })));
  await Promise.all(coordinators.splice(0).map((c) => c.close()));
});

function cluster(storeOptions?: ConstructorParameters<typeof MemoryWorkflowStore>[0]) {
  const backend = new MemoryBackend();
  const store = new MemoryWorkflowStore(storeOptions);
  let n = 0;
  const member = (options: DrainControllerOptions & { coordinator?: Coordinator } = {}): DrainController => {
    const coordinator = options.coordinator ?? new MemoryCoordinator({ backend });
    coordinators.push(coordinator);
    const drain = new DrainController({
      group: 'engines',
      memberId: `m${++n}`,
      store,
      shutdownTimeoutMs: 5_000,
      resumeIntervalMs: 20,
      ...options,
      coordinator,
    });
    controllers.push(drain);
    return drain;
  };
  return { backend, store, member };
}

function seed(store: MemoryWorkflowStore): void {
  for (const id of ['r1', 'r2', 'r3', 'r4']) store.add(id, 'running');
  store.add('user-paused', 'paused');
  store.add('done', 'succeeded');
  store.add('gone', 'cancelled');
}

describe('DrainController hand-off: last member parks, next start resumes', () => {
  it('only the last member parks; a starting member resumes exactly the parked workflows', async () => {
    const { store, member } = cluster();
    seed(store);
    const a = member();
    const b = member();
    await a.start();
    await b.start();
    await Promise.all([a.whenResumed(), b.whenResumed()]);

    const first = await a.shutdown();
    expect(first).toMatchObject({ handOff: 'peers-remain', lastMember: false, parked: 0 });
    expect(first.phases.map((p) => p.name)).toEqual([
      'drain',
      'generation',
      'leave',
      'lock',
      'members',
      'generation',
      'release',
    ]);
    expect(store.get('r1')).toMatchObject({ status: 'running', parked: false });

    const parks: unknown[] = [];
    b.on('park', (p) => parks.push(p));
    const last = await b.shutdown();
    expect(last).toMatchObject({
      handOff: 'parked',
      lastMember: true,
      parked: 4,
      stillPausing: 0,
      errors: [],
    });
    expect(typeof last.token).toBe('bigint');
    expect(last.phases.map((p) => p.name)).toEqual([
      'drain',
      'generation',
      'leave',
      'lock',
      'members',
      'generation',
      'park',
      'generation',
      'release',
    ]);
    expect(parks).toHaveLength(1);
    for (const id of ['r1', 'r2', 'r3', 'r4'])
      expect(store.get(id)).toMatchObject({ status: 'paused', parked: true });
    expect(store.get('user-paused')).toMatchObject({ status: 'paused', parked: false });
    expect(store.get('done')?.status).toBe('succeeded');

    const c = member();
    await c.start();
    const resumed = await c.whenResumed();
    expect(resumed).toMatchObject({ resumed: 4, skipped: 0, stillPausing: 0, complete: true });
    for (const id of ['r1', 'r2', 'r3', 'r4'])
      expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    expect(store.get('user-paused')).toMatchObject({ status: 'paused', parked: false });
    expect(store.stats).toEqual({ parks: 4, resumes: 4 });
  });

  it('parks page by page with batchSize', async () => {
    const { store, member } = cluster();
    for (let i = 0; i < 25; i++) store.add(`w${String(i).padStart(2, '0')}`);
    const a = member({ batchSize: 10 });
    const pages: number[] = [];
    a.on('park', (p) => pages.push(p.parked));
    await a.start();
    const report = await a.shutdown();
    expect(report.parked).toBe(25);
    expect(pages).toEqual([10, 20, 25]);
  });

  it('reports workflows still pausing, and the next start re-checks them until they are paused', async () => {
    const { store, member } = cluster({ pauseDelayMs: 150 });
    seed(store);
    const a = member();
    await a.start();
    const report = await a.shutdown();
    expect(report).toMatchObject({ parked: 4, stillPausing: 4 });
    expect(store.get('r1')?.status).toBe('pausing');

    const b = member();
    const rounds: number[] = [];
    b.on('resume', (p) => rounds.push(p.stillPausing));
    await b.start();
    const resumed = await b.whenResumed();
    expect(resumed).toMatchObject({ resumed: 4, stillPausing: 0, complete: true });
    expect(resumed?.rounds).toBeGreaterThan(1);
    expect(rounds[0]).toBe(4);
    expect(store.get('r1')).toMatchObject({ status: 'running', parked: false });
  });

  it('never resumes a workflow a user paused, cancelled or resumed after it was parked', async () => {
    const { store, member } = cluster();
    seed(store);
    const a = member();
    await a.start();
    await a.shutdown();
    store.cancel('r1');
    store.userResume('r2');
    const b = member();
    await b.start();
    const resumed = await b.whenResumed();
    // The cancel and the user's resume dropped their marks: only r3 and r4 are left to resume.
    expect(resumed).toMatchObject({ resumed: 2, skipped: 0 });
    expect(store.get('r1')).toMatchObject({ status: 'cancelled', parked: false });
    expect(store.get('r2')).toMatchObject({ status: 'running', parked: false });
    expect(store.resumeCount('r2')).toBe(0);
  });

  it('stops parking before the next batch when the lease is lost, and says so', async () => {
    const { backend, store, member } = cluster();
    for (let i = 0; i < 6; i++) store.add(`w${i}`);
    const faulty = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    const a = member({ coordinator: faulty, batchSize: 2 });
    a.on('park', () => void faulty.expireLease());
    await a.start();
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'lease-lost', parked: 2, lastMember: true });
    expect(report.errors.map((e) => (e.error as Error).name)).toContain('LockLostError');
    expect(store.stats.parks).toBe(2);
  });

  it('coordinator down at shutdown, policy skip: parks nothing and reports it', async () => {
    const { backend, store, member } = cluster();
    seed(store);
    const faulty = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    const a = member({ coordinator: faulty });
    await a.start();
    faulty.fail(['leave', 'acquire', 'members', 'release']);
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'unreachable-skipped', parked: 0, lastMember: undefined });
    expect(report.errors[0]?.error).toBeInstanceOf(CoordinatorUnavailableError);
    expect(store.stats.parks).toBe(0);
  });

  it('coordinator down at shutdown, policy park: parks unfenced', async () => {
    const { backend, store, member } = cluster();
    seed(store);
    const faulty = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    const a = member({ coordinator: faulty, unreachablePolicy: 'park' });
    await a.start();
    faulty.fail(['leave', 'acquire', 'members', 'release']);
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'unreachable-parked', parked: 4, token: undefined });
  });

  it('a lock held elsewhere for the whole budget: lock-timeout, nothing parked', async () => {
    const { backend, store, member } = cluster();
    seed(store);
    const other = new MemoryCoordinator({ backend });
    coordinators.push(other);
    const a = member({ shutdownTimeoutMs: 600 });
    await a.start();
    await a.whenResumed();
    const held = await other.acquire('engines:start-stop', { ttlMs: 10_000, timeoutMs: 100 });
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'lock-timeout', parked: 0 });
    expect(report.durationMs).toBeLessThan(1_000);
    await held.release();
  });

  it('waits out a peer that crashed (near expiry), then parks', async () => {
    const { backend, store, member } = cluster();
    seed(store);
    const crashing = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    const a = member({ coordinator: crashing, memberTtlMs: 300 });
    const b = member({ memberTtlMs: 300, shutdownTimeoutMs: 5_000 });
    await a.start();
    await b.start();
    // Crashing while its resume holds the start-stop lock would keep the lock for its whole TTL.
    await Promise.all([a.whenResumed(), b.whenResumed()]);
    crashing.crash();
    // The crashed member's heartbeats stop: it falls below half its TTL, b waits it out and parks.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const report = await b.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', lastMember: true, parked: 4 });
  });

  it('a live peer is never parked over', async () => {
    const { store, member } = cluster();
    seed(store);
    const a = member({ memberTtlMs: 300 });
    const b = member({ memberTtlMs: 300 });
    await a.start();
    await b.start();
    await new Promise((resolve) => setTimeout(resolve, 400)); // several heartbeats later
    const report = await b.shutdown();
    expect(report).toMatchObject({ handOff: 'peers-remain', parked: 0 });
    expect(a.state).toBe('running');
  });

  it('re-joins after losing its membership, and resumes what a peer parked meanwhile', async () => {
    const { backend, store, member } = cluster();
    seed(store);
    const faulty = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    const a = member({ coordinator: faulty });
    await a.start();
    await a.whenResumed();
    const lost = new Promise((resolve) => a.once('membershipLost', resolve));
    await faulty.dropMembership();
    expect(await lost).toMatchObject({ code: 'ERR_MEMBERSHIP_LOST' });
    // While a looked gone, a peer stopped and parked everything.
    const b = member();
    await b.start();
    await b.whenResumed();
    const report = await b.shutdown();
    // a re-joined at once: b saw it, unless it stopped before a's join; either way nothing is forgotten.
    if (report.handOff === 'parked') {
      await new Promise<void>((resolve) => {
        const check = (): void =>
          store.stats.resumes >= report.parked ? resolve() : void setTimeout(check, 10);
        check();
      });
    }
    expect(store.get('r1')).toMatchObject({ status: 'running', parked: false });
  });

  it('start() rejects after startTimeoutMs when joining hangs, and the state is failed', async () => {
    const { backend, member } = cluster();
    const faulty = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    faulty.hang(['join']);
    const a = member({ coordinator: faulty, startTimeoutMs: 100 });
    await expect(a.start()).rejects.toThrow(DrainTimeoutError);
    expect(a.state).toBe('failed');
    const report = await a.shutdown();
    expect(report.handOff).toBe('not-joined');
    expect(report.phases.map((p) => p.name)).toEqual(['drain']);
  });

  it('shutdown during a start in progress cancels the join', async () => {
    const { backend, member } = cluster();
    const faulty = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    faulty.hang(['join']);
    const a = member({ coordinator: faulty });
    const starting = a.start();
    const report = await a.shutdown();
    await expect(starting).rejects.toMatchObject({ code: 'ERR_DRAIN_CLOSED' });
    expect(report).toMatchObject({ outcome: 'clean', handOff: 'not-joined' });
    expect(a.state).toBe('stopped');
  });
});

describe('DrainController hand-off configuration', () => {
  const store = new MemoryWorkflowStore();
  const coordinator = new MemoryCoordinator();

  it('refuses a coordinator without a store and a store without a coordinator', () => {
    expect(() => new DrainController({ coordinator })).toThrow(ConfigurationError);
    expect(() => new DrainController({ coordinator })).toThrow('`coordinator` was given, `store` is missing');
    expect(() => new DrainController({ store: store as WorkflowStore })).toThrow(
      '`store` was given, `coordinator` is missing',
    );
  });

  it('refuses a process-scoped coordinator for a group that spans processes', () => {
    expect(() => new DrainController({ group: 'g', coordinator, store, groupScope: 'host' })).toThrow(
      'Expected a coordinator that can see members across `groupScope` `"host"`, got one whose scope is `"process"`',
    );
    expect(
      () => new DrainController({ group: 'g', coordinator, store, groupScope: 'process' }),
    ).not.toThrow();
  });
});
