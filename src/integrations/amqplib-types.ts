/** The consumer's types, and amqplib's, typed structurally: `@types/amqplib` is never needed. */
import type { EventEmitter } from 'node:events';
import type { TaskContext } from '../types.js';

/** A delivery, as amqplib's `ConsumeMessage` carries it. */
export interface AmqpMessage {
  /** The message body. */
  readonly content: Buffer;
  /** Where and how it was delivered. */
  readonly fields: {
    readonly deliveryTag: number;
    readonly redelivered: boolean;
    readonly exchange: string;
    readonly routingKey: string;
    readonly consumerTag: string;
  };
  /** The publisher's properties; `messageId` names the delivery in the drain's report. */
  readonly properties: AmqpMessageProperties;
}

/** The properties of an {@link AmqpMessage}, as the publisher set them. */
export interface AmqpMessageProperties {
  readonly contentType: unknown;
  readonly contentEncoding: unknown;
  readonly headers: Readonly<Record<string, unknown>> | undefined;
  readonly deliveryMode: unknown;
  readonly priority: unknown;
  readonly correlationId: unknown;
  readonly replyTo: unknown;
  readonly expiration: unknown;
  readonly messageId: unknown;
  readonly timestamp: unknown;
  readonly type: unknown;
  readonly userId: unknown;
  readonly appId: unknown;
  readonly clusterId: unknown;
}

/** The options of amqplib's `channel.consume()` (its `Options.Consume`). */
export interface AmqpConsumeOptions {
  readonly consumerTag?: string | undefined;
  readonly noLocal?: boolean | undefined;
  readonly noAck?: boolean | undefined;
  readonly exclusive?: boolean | undefined;
  readonly priority?: number | undefined;
  readonly arguments?: unknown;
}

/** An amqplib channel (`Channel` or `ConfirmChannel`), as the consumer uses it. */
export interface AmqpChannel {
  consume(
    queue: string,
    onMessage: (msg: AmqpMessage | null) => void,
    options?: AmqpConsumeOptions,
  ): Promise<{ consumerTag: string }>;
  cancel(consumerTag: string): Promise<unknown>;
  ack(message: AmqpMessage): void;
  nack(message: AmqpMessage, allUpTo?: boolean, requeue?: boolean): void;
  reject(message: AmqpMessage, requeue?: boolean): void;
  prefetch(count: number): Promise<unknown>;
  close(): Promise<void>;
  on(event: 'error' | 'close', listener: (...args: unknown[]) => void): unknown;
  off(event: 'error' | 'close', listener: (...args: unknown[]) => void): unknown;
}

/** A connection `consume()` may close after the channel: an amqplib `ChannelModel`, or anything with `close()`. */
export interface ClosableConnection {
  close(): Promise<void>;
}

/**
 * Decides whether the message of a failed handler goes back on the queue. `failures` counts the failed
 * attempts known so far, this one included: a return unrun by a shutdown, a handler cut short at the
 * drain deadline or a closed channel is not a failure, though the broker marks each `redelivered`.
 */
export type RequeuePolicy = (error: unknown, msg: AmqpMessage, failures: number) => boolean;

/** Options of `consume()`. Every one is optional and checked at once. See docs/integrations/amqplib.md. */
export interface ConsumeOptions {
  /**
   * Calls `channel.prefetch(prefetch)` before consuming: at most this many unacked deliveries, hence
   * handlers at once (a whole number from 1 to 65535: AMQP's field is 16-bit). A channel that never set
   * one lets the broker push the whole queue here.
   * @defaultValue none: the channel's own setting
   */
  readonly prefetch?: number;
  /**
   * Whether the message of a failed handler is rejected (`basic.reject`) with requeue, or without
   * (dead-lettered, or dropped); a function decides per message, e.g. `requeueUpTo(1)`. A handler cut
   * short by the drain deadline is not asked about: its message goes back (`basic.nack`); nor is one that
   * ended after its channel closed: the broker requeued its message with the channel.
   * @defaultValue `true`
   */
  readonly requeueOnError?: boolean | RequeuePolicy;
  /** The label of each delivery in the drain's report. @defaultValue `messageId`, else `<queue>#<deliveryTag>` */
  readonly label?: (msg: AmqpMessage) => string;
  /** Closes the channel once the drain is over, putting back what a straggler holds. @defaultValue `true` */
  readonly closeChannel?: boolean;
  /** A connection to close after the channel once the drain is over. @defaultValue none: it stays yours */
  readonly connection?: ClosableConnection;
  /** How long `close()` waits for each broker round trip, in ms. @defaultValue `5_000` */
  readonly closeTimeoutMs?: number;
  /** Passed to `channel.consume()`; `noAck: true` is refused (messages would be lost). @defaultValue `{}` */
  readonly consumeOptions?: AmqpConsumeOptions;
}

