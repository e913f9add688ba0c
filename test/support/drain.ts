/** Helpers for the tests of `DrainController`: deferreds, fake timers, and members cleaned up after each test. */
import { afterEach, vi } from 'vitest';
import { DrainController, type DrainControllerOptions } from '../../src/index.js';
import { MemoryBackend, MemoryCoordinator } from '../../src/adapters/memory/index.js';

/** A promise with its resolve and reject, to settle from the test. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  readonly resolve: (value: T) => void;
  readonly reject: (error: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A promise that never settles. */
export const never = new Promise<never>(() => {});

/** Fakes the timers and clocks the controller reads; pair with `afterEach(() => vi.useRealTimers())`. */
export function fakeTimers(): void {
  vi.useFakeTimers({
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
  });
}

/** A started controller. */
export async function started(options?: DrainControllerOptions): Promise<DrainController> {
  const drain = new DrainController(options);
  await drain.start();
  return drain;
}

/**
 * Members of group `g` (5 s budget) and memory coordinators that are shut down (forced) and closed
 * after each test. Call once, at the top of a test file.
 */
export function cleanedUp(): {
  member(options: DrainControllerOptions): DrainController;
  memory(backend?: MemoryBackend): MemoryCoordinator;
} {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await Promise.all(cleanup.splice(0).map((f) => f()));
  });
  return {
    member(options) {
      const drain = new DrainController({ group: 'g', shutdownTimeoutMs: 5_000, ...options });
      cleanup.push(() => drain.shutdown({ force: true }));
      return drain;
    },
    memory(backend = new MemoryBackend()) {
      const coordinator = new MemoryCoordinator({ backend });
      cleanup.push(() => coordinator.close());
      return coordinator;
    },
  };
}
