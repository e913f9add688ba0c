/**
 * `graceful-drain/amqplib`: an amqplib (RabbitMQ) channel consumer wrapped around a `DrainController`.
 *
 * Every delivery is counted by the controller the moment it arrives and acked only after its handler
 * succeeded, so a message is either processed once and acked, or back on the queue: never lost. On
 * shutdown the consumer is cancelled first; what the broker still sends until it confirms the cancel
 * (the prefetched deliveries already on the wire) is put back on the queue without running; once the
 * drain is over the channel closes, which puts back whatever a straggler still holds.
 *
 * amqplib is an optional peer dependency: this module imports nothing from it (not even its types: see
 * `AmqpChannel`) and works with the channel you created (`amqplib` 0.10 and later).
 *
 * @packageDocumentation
 */
import type { DrainController } from '../controller.js';
import { DrainClosedError } from '../errors.js';
import { checkFunction, checkName, invalid } from '../validate.js';
import { AmqpDrainConsumer } from './amqplib-consumer.js';
import { type ConsumeOptions, compileConsumeOptions } from './amqplib-options.js';
import type { AmqpChannel as Channel, DrainConsumer, MessageHandler } from './amqplib-types.js';

export type {
  AmqpChannel,
  AmqpConsumeOptions,
  AmqpMessage,
  AmqpMessageProperties,
  ConsumerOperation,
  ConsumerStats,
  DrainConsumer,
  DrainConsumerEvents,
  MessageContext,
  MessageHandler,
} from './amqplib-types.js';
export type { ClosableConnection, ConsumeOptions, RequeuePolicy } from './amqplib-options.js';
export { requeueUpTo } from './amqplib-options.js';

const channelMethods = [
  'consume',
  'cancel',
  'ack',
  'nack',
  'reject',
  'close',
  'prefetch',
  'on',
  'off',
] as const;

/**
 * Consumes `queue` on `channel` with every delivery tracked by `drain`:
 *
 * - each delivery runs `handler(msg, { signal, stopping, channelClosed })` as tracked work (labelled
 *   with its `messageId`, or `<queue>#<deliveryTag>`), and is acked once the handler settles, or
 *   rejected when it throws (requeued or not per `requeueOnError`, told how many times it failed);
 * - on shutdown an intake stopper cancels the consumer (`basic.cancel`) and waits for the broker's
 *   confirmation; deliveries that arrive after intake closed are put back on the queue (`nack` with
 *   requeue) and never run;
 * - once the drain is over the channel is closed (and `connection`, when given); `close()` does it by
 *   hand and is what to await before the process exits;
 * - a channel closed under the consumer is reported (`channelClosed` event), never thrown at the host.
 *
 * Call it after `drain.start()` has resolved. The consumer never crashes the host: every amqplib
 * failure after it started is emitted as a `failure` event and logged under `graceful-drain:amqplib`.
 *
 * @param drain - the controller; it must be running (`drain.ready`).
 * @param channel - an open amqplib channel (a `ConfirmChannel` works too).
 * @param queue - the queue to consume; it must exist.
 * @param handler - handles one message; its settling acks or rejects it.
 * @param options - see {@link ConsumeOptions}.
 * @returns the consumer, once the broker has confirmed the subscription.
 * @throws `ConfigurationError` for a bad argument or option (naming it and the value), `DrainClosedError`
 * when `drain` is not running, and amqplib's own error when the broker refuses the subscription (for
 * example a queue that does not exist: the broker then closes the channel).
 *
 * @example
 * ```ts
 * import { DrainController, installSignalHandlers } from 'graceful-drain';
 * import { consume } from 'graceful-drain/amqplib';
 *
 * const drain = new DrainController({ shutdownTimeoutMs: 25_000 });
 * await drain.start();
 * const connection = await amqplib.connect(url);
 * const channel = await connection.createChannel();
 * const consumer = await consume(drain, channel, 'jobs', async (msg, { signal }) => {
 *   await handle(JSON.parse(msg.content.toString()), signal);
 * }, { prefetch: 10, connection });
 * installSignalHandlers(drain, { onShutdown: () => consumer.close() });
 * ```
 */
export async function consume(
  drain: DrainController,
  channel: Channel,
  queue: string,
  handler: MessageHandler,
  options?: ConsumeOptions,
): Promise<DrainConsumer> {
  const d = drain as Partial<DrainController> | null;
  if (
    d === null ||
    typeof d !== 'object' ||
    typeof d.tryTrack !== 'function' ||
    typeof d.onStopIntake !== 'function'
  ) {
    invalid('drain', 'a DrainController', drain);
  }
  const c = channel as unknown as Record<string, unknown> | null;
  if (c === null || typeof c !== 'object' || channelMethods.some((m) => typeof c[m] !== 'function')) {
    invalid('channel', 'an amqplib channel', channel);
  }
  checkName('queue', queue);
  checkFunction('handler', handler);
  const compiled = compileConsumeOptions(queue, options);
  if (!drain.ready) {
    throw new DrainClosedError(
      drain.state === 'idle' || drain.state === 'starting'
        ? 'Cannot consume before drain.start() has resolved: every delivery would be sent straight back'
        : `Cannot consume: the controller is ${drain.state}`,
    );
  }
  const consumer = new AmqpDrainConsumer(drain, channel, queue, handler, compiled);
  await consumer.begin();
  return consumer;
}
