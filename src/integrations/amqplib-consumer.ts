import { EventEmitter } from 'node:events';
import type { Channel, ConsumeMessage } from 'amqplib';
import createDebug from 'debug';
import type { DrainController, DrainState } from '../controller.js';
import { ClosedError, DrainTimeoutError } from '../errors.js';
import { bounded } from '../internal/time.js';
import type { CompiledConsumeOptions } from './amqplib-options.js';
import type {
  ConsumerOperation,
  ConsumerStats,
  DrainConsumer,
  DrainConsumerEvents,
  MessageContext,
  MessageHandler,
} from './amqplib-types.js';

const log = createDebug('graceful-drain:amqplib');

interface Held {
  readonly msg: ConsumeMessage;
  readonly label: string;
}

/** @internal Built by `consume()`. */
export class AmqpDrainConsumer extends EventEmitter<DrainConsumerEvents> implements DrainConsumer {
  readonly #drain: DrainController;
  readonly #channel: Channel;
  readonly #queue: string;
  readonly #handler: MessageHandler;
  readonly #options: CompiledConsumeOptions;
  readonly #channelClosed = new AbortController();
  readonly #context: MessageContext;
  readonly #stats = { delivered: 0, acked: 0, rejected: 0, returned: 0, unsettled: 0 };
  #consumerTag = '';
  #consuming: Promise<string> | undefined;
  #channelOpen = true;
  #closingChannel = false;
  #lastChannelError: unknown;
  #cancelledBy: 'shutdown' | 'user' | 'broker' | 'channel-closed' | undefined;
  #cancelPromise: Promise<unknown> | undefined;
  #closePromise: Promise<void> | undefined;
  // Deliveries that arrived after intake closed, before the broker confirmed the cancel: nacking them
  // earlier would let the broker hand them straight back to this same consumer.
  #held: Held[] = [];
  #releaseLate = false;
  #inFlight = 0;
  #unregisterStopper: () => void = () => {};

  constructor(
    drain: DrainController,
    channel: Channel,
    queue: string,
    handler: MessageHandler,
    options: CompiledConsumeOptions,
  ) {
    super();
    this.#drain = drain;
    this.#channel = channel;
    this.#queue = queue;
    this.#handler = handler;
    this.#options = options;
    const { signal, stopping } = drain.context;
    this.#context = Object.freeze({ signal, stopping, channelClosed: this.#channelClosed.signal });
  }

  get queue(): string {
    return this.#queue;
  }

