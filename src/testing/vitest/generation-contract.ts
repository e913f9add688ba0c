/**
 * The crash-recovery half of the WorkflowStore contract (the generation record and `recover()`), run by
 * `workflowStoreContract()` against a store that has the four methods. See docs/protocol.md, "After a crash".
 * @internal
 */
import { describe, expect, it } from 'vitest';
import { EvictedMemberError, StaleTokenError } from '../../errors.js';
import type {
  Fence,
  GenerationRecord,
  ListOptions,
  Page,
  RecoverOptions,
  WorkflowStore,
} from '../../workflow-store.js';
import type { HostStatus, WorkflowStoreHarness as Harness } from '../index.js';
import { nextToken, rejectionOf } from './support.js';

/** A store with the four crash-recovery methods. */
type RecoveryStore = WorkflowStore &
  Required<Pick<WorkflowStore, 'readGeneration' | 'enterGeneration' | 'leaveGeneration' | 'recover'>>;

const METHODS = ['readGeneration', 'enterGeneration', 'leaveGeneration', 'recover'] as const;
const OWNER_METHODS = ['listOwned', 'evictMembers'] as const;

/** A store with the owner capability too. */
type OwnerStore = RecoveryStore & Required<Pick<WorkflowStore, 'listOwned' | 'evictMembers'>>;
/** A harness whose store has the owner capability, and that can set owners. */
type OwnerHarness = Harness & Required<Pick<Harness, 'setOwner'>>;
const MEMBER = 'gd-contract-member';
const UNFENCED: Fence = Object.freeze({ memberId: MEMBER, token: undefined });
const CLOSED: GenerationRecord = { generation: 0, members: [], dirty: false };
const park = (maxRecoveries = 3): RecoverOptions => ({ mode: 'park', maxRecoveries });
const count = (maxRecoveries = 3): RecoverOptions => ({ mode: 'count', maxRecoveries });
const member = (memberId: string, incarnation = `${memberId}-1`) => ({ memberId, incarnation });

let groups = 0;
/** A group name no other test (nor an earlier run on the same database) has used. */
const freshGroup = (): string => `gd-contract-${Date.now().toString(36)}-${++groups}`;

async function all<T>(list: (options: ListOptions) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1_000; pages++) {
    const page = await list(cursor === undefined ? { limit: 50 } : { limit: 50, cursor });
    items.push(...page.items);
    if (page.cursor === undefined) return items;
    cursor = page.cursor;
  }
  throw new Error('The listing did not end after 1000 pages');
}
const activeIds = async (h: Harness): Promise<string[]> => (await all((o) => h.store.listActive(o))).sort();
const parkedOf = async (h: Harness) =>
  (await all((o) => h.store.listParked(o))).map((p) => [p.id, p.memberId, p.token]);
const outcomes = (list: readonly { id: string; outcome: string }[]): string[] =>
  list.map((r) => `${r.id}:${r.outcome}`);

/**
 * Registers the crash-recovery cases. `make` gives a fresh harness; a store without the four methods
 * passes every case without being checked (it cannot recover, and the controller says so at start).
 */
