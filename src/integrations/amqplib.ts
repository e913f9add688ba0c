/**
 * `graceful-drain/amqplib`: an amqplib (RabbitMQ) channel consumer wrapped around a `DrainController`.
 * Every delivery is counted the moment it arrives and acked only after its handler succeeded: processed
 * once and acked, or back on the queue, never lost. amqplib (0.10 and later) is an optional peer: this
 * module imports nothing from it and works with the channel you created. See docs/integrations/amqplib.md.
 *
 * @packageDocumentation
 */
import type { DrainController } from '../controller.js';
import { ConfigurationError, DrainClosedError } from '../errors.js';
import {
  checkBoolean,
  checkFunction,
  checkName,
  checkOptionsObject,
  checkPositive,
  describeValue,
  hasMethods,
  invalid,
} from '../validate.js';
import { AmqpDrainConsumer, type CompiledConsumeOptions } from './amqplib-consumer.js';
import type {
  AmqpChannel,
  AmqpConsumeOptions,
  AmqpMessage,
  ClosableConnection,
  ConsumeOptions,
  DrainConsumer,
  MessageHandler,
  RequeuePolicy,
} from './amqplib-types.js';

export type * from './amqplib-types.js';

const channelMethods = 'consume cancel ack nack reject close prefetch on off'.split(' ');
const optionNames =
  'prefetch requeueOnError label closeChannel connection closeTimeoutMs consumeOptions'.split(' ');

/**
 * Consumes `queue` on `channel`, each delivery run as `drain`-tracked work (labelled with its
 * `messageId`, else `<queue>#<deliveryTag>`) and acked once `handler` returns or its promise resolves,
 * or rejected when it throws or rejects. On shutdown the consumer is cancelled first and what arrives after that is put back unrun; the
 * channel closes once the drain is over. amqplib failures are `failure` events, never thrown at the host.
 *
 * @param drain - the controller, running: call this once `drain.start()` has resolved.
 * @returns the consumer, once the broker has confirmed the subscription.
 * @throws `ConfigurationError` for a bad argument or option, `DrainClosedError` when `drain` is not
 * running, and amqplib's own error when the broker refuses the subscription (a missing queue).
 *
 * @example
 * ```ts
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
  channel: AmqpChannel,
  queue: string,
  handler: MessageHandler,
  options?: ConsumeOptions,
): Promise<DrainConsumer> {
  if (!hasMethods(drain, 'tryTrack', 'onStopIntake')) invalid('drain', 'a DrainController', drain);
  if (!hasMethods(channel, ...channelMethods)) invalid('channel', 'an amqplib channel', channel);
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

/**
 * A {@link RequeuePolicy} that requeues a failed message `retries` times, then rejects it without
 * requeue (dead-lettered when the queue has a dead-letter exchange, dropped otherwise).
 *
 * @example
 * ```ts
 * consume(drain, channel, 'jobs', handler, { requeueOnError: requeueUpTo(1) }); // one retry
 * ```
 */
export function requeueUpTo(retries: number): RequeuePolicy {
  if (typeof retries !== 'number' || !Number.isSafeInteger(retries) || retries < 0) {
    invalid('retries', 'a whole number from 0 up', retries);
  }
  return (_error, _msg, failures) => failures <= retries;
}

/** Validates `options` (every message names the option and the value) and applies the defaults. */
function compileConsumeOptions(queue: string, options: unknown): CompiledConsumeOptions {
  const o = checkOptionsObject('consume', options, optionNames);
  return Object.freeze({
    prefetch: o.prefetch === undefined ? undefined : checkPrefetch(o.prefetch),
    requeueOnError: checkRequeue(o.requeueOnError ?? true),
    label:
      o.label === undefined
        ? defaultLabel(queue)
        : checkFunction<(msg: AmqpMessage) => string>('label', o.label),
    closeChannel: o.closeChannel === undefined ? true : checkBoolean('closeChannel', o.closeChannel),
    connection: checkConnection(o.connection),
    closeTimeoutMs:
      o.closeTimeoutMs === undefined ? 5_000 : checkPositive('closeTimeoutMs', o.closeTimeoutMs),
    consumeOptions: checkConsumeOptions(o.consumeOptions),
  });
}

/** AMQP's `basic.qos` prefetch-count is a 16-bit field: amqplib's encoder throws a bare RangeError past it. */
function checkPrefetch(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65_535) {
    invalid('prefetch', 'a whole number from 1 to 65535', value);
  }
  return value;
}

/** The default label: the `messageId` when the publisher set one, else where the delivery came from. */
function defaultLabel(queue: string): (msg: AmqpMessage) => string {
  return (msg) => {
    const id: unknown = msg.properties.messageId;
    return typeof id === 'string' && id !== '' ? id : `${queue}#${msg.fields.deliveryTag}`;
  };
}

function checkRequeue(value: unknown): RequeuePolicy {
  if (typeof value === 'function') return value as RequeuePolicy;
  if (typeof value !== 'boolean') invalid('requeueOnError', 'a boolean or a function', value);
  return () => value;
}

function checkConnection(value: unknown): ClosableConnection | undefined {
  const c = value as { close?: unknown } | null | undefined;
  if (c !== undefined && (c === null || typeof c !== 'object' || typeof c.close !== 'function')) {
    invalid('connection', 'an amqplib connection (an object with a `close()` method)', c);
  }
  return c as ClosableConnection | undefined;
}

function checkConsumeOptions(value: unknown): AmqpConsumeOptions {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    invalid('consumeOptions', 'an object', value);
  }
  const noAck = (value as AmqpConsumeOptions).noAck;
  if (noAck !== undefined && noAck !== false) {
    throw new ConfigurationError(
      `Expected \`consumeOptions.noAck\` to be false or unset, got ${describeValue(noAck)}: ` +
        'with noAck the broker forgets each message as it sends it, so a shutdown would lose what is in flight',
    );
  }
  return { ...(value as AmqpConsumeOptions), noAck: false };
}
