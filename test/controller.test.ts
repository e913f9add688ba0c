import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ConfigurationError,
  DrainClosedError,
  DrainController,
  DrainForcedError,
  DrainTimeoutError,
  type DrainState,
  type TaskContext,
} from '../src/index.js';

function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const fakeTimers = (): void => {
  vi.useFakeTimers({
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
  });
};

async function started(options?: ConstructorParameters<typeof DrainController>[0]): Promise<DrainController> {
  const drain = new DrainController(options);
  await drain.start();
  return drain;
}

afterEach(() => {
  vi.useRealTimers();
});

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

  it('tryTrack() returns undefined instead of rejecting when intake is closed', async () => {
    const drain = await started();
    await expect(drain.tryTrack(() => 7)).resolves.toBe(7);
    await drain.shutdown();
    expect(drain.tryTrack(() => 7)).toBeUndefined();
  });
});

describe('shutdown()', () => {
  it('drains as the last task settles, with no poll (no timer needs to fire)', async () => {
    fakeTimers();
    const drain = await started();
    const a = deferred();
    const b = deferred();
    void drain.track(() => a.promise);
    void drain.track(() => b.promise);
    let done = false;
    const shutdown = drain.shutdown().then((r) => {
      done = true;
      return r;
    });
    a.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toBe(false);
    b.resolve();
    // Only microtasks run from here: a polling drain would never finish without timers advancing.
    for (let i = 0; i < 20 && !done; i++) await Promise.resolve();
    const report = await shutdown;
    expect(report).toMatchObject({
      outcome: 'clean',
      inFlightAtStart: 2,
      completed: 2,
      aborted: 0,
      stragglers: 0,
      forced: false,
      handOff: 'disabled',
    });
    expect(report.phases.map((p) => p.name)).toEqual(['drain']);
    expect(drain.state).toBe('stopped');
  });

  it('aborts `stopping` when shutdown begins and `signal` at the drain deadline, then reports stragglers', async () => {
    fakeTimers();
    const drain = await started({ shutdownTimeoutMs: 10_000, abortGraceMs: 1_000 });
    const { stopping, signal } = drain.context;
    const never = new Promise(() => {});
    void drain.track(() => never, { label: 'stuck-job' });
    const quits = deferred();
    void drain.track(
      ({ signal: s }) =>
        new Promise<void>((resolve) => s.addEventListener('abort', () => (resolve(), quits.resolve()))),
      { label: 'polite-job' },
    );
    void drain.track(() => never);
    const timeouts: unknown[] = [];
    drain.on('drainTimeout', (info) => timeouts.push(info));

    const shutdown = drain.shutdown({ reason: 'test' });
    expect(stopping.aborted).toBe(true);
    expect(stopping.reason).toBeInstanceOf(DrainClosedError);
    expect(drain.ready).toBe(false);
    expect(drain.state).toBe('draining');

    await vi.advanceTimersByTimeAsync(8_999);
    expect(signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(DrainTimeoutError);
    expect(signal.reason).toMatchObject({ code: 'ERR_DRAIN_TIMEOUT' });
    expect(timeouts).toEqual([{ inFlight: 3, labels: ['stuck-job', 'polite-job'] }]);
    await quits.promise;

    await vi.advanceTimersByTimeAsync(1_000);
    const report = await shutdown;
    expect(report).toMatchObject({
      reason: 'test',
      outcome: 'timed-out',
      inFlightAtStart: 3,
      completed: 0,
      aborted: 3,
      abortedLabels: ['stuck-job', 'polite-job'],
      stragglers: 2,
      stragglerLabels: ['stuck-job'],
    });
    expect(report.phases.map((p) => [p.name, p.outcome])).toEqual([
      ['drain', 'timeout'],
      ['grace', 'timeout'],
    ]);
  });

  it('uses drainShare of the budget for the drain', async () => {
    fakeTimers();
    const drain = await started({ shutdownTimeoutMs: 10_000, drainShare: 0.5, abortGraceMs: 500 });
    void drain.track(() => new Promise(() => {}));
    const shutdown = drain.shutdown();
    await vi.advanceTimersByTimeAsync(4_499);
    expect(drain.context.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(drain.context.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    const report = await shutdown;
    expect(report.durationMs).toBe(5_000);
  });

  it('force escalates a shutdown under way: signal aborts now and nothing more is awaited', async () => {
    fakeTimers();
    const drain = await started({ shutdownTimeoutMs: 60_000 });
    void drain.track(() => new Promise(() => {}), { label: 'forever' });
    const escalations: unknown[] = [];
    drain.on('escalate', (e) => escalations.push(e));
    const first = drain.shutdown({ reason: 'SIGTERM' });
    await vi.advanceTimersByTimeAsync(100);
    const second = drain.shutdown({ force: true, reason: 'SIGTERM again' });
    expect(second).toBe(first);
    expect(drain.context.signal.aborted).toBe(true);
    expect(drain.context.signal.reason).toBeInstanceOf(DrainForcedError);
    const report = await first; // no timer advanced: nothing awaited after force
    expect(report).toMatchObject({ outcome: 'forced', forced: true, aborted: 1, stragglers: 1 });
    expect(report.stragglerLabels).toEqual(['forever']);
    expect(escalations).toEqual([{ reason: 'SIGTERM again', inFlight: 1 }]);
  });

  it('gives every caller the same promise and the same report', async () => {
    const drain = await started();
    const d = deferred();
    void drain.track(() => d.promise);
    const calls = [drain.shutdown(), drain.shutdown(), drain.shutdown({ reason: 'ignored' })];
    expect(calls[1]).toBe(calls[0]);
    expect(calls[2]).toBe(calls[0]);
    d.resolve();
    const reports = await Promise.all(calls);
    expect(reports[0]).toBe(reports[1]);
    expect(reports[0]?.inFlightAtStart).toBe(1);
  });

  it('works before start(): nothing to drain, a clean report', async () => {
    const drain = new DrainController();
    const report = await drain.shutdown();
    expect(report).toMatchObject({ outcome: 'clean', inFlightAtStart: 0 });
    expect(drain.state).toBe('stopped');
    await expect(drain.start()).rejects.toThrow(DrainClosedError);
  });

  it('emits every state change and the drained event', async () => {
    const drain = new DrainController();
    const states: DrainState[] = [];
    drain.on('stateChange', ({ to }) => states.push(to));
    const drained = vi.fn();
    drain.on('drained', drained);
    await drain.start();
    await drain.track(async () => {});
    await drain.shutdown();
    expect(states).toEqual(['starting', 'running', 'draining', 'stopped']);
    expect(drained).toHaveBeenCalledWith(expect.objectContaining({ completed: 0 }));
  });

  it('supports `await using` through Symbol.asyncDispose', async () => {
    let captured: DrainController | undefined;
    {
      await using drain = await started();
      captured = drain;
      expect(drain.state).toBe('running');
    }
    expect(captured.state).toBe('stopped');
  });

  it('checks its options', async () => {
    const drain = await started();
    expect(() => drain.shutdown({ force: 'yes' as never })).toThrow(
      'Expected `force` to be a boolean, got `"yes"`',
    );
    expect(() => drain.shutdown({ reason: 3 as never })).toThrow('Expected `reason` to be a string, got `3`');
    expect(() => drain.shutdown({ forse: true } as never)).toThrow('Unknown option `forse`');
    await drain.shutdown();
  });
});

describe('onStopIntake()', () => {
  it('runs stoppers in order; one that throws is reported and does not stop the shutdown', async () => {
    const drain = await started();
    const order: string[] = [];
    const boom = new Error('cancel failed');
    drain.onStopIntake(() => {
      order.push('a');
    });
    drain.onStopIntake(async () => {
      order.push('b');
      throw boom;
    });
    const off = drain.onStopIntake(() => order.push('removed'));
    drain.onStopIntake(() => {
      order.push('c');
    });
    off();
    const report = await drain.shutdown();
    expect(order).toEqual(['a', 'b', 'c']);
    expect(report.errors).toEqual([{ phase: 'intake-stopper', error: boom }]);
    expect(report.outcome).toBe('failed');
    expect(report.phases[0]).toMatchObject({ name: 'stop-intake', outcome: 'error' });
  });

  it('bounds a stopper that hangs by the drain deadline and aborts its signal', async () => {
    fakeTimers();
    const drain = await started({ shutdownTimeoutMs: 2_000, abortGraceMs: 0 });
    let stopperSignal: AbortSignal | undefined;
    drain.onStopIntake((signal) => {
      stopperSignal = signal;
      return new Promise(() => {});
    });
    const shutdown = drain.shutdown();
    await vi.advanceTimersByTimeAsync(2_000);
    const report = await shutdown;
    expect(stopperSignal?.aborted).toBe(true);
    expect(report.errors[0]?.error).toBeInstanceOf(DrainTimeoutError);
    expect(report.durationMs).toBe(2_000);
  });

  it('rejects a non-function', () => {
    expect(() => new DrainController().onStopIntake(null as never)).toThrow(
      'Expected `fn` to be a function, got `null` (null)',
    );
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
});

describe('new DrainController() validation', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      'misspelt option',
      { shutdownTimeoutMS: 1000 },
      'Unknown option `shutdownTimeoutMS` for DrainController (did you mean `shutdownTimeoutMs`?)',
    ],
    [
      'negative budget',
      { shutdownTimeoutMs: -1 },
      'Expected `shutdownTimeoutMs` to be a finite number greater than 0, got `-1` (number)',
    ],
    [
      'zero budget',
      { shutdownTimeoutMs: 0 },
      'Expected `shutdownTimeoutMs` to be a finite number greater than 0, got `0` (number)',
    ],
    ['infinite budget', { shutdownTimeoutMs: Infinity }, 'got `Infinity` (number)'],
    ['NaN budget', { shutdownTimeoutMs: Number.NaN }, 'got `NaN` (number)'],
    ['string budget', { shutdownTimeoutMs: '25s' }, 'got `"25s"` (string)'],
    ['share of zero', { drainShare: 0 }, 'Expected `drainShare` to be a number in (0, 1], got `0` (number)'],
    [
      'share above one',
      { drainShare: 1.5 },
      'Expected `drainShare` to be a number in (0, 1], got `1.5` (number)',
    ],
    [
      'negative grace',
      { abortGraceMs: -5 },
      'Expected `abortGraceMs` to be a finite number from 0 up, got `-5` (number)',
    ],
    ['empty group', { group: '' }, 'Expected `group` to be a non-empty string, got `""` (string)'],
    [
      'bad policy',
      { unreachablePolicy: 'maybe' },
      'Expected `unreachablePolicy` to be one of `skip`, `park`, got `"maybe"` (string)',
    ],
    [
      'fractional batch',
      { batchSize: 2.5 },
      'Expected `batchSize` to be a whole number from 1 up, got `2.5` (number)',
    ],
    [
      'bad scope',
      { groupScope: 'planet' },
      'Expected `groupScope` to be one of `process`, `host`, `cluster`, got `"planet"`',
    ],
    ['bad coordinator', { coordinator: {}, store: {} }, 'Expected `coordinator` to be a Coordinator'],
    [
      'non-object options',
      42 as never,
      'Expected `DrainController options` to be an object, got `42` (number)',
    ],
  ];
  it.each(cases)('rejects a %s, naming the option and the value', (_, options, message) => {
    expect(() => new DrainController(options as never)).toThrow(ConfigurationError);
    expect(() => new DrainController(options as never)).toThrow(message);
  });

  it('errors carry a stable code and name', () => {
    try {
      new DrainController({ drainShare: 2 });
    } catch (error) {
      expect(error).toMatchObject({ code: 'ERR_CONFIGURATION', name: 'ConfigurationError' });
    }
    expect.assertions(1);
  });
});

beforeEach(() => {
  vi.useRealTimers();
});
