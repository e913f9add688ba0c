import type { AmqpConsumeOptions, AmqpMessage as ConsumeMessage } from './amqplib-types.js';
import { ConfigurationError } from '../errors.js';
import {
  checkBoolean,
  checkCount,
  checkFunction,
  checkOptionsObject,
  checkPositive,
  describeValue,
  invalid,
} from '../validate.js';

/** A connection `consume()` may close after the channel: an amqplib `ChannelModel`, or anything with `close()`. */
export interface ClosableConnection {
  close(): Promise<void>;
}

/**
 * Decides, for a message whose handler failed, whether it goes back on the queue. `failures` counts
 * the failed attempts known so far, this one included (so it is at least 1): a return unrun by a
 * shutdown, a handler cut short at the drain deadline or a closed channel is not a failure, though the
 * broker marks each of them `redelivered`. See `requeueUpTo()`.
 */
export type RequeuePolicy = (error: unknown, msg: ConsumeMessage, failures: number) => boolean;

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

/** Options of `consume()` from `graceful-drain/amqplib`. Every one is optional and checked at once. */
export interface ConsumeOptions {
  /**
   * Calls `channel.prefetch(prefetch)` before consuming: at most this many unacked deliveries, hence at
   * most this many handlers running at once, for this consumer. Without it the channel keeps its own
   * setting, and a channel that never set one lets the broker push the whole queue into this process.
   * @defaultValue none: the channel's own setting
   */
  readonly prefetch?: number;
  /**
   * What happens to a message whose handler failed (threw or rejected): it is rejected
   * (`basic.reject`), with requeue when this says `true` (it goes back on the queue and will be
   * delivered again), without when `false` (the broker dead-letters it when the queue has a
   * dead-letter exchange, and drops it otherwise). A function decides per message from the error, the
   * message and the number of failed attempts known: `requeueUpTo(1)` gives a message one more try,
   * then dead-letters it, so that a poison message cannot loop forever. (Not `msg.fields.redelivered`:
   * the broker sets it on messages a shutdown put back unrun too.)
   *
   * A handler that failed because the drain deadline aborted its `signal` is not asked about: its
   * message goes back on the queue (`basic.nack`, not counted as a failed delivery), since the shutdown
   * cut it short and the message was not at fault.
   * @defaultValue `true`
   */
  readonly requeueOnError?: boolean | RequeuePolicy;
  /**
   * The label of each delivery in the drain's report (aborted tasks and stragglers).
   * @defaultValue the message's `messageId` property when it has one, else `<queue>#<deliveryTag>`
   */
  readonly label?: (msg: ConsumeMessage) => string;
  /**
   * Closes the channel once the drain is over (when the controller goes `handing-off` or `stopped`),
   * which puts back on the queue whatever a straggler still holds unacked.
   * @defaultValue `true`
   */
  readonly closeChannel?: boolean;
  /**
   * A connection to close after the channel (the one the channel belongs to, usually), once the drain
   * is over. Only closed when given: by default the connection stays the host's.
   * @defaultValue none
   */
  readonly connection?: ClosableConnection;
  /**
   * How long `close()` waits for each of its broker round trips (cancel, channel close, connection
   * close) before it gives up on it and reports it.
   * @defaultValue `5_000`
   */
  readonly closeTimeoutMs?: number;
  /**
   * Passed to `channel.consume()` (`consumerTag`, `exclusive`, `priority`, `arguments`...). `noAck: true`
   * is refused: the broker would forget each message as it sends it, before its handler ran.
   * @defaultValue `{}`
   */
  readonly consumeOptions?: AmqpConsumeOptions;
}

/** The options with their defaults applied. @internal */
export interface CompiledConsumeOptions {
  readonly prefetch: number | undefined;
  readonly requeueOnError: RequeuePolicy;
  readonly label: (msg: ConsumeMessage) => string;
  readonly closeChannel: boolean;
  readonly connection: ClosableConnection | undefined;
  readonly closeTimeoutMs: number;
  readonly consumeOptions: AmqpConsumeOptions;
}

const defaults = Object.freeze({
  requeueOnError: true,
  closeChannel: true,
  closeTimeoutMs: 5_000,
});

const optionNames = [
  'prefetch',
  'requeueOnError',
  'label',
  'closeChannel',
  'connection',
  'closeTimeoutMs',
  'consumeOptions',
];

const always = (): boolean => true;
const never = (): boolean => false;

/** The default label: the `messageId` when the publisher set one, else where the delivery came from. */
export function defaultLabel(queue: string): (msg: ConsumeMessage) => string {
  return (msg) => {
    const id: unknown = msg.properties.messageId;
    return typeof id === 'string' && id !== '' ? id : `${queue}#${msg.fields.deliveryTag}`;
  };
}

/** Validates `options` (every message names the option and the value) and applies the defaults. @internal */
export function compileConsumeOptions(queue: string, options: unknown): CompiledConsumeOptions {
  const o = checkOptionsObject('consume', options, optionNames);
  const prefetch = o.prefetch === undefined ? undefined : checkCount('prefetch', o.prefetch);
  const requeue = o.requeueOnError ?? defaults.requeueOnError;
  let requeueOnError: RequeuePolicy;
  if (typeof requeue === 'boolean') requeueOnError = requeue ? always : never;
  else if (typeof requeue === 'function') requeueOnError = requeue as RequeuePolicy;
  else invalid('requeueOnError', 'a boolean or a function', requeue);
  const label =
    o.label === undefined
      ? defaultLabel(queue)
      : checkFunction<(msg: ConsumeMessage) => string>('label', o.label);
  const closeChannel =
    o.closeChannel === undefined ? defaults.closeChannel : checkBoolean('closeChannel', o.closeChannel);
  let connection: ClosableConnection | undefined;
  if (o.connection !== undefined) {
    const c = o.connection as { close?: unknown } | null;
    if (c === null || typeof c !== 'object' || typeof c.close !== 'function') {
      invalid('connection', 'an amqplib connection (an object with a `close()` method)', o.connection);
    }
    connection = c as ClosableConnection;
  }
  const closeTimeoutMs =
    o.closeTimeoutMs === undefined
      ? defaults.closeTimeoutMs
      : checkPositive('closeTimeoutMs', o.closeTimeoutMs);
  const consumeOptions = checkConsumeOptions(o.consumeOptions);
  return Object.freeze({
    prefetch,
    requeueOnError,
    label,
    closeChannel,
    connection,
    closeTimeoutMs,
    consumeOptions,
  });
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