export function generationContract(make: () => Promise<Harness>): void {
  /** `it(title)` with a fresh harness whose store can recover, and a fresh group; nothing when it cannot. */
  const test = (title: string, body: (h: Harness, store: RecoveryStore, group: string) => Promise<void>) =>
    it(title, async () => {
      const h = await make();
      if (METHODS.every((m) => typeof h.store[m] === 'function'))
        await body(h, h.store as RecoveryStore, freshGroup());
    });
  const add = async (h: Harness, status: HostStatus, ...list: string[]) => {
    for (const id of list) await h.add(id, status);
  };
  const expectStatus = async (h: Harness, expected: Record<string, HostStatus | undefined>) => {
    for (const [id, status] of Object.entries(expected))
      expect([id, await h.status(id)]).toEqual([id, status]);
  };

  describe('crash recovery (optional: readGeneration, enterGeneration, leaveGeneration, recover)', () => {
    it('the store has the four methods, or none of them (then it cannot recover: the cases below pass unchecked)', async () => {
      const { store } = await make();
      const present = METHODS.filter((m) => typeof store[m] === 'function');
      expect([[], [...METHODS]]).toContainEqual(present);
    });

    describe('the generation record', () => {
      test('of a group never seen reads generation 0, no members, not dirty', async (_, store, group) => {
        expect(await store.readGeneration(group)).toEqual(CLOSED);
      });
      test('enterGeneration registers members, listed by memberId; the same memberId again replaces its entry', async (_, store, group) => {
        await store.enterGeneration(group, member('m-b'), UNFENCED);
        await store.enterGeneration(group, member('m-a'), UNFENCED);
        await store.enterGeneration(group, member('m-c'), UNFENCED);
        await store.enterGeneration(group, member('m-b', 'm-b-2'), UNFENCED);
        expect(await store.readGeneration(group)).toEqual({
          generation: 0,
          members: [member('m-a'), member('m-b', 'm-b-2'), member('m-c')],
          dirty: false,
        });
        // another group's record is its own
        const other = freshGroup();
        expect(await store.readGeneration(other)).toEqual(CLOSED);
        await store.enterGeneration(other, member('m-z'), UNFENCED);
        expect((await store.readGeneration(group)).members.map((m) => m.memberId)).toEqual([
          'm-a',
          'm-b',
          'm-c',
        ]);
      });
      test("leaveGeneration 'none' removes the given members only (absent ones ignored): generation and dirty unchanged", async (_, store, group) => {
        for (const id of ['m-a', 'm-b', 'm-c']) await store.enterGeneration(group, member(id), UNFENCED);
        await store.leaveGeneration(group, ['m-c', 'm-x', 'm-a'], 'none', UNFENCED);
        expect(await store.readGeneration(group)).toEqual({
          generation: 0,
          members: [member('m-b')],
          dirty: false,
        });
        await store.leaveGeneration(group, [], 'none', UNFENCED);
        await store.leaveGeneration(group, ['m-b'], 'none', UNFENCED);
        expect(await store.readGeneration(group)).toEqual(CLOSED);
      });
      test("leaveGeneration 'dirty' sets dirty; 'clean' clears it and raises the generation by one", async (_, store, group) => {
        for (const id of ['m-a', 'm-b']) await store.enterGeneration(group, member(id), UNFENCED);
        await store.leaveGeneration(group, ['m-a'], 'dirty', UNFENCED);
        expect(await store.readGeneration(group)).toEqual({
          generation: 0,
          members: [member('m-b')],
          dirty: true,
        });
        await store.leaveGeneration(group, [], 'none', UNFENCED);
        expect((await store.readGeneration(group)).dirty).toBe(true);
        await store.leaveGeneration(group, ['m-b'], 'clean', UNFENCED);
        expect(await store.readGeneration(group)).toEqual({ generation: 1, members: [], dirty: false });
        await store.enterGeneration(group, member('m-c'), UNFENCED);
        await store.leaveGeneration(group, [], 'clean', UNFENCED);
        expect(await store.readGeneration(group)).toEqual({
          generation: 2,
          members: [member('m-c')],
          dirty: false,
        });
      });
      test("leaveGeneration 'clean' resets every workflow's recovery count; 'none' and 'dirty' keep them", async (h, store, group) => {
        await add(h, 'running', 'a', 'b');
        const f = UNFENCED;
        expect(outcomes(await store.recover(['a', 'b'], f, count(1)))).toEqual(['a:counted', 'b:counted']);
        await store.leaveGeneration(group, [], 'none', f);
        await store.leaveGeneration(group, [], 'dirty', f);
        expect(outcomes(await store.recover(['a'], f, count(1)))).toEqual(['a:failed']);
        await store.leaveGeneration(group, [], 'clean', f);
        expect(outcomes(await store.recover(['b'], f, count(1)))).toEqual(['b:counted']);
      });
    });

    describe('recover', () => {
      test("mode 'park': running ones paused or pausing and marked with the fence, the rest skipped; one result per id, in order", async (h, store) => {
        await add(h, 'running', 'a-run', 'd-run');
        await add(h, 'paused', 'b-user-paused');
        await add(h, 'pausing', 'c-pausing');
        await add(h, 'succeeded', 'e-done');
        await add(h, 'cancelled', 'f-cancelled');
        await add(h, 'failed', 'g-failed');
        const token = nextToken();
        const order = [
          'd-run',
          'b-user-paused',
          'unknown',
          'c-pausing',
          'a-run',
          'e-done',
          'f-cancelled',
          'g-failed',
        ];
        const results = await store.recover(order, { memberId: 'recoverer', token }, park());
        expect(results.map((r) => r.id)).toEqual(order);
        for (const r of results) {
          if (r.id.endsWith('-run'))
            expect([r.id, ['paused', 'pausing'].includes(r.outcome)]).toEqual([r.id, true]);
          else expect(r).toEqual({ id: r.id, outcome: 'skipped' });
        }
        for (const id of ['a-run', 'd-run']) expect(['paused', 'pausing']).toContain(await h.status(id));
        await expectStatus(h, {
          'b-user-paused': 'paused',
          'c-pausing': 'pausing',
          'e-done': 'succeeded',
          'f-cancelled': 'cancelled',
          'g-failed': 'failed',
          unknown: undefined,
        });
        expect(await parkedOf(h)).toEqual([
          ['a-run', 'recoverer', token],
          ['d-run', 'recoverer', token],
        ]);
        expect(await activeIds(h)).toEqual([]);
      });
      test("mode 'count': running ones counted and left as they are (running, unmarked, still active)", async (h, store) => {
        await add(h, 'running', 'a', 'b');
        await add(h, 'paused', 'user');
        const results = await store.recover(['b', 'user', 'a'], UNFENCED, count());
        expect(outcomes(results)).toEqual(['b:counted', 'user:skipped', 'a:counted']);
        await expectStatus(h, { a: 'running', b: 'running', user: 'paused' });
        expect(await parkedOf(h)).toEqual([]);
        expect(await activeIds(h)).toEqual(['a', 'b']);
      });
      test('a workflow recovered maxRecoveries times already: failed (the failed status, or as it was without one), its count dropped', async (h, store) => {
        await add(h, 'running', 'a', 'b', 'zero');
        // a: counted twice, then failed
        expect(outcomes(await store.recover(['a', 'b'], UNFENCED, count(2)))).toEqual([
          'a:counted',
          'b:counted',
        ]);
        expect(outcomes(await store.recover(['a'], UNFENCED, count(2)))).toEqual(['a:counted']);
        expect(outcomes(await store.recover(['a', 'b'], UNFENCED, count(2)))).toEqual([
          'a:failed',
          'b:counted',
        ]);
        // b: counted twice, then failed in mode 'park' too
        expect(outcomes(await store.recover(['b'], UNFENCED, park(2)))).toEqual(['b:failed']);
        // maxRecoveries 0: failed at once
        expect(outcomes(await store.recover(['zero'], UNFENCED, park(0)))).toEqual(['zero:failed']);
        for (const id of ['a', 'b', 'zero']) {
          const status = await h.status(id);
          expect([id, ['failed', 'running'].includes(status as string)]).toEqual([id, true]);
          if (status === 'failed') continue;
          // a store without a failed status: the count was dropped, so it is counted afresh
          expect(outcomes(await store.recover([id], UNFENCED, count(1)))).toEqual([`${id}:counted`]);
        }
        expect(await parkedOf(h)).toEqual([]);
        if ((await h.status('a')) === 'failed') expect(await activeIds(h)).toEqual([]);
      });
      test("mode 'park' counts too: parked, resumed by the host, parked again, then failed past the cap", async (h, store) => {
        await add(h, 'running', 'a');
        for (let round = 0; round < 2; round++) {
          const [result] = await store.recover(['a'], UNFENCED, park(2));
          expect(['paused', 'pausing']).toContain(result?.outcome);
          await h.setStatus('a', 'running'); // resumed by the host: the mark goes
        }
        expect(outcomes(await store.recover(['a'], UNFENCED, park(2)))).toEqual(['a:failed']);
      });
      test('a workflow a user paused, and one already parked, are skipped and left exactly as they were', async (h, store) => {
        await add(h, 'paused', 'user');
        await add(h, 'running', 'parked');
        const token = nextToken();
        await store.park(['parked'], { memberId: 'parker', token });
        if ((await h.status('parked')) !== 'paused') await h.setStatus('parked', 'paused');
        const later = { memberId: 'recoverer', token: nextToken() };
        expect(outcomes(await store.recover(['user', 'parked'], later, park()))).toEqual([
          'user:skipped',
          'parked:skipped',
        ]);
        expect(outcomes(await store.recover(['user', 'parked'], later, count(0)))).toEqual([
          'user:skipped',
          'parked:skipped',
        ]);
        await expectStatus(h, { user: 'paused', parked: 'paused' });
        expect(await parkedOf(h)).toEqual([['parked', 'parker', token]]);
        // neither was counted: running again, the first recovery under a cap of 1 counts it
        await h.setStatus('user', 'running');
        await h.setStatus('parked', 'running');
        expect(outcomes(await store.recover(['user', 'parked'], later, count(1)))).toEqual([
          'user:counted',
          'parked:counted',
        ]);
      });
      test('a recovered workflow is listed by listParked, with its state, and resumed by unpark', async (h, store) => {
        await add(h, 'running', 'a', 'b');
        const f = { memberId: 'recoverer', token: nextToken() };
        await store.recover(['a', 'b'], f, park());
        await h.setStatus('b', 'pausing');
        const listed = await all((o) => h.store.listParked(o));
        expect(listed.map((p) => [p.id, p.memberId, p.token])).toEqual([
          ['a', 'recoverer', f.token],
          ['b', 'recoverer', f.token],
        ]);
        expect(listed.find((p) => p.id === 'b')?.state).toBe('pausing');
        for (const id of ['a', 'b']) if ((await h.status(id)) !== 'paused') await h.setStatus(id, 'paused');
        expect(outcomes(await h.store.unpark(['a', 'b'], f))).toEqual(['a:resumed', 'b:resumed']);
        await expectStatus(h, { a: 'running', b: 'running' });
        expect(await parkedOf(h)).toEqual([]);
      });
      test('a batch of 1000 ids recovers in one call, one result per id in order', async (h, store) => {
        const list = Array.from({ length: 1000 }, (_, i) => `big-${String(i).padStart(4, '0')}`);
        for (const id of list) await h.add(id, 'running');
        const results = await store.recover(list, { memberId: MEMBER, token: nextToken() }, park());
        expect(results.map((r) => r.id)).toEqual(list);
        expect(results.every((r) => r.outcome === 'paused' || r.outcome === 'pausing')).toBe(true);
        expect(await activeIds(h)).toEqual([]);
      });
    });

    describe('fencing and signals', () => {
      test('with monotonic fencing, a stale token rejects each write with StaleTokenError, writing nothing', async (h, store, group) => {
        if (store.capabilities.fencing !== 'monotonic') return;
        await add(h, 'running', 'a');
        await store.enterGeneration(group, member('m-a'), UNFENCED);
        const high = nextToken();
        await store.raiseFence({ memberId: 'new', token: high });
        const old = { memberId: 'old', token: high - 1n };
        const writes: [string, () => Promise<unknown>][] = [
          ['enterGeneration', () => store.enterGeneration(group, member('m-b'), old)],
          ['leaveGeneration', () => store.leaveGeneration(group, ['m-a'], 'dirty', old)],
          ['leaveGeneration clean', () => store.leaveGeneration(group, ['m-a'], 'clean', old)],
          ['recover park', () => store.recover(['a'], old, park())],
          ['recover count', () => store.recover(['a'], old, count(0))],
        ];
        for (const [name, write] of writes) {
          const error = await rejectionOf(write());
          expect([name, error instanceof StaleTokenError]).toEqual([name, true]);
        }
        expect(await store.readGeneration(group)).toEqual({
          generation: 0,
          members: [member('m-a')],
          dirty: false,
        });
        await expectStatus(h, { a: 'running' });
        // not counted: the first recovery under a cap of 1 counts it
        const current = { memberId: 'new', token: high };
        expect(outcomes(await store.recover(['a'], current, count(1)))).toEqual(['a:counted']);
        // the same token, a higher one and none are accepted
        await store.enterGeneration(group, member('m-b'), current);
        await store.leaveGeneration(group, ['m-a'], 'none', { memberId: 'newer', token: nextToken() });
        await store.enterGeneration(group, member('m-c'), UNFENCED);
        expect((await store.readGeneration(group)).members.map((m) => m.memberId)).toEqual(['m-b', 'm-c']);
      });
      test('with monotonic fencing, recover raises the fence as park does', async (h, store) => {
        if (store.capabilities.fencing !== 'monotonic') return;
        await add(h, 'running', 'a', 'b');
        const high = nextToken();
        await store.recover(['a'], { memberId: 'new', token: high }, park());
        expect(await rejectionOf(h.store.park(['b'], { memberId: 'old', token: high - 1n }))).toBeInstanceOf(
          StaleTokenError,
        );
        await expectStatus(h, { b: 'running' });
      });
      test('without fencing, a lower token is accepted', async (h, store, group) => {
        if (store.capabilities.fencing !== 'none') return;
        await add(h, 'running', 'a');
        const high = nextToken();
        await store.raiseFence({ memberId: 'new', token: high });
        const old = { memberId: 'old', token: high - 1n };
        await store.enterGeneration(group, member('m-a'), old);
        await store.leaveGeneration(group, ['m-a'], 'clean', old);
        expect(outcomes(await store.recover(['a'], old, count()))).toEqual(['a:counted']);
      });
      test('already aborted: each call rejects with its reason and writes nothing, the fence included', async (h, store, group) => {
        await add(h, 'running', 'a');
        await store.enterGeneration(group, member('m-a'), UNFENCED);
        const reason = new Error('given up');
        const signal = AbortSignal.abort(reason);
        const high = nextToken();
        const f = { memberId: MEMBER, token: high + 5n };
        const calls: [string, () => Promise<unknown>][] = [
          ['readGeneration', () => store.readGeneration(group, { signal })],
          ['enterGeneration', () => store.enterGeneration(group, member('m-b'), f, { signal })],
          ['leaveGeneration', () => store.leaveGeneration(group, ['m-a'], 'clean', f, { signal })],
          ['recover', () => store.recover(['a'], f, { ...park(), signal })],
        ];
        for (const [name, call] of calls) expect([name, await rejectionOf(call())]).toEqual([name, reason]);
        expect(await store.readGeneration(group)).toEqual({
          generation: 0,
          members: [member('m-a')],
          dirty: false,
        });
        await expectStatus(h, { a: 'running' });
        // the fence did not move to `high + 5n`: a write under `high` is accepted, and `a` was not counted
        const below = { memberId: MEMBER, token: high };
        expect(outcomes(await store.recover(['a'], below, count(1)))).toEqual(['a:counted']);
      });
      test('a live signal changes nothing', async (h, store, group) => {
        const { signal } = new AbortController();
        await add(h, 'running', 'a');
        await store.enterGeneration(group, member('m-a'), UNFENCED, { signal });
        expect(await store.readGeneration(group, { signal })).toEqual({
          generation: 0,
          members: [member('m-a')],
          dirty: false,
        });
        expect(outcomes(await store.recover(['a'], UNFENCED, { ...count(), signal }))).toEqual(['a:counted']);
        await store.leaveGeneration(group, ['m-a'], 'clean', UNFENCED, { signal });
        expect(await store.readGeneration(group, { signal })).toEqual({ ...CLOSED, generation: 1 });
      });
    });
  });

  ownerContract(make);
}

