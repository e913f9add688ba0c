import { KeepAlive, type LossReason } from '../../internal/keep-alive.js';
import { type Cleanup, type Command, debug, describeError, type RedisSession } from './session.js';

/** What a hold needs from its coordinator: the session, and the set of holds it tracks until they end. */
export type HoldContext = { readonly session: RedisSession; readonly holds: Set<RedisHold> };

/**
 * What sets a lease apart from a membership: a `label` for the debug log, the TTL and the send time
 * (`now()` clock) of the write that took it, the renewal (answers 1 while the hold is ours), the
 * owner-checked removal as a clean-up, and the error the signal aborts with for each loss.
 */
export interface HoldOptions {
  readonly label: string;
  readonly ttlMs: number;
  readonly sentAt: number;
  readonly renew: Command;
  readonly cleanup: (onDone?: () => void) => Cleanup;
  readonly lostError: (message: string) => Error;
  readonly lossMessages: Readonly<Record<LossReason, string>>;
}

/**
 * What a Redis lease and a membership share: a key renewed every `ttlMs / 3`, lost at the local deadline
 * when no renewal got through, or at once when its connection closes. `done` once nothing is left to do
 * about the key (Redis said it is gone, or its removal was handed to the session).
 * @internal
 */
export class RedisHold {
  readonly #ctx: HoldContext;
  readonly #options: HoldOptions;
  readonly #controller = new AbortController();
  readonly #keepAlive: KeepAlive;
  readonly signal: AbortSignal = this.#controller.signal;
  state: 'held' | 'given' | 'lost' = 'held';
  done = false;

  constructor(ctx: HoldContext, options: HoldOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#keepAlive = new KeepAlive({
      ttlMs: options.ttlMs,
      sentAt: options.sentAt,
      renew: async () => (await ctx.session.eval(...options.renew)) === 1,
      onLost: (reason) => this.lost(options.lossMessages[reason], reason === 'gone'),
      onError: (error) => debug('%s: renewal failed, retrying: %s', options.label, describeError(error)),
    });
    ctx.session.watchers.add(this);
    ctx.holds.add(this);
  }

  get deadline(): number {
    return this.#keepAlive.deadline;
  }

  /** The holder gives the hold back: renewals stop at once, whatever happens next. */
  give(): void {
    if (this.state === 'held') this.#end('given');
  }

  /** The connection this hold was made on closed. */
  sessionLost(): void {
    this.lost('the connection to Redis was lost');
  }

  /** Aborts the signal, then removes the key if it may still be ours (Redis did not say it is `gone`). */
  lost(message: string, gone = false): void {
    if (this.state !== 'held') return;
    this.#end('lost');
    debug('%s lost: %s', this.#options.label, message);
    this.#controller.abort(this.#options.lostError(message));
    if (gone) this.done = true;
    else this.#ctx.session.cleanup(this.#options.cleanup(() => (this.done = true)));
  }

  #end(state: 'given' | 'lost'): void {
    this.state = state;
    this.#keepAlive.stop();
    this.#ctx.session.watchers.delete(this);
    this.#ctx.holds.delete(this);
  }
}
