import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import type { CoordinatorStatements } from './coordinator-sql.js';
import { type HoldContext, SqliteHold, SqliteHoldOptions } from './hold.js';

const LOSS_MESSAGES = Object.freeze({
  gone: 'was taken over or freed',
  expired: 'could not be renewed before its deadline',
  closed: 'was released: the coordinator closed',
  unreleased: 'could not be released: it expires with its TTL',
});

/** A lock row: renewed and freed while `owner` holds it. */
class LockRow extends SqliteHoldOptions {
  readonly #name: string;
  readonly #owner: string;
  readonly #token: bigint;

  constructor(ctx: HoldContext, name: string, owner: string, token: bigint, ttlMs: number, sentAt: number) {
    super(ctx, ttlMs, sentAt);
    this.#name = name;
    this.#owner = owner;
    this.#token = token;
  }

  get label(): string {
    return `lock ${JSON.stringify(this.#name)} token ${this.#token}`;
  }

  get lossMessages(): typeof LOSS_MESSAGES {
    return LOSS_MESSAGES;
  }

  lostError(message: string, cause?: unknown): Error {
    return new LockLostError(`The lock ${JSON.stringify(this.#name)} (token ${this.#token}) ${message}`, {
      cause,
    });
  }

  describe(write: 'renew' | 'free'): string {
    return `${write === 'renew' ? 'renew' : 'release'} the lock ${JSON.stringify(this.#name)}`;
  }

  renewRow(sql: CoordinatorStatements, wall: number): boolean {
    return sql.renewLock.run(Math.floor(wall + this.ttlMs), this.#name, this.#owner, wall).changes === 1;
  }

  freeRow(sql: CoordinatorStatements): unknown {
    return sql.freeLock.run(this.#name, this.#owner);
  }
}

/** A lock row held through a `SqliteCoordinator`, renewed every `ttlMs / 3`: the lease and its row. @internal */
export function sqliteLease(
  ctx: HoldContext,
  name: string,
  owner: string,
  token: bigint,
  ttlMs: number,
  sentAt: number,
): Lease {
  const hold = new SqliteHold(ctx, new LockRow(ctx, name, owner, token, ttlMs, sentAt));
  return hold.lease(name, token, (signal) => hold.giveBack(signal));
}
