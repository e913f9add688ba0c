import { Hold, type HoldOptions, type LossReason, type TtlOptions } from '../../internal/keep-alive.js';
import { type Cleanup, type Command, debug, type RedisSession } from './session.js';

/** What a hold needs from its coordinator: the session, and the set of holds it tracks until they end. */
export type HoldContext = { readonly session: RedisSession; readonly holds: Set<RedisHold> };

/** A lease or a membership: its renewal (answers 1 while the hold is ours), its removal as a clean-up. */
type RedisHoldOptions = Pick<HoldOptions, 'label' | 'lostError'> &
  Omit<TtlOptions, 'renew'> & { renew: Command; cleanup: (onDone?: () => void) => Cleanup };

async function renewed(ctx: HoldContext, renew: Command): Promise<boolean> {
  return (await ctx.session.eval(...renew)) === 1;
}

/**
 * A Redis lease's or membership's key, lost at the local deadline when no renewal got through, or at once
 * when its connection closes. `done` once nothing is left to do about the key (Redis said it is gone, or
 * its removal was handed to the session).
 * @internal
 */
export class RedisHold extends Hold {
  readonly #ctx: HoldContext;
  readonly #cleanup: RedisHoldOptions['cleanup'];
  state: 'held' | 'given' | 'lost' = 'held';
  done = false;

  constructor(ctx: HoldContext, options: RedisHoldOptions) {
    // Fields named one by one: an object rest (`{ renew, ...options }`) costs microseconds per lease in V8.
    const { label, lostError, ttlMs, sentAt, lossMessages, renew } = options;
    super({ label, lostError, ttlMs, sentAt, lossMessages, debug, renew: () => renewed(ctx, renew) });
    this.#ctx = ctx;
    this.#cleanup = options.cleanup;
    ctx.session.watchers.add(this);
    ctx.holds.add(this);
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
  override lost(message: string, _cause?: unknown, reason?: LossReason): void {
    if (this.state !== 'held') return;
    this.#end('lost');
    this.abort(message);
    if (reason === 'gone') this.done = true;
    else this.#ctx.session.cleanup(this.#cleanup(() => (this.done = true)));
  }

  #end(state: 'given' | 'lost'): void {
    this.state = state;
    this.stopRenewing();
    this.#ctx.session.watchers.delete(this);
    this.#ctx.holds.delete(this);
  }
}
