import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { call } from '../src/internal/calls.js';
import { linkSignals, now } from '../src/internal/time.js';

/** How many `AbortSignal.any()` results `signal` feeds (a Node.js internal: nodejs/node#55351). */
function dependants(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  const set = key === undefined ? undefined : (signal as unknown as Record<symbol, Set<unknown>>)[key];
  return set?.size ?? 0;
}

describe('linkSignals()', () => {
  it('aborts with the reason of the first source that aborts', () => {
    const a = new AbortController();
    const b = new AbortController();
    const { signal } = linkSignals(a.signal, undefined, b.signal);
    expect(signal.aborted).toBe(false);
    b.abort(new Error('b'));
    a.abort(new Error('a'));
    expect(signal.reason).toMatchObject({ message: 'b' });
  });

  it('is aborted at once when a source already is', () => {
    const a = new AbortController();
    a.abort(new Error('early'));
    const { signal } = linkSignals(new AbortController().signal, a.signal);
    expect(signal.reason).toMatchObject({ message: 'early' });
  });

  it('passes a single source through, and never aborts without one', () => {
    const a = new AbortController();
    expect(linkSignals(undefined, a.signal).signal).toBe(a.signal);
    expect(linkSignals().signal.aborted).toBe(false);
  });

  it('once disposed, leaves no listener on its sources and no longer follows them', () => {
    const long = new AbortController();
    const link = linkSignals(long.signal, new AbortController().signal);
    expect(getEventListeners(long.signal, 'abort')).toHaveLength(1);
    link.dispose();
    expect(getEventListeners(long.signal, 'abort')).toHaveLength(0);
    long.abort();
    expect(link.signal.aborted).toBe(false);
  });
});

describe('call() under a long-lived signal', () => {
  it('leaves nothing behind in it, however many calls it runs', async () => {
    const lifecycle = new AbortController();
    const seen: AbortSignal[] = [];
    for (let i = 0; i < 1_000; i++) {
      await call(
        async (signal) => {
          seen.push(signal);
          return i;
        },
        { end: now() + 10_000, onTimeout: () => new Error('late'), stop: lifecycle.signal },
      );
    }
    expect(getEventListeners(lifecycle.signal, 'abort')).toHaveLength(0);
    expect(dependants(lifecycle.signal)).toBe(0);
    // A call abandoned by its caller still sees its signal abort.
    const stuck = call(
      (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      {
        end: now() + 10_000,
        onTimeout: () => new Error('late'),
        stop: lifecycle.signal,
      },
    );
    lifecycle.abort(new Error('stopping'));
    await expect(stuck).rejects.toThrow('stopping');
    expect(seen.at(-1)?.aborted).toBe(false);
  });
});
