import type { Membership } from '../../coordinator.js';
import { MembershipLostError } from '../../errors.js';
import type { CoordinatorStatements } from './coordinator-sql.js';
import { type HoldContext, SqliteHold, SqliteHoldOptions } from './hold.js';

const LOSS_MESSAGES = Object.freeze({
  gone: 'was removed or expired',
  expired: 'could not be renewed before its deadline',
  closed: 'was left: the coordinator closed',
  unreleased: 'could not be left: it expires with its TTL',
});

/** A member row: its heartbeat and its removal, for this incarnation only. */
class MemberRow extends SqliteHoldOptions {
  readonly #group: string;
  readonly #memberId: string;
  readonly #incarnation: string;

  constructor(
    ctx: HoldContext,
    group: string,
    memberId: string,
    incarnation: string,
    ttlMs: number,
    sentAt: number,
  ) {
    super(ctx, ttlMs, sentAt);
    this.#group = group;
    this.#memberId = memberId;
    this.#incarnation = incarnation;
  }

  get #who(): string {
    return `${JSON.stringify(this.#memberId)} of ${JSON.stringify(this.#group)}`;
  }

  get label(): string {
    return `member ${this.#who}`;
  }

  get lossMessages(): typeof LOSS_MESSAGES {
    return LOSS_MESSAGES;
  }

  lostError(message: string, cause?: unknown): Error {
    return new MembershipLostError(`The membership ${this.#who} ${message}`, { cause });
  }

  describe(write: 'renew' | 'free'): string {
    return write === 'renew'
      ? `renew the membership ${this.#who}`
      : `leave the group ${JSON.stringify(this.#group)}`;
  }

  renewRow(sql: CoordinatorStatements, wall: number): boolean {
    const expiresAt = Math.floor(wall + this.ttlMs);
    return sql.heartbeat.run(expiresAt, this.#group, this.#memberId, this.#incarnation, wall).changes === 1;
  }

  freeRow(sql: CoordinatorStatements): unknown {
    return sql.removeMember.run(this.#group, this.#memberId, this.#incarnation);
  }
}

/** A member row held through a `SqliteCoordinator`, a heartbeat every `ttlMs / 3`. @internal */
export function sqliteMembership(
  ctx: HoldContext,
  group: string,
  memberId: string,
  incarnation: string,
  ttlMs: number,
  sentAt: number,
): Membership {
  const hold = new SqliteHold(ctx, new MemberRow(ctx, group, memberId, incarnation, ttlMs, sentAt));
  return hold.membership(group, memberId, incarnation, (signal) => hold.giveBack(signal));
}
