/**
 * The other libraries the `track()` suites compare against, beside p-limit: p-queue, and lightship's
 * beacons (the in-flight tracking of a Kubernetes-oriented shutdown library).
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLightship } from 'lightship';
import PQueue from 'p-queue';

/** A way of running a task while counting it as in flight. */
export type Runner = <T>(task: () => Promise<T>) => Promise<T>;

export interface TrackPeers {
  /** `queue.add(task)` on a `new PQueue({ concurrency: Infinity })`. */
  readonly queue: Runner;
  /**
   * A lightship beacon held while the task runs: `createBeacon()` before, `die()` when it settles.
   * `die()` is not awaited (the beacon leaves lightship's list at once; its promise resolves only after
   * a timer), as awaiting it would hold every task for a timer tick.
   */
  readonly beacon: Runner;
  /**
   * Lets the timers of the beacons' `die()` run, then collects their garbage: every sample of the
   * beacon contender ends with it, so that their cost counts where it belongs.
   */
  settle(): Promise<void>;
  /** Shuts lightship down and waits until its HTTP server is closed. */
  close(): Promise<void>;
}

export async function trackPeers(): Promise<TrackPeers> {
  const queue = new PQueue({ concurrency: Number.POSITIVE_INFINITY });
  // Beacons only: its probe server on an ephemeral port, no signal handlers, no delay, and never the
  // default `process.exit(1)` after the shutdown.
  const lightship = await createLightship({
    detectKubernetes: false,
    port: 0,
    signals: [],
    shutdownDelay: 0,
    terminate: () => {},
  });
  return {
    queue: (task) => queue.add(task),
    beacon: <T>(task: () => Promise<T>): Promise<T> => {
      const beacon = lightship.createBeacon();
      return task().then(
        (value) => {
          void beacon.die();
          return value;
        },
        (error: unknown) => {
          void beacon.die();
          throw error;
        },
      );
    },
    // `die()` waits on a 0 ms timer, that is 1 ms: a later 1 ms timer fires after all of them. Those
    // timers outlive the young generation; collecting them here keeps their cost off the next contender.
    async settle() {
      await sleep(1);
      (globalThis as { gc?: () => void }).gc?.();
    },
    async close() {
      const closed = once(lightship.server, 'close');
      await lightship.shutdown();
      if (lightship.server.listening) await closed;
    },
  };
}
