import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { DrainController } from '../controller.js';
import type { DrainState } from '../types.js';
import { ClosedError, DrainTimeoutError } from '../errors.js';
import { bounded } from '../internal/time.js';
import type {
  AmqpChannel as Channel,
  AmqpConsumeOptions,
  AmqpMessage as Message,
  ClosableConnection,
  RequeuePolicy,
  ConsumerOperation,
  ConsumerStats,
  DrainConsumer,
  DrainConsumerEvents,
  MessageContext,
  MessageHandler,
} from './amqplib-types.js';

const log = createDebug('graceful-drain:amqplib');

/** How many failed messages a consumer remembers (the oldest forgotten first): memory stays flat. */
const REMEMBERED_FAILURES = 10_000;

/** The options with their defaults applied. @internal */
export interface CompiledConsumeOptions {
  readonly prefetch: number | undefined;
  readonly requeueOnError: RequeuePolicy;
  readonly label: (msg: Message) => string;
  readonly closeChannel: boolean;
  readonly connection: ClosableConnection | undefined;
  readonly closeTimeoutMs: number;
  readonly consumeOptions: AmqpConsumeOptions;
}

const COUNTERS = [
  'delivered',
  'acked',
  'requeued',
  'discarded',
  'returned',
  'abandoned',
  'unsettled',
] as const;
type Counter = (typeof COUNTERS)[number];
type Settlement = Exclude<Counter, 'delivered' | 'unsettled'>;

