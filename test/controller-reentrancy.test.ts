/**
 * DrainController is safe against its own callers: listeners, stoppers and tasks that call back into
 * it, throw, or return values that misbehave.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  DrainClosedError,
  DrainController,
  type DrainControllerOptions,
  type DrainState,
  type ShutdownReport,
} from '../src/index.js';

const controllers: DrainController[] = [];
afterEach(async () => {
  await Promise.all(controllers.splice(0).map((c) => c.shutdown({ force: true })));
});

function controller(options: DrainControllerOptions = {}): DrainController {
  const drain = new DrainController({ shutdownTimeoutMs: 2_000, ...options });
  controllers.push(drain);
  return drain;
}

/** Records every state change and `stopped` event, to show that one shutdown ran once. */
function watch(drain: DrainController): { states: DrainState[]; stopped: ShutdownReport[] } {
  const states: DrainState[] = [];
  const stopped: ShutdownReport[] = [];
  drain.on('stateChange', ({ to }) => states.push(to));
  drain.on('stopped', (report) => stopped.push(report));
  return { states, stopped };
}

describe('shutdown() called from inside a shutdown', () => {
  it('from a stateChange listener: the same promise, one run, stopped once and never left', async () => {
    const drain = controller();
    await drain.start();
    const seen = watch(drain);
    const inner: Promise<ShutdownReport>[] = [];
    drain.on('stateChange', () => inner.push(drain.shutdown()));
    const outer = drain.shutdown();
    const report = await outer;
    await Promise.all(inner);
    expect(inner.length).toBeGreaterThan(0);
    for (const p of inner) expect(p).toBe(outer);
    expect(seen.stopped).toEqual([report]);
    expect(seen.states).toEqual(['draining', 'stopped']);
    expect(report.phases.filter((p) => p.name === 'drain')).toHaveLength(1);
    expect(drain.state).toBe('stopped');
  });

  it('from a `stopping` listener, an intake stopper, and the drained and stopped events', async () => {
    const drain = controller();
    await drain.start();
    const seen = watch(drain);
    const inner: Promise<ShutdownReport>[] = [];
    drain.context.stopping.addEventListener('abort', () => inner.push(drain.shutdown()));
    drain.onStopIntake(() => {
      inner.push(drain.shutdown());
    });
    drain.on('drained', () => inner.push(drain.shutdown()));
    drain.on('stopped', () => inner.push(drain.shutdown()));
    const outer = drain.shutdown();
    const report = await outer;
    await Promise.all(inner);
    expect(inner).toHaveLength(4);
    for (const p of inner) expect(p).toBe(outer);
    expect(seen.stopped).toEqual([report]);
    expect(report.phases.map((p) => p.name)).toEqual(['stop-intake', 'drain']);
  });
});

describe('tracked work and its listeners', () => {
  it('an idle listener that throws changes no task result and does not stall the drain', async () => {
    const drain = controller();
    await drain.start();
    drain.on('idle', () => {
      throw new Error('listener bug');
    });
    let finish!: (value: string) => void;
    const task = drain.track(() => new Promise<string>((resolve) => (finish = resolve)));
    const stopping = drain.shutdown();
    // Every microtask has run: the drain is waiting for the task now.
    await new Promise((resolve) => setImmediate(resolve));
    finish('done');
    await expect(task).resolves.toBe('done');
    const report = await stopping;
    expect(report).toMatchObject({ outcome: 'clean', completed: 1, aborted: 0 });
    expect(drain.inFlight).toBe(0);
  });

  it('a value whose `then` getter throws rejects the task and leaves nothing in flight', async () => {
    const drain = controller();
    await drain.start();
    const boom = new Error('then getter');
    const hostile = Object.defineProperty({}, 'then', {
      get() {
        throw boom;
      },
    });
    await expect(drain.track(() => hostile)).rejects.toBe(boom);
    expect(drain.inFlight).toBe(0);
    const report = await drain.shutdown();
    expect(report.outcome).toBe('clean');
  });

  it('tasks cancelled by force count as aborted, even when they settle at once', async () => {
    const drain = controller();
    await drain.start();
    const tasks = [1, 2, 3].map(() =>
      drain.track(
        ({ signal }) =>
          new Promise<void>((_, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
          ),
      ),
    );
    for (const t of tasks) t.catch(() => {});
    const report = await drain.shutdown({ force: true });
    expect(report).toMatchObject({ outcome: 'forced', inFlightAtStart: 3, aborted: 3, completed: 0 });
  });

  it('tasks cancelled by a later force count as aborted too', async () => {
    const drain = controller();
    await drain.start();
    const task = drain.track(
      ({ signal }) =>
        new Promise<void>((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
        ),
      { label: 'job-1' },
    );
    task.catch(() => {});
    const stopping = drain.shutdown();
    await Promise.resolve();
    void drain.shutdown({ force: true });
    const report = await stopping;
    expect(report).toMatchObject({ aborted: 1, completed: 0, abortedLabels: ['job-1'] });
  });
});

describe('start() and shutdown() arguments', () => {
  it('start() after a finished shutdown rejects with DrainClosedError, even after an earlier start', async () => {
    const drain = controller();
    await drain.start();
    await drain.shutdown();
    await expect(drain.start()).rejects.toBeInstanceOf(DrainClosedError);
    const never = controller();
    await never.shutdown();
    await expect(never.start()).rejects.toBeInstanceOf(DrainClosedError);
  });

  it('bad options throw ConfigurationError naming the option and the value', async () => {
    const drain = controller();
    await drain.start();
    expect(() => drain.shutdown({ reason: 1 as never })).toThrow(ConfigurationError);
    expect(() => drain.shutdown({ reason: 1 as never })).toThrow(
      'Expected `reason` to be a string, got `1` (number)',
    );
    expect(() => drain.shutdown({ force: 1 as never })).toThrow(ConfigurationError);
    expect(() => drain.track(() => 1, { label: 2 as never })).toThrow(ConfigurationError);
    expect(() => drain.track(() => 1, { label: 2 as never })).toThrow('`label`');
  });
});