  get consumerTag(): string {
    return this.#consumerTag;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get stats(): ConsumerStats {
    return Object.freeze({ ...this.#stats });
  }

  get cancelled(): boolean {
    return this.#cancelledBy !== undefined || !this.#channelOpen;
  }

  /** Subscribes; on failure, undoes everything it set up and rethrows amqplib's error. */
  async begin(): Promise<void> {
    this.#channel.on('error', this.#onChannelError);
    this.#channel.on('close', this.#onChannelClose);
    this.#drain.on('stateChange', this.#onStateChange);
    // Registered before subscribing: a shutdown that begins while `consume` is on the wire still
    // cancels the consumer once the broker has named it.
    this.#unregisterStopper = this.#drain.onStopIntake(this.#stopIntake);
    this.#consuming = this.#subscribe();
    try {
      this.#consumerTag = await this.#consuming;
    } catch (error) {
      this.#detach();
      this.#removeChannelListeners();
      throw error;
    }
    log('consuming %s as %s', this.#queue, this.#consumerTag);
  }

  cancel(): Promise<void> {
    return this.#cancel('user').then(() => undefined);
  }

  close(): Promise<void> {
    return (this.#closePromise ??= this.#runClose());
  }

  async #subscribe(): Promise<string> {
    const { prefetch, consumeOptions } = this.#options;
    if (prefetch !== undefined) await this.#channel.prefetch(prefetch);
    const reply = await this.#channel.consume(this.#queue, this.#onMessage, consumeOptions);
    return reply.consumerTag;
  }

  // Runs inside amqplib's frame handling: it must never throw.
  readonly #onMessage = (msg: ConsumeMessage | null): void => {
    if (msg === null) {
      this.#onBrokerCancel();
      return;
    }
    this.#stats.delivered++;
    const label = this.#labelOf(msg);
    const task = this.#drain.tryTrack(() => this.#handler(msg, this.#context), { label });
    if (task === undefined) {
      this.#late(msg, label);
      return;
    }
    this.#inFlight++;
    task.then(
      () => {
        this.#inFlight--;
        this.#settle('ack', msg, label);
      },
      (error: unknown) => {
        this.#inFlight--;
        this.#failed(msg, label, error);
      },
    );
  };

  #labelOf(msg: ConsumeMessage): string {
    try {
      return String(this.#options.label(msg));
    } catch (error) {
      const label = `${this.#queue}#${msg.fields.deliveryTag}`;
      this.#report('label', error, label);
      return label;
    }
  }

  #failed(msg: ConsumeMessage, label: string, error: unknown): void {
    if (this.#drain.context.signal.aborted) {
      // Cut short by the drain deadline: the message was not at fault, someone else should finish it.
      this.#return(label, 'deadline');
      this.#settle('return', msg, label);
      return;
    }
    let requeue = true;
    try {
      requeue = Boolean(this.#options.requeueOnError(error, msg));
    } catch (policyError) {
      this.#report('requeueOnError', policyError, label);
    }
    log('handler failed for %s (requeue %s): %O', label, requeue, error);
    this.emit('handlerError', { error, label, requeue });
    this.#settle(requeue ? 'reject-requeue' : 'reject', msg, label);
  }

  #late(msg: ConsumeMessage, label: string): void {
    this.#return(label, 'intake-closed');
    if (!this.#channelOpen) return;
    if (this.#releaseLate) this.#settle('return', msg, label);
    else this.#held.push({ msg, label });
  }

  #return(label: string, reason: 'intake-closed' | 'deadline'): void {
    this.#stats.returned++;
    log('returning %s to the queue unprocessed (%s)', label, reason);
    this.emit('returned', { label, reason });
  }

  #flushHeld(): void {
    this.#releaseLate = true;
    const held = this.#held;
    this.#held = [];
    for (const { msg, label } of held) this.#settle('return', msg, label);
  }

  /**
   * Settles a delivery: `ack`; `reject` (with or without requeue) for a handler that failed, which
   * RabbitMQ (4.3+) counts toward a quorum queue's `delivery-limit`; `return`, a `nack` with requeue,
   * for a message put back unprocessed, which it does not count. amqplib throws synchronously once the
   * channel is closing or closed.
   */
  #settle(how: 'ack' | 'reject' | 'reject-requeue' | 'return', msg: ConsumeMessage, label: string): void {
    try {
      if (how === 'ack') this.#channel.ack(msg);
      else if (how === 'return') this.#channel.nack(msg, false, true);
      else this.#channel.reject(msg, how === 'reject-requeue');
    } catch (error) {
      // The broker requeues every unacked delivery of a closed channel: this one is not lost, but it
      // will be delivered again.
      this.#stats.unsettled++;
      this.#report(how === 'ack' ? 'ack' : how === 'return' ? 'nack' : 'reject', error, label);
      return;
    }
    if (how === 'ack') this.#stats.acked++;
    else if (how !== 'return') this.#stats.rejected++;
  }

