/** The controller over a store with `parkPage` and `unparkPage`: each page listed and written in one call. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DrainController, DrainControllerOptions } from '../src/index.js';
import { MemoryBackend, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { cleanedUp } from './support/drain.js';

const { member: memberOf, memory } = cleanedUp();
afterEach(() => {
  vi.restoreAllMocks();
});

/** A store with the page methods, spied on, and members of one group over it. */
function cluster(pauseDelayMs = 0) {
  const backend = new MemoryBackend();
  const store = new MemoryWorkflowStore({ pages: true, pauseDelayMs });
  const spies = {
    listActive: vi.spyOn(store, 'listActive'),
    park: vi.spyOn(store, 'park'),
    listParked: vi.spyOn(store, 'listParked'),
    unpark: vi.spyOn(store, 'unpark'),
  };
  let n = 0;
  const member = (options: DrainControllerOptions = {}): DrainController =>
    memberOf({ memberId: `m${++n}`, store, coordinator: memory(backend), resumeIntervalMs: 20, ...options });
  return { store, spies, member };
}

const ids = (count: number): string[] =>
  Array.from({ length: count }, (_, i) => `w${String(i).padStart(2, '0')}`);

describe('a store with parkPage and unparkPage', () => {
  it('parks page by page through parkPage and resumes through unparkPage, never a user pause', async () => {
    const { store, spies, member } = cluster();
    for (const id of ids(25)) store.add(id, 'running');
    store.add('user-paused', 'paused');
    store.add('done', 'succeeded');
    const parkPage = vi.spyOn(store, 'parkPage');
    const unparkPage = vi.spyOn(store, 'unparkPage');

    const a = member({ batchSize: 10 });
    const pages: number[] = [];
    a.on('park', (p) => pages.push(p.parked));
    await a.start();
    await a.whenResumed();
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 25, stillPausing: 0, errors: [] });
    expect(pages).toEqual([10, 20, 25]);
    // Three pages, then the sweep that finds nothing.
    expect(parkPage.mock.calls.map(([, o]) => o.limit)).toEqual([10, 10, 10, 10]);
    expect(spies.listActive).not.toHaveBeenCalled();
    expect(spies.park).not.toHaveBeenCalled();
    for (const id of ids(25)) expect(store.get(id)).toMatchObject({ status: 'paused', parked: true });

    unparkPage.mockClear(); // a's own start found nothing parked
    const b = member({ batchSize: 10 });
    await b.start();
    expect(await b.whenResumed()).toMatchObject({ resumed: 25, skipped: 0, stillPausing: 0, complete: true });
    expect(unparkPage).toHaveBeenCalledTimes(3);
    expect(spies.listParked).not.toHaveBeenCalled();
    expect(spies.unpark).not.toHaveBeenCalled();
    for (const id of ids(25)) expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
    expect(store.get('user-paused')).toMatchObject({ status: 'paused', parked: false });
    expect(store.get('done')?.status).toBe('succeeded');
    expect(store.stats).toEqual({ parks: 25, resumes: 25 });
  });

  it('counts the workflows still pausing and re-checks them in later rounds until they are paused', async () => {
    const { store, member } = cluster(150);
    for (const id of ids(4)) store.add(id, 'running');
    const a = member();
    await a.start();
    expect(await a.shutdown()).toMatchObject({ parked: 4, stillPausing: 4 });

    const b = member();
    const rounds: number[] = [];
    b.on('resume', (p) => rounds.push(p.stillPausing));
    await b.start();
    const resumed = await b.whenResumed();
    expect(resumed).toMatchObject({ resumed: 4, stillPausing: 0, complete: true });
    expect(resumed?.rounds).toBeGreaterThan(1);
    expect(rounds[0]).toBe(4);
    for (const id of ids(4)) expect(store.get(id)).toMatchObject({ status: 'running', parked: false });
  });

  it('retries a parkPage that failed, within the budget, and reports the error', async () => {
    const { store, member } = cluster();
    for (const id of ids(12)) store.add(id, 'running');
    const real = store.parkPage?.bind(store);
    let failures = 1;
    vi.spyOn(store, 'parkPage').mockImplementation(async (fence, options) => {
      if (failures-- > 0) throw new Error('the database is busy');
      return (real as NonNullable<typeof real>)(fence, options);
    });
    const a = member({ batchSize: 5 });
    await a.start();
    const report = await a.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 12 });
    expect(report.errors.map((e) => [e.phase, (e.error as Error).message])).toEqual([
      ['park', 'the database is busy'],
    ]);
    for (const id of ids(12)) expect(store.get(id)?.status).toBe('paused');
  });

  it('stops unparking when the shutdown begins: the resume is told through its signal', async () => {
    const { store, member } = cluster();
    for (const id of ids(6)) store.add(id, 'running');
    const a = member({ batchSize: 2 });
    await a.start();
    await a.shutdown();

    const real = store.unparkPage?.bind(store);
    const b = member({ batchSize: 2 });
    let first = true;
    const signals: (AbortSignal | undefined)[] = [];
    vi.spyOn(store, 'unparkPage').mockImplementation(async (fence, options) => {
      signals.push(options.signal);
      const page = await (real as NonNullable<typeof real>)(fence, options);
      if (first) {
        first = false;
        // The shutdown begins while the first page is being written.
        void b.shutdown();
      }
      return page;
    });
    await b.start();
    const resumed = await b.whenResumed();
    expect(resumed?.complete).toBe(false);
    // The first page was committed and is counted; no later page was asked for.
    expect(resumed?.resumed).toBe(2);
    expect(signals).toHaveLength(1);
  });
});
