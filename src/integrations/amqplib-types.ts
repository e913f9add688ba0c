import type { EventEmitter } from 'node:events';
import type { ConsumeMessage } from 'amqplib';
import type { TaskContext } from '../controller.js';

/** What a message handler receives besides the message. One object per consumer, shared by its handlers. */
export interface MessageContext extends TaskContext {
  /**
   * Aborted when the channel closes while the handler runs: its message can no longer be acked and the
   * broker has already put it back on the queue, so the work will be done again elsewhere; stop.
   */
  readonly channelClosed: AbortSignal;
}

/** Handles one delivery. It is acked when this settles, rejected when it throws or rejects. */
export type MessageHandler = (msg: ConsumeMessage, context: MessageContext) => unknown;

/** Counters of a {@link DrainConsumer}, as a frozen snapshot. */
export interface ConsumerStats {
  /** Deliveries received. */
  readonly delivered: number;
  /** Messages whose handler succeeded and whose ack was sent. */
  readonly acked: number;
  /** Messages whose handler failed and that were rejected (`basic.reject`, with or without requeue). */
  readonly rejected: number;
  /**
   * Messages put back on the queue unprocessed (`basic.nack` with requeue): deliveries that arrived
   * after intake closed (never run), and handlers the drain deadline cut short.
   */
  readonly returned: number;
  /** Acks, rejects or nacks that could not be sent (the channel had closed); the broker requeued those messages. */
  readonly unsettled: number;
}

/** An amqplib operation of a {@link DrainConsumer} that failed; reported, never thrown. */
export type ConsumerOperation =
  'ack' | 'reject' | 'nack' | 'cancel' | 'close-channel' | 'close-connection' | 'label' | 'requeueOnError';

/** The events a {@link DrainConsumer} emits. None is named `error`: not listening never crashes the host. */
export interface DrainConsumerEvents {
  /** The consumer was cancelled: by the shutdown's intake stopper, by `cancel()`/`close()`, or by the broker. */
  cancelled: [info: { readonly by: 'shutdown' | 'user' | 'broker' }];
  /** A handler failed; its message was rejected, with `requeue` as `requeueOnError` decided. */
  handlerError: [info: { readonly error: unknown; readonly label: string; readonly requeue: boolean }];
  /**
   * A message goes back on the queue unprocessed: it arrived after intake closed (`intake-closed`,
   * it never ran), or the drain deadline cut its handler short (`deadline`, whatever it threw).
   */
  returned: [info: { readonly label: string; readonly reason: 'intake-closed' | 'deadline' }];
  /**
   * The channel closed under the consumer (not by `close()`): the broker requeued every unacked
   * delivery, handlers in flight see `channelClosed` abort, and nothing more will be delivered.
   */
  channelClosed: [info: { readonly error: unknown; readonly inFlight: number }];
  /** An amqplib operation failed. */
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
  /**
   * Stops new deliveries (`basic.cancel`) and waits for the broker's confirmation. Handlers in flight
   * carry on and are acked. Idempotent; never rejects (a failure is emitted as `failure`).
   */
  cancel(): Promise<void>;
  /**
   * Cancels the consumer, puts back what arrived after intake closed, then closes the channel (unless
   * `closeChannel: false`) and the `connection` option, each bounded by `closeTimeoutMs`. Runs by itself
   * once the drain is over; await it before the process exits so that the last acks reach the broker.
   * Idempotent: every caller gets the same promise. Never rejects.
   */
  close(): Promise<void>;
}
