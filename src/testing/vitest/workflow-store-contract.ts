import { afterEach, describe, expect, it } from 'vitest';
import { StaleTokenError } from '../../errors.js';
import { checkOptionsObject } from '../../validate.js';
import type { Fence, ListOptions, Page, ParkedWorkflow } from '../../workflow-store.js';
import type { HostStatus, WorkflowStoreHarness } from '../workflow-store-harness.js';

/** Options of {@link workflowStoreContract}. */
export interface WorkflowStoreContractOptions {
  /**
   * Shown in the describe() title.
   * @defaultValue the store's constructor name
   */
  readonly name?: string;
}

const MEMBER = 'gd-contract-member';
const UNFENCED: Fence = Object.freeze({ memberId: MEMBER, token: undefined });

// Tokens only grow across the whole suite, in case a store keeps its highest token beyond a harness.
let lastToken = BigInt(Date.now()) * 1000n;
function nextToken(): bigint {
  lastToken += 10n;
  return lastToken;
}

/** Every page of a listing, with a bound so a cursor that never ends fails instead of hanging. */
async function allPages<T>(list: (options: ListOptions) => Promise<Page<T>>, limit: number): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await list(cursor === undefined ? { limit } : { limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    if (page.cursor === undefined) return items;
    cursor = page.cursor;
  }
  throw new Error('The listing did not end after 10000 pages');
}

/** Settles with the rejection reason, failing when the promise resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('Expected the promise to reject, but it resolved');
}

function ids(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

/**
 * Registers (with vitest's `describe`/`it`) the behaviour every `WorkflowStore` must show.
 *
 * `factory` is called once per test and must return a harness over an EMPTY host table; the suite
 * closes it after the test. When `name` is not given, one harness is made while the suite is
 * collected, to read the store's constructor name.
 *
 * @example
 * ```ts
 * import { workflowStoreContract } from 'graceful-drain/testing/vitest';
 * workflowStoreContract(async () => makeHarnessOverAFreshTable(), { name: 'MyStore' });
 * ```
 */
