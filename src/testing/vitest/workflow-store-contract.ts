import { describe, expect, it } from 'vitest';
import { StaleTokenError } from '../../errors.js';
import { checkOptionsObject } from '../../validate.js';
import type { Fence, ListOptions, Page, ParkedWorkflow } from '../../workflow-store.js';
import type { HostStatus, WorkflowStoreHarness as Harness } from '../index.js';
import { generationContract } from './generation-contract.js';
import { pageContract } from './page-contract.js';
import { contractSuite, nextToken, rejectionOf } from './support.js';

/** Options of {@link workflowStoreContract}. */
export interface WorkflowStoreContractOptions {
  /** Shown in the describe() title. @defaultValue the store's constructor name */
  readonly name?: string;
}

const MEMBER = 'gd-contract-member';
const UNFENCED: Fence = Object.freeze({ memberId: MEMBER, token: undefined });
const fence = (memberId: string, token: bigint): Fence => ({ memberId, token });
const nameOf = (h: Harness): string => h.store.constructor.name;

/** Every page of a listing, `onPage` run after each; bounded, so a cursor that never ends fails. */
async function allPages<T>(
  list: (options: ListOptions) => Promise<Page<T>>,
  limit: number,
  onPage?: (items: readonly T[], page: number) => Promise<void>,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await list(cursor === undefined ? { limit } : { limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    await onPage?.(page.items, pages);
    if (page.cursor === undefined) return items;
    cursor = page.cursor;
  }
  throw new Error('The listing did not end after 10000 pages');
}

const ids = (prefix: string, count: number): string[] =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
const sorted = (values: Iterable<string>): string[] => [...values].sort();
/** The results of a batch call, from `'id:outcome'` strings. */
const results = (...pairs: string[]) => pairs.map((p) => ({ id: p.split(':')[0], outcome: p.split(':')[1] }));
const idOf = (pair: string): string => pair.split(':')[0] as string;
/** Unparks the ids of `pairs` under `f` and checks the results are `pairs`. */
const unparks = async (h: Harness, f: Fence, ...pairs: string[]): Promise<void> => {
  expect(await h.store.unpark(pairs.map(idOf), f)).toEqual(results(...pairs));
};
/** Notes the ids of `pairs` paused and checks the results are `pairs`. */
const notes = async (h: Harness, ...pairs: string[]): Promise<void> => {
  expect(await h.store.notePaused(pairs.map(idOf))).toEqual(results(...pairs));
};
const isStale = async (write: Promise<unknown>): Promise<void> => {
  expect(await rejectionOf(write)).toBeInstanceOf(StaleTokenError);
};

async function add(h: Harness, status: HostStatus, ...list: string[]): Promise<void> {
  for (const id of list) await h.add(id, status);
}
/** Sets the host's status of `id` to each of `statuses` in turn. */
async function move(h: Harness, id: string, ...statuses: HostStatus[]): Promise<void> {
  for (const status of statuses) await h.setStatus(id, status);
}
/** Checks the host's status of each id (`undefined`: not in the table). */
async function expectStatus(h: Harness, expected: Record<string, HostStatus | undefined>): Promise<void> {
  for (const [id, status] of Object.entries(expected)) expect([id, await h.status(id)]).toEqual([id, status]);
}
const active = (h: Harness, limit = 7, onPage?: (items: readonly string[], page: number) => Promise<void>) =>
  allPages((o) => h.store.listActive(o), limit, onPage);
const parked = (
  h: Harness,
  limit = 7,
  onPage?: (items: readonly ParkedWorkflow[], page: number) => Promise<void>,
) => allPages((o) => h.store.listParked(o), limit, onPage);
const parkedIds = async (h: Harness): Promise<string[]> => (await parked(h)).map((p) => p.id);
const parksOne = async (h: Harness, id: string, f: Fence): Promise<void> => {
  expect((await h.store.park([id], f))[0]?.outcome).not.toBe('skipped');
};
/** Parks `list` (all running) and brings every one to `paused`, as the host would. */
async function parkAndPause(h: Harness, list: readonly string[], f = UNFENCED): Promise<void> {
  const outcomes = (await h.store.park(list, f)).map((r) => r.outcome);
  expect(outcomes.every((x) => x === 'paused' || x === 'pausing')).toBe(true);
  for (const id of list) if ((await h.status(id)) !== 'paused') await h.setStatus(id, 'paused');
}
async function addParked(h: Harness, list: readonly string[], f = UNFENCED): Promise<void> {
  await add(h, 'running', ...list);
  await parkAndPause(h, list, f);
}

/**
 * Registers (with vitest's `describe`/`it`) the behaviour every `WorkflowStore` must show.
 *
 * `factory` is called once per test and must return a harness over an EMPTY host table, with a fence of
 * its own that no earlier harness raised (one case uses a coordinator's first tokens: 9, 10, 99, 100); the
 * suite closes it after the test. When `name` is not given, one harness is made while the suite is
 * collected, to read the store's constructor name.
 *
 * @example
 * ```ts
 * import { workflowStoreContract } from 'graceful-drain/testing/vitest';
 * workflowStoreContract(async () => makeHarnessOverAFreshTable(), { name: 'MyStore' });
 * ```
 */
export function workflowStoreContract(
  factory: () => Harness | Promise<Harness>,
  options?: WorkflowStoreContractOptions,
): void {
  const name = checkOptionsObject('workflowStoreContract()', options, ['name']).name as string | undefined;
  contractSuite('WorkflowStore contract', name, nameOf, factory, (make) => {
    /** `it(title)` with a fresh harness. */
    const test = (title: string, body: (h: Harness) => Promise<void>) =>
      it(title, async () => body(await make()));

    test('capabilities: fencing is monotonic or none', async (h) => {
      expect(['monotonic', 'none']).toContain(h.store.capabilities.fencing);
    });

    describe('listActive', () => {
      test('of an empty table is one empty page', async (h) => {
        expect(await h.store.listActive({ limit: 10 })).toEqual({ items: [], cursor: undefined });
      });
      test('pages cover every running, unparked workflow exactly once, and nothing else', async (h) => {
        const running = ids('run', 25);
        await add(h, 'running', ...running);
        await add(h, 'pausing', ...ids('pausing', 2));
        await add(h, 'paused', ...ids('paused', 3));
        await add(h, 'succeeded', ...ids('done', 2));
        await add(h, 'cancelled', ...ids('cancel', 2));
        await h.store.park(running.slice(0, 4), UNFENCED);
        for (const limit of [1, 7, 21, 100]) {
          const listed = await active(h, limit);
          expect(listed.length).toBe(21);
          expect(sorted(listed)).toEqual(running.slice(4));
        }
      });
      test('pages stay correct when each page is parked before the next is asked for', async (h) => {
        const running = ids('run', 23);
        await add(h, 'running', ...running);
        const seen = await active(h, 5, async (items) => {
          const outcomes = (await h.store.park(items, UNFENCED)).map((r) => r.outcome);
          expect(outcomes.every((x) => x !== 'skipped')).toBe(true);
        });
        expect(sorted(seen)).toEqual(running);
        expect(await active(h)).toEqual([]);
      });
      test('pages stay correct while workflows are added and finish between pages', async (h) => {
        const running = ids('run', 20);
        await add(h, 'running', ...running);
        const seen: string[] = [];
        const finished = new Set<string>();
        await active(h, 4, async (items, page) => {
          seen.push(...items);
          const victim = running.filter((id) => !seen.includes(id) && !finished.has(id)).at(-1);
          if (victim !== undefined) {
            await h.setStatus(victim, 'succeeded');
            finished.add(victim);
          }
          await h.add(`new-${page}`, 'running');
        });
        // no id twice; every workflow running throughout listed; finished ones not listed after finishing
        expect(new Set(seen).size).toBe(seen.length);
        for (const id of running) expect(seen.includes(id)).toBe(!finished.has(id));
      });
    });

    describe('park', () => {
      test('returns one result per id, in order: running ones paused or pausing, the rest skipped', async (h) => {
        await h.add('a-run', 'running');
        await h.add('b-paused', 'paused');
        await h.add('c-done', 'succeeded');
        await h.add('d-run', 'running');
        await h.add('e-cancelled', 'cancelled');
        await h.add('f-pausing', 'pausing');
        const order = ['d-run', 'b-paused', 'unknown', 'c-done', 'a-run', 'e-cancelled', 'f-pausing'];
        const outcomes = await h.store.park(order, UNFENCED);
        expect(outcomes.map((r) => r.id)).toEqual(order);
        const outcome = (id: string): string | undefined => outcomes.find((r) => r.id === id)?.outcome;
        for (const id of ['b-paused', 'unknown', 'c-done', 'e-cancelled', 'f-pausing']) {
          expect(outcome(id)).toBe('skipped');
        }
        for (const id of ['a-run', 'd-run']) {
          expect(['paused', 'pausing']).toContain(outcome(id));
          const status = await h.status(id);
          if (outcome(id) === 'paused') expect(status).toBe('paused');
          else expect(['pausing', 'paused']).toContain(status);
        }
        const kept = { 'b-paused': 'paused', 'c-done': 'succeeded', 'e-cancelled': 'cancelled' } as const;
        await expectStatus(h, { ...kept, 'f-pausing': 'pausing', unknown: undefined });
      });
      test('parking twice is a no-op: skipped, and the first mark is kept', async (h) => {
        await add(h, 'running', 'a', 'b');
        const token = nextToken();
        await h.store.park(['a', 'b'], fence('first', token));
        const before = await parked(h);
        const again = await h.store.park(['a', 'b'], fence('second', nextToken()));
        expect(again).toEqual(results('a:skipped', 'b:skipped'));
        expect(await parked(h)).toEqual(before);
        expect(before.map((p) => [p.id, p.memberId, p.token])).toEqual([
          ['a', 'first', token],
          ['b', 'first', token],
        ]);
      });
      test('a parked workflow a user resumed is active again, and parking it marks it anew', async (h) => {
        await addParked(h, ['a']);
        await h.setStatus('a', 'running');
        expect(await active(h)).toEqual(['a']);
        const token = nextToken();
        const again = await h.store.park(['a'], fence('later', token));
        expect(again).toHaveLength(1);
        expect(['paused', 'pausing']).toContain(again[0]?.outcome);
        const marks = await parked(h);
        expect(marks.map((p) => [p.id, p.memberId, p.token])).toEqual([['a', 'later', token]]);
      });
      test('parked workflows leave listActive', async (h) => {
        await add(h, 'running', 'a', 'b', 'c');
        await h.store.park(['b'], UNFENCED);
        expect(sorted(await active(h))).toEqual(['a', 'c']);
      });
      test('of no ids returns no results', async (h) => {
        expect(await h.store.park([], UNFENCED)).toEqual([]);
        expect(await h.store.unpark([], UNFENCED)).toEqual([]);
      });
    });

    describe('listParked', () => {
      test('pages list the marked workflows once each, with their state, member and token', async (h) => {
        const list = ids('wf', 12);
        await add(h, 'running', ...list);
        await h.add('user-paused', 'paused');
        const token = nextToken();
        await h.store.park(list, fence(MEMBER, token));
        await h.setStatus('wf-0000', 'pausing');
        await h.setStatus('wf-0001', 'paused');
        for (const limit of [1, 5, 50]) {
          const items = await parked(h, limit);
          expect(sorted(items.map((p) => p.id))).toEqual(list);
          for (const p of items) {
            expect([p.memberId, p.token, p.state]).toEqual([MEMBER, token, await h.status(p.id)]);
          }
          const state = (id: string): string | undefined => items.find((p) => p.id === id)?.state;
          expect([state('wf-0000'), state('wf-0001')]).toEqual(['pausing', 'paused']);
        }
      });
      test('pages stay correct when each page is unparked before the next is asked for', async (h) => {
        // The resume loop's pattern: list a page, unpark it, ask for the next page with the cursor.
        const list = ids('wf', 23);
        await addParked(h, list);
        const seen = await parked(h, 5, async (items) => {
          const listed = items.map((p) => p.id);
          expect(await h.store.unpark(listed, UNFENCED)).toEqual(
            listed.map((id) => ({ id, outcome: 'resumed' })),
          );
        });
        expect(sorted(seen.map((p) => p.id))).toEqual(list);
        expect(await parked(h)).toEqual([]);
        expect(sorted(await active(h))).toEqual(list);
      });
      test('no longer lists a workflow whose status moved away from pausing or paused (the mark went with it)', async (h) => {
        const list = ['cancelled', 'done', 'failed', 'from-pausing', 'resumed', 'kept'];
        await add(h, 'running', ...list);
        await h.store.park(list, fence(MEMBER, nextToken()));
        await h.setStatus('from-pausing', 'pausing');
        await h.setStatus('cancelled', 'cancelled');
        await h.setStatus('done', 'succeeded');
        await h.setStatus('failed', 'failed');
        await h.setStatus('from-pausing', 'running');
        await h.setStatus('resumed', 'running');
        await move(h, 'kept', 'pausing', 'paused'); // pausing <-> paused keeps it
        expect(await parkedIds(h)).toEqual(['kept']);
        expect(sorted(await active(h))).toEqual(['from-pausing', 'resumed']);
      });
      test('records an unfenced park with token undefined', async (h) => {
        await h.add('a', 'running');
        await h.store.park(['a'], UNFENCED);
        expect(await parked(h)).toEqual([
          { id: 'a', state: expect.stringMatching(/^paus/), memberId: MEMBER, token: undefined },
        ]);
      });
    });

    describe('unpark', () => {
      test('resumes a marked, paused workflow and clears its mark', async (h) => {
        await addParked(h, ['a', 'b']);
        await unparks(h, UNFENCED, 'b:resumed', 'a:resumed');
        await expectStatus(h, { a: 'running', b: 'running' });
        expect(await parked(h)).toEqual([]);
        expect(sorted(await active(h))).toEqual(['a', 'b']);
      });
      test('skips a marked workflow a user cancelled or resumed, clearing its mark and changing nothing else', async (h) => {
        await addParked(h, ['cancelled', 'resumed']);
        await h.setStatus('cancelled', 'cancelled');
        await h.setStatus('resumed', 'running');
        await unparks(h, UNFENCED, 'cancelled:skipped', 'resumed:skipped');
        await expectStatus(h, { cancelled: 'cancelled', resumed: 'running' });
        expect(await parked(h)).toEqual([]);
        expect(await active(h)).toEqual(['resumed']);
      });
      test('skips a marked workflow still pausing and keeps its mark, to resume it once paused', async (h) => {
        await h.add('a', 'running');
        await h.store.park(['a'], UNFENCED);
        await h.setStatus('a', 'pausing');
        await unparks(h, UNFENCED, 'a:skipped');
        await expectStatus(h, { a: 'pausing' });
        expect((await parked(h)).map((p) => [p.id, p.state])).toEqual([['a', 'pausing']]);
        await h.setStatus('a', 'paused');
        await unparks(h, UNFENCED, 'a:resumed');
        await expectStatus(h, { a: 'running' });
      });
      test('never resumes a workflow a user paused (no mark)', async (h) => {
        await h.add('user', 'paused');
        await addParked(h, ['parked']);
        await unparks(h, UNFENCED, 'user:skipped', 'parked:resumed', 'unknown:skipped');
        await expectStatus(h, { user: 'paused', unknown: undefined });
      });
      test('unparking twice is a no-op: skipped', async (h) => {
        await addParked(h, ['a']);
        await h.store.unpark(['a'], UNFENCED);
        await h.setStatus('a', 'paused');
        await unparks(h, UNFENCED, 'a:skipped');
        await expectStatus(h, { a: 'paused' });
      });
    });

    describe('a mark belongs to the pause it created', () => {
      test('a parked workflow a user resumed then paused again is never resumed by unpark', async (h) => {
        const f = fence(MEMBER, nextToken());
        await addParked(h, ['a', 'b', 'c'], f);
        // a: resumed, then paused again; b: the same through pausing; c: untouched
        await move(h, 'a', 'running', 'paused');
        await move(h, 'b', 'running', 'pausing', 'paused');
        expect(await parkedIds(h)).toEqual(['c']);
        await unparks(h, f, 'a:skipped', 'b:skipped', 'c:resumed');
        await expectStatus(h, { a: 'paused', b: 'paused', c: 'running' });
      });
      test('a workflow still pausing that a user resumed then paused again is never resumed either', async (h) => {
        await h.add('a', 'running');
        await h.store.park(['a'], UNFENCED);
        await move(h, 'a', 'pausing', 'running', 'pausing', 'paused');
        expect(await parked(h)).toEqual([]);
        await unparks(h, UNFENCED, 'a:skipped');
        await expectStatus(h, { a: 'paused' });
      });
      test('a workflow the host deletes loses its mark (when the harness can delete)', async (h) => {
        if (h.remove === undefined) return;
        await addParked(h, ['a', 'b']);
        await h.remove('a');
        expect(await parkedIds(h)).toEqual(['b']);
        await unparks(h, UNFENCED, 'a:skipped', 'b:resumed');
        await expectStatus(h, { a: undefined });
      });
    });

    describe('notePaused', () => {
      test('drops the mark of a parked workflow (released): unpark then skips it and listParked no longer lists it', async (h) => {
        await addParked(h, ['a', 'b']);
        await notes(h, 'a:released');
        await expectStatus(h, { a: 'paused' });
        expect(await parkedIds(h)).toEqual(['b']);
        await unparks(h, UNFENCED, 'a:skipped', 'b:resumed');
        await expectStatus(h, { a: 'paused' });
      });
      test('of a workflow still pausing: released, and it is not resumed once paused', async (h) => {
        await h.add('a', 'running');
        await h.store.park(['a'], UNFENCED);
        await h.setStatus('a', 'pausing');
        await notes(h, 'a:released');
        await h.setStatus('a', 'paused');
        expect(await parked(h)).toEqual([]);
        await unparks(h, UNFENCED, 'a:skipped');
        await expectStatus(h, { a: 'paused' });
      });
      test('skips what carries no mark, one result per id in order, a repeated id released once', async (h) => {
        await h.add('user', 'paused');
        await h.add('run', 'running');
        await addParked(h, ['parked']);
        await notes(h, 'user:skipped', 'parked:released', 'unknown:skipped', 'run:skipped', 'parked:skipped');
        await expectStatus(h, { user: 'paused', run: 'running', parked: 'paused', unknown: undefined });
        expect(await h.store.notePaused([])).toEqual([]);
      });
      test('a later park and unpark of the same workflow work as usual', async (h) => {
        await addParked(h, ['a']);
        await h.store.notePaused(['a']);
        await h.setStatus('a', 'running');
        await parkAndPause(h, ['a']);
        await unparks(h, UNFENCED, 'a:resumed');
        await expectStatus(h, { a: 'running' });
      });
    });

    describe('fencing', () => {
      test('with monotonic fencing, a park with a stale token rejects with StaleTokenError and writes nothing', async (h) => {
        if (h.store.capabilities.fencing !== 'monotonic') return;
        await add(h, 'running', 'a', 'b', 'c');
        const high = nextToken();
        await h.store.park(['a'], fence('new', high));
        const error = await rejectionOf(h.store.park(['b', 'c'], fence('old', high - 1n)));
        expect(error).toBeInstanceOf(StaleTokenError);
        expect(error).toMatchObject({ code: 'ERR_STALE_TOKEN' });
        await expectStatus(h, { b: 'running', c: 'running' });
        expect(await parkedIds(h)).toEqual(['a']);
        // the same token, a higher one and no token are accepted
        await parksOne(h, 'b', fence('new', high));
        await parksOne(h, 'c', UNFENCED);
        await h.add('d', 'running');
        await parksOne(h, 'd', fence('newer', nextToken()));
      });
      test('with monotonic fencing, an unpark with a stale token rejects with StaleTokenError and writes nothing', async (h) => {
        if (h.store.capabilities.fencing !== 'monotonic') return;
        const high = nextToken();
        await addParked(h, ['a', 'b'], fence('new', high));
        await expect(h.store.unpark(['a', 'b'], fence('old', high - 5n))).rejects.toThrow(StaleTokenError);
        await expectStatus(h, { a: 'paused' });
        expect(sorted(await parkedIds(h))).toEqual(['a', 'b']);
        await unparks(h, UNFENCED, 'a:resumed');
        await unparks(h, fence('newer', nextToken()), 'b:resumed');
      });
      test('with monotonic fencing, tokens compare as numbers, not as text: 9 is below 10, 100 above 99', async (h) => {
        if (h.store.capabilities.fencing !== 'monotonic') return;
        // A coordinator's tokens start at 1, so they change digit count; the harness's fresh fence takes them.
        await add(h, 'running', 'a', 'b');
        try {
          await h.store.raiseFence(fence('ten', 10n));
        } catch (error) {
          if (!(error instanceof StaleTokenError)) throw error;
          throw new Error('The harness came with a fence raised already: each needs a fence of its own', {
            cause: error,
          });
        }
        await isStale(h.store.park(['a'], fence('nine', 9n)));
        await isStale(h.store.raiseFence(fence('nine', 9n)));
        await h.store.raiseFence(fence('ninety-nine', 99n));
        await parksOne(h, 'a', fence('hundred', 100n));
        await isStale(h.store.park(['b'], fence('ninety-nine', 99n)));
        await expectStatus(h, { b: 'running' });
        expect((await parked(h)).map((p) => [p.id, p.memberId, p.token])).toEqual([['a', 'hundred', 100n]]);
      });
      test('without fencing, a lower token is accepted', async (h) => {
        if (h.store.capabilities.fencing !== 'none') return;
        await add(h, 'running', 'a', 'b');
        const high = nextToken();
        await h.store.park(['a'], fence('new', high));
        await parksOne(h, 'b', fence('old', high - 1n));
      });
    });

    describe('raiseFence', () => {
      test('with monotonic fencing, a raised fence makes later writes under a lower token reject, writing nothing', async (h) => {
        if (h.store.capabilities.fencing !== 'monotonic') return;
        await add(h, 'running', 'a', 'b');
        const old = nextToken();
        await parkAndPause(h, ['b'], fence('old', old));
        const high = nextToken();
        await h.store.raiseFence(fence('new', high));
        // it wrote nothing else
        await expectStatus(h, { a: 'running' });
        expect((await parked(h)).map((p) => [p.id, p.memberId, p.token])).toEqual([['b', 'old', old]]);
        // a write sent under the older token and delayed lands after it: rejected
        await isStale(h.store.park(['a'], fence('old', old)));
        await isStale(h.store.unpark(['b'], fence('old', old)));
        await expectStatus(h, { a: 'running', b: 'paused' });
        expect(await parkedIds(h)).toEqual(['b']);
        // the holder of the raised token writes
        await unparks(h, fence('new', high), 'b:resumed');
      });
      test('with monotonic fencing, raising to a lower token rejects with StaleTokenError; the same or a higher one is accepted', async (h) => {
        if (h.store.capabilities.fencing !== 'monotonic') return;
        const high = nextToken();
        await h.store.raiseFence(fence('new', high));
        const error = await rejectionOf(h.store.raiseFence(fence('old', high - 1n)));
        expect(error).toBeInstanceOf(StaleTokenError);
        expect(error).toMatchObject({ code: 'ERR_STALE_TOKEN' });
        await h.store.raiseFence(fence('new', high));
        await h.store.raiseFence(fence('newer', nextToken()));
        // the rejected raise did not lower the bar
        await h.add('a', 'running');
        await isStale(h.store.park(['a'], fence('new', high)));
      });
      test('with token undefined is a no-op: it neither raises nor lowers the fence', async (h) => {
        await h.store.raiseFence(UNFENCED);
        await add(h, 'running', 'a', 'b');
        const high = nextToken();
        await h.store.park(['a'], fence('new', high));
        await h.store.raiseFence(UNFENCED);
        if (h.store.capabilities.fencing === 'monotonic')
          await isStale(h.store.park(['b'], fence('old', high - 1n)));
        await parksOne(h, 'b', UNFENCED);
      });
      test('without fencing, any token is accepted', async (h) => {
        if (h.store.capabilities.fencing !== 'none') return;
        const high = nextToken();
        await h.store.raiseFence(fence('new', high));
        await h.store.raiseFence(fence('old', high - 1n));
        await h.add('a', 'running');
        await parksOne(h, 'a', fence('old', high - 1n));
      });
    });

    describe('signal', () => {
      test('already aborted: every call rejects with its reason and writes nothing', async (h) => {
        await h.add('run', 'running');
        const token = nextToken();
        await addParked(h, ['parked'], fence(MEMBER, token));
        const reason = new Error('given up');
        const signal = AbortSignal.abort(reason);
        const higher = nextToken();
        const f = fence(MEMBER, higher);
        const calls: [string, () => Promise<unknown>][] = [
          ['listActive', () => h.store.listActive({ limit: 10, signal })],
          ['listParked', () => h.store.listParked({ limit: 10, signal })],
          ['park', () => h.store.park(['run'], f, { signal })],
          ['unpark', () => h.store.unpark(['parked'], f, { signal })],
          ['raiseFence', () => h.store.raiseFence(fence(MEMBER, higher + 5n), { signal })],
          ['notePaused', () => h.store.notePaused(['parked'], { signal })],
        ];
        const diagnose = h.store.diagnose?.bind(h.store);
        if (diagnose !== undefined) calls.push(['diagnose', () => diagnose({ signal })]);
        for (const [name, call] of calls) expect([name, await rejectionOf(call())]).toEqual([name, reason]);
        await expectStatus(h, { run: 'running', parked: 'paused' });
        expect((await parked(h)).map((p) => [p.id, p.token])).toEqual([['parked', token]]);
        // the aborted raiseFence and writes did not move the fence: `higher` is still accepted
        await parksOne(h, 'run', f);
        await unparks(h, f, 'parked:resumed');
      });
      test('a live signal changes nothing', async (h) => {
        const { signal } = new AbortController();
        await h.add('a', 'running');
        expect(await h.store.listActive({ limit: 10, signal })).toEqual({ items: ['a'], cursor: undefined });
        const f = fence(MEMBER, nextToken());
        await h.store.raiseFence(f, { signal });
        expect(['paused', 'pausing']).toContain((await h.store.park(['a'], f, { signal }))[0]?.outcome);
        if ((await h.status('a')) !== 'paused') await h.setStatus('a', 'paused');
        expect((await h.store.listParked({ limit: 10, signal })).items.map((p) => p.id)).toEqual(['a']);
        expect(await h.store.unpark(['a'], f, { signal })).toEqual(results('a:resumed'));
        expect(await h.store.notePaused(['a'], { signal })).toEqual(results('a:skipped'));
      });
    });

    describe('diagnose (optional)', () => {
      test('warns about nothing for an empty table, nor for one whose rows use the configured statuses', async (h) => {
        if (h.store.diagnose === undefined) return;
        expect(await h.store.diagnose()).toEqual([]);
        for (const status of ['running', 'pausing', 'paused', 'succeeded', 'cancelled'] as const)
          await h.add(`wf-${status}`, status);
        expect(await h.store.diagnose()).toEqual([]);
      });
    });

    pageContract(make);
    generationContract(make);

    test('a batch of 1000 ids parks, lists and unparks', async (h) => {
      const list = ids('big', 1000);
      await add(h, 'running', ...list);
      const parkedNow = await h.store.park(list, fence(MEMBER, nextToken()));
      expect(parkedNow.map((r) => r.id)).toEqual(list);
      expect(parkedNow.every((r) => r.outcome === 'paused' || r.outcome === 'pausing')).toBe(true);
      expect(await active(h, 100)).toEqual([]);
      expect(sorted((await parked(h, 100)).map((p) => p.id))).toEqual(list);
      for (const r of parkedNow) if (r.outcome === 'pausing') await h.setStatus(r.id, 'paused');
      const resumed = await h.store.unpark(list, UNFENCED);
      expect(resumed.every((r) => r.outcome === 'resumed')).toBe(true);
      expect(sorted(await active(h, 250))).toEqual(list);
    });
  });
}
