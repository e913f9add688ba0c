import type {
  AcquireOptions,
  Coordinator,
  CoordinatorCallOptions,
  CoordinatorCapabilities,
  JoinOptions,
  Lease,
  MemberInfo,
  Membership,
} from '../../coordinator.js';
import { ClosedError, CoordinatorUnavailableError, LockTimeoutError } from '../../errors.js';
import { checkAcquire, checkJoin, checkMembers } from '../../internal/coordinator-args.js';
import { safetyMarginOf } from '../../internal/keep-alive.js';
import { delay, linkSignals, now, randomId } from '../../internal/time.js';
import { checkPositive, invalid } from '../../validate.js';
import type { HoldContext } from './hold.js';
import { lockTry, redisLease, releaseCleanup } from './lease.js';
import { leaveCleanup, redisMembership } from './membership.js';
import { compileCoordinatorOptions, type RedisCoordinatorOptions } from './options.js';
import { ACQUIRE, groupKeys, JOIN, lockKeys, MEMBERS, memberRecord, parseMemberRecord } from './scripts.js';
import { type Cleanup, debug, describeError, isTransient, RedisSession } from './session.js';

// The wait between two tries of a held lock doubles up to the cap, with jitter. The first try may take
// FIRST_TRY_MS even when `timeoutMs` is shorter (a try-lock). close() waits CLOSE_TIMEOUT_MS at most.
const FIRST_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 200;
const FIRST_TRY_MS = 500;
const CLOSE_TIMEOUT_MS = 2000;
/** The shortest TTL accepted: below it the safety margin leaves no room for a renewal. */
const MIN_TTL_MS = 100;
const TIMED_OUT = Symbol('timed out');

// PX takes whole milliseconds; the local deadline is computed from the same whole number.
const timedOut = (): unknown => TIMED_OUT;

/**
 * Why an acquire gave up at its deadline: the lock is held (`LockTimeoutError`), or, never told so, Redis
 * did not answer at all (`CoordinatorUnavailableError`, with the last error met), which is not a timeout
 * on the lock.
 */
function expired(name: string, timeoutMs: number, held: boolean, lastError: unknown): Error {
  const message = `The lock "${name}" could not be acquired within ${timeoutMs} ms`;
  if (held) return new LockTimeoutError(message);
  const last = lastError === undefined ? '' : ` (${describeError(lastError)})`;
  return new CoordinatorUnavailableError(`${message}: Redis did not answer${last}`, { cause: lastError });
}

function checkTtl(value: unknown): number {
  const ttlMs = Math.floor(checkPositive('ttlMs', value));
  if (ttlMs < MIN_TTL_MS) invalid('ttlMs', `at least ${MIN_TTL_MS} (milliseconds)`, value);
  return ttlMs;
}

/**
 * A {@link Coordinator} on Redis (ioredis 5 or later), for members on any number of machines. Locks are
 * owner keys with a TTL and a fencing counter; groups are sorted sets scored by expiry on the server's
 * clock; leases and memberships renew every `ttlMs / 3` and end when the coordinator's own connection
 * closes. See docs/adapters/redis.md.
 *
 * `capabilities`: `{ scope: 'cluster', liveness: 'ttl', fencing }`, `fencing` being `'monotonic'`
 * with `persistence: 'sync'` and `'best-effort'` otherwise.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * import { DrainController } from 'graceful-drain';
 * import { RedisCoordinator } from 'graceful-drain/redis';
 *
 * const redis = new Redis(process.env.REDIS_URL);
 * const coordinator = new RedisCoordinator({ client: redis }); // its own connection; never closes `redis`
 * const drain = new DrainController({ group: 'workflow-engine', coordinator, store });
 * ```
 */
export class RedisCoordinator implements Coordinator {
  /** `{ scope: 'cluster', liveness: 'ttl', fencing: 'monotonic' | 'best-effort' }`. */
  readonly capabilities: CoordinatorCapabilities;
  readonly #keyPrefix: string;
  readonly #session: RedisSession;
  readonly #closing = new AbortController();
  /** Undos of the scripts in flight: close() sends them, as the callers may not get the chance. */
  readonly #pending = new Set<Cleanup>();
  readonly #context: HoldContext;
  #closed: Promise<void> | undefined;