/** What a handler receives besides the message. One object per consumer, shared by its handlers. */
export interface MessageContext extends TaskContext {
  /** Aborted when the channel closes while the handler runs: the message is back on the queue; stop. */
  readonly channelClosed: AbortSignal;
}

/**
 * Handles one delivery. It is acked when this returns or its promise resolves, rejected when it throws or
 * rejects.
 */
export type MessageHandler = (msg: AmqpMessage, context: MessageContext) => unknown;

/**
 * Counters of a {@link DrainConsumer}, as a frozen snapshot. Every delivery is in exactly one of them:
 * `delivered = acked + requeued + discarded + returned + abandoned + unsettled + pending`.
 */
export interface ConsumerStats {
  /** Deliveries received (a message delivered again counts again). */
  readonly delivered: number;
  /** The handler succeeded and the ack was sent. */
  readonly acked: number;
  /** The handler failed and the message was rejected with requeue (`basic.reject`). */
  readonly requeued: number;
  /** The handler failed and the message was rejected without requeue: dead-lettered, or dropped. */
  readonly discarded: number;
  /** Put back unrun (`basic.nack` with requeue): it arrived after intake closed. */
  readonly returned: number;
  /** Put back (`basic.nack` with requeue) because the drain deadline cut its handler short. */
  readonly abandoned: number;
  /**
   * Settling failed, or was never possible, because the channel had closed (a handler that failed then
   * included): the broker requeued it.
   */
  readonly unsettled: number;
  /** Handlers still running, and deliveries held until the broker confirms the cancel. */
  readonly pending: number;
  /** `requeued + discarded`, kept for compatibility. */
  readonly rejected: number;
}

/**
 * What failed in a {@link DrainConsumer}: an amqplib operation, or your `label` or `requeueOnError`
 * function that threw. Reported, never thrown.
 */
export type ConsumerOperation =
  'ack' | 'reject' | 'nack' | 'cancel' | 'close-channel' | 'close-connection' | 'label' | 'requeueOnError';

/** The events a {@link DrainConsumer} emits. None is named `error`: not listening never crashes the host. */
export interface DrainConsumerEvents {
  /** The consumer was cancelled: by the shutdown, by `cancel()`/`close()`, or by the broker. */
  cancelled: [info: { readonly by: 'shutdown' | 'user' | 'broker' }];
  /** A handler failed (the `failures`-th known time); its message was rejected, requeued or not. */
  handlerError: [
    info: {
      readonly error: unknown;
      readonly label: string;
      readonly requeue: boolean;
      readonly failures: number;
    },
  ];
  /** A message goes back on the queue unprocessed: it arrived after intake closed, or the deadline cut it short. */
  returned: [info: { readonly label: string; readonly reason: 'intake-closed' | 'deadline' }];
  /** The channel closed under the consumer (not by `close()`): the broker requeued every unacked delivery. */
  channelClosed: [info: { readonly error: unknown; readonly inFlight: number }];
  /** An amqplib operation failed, or your `label` or `requeueOnError` function threw. */
  failure: [
    info: { readonly operation: ConsumerOperation; readonly error: unknown; readonly label?: string },
  ];
  /** `close()` finished. */
  closed: [];
}

/**
 * A queue consumer wrapped around a `DrainController`, made by `consume()`: every delivery is tracked
 * from the moment it arrives, acked after its handler, and the consumer is cancelled first on shutdown.
 */
export interface DrainConsumer extends EventEmitter<DrainConsumerEvents> {
  /** The queue consumed. */
  readonly queue: string;
  /** The broker's consumer tag. */
  readonly consumerTag: string;
  /** Handlers of this consumer still running. */
  readonly inFlight: number;
  /** Counters; see {@link ConsumerStats}. */
  readonly stats: ConsumerStats;
  /** Whether the consumer no longer receives deliveries (cancelled, or its channel closed). */
  readonly cancelled: boolean;
  /** Stops new deliveries (`basic.cancel`) and waits for the broker. Idempotent; never rejects. */
  cancel(): Promise<void>;
  /**
   * Cancels, puts back what arrived after intake closed, closes the channel and `connection` (each
   * bounded by `closeTimeoutMs`). Runs by itself once the drain is over; await it before the process
   * exits. Idempotent (one promise); never rejects.
   */
  close(): Promise<void>;
}
