import { EventEmitter } from 'node:events';
import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { pEvent } from 'p-event';
import type { Membership } from './coordinator.js';
import { DrainClosedError, DrainForcedError, DrainTimeoutError, MembershipLostError } from './errors.js';
import {
  type HandOffResult,
  type ParkProgress,
  type ResumeProgress,
  type ResumeReport,
  handOffAtShutdown,
  resumeAtStart,
} from './hand-off.js';
import { bounded, delay, now } from './internal/time.js';
import { publish } from './metrics.js';
import { type CompiledOptions, type DrainControllerOptions, compileOptions } from './options.js';
import type { PhaseName, PhaseReport, ReportedError, ShutdownReport } from './report.js';
import { checkBoolean, checkFunction, checkOptionsObject, describeValue, invalid } from './validate.js';

const log = createDebug('graceful-drain:controller');

/**
 * The lifecycle of a {@link DrainController}:
 *
 * - `idle`: created, intake closed; `track()` rejects until `start()`.
 * - `starting`: `start()` is joining the group (with a coordinator).
 * - `running`: intake open, `ready` is true; with a coordinator, parked workflows resume in the background.
 * - `draining`: shutdown began: intake closed, `ready` false, in-flight work winding down.
 * - `handing-off`: the drain is over; leaving the group and, if this member is last, parking workflows.
 * - `stopped`: the shutdown finished; its report is final.
 * - `failed`: `start()` failed (for example the group could not be joined); `shutdown()` still works.
 */
export type DrainState = 'idle' | 'starting' | 'running' | 'draining' | 'handing-off' | 'stopped' | 'failed';

/** What every tracked function receives. One object, shared by every task. */
export interface TaskContext {
  /** Aborted at the drain deadline ("stop now"), with a `DrainTimeoutError` (or `DrainForcedError`) as reason. */
  readonly signal: AbortSignal;
  /** Aborted when shutdown begins ("wrap up"): finish the current step, take no new one. */
  readonly stopping: AbortSignal;
}

/** Options of {@link DrainController.track}. */
export interface TrackOptions {
  /** A name for the task, reported when it is aborted or left behind as a straggler. */
  readonly label?: string;
}

/** Options of {@link DrainController.shutdown}. */
export interface ShutdownOptions {
  /** Escalate: abort every task's `signal` now and await nothing more. @defaultValue `false` */
  readonly force?: boolean;
  /** Why the shutdown happens (for example the signal's name); recorded in the report. */
  readonly reason?: string;
}

/** Options of {@link DrainController.onIdle}. */
export interface OnIdleOptions {
  /** Stops waiting: the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** The events a {@link DrainController} emits, with their arguments. */
export interface DrainEvents {
  /** The state changed. */
  stateChange: [change: { readonly from: DrainState; readonly to: DrainState }];
  /** Everything in flight settled before the drain deadline. */
  drained: [info: { readonly durationMs: number; readonly completed: number }];
  /** The drain deadline passed with tasks in flight; their `signal` was aborted. */
  drainTimeout: [info: { readonly inFlight: number; readonly labels: readonly string[] }];
  /** The shutdown was escalated with `force` (or a second signal). */
  escalate: [info: { readonly reason: string | undefined; readonly inFlight: number }];
  /** A batch of workflows was parked at shutdown. */
  park: [progress: ParkProgress];
  /** A round of the background resume at start finished. */
  resume: [progress: ResumeProgress];
  /** This member's group membership was lost; the controller re-joins with a new incarnation. */
  membershipLost: [error: unknown];
  /** The last task in flight settled. Emitted only while someone waits for it. */
  idle: [];
  /** The shutdown finished. */
  stopped: [report: ShutdownReport];
}

type Task = (context: TaskContext) => unknown;
type Stopper = (signal: AbortSignal) => unknown;

const trackOptionNames = ['label'];
const shutdownOptionNames = ['force', 'reason'];

/**
 * Tracks in-flight work, closes intake on shutdown, drains within one budget, asks stragglers to wrap
 * up and then cancels them, and reports exactly what happened. Given a `coordinator` and a `store`, the
 * last member of a group parks the group's running workflows at shutdown, and a starting member resumes
 * exactly those.
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
  readonly #stopping = new AbortController();
  readonly #abort = new AbortController();
  readonly #force = new AbortController();
  /** Aborted when shutdown begins: cancels a start in progress and the background resume. */
  readonly #lifecycle = new AbortController();
  readonly #context: TaskContext;
  readonly #stoppers: Stopper[] = [];
  #state: DrainState = 'idle';
  #open = false;
  #inFlight = 0;
  #idleWatchers = 0;
  #labeled: Set<{ readonly label: string }> | undefined;
  #startPromise: Promise<void> | undefined;
  #shutdownPromise: Promise<ShutdownReport> | undefined;
  #shutdownAt = 0;
  #inFlightAtShutdown = 0;
  #reason: string | undefined;
  #membership: Membership | undefined;
  #resumeTask: Promise<ResumeReport> | undefined;
  #phases: PhaseReport[] = [];
  #errors: ReportedError[] = [];