/**
 * The owner capability (`listOwned` and `evictMembers`): a store without it passes every case unchecked;
 * with it, the harness must give `setOwner`.
 */
function ownerContract(make: () => Promise<Harness>): void {
  const test = (title: string, body: (h: OwnerHarness, store: OwnerStore, group: string) => Promise<void>) =>
    it(title, async () => {
      const h = await make();
      if (OWNER_METHODS.every((m) => typeof h.store[m] === 'function'))
        await body(h as OwnerHarness, h.store as OwnerStore, freshGroup());
    });
  /** Adds running workflows, each with its owner (`''`: none), from `id=owner` pairs. */
  const owned = async (h: OwnerHarness, ...pairs: string[]) => {
    for (const pair of pairs) {
      const [id, owner] = pair.split('=') as [string, string];
      await h.add(id, 'running');
      if (owner !== '') await h.setOwner(id, owner);
    }
  };
  const ownedBy = async (store: OwnerStore, memberIds: readonly string[], limit = 2): Promise<string[]> => {
    const items = await all((o) => store.listOwned(memberIds, { ...o, limit }));
    return items;
  };
  const zombie = { memberId: 'm-z', incarnation: 'm-z-1' };

  describe('owner-aware recovery (optional: listOwned, evictMembers)', () => {
    it('the store has both methods or neither; with them, the four crash-recovery methods too, and the harness gives setOwner', async () => {
      const h = await make();
      const present = OWNER_METHODS.filter((m) => typeof h.store[m] === 'function');
      expect([[], [...OWNER_METHODS]]).toContainEqual(present);
      if (present.length === 0) return;
      expect(METHODS.filter((m) => typeof h.store[m] !== 'function')).toEqual([]);
      expect(typeof h.setOwner).toBe('function');
    });

    describe('listOwned', () => {
      test('lists the running workflows owned by the given members only, by id, a page at a time', async (h, store) => {
        await owned(h, 'a=m-1', 'b=m-2', 'c=m-1', 'd=m-3', 'e=', 'f=m-2', 'g=m-1');
        await h.add('h-user-paused', 'paused');
        await h.setOwner('h-user-paused', 'm-1');
        await h.add('i-done', 'succeeded');
        await h.setOwner('i-done', 'm-1');
        await h.add('j-pausing', 'pausing');
        await h.setOwner('j-pausing', 'm-2');
        expect(await ownedBy(store, ['m-1'])).toEqual(['a', 'c', 'g']);
        expect(await ownedBy(store, ['m-2', 'm-1'], 1)).toEqual(['a', 'b', 'c', 'f', 'g']);
        expect(await ownedBy(store, ['m-2', 'm-1'], 50)).toEqual(['a', 'b', 'c', 'f', 'g']);
        expect(await ownedBy(store, ['m-9'])).toEqual([]);
        expect(await ownedBy(store, [])).toEqual([]);
        // a page never holds more than `limit`, and the cursor resumes after the last id
        const first = await store.listOwned(['m-1', 'm-2'], { limit: 2 });
        expect(first.items).toEqual(['a', 'b']);
        expect(first.cursor).not.toBeUndefined();
        const second = await store.listOwned(['m-1', 'm-2'], { limit: 2, cursor: first.cursor });
        expect(second.items).toEqual(['c', 'f']);
      });
      test('follows the host: a new owner, no owner, a workflow no longer running, a parked one', async (h, store) => {
        await owned(h, 'a=m-1', 'b=m-1', 'c=m-1', 'd=m-1');
        await h.setOwner('a', 'm-2');
        await h.setOwner('b', undefined);
        await h.setStatus('c', 'succeeded');
        await store.park(['d'], { memberId: 'parker', token: nextToken() });
        expect(await ownedBy(store, ['m-1'])).toEqual([]);
        expect(await ownedBy(store, ['m-2'])).toEqual(['a']);
      });
      test('already aborted: rejects with the reason', async (_, store) => {
        const reason = new Error('given up');
        expect(
          await rejectionOf(store.listOwned(['m-1'], { limit: 5, signal: AbortSignal.abort(reason) })),
        ).toBe(reason);
      });
    });

    describe('evictMembers', () => {
      test('removes the entries of the given incarnations only (absent ones ignored); idempotent', async (_, store, group) => {
        for (const id of ['m-a', 'm-b', 'm-c']) await store.enterGeneration(group, member(id), UNFENCED);
        await store.enterGeneration(group, member('m-d', 'm-d-2'), UNFENCED);
        const f = { memberId: 'evicter', token: nextToken() };
        // m-d's entry is another incarnation (a restarted member): it stays
        const gone = [member('m-a'), member('m-c'), member('m-x'), member('m-d')];
        await store.evictMembers(group, gone, f);
        const left = { generation: 0, members: [member('m-b'), member('m-d', 'm-d-2')], dirty: false };
        expect(await store.readGeneration(group)).toEqual(left);
        await store.evictMembers(group, gone, f);
        await store.evictMembers(group, [], f);
        expect(await store.readGeneration(group)).toEqual(left);
      });
      test("keeps the record's generation and dirty flag, and the workflows as they are", async (h, store, group) => {
        await owned(h, 'a=m-a');
        await store.enterGeneration(group, member('m-a'), UNFENCED);
        await store.leaveGeneration(group, [], 'dirty', UNFENCED);
        await store.evictMembers(group, [member('m-a')], UNFENCED);
        expect(await store.readGeneration(group)).toEqual({ generation: 0, members: [], dirty: true });
        expect(await h.status('a')).toBe('running');
        expect(await ownedBy(store, ['m-a'])).toEqual(['a']);
      });
      test('every fenced call of an evicted incarnation rejects with EvictedMemberError and writes nothing', async (h, store, group) => {
        await owned(h, 'run=m-z', 'other=m-y');
        await h.add('parked', 'running');
        const parker = { memberId: 'parker', token: nextToken() };
        await store.park(['parked'], parker);
        if ((await h.status('parked')) !== 'paused') await h.setStatus('parked', 'paused');
        await store.enterGeneration(group, zombie, UNFENCED);
        await store.enterGeneration(group, member('m-y'), UNFENCED);
        const evictedAt = nextToken();
        await store.evictMembers(group, [zombie], { memberId: 'evicter', token: evictedAt });
        // the zombie's calls carry a higher token than any seen: the fence must not move either
        const z = { memberId: zombie.memberId, token: nextToken() + 100n, incarnation: zombie.incarnation };
        const zu = { memberId: zombie.memberId, token: undefined, incarnation: zombie.incarnation };
        const calls: [string, () => Promise<unknown>][] = [
          ['park', () => store.park(['run', 'other'], z)],
          ['park unfenced', () => store.park(['run'], zu)],
          ['unpark', () => store.unpark(['parked'], z)],
          ['raiseFence', () => store.raiseFence(z)],
          ['raiseFence unfenced', () => store.raiseFence(zu)],
          ['recover park', () => store.recover(['run', 'other'], z, park())],
          ['recover count', () => store.recover(['run'], z, count(0))],
          ['enterGeneration', () => store.enterGeneration(group, zombie, zu)],
          ['enterGeneration leaving', () => store.enterGeneration(group, member('m-z', 'm-z-1:leaving'), z)],
          ['leaveGeneration', () => store.leaveGeneration(group, ['m-y'], 'clean', z)],
          ['leaveGeneration dirty', () => store.leaveGeneration(group, [], 'dirty', zu)],
          ['evictMembers', () => store.evictMembers(group, [member('m-y')], z)],
        ];
        for (const [name, call] of calls) {
          const error = await rejectionOf(call());
          expect([name, error instanceof EvictedMemberError]).toEqual([name, true]);
          expect([name, error]).toMatchObject([
            name,
            { code: 'ERR_EVICTED_MEMBER', memberId: zombie.memberId, incarnation: zombie.incarnation },
          ]);
        }
        expect(await store.readGeneration(group)).toEqual({
          generation: 0,
          members: [member('m-y')],
          dirty: false,
        });
        await expectStatusOf(h, { run: 'running', other: 'running', parked: 'paused' });
        expect(await parkedOf(h)).toEqual([['parked', 'parker', parker.token]]);
        // neither the fence moved nor a recovery was counted: a write just above `evictedAt` lands, and
        // the first recovery under a cap of 1 counts
        const next = { memberId: 'evicter', token: evictedAt + 1n };
        expect(outcomes(await store.recover(['run'], next, count(1)))).toEqual(['run:counted']);
      });
      test('another incarnation of the same member id, and a fence without one, are not affected', async (h, store, group) => {
        await owned(h, 'a=m-z', 'b=m-z');
        await store.enterGeneration(group, zombie, UNFENCED);
        await store.evictMembers(group, [zombie], UNFENCED);
        const again = { memberId: zombie.memberId, incarnation: 'm-z-2' };
        const f = { ...again, token: nextToken() };
        await store.enterGeneration(group, again, f);
        await store.raiseFence(f);
        expect((await store.park(['a'], f)).map((r) => r.outcome)).not.toContain('skipped');
        expect(
          outcomes(await store.recover(['b'], { memberId: zombie.memberId, token: undefined }, count())),
        ).toEqual(['b:counted']);
        await store.leaveGeneration(group, [], 'dirty', f);
        expect(await store.readGeneration(group)).toEqual({ generation: 0, members: [again], dirty: true });
      });
      test('with monotonic fencing, a stale token rejects it with StaleTokenError: nothing evicted', async (_, store, group) => {
        if (store.capabilities.fencing !== 'monotonic') return;
        await store.enterGeneration(group, zombie, UNFENCED);
        const high = nextToken();
        await store.raiseFence({ memberId: 'new', token: high });
        const error = await rejectionOf(
          store.evictMembers(group, [zombie], { memberId: 'old', token: high - 1n }),
        );
        expect(error).toBeInstanceOf(StaleTokenError);
        expect((await store.readGeneration(group)).members).toEqual([zombie]);
        await store.raiseFence({ ...zombie, token: high });
      });
      test('already aborted: rejects with the reason, evicting nothing', async (_, store, group) => {
        await store.enterGeneration(group, zombie, UNFENCED);
        const reason = new Error('given up');
        const signal = AbortSignal.abort(reason);
        expect(await rejectionOf(store.evictMembers(group, [zombie], UNFENCED, { signal }))).toBe(reason);
        expect((await store.readGeneration(group)).members).toEqual([zombie]);
        await store.raiseFence({ ...zombie, token: undefined });
      });
    });
  });
}

async function expectStatusOf(h: Harness, expected: Record<string, HostStatus | undefined>): Promise<void> {
  for (const [id, status] of Object.entries(expected)) expect([id, await h.status(id)]).toEqual([id, status]);
}
