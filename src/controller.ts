import { EventEmitter } from 'node:events';
import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { DrainClosedError, DrainForcedError } from './errors.js';
import { now } from './internal/time.js';
import { publish } from './metrics.js';
import { type CompiledOptions, type DrainControllerOptions, compileOptions } from './options.js';
import type { ResumeReport, ShutdownReport } from './report.js';
import { runShutdown, type ShutdownHost, type Stopper } from './shutdown.js';
import { Starter, type StartHost } from './start.js';
import { Tracker } from './tracker.js';
import type {
  DrainEvents,
  DrainState,
  OnIdleOptions,
  ShutdownOptions,
  TaskContext,
  TrackOptions,
} from './types.js';
import { checkBoolean, checkFunction, checkOptionsObject, invalid } from './validate.js';

type StateChange = DrainEvents['stateChange'][0];

const log = createDebug('graceful-drain:controller');

/**
 * Tracks in-flight work, closes intake on shutdown, drains within one budget, asks stragglers to wrap up
 * then cancels them, and reports what happened. Given a `coordinator` and a `store`, the last member of a
 * group parks the group's running workflows at shutdown, and a starting member resumes exactly those.
 *
 * @example
 * ```ts
 * const drain = new DrainController({ shutdownTimeoutMs: 25_000 });
 * drain.onStopIntake(() => consumer.pause());
 * await drain.start();
 * consumer.on('message', (msg) => drain.track(({ signal }) => handle(msg, signal)));
 * const report = await drain.shutdown();
 * ```
 */
export class DrainController extends EventEmitter<DrainEvents> {
  readonly #options: CompiledOptions;
  readonly #mutex = new Mutex();
  readonly #force = new AbortController();
  /** Aborted when shutdown begins: cancels a start in progress and the background resume. */
  readonly #lifecycle = new AbortController();
  readonly #stoppers: Stopper[] = [];
  readonly #tracker: Tracker;
  readonly #starter: Starter | undefined;
  #state: DrainState = 'idle';
  /** The state changes still to send while one is being sent (see #setState). */
  #stateChanges: StateChange[] | undefined;
  #startPromise: Promise<void> | undefined;
  #shutdownPromise: Promise<ShutdownReport> | undefined;