  /**
   * @param options - see {@link DrainControllerOptions}; every option is checked here, and a wrong one
   * throws a `ConfigurationError` naming it and the value it got.
   */
  constructor(options?: DrainControllerOptions) {
    super();
    this.#options = compileOptions(options);
    this.#context = Object.freeze({ signal: this.#abort.signal, stopping: this.#stopping.signal });
  }

  /** The current state; see {@link DrainState}. */
  get state(): DrainState {
    return this.#state;
  }

  /** Whether this member should receive work: true while running, false from the first moment of shutdown. */
  get ready(): boolean {
    return this.#open;
  }

  /** How many tracked tasks are in flight. */
  get inFlight(): number {
    return this.#inFlight;
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
    return this.#context;
  }

  /**
   * Runs `fn` as tracked work. It is counted synchronously, before `fn` runs, and the returned promise
   * settles with `fn`'s value or error (a synchronous throw becomes a rejection). Once shutdown has begun
   * (or before `start()`), it rejects at once with `DrainClosedError` and `fn` does not run.
   *
   * @throws TypeError when `fn` is not a function.
   */
  track<T>(fn: (context: TaskContext) => T | PromiseLike<T>, options?: TrackOptions): Promise<Awaited<T>> {
    if (typeof fn !== 'function') {
      throw new TypeError(`Expected \`fn\` to be a function, got ${describeValue(fn)}`);
    }
    if (options !== undefined) {
      const label = labelOf(options);
      if (!this.#open) return Promise.reject(this.#closedError());
      if (label !== undefined) return this.#trackLabeled(fn, label);
    } else if (!this.#open) return Promise.reject(this.#closedError());
    this.#inFlight++;
    let result: unknown;
    try {
      result = fn(this.#context);
    } catch (error) {
      this.#done();
      return Promise.reject(error);
    }
    if (result instanceof Promise) return result.then(this.#fulfilled, this.#rejected) as Promise<Awaited<T>>;
    if (isThenable(result)) {
      return Promise.resolve(result).then(this.#fulfilled, this.#rejected) as Promise<Awaited<T>>;
    }
    this.#done();
    return Promise.resolve(result as Awaited<T>);
  }

  /**
   * Like {@link track}, for pull consumers: returns `undefined` instead of a rejected promise when
   * intake is closed, so a loop can stop pulling without a try/catch.
   */
  tryTrack<T>(
    fn: (context: TaskContext) => T | PromiseLike<T>,
    options?: TrackOptions,
  ): Promise<Awaited<T>> | undefined {
    if (typeof fn !== 'function') {
      throw new TypeError(`Expected \`fn\` to be a function, got ${describeValue(fn)}`);
    }
    if (!this.#open) return undefined;
    return this.track(fn, options);
  }

  /** Resolves once nothing is in flight (at once when nothing is); rejects with `signal.reason` on abort. */
  async onIdle(options?: OnIdleOptions): Promise<void> {
    const signal = checkOptionsObject('onIdle', options, ['signal']).signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) invalid('signal', 'an AbortSignal', signal);
    signal?.throwIfAborted();
    if (this.#inFlight === 0) return;
    this.#idleWatchers++;
    try {
      // Both listeners go when either fires: a long-lived signal does not collect them.
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          this.off('idle', onIdle);
          reject((signal as AbortSignal).reason);
        };
        const onIdle = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.once('idle', onIdle);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      this.#idleWatchers--;
    }
  }

  /**
   * Registers an intake stopper: run in registration order when shutdown begins, each bounded by the
   * drain deadline and given a signal aborted when its time is up. One that throws or hangs is recorded
   * in the report and does not stop the shutdown. Returns a function that unregisters it.
   */
  onStopIntake(fn: (signal: AbortSignal) => unknown): () => void {
    const stopper = checkFunction<Stopper>('fn', fn);
    if (this.#shutdownPromise !== undefined) {
      // Intake is already closed: stop this one too, at once.
      Promise.resolve()
        .then(() => stopper(this.#force.signal))
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
   * Joins the group (with a coordinator), opens intake and makes the controller `running`; then, in the
   * background, resumes the workflows the group's last member parked. Idempotent: every caller gets the
   * same promise. Rejects with `DrainClosedError` once shutdown has begun.
   */
  start(): Promise<void> {
    if (this.#startPromise !== undefined) return this.#startPromise;
    if (this.#shutdownPromise !== undefined) {
      return Promise.reject(
        new DrainClosedError('Cannot start: the controller was shut down; create a new one'),
      );
    }
    this.#startPromise = this.#mutex.runExclusive(() => this.#runStart());
    return this.#startPromise;
  }

  /**
   * The background resume started by `start()`: resolves with what it did. `undefined` without a
   * coordinator or before `start()`.
   */
  whenResumed(): Promise<ResumeReport> | undefined {
    return this.#resumeTask;
  }

  /**
   * Shuts down: closes intake at once (in this tick), runs the intake stoppers, drains within the budget,
   * aborts stragglers, hands off, and resolves with the report. Every caller gets the same promise;
   * `force: true` escalates a shutdown already under way.
   */
  shutdown(options?: ShutdownOptions): Promise<ShutdownReport> {
    const o = checkOptionsObject('shutdown', options, shutdownOptionNames);
    const force = o.force === undefined ? false : checkBoolean('force', o.force);
    if (o.reason !== undefined && typeof o.reason !== 'string') {
      throw new TypeError(`Expected \`reason\` to be a string, got ${describeValue(o.reason)}`);
    }
    const reason = o.reason as string | undefined;
    if (this.#shutdownPromise === undefined) {
      this.#open = false;
      this.#shutdownAt = now();
      this.#inFlightAtShutdown = this.#inFlight;
      this.#reason = reason;
      log('shutdown begins (reason %s, %d in flight)', reason, this.#inFlight);
      this.#lifecycle.abort(new DrainClosedError('Shutdown began'));
      this.#stopping.abort(new DrainClosedError('Shutdown began: wrap up'));
      if (this.#state === 'running') this.#setState('draining');
      this.#shutdownPromise = this.#mutex.runExclusive(() => this.#runShutdown());
    }
    if (force) this.#escalate(reason);
    return this.#shutdownPromise;
  }

  /** Shuts down (for `await using drain = new DrainController(...)`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  // Shared settle handlers: created once, so track() allocates nothing per call beyond its promise.
  readonly #fulfilled = <T>(value: T): T => {
    this.#done();
    return value;
  };

  readonly #rejected = (error: unknown): never => {
    this.#done();
    throw error;
  };

  #done(): void {
    if (--this.#inFlight === 0 && this.#idleWatchers !== 0) this.emit('idle');
  }

  #trackLabeled<T>(fn: Task, label: string): Promise<Awaited<T>> {
    const entry = { label };
    const labeled = (this.#labeled ??= new Set());
    labeled.add(entry);
    const settle = (): void => {
      labeled.delete(entry);
      this.#done();
    };
    this.#inFlight++;
    let result: unknown;
    try {
      result = fn(this.#context);
    } catch (error) {
      settle();
      return Promise.reject(error);
    }
    const settled = result instanceof Promise ? result : Promise.resolve(result);
    return settled.then(
      (value: unknown) => {
        settle();
        return value as Awaited<T>;
      },
      (error: unknown) => {
        settle();
        throw error;
      },
    );
  }

  #closedError(): DrainClosedError {
    if (this.#shutdownPromise !== undefined) return new DrainClosedError();
    return new DrainClosedError(
      this.#state === 'failed'
        ? 'Intake is closed: start() failed'
        : 'Intake is not open yet: call start() and wait for it before tracking work',
    );
  }

  #labels(): string[] {
    return this.#labeled === undefined ? [] : [...this.#labeled].map((e) => e.label);
  }

  /**
   * Emits to the user's listeners; one that throws is logged and never breaks a start, a shutdown
   * or the background resume.
   */
  #emit<K extends keyof DrainEvents>(event: K, ...args: DrainEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: DrainEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      log('a %s listener threw: %O', event, error);
    }
  }

  #setState(to: DrainState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    log('state %s -> %s', from, to);
    publish('state', () => ({
      group: this.group,
      memberId: this.memberId,
      from,
      to,
      inFlight: this.#inFlight,
    }));
    this.#emit('stateChange', { from, to });
  }

  #escalate(reason: string | undefined): void {
    if (this.#force.signal.aborted) return;
    log('shutdown escalated (reason %s, %d in flight)', reason, this.#inFlight);
    const error = new DrainForcedError(
      reason === undefined ? undefined : `The shutdown was forced (${reason})`,
    );
    this.#force.abort(error);
    if (!this.#abort.signal.aborted) this.#abort.abort(error);
    this.#emit('escalate', { reason, inFlight: this.#inFlight });
  }

  async #runStart(): Promise<void> {
    const { coordinator, store } = this.#options;
    this.#setState('starting');
    if (coordinator !== undefined && store !== undefined) {
      try {
        await this.#join();
      } catch (error) {
        // A start cancelled by shutdown is not a failure: the shutdown takes over from here.
        if (!this.#lifecycle.signal.aborted) this.#setState('failed');
        throw error;
      }
      this.#resumeTask = this.#resume();
    }
    if (this.#lifecycle.signal.aborted) throw this.#lifecycle.signal.reason;
    this.#open = true;
    this.#setState('running');
  }

  async #join(): Promise<void> {
    const { coordinator, group, memberId, memberTtlMs, startTimeoutMs } = this.#options;
    if (coordinator === undefined) return;
    this.#lifecycle.signal.throwIfAborted();
    const timeUp = new AbortController();
    const signal = AbortSignal.any([this.#lifecycle.signal, timeUp.signal]);
    const joining = coordinator.join(group, memberId, { ttlMs: memberTtlMs, signal });
    let membership: Membership;
    try {
      membership = await bounded(
        joining,
        startTimeoutMs,
        () => {
          const error = new DrainTimeoutError(
            `Joining group "${group}" took longer than startTimeoutMs (${startTimeoutMs} ms)`,
          );
          timeUp.abort(error);
          return error;
        },
        this.#lifecycle.signal,
      );
    } catch (error) {
      // An adapter that completes the join after all must not leave a phantom member behind.
      joining.then(
        (late) =>
          late.leave().catch((leaveError: unknown) => log('leaving a late join failed: %O', leaveError)),
        () => {},
      );
      throw error;
    }
    this.#membership = membership;
    log('joined %s as %s (incarnation %s)', group, memberId, membership.incarnation);
    if (membership.signal.aborted) queueMicrotask(() => this.#onMembershipLost(membership));
    else
      membership.signal.addEventListener('abort', () => this.#onMembershipLost(membership), { once: true });
  }

  #onMembershipLost(membership: Membership): void {
    if (this.#membership !== membership || this.#lifecycle.signal.aborted) return;
    const error = membership.signal.reason ?? new MembershipLostError();
    log('membership lost: %O', error);
    this.#emit('membershipLost', error);
    // Re-join under a new incarnation, then resume what a peer may have parked while this member
    // looked gone. Retried until shutdown begins.
    const rejoin = async (): Promise<void> => {
      for (let attempt = 0; !this.#lifecycle.signal.aborted; attempt++) {
        try {
          await this.#join();
          const previous = this.#resumeTask;
          this.#resumeTask = previous === undefined ? this.#resume() : previous.then(() => this.#resume());
          return;
        } catch (joinError) {
          log('re-join failed: %O', joinError);
          await delay(Math.min(250 * 2 ** attempt, 5_000), this.#lifecycle.signal).catch(() => {});
        }
      }
    };
    // Outside the adapter's abort dispatch: re-entering it synchronously would race its own clean-up.
    queueMicrotask(() => void rejoin());
  }

  #resume(): Promise<ResumeReport> {
    const { coordinator, store } = this.#options;
    if (coordinator === undefined || store === undefined) throw new Error('unreachable');
    return resumeAtStart({
      options: this.#options,
      coordinator,
      store,
      signal: this.#lifecycle.signal,
      onRound: (progress) => {
        publish('resume', () => ({ group: this.group, memberId: this.memberId, ...progress }));
        this.#emit('resume', progress);
      },
    }).catch((error: unknown) => {
      log('the background resume failed: %O', error);
      return { resumed: 0, skipped: 0, stillPausing: 0, rounds: 0, complete: false, errors: [error] };
    });
  }

  #recorder = {
    phase: (name: PhaseName, startedAt: number, outcome: PhaseReport['outcome']): void => {
      this.#phases.push({ name, durationMs: now() - startedAt, outcome });
    },
    error: (phase: ReportedError['phase'], error: unknown): void => {
      log('error in %s: %O', phase, error);
      this.#errors.push({ phase, error });
    },
  };

  async #runShutdown(): Promise<ShutdownReport> {
    const o = this.#options;
    const t0 = this.#shutdownAt;
    const budgetEnd = t0 + o.shutdownTimeoutMs;
    const drainEnd = t0 + o.shutdownTimeoutMs * o.drainShare;
    const grace = Math.min(o.abortGraceMs, (drainEnd - t0) / 2);
    const abortAt = drainEnd - grace;
    const started = this.#startPromise !== undefined;
    if (started && this.#state !== 'failed') this.#setState('draining');

    await this.#stopIntake(abortAt);

    let aborted = 0;
    let abortedLabels: string[] = [];
    let stragglers = 0;
    let stragglerLabels: string[] = [];
    const drainStart = now();
    const drained = await this.#waitIdle(abortAt);
    this.#recorder.phase('drain', drainStart, drained === 'idle' ? 'ok' : drained);
    if (drained === 'idle') {
      this.#emit('drained', { durationMs: now() - t0, completed: this.#inFlightAtShutdown });
    } else {
      aborted = this.#inFlight;
      abortedLabels = this.#labels();
      if (!this.#abort.signal.aborted) {
        this.#abort.abort(
          new DrainTimeoutError(`The drain deadline passed with ${aborted} task(s) in flight: stop now`),
        );
        this.#emit('drainTimeout', { inFlight: aborted, labels: abortedLabels });
      }
      const graceStart = now();
      const settled = drained === 'forced' ? 'forced' : await this.#waitIdle(drainEnd);
      this.#recorder.phase('grace', graceStart, settled === 'idle' ? 'ok' : settled);
      stragglers = this.#inFlight;
      stragglerLabels = this.#labels();
      if (stragglers > 0) log('%d straggler(s) left behind: %o', stragglers, stragglerLabels);
    }

    publish('drain', () => ({
      group: this.group,
      memberId: this.memberId,
      durationMs: now() - t0,
      inFlightAtStart: this.#inFlightAtShutdown,
      aborted,
      stragglers,
    }));

    // Let the background resume wind down (it was cancelled when shutdown began) before handing off.
    if (this.#resumeTask !== undefined) {
      await bounded(
        this.#resumeTask,
        Math.max(0, budgetEnd - now()),
        () => undefined,
        this.#force.signal,
      ).catch(() => {});
    }

    const handOffEnabled = o.coordinator !== undefined && o.store !== undefined;
    let handOff: HandOffResult = {
      decision: handOffEnabled ? 'not-joined' : 'disabled',
      lastMember: undefined,
      parked: 0,
      stillPausing: 0,
      token: undefined,
    };
    if (o.coordinator !== undefined && o.store !== undefined && this.#membership !== undefined) {
      this.#setState('handing-off');
      handOff = await handOffAtShutdown({
        options: o,
        coordinator: o.coordinator,
        store: o.store,
        membership: this.#membership,
        budgetEnd,
        signal: this.#force.signal,
        record: this.#recorder,
        onPark: (progress) => {
          publish('park', () => ({ group: this.group, memberId: this.memberId, ...progress }));
          this.#emit('park', progress);
        },
      });
    }

    const forced = this.#force.signal.aborted;
    const report: ShutdownReport = Object.freeze({
      reason: this.#reason,
      outcome: forced
        ? 'forced'
        : aborted > 0
          ? 'timed-out'
          : this.#errors.length > 0 || this.#state === 'failed'
            ? 'failed'
            : 'clean',
      forced,
      durationMs: now() - t0,
      phases: Object.freeze([...this.#phases]),
      inFlightAtStart: this.#inFlightAtShutdown,
      completed: this.#inFlightAtShutdown - aborted,
      aborted,
      abortedLabels: Object.freeze(abortedLabels),
      stragglers,
      stragglerLabels: Object.freeze(stragglerLabels),
      lastMember: handOff.lastMember,
      handOff: handOff.decision,
      parked: handOff.parked,
      stillPausing: handOff.stillPausing,
      token: handOff.token,
      errors: Object.freeze([...this.#errors]),
    });
    this.#setState('stopped');
    log('shutdown finished: %o', { ...report, errors: report.errors.length });
    this.#emit('stopped', report);
    return report;
  }

  async #stopIntake(deadline: number): Promise<void> {
    if (this.#stoppers.length === 0) return;
    const startedAt = now();
    // A copy: a stopper that unregisters itself must not make the next one be skipped.
    const stoppers = [...this.#stoppers];
    if (this.#force.signal.aborted) {
      // Forced from the start: every stopper is still called, none is awaited.
      for (const stopper of stoppers) {
        Promise.resolve()
          .then(() => stopper(this.#force.signal))
          .catch((error: unknown) => log('intake stopper failed after force: %O', error));
      }
      this.#recorder.phase('stop-intake', startedAt, 'forced');
      return;
    }
    let outcome: PhaseReport['outcome'] = 'ok';
    for (const [index, stopper] of stoppers.entries()) {
      const timeUp = new AbortController();
      const signal = AbortSignal.any([timeUp.signal, this.#force.signal]);
      try {
        const result = Promise.resolve().then(() => stopper(signal));
        await bounded(
          result,
          Math.max(0, deadline - now()),
          () =>
            new DrainTimeoutError(`Intake stopper #${index + 1} did not finish before the drain deadline`),
          this.#force.signal,
        );
      } catch (error) {
        timeUp.abort(error);
        if (this.#force.signal.aborted) {
          outcome = 'forced';
        } else {
          outcome = 'error';
          this.#recorder.error('intake-stopper', error);
        }
      }
    }
    this.#recorder.phase('stop-intake', startedAt, outcome);
  }

  /** Waits, event-driven, until nothing is in flight, the deadline passes, or the shutdown is forced. */
  async #waitIdle(deadline: number): Promise<'idle' | 'timeout' | 'forced'> {
    if (this.#inFlight === 0) return 'idle';
    if (this.#force.signal.aborted) return 'forced';
    const timeUp = new AbortController();
    const timer = setTimeout(() => timeUp.abort(), Math.max(0, deadline - now()));
    this.#idleWatchers++;
    try {
      await pEvent(this as EventEmitter, 'idle', {
        signal: AbortSignal.any([timeUp.signal, this.#force.signal]),
      });
      return 'idle';
    } catch {
      return this.#force.signal.aborted ? 'forced' : 'timeout';
    } finally {
      clearTimeout(timer);
      this.#idleWatchers--;
    }
  }
}

function labelOf(options: TrackOptions): string | undefined {
  if (options === null || typeof options !== 'object') invalid('track options', 'an object', options);
  const label: unknown = options.label;
  if (typeof label === 'string') return label;
  if (label !== undefined) {
    throw new TypeError(`Expected \`label\` to be a string, got ${describeValue(label)}`);
  }
  // No label: the only option is missing, so a misspelt one (`lable`) is the likely cause.
  checkOptionsObject('track', options, trackOptionNames);
  return undefined;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
