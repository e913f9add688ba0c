import { describe, expect, it } from 'vitest';
import { StaleTokenError } from '../../errors.js';
import type {
  Fence,
  ItemResult,
  ParkOutcome,
  ParkPage,
  RecoverOutcome,
  RecoverPage,
  UnparkOutcome,
  UnparkPage,
  WorkflowStore,
} from '../../workflow-store.js';
import type { WorkflowStoreHarness as Harness } from '../index.js';
import { nextToken, rejectionOf } from './support.js';

type ParkPageStore = WorkflowStore & Required<Pick<WorkflowStore, 'parkPage'>>;
type UnparkPageStore = WorkflowStore & Required<Pick<WorkflowStore, 'unparkPage'>>;
type RecoverPageStore = WorkflowStore & Required<Pick<WorkflowStore, 'recoverPage' | 'recover'>>;

const MEMBER = 'gd-contract-pages';
const ids = (prefix: string, count: number): string[] =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
const byId = <T extends { readonly id: string }>(items: readonly T[]): T[] =>
  [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

/** Every page of `next`, checking each stays within `limit` and in id order; bounded. */
async function allPages<P extends { readonly cursor: string | undefined }, T extends { readonly id: string }>(
  next: (cursor: string | undefined) => Promise<P>,
  itemsOf: (page: P) => readonly T[],
  limit: number,
): Promise<P[]> {
  const pages: P[] = [];
  let cursor: string | undefined;
  for (let n = 0; n < 10_000; n++) {
    const page = await next(cursor);
    const items = itemsOf(page);
    expect(items.length).toBeLessThanOrEqual(limit);
    expect(items).toEqual(byId(items));
    pages.push(page);
    if (page.cursor === undefined) return pages;
    cursor = page.cursor;
  }
  throw new Error('The paging did not end after 10000 pages');
}

const parkPages = (store: ParkPageStore, fence: Fence, limit: number) =>
  allPages<ParkPage, ItemResult<ParkOutcome>>(
    (cursor) => store.parkPage(fence, { limit, cursor }),
    (page) => page.results,
    limit,
  );
const unparkPages = (store: UnparkPageStore, fence: Fence, limit: number) =>
  allPages<UnparkPage, ItemResult<UnparkOutcome>>(
    (cursor) => store.unparkPage(fence, { limit, cursor }),
    (page) => page.results,
    limit,
  );

/** Parks `list` (running) through park() and brings each to `paused`, as the host would. */
async function parkAndPause(h: Harness, list: readonly string[], fence: Fence): Promise<void> {
  for (const id of list) await h.add(id, 'running');
  await h.store.park(list, fence);
  for (const id of list) if ((await h.status(id)) !== 'paused') await h.setStatus(id, 'paused');
}

/**
 * The optional page methods (`parkPage`, `unparkPage`, `recoverPage`): each is checked against the pair
 * of calls it stands for; a store without one passes its cases unchecked.
 */
export function pageContract(make: () => Promise<Harness>): void {
  const withParkPage = (title: string, body: (h: Harness, store: ParkPageStore) => Promise<void>) =>
    it(title, async () => {
      const h = await make();
      if (typeof h.store.parkPage === 'function') await body(h, h.store as ParkPageStore);
    });
  const withUnparkPage = (title: string, body: (h: Harness, store: UnparkPageStore) => Promise<void>) =>
    it(title, async () => {
      const h = await make();
      if (typeof h.store.unparkPage === 'function') await body(h, h.store as UnparkPageStore);
    });

  describe('parkPage (optional)', () => {
    withParkPage('of a table with nothing running is one empty page', async (h, store) => {
      await h.add('a-paused', 'paused');
      await h.add('b-done', 'succeeded');
      const page = await store.parkPage({ memberId: MEMBER, token: undefined }, { limit: 10 });
      expect(page).toEqual({ results: [], cursor: undefined });
    });
    withParkPage(
      'parks every running workflow once, a page at a time in id order, marked with the fence',
      async (h, store) => {
        const running = ids('run', 23);
        for (const id of [...running].reverse()) await h.add(id, 'running');
        for (const [id, status] of [
          ['p-pausing', 'pausing'],
          ['p-paused', 'paused'],
          ['p-done', 'succeeded'],
          ['p-cancelled', 'cancelled'],
        ] as const) {
          await h.add(id, status);
        }
        const fence = { memberId: MEMBER, token: nextToken() };
        const pages = await parkPages(store, fence, 5);
        const results = pages.flatMap((p) => p.results);
        expect(results.map((r) => r.id)).toEqual(running);
        for (const r of results) expect(['paused', 'pausing']).toContain(r.outcome);
        expect(pages.length).toBeGreaterThanOrEqual(5);
        expect((await h.store.listActive({ limit: 100 })).items).toEqual([]);
        const parked = (await h.store.listParked({ limit: 100 })).items;
        expect(parked.map((p) => [p.id, p.memberId, p.token])).toEqual(
          running.map((id) => [id, MEMBER, fence.token]),
        );
        for (const id of ['p-pausing', 'p-paused', 'p-done', 'p-cancelled']) {
          expect(await h.status(id)).toBe(id === 'p-done' ? 'succeeded' : id.slice(2));
        }
      },
    );
    withParkPage('pages like listActive: the cursor resumes after the last listed id', async (h, store) => {
      for (const id of ['a', 'b', 'c', 'd', 'e']) await h.add(id, 'running');
      const fence = { memberId: MEMBER, token: undefined };
      const first = await store.parkPage(fence, { limit: 2 });
      expect(first.results.map((r) => r.id)).toEqual(['a', 'b']);
      expect(first.cursor).not.toBeUndefined();
      // A workflow that starts running below the cursor is left for the next pass.
      await h.add('aa', 'running');
      const second = await store.parkPage(fence, { limit: 2, cursor: first.cursor });
      expect(second.results.map((r) => r.id)).toEqual(['c', 'd']);
      const third = await store.parkPage(fence, { limit: 2, cursor: second.cursor });
      expect(third).toEqual({ results: [expect.objectContaining({ id: 'e' })], cursor: undefined });
      expect((await h.store.listActive({ limit: 10 })).items).toEqual(['aa']);
    });
    withParkPage('under a stale token rejects with StaleTokenError and writes nothing', async (h, store) => {
      if (store.capabilities.fencing !== 'monotonic') return;
      for (const id of ids('run', 4)) await h.add(id, 'running');
      const high = nextToken();
      await store.raiseFence({ memberId: 'other', token: high });
      const error = await rejectionOf(store.parkPage({ memberId: MEMBER, token: high - 1n }, { limit: 10 }));
      expect(error).toBeInstanceOf(StaleTokenError);
      expect((await h.store.listActive({ limit: 10 })).items).toEqual(ids('run', 4));
      expect((await h.store.listParked({ limit: 10 })).items).toEqual([]);
    });
    withParkPage('with an aborted signal rejects and writes nothing', async (h, store) => {
      for (const id of ids('run', 3)) await h.add(id, 'running');
      const signal = AbortSignal.abort(new Error('told to stop'));
      await rejectionOf(store.parkPage({ memberId: MEMBER, token: undefined }, { limit: 10, signal }));
      expect((await h.store.listActive({ limit: 10 })).items).toEqual(ids('run', 3));
      expect((await h.store.listParked({ limit: 10 })).items).toEqual([]);
    });
  });

  const withRecoverPage = (title: string, body: (h: Harness, store: RecoverPageStore) => Promise<void>) =>
    it(title, async () => {
      const h = await make();
      if (typeof h.store.recoverPage === 'function') {
        expect(typeof h.store.recover).toBe('function');
        await body(h, h.store as RecoverPageStore);
      }
    });

  describe('recoverPage (optional)', () => {
    withRecoverPage(
      'recovers every running workflow once, a page at a time in id order, parked with the fence',
      async (h, store) => {
        const running = ids('run', 11);
        for (const id of [...running].reverse()) await h.add(id, 'running');
        await h.add('p-paused', 'paused');
        await h.add('p-done', 'succeeded');
        const fence = { memberId: MEMBER, token: nextToken() };
        const pages = await allPages<RecoverPage, ItemResult<RecoverOutcome>>(
          (cursor) => store.recoverPage(fence, { limit: 4, cursor, mode: 'park', maxRecoveries: 3 }),
          (page) => page.results,
          4,
        );
        expect(pages.length).toBeGreaterThanOrEqual(3);
        const results = pages.flatMap((p) => p.results);
        expect(results.map((r) => r.id)).toEqual(running);
        for (const r of results) expect(['paused', 'pausing']).toContain(r.outcome);
        const parked = (await h.store.listParked({ limit: 100 })).items;
        expect(parked.map((p) => [p.id, p.memberId, p.token])).toEqual(
          running.map((id) => [id, MEMBER, fence.token]),
        );
        expect([await h.status('p-paused'), await h.status('p-done')]).toEqual(['paused', 'succeeded']);
      },
    );
    withRecoverPage(
      'mode count only counts; past maxRecoveries a workflow moves to failed',
      async (h, store) => {
        for (const id of ['a', 'b']) await h.add(id, 'running');
        const fence = { memberId: MEMBER, token: undefined };
        const first = await store.recoverPage(fence, { limit: 10, mode: 'count', maxRecoveries: 1 });
        expect(first).toEqual({
          results: [
            { id: 'a', outcome: 'counted' },
            { id: 'b', outcome: 'counted' },
          ],
          cursor: undefined,
        });
        expect([await h.status('a'), await h.status('b')]).toEqual(['running', 'running']);
        const second = await store.recoverPage(fence, { limit: 10, mode: 'count', maxRecoveries: 1 });
        expect(second.results).toEqual([
          { id: 'a', outcome: 'failed' },
          { id: 'b', outcome: 'failed' },
        ]);
        // A store without a failed status leaves them running, their counts dropped.
        for (const id of ['a', 'b']) expect(['failed', 'running']).toContain(await h.status(id));
      },
    );
    withRecoverPage(
      'under a stale token rejects with StaleTokenError and writes nothing',
      async (h, store) => {
        if (store.capabilities.fencing !== 'monotonic') return;
        for (const id of ids('run', 3)) await h.add(id, 'running');
        const high = nextToken();
        await store.raiseFence({ memberId: 'other', token: high });
        const stale = { memberId: MEMBER, token: high - 1n };
        const options = { limit: 10, mode: 'park', maxRecoveries: 0 } as const;
        expect(await rejectionOf(store.recoverPage(stale, options))).toBeInstanceOf(StaleTokenError);
        expect((await h.store.listActive({ limit: 10 })).items).toEqual(ids('run', 3));
        expect((await h.store.listParked({ limit: 10 })).items).toEqual([]);
      },
    );
    withRecoverPage('with an aborted signal rejects and writes nothing', async (h, store) => {
      for (const id of ids('run', 3)) await h.add(id, 'running');
      const signal = AbortSignal.abort(new Error('told to stop'));
      const options = { limit: 10, mode: 'park', maxRecoveries: 0, signal } as const;
      await rejectionOf(store.recoverPage({ memberId: MEMBER, token: undefined }, options));
      expect((await h.store.listActive({ limit: 10 })).items).toEqual(ids('run', 3));
      expect((await h.store.listParked({ limit: 10 })).items).toEqual([]);
    });
  });

  describe('unparkPage (optional)', () => {
    withUnparkPage('with nothing parked is one empty page', async (h, store) => {
      await h.add('a-paused', 'paused');
      const page = await store.unparkPage({ memberId: MEMBER, token: undefined }, { limit: 10 });
      expect(page).toEqual({ results: [], pausing: 0, cursor: undefined });
      expect(await h.status('a-paused')).toBe('paused');
    });
    withUnparkPage(
      'resumes the paused ones a page at a time, counts the pausing ones and leaves them parked, never a user pause',
      async (h, store) => {
        const fence = { memberId: MEMBER, token: nextToken() };
        const paused = ids('p', 12);
        await parkAndPause(h, paused, fence);
        // Parked and still pausing.
        const pausing = ids('q', 3);
        for (const id of pausing) await h.add(id, 'running');
        await h.store.park(pausing, fence);
        for (const id of pausing) if ((await h.status(id)) !== 'pausing') await h.setStatus(id, 'pausing');
        // Parked, then paused by a user: its mark is gone, so it is neither listed nor resumed.
        await parkAndPause(h, ['u-user'], fence);
        expect(await h.store.notePaused(['u-user'])).toEqual([{ id: 'u-user', outcome: 'released' }]);
        // What the pair of calls would see: the listed states.
        const listed = (await h.store.listParked({ limit: 100 })).items;
        const expectedPausing = listed.filter((w) => w.state === 'pausing').map((w) => w.id);
        expect(expectedPausing).toEqual(pausing);

        const pages = await unparkPages(store, { memberId: MEMBER, token: nextToken() }, 4);
        const results = pages.flatMap((p) => p.results);
        expect(results).toEqual(paused.map((id) => ({ id, outcome: 'resumed' })));
        expect(pages.reduce((n, p) => n + p.pausing, 0)).toBe(pausing.length);
        for (const id of paused) expect(await h.status(id)).toBe('running');
        for (const id of pausing) expect(await h.status(id)).toBe('pausing');
        expect(await h.status('u-user')).toBe('paused');
        expect((await h.store.listParked({ limit: 100 })).items.map((w) => w.id)).toEqual(pausing);
      },
    );
    withUnparkPage(
      'under a stale token rejects with StaleTokenError and resumes nothing',
      async (h, store) => {
        if (store.capabilities.fencing !== 'monotonic') return;
        const high = nextToken();
        await parkAndPause(h, ['a', 'b'], { memberId: MEMBER, token: high });
        const error = await rejectionOf(
          store.unparkPage({ memberId: MEMBER, token: high - 1n }, { limit: 10 }),
        );
        expect(error).toBeInstanceOf(StaleTokenError);
        expect([await h.status('a'), await h.status('b')]).toEqual(['paused', 'paused']);
        expect((await h.store.listParked({ limit: 10 })).items.map((w) => w.id)).toEqual(['a', 'b']);
      },
    );
    withUnparkPage('with an aborted signal rejects and resumes nothing', async (h, store) => {
      await parkAndPause(h, ['a', 'b'], { memberId: MEMBER, token: undefined });
      const signal = AbortSignal.abort(new Error('told to stop'));
      await rejectionOf(store.unparkPage({ memberId: MEMBER, token: undefined }, { limit: 10, signal }));
      expect([await h.status('a'), await h.status('b')]).toEqual(['paused', 'paused']);
      expect((await h.store.listParked({ limit: 10 })).items.map((w) => w.id)).toEqual(['a', 'b']);
    });
  });
}
