import { describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator.js';
import { ClosedError, LockTimeoutError } from '../../errors.js';
import { delay, now, randomId } from '../../internal/time.js';
import { checkOptionsObject, checkPositive } from '../../validate.js';
import { contractSuite, rejectionOf } from './support.js';

/** Options of {@link coordinatorContract}. */
export interface CoordinatorContractOptions {
  /** Shown in the describe() title. @defaultValue the coordinator's constructor name */
  readonly name?: string;
  /** The TTL of the suite's leases and memberships, in ms; waits scale with it. @defaultValue `600` */
  readonly ttlMs?: number;
}

const nameOf = (c: Coordinator): string => c.constructor.name;
const lockName = (): string => `gd-contract-lock-${randomId()}`;
const groupName = (): string => `gd-contract-group-${randomId()}`;
const memberIds = async (c: Coordinator, group: string): Promise<string[]> =>
  (await c.members(group)).map((m) => m.memberId).sort();

/**
 * Registers (with vitest's `describe`/`it`) the behaviour every {@link Coordinator} must show.
 *
 * Each call of `factory` must return a NEW coordinator instance on the SAME backend (as a second
 * process would have); the suite closes every instance it creates after each test. Tests use
 * unique lock and group names. When `name` is not given, one instance is made while the suite is
 * collected, to read its constructor name.
 *
 * @example
 * ```ts
 * import { coordinatorContract } from 'graceful-drain/testing/vitest';
 * coordinatorContract(() => new MyCoordinator({ url: process.env.MY_URL }), { ttlMs: 1000 });
 * ```
 */
export function coordinatorContract(
  factory: () => Coordinator | Promise<Coordinator>,
  options?: CoordinatorContractOptions,
): void {
  const o = checkOptionsObject('coordinatorContract()', options, ['name', 'ttlMs']);
  const ttl = o.ttlMs === undefined ? 600 : checkPositive('ttlMs', o.ttlMs);
  const name = o.name as string | undefined;
  contractSuite('Coordinator contract', name, nameOf, factory, (make) => {
    /** `it(title)`, its body given a fresh lock name and group name. */
    const test = (title: string, body: (lock: string, group: string) => Promise<void>): void =>
      it(title, () => body(lockName(), groupName()));
    const take = (c: Coordinator, lock: string, ttlMs = ttl, timeoutMs = ttl) =>
      c.acquire(lock, { ttlMs, timeoutMs });
    /** Whether `c` can take `lock` within `ms` (the lease is released at once). */
    const canAcquire = async (c: Coordinator, lock: string, ms: number): Promise<boolean> => {
      try {
        await (await take(c, lock, ttl, ms)).release();
        return true;
      } catch (error) {
        if (error instanceof LockTimeoutError) return false;
        throw error;
      }
    };
    /** Whether `c` lists only `m2` in `group` within 3 TTLs (polling). */
    const soonOnlyM2 = async (c: Coordinator, group: string): Promise<boolean> => {
      const deadline = now() + 3 * ttl;
      while ((await memberIds(c, group)).join() !== 'm2') {
        if (now() >= deadline) return false;
        await delay(Math.min(25, (3 * ttl) / 10));
      }
      return true;
    };

    test('capabilities: scope, liveness and fencing are well-formed', async () => {
      const { capabilities } = await make();
      expect(['process', 'host', 'cluster']).toContain(capabilities.scope);
      expect(['ttl', 'connection']).toContain(capabilities.liveness);
      expect(['monotonic', 'best-effort', 'none']).toContain(capabilities.fencing);
    });

    describe('acquire', () => {
      test('resolves a Lease with a bigint token, a live signal and a deadline within ttlMs', async (lock) => {
        const c = await make();
        const before = now();
        const lease = await take(c, lock);
        expect(lease.name).toBe(lock);
        expect(typeof lease.token).toBe('bigint');
        expect(lease.signal).toBeInstanceOf(AbortSignal);
        expect(lease.signal.aborted).toBe(false);
        expect(lease.deadline).toBeGreaterThan(before);
        expect(lease.deadline).toBeLessThanOrEqual(now() + ttl);
        await lease.release();
      });
      test('of a held lock rejects with LockTimeoutError after about timeoutMs, leaving no lock behind', async (lock) => {
        const [a, b, c] = [await make(), await make(), await make()];
        const held = await take(a, lock);
        const timeoutMs = Math.round(ttl / 2);
        const started = now();
        // a long TTL: were the failed attempt to leave a lock behind, it would outlive the check below
        const error = await rejectionOf(take(b, lock, 20 * ttl, timeoutMs));
        const elapsed = now() - started;
        expect(error).toBeInstanceOf(LockTimeoutError);
        expect(error).toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
        expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 5);
        expect(elapsed).toBeLessThan(timeoutMs + Math.max(1000, ttl));
        expect(held.signal.aborted).toBe(false);
        await held.release();
        expect(await canAcquire(c, lock, 3 * ttl)).toBe(true);
      });
      test('rejects with signal.reason when the signal is already aborted', async (lock) => {
        const [a, b] = [await make(), await make()];
        const reason = new Error('already aborted');
        const signal = AbortSignal.abort(reason);
        expect(await rejectionOf(a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl, signal }))).toBe(reason);
        expect(await canAcquire(b, lock, ttl)).toBe(true); // nothing was taken
      });
      test('rejects with signal.reason as soon as the signal aborts while waiting, leaving no lock behind', async (lock) => {
        const [a, b, c] = [await make(), await make(), await make()];
        const held = await take(a, lock);
        const controller = new AbortController();
        const reason = new Error('cancelled');
        const { signal } = controller;
        const waiting = rejectionOf(b.acquire(lock, { ttlMs: 20 * ttl, timeoutMs: 20 * ttl, signal }));
        await delay(Math.round(ttl / 6));
        const abortedAt = now();
        controller.abort(reason);
        expect(await waiting).toBe(reason);
        expect(now() - abortedAt).toBeLessThan(Math.max(500, ttl));
        await held.release();
        expect(await canAcquire(c, lock, 3 * ttl)).toBe(true);
      });
      test('takes a lock another instance released, with a strictly greater token unless fencing is none', async (lock) => {
        const [a, b] = [await make(), await make()];
        const tokens: bigint[] = [];
        for (const c of [a, b, a, b]) {
          const lease = await take(c, lock, ttl, 3 * ttl);
          tokens.push(lease.token);
          await lease.release();
        }
        if (a.capabilities.fencing === 'none') return;
        for (let i = 1; i < tokens.length; i++) {
          expect(tokens[i] as bigint).toBeGreaterThan(tokens[i - 1] as bigint);
        }
      });
      test('a waiter gets the lock soon after the holder releases it', async (lock) => {
        const [a, b] = [await make(), await make()];
        const held = await take(a, lock, 20 * ttl);
        const waiting = take(b, lock, ttl, 10 * ttl);
        await delay(Math.round(ttl / 6));
        const releasedAt = now();
        await held.release();
        const lease = await waiting;
        // well before the holder's TTL could have run out: the release freed it
        expect(now() - releasedAt).toBeLessThan(5 * ttl);
        if (a.capabilities.fencing !== 'none') expect(lease.token).toBeGreaterThan(held.token);
        await lease.release();
      });
      test('locks of different names are independent', async () => {
        const [a, b] = [await make(), await make()];
        const held = await take(a, lockName());
        expect(await canAcquire(b, lockName(), ttl)).toBe(true);
        await held.release();
      });
    });

    describe('Lease', () => {
      test('release() is idempotent and owner-checked: an old lease never frees the next holder', async (lock) => {
        const [a, b, c] = [await make(), await make(), await make()];
        const old = await take(a, lock);
        await old.release();
        await old.release();
        const current = await take(b, lock, ttl, 3 * ttl);
        await old.release();
        expect(await canAcquire(c, lock, Math.round(ttl / 2))).toBe(false);
        expect(current.signal.aborted).toBe(false);
        await current.release();
        await current.release();
        expect(await canAcquire(c, lock, 3 * ttl)).toBe(true);
      });
      test('survives well past ttlMs while held (renewal), its signal un-aborted', async (lock) => {
        const [a, b] = [await make(), await make()];
        const lease = await take(a, lock);
        await delay(2.5 * ttl);
        expect(lease.signal.aborted).toBe(false);
        expect(await canAcquire(b, lock, 0)).toBe(false);
        expect(lease.deadline).toBeGreaterThan(now());
        await lease.release();
      });
    });

    describe('join and members', () => {
      test('join resolves a Membership with a fresh incarnation each time', async (_, group) => {
        const [a, b] = [await make(), await make()];
        const first = await a.join(group, 'm1', { ttlMs: ttl });
        expect(first).toMatchObject({ group, memberId: 'm1' });
        expect(typeof first.incarnation).toBe('string');
        expect(first.incarnation.length).toBeGreaterThan(0);
        expect(first.signal).toBeInstanceOf(AbortSignal);
        expect(first.signal.aborted).toBe(false);
        await first.leave();
        const second = await a.join(group, 'm1', { ttlMs: ttl });
        await second.leave();
        const third = await b.join(group, 'm1', { ttlMs: ttl });
        expect(new Set([first.incarnation, second.incarnation, third.incarnation]).size).toBe(3);
        await third.leave();
      });
      test('join rejects with signal.reason when the signal is already aborted, joining nothing', async (_, group) => {
        const a = await make();
        const reason = new Error('already aborted');
        const signal = AbortSignal.abort(reason);
        expect(await rejectionOf(a.join(group, 'm1', { ttlMs: ttl, signal }))).toBe(reason);
        expect(await memberIds(a, group)).toEqual([]);
      });
      test('members() lists the joined members, from every instance, with their incarnation', async (_, group) => {
        const [a, b, c] = [await make(), await make(), await make()];
        const m1 = await a.join(group, 'm1', { ttlMs: ttl });
        const m2 = await b.join(group, 'm2', { ttlMs: ttl });
        await c.join(groupName(), 'elsewhere', { ttlMs: ttl });
        for (const viewer of [a, b, c]) {
          const list = await viewer.members(group);
          expect(list.map((m) => m.memberId).sort()).toEqual(['m1', 'm2']);
          expect(list.find((m) => m.memberId === 'm1')?.incarnation).toBe(m1.incarnation);
          expect(list.find((m) => m.memberId === 'm2')?.incarnation).toBe(m2.incarnation);
        }
      });
      test('members() gives expiresInMs (0 < expiresInMs <= ttlMs) when liveness is ttl, and ttlMs when recorded', async (_, group) => {
        const a = await make();
        await a.join(group, 'm1', { ttlMs: ttl });
        const [info] = await a.members(group);
        if (info?.ttlMs !== undefined) expect(info.ttlMs).toBe(ttl);
        if (a.capabilities.liveness !== 'ttl') return;
        expect(typeof info?.expiresInMs).toBe('number');
        expect(info?.expiresInMs).toBeGreaterThan(0);
        expect(info?.expiresInMs).toBeLessThanOrEqual(ttl);
      });
      test('a membership survives well past ttlMs (heartbeats), its signal un-aborted', async (_, group) => {
        const [a, b] = [await make(), await make()];
        const m = await a.join(group, 'm1', { ttlMs: ttl });
        await delay(2.5 * ttl);
        expect(m.signal.aborted).toBe(false);
        expect(await memberIds(b, group)).toEqual(['m1']);
      });
      test('leave() resolves once members() no longer lists the member; it is idempotent', async (_, group) => {
        const [a, b] = [await make(), await make()];
        const m1 = await a.join(group, 'm1', { ttlMs: ttl });
        await b.join(group, 'm2', { ttlMs: ttl });
        await m1.leave();
        expect(await memberIds(b, group)).toEqual(['m2']);
        expect(await memberIds(a, group)).toEqual(['m2']);
        await m1.leave();
        expect(await memberIds(b, group)).toEqual(['m2']);
      });
    });

    describe('signals of members, leave and release', () => {
      test('members() rejects with the reason of an already aborted signal; a live one changes nothing', async (_, group) => {
        const a = await make();
        await a.join(group, 'm1', { ttlMs: ttl });
        const reason = new Error('already aborted');
        expect(await rejectionOf(a.members(group, { signal: AbortSignal.abort(reason) }))).toBe(reason);
        const { signal } = new AbortController();
        expect((await a.members(group, { signal })).map((m) => m.memberId)).toEqual(['m1']);
      });
      test('release() with an aborted signal rejects with its reason, and the lock does not stay held: it expires with its TTL', async (lock) => {
        const [a, b] = [await make(), await make()];
        const lease = await take(a, lock);
        const reason = new Error('already aborted');
        expect(await rejectionOf(lease.release({ signal: AbortSignal.abort(reason) }))).toBe(reason);
        // given up: either freed already, or no longer renewed, so free within about one TTL
        const next = await take(b, lock, ttl, 3 * ttl);
        if (b.capabilities.fencing !== 'none') expect(next.token).toBeGreaterThan(lease.token);
        // a later release of the old lease is harmless: owner-checked, it never frees the next holder
        await lease.release();
        expect(await canAcquire(a, lock, Math.round(ttl / 2))).toBe(false);
        await next.release();
      });
      test('release() with a live signal releases; once released, an aborted signal changes nothing', async (lock) => {
        const [a, b] = [await make(), await make()];
        const lease = await take(a, lock, 20 * ttl);
        await lease.release({ signal: new AbortController().signal });
        await lease.release({ signal: AbortSignal.abort(new Error('already aborted')) });
        expect(await canAcquire(b, lock, 3 * ttl)).toBe(true);
      });
      test('leave() with an aborted signal rejects with its reason, and the member does not stay listed: it expires with its TTL', async (_, group) => {
        const [a, b] = [await make(), await make()];
        const m1 = await a.join(group, 'm1', { ttlMs: ttl });
        await b.join(group, 'm2', { ttlMs: ttl });
        const reason = new Error('already aborted');
        expect(await rejectionOf(m1.leave({ signal: AbortSignal.abort(reason) }))).toBe(reason);
        expect(await soonOnlyM2(b, group)).toBe(true);
        await m1.leave();
        expect(await memberIds(b, group)).toEqual(['m2']);
      });
      test('leave() after a given-up one confirms; once left, an aborted signal changes nothing', async (_, group) => {
        const [a, b] = [await make(), await make()];
        const m1 = await a.join(group, 'm1', { ttlMs: 20 * ttl });
        const aborted = AbortSignal.abort(new Error('already aborted'));
        await rejectionOf(m1.leave({ signal: aborted }));
        await m1.leave({ signal: new AbortController().signal });
        expect(await memberIds(b, group)).toEqual([]);
        await m1.leave({ signal: aborted });
      });
    });

    describe('close', () => {
      test('is idempotent and never throws', async () => {
        const a = await make();
        await a.join(groupName(), 'm1', { ttlMs: ttl });
        await take(a, lockName());
        await expect(Promise.all([a.close(), a.close()])).resolves.toEqual([undefined, undefined]);
        await expect(a.close()).resolves.toBeUndefined();
      });
      test('afterwards, acquire, join and members reject with ClosedError (ERR_CLOSED)', async () => {
        const a = await make();
        await a.close();
        for (const call of [
          () => take(a, lockName()),
          () => a.join(groupName(), 'm1', { ttlMs: ttl }),
          () => a.members(groupName()),
        ]) {
          const error = await rejectionOf(call());
          expect(error).toBeInstanceOf(ClosedError);
          expect(error).toMatchObject({ code: 'ERR_CLOSED' });
        }
      });
      test("releases the instance's locks and memberships, so another instance takes the lock soon", async (lock, group) => {
        const [a, b] = [await make(), await make()];
        // long TTLs: only close() can free these within the checks below
        const lease = await take(a, lock, 20 * ttl);
        const membership = await a.join(group, 'm1', { ttlMs: 20 * ttl });
        await b.join(group, 'm2', { ttlMs: ttl });
        await a.close();
        // The holder is told: its signals abort (before another instance can take the lock).
        expect(lease.signal.aborted).toBe(true);
        expect(lease.signal.reason).toMatchObject({ code: 'ERR_LOCK_LOST' });
        expect(membership.signal.aborted).toBe(true);
        expect(membership.signal.reason).toMatchObject({ code: 'ERR_MEMBERSHIP_LOST' });
        expect(await canAcquire(b, lock, 3 * ttl)).toBe(true);
        expect(await soonOnlyM2(b, group)).toBe(true);
        await lease.release();
      });
    });
  });
}
