import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator, Lease } from '../../coordinator.js';
import { ClosedError, LockTimeoutError } from '../../errors.js';
import { delay, now, randomId } from '../../internal/time.js';
import { checkOptionsObject, checkPositive } from '../../validate.js';

/** Options of {@link coordinatorContract}. */
export interface CoordinatorContractOptions {
  /**
   * Shown in the describe() title.
   * @defaultValue the coordinator's constructor name
   */
  readonly name?: string;
  /**
   * The TTL the suite uses for leases and memberships, in milliseconds. Waits scale with it.
   * @defaultValue 600
   */
  readonly ttlMs?: number;
}

const DEFAULT_TTL_MS = 600;

/** Waits until `check` holds, polling, for at most `ms`; returns whether it held. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = now() + ms;
  for (;;) {
    if (await check()) return true;
    if (now() >= deadline) return false;
    await delay(Math.min(25, ms / 10));
  }
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
  const ttl = o.ttlMs === undefined ? DEFAULT_TTL_MS : checkPositive('ttlMs', o.ttlMs);
  describe('Coordinator contract', async () => {
    let name = o.name as string | undefined;
    if (name === undefined) {
      const probe = await factory();
      name = probe.constructor.name;
      await probe.close();
    }
    describe(name, () => {
      const open: Coordinator[] = [];
      const make = async (): Promise<Coordinator> => {
        const c = await factory();
        open.push(c);
        return c;
      };
      const lockName = (): string => `gd-contract-lock-${randomId()}`;
      const groupName = (): string => `gd-contract-group-${randomId()}`;
      /** Whether `c` can take `lock` within `ms` (the lease is released at once). */
      const canAcquire = async (c: Coordinator, lock: string, ms: number): Promise<boolean> => {
        try {
          const lease = await c.acquire(lock, { ttlMs: ttl, timeoutMs: ms });
          await lease.release();
          return true;
        } catch (error) {
          if (error instanceof LockTimeoutError) return false;
          throw error;
        }
      };
      const memberIds = async (c: Coordinator, group: string): Promise<string[]> =>
        (await c.members(group)).map((m) => m.memberId).sort();

      afterEach(async () => {
        const closing = open.splice(0).map((c) => c.close());
        // close() never throws: a rejection here fails the test.
        await Promise.all(closing);
      });

      it('capabilities: scope, liveness and fencing are well-formed', async () => {
        const { capabilities } = await make();
        expect(['process', 'host', 'cluster']).toContain(capabilities.scope);
        expect(['ttl', 'connection']).toContain(capabilities.liveness);
        expect(['monotonic', 'best-effort', 'none']).toContain(capabilities.fencing);
      });

      describe('acquire', () => {
        it('resolves a Lease with a bigint token, a live signal and a deadline within ttlMs', async () => {
          const c = await make();
          const lock = lockName();
          const before = now();
          const lease = await c.acquire(lock, { ttlMs: ttl, timeoutMs: ttl });
          expect(lease.name).toBe(lock);
          expect(typeof lease.token).toBe('bigint');
          expect(lease.signal).toBeInstanceOf(AbortSignal);
          expect(lease.signal.aborted).toBe(false);
          expect(lease.deadline).toBeGreaterThan(before);
          expect(lease.deadline).toBeLessThanOrEqual(now() + ttl);
          await lease.release();
        });

        it('of a held lock rejects with LockTimeoutError after about timeoutMs, leaving no lock behind', async () => {
          const [a, b, c] = [await make(), await make(), await make()];
          const lock = lockName();
          const held = await a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl });
          const timeoutMs = Math.round(ttl / 2);
          const started = now();
          // a long TTL: were the failed attempt to leave a lock behind, it would outlive the check below
          const error = await rejectionOf(b.acquire(lock, { ttlMs: 20 * ttl, timeoutMs }));
          const elapsed = now() - started;
          expect(error).toBeInstanceOf(LockTimeoutError);
          expect(error).toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
          expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 5);
          expect(elapsed).toBeLessThan(timeoutMs + Math.max(1000, ttl));
          expect(held.signal.aborted).toBe(false);
          await held.release();
          expect(await canAcquire(c, lock, 3 * ttl)).toBe(true);
        });

        it('rejects with signal.reason when the signal is already aborted', async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const reason = new Error('already aborted');
          expect(
            await rejectionOf(
              a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl, signal: AbortSignal.abort(reason) }),
            ),
          ).toBe(reason);
          // nothing was taken
          expect(await canAcquire(b, lock, ttl)).toBe(true);
        });

        it('rejects with signal.reason as soon as the signal aborts while waiting, leaving no lock behind', async () => {
          const [a, b, c] = [await make(), await make(), await make()];
          const lock = lockName();
          const held = await a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl });
          const controller = new AbortController();
          const reason = new Error('cancelled');
          const waiting = rejectionOf(
            b.acquire(lock, { ttlMs: 20 * ttl, timeoutMs: 20 * ttl, signal: controller.signal }),
          );
          await delay(Math.round(ttl / 6));
          const abortedAt = now();
          controller.abort(reason);
          expect(await waiting).toBe(reason);
          expect(now() - abortedAt).toBeLessThan(Math.max(500, ttl));
          await held.release();
          expect(await canAcquire(c, lock, 3 * ttl)).toBe(true);
        });

        it('takes a lock another instance released, with a strictly greater token unless fencing is none', async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const tokens: bigint[] = [];
          for (const c of [a, b, a, b]) {
            const lease = await c.acquire(lock, { ttlMs: ttl, timeoutMs: 3 * ttl });
            tokens.push(lease.token);
            await lease.release();
          }
          if (a.capabilities.fencing !== 'none') {
            for (let i = 1; i < tokens.length; i++) {
              expect(tokens[i] as bigint).toBeGreaterThan(tokens[i - 1] as bigint);
            }
          }
        });

        it('a waiter gets the lock soon after the holder releases it', async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const held = await a.acquire(lock, { ttlMs: 20 * ttl, timeoutMs: ttl });
          const waiting = b.acquire(lock, { ttlMs: ttl, timeoutMs: 10 * ttl });
          await delay(Math.round(ttl / 6));
          const releasedAt = now();
          await held.release();
          const lease = await waiting;
          // well before the holder's TTL could have run out: the release freed it
          expect(now() - releasedAt).toBeLessThan(5 * ttl);
          if (a.capabilities.fencing !== 'none') expect(lease.token).toBeGreaterThan(held.token);
          await lease.release();
        });

        it('locks of different names are independent', async () => {
          const [a, b] = [await make(), await make()];
          const held = await a.acquire(lockName(), { ttlMs: ttl, timeoutMs: ttl });
          expect(await canAcquire(b, lockName(), ttl)).toBe(true);
          await held.release();
        });
      });

      describe('Lease', () => {
        it('release() is idempotent and owner-checked: an old lease never frees the next holder', async () => {
          const [a, b, c] = [await make(), await make(), await make()];
          const lock = lockName();
          const old = await a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl });
          await old.release();
          await old.release();
          const current = await b.acquire(lock, { ttlMs: ttl, timeoutMs: 3 * ttl });
          await old.release();
          expect(await canAcquire(c, lock, Math.round(ttl / 2))).toBe(false);
          expect(current.signal.aborted).toBe(false);
          await current.release();
          await current.release();
          expect(await canAcquire(c, lock, 3 * ttl)).toBe(true);
        });

        it('survives well past ttlMs while held (renewal), its signal un-aborted', async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const lease = await a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl });
          await delay(2.5 * ttl);
          expect(lease.signal.aborted).toBe(false);
          expect(await canAcquire(b, lock, 0)).toBe(false);
          expect(lease.deadline).toBeGreaterThan(now());
          await lease.release();
        });
      });

      describe('join and members', () => {
        it('join resolves a Membership with a fresh incarnation each time', async () => {
          const [a, b] = [await make(), await make()];
          const group = groupName();
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

        it('join rejects with signal.reason when the signal is already aborted, joining nothing', async () => {
          const a = await make();
          const group = groupName();
          const reason = new Error('already aborted');
          const signal = AbortSignal.abort(reason);
          expect(await rejectionOf(a.join(group, 'm1', { ttlMs: ttl, signal }))).toBe(reason);
          expect(await memberIds(a, group)).toEqual([]);
        });

        it('members() lists the joined members, from every instance, with their incarnation', async () => {
          const [a, b, c] = [await make(), await make(), await make()];
          const group = groupName();
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

        it('members() gives expiresInMs (0 < expiresInMs <= ttlMs) when liveness is ttl, and ttlMs when recorded', async () => {
          const a = await make();
          const group = groupName();
          await a.join(group, 'm1', { ttlMs: ttl });
          const [info] = await a.members(group);
          if (info?.ttlMs !== undefined) expect(info.ttlMs).toBe(ttl);
          if (a.capabilities.liveness !== 'ttl') return;
          expect(typeof info?.expiresInMs).toBe('number');
          expect(info?.expiresInMs).toBeGreaterThan(0);
          expect(info?.expiresInMs).toBeLessThanOrEqual(ttl);
        });

        it('a membership survives well past ttlMs (heartbeats), its signal un-aborted', async () => {
          const [a, b] = [await make(), await make()];
          const group = groupName();
          const m = await a.join(group, 'm1', { ttlMs: ttl });
          await delay(2.5 * ttl);
          expect(m.signal.aborted).toBe(false);
          expect(await memberIds(b, group)).toEqual(['m1']);
        });

        it('leave() resolves once members() no longer lists the member; it is idempotent', async () => {
          const [a, b] = [await make(), await make()];
          const group = groupName();
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
        it('members() rejects with the reason of an already aborted signal; a live one changes nothing', async () => {
          const a = await make();
          const group = groupName();
          await a.join(group, 'm1', { ttlMs: ttl });
          const reason = new Error('already aborted');
          expect(await rejectionOf(a.members(group, { signal: AbortSignal.abort(reason) }))).toBe(reason);
          const { signal } = new AbortController();
          expect((await a.members(group, { signal })).map((m) => m.memberId)).toEqual(['m1']);
        });

        it('release() with an aborted signal rejects with its reason, and the lock does not stay held: it expires with its TTL', async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const lease = await a.acquire(lock, { ttlMs: ttl, timeoutMs: ttl });
          const reason = new Error('already aborted');
          expect(await rejectionOf(lease.release({ signal: AbortSignal.abort(reason) }))).toBe(reason);
          // given up: either freed already, or no longer renewed, so free within about one TTL
          const next = await b.acquire(lock, { ttlMs: ttl, timeoutMs: 3 * ttl });
          if (b.capabilities.fencing !== 'none') expect(next.token).toBeGreaterThan(lease.token);
          // a later release of the old lease is harmless: owner-checked, it never frees the next holder
          await lease.release();
          expect(await canAcquire(a, lock, Math.round(ttl / 2))).toBe(false);
          await next.release();
        });

        it('release() with a live signal releases; once released, an aborted signal changes nothing', async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const lease = await a.acquire(lock, { ttlMs: 20 * ttl, timeoutMs: ttl });
          await lease.release({ signal: new AbortController().signal });
          await lease.release({ signal: AbortSignal.abort(new Error('already aborted')) });
          expect(await canAcquire(b, lock, 3 * ttl)).toBe(true);
        });

        it('leave() with an aborted signal rejects with its reason, and the member does not stay listed: it expires with its TTL', async () => {
          const [a, b] = [await make(), await make()];
          const group = groupName();
          const m1 = await a.join(group, 'm1', { ttlMs: ttl });
          await b.join(group, 'm2', { ttlMs: ttl });
          const reason = new Error('already aborted');
          expect(await rejectionOf(m1.leave({ signal: AbortSignal.abort(reason) }))).toBe(reason);
          const gone = await eventually(async () => (await memberIds(b, group)).join() === 'm2', 3 * ttl);
          expect(gone).toBe(true);
          await m1.leave();
          expect(await memberIds(b, group)).toEqual(['m2']);
        });

        it('leave() after a given-up one confirms; once left, an aborted signal changes nothing', async () => {
          const [a, b] = [await make(), await make()];
          const group = groupName();
          const m1 = await a.join(group, 'm1', { ttlMs: 20 * ttl });
          const aborted = AbortSignal.abort(new Error('already aborted'));
          await rejectionOf(m1.leave({ signal: aborted }));
          await m1.leave({ signal: new AbortController().signal });
          expect(await memberIds(b, group)).toEqual([]);
          await m1.leave({ signal: aborted });
        });
      });

      describe('close', () => {
        it('is idempotent and never throws', async () => {
          const a = await make();
          await a.join(groupName(), 'm1', { ttlMs: ttl });
          await a.acquire(lockName(), { ttlMs: ttl, timeoutMs: ttl });
          await expect(Promise.all([a.close(), a.close()])).resolves.toEqual([undefined, undefined]);
          await expect(a.close()).resolves.toBeUndefined();
        });

        it('afterwards, acquire, join and members reject with ClosedError (ERR_CLOSED)', async () => {
          const a = await make();
          await a.close();
          for (const call of [
            () => a.acquire(lockName(), { ttlMs: ttl, timeoutMs: ttl }),
            () => a.join(groupName(), 'm1', { ttlMs: ttl }),
            () => a.members(groupName()),
          ]) {
            const error = await rejectionOf(call());
            expect(error).toBeInstanceOf(ClosedError);
            expect(error).toMatchObject({ code: 'ERR_CLOSED' });
          }
        });

        it("releases the instance's locks and memberships, so another instance takes the lock soon", async () => {
          const [a, b] = [await make(), await make()];
          const lock = lockName();
          const group = groupName();
          // long TTLs: only close() can free these within the checks below
          const lease: Lease = await a.acquire(lock, { ttlMs: 20 * ttl, timeoutMs: ttl });
          const membership = await a.join(group, 'm1', { ttlMs: 20 * ttl });
          await b.join(group, 'm2', { ttlMs: ttl });
          await a.close();
          // The holder is told: its signals abort (before another instance can take the lock).
          expect(lease.signal.aborted).toBe(true);
          expect(lease.signal.reason).toMatchObject({ code: 'ERR_LOCK_LOST' });
          expect(membership.signal.aborted).toBe(true);
          expect(membership.signal.reason).toMatchObject({ code: 'ERR_MEMBERSHIP_LOST' });
          expect(await canAcquire(b, lock, 3 * ttl)).toBe(true);
          const gone = await eventually(async () => (await memberIds(b, group)).join() === 'm2', 3 * ttl);
          expect(gone).toBe(true);
          await lease.release();
        });
      });
    });
  });
}