export function workflowStoreContract(
  factory: () => WorkflowStoreHarness | Promise<WorkflowStoreHarness>,
  options?: WorkflowStoreContractOptions,
): void {
  const o = checkOptionsObject('workflowStoreContract()', options, ['name']);
  describe('WorkflowStore contract', async () => {
    let name = o.name as string | undefined;
    if (name === undefined) {
      const probe = await factory();
      name = probe.store.constructor.name;
      await probe.close();
    }
    describe(name, () => {
      const open: WorkflowStoreHarness[] = [];
      const make = async (): Promise<WorkflowStoreHarness> => {
        const h = await factory();
        open.push(h);
        return h;
      };
      const addAll = async (
        h: WorkflowStoreHarness,
        list: readonly string[],
        status: HostStatus,
      ): Promise<void> => {
        for (const id of list) await h.add(id, status);
      };
      const active = (h: WorkflowStoreHarness, limit = 7): Promise<string[]> =>
        allPages((opts) => h.store.listActive(opts), limit);
      const parked = (h: WorkflowStoreHarness, limit = 7): Promise<ParkedWorkflow[]> =>
        allPages((opts) => h.store.listParked(opts), limit);
      /** Parks `list` (all running) and brings every one to `paused`, as the host would. */
      const parkAndPause = async (h: WorkflowStoreHarness, list: readonly string[], fence = UNFENCED) => {
        const results = await h.store.park(list, fence);
        expect(results.map((r) => r.outcome).every((x) => x === 'paused' || x === 'pausing')).toBe(true);
        for (const id of list) if ((await h.status(id)) !== 'paused') await h.setStatus(id, 'paused');
      };

      afterEach(async () => {
        await Promise.all(open.splice(0).map((h) => h.close()));
      });

      it('capabilities: fencing is monotonic or none', async () => {
        const h = await make();
        expect(['monotonic', 'none']).toContain(h.store.capabilities.fencing);
      });

      describe('listActive', () => {
        it('of an empty table is one empty page', async () => {
          const h = await make();
          expect(await h.store.listActive({ limit: 10 })).toEqual({ items: [], cursor: undefined });
        });

        it('pages cover every running, unparked workflow exactly once, and nothing else', async () => {
          const h = await make();
          const running = ids('run', 25);
          await addAll(h, running, 'running');
          await addAll(h, ids('pausing', 2), 'pausing');
          await addAll(h, ids('paused', 3), 'paused');
          await addAll(h, ids('done', 2), 'succeeded');
          await addAll(h, ids('cancel', 2), 'cancelled');
          await h.store.park(running.slice(0, 4), UNFENCED);
          for (const limit of [1, 7, 21, 100]) {
            const listed = await active(h, limit);
            expect(listed.length).toBe(21);
            expect(sorted(listed)).toEqual(sorted(running.slice(4)));
          }
        });

        it('pages stay correct when each page is parked before the next is asked for', async () => {
          const h = await make();
          const running = ids('run', 23);
          await addAll(h, running, 'running');
          const seen: string[] = [];
          let cursor: string | undefined;
          for (let pages = 0; pages < 100; pages++) {
            const page = await h.store.listActive(cursor === undefined ? { limit: 5 } : { limit: 5, cursor });
            seen.push(...page.items);
            const results = await h.store.park(page.items, UNFENCED);
            expect(results.every((r) => r.outcome !== 'skipped')).toBe(true);
            cursor = page.cursor;
            if (cursor === undefined) break;
          }
          expect(sorted(seen)).toEqual(sorted(running));
          expect(await active(h)).toEqual([]);
        });

        it('pages stay correct while workflows are added and finish between pages', async () => {
          const h = await make();
          const running = ids('run', 20);
          await addAll(h, running, 'running');
          const seen: string[] = [];
          const finished = new Set<string>();
          let cursor: string | undefined;
          for (let pages = 0; pages < 100; pages++) {
            const page = await h.store.listActive(cursor === undefined ? { limit: 4 } : { limit: 4, cursor });
            seen.push(...page.items);
            const unseen = running.filter((id) => !seen.includes(id) && !finished.has(id));
            const victim = unseen.at(-1);
            if (victim !== undefined) {
              await h.setStatus(victim, 'succeeded');
              finished.add(victim);
            }
            await h.add(`new-${pages}`, 'running');
            cursor = page.cursor;
            if (cursor === undefined) break;
          }
          // no id twice; every workflow running throughout listed; finished ones not listed after finishing
          expect(new Set(seen).size).toBe(seen.length);
          for (const id of running) expect(seen.includes(id)).toBe(!finished.has(id));
        });
      });

      describe('park', () => {
        it('returns one result per id, in order: running ones paused or pausing, the rest skipped', async () => {
          const h = await make();
          await h.add('a-run', 'running');
          await h.add('b-paused', 'paused');
          await h.add('c-done', 'succeeded');
          await h.add('d-run', 'running');
          await h.add('e-cancelled', 'cancelled');
          await h.add('f-pausing', 'pausing');
          const order = ['d-run', 'b-paused', 'unknown', 'c-done', 'a-run', 'e-cancelled', 'f-pausing'];
          const results = await h.store.park(order, UNFENCED);
          expect(results.map((r) => r.id)).toEqual(order);
          const outcome = (id: string): string | undefined => results.find((r) => r.id === id)?.outcome;
          for (const id of ['b-paused', 'unknown', 'c-done', 'e-cancelled', 'f-pausing']) {
            expect(outcome(id)).toBe('skipped');
          }
          for (const id of ['a-run', 'd-run']) {
            expect(['paused', 'pausing']).toContain(outcome(id));
            const status = await h.status(id);
            if (outcome(id) === 'paused') expect(status).toBe('paused');
            else expect(['pausing', 'paused']).toContain(status);
          }
          expect(await h.status('b-paused')).toBe('paused');
          expect(await h.status('c-done')).toBe('succeeded');
          expect(await h.status('e-cancelled')).toBe('cancelled');
          expect(await h.status('f-pausing')).toBe('pausing');
          expect(await h.status('unknown')).toBeUndefined();
        });

        it('parking twice is a no-op: skipped, and the first mark is kept', async () => {
          const h = await make();
          await addAll(h, ['a', 'b'], 'running');
          const token = nextToken();
          await h.store.park(['a', 'b'], { memberId: 'first', token });
          const before = await parked(h);
          const again = await h.store.park(['a', 'b'], { memberId: 'second', token: nextToken() });
          expect(again).toEqual([
            { id: 'a', outcome: 'skipped' },
            { id: 'b', outcome: 'skipped' },
          ]);
          expect(await parked(h)).toEqual(before);
          expect(before.map((p) => [p.id, p.memberId, p.token])).toEqual([
            ['a', 'first', token],
            ['b', 'first', token],
          ]);
        });

        it('a parked workflow a user resumed is active again, and parking it marks it anew', async () => {
          const h = await make();
          await h.add('a', 'running');
          await parkAndPause(h, ['a']);
          await h.setStatus('a', 'running');
          expect(await active(h)).toEqual(['a']);
          const token = nextToken();
          const again = await h.store.park(['a'], { memberId: 'later', token });
          expect(again).toHaveLength(1);
          expect(['paused', 'pausing']).toContain(again[0]?.outcome);
          const marks = await parked(h);
          expect(marks.map((p) => [p.id, p.memberId, p.token])).toEqual([['a', 'later', token]]);
        });

        it('parked workflows leave listActive', async () => {
          const h = await make();
          await addAll(h, ['a', 'b', 'c'], 'running');
          await h.store.park(['b'], UNFENCED);
          expect(sorted(await active(h))).toEqual(['a', 'c']);
        });

        it('of no ids returns no results', async () => {
          const h = await make();
          expect(await h.store.park([], UNFENCED)).toEqual([]);
          expect(await h.store.unpark([], UNFENCED)).toEqual([]);
        });
      });

      describe('listParked', () => {
        it('pages list the marked workflows once each, with their state, member and token', async () => {
          const h = await make();
          const list = ids('wf', 12);
          await addAll(h, list, 'running');
          await h.add('user-paused', 'paused');
          const token = nextToken();
          await h.store.park(list, { memberId: MEMBER, token });
          await h.setStatus('wf-0000', 'pausing');
          await h.setStatus('wf-0001', 'paused');
          for (const limit of [1, 5, 50]) {
            const items = await parked(h, limit);
            expect(sorted(items.map((p) => p.id))).toEqual(list);
            for (const p of items) {
              expect(p.memberId).toBe(MEMBER);
              expect(p.token).toBe(token);
              expect(p.state).toBe(await h.status(p.id));
            }
            const state = (id: string): string | undefined => items.find((p) => p.id === id)?.state;
            expect([state('wf-0000'), state('wf-0001')]).toEqual(['pausing', 'paused']);
          }
        });

        it('no longer lists a workflow whose status moved away from pausing or paused (the mark went with it)', async () => {
          const h = await make();
          const list = ['cancelled', 'done', 'from-pausing', 'resumed'];
          await addAll(h, list, 'running');
          await h.add('kept', 'running');
          await h.store.park([...list, 'kept'], { memberId: MEMBER, token: nextToken() });
          await h.setStatus('from-pausing', 'pausing');
          await h.setStatus('cancelled', 'cancelled');
          await h.setStatus('done', 'succeeded');
          await h.setStatus('from-pausing', 'running');
          await h.setStatus('resumed', 'running');
          // pausing <-> paused keeps it
          await h.setStatus('kept', 'pausing');
          await h.setStatus('kept', 'paused');
          expect((await parked(h)).map((p) => p.id)).toEqual(['kept']);
          expect(sorted(await active(h))).toEqual(['from-pausing', 'resumed']);
        });

        it('records an unfenced park with token undefined', async () => {
          const h = await make();
          await h.add('a', 'running');
          await h.store.park(['a'], UNFENCED);
          expect(await parked(h)).toEqual([
            { id: 'a', state: expect.stringMatching(/^paus/), memberId: MEMBER, token: undefined },
          ]);
        });
      });

      describe('unpark', () => {
        it('resumes a marked, paused workflow and clears its mark', async () => {
          const h = await make();
          await addAll(h, ['a', 'b'], 'running');
          await parkAndPause(h, ['a', 'b']);
          expect(await h.store.unpark(['b', 'a'], UNFENCED)).toEqual([
            { id: 'b', outcome: 'resumed' },
            { id: 'a', outcome: 'resumed' },
          ]);
          expect(await h.status('a')).toBe('running');
          expect(await h.status('b')).toBe('running');
          expect(await parked(h)).toEqual([]);
          expect(sorted(await active(h))).toEqual(['a', 'b']);
        });

        it('skips a marked workflow a user cancelled or resumed, clearing its mark and changing nothing else', async () => {
          const h = await make();
          await addAll(h, ['cancelled', 'resumed'], 'running');
          await parkAndPause(h, ['cancelled', 'resumed']);
          await h.setStatus('cancelled', 'cancelled');
          await h.setStatus('resumed', 'running');
          expect(await h.store.unpark(['cancelled', 'resumed'], UNFENCED)).toEqual([
            { id: 'cancelled', outcome: 'skipped' },
            { id: 'resumed', outcome: 'skipped' },
          ]);
          expect(await h.status('cancelled')).toBe('cancelled');
          expect(await h.status('resumed')).toBe('running');
          expect(await parked(h)).toEqual([]);
          expect(await active(h)).toEqual(['resumed']);
        });

        it('skips a marked workflow still pausing and keeps its mark, to resume it once paused', async () => {
          const h = await make();
          await h.add('a', 'running');
          await h.store.park(['a'], UNFENCED);
          await h.setStatus('a', 'pausing');
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'skipped' }]);
          expect(await h.status('a')).toBe('pausing');
          expect((await parked(h)).map((p) => [p.id, p.state])).toEqual([['a', 'pausing']]);
          await h.setStatus('a', 'paused');
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'resumed' }]);
          expect(await h.status('a')).toBe('running');
        });

        it('never resumes a workflow a user paused (no mark)', async () => {
          const h = await make();
          await h.add('user', 'paused');
          await h.add('parked', 'running');
          await parkAndPause(h, ['parked']);
          expect(await h.store.unpark(['user', 'parked', 'unknown'], UNFENCED)).toEqual([
            { id: 'user', outcome: 'skipped' },
            { id: 'parked', outcome: 'resumed' },
            { id: 'unknown', outcome: 'skipped' },
          ]);
          expect(await h.status('user')).toBe('paused');
          expect(await h.status('unknown')).toBeUndefined();
        });

        it('unparking twice is a no-op: skipped', async () => {
          const h = await make();
          await h.add('a', 'running');
          await parkAndPause(h, ['a']);
          await h.store.unpark(['a'], UNFENCED);
          await h.setStatus('a', 'paused');
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'skipped' }]);
          expect(await h.status('a')).toBe('paused');
        });
      });

      describe('a mark belongs to the pause it created', () => {
        it('a parked workflow a user resumed then paused again is never resumed by unpark', async () => {
          const h = await make();
          await addAll(h, ['a', 'b', 'c'], 'running');
          const token = nextToken();
          await parkAndPause(h, ['a', 'b', 'c'], { memberId: MEMBER, token });
          // a: resumed, then paused again; b: the same through pausing; c: untouched
          await h.setStatus('a', 'running');
          await h.setStatus('a', 'paused');
          await h.setStatus('b', 'running');
          await h.setStatus('b', 'pausing');
          await h.setStatus('b', 'paused');
          expect((await parked(h)).map((p) => p.id)).toEqual(['c']);
          expect(await h.store.unpark(['a', 'b', 'c'], { memberId: MEMBER, token })).toEqual([
            { id: 'a', outcome: 'skipped' },
            { id: 'b', outcome: 'skipped' },
            { id: 'c', outcome: 'resumed' },
          ]);
          expect(await h.status('a')).toBe('paused');
          expect(await h.status('b')).toBe('paused');
          expect(await h.status('c')).toBe('running');
        });

        it('a workflow still pausing that a user resumed then paused again is never resumed either', async () => {
          const h = await make();
          await h.add('a', 'running');
          await h.store.park(['a'], UNFENCED);
          await h.setStatus('a', 'pausing');
          await h.setStatus('a', 'running');
          await h.setStatus('a', 'pausing');
          await h.setStatus('a', 'paused');
          expect(await parked(h)).toEqual([]);
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'skipped' }]);
          expect(await h.status('a')).toBe('paused');
        });

        it('a workflow the host deletes loses its mark (when the harness can delete)', async () => {
          const h = await make();
          if (h.remove === undefined) return;
          await addAll(h, ['a', 'b'], 'running');
          await parkAndPause(h, ['a', 'b']);
          await h.remove('a');
          expect((await parked(h)).map((p) => p.id)).toEqual(['b']);
          expect(await h.store.unpark(['a', 'b'], UNFENCED)).toEqual([
            { id: 'a', outcome: 'skipped' },
            { id: 'b', outcome: 'resumed' },
          ]);
          expect(await h.status('a')).toBeUndefined();
        });
      });

      describe('notePaused', () => {
        it('drops the mark of a parked workflow (released): unpark then skips it and listParked no longer lists it', async () => {
          const h = await make();
          await addAll(h, ['a', 'b'], 'running');
          await parkAndPause(h, ['a', 'b']);
          expect(await h.store.notePaused(['a'])).toEqual([{ id: 'a', outcome: 'released' }]);
          expect(await h.status('a')).toBe('paused');
          expect((await parked(h)).map((p) => p.id)).toEqual(['b']);
          expect(await h.store.unpark(['a', 'b'], UNFENCED)).toEqual([
            { id: 'a', outcome: 'skipped' },
            { id: 'b', outcome: 'resumed' },
          ]);
          expect(await h.status('a')).toBe('paused');
        });

        it('of a workflow still pausing: released, and it is not resumed once paused', async () => {
          const h = await make();
          await h.add('a', 'running');
          await h.store.park(['a'], UNFENCED);
          await h.setStatus('a', 'pausing');
          expect(await h.store.notePaused(['a'])).toEqual([{ id: 'a', outcome: 'released' }]);
          await h.setStatus('a', 'paused');
          expect(await parked(h)).toEqual([]);
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'skipped' }]);
          expect(await h.status('a')).toBe('paused');
        });

        it('skips what carries no mark, one result per id in order, a repeated id released once', async () => {
          const h = await make();
          await h.add('user', 'paused');
          await h.add('run', 'running');
          await h.add('parked', 'running');
          await parkAndPause(h, ['parked']);
          const order = ['user', 'parked', 'unknown', 'run', 'parked'];
          expect(await h.store.notePaused(order)).toEqual([
            { id: 'user', outcome: 'skipped' },
            { id: 'parked', outcome: 'released' },
            { id: 'unknown', outcome: 'skipped' },
            { id: 'run', outcome: 'skipped' },
            { id: 'parked', outcome: 'skipped' },
          ]);
          expect(await h.status('user')).toBe('paused');
          expect(await h.status('run')).toBe('running');
          expect(await h.status('parked')).toBe('paused');
          expect(await h.status('unknown')).toBeUndefined();
          expect(await h.store.notePaused([])).toEqual([]);
        });

        it('a later park and unpark of the same workflow work as usual', async () => {
          const h = await make();
          await h.add('a', 'running');
          await parkAndPause(h, ['a']);
          await h.store.notePaused(['a']);
          await h.setStatus('a', 'running');
          await parkAndPause(h, ['a']);
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'resumed' }]);
          expect(await h.status('a')).toBe('running');
        });
      });

      describe('fencing', () => {
        it('with monotonic fencing, a park with a stale token rejects with StaleTokenError and writes nothing', async () => {
          const h = await make();
          if (h.store.capabilities.fencing !== 'monotonic') return;
          await addAll(h, ['a', 'b', 'c'], 'running');
          const high = nextToken();
          await h.store.park(['a'], { memberId: 'new', token: high });
          const error = await h.store.park(['b', 'c'], { memberId: 'old', token: high - 1n }).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(StaleTokenError);
          expect(error).toMatchObject({ code: 'ERR_STALE_TOKEN' });
          expect(await h.status('b')).toBe('running');
          expect(await h.status('c')).toBe('running');
          expect((await parked(h)).map((p) => p.id)).toEqual(['a']);
          // the same token, a higher one and no token are accepted
          expect((await h.store.park(['b'], { memberId: 'new', token: high }))[0]?.outcome).not.toBe(
            'skipped',
          );
          expect((await h.store.park(['c'], UNFENCED))[0]?.outcome).not.toBe('skipped');
          await h.add('d', 'running');
          expect((await h.store.park(['d'], { memberId: 'newer', token: nextToken() }))[0]?.outcome).not.toBe(
            'skipped',
          );
        });

        it('with monotonic fencing, an unpark with a stale token rejects with StaleTokenError and writes nothing', async () => {
          const h = await make();
          if (h.store.capabilities.fencing !== 'monotonic') return;
          await addAll(h, ['a', 'b'], 'running');
          const high = nextToken();
          await parkAndPause(h, ['a', 'b'], { memberId: 'new', token: high });
          await expect(h.store.unpark(['a', 'b'], { memberId: 'old', token: high - 5n })).rejects.toThrow(
            StaleTokenError,
          );
          expect(await h.status('a')).toBe('paused');
          expect(sorted((await parked(h)).map((p) => p.id))).toEqual(['a', 'b']);
          expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'resumed' }]);
          expect(await h.store.unpark(['b'], { memberId: 'newer', token: nextToken() })).toEqual([
            { id: 'b', outcome: 'resumed' },
          ]);
        });

        it('without fencing, a lower token is accepted', async () => {
          const h = await make();
          if (h.store.capabilities.fencing !== 'none') return;
          await addAll(h, ['a', 'b'], 'running');
          const high = nextToken();
          await h.store.park(['a'], { memberId: 'new', token: high });
          expect((await h.store.park(['b'], { memberId: 'old', token: high - 1n }))[0]?.outcome).not.toBe(
            'skipped',
          );
        });
      });

      describe('raiseFence', () => {
        it('with monotonic fencing, a raised fence makes later writes under a lower token reject, writing nothing', async () => {
          const h = await make();
          if (h.store.capabilities.fencing !== 'monotonic') return;
          await addAll(h, ['a', 'b'], 'running');
          const old = nextToken();
          await parkAndPause(h, ['b'], { memberId: 'old', token: old });
          const high = nextToken();
          await h.store.raiseFence({ memberId: 'new', token: high });
          // it wrote nothing else
          expect(await h.status('a')).toBe('running');
          expect((await parked(h)).map((p) => [p.id, p.memberId, p.token])).toEqual([['b', 'old', old]]);
          // a write sent under the older token and delayed lands after it: rejected
          expect(await rejectionOf(h.store.park(['a'], { memberId: 'old', token: old }))).toBeInstanceOf(
            StaleTokenError,
          );
          expect(await rejectionOf(h.store.unpark(['b'], { memberId: 'old', token: old }))).toBeInstanceOf(
            StaleTokenError,
          );
          expect(await h.status('a')).toBe('running');
          expect(await h.status('b')).toBe('paused');
          expect((await parked(h)).map((p) => p.id)).toEqual(['b']);
          // the holder of the raised token writes
          expect(await h.store.unpark(['b'], { memberId: 'new', token: high })).toEqual([
            { id: 'b', outcome: 'resumed' },
          ]);
        });

        it('with monotonic fencing, raising to a lower token rejects with StaleTokenError; the same or a higher one is accepted', async () => {
          const h = await make();
          if (h.store.capabilities.fencing !== 'monotonic') return;
          const high = nextToken();
          await h.store.raiseFence({ memberId: 'new', token: high });
          const error = await rejectionOf(h.store.raiseFence({ memberId: 'old', token: high - 1n }));
          expect(error).toBeInstanceOf(StaleTokenError);
          expect(error).toMatchObject({ code: 'ERR_STALE_TOKEN' });
          await h.store.raiseFence({ memberId: 'new', token: high });
          await h.store.raiseFence({ memberId: 'newer', token: nextToken() });
          // the rejected raise did not lower the bar
          await h.add('a', 'running');
          expect(await rejectionOf(h.store.park(['a'], { memberId: 'new', token: high }))).toBeInstanceOf(
            StaleTokenError,
          );
        });

        it('with token undefined is a no-op: it neither raises nor lowers the fence', async () => {
          const h = await make();
          await h.store.raiseFence(UNFENCED);
          await h.add('a', 'running');
          await h.add('b', 'running');
          const high = nextToken();
          await h.store.park(['a'], { memberId: 'new', token: high });
          await h.store.raiseFence(UNFENCED);
          if (h.store.capabilities.fencing === 'monotonic') {
            expect(
              await rejectionOf(h.store.park(['b'], { memberId: 'old', token: high - 1n })),
            ).toBeInstanceOf(StaleTokenError);
          }
          expect((await h.store.park(['b'], UNFENCED))[0]?.outcome).not.toBe('skipped');
        });

        it('without fencing, any token is accepted', async () => {
          const h = await make();
          if (h.store.capabilities.fencing !== 'none') return;
          const high = nextToken();
          await h.store.raiseFence({ memberId: 'new', token: high });
          await h.store.raiseFence({ memberId: 'old', token: high - 1n });
          await h.add('a', 'running');
          expect((await h.store.park(['a'], { memberId: 'old', token: high - 1n }))[0]?.outcome).not.toBe(
            'skipped',
          );
        });
      });

      describe('signal', () => {
        it('already aborted: every call rejects with its reason and writes nothing', async () => {
          const h = await make();
          await h.add('run', 'running');
          await h.add('parked', 'running');
          const token = nextToken();
          await parkAndPause(h, ['parked'], { memberId: MEMBER, token });
          const reason = new Error('given up');
          const signal = AbortSignal.abort(reason);
          const higher = nextToken();
          const calls: [string, () => Promise<unknown>][] = [
            ['listActive', () => h.store.listActive({ limit: 10, signal })],
            ['listParked', () => h.store.listParked({ limit: 10, signal })],
            ['park', () => h.store.park(['run'], { memberId: MEMBER, token: higher }, { signal })],
            ['unpark', () => h.store.unpark(['parked'], { memberId: MEMBER, token: higher }, { signal })],
            ['raiseFence', () => h.store.raiseFence({ memberId: MEMBER, token: higher + 5n }, { signal })],
            ['notePaused', () => h.store.notePaused(['parked'], { signal })],
          ];
          const diagnose = h.store.diagnose?.bind(h.store);
          if (diagnose !== undefined) calls.push(['diagnose', () => diagnose({ signal })]);
          for (const [name, call] of calls) {
            expect([name, await rejectionOf(call())]).toEqual([name, reason]);
          }
          expect(await h.status('run')).toBe('running');
          expect(await h.status('parked')).toBe('paused');
          expect((await parked(h)).map((p) => [p.id, p.token])).toEqual([['parked', token]]);
          // the aborted raiseFence and writes did not move the fence: `higher` is still accepted
          expect((await h.store.park(['run'], { memberId: MEMBER, token: higher }))[0]?.outcome).not.toBe(
            'skipped',
          );
          expect(await h.store.unpark(['parked'], { memberId: MEMBER, token: higher })).toEqual([
            { id: 'parked', outcome: 'resumed' },
          ]);
        });

        it('a live signal changes nothing', async () => {
          const h = await make();
          const { signal } = new AbortController();
          await h.add('a', 'running');
          expect(await h.store.listActive({ limit: 10, signal })).toEqual({
            items: ['a'],
            cursor: undefined,
          });
          const token = nextToken();
          await h.store.raiseFence({ memberId: MEMBER, token }, { signal });
          const parkedNow = await h.store.park(['a'], { memberId: MEMBER, token }, { signal });
          expect(['paused', 'pausing']).toContain(parkedNow[0]?.outcome);
          if ((await h.status('a')) !== 'paused') await h.setStatus('a', 'paused');
          expect((await h.store.listParked({ limit: 10, signal })).items.map((p) => p.id)).toEqual(['a']);
          expect(await h.store.unpark(['a'], { memberId: MEMBER, token }, { signal })).toEqual([
            { id: 'a', outcome: 'resumed' },
          ]);
          expect(await h.store.notePaused(['a'], { signal })).toEqual([{ id: 'a', outcome: 'skipped' }]);
        });
      });

      describe('diagnose (optional)', () => {
        it('warns about nothing for an empty table, nor for one whose rows use the configured statuses', async () => {
          const h = await make();
          if (h.store.diagnose === undefined) return;
          expect(await h.store.diagnose()).toEqual([]);
          for (const status of ['running', 'pausing', 'paused', 'succeeded', 'cancelled'] as const)
            await h.add(`wf-${status}`, status);
          expect(await h.store.diagnose()).toEqual([]);
        });
      });

      it('a batch of 1000 ids parks, lists and unparks', async () => {
        const h = await make();
        const list = ids('big', 1000);
        await addAll(h, list, 'running');
        const results = await h.store.park(list, { memberId: MEMBER, token: nextToken() });
        expect(results.map((r) => r.id)).toEqual(list);
        expect(results.every((r) => r.outcome === 'paused' || r.outcome === 'pausing')).toBe(true);
        expect(await active(h, 100)).toEqual([]);
        const marked = await parked(h, 100);
        expect(sorted(marked.map((p) => p.id))).toEqual(list);
        for (const r of results) if (r.outcome === 'pausing') await h.setStatus(r.id, 'paused');
        const resumed = await h.store.unpark(list, UNFENCED);
        expect(resumed.every((r) => r.outcome === 'resumed')).toBe(true);
        expect(sorted(await active(h, 250))).toEqual(list);
      });
    });
  });
}
