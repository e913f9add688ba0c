import { Hold, type LossReason, type TtlOptions } from '../../internal/keep-alive.js';
import { type Cleanup, type Command, debug, type RedisSession } from './session.js';

/** What a hold needs from its coordinator: the session, and the set of holds it tracks until they end. */
export type HoldContext = { readonly session: RedisSession; readonly holds: Set<RedisHold> };

/**
 * What sets a lease's or a membership's hold apart, as the keep-alive reads it (the hold's options): its
 * label, loss error and messages, and its renewal script (answers 1 while the hold is ours); plus its
 * removal as a clean-up. A class of its own per kind, so that a hold costs one object, no closures: the
 * label is built only when the debug log or a message needs it, and the renewal when it is due.
 */
export abstract class RedisHoldOptions implements TtlOptions {
  readonly ttlMs: number;
  readonly sentAt: number;
  readonly #ctx: HoldContext;

  constructor(ctx: HoldContext, ttlMs: number, sentAt: number) {
    this.#ctx = ctx;
    this.ttlMs = ttlMs;
    this.sentAt = sentAt;
  }

  /** Names the hold in the debug log and in messages. */
  abstract get label(): string;
  abstract get lossMessages(): Readonly<Record<LossReason, string>>;
  abstract lostError(message: string): Error;
  /** The owner-checked renewal script. */
  protected abstract get renewal(): Command;
  /** The owner-checked removal, as a clean-up; `onDone` once Redis has answered it. */
  abstract cleanup(onDone?: () => void): Cleanup;

  debug(format: string, ...args: unknown[]): void {
    debug(format, ...args);
  }

  /** Read by the keep-alive when a renewal is due (and called unbound): made then. */
  get renew(): () => Promise<boolean> {
    const { session } = this.#ctx;
    const renewal = this.renewal;
    return async () => (await session.eval(...renewal)) === 1;
  }
}

/**
 * A Redis lease's or membership's key, lost at the local deadline when no renewal got through, or at once
 * when its connection closes. `done` once nothing is left to do about the key (Redis said it is gone, or
 * its removal was handed to the session).
 * @internal
 */
export class RedisHold extends Hold {
  readonly #ctx: HoldContext;
  readonly #options: RedisHoldOptions;
  state: 'held' | 'given' | 'lost' = 'held';
  done = false;

  constructor(ctx: HoldContext, options: RedisHoldOptions) {
    super(options);
    this.#ctx = ctx;
    this.#options = options;
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
    else this.#ctx.session.cleanup(this.#options.cleanup(() => (this.done = true)));
  }

  #end(state: 'given' | 'lost'): void {
    this.state = state;
    this.stopRenewing();
    this.#ctx.session.watchers.delete(this);
    this.#ctx.holds.delete(this);
  }
}
