import { createHash } from 'node:crypto';
import createDebug from 'debug';
import { pEvent, TimeoutError } from 'p-event';
import { ClosedError, CoordinatorUnavailableError, GracefulDrainError } from '../../errors.js';
import { bounded, now } from '../../internal/time.js';
import { loadRedis, type Redis, type RedisOptions } from './driver.js';
import type { CompiledCoordinatorOptions } from './options.js';

/** The adapter's debug log. @internal */
export const debug = createDebug('graceful-drain:redis');

/** The most clean-ups kept while the connection is down; they expire with their TTL anyway. */
const MAX_ORPHANS = 1000;
/**
 * Reply errors after which a later try can succeed (failover, loading, busy script, cluster churn, a
 * script cache flushed: the next try sends the script itself).
 */
const TRANSIENT_REPLY = /^(READONLY|LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|NOREPLICAS|NOSCRIPT)\b/;

/** The SHA1 digests of the scripts, as `EVALSHA` takes them. */
const digests = new Map<string, string>();
function digestOf(script: string): string {
  let sha = digests.get(script);
  if (sha === undefined) digests.set(script, (sha = createHash('sha1').update(script).digest('hex')));
  return sha;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

// Our connection never runs a command after its promise has settled: no offline queue, no resend after a
// reconnect, and the commands in flight are rejected as soon as it drops.
const CONNECTION: RedisOptions = Object.freeze({
  lazyConnect: true,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
  commandTimeout: undefined,
  enableAutoPipelining: false,
  keyPrefix: '',
  readOnly: false,
  monitor: false,
});

/**
 * A command of {@link RedisSession.send} waiting for its answer until `deadline` (`now()` clock): one object
 * per command, which is also its signal's abort listener (`handleEvent`), in place of a closure for each
 * way it can end.
 */
class Waiting {
  readonly deadline: number;
  readonly #waiting: Set<Waiting>;
  readonly #onTimeout: () => unknown;
  readonly #signal: AbortSignal | undefined;
  readonly #resolve: (reply: unknown) => void;
  readonly #reject: (reason: unknown) => void;

  constructor(
    waiting: Set<Waiting>,
    deadline: number,
    onTimeout: () => unknown,
    signal: AbortSignal | undefined,
    resolve: (reply: unknown) => void,
    reject: (reason: unknown) => void,
  ) {
    this.deadline = deadline;
    this.#waiting = waiting;
    this.#onTimeout = onTimeout;
    this.#signal = signal;
    this.#resolve = resolve;
    this.#reject = reject;
    waiting.add(this);
    signal?.addEventListener('abort', this, { once: true });
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.fail(this.#signal?.reason);
  }

  /** Stops waiting: rejects with `reason` (by default `onTimeout()`). */
  fail(reason: unknown = this.#onTimeout()): void {
    this.#settle();
    this.#reject(reason);
  }

  answered(reply: unknown): void {
    this.#settle();
    this.#resolve(reply);
  }

  #settle(): void {
    this.#waiting.delete(this);
    this.#signal?.removeEventListener('abort', this);
  }
}

/** A script, its keys and its arguments. @internal */
export type Command = readonly [script: string, keys: readonly string[], args: readonly (string | number)[]];
/** A reply, when its command was sent (`now()` clock) and on which connection `epoch`. @internal */
export type Sent = { readonly reply: unknown; readonly sentAt: number; readonly epoch: number };

/**
 * An owner-checked undo (release a lock, leave a group) that must reach the server even while the
 * connection is down: sent once it is back, until `until` (`now()` clock); then `onDone`. `what`
 * names it in messages and the debug log. @internal
 */
export type Cleanup = {
  readonly what: string;
  readonly command: Command;
  readonly until: number;
  readonly onDone?: (() => void) | undefined;
};

/** A short, secret-free description of an error. @internal */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True unless the server answered with an error that a retry will not change. @internal */
export function isTransient(error: unknown): boolean {
  return !(error instanceof Error) || error.name !== 'ReplyError' || TRANSIENT_REPLY.test(error.message);
}

/**
 * The coordinator's own connection, as a sequence of sessions: when it closes, the `epoch` moves on and
 * the leases and memberships made on it end (their watchers are told); the clean-ups that could not be
 * sent are sent once a new connection is ready.
 * @internal
 */
export class RedisSession {
  /** Told when the current connection closes; cleared then. */
  readonly watchers = new Set<{ sessionLost(): void }>();
  /** How long one operation may wait for the connection and an answer. */
  readonly timeoutMs: number;
  /** The error of a command not answered within {@link RedisSession.timeoutMs} (an `onTimeout` of `send`). */
  readonly noAnswer: () => Error;
  readonly #options: CompiledCoordinatorOptions;
  #orphans: Cleanup[] = [];
  #redis: Redis | undefined;
  #creating: Promise<Redis> | undefined;
  /** The scripts the server has cached, as far as this connection knows: sent with `EVALSHA`. */
  readonly #cached = new Set<string>();
  /** The commands of {@link RedisSession.send} waiting for their answer, watched by one timer. */
  readonly #waiting = new Set<Waiting>();
  #watchTimer: NodeJS.Timeout | undefined;
  #watchAt = Infinity;
  #epoch = 0;
  #lastError: unknown;
  #closed = false;

  /** Starts connecting in the background; a failure (a missing driver) surfaces at the first call. */
  constructor(options: CompiledCoordinatorOptions) {
    this.#options = options;
    this.timeoutMs = options.commandTimeoutMs;
    this.noAnswer = () => new Error(`no answer within ${this.timeoutMs} ms`);
    this.#client().then(
      (redis) => {
        if (redis.status === 'wait' && !this.#closed) redis.connect().catch(() => {});
      },
      () => {},
    );
  }

  /** Incremented every time the connection closes. */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Resolves once the connection is ready (connecting it when needed). Rejects with `signal.reason`,
   * `ClosedError` after `close()`, or `CoordinatorUnavailableError` at `deadline` (`now()` clock) or
   * when the driver gives up reconnecting.
   */
  async ready(deadline: number, signal?: AbortSignal): Promise<Redis> {
    signal?.throwIfAborted();
    if (this.#closed) throw new ClosedError('The RedisCoordinator is closed');
    const redis = await this.#client();
    if (redis.status === 'ready') return redis;
    if (redis.status === 'wait' || redis.status === 'end') redis.connect().catch(() => {});
    try {
      const timeout = Math.max(0, deadline - now());
      await pEvent(redis, 'ready', { rejectionEvents: ['end'], timeout, signal });
      return redis;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (this.#closed) throw new ClosedError('The RedisCoordinator is closed');
      const why =
        error instanceof TimeoutError
          ? 'the connection was not ready in time'
          : 'the driver stopped reconnecting';
      const last = this.#lastError === undefined ? '' : ` (last error: ${describeError(this.#lastError)})`;
      throw new CoordinatorUnavailableError(`Redis could not be reached: ${why}${last}`, {
        cause: this.#lastError,
      });
    }
  }

  /** Whether the connection is ready for a command now (no wait needed). */
  get isReady(): boolean {
    return this.#redis?.status === 'ready' && !this.#closed;
  }

  /**
   * Runs a script on the current connection; rejects at once when it is not ready. The first run of a
   * script on a connection sends it whole (`EVAL`, which caches it on the server); later runs send its
   * digest (`EVALSHA`). A `NOSCRIPT` answer (the cache was flushed) rejects, transient, and the next run
   * sends the script whole: it is never resent here, since the caller may have given up on it and queued
   * an undo behind it.
   */
  eval(...command: Command): Promise<unknown> {
    const sha = digestOf(command[0]);
    const epoch = this.#epoch;
    return this.#eval(command, sha).then(
      (reply) => {
        this.#answered(sha, epoch);
        return reply;
      },
      (error: unknown) => {
        this.#refused(sha, error);
        throw error;
      },
    );
  }

  /** Sends `command` (its script's digest `sha`) as EVALSHA when the script is cached, else as EVAL. */
  #eval([script, keys, args]: Command, sha: string): Promise<unknown> {
    if (this.#closed) return Promise.reject(new ClosedError('The RedisCoordinator is closed'));
    const redis = this.#redis;
    if (redis === undefined) return Promise.reject(new Error('Not connected'));
    if (this.#cached.has(sha)) return redis.evalsha(sha, keys.length, ...keys, ...args);
    return redis.eval(script, keys.length, ...keys, ...args);
  }

  /** A script ran: the server has it cached, if this is still the connection it was sent on. */
  #answered(sha: string, epoch: number): void {
    if (epoch === this.#epoch) this.#cached.add(sha);
  }

  /** A script was refused: NOSCRIPT means the server's cache was flushed, so the next run sends it whole. */
  #refused(sha: string, error: unknown): void {
    if (isNoScript(error)) this.#cached.delete(sha);
  }

  /**
   * Runs a script (see {@link RedisSession.eval}) and settles with its answer; or rejects with
   * `onTimeout()` at `deadline` (`now()` clock), with `signal.reason` as soon as it aborts, or with the
   * reason given to {@link RedisSession.failWaiting}. One timer watches the deadlines of every command
   * in flight, armed again only for an earlier one: a lock's acquire and release create no timer of
   * their own (a timer and an abort listener per command were a good part of a lease's cost).
   */
  send(command: Command, deadline: number, onTimeout: () => unknown, signal?: AbortSignal): Promise<unknown> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const sha = digestOf(command[0]);
    const epoch = this.#epoch;
    const sent = this.#eval(command, sha);
    return new Promise((resolve, reject) => {
      const waiting = new Waiting(this.#waiting, deadline, onTimeout, signal, resolve, reject);
      this.#watch(deadline);
      sent.then(
        (reply) => {
          this.#answered(sha, epoch);
          waiting.answered(reply);
        },
        (error: unknown) => {
          this.#refused(sha, error);
          waiting.fail(error);
        },
      );
    });
  }

  /** Rejects every command of {@link RedisSession.send} still waiting, with `reason` (on `close()`). */
  failWaiting(reason: unknown): void {
    for (const waiting of [...this.#waiting]) waiting.fail(reason);
  }

  /**
   * Fires at the earliest deadline. Unref'd: it outlives the commands it watched (no clearing on every
   * answer), and a caller waiting on a command is kept alive by the connection's socket.
   */
  #watch(deadline: number): void {
    if (deadline >= this.#watchAt) return;
    clearTimeout(this.#watchTimer);
    this.#watchAt = deadline;
    this.#watchTimer = setTimeout(() => this.#expire(), Math.max(0, deadline - now()));
    this.#watchTimer.unref();
  }

  #expire(): void {
    this.#watchTimer = undefined;
    this.#watchAt = Infinity;
    const at = now();
    let next = Infinity;
    for (const waiting of [...this.#waiting]) {
      if (waiting.deadline <= at) waiting.fail();
      else next = Math.min(next, waiting.deadline);
    }
    if (next < Infinity) this.#watch(next);
  }

  /**
   * Waits for the connection and runs one script, all within `timeoutMs`. Rejects with `signal.reason`,
   * `ClosedError`, or `CoordinatorUnavailableError` naming `what` failed.
   */
  async call(command: Command, what: string, signal?: AbortSignal): Promise<Sent> {
    const deadline = now() + this.timeoutMs;
    await this.ready(deadline, signal);
    const sentAt = now();
    const epoch = this.#epoch;
    try {
      const timeout = (): Error =>
        new CoordinatorUnavailableError(`Redis did not answer (${what}) within ${this.timeoutMs} ms`);
      const send = (): Promise<unknown> => this.send(command, deadline, timeout, signal);
      // NOSCRIPT: the script did not run, and no undo can be queued behind it yet: send it whole.
      const reply = await send().catch((error: unknown) => {
        if (isNoScript(error)) return send();
        throw error;
      });
      return { reply, sentAt, epoch };
    } catch (error) {
      if (signal?.aborted || error instanceof GracefulDrainError) throw error;
      const message = `Redis could not ${what}: ${describeError(error)}`;
      throw new CoordinatorUnavailableError(message, { cause: error });
    }
  }

  /** Sends an undo now if the connection is ready (after every command sent on it), else keeps it. */
  cleanup(cleanup: Cleanup): void {
    if (this.#redis?.status === 'ready' && !this.#closed) this.#send(cleanup);
    else this.#keep(cleanup);
  }

  /**
   * Waits up to `boundMs` for the commands already sent (QUIT answers after them), then drops the
   * socket. Idempotent; never throws.
   */
  async close(boundMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#watchTimer);
    if (this.#orphans.length > 0)
      debug('dropping %d clean-ups: they expire with their TTL', this.#orphans.length);
    this.#orphans = [];
    const redis = this.#redis ?? (await this.#creating?.catch(() => undefined));
    if (redis === undefined) return;
    if (redis.status === 'ready') {
      try {
        await bounded(redis.quit(), boundMs, () => new Error(`QUIT was not answered within ${boundMs} ms`));
      } catch (error) {
        debug('quit failed: %s', describeError(error));
      }
    }
    redis.disconnect();
    this.watchers.clear();
    debug('connection closed');
  }

  #client(): Promise<Redis> {
    if (this.#redis !== undefined) return Promise.resolve(this.#redis);
    return (this.#creating ??= this.#create());
  }

  async #create(): Promise<Redis> {
    const { client, url, connectionName } = this.#options;
    let redis: Redis;
    if (client !== undefined) {
      redis = client.duplicate({ ...CONNECTION, connectionName });
    } else {
      const RedisClass = await loadRedis();
      if (this.#closed) throw new ClosedError('The RedisCoordinator is closed');
      redis = new RedisClass(url as string, { ...CONNECTION, connectionName });
    }
    redis.on('error', (error: unknown) => {
      this.#lastError = error;
      debug('connection error: %s', describeError(error));
    });
    redis.on('close', () => {
      this.#epoch += 1;
      // The next connection may reach another server (a failover), or one restarted: no cache assumed.
      this.#cached.clear();
      if (this.watchers.size === 0) return;
      debug('connection closed: ending %d leases and memberships', this.watchers.size);
      const watchers = [...this.watchers];
      this.watchers.clear();
      for (const watcher of watchers) watcher.sessionLost();
    });
    redis.on('ready', () => {
      this.#lastError = undefined;
      if (this.#orphans.length === 0 || this.#closed) return;
      const orphans = this.#orphans;
      this.#orphans = [];
      debug('connection ready: sending %d clean-ups', orphans.length);
      for (const orphan of orphans) if (now() < orphan.until) this.#send(orphan);
    });
    this.#redis = redis;
    return redis;
  }

  #send(cleanup: Cleanup): void {
    this.eval(...cleanup.command).then(
      (reply) => {
        debug('%s: %s', cleanup.what, reply === 1 ? 'done' : 'nothing left to do');
        cleanup.onDone?.();
      },
      (error: unknown) => {
        debug('%s failed: %s', cleanup.what, describeError(error));
        if (isTransient(error)) this.#keep(cleanup);
      },
    );
  }

  #keep(cleanup: Cleanup): void {
    if (this.#closed || now() >= cleanup.until) return;
    this.#orphans.push(cleanup);
    if (this.#orphans.length > MAX_ORPHANS) this.#orphans.shift();
  }
}
