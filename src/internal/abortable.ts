/**
 * The wait of a caller that may give up: settles with `promise`, or rejects with `signal.reason` as soon
 * as `signal` aborts (at once when it has); `promise` runs on, its rejection handled. No timer.
 * @internal
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
