/**
 * Monotonic time and bounded, cancellable waits shared by the core and the adapters. Every timer here is
 * cleared when its wait ends, so nothing is left holding the process.
 * @internal
 */

/** Milliseconds on a monotonic clock (`performance.now()`), immune to wall-clock jumps. */
export function now(): number {
  return performance.now();
}

/** A rejection reason for a signal without one. */
function reasonOf(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('Aborted');
}

/**
 * Resolves after `ms` milliseconds; rejects with `signal.reason` as soon as `signal` aborts.
 * The timer is unref'd only when `unref` is set: a wait the caller depends on keeps the process alive.
 */
export function delay(ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  if (signal?.aborted) return Promise.reject(reasonOf(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(reasonOf(signal as AbortSignal));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      Math.max(0, ms),
    );
    if (unref) timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Settles with `promise`, or rejects with `onTimeout()` after `ms` milliseconds, or with `signal.reason`
 * when `signal` aborts, whichever comes first. The timer is always cleared.
 */
export function bounded<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => unknown,
  signal?: AbortSignal,
): Promise<T> {
  if (signal?.aborted) {
    promise.catch(() => {});
    return Promise.reject(reasonOf(signal));
  }
  return new Promise<T>((resolve, reject) => {
    // The first outcome clears the timer and the listener, so that no other one fires after it.
    const finish = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      finish();
      reject(reasonOf(signal as AbortSignal));
    };
    const timer = setTimeout(
      () => {
        finish();
        reject(onTimeout());
      },
      Math.max(0, ms),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(finish);
  });
}

/** An `AbortSignal` that follows others until `dispose()`. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Stops following: call it when the operation the signal was made for has ended. */
  dispose(): void;
}

const noop = (): void => {};

/**
 * An `AbortSignal` that aborts when any of `signals` does (skipping undefined ones), until disposed.
 * Unlike `AbortSignal.any()`, it leaves nothing behind in a long-lived source once disposed: Node.js keeps
 * every signal made by `AbortSignal.any()` in its sources' dependants (about 57 bytes a call on Node.js 20,
 * 6 on Node.js 24, for good: nodejs/node#55351).
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): LinkedSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1) return { signal: present[0] as AbortSignal, dispose: noop };
  const aborted = present.find((s) => s.aborted);
  if (aborted !== undefined) return { signal: AbortSignal.abort(aborted.reason), dispose: noop };
  const controller = new AbortController();
  const listeners = present.map((source) => () => {
    dispose();
    controller.abort(source.reason);
  });
  const dispose = (): void => {
    present.forEach((source, i) => source.removeEventListener('abort', listeners[i] as () => void));
  };
  present.forEach((source, i) => source.addEventListener('abort', listeners[i] as () => void));
  return { signal: controller.signal, dispose };
}

/** A random id, for member ids, incarnations and owner keys. */
export function randomId(): string {
  return crypto.randomUUID();
}