  /** @param options - see {@link DrainControllerOptions}; a bad one throws a `ConfigurationError`. */
  constructor(options?: DrainControllerOptions) {
    super();
    const compiled = (this.#options = compileOptions(options));
    this.#tracker = new Tracker({
      closedError: () => this.#closedError(),
      emitIdle: () => {
        if (this.listenerCount('idle') !== 0) this.#emit('idle');
      },
    });
    if (compiled.handOff !== undefined) {
      this.#starter = new Starter({
        options: compiled as StartHost['options'],
        lifecycle: this.#lifecycle.signal,
        emit: (event, ...args) => this.#emit(event, ...args),
      });
    }
  }

  /** The current state; see {@link DrainState}. */
  get state(): DrainState {
    return this.#state;
  }

  /** Whether this member should receive work: true while running, false from the first moment of shutdown. */
  get ready(): boolean {
    return this.#tracker.open;
  }

  /** How many tracked tasks are in flight. */
  get inFlight(): number {
    return this.#tracker.inFlight;
  }

  /** This member's id in its group. */
  get memberId(): string {
    return this.#options.memberId;
  }

  /** The group this member belongs to. */
  get group(): string {
    return this.#options.group;
  }

  /** The shared task context: `stopping` aborts when shutdown begins, `signal` at the drain deadline. */
  get context(): TaskContext {
    return this.#tracker.context;
  }

  /**
   * Runs `fn` as tracked work, counted synchronously before it runs; settles with `fn`'s value or error (a
   * synchronous throw becomes a rejection). Before `start()` or once shutdown has begun, it rejects at
   * once with `DrainClosedError` and `fn` does not run.
   *
   * @throws TypeError when `fn` is not a function.
   */
  track<T>(fn: (context: TaskContext) => T | PromiseLike<T>, options?: TrackOptions): Promise<Awaited<T>> {
    return this.#tracker.track(fn, options);
  }

  /** Like {@link track}, for pull consumers: `undefined` instead of a rejection when intake is closed. */
  tryTrack<T>(
    fn: (context: TaskContext) => T | PromiseLike<T>,
    options?: TrackOptions,
  ): Promise<Awaited<T>> | undefined {
    return this.#tracker.open || typeof fn !== 'function' ? this.#tracker.track(fn, options) : undefined;
  }

  /** Resolves once nothing is in flight (at once when nothing is); rejects with `signal.reason` on abort. */
  onIdle(options?: OnIdleOptions): Promise<void> {
    return this.#tracker.onIdle(options);
  }

  /**
   * Registers an intake stopper, run in order when shutdown begins, bounded by the drain deadline (its
   * signal aborts then); one that throws or hangs is recorded. Registered once shutdown has begun, it
   * runs at once, with a signal that aborts at the drain deadline too. Returns a function that
   * unregisters it.
   */
  onStopIntake(fn: (signal: AbortSignal) => unknown): () => void {
    const stopper = checkFunction<Stopper>('fn', fn);
    if (this.#shutdownPromise !== undefined) {
      // Intake is already closed: stop this one too, at once, with the signal the registered ones got
      // (aborted at the drain deadline, or when forced): the tasks' `signal`.
      const signal = this.#tracker.context.signal;
      Promise.resolve()
        .then(() => stopper(signal))
        .catch((error: unknown) => log('late intake stopper failed: %O', error));
      return () => {};
    }
    this.#stoppers.push(stopper);
    return () => {
      const i = this.#stoppers.indexOf(stopper);
      if (i !== -1) this.#stoppers.splice(i, 1);
    };
  }

  /**
   * Joins the group (with a coordinator), opens intake and becomes `running`; then, in the background,
   * resumes what the group's last member parked. Every caller gets the same promise; it rejects with
   * `DrainClosedError` once shutdown has begun.
   */
  start(): Promise<void> {
    if (this.#shutdownPromise !== undefined) {
      return Promise.reject(
        new DrainClosedError('Cannot start: the controller was shut down; create a new one'),
      );
    }
    return (this.#startPromise ??= this.#mutex.runExclusive(() => this.#runStart()));
  }

  /** The background resume started by `start()`; `undefined` without a coordinator or before `start()`. */
  whenResumed(): Promise<ResumeReport> | undefined {
    return this.#starter?.resumed;
  }

  /**
   * Closes intake at once (in this tick), runs the intake stoppers, drains within the budget, aborts
   * stragglers, hands off, and resolves with the report. Every caller gets the same promise; `force: true`
   * escalates a shutdown already under way.
   */
  shutdown(options?: ShutdownOptions): Promise<ShutdownReport> {
    const o = checkOptionsObject('shutdown', options, ['force', 'reason']);
    const force = o.force === undefined ? false : checkBoolean('force', o.force);
    if (o.reason !== undefined && typeof o.reason !== 'string') invalid('reason', 'a string', o.reason);
    const reason = o.reason as string | undefined;
    let promise = this.#shutdownPromise;
    if (promise === undefined) {
      const tracker = this.#tracker;
      tracker.open = false;
      log('shutdown begins (reason %s, %d in flight)', reason, tracker.inFlight);
      const host: ShutdownHost = {
        options: this.#options,
        tracker,
        starter: this.#starter,
        stoppers: this.#stoppers,
        force: this.#force.signal,
        startedAt: now(),
        inFlightAtStart: tracker.inFlight,
        reason,
        started: this.#startPromise !== undefined,
        state: () => this.#state,
        setState: (to) => this.#setState(to),
        emit: (event, ...args) => this.#emit(event, ...args),
      };
      // The promise exists before any listener runs: one that calls shutdown() gets this same one.
      promise = this.#shutdownPromise = this.#mutex.runExclusive(() => runShutdown(host));
      this.#lifecycle.abort(new DrainClosedError('Shutdown began'));
      tracker.wrapUp(new DrainClosedError('Shutdown began: wrap up'));
      if (this.#state === 'running') this.#setState('draining');
    }
    if (force) this.#escalate(reason);
    return promise;
  }

  /** Shuts down (for `await using drain = new DrainController(...)`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  #closedError(): DrainClosedError {
    if (this.#shutdownPromise !== undefined) return new DrainClosedError();
    return new DrainClosedError(
      this.#state === 'failed'
        ? 'Intake is closed: start() failed'
        : 'Intake is not open yet: call start() and wait for it before tracking work',
    );
  }

  /**
   * Emits to the user's listeners (false when none). Each listener is called on its own: one that throws
   * is logged and breaks nothing, the next ones still run (`EventEmitter.emit` stops at the first throw).
   */
  #emit<K extends keyof DrainEvents>(event: K, ...args: DrainEvents[K]): boolean {
    // A copy, with the `once` wrappers, which remove themselves when called.
    const listeners = this.rawListeners(event) as ((...args: DrainEvents[K]) => unknown)[];
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (error) {
        log('a %s listener threw: %O', event, error);
      }
    }
    return listeners.length > 0;
  }

  #setState(to: DrainState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    log('state %s -> %s', from, to);
    const inFlight = this.#tracker.inFlight;
    publish('state', () => ({ group: this.group, memberId: this.memberId, from, to, inFlight }));
    // A change made by a listener of another (shutdown() on `running`) is sent once that one has reached
    // every listener: all of them see the changes in the order they happened.
    if (this.#stateChanges !== undefined) {
      this.#stateChanges.push({ from, to });
      return;
    }
    const changes = (this.#stateChanges = [{ from, to }]);
    try {
      for (let i = 0; i < changes.length; i++) this.#emit('stateChange', changes[i] as StateChange);
    } finally {
      this.#stateChanges = undefined;
    }
  }

  #escalate(reason: string | undefined): void {
    // Nothing left to force once the shutdown has finished: no `escalate` after `stopped`.
    if (this.#force.signal.aborted || this.#state === 'stopped') return;
    const inFlight = this.#tracker.inFlight;
    log('shutdown escalated (reason %s, %d in flight)', reason, inFlight);
    const error = new DrainForcedError(
      reason === undefined ? undefined : `The shutdown was forced (${reason})`,
    );
    this.#force.abort(error);
    this.#tracker.abortTasks(error);
    this.#emit('escalate', { reason, inFlight });
  }

  async #runStart(): Promise<void> {
    this.#setState('starting');
    if (this.#starter !== undefined) {
      try {
        await this.#starter.start();
      } catch (error) {
        // A start cancelled by shutdown is not a failure: the shutdown takes over from here.
        if (!this.#lifecycle.signal.aborted) this.#setState('failed');
        throw error;
      }
    }
    this.#lifecycle.signal.throwIfAborted();
    this.#tracker.open = true;
    this.#setState('running');
  }
}
