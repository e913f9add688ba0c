import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, MemoryCoordinator } from '../src/adapters/memory/index.js';
import type { Coordinator } from '../src/coordinator.js';
import {
  ClosedError,
  ConfigurationError,
  CoordinatorUnavailableError,
  LockLostError,
  LockTimeoutError,
  MembershipLostError,
} from '../src/errors.js';
import { FaultyCoordinator } from '../src/testing/index.js';
import { coordinatorContract } from '../src/testing/vitest/index.js';

const TTL = 600;

/** Settles-or-not probe for a promise, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: boolean; value?: T; error?: unknown } {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

describe('FaultyCoordinator', () => {
  let backend: MemoryBackend;
  const open: Coordinator[] = [];
  const faulty = (): FaultyCoordinator => {
    const c = new FaultyCoordinator(new MemoryCoordinator({ backend }));
    open.push(c);
    return c;
  };
  const plain = (): MemoryCoordinator => {
    const c = new MemoryCoordinator({ backend });
    open.push(c);
    return c;
  };

  beforeEach(() => {
    backend = new MemoryBackend();
    vi.useFakeTimers();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    vi.useRealTimers();
  });

  it('passes the capabilities of the wrapped coordinator through', () => {
    expect(faulty().capabilities).toEqual({ scope: 'process', liveness: 'ttl', fencing: 'monotonic' });
  });

  it('rejects something that is not a coordinator', () => {
    expect(() => new FaultyCoordinator({} as never)).toThrow(/`inner`/);
  });

  describe('expireLease', () => {
    it("aborts held leases' signals with LockLostError and frees the locks underneath", async () => {
      const c = faulty();
      const x = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const y = await c.acquire('y', { ttlMs: TTL, timeoutMs: 0 });
      await c.expireLease('x');
      expect(x.signal.reason).toBeInstanceOf(LockLostError);
      expect(y.signal.aborted).toBe(false);
      const next = await plain().acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      expect(next.token).toBeGreaterThan(x.token);
      // the old lease's release is harmless
      await x.release();
      await expect(plain().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
      await c.expireLease();
      expect(y.signal.reason).toBeInstanceOf(LockLostError);
      await expect(plain().acquire('y', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'y' });
    });

    it('leaves released leases alone', async () => {
      const c = faulty();
      const x = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await x.release();
      await c.expireLease();
      expect(x.signal.aborted).toBe(false);
    });
  });

  describe('dropMembership', () => {
    it('aborts the signal with MembershipLostError and removes the member from its group', async () => {
      const c = faulty();
      const a = await c.join('g', 'a', { ttlMs: TTL });
      const b = await c.join('g', 'b', { ttlMs: TTL });
      await c.dropMembership('a');
      expect(a.signal.reason).toBeInstanceOf(MembershipLostError);
      expect(b.signal.aborted).toBe(false);
      expect((await plain().members('g')).map((m) => m.memberId)).toEqual(['b']);
      await vi.advanceTimersByTimeAsync(3 * TTL);
      expect((await c.members('g')).map((m) => m.memberId)).toEqual(['b']);
      await c.dropMembership();
      expect(b.signal.reason).toBeInstanceOf(MembershipLostError);
      expect(await c.members('g')).toEqual([]);
    });
  });

  it('wrapper signals follow the wrapped ones', async () => {
    const c = faulty();
    const m = await c.join('g', 'a', { ttlMs: TTL });
    await plain().join('g', 'a', { ttlMs: TTL });
    expect(m.signal.reason).toBeInstanceOf(MembershipLostError);
  });

  describe('hang', () => {
    it('acquire never settles, even past timeoutMs, until heal(); then it proceeds', async () => {
      const c = faulty();
      c.hang(['acquire']);
      const pending = track(c.acquire('x', { ttlMs: TTL, timeoutMs: 100 }));
      await vi.advanceTimersByTimeAsync(10_000);
      expect(pending.settled).toBe(false);
      c.heal();
      await vi.advanceTimersByTimeAsync(0);
      expect(pending.settled).toBe(true);
      expect(pending.error).toBeUndefined();
    });

    it('a hanging acquire or join still rejects with signal.reason', async () => {
      const c = faulty();
      c.hang(['acquire', 'join']);
      const controller = new AbortController();
      const reason = new Error('give up');
      const acquiring = track(c.acquire('x', { ttlMs: TTL, timeoutMs: 100, signal: controller.signal }));
      const joining = track(c.join('g', 'a', { ttlMs: TTL, signal: controller.signal }));
      await vi.advanceTimersByTimeAsync(1000);
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect([acquiring.error, joining.error]).toEqual([reason, reason]);
      await expect(c.acquire('x', { ttlMs: TTL, timeoutMs: 1, signal: controller.signal })).rejects.toBe(
        reason,
      );
      // heal() does not revive a cancelled call
      c.heal();
      await vi.advanceTimersByTimeAsync(0);
      expect(await c.members('g')).toEqual([]);
    });

    it('members, leave and release never settle until heal()', async () => {
      const c = faulty();
      const lease = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const m = await c.join('g', 'a', { ttlMs: TTL });
      c.hang(['members', 'leave', 'release']);
      const calls = [track(c.members('g')), track(m.leave()), track(lease.release())];
      await vi.advanceTimersByTimeAsync(5 * TTL);
      expect(calls.map((x) => x.settled)).toEqual([false, false, false]);
      // nothing happened underneath yet
      expect((await plain().members('g')).map((x) => x.memberId)).toEqual(['a']);
      c.heal();
      await vi.advanceTimersByTimeAsync(0);
      expect(calls.map((x) => x.settled)).toEqual([true, true, true]);
      expect(await plain().members('g')).toEqual([]);
      await expect(plain().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
    });

    it('hanging members, leave and release still reject with signal.reason, and the wrapped handle gives up too', async () => {
      const c = faulty();
      const lease = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const m = await c.join('g', 'a', { ttlMs: TTL });
      c.hang(['members', 'leave', 'release']);
      const controller = new AbortController();
      const reason = new Error('give up');
      const { signal } = controller;
      const calls = [
        track(c.members('g', { signal })),
        track(m.leave({ signal })),
        track(lease.release({ signal })),
      ];
      await vi.advanceTimersByTimeAsync(1000);
      expect(calls.map((x) => x.settled)).toEqual([false, false, false]);
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(calls.map((x) => x.error)).toEqual([reason, reason, reason]);
      await expect(c.members('g', { signal })).rejects.toBe(reason);
      c.heal();
      await vi.advanceTimersByTimeAsync(0);
      // given up underneath too: nothing was freed, but nothing is renewed either, so both expire
      expect((await plain().members('g')).map((x) => x.memberId)).toEqual(['a']);
      await expect(plain().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
      await vi.advanceTimersByTimeAsync(TTL);
      expect(await plain().members('g')).toEqual([]);
      await expect(plain().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
    });

    it('rejects unknown operations, naming them', () => {
      expect(() => faulty().hang(['acquire', 'renew' as never])).toThrow(ConfigurationError);
      expect(() => faulty().hang(['renew' as never])).toThrow(/`ops\[0\]`.*"renew"/);
      expect(() => faulty().fail('acquire' as never)).toThrow(/`ops`/);
    });
  });

  describe('options', () => {
    it('members, leave and release pass their options to the wrapped coordinator', async () => {
      const c = faulty();
      const lease = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const m = await c.join('g', 'a', { ttlMs: TTL });
      const reason = new Error('already aborted');
      const signal = AbortSignal.abort(reason);
      await expect(c.members('g', { signal })).rejects.toBe(reason);
      await expect(m.leave({ signal })).rejects.toBe(reason);
      await expect(lease.release({ signal })).rejects.toBe(reason);
      // the wrapped handles gave up: still there until their TTL runs out
      expect((await plain().members('g')).map((x) => x.memberId)).toEqual(['a']);
      await vi.advanceTimersByTimeAsync(TTL);
      expect(await plain().members('g')).toEqual([]);
      await expect(plain().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
      await expect(c.members('g', { signal: 'x' } as never)).rejects.toThrow(/`signal`/);
    });
  });

  describe('fail', () => {
    it('makes operations reject with CoordinatorUnavailableError until heal()', async () => {
      const c = faulty();
      const lease = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const m = await c.join('g', 'a', { ttlMs: TTL });
      c.fail(['acquire', 'join', 'members', 'leave', 'release']);
      for (const call of [
        () => c.acquire('y', { ttlMs: TTL, timeoutMs: 0 }),
        () => c.join('g', 'b', { ttlMs: TTL }),
        () => c.members('g'),
        () => m.leave(),
        () => lease.release(),
      ]) {
        await expect(call()).rejects.toMatchObject({ code: 'ERR_COORDINATOR_UNAVAILABLE' });
      }
      c.heal();
      await m.leave();
      await lease.release();
      expect(await c.members('g')).toEqual([]);
    });

    it('rejects with the given error', async () => {
      const c = faulty();
      const error = new Error('boom');
      c.fail(['members'], error);
      await expect(c.members('g')).rejects.toBe(error);
      await expect(c.join('g', 'a', { ttlMs: TTL })).resolves.toMatchObject({ group: 'g', memberId: 'a' });
    });
  });

  describe('crash', () => {
    it('stops heartbeats and renewals without leaving or releasing: both expire after their TTL', async () => {
      const c = faulty();
      const other = plain();
      const lease = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const m = await c.join('g', 'a', { ttlMs: TTL });
      await vi.advanceTimersByTimeAsync(TTL);
      c.crash();
      expect(c.crashed).toBe(true);
      expect((await other.members('g')).map((x) => x.memberId)).toEqual(['a']);
      const waiting = track(other.acquire('x', { ttlMs: TTL, timeoutMs: 10 * TTL }));
      await vi.advanceTimersByTimeAsync(TTL / 2);
      expect(waiting.settled).toBe(false);
      await vi.advanceTimersByTimeAsync(TTL);
      // the lease signal aborted (at its local deadline), then the lock expired and was taken
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      expect(waiting.settled).toBe(true);
      expect(waiting.error).toBeUndefined();
      expect(await other.members('g')).toEqual([]);
      expect(m.signal.reason).toBeInstanceOf(MembershipLostError);
    });

    it('the instance then rejects calls with ClosedError, held ones included', async () => {
      const c = faulty();
      const m = await c.join('g', 'a', { ttlMs: TTL });
      c.hang(['members']);
      const held = c.members('g');
      c.crash();
      await expect(held).rejects.toThrow(ClosedError);
      await expect(c.members('g')).rejects.toThrow(ClosedError);
      await expect(c.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(ClosedError);
      await expect(m.leave()).rejects.toThrow(ClosedError);
      // still listed: a crashed member does not leave
      expect((await plain().members('g')).map((x) => x.memberId)).toEqual(['a']);
      await c.close();
      expect((await plain().members('g')).map((x) => x.memberId)).toEqual(['a']);
    });

    it('needs a wrapped coordinator that can simulate a crash', () => {
      const inner = plain();
      const bare: Coordinator = {
        capabilities: inner.capabilities,
        acquire: (name, options) => inner.acquire(name, options),
        join: (group, memberId, options) => inner.join(group, memberId, options),
        members: (group) => inner.members(group),
        close: () => inner.close(),
      };
      expect(() => new FaultyCoordinator(bare).crash()).toThrow(/simulateCrash/);
    });
  });

  describe('close', () => {
    it('closes the wrapped coordinator, rejects held calls with ClosedError, and is idempotent', async () => {
      const inner = new MemoryCoordinator({ backend });
      const c = new FaultyCoordinator(inner);
      await c.join('g', 'a', { ttlMs: TTL });
      c.hang(['acquire']);
      const held = c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await Promise.all([c.close(), c.close()]);
      await expect(held).rejects.toThrow(ClosedError);
      await expect(inner.members('g')).rejects.toThrow(ClosedError);
      await expect(c.members('g')).rejects.toThrow(ClosedError);
      expect(await plain().members('g')).toEqual([]);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('never throws, even when the wrapped close does', async () => {
      const inner = plain();
      const c = new FaultyCoordinator({
        capabilities: inner.capabilities,
        acquire: (name, options) => inner.acquire(name, options),
        join: (group, memberId, options) => inner.join(group, memberId, options),
        members: (group) => inner.members(group),
        close: () => Promise.reject(new CoordinatorUnavailableError()),
      });
      await expect(c.close()).resolves.toBeUndefined();
    });
  });
});

describe('FaultyCoordinator without faults', () => {
  const backend = new MemoryBackend();
  coordinatorContract(() => new FaultyCoordinator(new MemoryCoordinator({ backend })), {
    name: 'FaultyCoordinator(MemoryCoordinator)',
  });
});