  /**
   * @throws ConfigurationError when the options are invalid (unknown names, both or neither of
   *   `client` and `url`, a `Cluster` client, a `keyPrefix` with braces).
   */
  constructor(options: RedisCoordinatorOptions) {
    const compiled = compileCoordinatorOptions(options);
    this.capabilities = Object.freeze({ scope: 'cluster', liveness: 'ttl', fencing: compiled.fencing });
    this.#keyPrefix = compiled.keyPrefix;
    this.#session = new RedisSession(compiled);
    this.#context = { session: this.#session, holds: new Set() };
  }

  /**
   * Takes the lock `name`, retrying until `timeoutMs` has passed. Rejects, leaving no lock behind, with
   * `LockTimeoutError` (held), `CoordinatorUnavailableError` (Redis unreachable or refusing),
   * `signal.reason` or `ClosedError`.
   */
  async acquire(name: string, options: AcquireOptions): Promise<Lease> {
    this.#checkOpen();
    const { ttlMs, timeoutMs, signal } = checkAcquire(name, options, checkTtl);
    // Without a signal of the caller's, the coordinator's own is the only one: nothing to link.
    const link = signal === undefined ? undefined : linkSignals(signal, this.#closing.signal);
    const cancel = link === undefined ? this.#closing.signal : link.signal;
    try {
      const keys = lockKeys(this.#keyPrefix, name);
      const start = now();
      const deadline = start + timeoutMs;
      let backoff = FIRST_BACKOFF_MS;
      let held = false;
      let lastError: unknown;
      let tryUntil = Math.max(deadline, start + Math.min(FIRST_TRY_MS, this.#session.timeoutMs));
      for (; ; tryUntil = deadline) {
        try {
          if (!this.#session.isReady) await this.#session.ready(tryUntil, cancel);
        } catch (error) {
          if (cancel.aborted) throw cancel.reason;
          if (!(error instanceof CoordinatorUnavailableError)) throw error; // MissingDriverError
          throw expired(name, timeoutMs, held, error.cause ?? error);
        }
        const lock = lockTry(name, keys, ttlMs);
        const undo = releaseCleanup(lock);
        const epoch = this.#session.epoch;
        const sentAt = now();
        let reply: unknown;
        this.#pending.add(undo);
        try {
          // The coordinator's close() fails it through the session; the caller's signal, here.
          const command = [ACQUIRE, keys.acquire, [lock.owner, ttlMs]] as const;
          reply = await this.#session.send(command, tryUntil, timedOut, signal);
        } catch (error) {
          // The script may have run, or may still run: the owner-checked delete queued behind it undoes it.
          this.#session.cleanup(undo);
          if (cancel.aborted) throw cancel.reason;
          if (error === TIMED_OUT) throw expired(name, timeoutMs, held, lastError);
          if (!isTransient(error)) {
            const message = `Redis refused to acquire "${name}": ${describeError(error)}`;
            throw new CoordinatorUnavailableError(message, { cause: error });
          }
          lastError = error;
        } finally {
          this.#pending.delete(undo);
        }
        if (typeof reply === 'string') {
          if (this.#closing.signal.aborted) {
            // close() ran while the reply was on its way: it has queued this undo already, and the lease
            // would outlive its lock. Queued again, the owner-checked delete is harmless.
            this.#session.cleanup(undo);
            throw new ClosedError('The RedisCoordinator was closed while the lock was acquired');
          }
          if (epoch === this.#session.epoch && now() < sentAt + ttlMs - safetyMarginOf(ttlMs)) {
            const token = BigInt(reply);
            const lease = redisLease(this.#context, lock, token, sentAt);
            if (debug.enabled) debug('lease %s acquired (token %s)', name, token);
            return lease;
          }
          // Taken on a connection that has closed since, or answered too late to be of use: give it back.
          this.#session.cleanup(undo);
        }
        // Equal jitter (a random point in the upper half): spreads waiters yet keeps the backoff growing.
        let wait = backoff / 2 + Math.random() * (backoff / 2);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        if (typeof reply === 'number') {
          held = true;
          // Wake when the holder's TTL runs out: a crashed holder frees the lock without any event.
          if (reply >= 0) wait = Math.min(wait, reply + 1);
        }
        const remaining = deadline - now();
        if (remaining <= 0) throw expired(name, timeoutMs, held, lastError);
        await delay(Math.min(wait, remaining), cancel);
      }
    } finally {
      link?.dispose();
    }
  }

  /**
   * Joins `group` as `memberId` with a fresh incarnation, replacing (and so ending) a member of that id.
   * Rejects with `CoordinatorUnavailableError` (no answer within `commandTimeoutMs`), `signal.reason`
   * or `ClosedError`.
   */
  async join(group: string, memberId: string, options: JoinOptions): Promise<Membership> {
    this.#checkOpen();
    const { ttlMs, signal } = checkJoin(group, memberId, options, checkTtl);
    const keys = groupKeys(this.#keyPrefix, group);
    const member = { group, keys, memberId, incarnation: randomId(), ttlMs };
    const record = memberRecord(member.incarnation, ttlMs);
    const undo = leaveCleanup(member);
    const what = `add member "${memberId}" to group "${group}"`;
    this.#pending.add(undo);
    let sentAt;
    const link = linkSignals(signal, this.#closing.signal);
    try {
      const result = await this.#session.call([JOIN, keys, [memberId, record, ttlMs]], what, link.signal);
      // close() ran while the reply was on its way: it has removed the member already.
      if (this.#closing.signal.aborted) {
        throw new ClosedError(`The RedisCoordinator was closed while "${memberId}" joined "${group}"`);
      }
      if (result.epoch !== this.#session.epoch) {
        throw new CoordinatorUnavailableError(
          `The connection to Redis closed while "${memberId}" joined "${group}"`,
        );
      }
      sentAt = result.sentAt;
    } catch (error) {
      this.#session.cleanup(undo);
      throw error;
    } finally {
      link.dispose();
      this.#pending.delete(undo);
    }
    const membership = redisMembership(this.#context, member, sentAt);
    debug('member %s joined %s (%s)', memberId, group, member.incarnation);
    return membership;
  }

  /**
   * Lists the live members of `group`, soonest expiry first (server clock), removing the expired ones.
   * Rejects like {@link RedisCoordinator.join}.
   */
  async members(group: string, options?: CoordinatorCallOptions): Promise<readonly MemberInfo[]> {
    this.#checkOpen();
    const link = linkSignals(checkMembers(group, options), this.#closing.signal);
    const signal = link.signal;
    try {
      const keys = groupKeys(this.#keyPrefix, group);
      const what = `list the members of group "${group}"`;
      const { reply } = await this.#session.call([MEMBERS, keys, []], what, signal);
      const flat = reply as readonly (string | number)[];
      const members: MemberInfo[] = [];
      for (let i = 0; i + 2 < flat.length; i += 3) {
        const { incarnation, ttlMs } = parseMemberRecord(String(flat[i + 2]));
        members.push({ memberId: String(flat[i]), incarnation, expiresInMs: Number(flat[i + 1]), ttlMs });
      }
      return members;
    } finally {
      link.dispose();
    }
  }

  /**
   * Aborts the signals of its leases and memberships, releases and leaves what they held, waits up to
   * 2 s for Redis, and closes its own connection (never the client given). Idempotent; never throws.
   */
  close(): Promise<void> {
    return (this.#closed ??= this.#close());
  }

  async #close(): Promise<void> {
    try {
      const closed = new ClosedError('The RedisCoordinator was closed');
      this.#closing.abort(closed);
      this.#session.failWaiting(closed);
      for (const hold of [...this.#context.holds]) hold.lost('the coordinator was closed');
      for (const undo of this.#pending) this.#session.cleanup(undo);
      this.#pending.clear();
      await this.#session.close(CLOSE_TIMEOUT_MS);
      debug('coordinator closed');
    } catch (error) {
      debug('close failed: %s', describeError(error));
    }
  }

  #checkOpen(): void {
    if (this.#closing.signal.aborted) throw new ClosedError('The RedisCoordinator is closed');
  }
}
