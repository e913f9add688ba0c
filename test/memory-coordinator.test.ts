import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import type { Lease } from '../src/coordinator.js';
import { DrainController } from '../src/index.js';
import {
  ClosedError,
  ConfigurationError,
  LockLostError,
  LockTimeoutError,
  MembershipLostError,
} from '../src/errors.js';
import { randomId } from '../src/internal/time.js';
import { coordinatorContract } from '../src/testing/vitest/index.js';

/** Settles-or-not probe for a promise, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: boolean; value?: T; error?: unknown } {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

const TTL = 600;

describe('MemoryCoordinator', () => {
  let backend: MemoryBackend;
  const made: MemoryCoordinator[] = [];
  const make = (options: { clock?: () => number } = {}): MemoryCoordinator => {
    const c = new MemoryCoordinator({ backend, ...options });
    made.push(c);
    return c;
  };

  beforeEach(() => {
    backend = new MemoryBackend();
  });
  afterEach(async () => {
    await Promise.all(made.splice(0).map((c) => c.close()));
    vi.useRealTimers();
  });

  it('capabilities: process scope, ttl liveness, monotonic fencing', () => {
    expect(make().capabilities).toEqual({ scope: 'process', liveness: 'ttl', fencing: 'monotonic' });
  });

  describe('constructor', () => {
    it('rejects unknown options, naming them', () => {
      expect(() => new MemoryCoordinator({ backnd: backend } as never)).toThrow(/Unknown option `backnd`/);
    });
    it('rejects a backend that is not a MemoryBackend', () => {
      expect(() => new MemoryCoordinator({ backend: {} as never })).toThrow(ConfigurationError);
      expect(() => new MemoryCoordinator({ backend: {} as never })).toThrow(/`backend`/);
    });
    it('rejects a clock that is not a function', () => {
      expect(() => new MemoryCoordinator({ clock: 5 as never })).toThrow(/`clock`.*`5` \(number\)/);
    });
  });

  describe('argument validation', () => {
    it('acquire() rejects a bad ttlMs, timeoutMs or name, naming it and the value', async () => {
      const c = make();
      await expect(c.acquire('l', { ttlMs: 0, timeoutMs: 10 })).rejects.toThrow(/`ttlMs`.*`0` \(number\)/);
      await expect(c.acquire('l', { ttlMs: 100, timeoutMs: -1 })).rejects.toThrow(/`timeoutMs`.*`-1`/);
      await expect(c.acquire('', { ttlMs: 100, timeoutMs: 1 })).rejects.toThrow(/`name`/);
      await expect(c.acquire('l', { ttlMs: 100, timeoutMs: 1, tieout: 1 } as never)).rejects.toThrow(
        /Unknown option `tieout`/,
      );
      await expect(c.acquire('l', { ttlMs: 100, timeoutMs: 1, signal: 'x' } as never)).rejects.toThrow(
        /`signal`/,
      );
    });
    it('join() and members() reject empty names', async () => {
      const c = make();
      await expect(c.join('', 'm', { ttlMs: TTL })).rejects.toThrow(/`group`/);
      await expect(c.join('g', '', { ttlMs: TTL })).rejects.toThrow(/`memberId`/);
      await expect(c.join('g', 'm', { ttlMs: Number.NaN })).rejects.toThrow(/`ttlMs`/);
      await expect(c.members('')).rejects.toThrow(/`group`/);
    });
  });

  describe('backend', () => {
    it('coordinators without a backend share the process-wide one', async () => {
      const a = new MemoryCoordinator();
      const b = new MemoryCoordinator();
      made.push(a, b);
      const group = randomId();
      await a.join(group, 'a', { ttlMs: TTL });
      expect((await b.members(group)).map((m) => m.memberId)).toEqual(['a']);
    });
    it('coordinators on different backends do not see each other', async () => {
      const a = make();
      const b = new MemoryCoordinator({ backend: new MemoryBackend() });
      made.push(b);
      await a.acquire('lock', { ttlMs: TTL, timeoutMs: 0 });
      await expect(b.acquire('lock', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'lock' });
    });
  });

  describe('acquire (fake timers)', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });

    it('tokens strictly increase per lock name, across instances, releases and expiry', async () => {
      const a = make();
      const b = make();
      const tokens: bigint[] = [];
      for (const c of [a, b, a]) {
        const lease = await c.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
        tokens.push(lease.token);
        await lease.release();
      }
      // a crashed holder's lock expires; the next holder still gets a greater token
      const crashed = make();
      tokens.push((await crashed.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).token);
      crashed.simulateCrash();
      const next = track(b.acquire('x', { ttlMs: TTL, timeoutMs: 5 * TTL }));
      await vi.advanceTimersByTimeAsync(TTL);
      expect(next.settled).toBe(true);
      tokens.push((next.value as { token: bigint }).token);
      expect(tokens).toEqual([1n, 2n, 3n, 4n, 5n]);
      expect((await b.acquire('other', { ttlMs: TTL, timeoutMs: 0 })).token).toBe(1n);
    });

    it('a waiter is woken by release at once, without any timer firing', async () => {
      const a = make();
      const b = make();
      const held = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const wait = track(b.acquire('x', { ttlMs: TTL, timeoutMs: 10_000 }));
      await vi.advanceTimersByTimeAsync(50);
      expect(wait.settled).toBe(false);
      await held.release();
      await Promise.resolve();
      await Promise.resolve();
      expect(wait.settled).toBe(true);
      expect((wait.value as { token: bigint }).token).toBe(2n);
    });

    it('times out with LockTimeoutError at timeoutMs, not before, and leaves nothing behind', async () => {
      const a = make();
      const b = make();
      const held = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const baseline = vi.getTimerCount();
      const wait = track(b.acquire('x', { ttlMs: TTL, timeoutMs: 1000 }));
      await vi.advanceTimersByTimeAsync(999);
      expect(wait.settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(wait.error).toBeInstanceOf(LockTimeoutError);
      expect(vi.getTimerCount()).toBe(baseline);
      await held.release();
      await vi.advanceTimersByTimeAsync(0);
      // the timed-out waiter did not take the lock when it was freed
      await expect(a.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
    });

    it('timeoutMs 0 tries once', async () => {
      const a = make();
      await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
    });

    it('rejects with signal.reason, when already aborted and when aborted while waiting', async () => {
      const a = make();
      const b = make();
      await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const reason = new Error('stop');
      await expect(
        b.acquire('x', { ttlMs: TTL, timeoutMs: 1000, signal: AbortSignal.abort(reason) }),
      ).rejects.toBe(reason);
      const baseline = vi.getTimerCount();
      const controller = new AbortController();
      const wait = track(b.acquire('x', { ttlMs: TTL, timeoutMs: 10_000, signal: controller.signal }));
      await vi.advanceTimersByTimeAsync(100);
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(wait.error).toBe(reason);
      expect(vi.getTimerCount()).toBe(baseline);
    });

    it('a waiter takes the lock when the holder expires (re-checked at the expiry time)', async () => {
      const a = make();
      const b = make();
      const held = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      a.simulateCrash();
      const wait = track(b.acquire('x', { ttlMs: TTL, timeoutMs: 10 * TTL }));
      await vi.advanceTimersByTimeAsync(TTL - 1);
      expect(wait.settled).toBe(false);
      // the crashed holder's signal aborted at its local deadline, before expiry
      expect(held.signal.aborted).toBe(true);
      await vi.advanceTimersByTimeAsync(1);
      expect(wait.settled).toBe(true);
      expect(wait.error).toBeUndefined();
    });
  });

  describe('leases (fake timers)', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });

    it('renew every ttl/3 while the instance lives: the signal stays live and others cannot take the lock', async () => {
      const a = make();
      const lease = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const first = lease.deadline;
      await vi.advanceTimersByTimeAsync(10 * TTL);
      expect(lease.signal.aborted).toBe(false);
      expect(lease.deadline).toBeGreaterThan(first + 9 * TTL);
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
    });

    it('after renewal stops, the signal aborts with LockLostError at the local deadline, before expiry', async () => {
      const a = make();
      const lease = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const acquiredAt = performance.now();
      expect(lease.deadline).toBeLessThan(acquiredAt + TTL);
      a.simulateCrash();
      await vi.advanceTimersByTimeAsync(lease.deadline - acquiredAt - 1);
      expect(lease.signal.aborted).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      // still held by the backend until its expiry
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
      await vi.advanceTimersByTimeAsync(acquiredAt + TTL - performance.now());
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
    });

    it('release is owner-checked: a lost lease does not free the next holder', async () => {
      const a = make();
      const b = make();
      const old = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      a.simulateCrash();
      await vi.advanceTimersByTimeAsync(TTL);
      const current = await b.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await old.release();
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
      expect(current.signal.aborted).toBe(false);
      await current.release();
      await current.release();
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
    });

    it('release does not abort the signal (nothing was lost)', async () => {
      const lease = await make().acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await lease.release();
      expect(lease.signal.aborted).toBe(false);
    });
  });

  describe('memberships (fake timers)', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });

    it('heartbeat every ttl/3: members() keeps listing the member, with expiresInMs and ttlMs', async () => {
      const a = make();
      const m = await a.join('g', 'a', { ttlMs: TTL });
      await vi.advanceTimersByTimeAsync(10 * TTL);
      const list = await make().members('g');
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ memberId: 'a', incarnation: m.incarnation, ttlMs: TTL });
      expect(list[0]?.expiresInMs).toBeGreaterThan((2 * TTL) / 3 - 1);
      expect(list[0]?.expiresInMs).toBeLessThanOrEqual(TTL);
      expect(m.signal.aborted).toBe(false);
    });

    it('expire ttl after the last heartbeat once heartbeats stop; the signal aborts with MembershipLostError', async () => {
      const a = make();
      const m = await a.join('g', 'a', { ttlMs: TTL });
      a.simulateCrash();
      await vi.advanceTimersByTimeAsync(TTL - 1);
      expect((await make().members('g')).map((x) => x.memberId)).toEqual(['a']);
      await vi.advanceTimersByTimeAsync(1);
      expect(await make().members('g')).toEqual([]);
      expect(m.signal.reason).toBeInstanceOf(MembershipLostError);
    });

    it('a membership removed by the backend is never re-added', async () => {
      const a = make();
      const b = make();
      const old = await a.join('g', 'm', { ttlMs: TTL });
      const replacement = await b.join('g', 'm', { ttlMs: TTL });
      expect(replacement.incarnation).not.toBe(old.incarnation);
      expect(old.signal.reason).toBeInstanceOf(MembershipLostError);
      await replacement.leave();
      await vi.advanceTimersByTimeAsync(3 * TTL);
      expect(await a.members('g')).toEqual([]);
    });

    it('leave confirms: members() no longer lists it, and the signal is not aborted', async () => {
      const a = make();
      const m = await a.join('g', 'a', { ttlMs: TTL });
      await m.leave();
      expect(await a.members('g')).toEqual([]);
      expect(m.signal.aborted).toBe(false);
      await m.leave();
    });
  });

  describe('clock injection', () => {
    it('expiry is judged on the injected clock', async () => {
      let t = 1000;
      const clock = (): number => t;
      const a = make({ clock });
      const b = make({ clock });
      const m = await a.join('g', 'a', { ttlMs: TTL });
      await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      t += 200;
      expect((await b.members('g'))[0]?.expiresInMs).toBe(TTL - 200);
      await expect(b.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
      // the clock jumps past the TTL with no timer run (a stalled event loop): both expired
      t += TTL;
      expect(await b.members('g')).toEqual([]);
      expect(m.signal.reason).toBeInstanceOf(MembershipLostError);
      const lease = await b.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      expect(lease.token).toBe(2n);
      // the deadline is on the performance.now() clock whatever the injected one reads
      expect(lease.deadline).toBeGreaterThan(performance.now());
      expect(lease.deadline).toBeLessThanOrEqual(performance.now() + TTL);
    });

    it.each([
      ['ahead of', 1e9],
      ['behind', -1e9],
    ])(
      'with a clock far %s performance.now(), the lease deadline is on the performance.now() clock, and the signal aborts there',
      async (_, offset) => {
        vi.useFakeTimers();
        const clock = (): number => performance.now() + offset;
        const a = make({ clock });
        const before = performance.now();
        const lease = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
        expect(lease.deadline).toBeGreaterThan(before);
        expect(lease.deadline).toBeLessThanOrEqual(performance.now() + TTL);
        // renewals move it along on the same clock
        await vi.advanceTimersByTimeAsync(TTL);
        expect(lease.signal.aborted).toBe(false);
        expect(lease.deadline).toBeGreaterThan(performance.now());
        expect(lease.deadline).toBeLessThanOrEqual(performance.now() + TTL);
        a.simulateCrash();
        await vi.advanceTimersByTimeAsync(lease.deadline - performance.now() - 1);
        expect(lease.signal.aborted).toBe(false);
        await vi.advanceTimersByTimeAsync(1);
        expect(lease.signal.reason).toBeInstanceOf(LockLostError);
        expect(performance.now()).toBeGreaterThanOrEqual(lease.deadline);
      },
    );

    it('a DrainController on a coordinator with a custom clock parks and resumes', async () => {
      // An hour behind performance.now(): a deadline taken from this clock would always be past.
      const clock = (): number => performance.now() - 3_600_000;
      const store = new MemoryWorkflowStore();
      for (const id of ['w1', 'w2', 'w3']) store.add(id);
      const member = (memberId: string): DrainController =>
        new DrainController({
          group: 'engines',
          memberId,
          coordinator: make({ clock }),
          store,
          shutdownTimeoutMs: 5_000,
          resumeIntervalMs: 20,
        });
      const first = member('a');
      await first.start();
      await first.whenResumed();
      const report = await first.shutdown();
      expect(report).toMatchObject({ handOff: 'parked', lastMember: true, parked: 3, errors: [] });
      expect(store.snapshot().map((w) => [w.status, w.parked])).toEqual([
        ['paused', true],
        ['paused', true],
        ['paused', true],
      ]);
      const next = member('b');
      try {
        await next.start();
        expect(await next.whenResumed()).toMatchObject({ resumed: 3, complete: true });
        expect(store.snapshot().map((w) => [w.status, w.parked])).toEqual([
          ['running', false],
          ['running', false],
          ['running', false],
        ]);
      } finally {
        await next.shutdown({ force: true });
      }
    });
  });

  describe('signals of members, leave and release', () => {
    it('members() rejects with the reason of an already aborted signal', async () => {
      const a = make();
      await a.join('g', 'a', { ttlMs: TTL });
      const reason = new Error('given up');
      await expect(a.members('g', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect((await a.members('g', { signal: new AbortController().signal })).map((m) => m.memberId)).toEqual(
        ['a'],
      );
      await expect(a.members('g', { signal: 'x' } as never)).rejects.toThrow(/`signal`/);
      await expect(a.members('g', { sigal: 1 } as never)).rejects.toThrow(/Unknown option `sigal`/);
    });

    it('release() with an aborted signal rejects, frees nothing, stops renewing: the lock expires with its TTL', async () => {
      vi.useFakeTimers();
      const a = make();
      const b = make();
      const lease = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const reason = new Error('given up');
      await expect(lease.release({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      await expect(b.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
      // no renewal: the backend expires it within its TTL, and the next holder gets it
      const next = track(b.acquire('x', { ttlMs: TTL, timeoutMs: 2 * TTL }));
      await vi.advanceTimersByTimeAsync(TTL);
      expect(next.error).toBeUndefined();
      expect((next.value as Lease).token).toBe(2n);
      // given up, not lost: the signal was not aborted; releasing again is a no-op for the next holder
      expect(lease.signal.aborted).toBe(false);
      await lease.release();
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
    });

    it('release() after a given-up one frees the lock at once; once released, an aborted signal changes nothing', async () => {
      const a = make();
      const lease = await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const aborted = AbortSignal.abort(new Error('given up'));
      await expect(lease.release({ signal: aborted })).rejects.toThrow('given up');
      await lease.release();
      const next = await make().acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await lease.release({ signal: aborted });
      await next.release();
    });

    it('leave() with an aborted signal rejects, removes nothing, stops the heartbeats: the member expires with its TTL', async () => {
      vi.useFakeTimers();
      const a = make();
      const m = await a.join('g', 'a', { ttlMs: TTL });
      const reason = new Error('given up');
      await expect(m.leave({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect((await a.members('g')).map((x) => x.memberId)).toEqual(['a']);
      await vi.advanceTimersByTimeAsync(TTL);
      expect(await a.members('g')).toEqual([]);
      expect(m.signal.aborted).toBe(false);
      await m.leave({ signal: AbortSignal.abort(reason) });
      await m.leave();
    });

    it('leave() after a given-up one removes the member at once', async () => {
      const a = make();
      const m = await a.join('g', 'a', { ttlMs: TTL });
      await expect(m.leave({ signal: AbortSignal.abort(new Error('given up')) })).rejects.toThrow('given up');
      await m.leave();
      expect(await a.members('g')).toEqual([]);
    });

    it('close() frees a lock and a membership whose release and leave were given up', async () => {
      const a = make();
      const lease = await a.acquire('x', { ttlMs: 100 * TTL, timeoutMs: 0 });
      const m = await a.join('g', 'a', { ttlMs: 100 * TTL });
      const signal = AbortSignal.abort(new Error('given up'));
      await expect(lease.release({ signal })).rejects.toThrow('given up');
      await expect(m.leave({ signal })).rejects.toThrow('given up');
      await a.close();
      await expect(make().acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
      expect(await make().members('g')).toEqual([]);
      expect(lease.signal.aborted).toBe(false);
      expect(m.signal.aborted).toBe(false);
    });
  });

  describe('close', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });

    it('releases leases and leaves groups at once, and leaves no timer', async () => {
      const a = make();
      const b = make();
      await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await a.join('g', 'a', { ttlMs: TTL });
      await b.join('g', 'b', { ttlMs: TTL });
      await a.close();
      await a.close();
      await expect(b.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).resolves.toMatchObject({ name: 'x' });
      expect((await b.members('g')).map((m) => m.memberId)).toEqual(['b']);
      await b.close();
      expect(vi.getTimerCount()).toBe(0);
    });

    it('rejects a pending acquire with ClosedError', async () => {
      const a = make();
      const b = make();
      await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      const pending = b.acquire('x', { ttlMs: TTL, timeoutMs: 5000 });
      await b.close();
      await expect(pending).rejects.toThrow(ClosedError);
    });

    it('afterwards, acquire, join and members reject with ClosedError', async () => {
      const a = make();
      await a.close();
      await expect(a.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toMatchObject({
        code: 'ERR_CLOSED',
      });
      await expect(a.join('g', 'a', { ttlMs: TTL })).rejects.toThrow(ClosedError);
      await expect(a.members('g')).rejects.toThrow(ClosedError);
    });

    it('after a simulated crash, releases nothing but clears every timer', async () => {
      const a = make();
      await a.acquire('x', { ttlMs: TTL, timeoutMs: 0 });
      await a.join('g', 'a', { ttlMs: TTL });
      a.simulateCrash();
      await expect(a.members('g')).rejects.toThrow(ClosedError);
      await a.close();
      expect(vi.getTimerCount()).toBe(0);
      const b = make();
      expect((await b.members('g')).map((m) => m.memberId)).toEqual(['a']);
      await expect(b.acquire('x', { ttlMs: TTL, timeoutMs: 0 })).rejects.toThrow(LockTimeoutError);
    });
  });

  it('its timers never keep the process alive', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gd-memory-'));
    try {
      const entry = pathToFileURL(join(import.meta.dirname, '../src/adapters/memory/index.ts')).href;
      const script = join(dir, 'fixture.mts');
      writeFileSync(
        script,
        `import { MemoryCoordinator, MemoryWorkflowStore } from ${JSON.stringify(entry)};
const c = new MemoryCoordinator();
await c.acquire('x', { ttlMs: 60_000, timeoutMs: 0 });
await c.join('g', 'a', { ttlMs: 60_000 });
const store = new MemoryWorkflowStore({ pauseDelayMs: 60_000 });
store.add('w');
await store.park(['w'], { memberId: 'a', token: 1n });
console.log('ready');
`,
      );
      const started = Date.now();
      const child = spawnSync(process.execPath, ['--import', 'tsx', script], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(child.stderr).toBe('');
      expect(child.stdout.trim()).toBe('ready');
      expect(child.status).toBe(0);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MemoryCoordinator contract', () => {
  const backend = new MemoryBackend();
  coordinatorContract(() => new MemoryCoordinator({ backend }));
});
