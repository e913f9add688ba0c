import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { ClosedError, ConfigurationError, StaleTokenError } from '../src/errors.js';
import { memoryStoreHarness } from '../src/testing/index.js';
import { workflowStoreContract } from '../src/testing/vitest/index.js';

const fence = (token?: bigint) => ({ memberId: 'm', token });

describe('MemoryWorkflowStore', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('capabilities: monotonic fencing', () => {
    expect(new MemoryWorkflowStore().capabilities).toEqual({ fencing: 'monotonic' });
  });

  describe('constructor', () => {
    it('rejects unknown options and a bad pauseDelayMs, naming them and the value', () => {
      expect(() => new MemoryWorkflowStore({ pauseDelay: 1 } as never)).toThrow(
        /Unknown option `pauseDelay`/,
      );
      expect(() => new MemoryWorkflowStore({ pauseDelayMs: -1 })).toThrow(/`pauseDelayMs`.*`-1` \(number\)/);
      expect(() => new MemoryWorkflowStore({ pauseDelayMs: Infinity })).toThrow(ConfigurationError);
    });
  });

  describe('owners', () => {
    it('listOwned and evictMembers only with owners: true; a bad owners is refused, naming it and the value', () => {
      const plain = new MemoryWorkflowStore();
      expect([plain.listOwned, plain.evictMembers]).toEqual([undefined, undefined]);
      expect('listOwned' in plain && plain.listOwned !== undefined).toBe(false);
      const owned = new MemoryWorkflowStore({ owners: true });
      expect([typeof owned.listOwned, typeof owned.evictMembers]).toEqual(['function', 'function']);
      expect(() => new MemoryWorkflowStore({ owners: 'yes' as never })).toThrow(/`owners`.*"yes"/);
    });

    it('add(id, status, owner), setOwner() and ownerOf(): the host keeps the owner; store calls never change it', async () => {
      const store = new MemoryWorkflowStore({ owners: true });
      store.add('a', 'running', 'm1');
      store.add('b');
      expect([store.ownerOf('a'), store.ownerOf('b'), store.ownerOf('x')]).toEqual([
        'm1',
        undefined,
        undefined,
      ]);
      store.setOwner('b', 'm2');
      store.setOwner('a', undefined);
      expect([store.ownerOf('a'), store.ownerOf('b')]).toEqual([undefined, 'm2']);
      await store.park(['b'], fence(1n));
      await store.unpark(['b'], fence(1n));
      expect(store.ownerOf('b')).toBe('m2');
      expect(store.get('b')).toEqual({ id: 'b', status: 'running', parked: false });
      expect(() => store.add('c', 'running', '')).toThrow(/`owner`/);
      expect(() => store.setOwner('x', 'm1')).toThrow(/Unknown workflow "x"/);
      expect(() => store.setOwner('a', 5 as never)).toThrow(/`owner`/);
    });

    it('evictMembers checks its arguments before it writes; a bad fence.incarnation is refused', async () => {
      const store = new MemoryWorkflowStore({ owners: true });
      const evict = store.evictMembers as NonNullable<typeof store.evictMembers>;
      await expect(evict('g', 'm1' as never, fence())).rejects.toThrow(/`members`/);
      await expect(evict('g', [{ memberId: 'm1' }] as never, fence())).rejects.toThrow(
        /`members\[0\]\.incarnation`/,
      );
      await expect(store.raiseFence({ memberId: 'm', token: 1n, incarnation: 7 as never })).rejects.toThrow(
        /`fence\.incarnation`/,
      );
      expect(store.highestToken).toBeUndefined();
    });
  });

  describe('host side', () => {
    it('add() defaults to running; get() shows status and park mark; unknown ids are undefined', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.add('b', 'paused');
      expect(store.get('a')).toEqual({ id: 'a', status: 'running', parked: false });
      expect(store.get('b')).toEqual({ id: 'b', status: 'paused', parked: false });
      expect(store.get('nope')).toBeUndefined();
      await store.park(['a'], fence());
      expect(store.get('a')).toEqual({ id: 'a', status: 'paused', parked: true });
    });

    it('add() rejects a duplicate id, an empty id and an unknown status', () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      expect(() => store.add('a')).toThrow(/already exists/);
      expect(() => store.add('')).toThrow(/`id`/);
      expect(() => store.add('c', 'done' as never)).toThrow(/`status`.*"done"/);
    });

    it('the status changes of the host: complete, cancel, setStatus; unknown ids throw', () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.add('b');
      store.add('c');
      store.complete('a');
      store.cancel('b');
      store.setStatus('c', 'pausing');
      expect(store.snapshot().map((w) => w.status)).toEqual(['succeeded', 'cancelled', 'pausing']);
      expect(() => store.complete('x')).toThrow(/Unknown workflow "x"/);
      expect(() => store.setStatus('c', 'gone' as never)).toThrow(ConfigurationError);
    });

    it('userPause() pauses without a mark, so unpark never resumes it', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.userPause('a');
      expect(await store.unpark(['a'], fence())).toEqual([{ id: 'a', outcome: 'skipped' }]);
      expect(store.get('a')?.status).toBe('paused');
    });

    it('userPause() of a parked workflow takes it over: the mark is dropped', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      await store.park(['a'], fence());
      store.userPause('a');
      expect(store.get('a')).toEqual({ id: 'a', status: 'paused', parked: false });
      expect(await store.unpark(['a'], fence())).toEqual([{ id: 'a', outcome: 'skipped' }]);
      expect(store.get('a')?.status).toBe('paused');
    });

    it('userResume() runs it again and clears the park mark', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      await store.park(['a'], fence());
      store.userResume('a');
      expect(store.get('a')).toEqual({ id: 'a', status: 'running', parked: false });
      expect((await store.listParked({ limit: 10 })).items).toEqual([]);
      expect((await store.listActive({ limit: 10 })).items).toEqual(['a']);
    });

    it('setStatus() away from pausing or paused drops the mark: a user resume then re-pause is never undone', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      await store.park(['a'], fence(1n));
      store.setStatus('a', 'running');
      expect(store.get('a')).toEqual({ id: 'a', status: 'running', parked: false });
      store.setStatus('a', 'paused');
      expect(store.get('a')).toEqual({ id: 'a', status: 'paused', parked: false });
      expect((await store.listParked({ limit: 10 })).items).toEqual([]);
      expect(await store.unpark(['a'], fence(2n))).toEqual([{ id: 'a', outcome: 'skipped' }]);
      expect(store.get('a')?.status).toBe('paused');
      expect(store.stats.resumes).toBe(0);
    });

    it('setStatus() between pausing and paused keeps the mark; complete() and cancel() drop it', async () => {
      const store = new MemoryWorkflowStore();
      for (const id of ['a', 'b', 'c']) store.add(id);
      await store.park(['a', 'b', 'c'], fence());
      store.setStatus('a', 'pausing');
      store.setStatus('a', 'paused');
      store.complete('b');
      store.cancel('c');
      expect(store.snapshot().map((w) => [w.id, w.parked])).toEqual([
        ['a', true],
        ['b', false],
        ['c', false],
      ]);
    });

    it('remove() deletes a workflow and its mark; unknown ids throw', async () => {
      const store = new MemoryWorkflowStore();
      for (const id of ['c', 'a', 'b']) store.add(id);
      await store.park(['a', 'b'], fence());
      store.remove('a');
      expect(store.get('a')).toBeUndefined();
      expect((await store.listParked({ limit: 10 })).items.map((p) => p.id)).toEqual(['b']);
      expect((await store.listActive({ limit: 10 })).items).toEqual(['c']);
      expect(() => store.remove('a')).toThrow(/Unknown workflow "a"/);
      store.add('a');
      expect((await store.listActive({ limit: 10 })).items).toEqual(['a', 'c']);
    });

    it('counts effective parks and resumes, in total and per workflow', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.add('b');
      await store.park(['a', 'b', 'a', 'x'], fence());
      await store.park(['a'], fence());
      await store.unpark(['a', 'a'], fence());
      await store.park(['a'], fence());
      expect(store.stats).toEqual({ parks: 3, resumes: 1 });
      expect([store.parkCount('a'), store.resumeCount('a')]).toEqual([2, 1]);
      expect([store.parkCount('b'), store.resumeCount('b')]).toEqual([1, 0]);
      expect(store.parkCount('x')).toBe(0);
    });
  });

  describe('pauseDelayMs (fake timers)', () => {
    it('0: park pauses at once', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      expect(await store.park(['a'], fence())).toEqual([{ id: 'a', outcome: 'paused' }]);
      expect(store.get('a')?.status).toBe('paused');
    });

    it('> 0: park leaves it pausing, and it becomes paused after the delay', async () => {
      vi.useFakeTimers();
      const store = new MemoryWorkflowStore({ pauseDelayMs: 100 });
      store.add('a');
      expect(await store.park(['a'], fence())).toEqual([{ id: 'a', outcome: 'pausing' }]);
      expect(store.get('a')?.status).toBe('pausing');
      expect((await store.listParked({ limit: 5 })).items[0]?.state).toBe('pausing');
      expect(await store.unpark(['a'], fence())).toEqual([{ id: 'a', outcome: 'skipped' }]);
      vi.advanceTimersByTime(99);
      expect(store.get('a')?.status).toBe('pausing');
      vi.advanceTimersByTime(1);
      expect(store.get('a')).toEqual({ id: 'a', status: 'paused', parked: true });
      expect(await store.unpark(['a'], fence())).toEqual([{ id: 'a', outcome: 'resumed' }]);
    });

    it('> 0: a status change meanwhile wins over the delayed pause', async () => {
      vi.useFakeTimers();
      const store = new MemoryWorkflowStore({ pauseDelayMs: 100 });
      store.add('a');
      store.add('b');
      await store.park(['a', 'b'], fence());
      store.cancel('a');
      store.userResume('b');
      vi.advanceTimersByTime(1000);
      expect(store.get('a')?.status).toBe('cancelled');
      expect(store.get('b')?.status).toBe('running');
      expect(vi.getTimerCount()).toBe(0);
    });

    it('close() clears pending pauses; the store methods then reject with ClosedError', async () => {
      vi.useFakeTimers();
      const store = new MemoryWorkflowStore({ pauseDelayMs: 100 });
      store.add('a');
      await store.park(['a'], fence());
      await store.close();
      await store.close();
      expect(vi.getTimerCount()).toBe(0);
      await expect(store.listActive({ limit: 1 })).rejects.toThrow(ClosedError);
      await expect(store.park(['a'], fence())).rejects.toThrow(ClosedError);
      await expect(store.unpark(['a'], fence())).rejects.toThrow(ClosedError);
      await expect(store.listParked({ limit: 1 })).rejects.toThrow(ClosedError);
      await expect(store.raiseFence(fence())).rejects.toThrow(ClosedError);
      await expect(store.notePaused(['a'])).rejects.toThrow(ClosedError);
      await expect(store.diagnose()).rejects.toThrow(ClosedError);
      // the host side keeps working
      store.setStatus('a', 'paused');
      expect(store.get('a')?.status).toBe('paused');
    });
  });

  describe('fencing', () => {
    it('remembers the highest token; a lower one rejects with StaleTokenError naming both, writing nothing', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.add('b');
      expect(store.highestToken).toBeUndefined();
      await store.park(['a'], fence(7n));
      expect(store.highestToken).toBe(7n);
      const error = await store.park(['b'], fence(6n)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StaleTokenError);
      expect(error).toMatchObject({ token: 6n, highest: 7n, message: expect.stringMatching(/6.*7/) });
      expect(store.get('b')).toEqual({ id: 'b', status: 'running', parked: false });
      expect(store.stats.parks).toBe(1);
      // a rejected token does not lower the bar
      await expect(store.unpark(['a'], fence(6n))).rejects.toThrow(StaleTokenError);
      expect(store.highestToken).toBe(7n);
    });
  });

  describe('notePaused', () => {
    it('drops marks (released), skips the rest, one result per id in order; the status is left alone', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.add('b');
      store.add('user', 'paused');
      await store.park(['a', 'b'], fence());
      expect(await store.notePaused(['a', 'user', 'a', 'x'])).toEqual([
        { id: 'a', outcome: 'released' },
        { id: 'user', outcome: 'skipped' },
        { id: 'a', outcome: 'skipped' },
        { id: 'x', outcome: 'skipped' },
      ]);
      expect(store.get('a')).toEqual({ id: 'a', status: 'paused', parked: false });
      expect(await store.unpark(['a', 'b'], fence())).toEqual([
        { id: 'a', outcome: 'skipped' },
        { id: 'b', outcome: 'resumed' },
      ]);
    });

    it('of a workflow still pausing: the delayed pause still lands, and unpark leaves it paused', async () => {
      vi.useFakeTimers();
      const store = new MemoryWorkflowStore({ pauseDelayMs: 100 });
      store.add('a');
      await store.park(['a'], fence());
      expect(await store.notePaused(['a'])).toEqual([{ id: 'a', outcome: 'released' }]);
      vi.advanceTimersByTime(100);
      expect(store.get('a')).toEqual({ id: 'a', status: 'paused', parked: false });
      expect(await store.unpark(['a'], fence())).toEqual([{ id: 'a', outcome: 'skipped' }]);
    });
  });

  describe('raiseFence', () => {
    it('records the token and writes nothing else; a lower one rejects; undefined is a no-op', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      await store.raiseFence(fence(5n));
      expect(store.highestToken).toBe(5n);
      expect(store.get('a')).toEqual({ id: 'a', status: 'running', parked: false });
      await expect(store.park(['a'], fence(4n))).rejects.toThrow(StaleTokenError);
      await expect(store.raiseFence(fence(4n))).rejects.toMatchObject({ token: 4n, highest: 5n });
      await store.raiseFence(fence());
      await store.raiseFence(fence(5n));
      expect(store.highestToken).toBe(5n);
      expect(store.get('a')?.parked).toBe(false);
    });
  });

  describe('diagnose', () => {
    it('has nothing to warn about: its statuses are fixed', async () => {
      const store = new MemoryWorkflowStore();
      expect(await store.diagnose()).toEqual([]);
      store.add('a', 'succeeded');
      expect(await store.diagnose()).toEqual([]);
    });
  });

  describe('signal', () => {
    it('already aborted: every call rejects with its reason and writes nothing, the fence included', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      store.add('b');
      await store.park(['b'], fence(1n));
      const reason = new Error('given up');
      const signal = AbortSignal.abort(reason);
      await expect(store.park(['a'], fence(9n), { signal })).rejects.toBe(reason);
      await expect(store.unpark(['b'], fence(9n), { signal })).rejects.toBe(reason);
      await expect(store.raiseFence(fence(9n), { signal })).rejects.toBe(reason);
      await expect(store.notePaused(['b'], { signal })).rejects.toBe(reason);
      await expect(store.listActive({ limit: 5, signal })).rejects.toBe(reason);
      await expect(store.listParked({ limit: 5, signal })).rejects.toBe(reason);
      await expect(store.diagnose({ signal })).rejects.toBe(reason);
      expect(store.snapshot()).toEqual([
        { id: 'a', status: 'running', parked: false },
        { id: 'b', status: 'paused', parked: true },
      ]);
      expect(store.highestToken).toBe(1n);
    });

    it('a live signal changes nothing', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      const { signal } = new AbortController();
      expect(await store.park(['a'], fence(1n), { signal })).toEqual([{ id: 'a', outcome: 'paused' }]);
      expect((await store.listParked({ limit: 5, signal })).items.map((p) => p.id)).toEqual(['a']);
      expect(await store.unpark(['a'], fence(1n), { signal })).toEqual([{ id: 'a', outcome: 'resumed' }]);
    });

    it('rejects a signal that is not an AbortSignal and unknown call options, naming them', async () => {
      const store = new MemoryWorkflowStore();
      await expect(store.park(['a'], fence(), { signal: 'x' } as never)).rejects.toThrow(/`signal`.*"x"/);
      await expect(store.listActive({ limit: 1, signal: 1 } as never)).rejects.toThrow(/`signal`/);
      await expect(store.notePaused(['a'], { sigal: 1 } as never)).rejects.toThrow(/Unknown option `sigal`/);
      await expect(store.raiseFence(fence(), 5 as never)).rejects.toThrow(ConfigurationError);
    });
  });

  describe('validation', () => {
    it('park and unpark reject bad ids and fences, naming them', async () => {
      const store = new MemoryWorkflowStore();
      await expect(store.park('a' as never, fence())).rejects.toThrow(/`ids`/);
      await expect(store.park(['a', ''], fence())).rejects.toThrow(/`ids\[1\]`/);
      await expect(store.park(['a'], undefined as never)).rejects.toThrow(/`fence`/);
      await expect(store.park(['a'], { memberId: '', token: 1n })).rejects.toThrow(/`fence.memberId`/);
      await expect(store.unpark(['a'], { memberId: 'm', token: 1 as never })).rejects.toThrow(
        /`fence.token`/,
      );
    });

    it('listing rejects a bad limit or cursor', async () => {
      const store = new MemoryWorkflowStore();
      await expect(store.listActive({ limit: 0 })).rejects.toThrow(/`limit`.*`0`/);
      await expect(store.listParked({ limit: 1.5 })).rejects.toThrow(/`limit`/);
      await expect(store.listActive({ limit: 1, cursor: 3 as never })).rejects.toThrow(/`cursor`/);
    });
  });

  describe('crash recovery', () => {
    it('recover() takes its mode, maxRecoveries and signal, and rejects bad ones naming them and the value', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      const { signal } = new AbortController();
      expect(await store.recover(['a'], fence(1n), { mode: 'count', maxRecoveries: 3, signal })).toEqual([
        { id: 'a', outcome: 'counted' },
      ]);
      expect(store.recoveryCount('a')).toBe(1);
      const bad: [unknown, RegExp][] = [
        [undefined, /`options.mode`.*`undefined`/],
        [{ mode: 'resume', maxRecoveries: 3 }, /`options.mode`.*"resume"/],
        [{ mode: 'park', maxRecoveries: -1 }, /`options.maxRecoveries`.*`-1` \(number\)/],
        [{ mode: 'park', maxRecoveries: 1.5 }, /`options.maxRecoveries`.*`1.5`/],
        [{ mode: 'park', maxRecoveries: 3, sigal: 1 }, /Unknown option `sigal` for recover\(\)/],
        [{ mode: 'park', maxRecoveries: 3, signal: 'x' }, /`signal`.*"x"/],
      ];
      for (const [options, message] of bad)
        await expect(store.recover(['a'], fence(2n), options as never)).rejects.toThrow(message);
      expect(store.get('a')).toEqual({ id: 'a', status: 'running', parked: false });
      expect([store.recoveryCount('a'), store.highestToken]).toEqual([1, 1n]);
    });

    it('recoveryCount() counts recoveries since the last clean end, 0 once failed or when unknown', async () => {
      const store = new MemoryWorkflowStore();
      store.add('a');
      for (let i = 1; i <= 2; i++) {
        await store.recover(['a'], fence(), { mode: 'park', maxRecoveries: 2 });
        expect(store.recoveryCount('a')).toBe(i);
        store.userResume('a');
      }
      expect(await store.recover(['a'], fence(), { mode: 'park', maxRecoveries: 2 })).toEqual([
        { id: 'a', outcome: 'failed' },
      ]);
      expect(store.get('a')).toEqual({ id: 'a', status: 'failed', parked: false });
      expect([store.recoveryCount('a'), store.recoveryCount('x'), store.parkCount('a')]).toEqual([0, 0, 2]);
    });

    it('enterGeneration() and leaveGeneration() reject bad arguments naming them, writing nothing (the fence included)', async () => {
      const store = new MemoryWorkflowStore();
      const calls: [() => Promise<unknown>, RegExp][] = [
        [() => store.enterGeneration('g', undefined as never, fence(5n)), /`member.memberId`/],
        [
          () => store.enterGeneration('g', { memberId: 'm', incarnation: '' }, fence(5n)),
          /`member.incarnation`/,
        ],
        [() => store.enterGeneration('', { memberId: 'm', incarnation: 'i' }, fence(5n)), /`group`/],
        [() => store.leaveGeneration('g', 'm' as never, 'none', fence(5n)), /`ids`/],
        [() => store.leaveGeneration('g', ['m'], 'gone' as never, fence(5n)), /`end`.*"gone"/],
        [() => store.readGeneration(3 as never), /`group`.*`3`/],
      ];
      for (const [call, message] of calls) await expect(call()).rejects.toThrow(message);
      expect(store.highestToken).toBeUndefined();
      expect(await store.readGeneration('g')).toEqual({ generation: 0, members: [], dirty: false });
    });

    it('after close(), the four methods reject with ClosedError', async () => {
      const store = new MemoryWorkflowStore();
      await store.close();
      const member = { memberId: 'm', incarnation: 'i' };
      await expect(store.readGeneration('g')).rejects.toThrow(ClosedError);
      await expect(store.enterGeneration('g', member, fence())).rejects.toThrow(ClosedError);
      await expect(store.leaveGeneration('g', ['m'], 'clean', fence())).rejects.toThrow(ClosedError);
      await expect(store.recover(['a'], fence(), { mode: 'park', maxRecoveries: 1 })).rejects.toThrow(
        ClosedError,
      );
    });
  });

  describe('paging', () => {
    it('lists in id order whatever the insertion order, and ends with cursor undefined', async () => {
      const store = new MemoryWorkflowStore();
      for (const id of ['c', 'a', 'e', 'b', 'd']) store.add(id);
      const first = await store.listActive({ limit: 2 });
      expect(first).toEqual({ items: ['a', 'b'], cursor: 'b' });
      const second = await store.listActive({ limit: 2, cursor: first.cursor });
      expect(second).toEqual({ items: ['c', 'd'], cursor: 'd' });
      expect(await store.listActive({ limit: 2, cursor: second.cursor })).toEqual({
        items: ['e'],
        cursor: undefined,
      });
      // an exactly full last page says it is the last
      expect(await store.listActive({ limit: 5 })).toEqual({
        items: ['a', 'b', 'c', 'd', 'e'],
        cursor: undefined,
      });
    });

    it('resumes after the cursor even when the cursor id left the listing or never existed', async () => {
      const store = new MemoryWorkflowStore();
      for (const id of ['a', 'b', 'c', 'd']) store.add(id);
      const first = await store.listActive({ limit: 2 });
      store.complete('b');
      store.add('bb');
      expect((await store.listActive({ limit: 10, cursor: first.cursor })).items).toEqual(['bb', 'c', 'd']);
      expect((await store.listActive({ limit: 10, cursor: 'a0' })).items).toEqual(['bb', 'c', 'd']);
    });

    it('handles a million workflows with flat pages', async () => {
      const store = new MemoryWorkflowStore();
      for (let i = 0; i < 1_000_000; i++) store.add(`wf-${String(i).padStart(7, '0')}`);
      let cursor: string | undefined;
      let count = 0;
      for (let pages = 0; pages < 200; pages++) {
        const page = await store.listActive(
          cursor === undefined ? { limit: 10_000 } : { limit: 10_000, cursor },
        );
        count += page.items.length;
        cursor = page.cursor;
        if (cursor === undefined) break;
      }
      expect(cursor).toBeUndefined();
      expect(count).toBe(1_000_000);
    });
  });
});

workflowStoreContract(() => memoryStoreHarness());
workflowStoreContract(() => memoryStoreHarness({ pauseDelayMs: 5 }), {
  name: 'MemoryWorkflowStore (pauseDelayMs: 5)',
});
workflowStoreContract(() => memoryStoreHarness({ owners: true }), {
  name: 'MemoryWorkflowStore (owners: true)',
});
workflowStoreContract(() => memoryStoreHarness({ pages: true }), {
  name: 'MemoryWorkflowStore (pages: true)',
});
