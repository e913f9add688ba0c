import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { DrainClosedError, DrainController, type TaskContext } from '../src/index.js';
import { deferred, started } from './support/drain.js';

describe('track()', () => {
  it('counts the task synchronously, before fn runs', async () => {
    const drain = await started();
    let seen = -1;
    const p = drain.track(() => {
      seen = drain.inFlight;
      return 42;
    });
    expect(seen).toBe(1);
    await expect(p).resolves.toBe(42);
    expect(drain.inFlight).toBe(0);
  });

  it('settles with the value or the error of fn, sync or async', async () => {
    const drain = await started();
    await expect(drain.track(async () => 'a')).resolves.toBe('a');
    await expect(drain.track(() => 'b')).resolves.toBe('b');
    const boom = new Error('boom');
    await expect(drain.track(async () => Promise.reject(boom))).rejects.toBe(boom);
    await expect(
      drain.track(() => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    const thenable = { then: (ok: (v: string) => void) => ok('thenable') } as unknown as PromiseLike<string>;
    await expect(drain.track(() => thenable)).resolves.toBe('thenable');
    expect(drain.inFlight).toBe(0);
  });

  it('passes one shared context with stopping and signal', async () => {
    const drain = await started();
    const contexts: TaskContext[] = [];
    await drain.track((ctx) => contexts.push(ctx));
    await drain.track((ctx) => contexts.push(ctx), { label: 'x' });
    expect(contexts[0]).toBe(contexts[1]);
    expect(contexts[0]?.signal).toBeInstanceOf(AbortSignal);
    expect(contexts[0]?.stopping.aborted).toBe(false);
  });

  it('throws a TypeError for a non-function, naming the value', async () => {
    const drain = await started();
    expect(() => drain.track('nope' as never)).toThrow(TypeError);
    expect(() => drain.track('nope' as never)).toThrow(
      'Expected `fn` to be a function, got `"nope"` (string)',
    );
    expect(() => drain.track(() => 1, { label: 5 as never })).toThrow(
      'Expected `label` to be a string, got `5`',
    );
    expect(() => drain.track(() => 1, { lable: 'x' } as never)).toThrow('Unknown option `lable`');
  });

  it('reports a bad label even when intake is closed', () => {
    const a = new DrainController();
    expect(() => a.track(() => 1, { label: 1 as never })).toThrow('Expected `label` to be a string');
  });

  it('rejects with DrainClosedError before start(), without running fn', async () => {
    const drain = new DrainController();
    const fn = vi.fn();
    await expect(drain.track(fn)).rejects.toThrow(DrainClosedError);
    await expect(drain.track(fn)).rejects.toThrow('call start()');
    expect(fn).not.toHaveBeenCalled();
  });

  it('rejects in the same tick once shutdown has begun, without running fn', async () => {
    const drain = await started();
    const fn = vi.fn();
    const shutdown = drain.shutdown();
    const refused = drain.track(fn);
    expect(drain.inFlight).toBe(0);
    await expect(refused).rejects.toMatchObject({ code: 'ERR_DRAIN_CLOSED', name: 'DrainClosedError' });
    expect(fn).not.toHaveBeenCalled();
    await shutdown;
  });

  it('track() with a label names the tasks still in flight, in start order, once others settled', async () => {
    const drain = await started();
    const [a, b, c] = [deferred(), deferred(), deferred()];
    void drain.track(() => a.promise, { label: 'a' }).catch(() => {});
    void drain.track(() => b.promise, { label: 'b' });
    void drain.track(() => c.promise, { label: 'c' });
    // Settled at once, sync or thrown: their labels never linger.
    const sync = drain.track(() => 1, { label: 'sync' });
    const boom = new Error('boom');
    const thrown = drain.track(
      () => {
        throw boom;
      },
      { label: 'throws' },
    );
    expect(drain.inFlight).toBe(3);
    await expect(sync).resolves.toBe(1);
    await expect(thrown).rejects.toBe(boom);
    b.resolve();
    a.reject(new Error('failed'));
    const thenable = { then: (ok: (v: number) => void) => ok(2) } as unknown as PromiseLike<number>;
    await expect(drain.track(() => thenable, { label: 'thenable' })).resolves.toBe(2);
    expect(drain.inFlight).toBe(1);
    // New tasks take the freed places, yet are listed after the one still running; a label may repeat.
    void drain.track(() => new Promise(() => {}), { label: 'd' });
    void drain.track(() => new Promise(() => {}), { label: 'c' });
    void drain.track(() => new Promise(() => {}));
    const report = await drain.shutdown({ force: true });
    expect(report.abortedLabels).toEqual(['c', 'd', 'c']);
    expect(report.stragglerLabels).toEqual(['c', 'd', 'c']);
    expect(report.stragglers).toBe(4);
  });

  describe.each([
    ['without a label', undefined],
    ['with a label', { label: 'odd' }],
  ])(
    'a task whose result is an odd promise, %s: counted down once, never thrown out of track()',
    (_, options) => {
      /** Each case: a result that is `instanceof Promise`, and how its task settles. */
      const boom = new Error('boom');
      /** `promise` with an own getter `key` that throws `boom`. */
      const throwingOnRead = (promise: Promise<unknown>, key: string): Promise<unknown> =>
        Object.defineProperty(promise, key, {
          get() {
            throw boom;
          },
        });
      const cases: [string, () => unknown, (settled: Promise<unknown>) => Promise<void>][] = [
        [
          'a then of its own that calls back twice',
          () => {
            const p = Promise.resolve(1);
            p.then = function (this: Promise<number>, ...handlers: Parameters<Promise<number>['then']>) {
              void Promise.prototype.then.apply(this, handlers);
              return Promise.prototype.then.apply(this, handlers);
            } as Promise<number>['then'];
            return p;
          },
          (settled) => expect(settled).resolves.toBe(1),
        ],
        [
          'a subclass whose species throws',
          () => {
            class Hostile<T> extends Promise<T> {
              static override get [Symbol.species](): PromiseConstructor {
                throw boom;
              }
            }
            return Hostile.resolve(3);
          },
          (settled) => expect(settled).rejects.toBe(boom),
        ],
        [
          'a then getter of its own that throws',
          () => throwingOnRead(Promise.resolve(5), 'then'),
          (settled) => expect(settled).rejects.toBe(boom),
        ],
        [
          'an object that only inherits from Promise.prototype',
          () => Object.create(Promise.prototype) as unknown,
          (settled) => expect(settled).rejects.toBeInstanceOf(TypeError),
        ],
        [
          'a promise whose constructor throws when read',
          () => throwingOnRead(Promise.resolve(4), 'constructor'),
          (settled) => expect(settled).rejects.toBe(boom),
        ],
      ];
      it('a then of its own that never calls back: in flight, as a task that never ends', async () => {
        const drain = await started();
        const p = Promise.resolve(2);
        p.then = (() => new Promise(() => {})) as Promise<number>['then'];
        void drain.track(() => p, options);
        await new Promise((resolve) => setImmediate(resolve));
        expect(drain.inFlight).toBe(1);
        const report = await drain.shutdown({ force: true });
        expect(report.stragglers).toBe(1);
        expect(report.stragglerLabels).toEqual(options === undefined ? [] : ['odd']);
      });

      it.each(cases)('%s', async (_name, result, expectSettled) => {
        const drain = await started();
        let settled: Promise<unknown> | undefined;
        expect(() => {
          settled = drain.track(result, options);
        }).not.toThrow();
        await expectSettled(settled as Promise<unknown>);
        // Past every microtask a second call back could run in.
        await new Promise((resolve) => setImmediate(resolve));
        expect(drain.inFlight).toBe(0);
        // The list and the count still right: the two tasks left running, named in start order.
        void drain.track(() => new Promise(() => {}), { label: 'still-running' });
        void drain.track(() => new Promise(() => {}), { label: 'also-running' });
        expect(drain.inFlight).toBe(2);
        const report = await drain.shutdown({ force: true });
        expect(report.stragglerLabels).toEqual(['still-running', 'also-running']);
      });
    },
  );

  it('track() with a label keeps its list right across bursts larger than the slots it keeps', async () => {
    const drain = await started();
    for (const size of [3_000, 10, 2_000]) {
      const gate = deferred();
      const tasks = Array.from({ length: size }, (_, i) =>
        drain.track(() => gate.promise.then(() => i), { label: `job-${i}` }),
      );
      expect(drain.inFlight).toBe(size);
      gate.resolve();
      expect(await Promise.all(tasks)).toEqual(tasks.map((_, i) => i));
      expect(drain.inFlight).toBe(0);
    }
    const last = deferred();
    void drain.track(() => last.promise, { label: 'done-later' }).catch(() => {});
    void drain.track(() => new Promise(() => {}), { label: 'last' });
    last.reject(new Error('late'));
    await Promise.resolve();
    await Promise.resolve();
    const report = await drain.shutdown({ force: true });
    expect(report.stragglerLabels).toEqual(['last']);
  });

  it('tryTrack() returns undefined instead of rejecting when intake is closed', async () => {
    const drain = await started();
    await expect(drain.tryTrack(() => 7)).resolves.toBe(7);
    await drain.shutdown();
    expect(drain.tryTrack(() => 7)).toBeUndefined();
  });
});

describe('onIdle()', () => {
  it('resolves at once when idle, and when the last task settles otherwise', async () => {
    const drain = await started();
    await drain.onIdle();
    const d = deferred();
    void drain.track(() => d.promise);
    let idle = false;
    const waiting = drain.onIdle().then(() => (idle = true));
    await Promise.resolve();
    expect(idle).toBe(false);
    d.resolve();
    await waiting;
    expect(idle).toBe(true);
  });

  it('rejects with the reason of its signal', async () => {
    const drain = await started();
    void drain.track(() => new Promise(() => {}));
    const ac = new AbortController();
    const waiting = drain.onIdle({ signal: ac.signal });
    ac.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
  });

  it('leaves no listener on a long-lived signal, and checks it', async () => {
    const a = await started();
    const app = new AbortController();
    for (let i = 0; i < 20; i++) {
      let done!: () => void;
      void a.track(() => new Promise<void>((resolve) => (done = resolve)));
      const idle = a.onIdle({ signal: app.signal });
      done();
      await idle;
    }
    expect(getEventListeners(app.signal, 'abort')).toHaveLength(0);
    await expect(a.onIdle({ signal: 5 as never })).rejects.toThrow(
      'Expected `signal` to be an AbortSignal, got `5` (number)',
    );
  });
});