/** @internal Built by `consume()`. */
export class AmqpDrainConsumer extends EventEmitter<DrainConsumerEvents> implements DrainConsumer {
  readonly #drain: DrainController;
  readonly #channel: Channel;
  readonly #queue: string;
  readonly #handler: MessageHandler;
  readonly #options: CompiledConsumeOptions;
  readonly #channelClosed = new AbortController();
  readonly #context: MessageContext;
  readonly #stats = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>;
  // Failed attempts per requeued message: `redelivered` cannot tell a failure from a return unrun.
  readonly #failures = new Map<string, number>();
  readonly #brokerCountsRejects: boolean;
  #consumerTag = '';
  #consuming: Promise<string> | undefined;
  #channelOpen = true;
  #closingChannel = false;
  #lastChannelError: unknown;
  #cancelledBy: 'shutdown' | 'user' | 'broker' | 'channel-closed' | undefined;
  #cancelPromise: Promise<unknown> | undefined;
  #closePromise: Promise<void> | undefined;
  // Arrived after intake closed: nacked once the broker confirms the cancel, or it would redeliver them here.
  #held: { readonly msg: Message; readonly label: string }[] = [];
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
    // From RabbitMQ 4.3 a quorum queue's `x-delivery-count` counts `basic.reject`s only; before, it
    // counts every return, unrun ones included (checked on 3.10), so it cannot count failures.
    const version = (channel as { connection?: { serverProperties?: { version?: unknown } } }).connection
      ?.serverProperties?.version;
    const [major = 0, minor = 0] = typeof version === 'string' ? version.split('.').map(Number) : [];
    this.#brokerCountsRejects = major > 4 || (major === 4 && minor >= 3);
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
    const s = this.#stats;
    const pending = this.#inFlight + this.#held.length;
    return Object.freeze({ ...s, pending, rejected: s.requeued + s.discarded });
  }

  get cancelled(): boolean {
    return this.#cancelledBy !== undefined || !this.#channelOpen;
  }

  /** Subscribes; on failure, undoes everything it set up and rethrows amqplib's error. */
  async begin(): Promise<void> {
    this.#channel.on('error', this.#onChannelError);
    this.#channel.on('close', this.#onChannelClose);
    this.#drain.on('stateChange', this.#onStateChange);
    // Before subscribing: a shutdown while `consume` is on the wire still cancels once the tag is known.
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
    return (await this.#channel.consume(this.#queue, this.#onMessage, consumeOptions)).consumerTag;
  }

  // Runs inside amqplib's frame handling: it must never throw.
  readonly #onMessage = (msg: Message | null): void => {
    if (msg === null) return this.#onBrokerCancel();
    this.#stats.delivered++;
    const label = this.#labelOf(msg);
    const task = this.#drain.tryTrack(() => this.#handler(msg, this.#context), { label });
    if (task === undefined) return this.#late(msg, label);
    this.#inFlight++;
    task.then(
      () => {
        this.#inFlight--;
        if (msg.fields.redelivered && this.#failures.size > 0) this.#failures.delete(failureKey(msg));
        this.#settle('acked', msg, label);
      },
      (error: unknown) => {
        this.#inFlight--;
        this.#failed(msg, label, error);
      },
    );
  };

  #labelOf(msg: Message): string {
    try {
      return String(this.#options.label(msg));
    } catch (error) {
      const label = `${this.#queue}#${msg.fields.deliveryTag}`;
      this.#report('label', error, label);
      return label;
    }
  }

  #failed(msg: Message, label: string, error: unknown): void {
    if (this.#drain.context.signal.aborted) {
      // Cut short by the drain deadline: the message was not at fault, someone else should finish it.
      this.#putBack(label, 'deadline');
      return this.#settle('abandoned', msg, label);
    }
    if (!this.#channelOpen) {
      // The channel closed under it (its handler most likely stopped on `channelClosed`): the broker has
      // requeued the message already, and a reject would fail. Not a failure of the message: no policy.
      log('handler for %s ended after its channel closed: %O', label, error);
      this.#stats.unsettled++;
      return;
    }
    const key = failureKey(msg);
    const header = this.#brokerCountsRejects ? msg.properties.headers?.['x-delivery-count'] : undefined;
    const failures = Math.max(this.#failures.get(key) ?? 0, typeof header === 'number' ? header : 0) + 1;
    let requeue = true;
    try {
      requeue = Boolean(this.#options.requeueOnError(error, msg, failures));
    } catch (policyError) {
      this.#report('requeueOnError', policyError, label);
    }
    this.#failures.delete(key);
    if (requeue) {
      this.#failures.set(key, failures);
      if (this.#failures.size > REMEMBERED_FAILURES)
        this.#failures.delete(this.#failures.keys().next().value!);
    }
    log('handler failed for %s (failure %d, requeue %s): %O', label, failures, requeue, error);
    this.emit('handlerError', { error, label, requeue, failures });
    this.#settle(requeue ? 'requeued' : 'discarded', msg, label);
  }

  #late(msg: Message, label: string): void {
    this.#putBack(label, 'intake-closed');
    if (!this.#channelOpen) this.#stats.unsettled++;
    else if (this.#releaseLate) this.#settle('returned', msg, label);
    else this.#held.push({ msg, label });
  }

  #putBack(label: string, reason: 'intake-closed' | 'deadline'): void {
    log('returning %s to the queue unprocessed (%s)', label, reason);
    this.emit('returned', { label, reason });
  }

  #flushHeld(): void {
    this.#releaseLate = true;
    for (const { msg, label } of this.#held.splice(0)) this.#settle('returned', msg, label);
  }

  /**
   * `ack`; `basic.reject` for a failed handler; `basic.nack` with requeue (not counted toward a quorum
   * queue's `delivery-limit` from RabbitMQ 4.3) for one put back. amqplib throws once the channel closes.
   */
  #settle(how: Settlement, msg: Message, label: string): void {
    const verb = how === 'acked' ? 'ack' : how === 'requeued' || how === 'discarded' ? 'reject' : 'nack';
    try {
      if (verb === 'ack') this.#channel.ack(msg);
      else if (verb === 'reject') this.#channel.reject(msg, how === 'requeued');
      else this.#channel.nack(msg, false, true);
    } catch (error) {
      // The broker requeues every unacked delivery of a closed channel: not lost, delivered again.
      this.#stats.unsettled++;
      return this.#report(verb, error, label);
    }
    this.#stats[how]++;
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
    this.#stats.unsettled += this.#held.splice(0).length; // the broker requeued them with the channel
    this.#releaseLate = true;
    const cause = this.#lastChannelError;
    const message = 'The AMQP channel closed: its unacked messages went back to the queue';
    const error = new ClosedError(message, cause === undefined ? undefined : { cause });
    this.#channelClosed.abort(error);
    if (this.#closingChannel) return;
    this.#cancelledBy ??= 'channel-closed';
    log('the channel of %s closed under the consumer (%d in flight)', this.#queue, this.#inFlight);
    this.emit('channelClosed', { error: cause ?? error, inFlight: this.#inFlight });
  };

  async #runClose(): Promise<void> {
    const { closeChannel, closeTimeoutMs, connection } = this.#options;
    const timeUp = (what: string) => () =>
      new DrainTimeoutError(`${what} took longer than closeTimeoutMs (${closeTimeoutMs} ms)`);
    /** Runs `step` (a close) bounded by `closeTimeoutMs`: whether it closed, or was closed already. */
    const close = async (operation: ConsumerOperation, what: string, step: () => unknown) => {
      try {
        await bounded(Promise.resolve().then(step), closeTimeoutMs, timeUp(what));
        return true;
      } catch (error) {
        if (isAlreadyClosed(error)) return true;
        this.#report(operation, error);
        return false;
      }
    };
    await bounded(this.#cancel('user'), closeTimeoutMs, timeUp('Cancelling the consumer')).catch(
      (error: unknown) => this.#report('cancel', error),
    );
    this.#flushHeld();
    this.#detach();
    let closedChannel = !this.#channelOpen;
    if (closeChannel && this.#channelOpen) {
      this.#closingChannel = true;
      closedChannel = await close('close-channel', 'Closing the channel', () => this.#channel.close());
    }
    // Keep the error listener on a channel that may still error while it closes; drop ours otherwise.
    if (closedChannel || !closeChannel) this.#removeChannelListeners();
    if (connection !== undefined)
      await close('close-connection', 'Closing the connection', () => connection.close());
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

/** Names a message across its deliveries: its `messageId`, else a digest of its content. */
function failureKey(msg: Message): string {
  const id = msg.properties.messageId;
  if (typeof id === 'string' && id !== '') return `id:${id}`;
  return `sha256:${createHash('sha256').update(msg.content).digest('base64')}`;
}
