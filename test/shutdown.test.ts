import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DrainClosedError,
  DrainController,
  DrainForcedError,
  DrainTimeoutError,
  type DrainState,
} from '../src/index.js';
import { deferred, fakeTimers, started } from './support/drain.js';

afterEach(() => {
  vi.useRealTimers();
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

  it('an intake stopper that unregisters itself does not make the next one be skipped', async () => {
    const a = await started({ group: 'g', shutdownTimeoutMs: 5_000 });
    const ran: string[] = [];
    a.onStopIntake(() => void ran.push('one'));
    const off = a.onStopIntake(() => {
      off();
      ran.push('two');
    });
    a.onStopIntake(() => void ran.push('three'));
    await a.shutdown();
    expect(ran).toEqual(['one', 'two', 'three']);
  });

  it('rejects a non-function', () => {
    expect(() => new DrainController().onStopIntake(null as never)).toThrow(
      'Expected `fn` to be a function, got `null` (null)',
    );
  });
});