  #onBrokerCancel(): void {
    // The broker cancels a consumer when its queue is deleted (or a mirrored queue fails over).
    if (this.#cancelledBy !== undefined) return;
    this.#cancelledBy = 'broker';
    log('the broker cancelled the consumer of %s', this.#queue);
    this.emit('cancelled', { by: 'broker' });
  }

  /** Cancels once; resolves with the error met (if the channel is still open), never rejects. */
  #cancel(by: 'shutdown' | 'user'): Promise<unknown> {
    return (this.#cancelPromise ??= this.#runCancel(by));
  }

  async #runCancel(by: 'shutdown' | 'user'): Promise<unknown> {
    try {
      let tag: string;
      try {
        tag = await (this.#consuming as Promise<string>);
      } catch {
        return undefined; // never subscribed: nothing to cancel
      }
      if (this.#cancelledBy !== undefined || !this.#channelOpen) return undefined;
      await this.#channel.cancel(tag);
      if (this.#cancelledBy === undefined) {
        this.#cancelledBy = by;
        log('cancelled the consumer of %s (%s)', this.#queue, by);
        this.emit('cancelled', { by });
      }
      return undefined;
    } catch (error) {
      // A channel that closed meanwhile cancelled the consumer with it.
      if (!this.#channelOpen) return undefined;
      this.#report('cancel', error);
      return error;
    } finally {
      this.#flushHeld();
    }
  }

  readonly #stopIntake = async (signal: AbortSignal): Promise<void> => {
    // Out of time: put the held deliveries back now rather than leave them to the channel's close.
    const onAbort = (): void => this.#flushHeld();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const error = await this.#cancel('shutdown');
      if (error !== undefined) throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  };

  readonly #onStateChange = ({ to }: { readonly to: DrainState }): void => {
    if (to === 'handing-off' || to === 'stopped') void this.close();
  };

  readonly #onChannelError = (error: unknown): void => {
    // amqplib emits `error` just before `close` when the broker closes the channel; without a
    // listener, Node would throw it out of the socket's data handler and crash the host.
    this.#lastChannelError = error;
    log('channel error on %s: %O', this.#queue, error);
  };

  readonly #onChannelClose = (): void => {
    this.#channelOpen = false;
    this.#held = [];
    this.#releaseLate = true;
    const error = new ClosedError(
      'The AMQP channel closed: its unacked messages went back to the queue',
      this.#lastChannelError === undefined ? undefined : { cause: this.#lastChannelError },
    );
    this.#channelClosed.abort(error);
    if (this.#closingChannel) return;
    this.#cancelledBy ??= 'channel-closed';
    log('the channel of %s closed under the consumer (%d in flight)', this.#queue, this.#inFlight);
    this.emit('channelClosed', { error: this.#lastChannelError ?? error, inFlight: this.#inFlight });
  };

  async #runClose(): Promise<void> {
    const { closeChannel, closeTimeoutMs, connection } = this.#options;
    const timeUp = (what: string) => () =>
      new DrainTimeoutError(`${what} took longer than closeTimeoutMs (${closeTimeoutMs} ms)`);
    await bounded(this.#cancel('user'), closeTimeoutMs, timeUp('Cancelling the consumer')).catch(
      (error: unknown) => this.#report('cancel', error),
    );
    this.#flushHeld();
    this.#detach();
    let closedChannel = !this.#channelOpen;
    if (closeChannel && this.#channelOpen) {
      this.#closingChannel = true;
      try {
        await bounded(
          Promise.resolve().then(() => this.#channel.close()),
          closeTimeoutMs,
          timeUp('Closing the channel'),
        );
        closedChannel = true;
      } catch (error) {
        if (isAlreadyClosed(error)) closedChannel = true;
        else this.#report('close-channel', error);
      }
    }
    // Keep the error listener on a channel that may still error while it closes; drop ours otherwise.
    if (closedChannel || !closeChannel) this.#removeChannelListeners();
    if (connection !== undefined) {
      try {
        await bounded(
          Promise.resolve().then(() => connection.close()),
          closeTimeoutMs,
          timeUp('Closing the connection'),
        );
      } catch (error) {
        if (!isAlreadyClosed(error)) this.#report('close-connection', error);
      }
    }
    log('closed the consumer of %s: %o', this.#queue, this.#stats);
    this.emit('closed');
  }

  #detach(): void {
    this.#unregisterStopper();
    this.#drain.off('stateChange', this.#onStateChange);
  }

  #removeChannelListeners(): void {
    this.#channel.off('error', this.#onChannelError);
    this.#channel.off('close', this.#onChannelClose);
  }

  #report(operation: ConsumerOperation, error: unknown, label?: string): void {
    log('%s failed%s: %O', operation, label === undefined ? '' : ` for ${label}`, error);
    this.emit('failure', label === undefined ? { operation, error } : { operation, error, label });
  }
}

/** amqplib's `IllegalOperationError` for an operation on a channel or connection already closed. */
function isAlreadyClosed(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.name === 'IllegalOperationError' &&
    /(Channel|Connection) clos(ed|ing)/.test(error.message)
  );
}
