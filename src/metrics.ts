/**
 * Metrics through `node:diagnostics_channel`, published only while a channel has a subscriber. The
 * in-flight gauge is not published per task (that would tax `track()`): read `drain.inFlight` when your
 * metrics library collects. See docs/metrics.md.
 * @packageDocumentation
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import createDebug from 'debug';
import type { ParkProgress, RecoveryReport, ResumeReport } from './report.js';
import type { DrainState } from './types.js';
import { invalid } from './validate.js';

const log = createDebug('graceful-drain:metrics');

/** The channel names, stable across versions. */
export const channels = Object.freeze({
  /** `{ group, memberId, from, to, inFlight }` on every state change. */
  state: 'graceful-drain:state',
  /** `{ group, memberId, durationMs, inFlightAtStart, aborted, stragglers }` when the drain phase ends. */
  drain: 'graceful-drain:drain',
  /** `{ group, memberId, parked, stillPausing, skipped, token }` after every parked batch. */
  park: 'graceful-drain:park',
  /** `{ group, memberId, resumed, skipped, stillPausing, rounds, complete }` after every resume round. */
  resume: 'graceful-drain:resume',
  /**
   * `{ group, memberId, policy, reason, generation, deadMembers, found, recovered, failed, ... }` after the
   * start gate, and after each periodic peer check that found a crashed peer (reason `peer-crash`).
   */
  recovery: 'graceful-drain:recovery',
  /** `{ group, memberId, lock, waitMs, acquired, reason }` after every lock acquisition attempt. */
  lockWait: 'graceful-drain:lock-wait',
});

/** Published on `graceful-drain:state`. */
export interface StateMessage {
  readonly group: string;
  readonly memberId: string;
  readonly from: DrainState;
  readonly to: DrainState;
  readonly inFlight: number;
}

/** Published on `graceful-drain:drain`. */
export interface DrainMessage {
  readonly group: string;
  readonly memberId: string;
  readonly durationMs: number;
  readonly inFlightAtStart: number;
  readonly aborted: number;
  readonly stragglers: number;
}

/** Published on `graceful-drain:park` after every parked batch. */
export interface ParkMessage extends ParkProgress {
  readonly group: string;
  readonly memberId: string;
}

/** Published on `graceful-drain:resume` after every resume round. */
export interface ResumeMessage extends Omit<ResumeReport, 'toJSON'> {
  readonly group: string;
  readonly memberId: string;
}

/** The message each channel carries, by channel key. */
export interface ChannelMessages {
  readonly state: StateMessage;
  readonly drain: DrainMessage;
  readonly park: ParkMessage;
  readonly resume: ResumeMessage;
  readonly lockWait: LockWaitMessage;
  readonly recovery: RecoveryMessage;
}

/** Published on `graceful-drain:recovery` after the start gate and each peer check that found a crash. */
export type RecoveryMessage = Omit<RecoveryReport, 'toJSON'> & {
  readonly group: string;
  readonly memberId: string;
};

/** The name of each channel, by key (the values of {@link channels}). */
export type ChannelName = (typeof channels)[keyof typeof channels];

/** Published on `graceful-drain:lock-wait`. */
export interface LockWaitMessage {
  readonly group: string;
  readonly memberId: string;
  readonly lock: string;
  readonly waitMs: number;
  readonly acquired: boolean;
  /** `shutdown` or `resume`: which half of the protocol waited; `recovery`: a periodic peer check. */
  readonly reason: 'shutdown' | 'resume' | 'recovery';
}

const byName = Object.fromEntries(
  Object.entries(channels).map(([key, name]) => [key, diagnosticsChannel.channel(name)]),
) as Record<keyof typeof channels, diagnosticsChannel.Channel>;

/** Publishes on a channel; builds the message only when someone subscribes. @internal */
export function publish<K extends keyof ChannelMessages>(name: K, message: () => ChannelMessages[K]): void {
  const channel = byName[name];
  if (channel.hasSubscribers) channel.publish(message());
}

/**
 * `diagnosticsChannel.subscribe(channels[key], listener)` with the message typed; returns a function that
 * unsubscribes. A listener that throws is logged (debug namespace `graceful-drain:metrics`) and changes
 * nothing else: `diagnostics_channel` would rethrow its error as an uncaught exception, which would end
 * the process mid-shutdown. Subscribing through `diagnostics_channel` directly has no such protection.
 *
 * @example
 * ```ts
 * const stop = subscribe('drain', (m) => console.log(`drained in ${m.durationMs} ms`));
 * ```
 */
export function subscribe<K extends keyof ChannelMessages>(
  key: K,
  listener: (message: ChannelMessages[K]) => void,
): () => void {
  const name = channels[key];
  if (name === undefined) invalid('key', `one of ${Object.keys(channels).join(', ')}`, key);
  const handler = (message: unknown): void => {
    try {
      listener(message as ChannelMessages[K]);
    } catch (error) {
      log('a %s listener threw: %O', key, error);
    }
  };
  diagnosticsChannel.subscribe(name, handler);
  return () => void diagnosticsChannel.unsubscribe(name, handler);
}
