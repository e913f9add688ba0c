import type { Lease } from '../../coordinator.js';
import { LockLostError } from '../../errors.js';
import { type HoldContext, SqliteHold } from './hold.js';

/** A lock row held through a `SqliteCoordinator`, renewed every `ttlMs / 3`: the lease and its row. @internal */
export function sqliteLease(
  ctx: HoldContext,
  name: string,
  owner: string,
  token: bigint,
  ttlMs: number,
  sentAt: number,
): Lease {
  const quoted = JSON.stringify(name);
  const hold = new SqliteHold(ctx, {
    label: `lock ${quoted} token ${token}`,
    ttlMs,
    sentAt,
    renew: [
      `renew the lock ${quoted}`,
      (sql, wall) => sql.renewLock.run(Math.floor(wall + ttlMs), name, owner, wall).changes === 1,
    ],
    free: [`release the lock ${quoted}`, (sql) => sql.freeLock.run(name, owner)],
    lostError: (message, cause) =>
      new LockLostError(`The lock ${quoted} (token ${token}) ${message}`, { cause }),
    lossMessages: {
      gone: 'was taken over or freed',
      expired: 'could not be renewed before its deadline',
      closed: 'was released: the coordinator closed',
      unreleased: 'could not be released: it expires with its TTL',
    },
  });
  return hold.lease(name, token, (signal) => hold.giveBack(signal));
}
