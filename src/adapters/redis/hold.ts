/**
 * What a Redis lease and a membership share: the keep-alive of its key, the loss signal, and the end of
 * the hold when the connection it was made on closes.
 *
 * @internal
 */
import createDebug from 'debug';
import { KeepAlive, type LossReason } from '../../internal/keep-alive.js';
import { type Cleanup, describeError, type RedisSession } from './session.js';

const debug = createDebug('graceful-drain:redis');

/** What a hold needs from its coordinator: the session, and the set of holds it tracks until they end. */
export interface HoldContext {
  readonly session: RedisSession;
  readonly holds: Set<RedisHold>;
}

/** What sets a lease apart from a membership. */
export interface HoldOptions {
  /** For debug logs: `lease "x" (token 1)`, `member "m" of "g"`. */
  readonly label: string;
  readonly ttlMs: number;
  /** When (`now()` clock) the write that took the hold was sent. */
  readonly sentAt: number;
  /** Runs the renewal script: it answers 1 while the hold is ours. */
  readonly renew: () => Promise<unknown>;
  /** The owner-checked removal of the hold, as a clean-up calling `onDone` once it ran. */
  readonly cleanup: (onDone?: () => void) => Cleanup;
  /** The error the signal aborts with, for a loss described by `message`. */
  readonly lostError: (message: string) => Error;
  readonly lossMessages: Readonly<Record<LossReason, string>>;
}

/**
 * A key held in Redis: renewed every `ttlMs / 3`, lost at the local deadline when no renewal got through,
 * or at once when its connection closes. States: `held`, `given` (renewals stopped), `lost`.
 */
export class RedisHold {
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
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      sentAt: options.sentAt,
      renew: async () => (await options.renew()) === 1,
      onLost: (reason) => this.lost(options.lossMessages[reason], reason === 'gone'),
      onError: (error) => debug('%s: renewal failed, retrying: %s', options.label, describeError(error)),
    });
    ctx.session.watchers.add(this);
    ctx.holds.add(this);
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
   * Ends the hold: aborts the signal first, then removes the key if it is still ours (unless Redis said
   * it is `gone`), so that the holder is told before anyone else can take it.
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
    this.#ctx.session.watchers.delete(this);
    this.#ctx.holds.delete(this);
  }
}
