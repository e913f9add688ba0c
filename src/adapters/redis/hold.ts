/**
 * What a Redis lease and a membership share: the keep-alive of its key, the loss signal, and the end
 * of the hold when the connection it was made on closes.
 *
 * @internal
 */
import createDebug from 'debug';
import { KeepAlive, type LossReason } from '../../internal/keep-alive.js';
import type { Script } from './scripts.js';
import { type Cleanup, describeError, type RedisSession, type SessionWatcher } from './session.js';

const debug = createDebug('graceful-drain:redis');

/** What a hold needs from the coordinator that made it. */
export interface HoldContext {
  readonly session: RedisSession;
  /** Stops tracking a hold that is given back or lost. */
  forget(hold: RedisHold): void;
}

/** Options of {@link RedisHold}. */
export interface HoldOptions {
  /** For debug logs: `lease "x" (token 1)`, `member "m" of "g"`. */
  readonly label: string;
  readonly ttlMs: number;
  /** When (on the `now()` clock) the write that took the hold was sent. */
  readonly sentAt: number;
  /** The renewal script (answers 1 while the hold is ours), its keys and arguments. */
  readonly renew: readonly [Script, readonly string[], readonly (string | number)[]];
  /** The owner-checked removal of the hold, as a clean-up calling `onDone` once it ran. */
  readonly cleanup: (onDone?: () => void) => Cleanup;
  /** The error the signal aborts with, for a loss described by `message`. */
  readonly lostError: (message: string) => Error;
  /** How each loss the keep-alive finds is described. */
  readonly lossMessages: Readonly<Record<LossReason, string>>;
}

/**
 * A key held in Redis: renewed every `ttlMs / 3`, lost at the local deadline when no renewal got
 * through, or at once when the connection it was made on closes. States: `held`; `given` (the holder
 * gives it back: renewals stopped); `lost`. `done` once nothing is left to do about the key.
 */
export class RedisHold implements SessionWatcher {
  readonly #ctx: HoldContext;
  readonly #options: HoldOptions;
  readonly #controller = new AbortController();
  readonly #keepAlive: KeepAlive;
  #state: 'held' | 'given' | 'lost' = 'held';
  /** True once Redis has answered that the key is gone, or its removal was handed to the session. */
  done = false;

  constructor(ctx: HoldContext, options: HoldOptions) {
    this.#ctx = ctx;
    this.#options = options;
    const [script, keys, args] = options.renew;
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      sentAt: options.sentAt,
      renew: async () => (await ctx.session.eval(script, keys, args)) === 1,
      onLost: (reason) => this.lost(options.lossMessages[reason], reason === 'gone'),
      onError: (error) => debug('%s: renewal failed, retrying: %s', options.label, describeError(error)),
    });
    ctx.session.watch(this);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get deadline(): number {
    return this.#keepAlive.deadline;
  }

  get state(): 'held' | 'given' | 'lost' {
    return this.#state;
  }

  /** The holder gives the hold back: renewals stop at once, whatever happens next. */
  give(): void {
    if (this.#state === 'held') this.#end('given');
  }

  /** The connection this hold was made on closed. */
  sessionLost(): void {
    this.lost('the connection to Redis was lost');
  }

  /**
   * Ends the hold: aborts the signal first, then removes the key if it is still ours (unless Redis has
   * said it is `gone`), so that the holder has been told before anyone else can take it.
   */
  lost(message: string, gone = false): void {
    if (this.#state !== 'held') return;
    this.#end('lost');
    debug('%s lost: %s', this.#options.label, message);
    this.#controller.abort(this.#options.lostError(message));
    if (gone) this.done = true;
    else this.#ctx.session.cleanup(this.#options.cleanup(() => (this.done = true)));
  }

  #end(state: 'given' | 'lost'): void {
    this.#state = state;
    this.#keepAlive.stop();
    this.#ctx.session.unwatch(this);
    this.#ctx.forget(this);
  }
}
