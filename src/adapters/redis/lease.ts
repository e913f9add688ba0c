import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import type { LossReason } from '../../internal/keep-alive.js';
import { now, randomId } from '../../internal/time.js';
import { type HoldContext, RedisHold, RedisHoldOptions } from './hold.js';
import { type LockKeys, RELEASE, RENEW } from './scripts.js';
import { type Cleanup, type Command, debug, describeError } from './session.js';

/** One try at a lock: its name and keys, a fresh owner id, the TTL, and its owner-checked delete. @internal */
export type LockTry = {
  readonly name: string;
  readonly keys: LockKeys;
  readonly owner: string;
  readonly ttlMs: number;
  readonly release: Command;
};

/** A try at the lock `name` with a fresh owner id. @internal */
export function lockTry(name: string, keys: LockKeys, ttlMs: number): LockTry {
  const owner = randomId();
  return { name, keys, owner, ttlMs, release: [RELEASE, keys.owner, [owner]] };
}

/** The owner-checked delete of a lock, as a clean-up (its message made only when logged). */
class LockRelease implements Cleanup {
  readonly command: Command;
  readonly until: number;
  readonly #name: string;

  constructor(lock: LockTry) {
    this.command = lock.release;
    this.until = now() + lock.ttlMs;
    this.#name = lock.name;
  }

  get what(): string {
    return `release lock "${this.#name}"`;
  }
}

/** The owner-checked delete of a lock, as a clean-up. @internal */
export function releaseCleanup(lock: LockTry): Cleanup {
  return new LockRelease(lock);
}

const LOSS_MESSAGES: Readonly<Record<LossReason, string>> = Object.freeze({
  expired: 'it could not be renewed before its local deadline',
  gone: 'Redis no longer holds it for this lease (it expired or was deleted)',
});

/** A lease's hold: everything it needs is the lock, its token and the session. */
class LeaseOptions extends RedisHoldOptions {
  readonly #lock: LockTry;
  readonly #token: bigint;

  constructor(ctx: HoldContext, lock: LockTry, token: bigint, sentAt: number) {
    super(ctx, lock.ttlMs, sentAt);
    this.#lock = lock;
    this.#token = token;
  }

  get label(): string {
    return `lease "${this.#lock.name}" (token ${this.#token})`;
  }

  get lossMessages(): Readonly<Record<LossReason, string>> {
    return LOSS_MESSAGES;
  }

  lostError(message: string): Error {
    return new LockLostError(`The lock "${this.#lock.name}" was lost: ${message}`);
  }

  protected get renewal(): Command {
    const { keys, owner, ttlMs } = this.#lock;
    return [RENEW, keys.owner, [owner, ttlMs]];
  }

  cleanup(): Cleanup {
    return releaseCleanup(this.#lock);
  }
}

/** A lease's hold, and its release. */
class LeaseHold extends RedisHold {
  readonly #ctx: HoldContext;
  readonly #lock: LockTry;

  constructor(ctx: HoldContext, lock: LockTry, token: bigint, sentAt: number) {
    super(ctx, new LeaseOptions(ctx, lock, token, sentAt));
    this.#ctx = ctx;
    this.#lock = lock;
  }

  #givenUp(signal: AbortSignal): unknown {
    debug('%s: release given up, it expires with its TTL', this.label);
    return signal.reason;
  }

  async release(signal: AbortSignal | undefined): Promise<void> {
    if (this.state === 'lost' || this.done) return;
    this.give();
    if (signal?.aborted) throw this.#givenUp(signal);
    const { session } = this.#ctx;
    try {
      await session.send(this.#lock.release, now() + session.timeoutMs, session.noAnswer, signal);
      if (debug.enabled) debug('%s released', this.label);
    } catch (error) {
      if (signal?.aborted) throw this.#givenUp(signal);
      debug('%s: release failed, retrying later: %s', this.label, describeError(error));
      session.cleanup(releaseCleanup(this.#lock));
    }
    this.done = true;
  }
}

/**
 * A lock held through a `RedisCoordinator`. `release()` deletes it if this lease still owns it; when Redis
 * cannot be reached, the delete is retried on the next connection and it resolves. With its `signal`
 * aborted the release is given up: it rejects with `signal.reason` and nothing more is sent (the lock
 * expires with its TTL); a later call tries again. See docs/adapters/redis.md.
 * @internal
 */
export function redisLease(ctx: HoldContext, lock: LockTry, token: bigint, sentAt: number): Lease {
  const hold = new LeaseHold(ctx, lock, token, sentAt);
  return hold.lease(lock.name, token, (signal) => hold.release(signal));
}
