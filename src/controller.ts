import { EventEmitter } from 'node:events';
import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { pEvent } from 'p-event';
import type { Lease, Membership } from './coordinator.js';
import { DrainClosedError, DrainForcedError, DrainTimeoutError, MembershipLostError } from './errors.js';
import { type HandOffResult, type ParkProgress, handOffAtShutdown } from './hand-off.js';
import { call, LeaseSlot, remaining } from './internal/calls.js';
import { bounded, delay, now } from './internal/time.js';
import { publish } from './metrics.js';
import { type CompiledOptions, type DrainControllerOptions, compileOptions } from './options.js';
import type { PhaseName, PhaseReport, ReportedError, ShutdownReport } from './report.js';
import { type ResumeProgress, type ResumeReport, resumeAtStart } from './resume.js';
import { checkBoolean, checkFunction, checkOptionsObject, describeValue, invalid } from './validate.js';
import type { StoreWarning, WorkflowStore } from './workflow-store.js';

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
  /** The last task in flight settled. A listener that throws is logged and changes nothing else. */
  idle: [];
  /**
   * The store found its configuration at odds with the host's data at start (for example a status
   * mapping that matches no row). Without a listener, it is printed through `process.emitWarning`.
   */
  warning: [warning: StoreWarning];
  /** The shutdown finished. */
  stopped: [report: ShutdownReport];
}

type Task = (context: TaskContext) => unknown;
type Stopper = (signal: AbortSignal) => unknown;

const trackOptionNames = ['label'];
const shutdownOptionNames = ['force', 'reason'];

/**
 * The share of `shutdownTimeoutMs` a shutdown waits, after the drain, for the background resume to
 * wind down (it was told to stop when the shutdown began). Past it, the shutdown takes the resume's
 * lease over rather than wait for its own lock.
 */
const RESUME_WIND_DOWN_SHARE = 0.1;

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
  /** Internal waiters for idleness: never the user's listeners, so one that throws cannot stall a drain. */
  readonly #idleWaiters = new EventEmitter();
  /** The start-stop lease the background resume holds, for the shutdown to take over. */
  readonly #slot = new LeaseSlot();
  #state: DrainState = 'idle';
  #open = false;
  #inFlight = 0;
  #labeled: Set<{ readonly label: string }> | undefined;
  #startPromise: Promise<void> | undefined;
  #shutdownPromise: Promise<ShutdownReport> | undefined;
  #shutdownAt = 0;
  #inFlightAtShutdown = 0;
  #reason: string | undefined;
  #membership: Membership | undefined;
  #resumeTask: Promise<ResumeReport> | undefined;
  #resumeRunning = false;
  #warnings: readonly StoreWarning[] | undefined;
  /** The tasks in flight, and their labels, at the moment their `signal` was aborted. */
  #aborted: { readonly count: number; readonly labels: string[] } | undefined;
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
    // Any object may be a thenable; Promise.resolve reads its `then` safely (a getter that throws
    // becomes a rejection), so the count always comes back down.
    if (result !== null && (typeof result === 'object' || typeof result === 'function')) {
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
    // Both listeners go when either fires: a long-lived signal does not collect them.
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#idleWaiters.off('idle', onIdle);
        reject((signal as AbortSignal).reason);
      };
      const onIdle = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.#idleWaiters.once('idle', onIdle);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
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
    if (this.#shutdownPromise !== undefined) {
      return Promise.reject(
        new DrainClosedError('Cannot start: the controller was shut down; create a new one'),
      );
    }
    if (this.#startPromise !== undefined) return this.#startPromise;
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
    if (o.reason !== undefined && typeof o.reason !== 'string') invalid('reason', 'a string', o.reason);
    const reason = o.reason as string | undefined;
    let promise = this.#shutdownPromise;
    if (promise === undefined) {
      this.#open = false;
      this.#shutdownAt = now();
      this.#inFlightAtShutdown = this.#inFlight;
      this.#reason = reason;
      log('shutdown begins (reason %s, %d in flight)', reason, this.#inFlight);
      // The promise exists before any listener runs: one that calls shutdown() gets this same one.
      promise = this.#shutdownPromise = this.#mutex.runExclusive(() => this.#runShutdown());
      this.#lifecycle.abort(new DrainClosedError('Shutdown began'));
      this.#stopping.abort(new DrainClosedError('Shutdown began: wrap up'));
      if (this.#state === 'running') this.#setState('draining');
    }
    if (force) this.#escalate(reason);
    return promise;
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
    if (--this.#inFlight === 0) this.#becameIdle();
  }

  #becameIdle(): void {
    this.#idleWaiters.emit('idle');
    if (this.listenerCount('idle') !== 0) this.#emit('idle');
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
    const inFlight = this.#inFlight;
    this.#force.abort(error);
    this.#abortTasks(error);
    this.#emit('escalate', { reason, inFlight });
  }

  /**
   * Aborts every task's `signal` (once), counting what is in flight at that moment: a task that
   * settles in reaction to the abort still counts as aborted, not completed.
   */
  #abortTasks(error: unknown): void {
    if (this.#abort.signal.aborted) return;
    this.#aborted = { count: this.#inFlight, labels: this.#labels() };
    this.#abort.abort(error);
  }

  async #runStart(): Promise<void> {
    this.#setState('starting');
    if (this.#options.handOff !== undefined) {
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
    const { handOff, group, memberId, memberTtlMs, startTimeoutMs } = this.#options;
    if (handOff === undefined) return;
    const { coordinator } = handOff;
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

  async #resume(): Promise<ResumeReport> {
    const handOff = this.#options.handOff as NonNullable<CompiledOptions['handOff']>;
    this.#resumeRunning = true;
    try {
      this.#warnings ??= await this.#diagnose(handOff.store);
      return await resumeAtStart({
        options: this.#options,
        ...handOff,
        signal: this.#lifecycle.signal,
        slot: this.#slot,
        warnings: this.#warnings,
        onRound: (progress) => {
          publish('resume', () => ({ group: this.group, memberId: this.memberId, ...progress }));
          this.#emit('resume', progress);
        },
      });
    } catch (error) {
      log('the background resume failed: %O', error);
      return {
        resumed: 0,
        skipped: 0,
        stillPausing: 0,
        rounds: 0,
        complete: false,
        warnings: this.#warnings ?? [],
        errors: [error],
      };
    } finally {
      this.#resumeRunning = false;
    }
  }

  /**
   * Asks the store whether its configuration fits the host's data; each warning is emitted, or
   * printed through `process.emitWarning` when nobody listens: a mistyped status mapping must not
   * strand every workflow silently.
   */
  async #diagnose(store: WorkflowStore): Promise<readonly StoreWarning[]> {
    if (store.diagnose === undefined) return [];
    let warnings: readonly StoreWarning[];
    try {
      warnings = await call(
        (signal) => (store.diagnose as NonNullable<WorkflowStore['diagnose']>)({ signal }),
        {
          end: now() + this.#options.resumeTimeoutMs,
          onTimeout: () =>
            new DrainTimeoutError('The store did not answer diagnose() within resumeTimeoutMs'),
          stop: this.#lifecycle.signal,
        },
      );
    } catch (error) {
      log('diagnose failed: %O', error);
      return [];
    }
    for (const warning of warnings) {
      log('store warning %s: %s', warning.code, warning.message);
      if (this.listenerCount('warning') !== 0) this.#emit('warning', warning);
      else process.emitWarning(warning.message, { type: 'GracefulDrainWarning', code: warning.code });
    }
    return Object.freeze([...warnings]);
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

    let stragglers = 0;
    let stragglerLabels: string[] = [];
    const drainStart = now();
    const drained = await this.#waitIdle(abortAt);
    this.#recorder.phase('drain', drainStart, drained === 'idle' ? 'ok' : drained);
    if (drained === 'idle' && this.#aborted === undefined) {
      this.#emit('drained', { durationMs: now() - t0, completed: this.#inFlightAtShutdown });
    } else if (drained !== 'idle') {
      if (!this.#abort.signal.aborted) {
        const inFlight = this.#inFlight;
        this.#abortTasks(
          new DrainTimeoutError(`The drain deadline passed with ${inFlight} task(s) in flight: stop now`),
        );
        this.#emit('drainTimeout', { inFlight, labels: this.#aborted?.labels ?? [] });
      }
      const graceStart = now();
      const settled = drained === 'forced' ? 'forced' : await this.#waitIdle(drainEnd);
      this.#recorder.phase('grace', graceStart, settled === 'idle' ? 'ok' : settled);
      stragglers = this.#inFlight;
      stragglerLabels = this.#labels();
      if (stragglers > 0) log('%d straggler(s) left behind: %o', stragglers, stragglerLabels);
    }

    const aborted = this.#aborted?.count ?? 0;
    const abortedLabels = this.#aborted?.labels ?? [];
    publish('drain', () => ({
      group: this.group,
      memberId: this.memberId,
      durationMs: now() - t0,
      inFlightAtStart: this.#inFlightAtShutdown,
      aborted,
      stragglers,
    }));

    const inherited = await this.#windDownResume(budgetEnd);

    let handOff: HandOffResult = {
      decision: o.handOff !== undefined ? 'not-joined' : 'disabled',
      lastMember: undefined,
      parked: 0,
      stillPausing: 0,
      token: undefined,
    };
    if (o.handOff !== undefined && this.#membership !== undefined) {
      this.#setState('handing-off');
      handOff = await handOffAtShutdown({
        options: o,
        ...o.handOff,
        membership: this.#membership,
        inherited,
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
      warnings: this.#warnings ?? Object.freeze([]),
      errors: Object.freeze([...this.#errors]),
    });
    this.#setState('stopped');
    log('shutdown finished: %o', { ...report, errors: report.errors.length });
    this.#emit('stopped', report);
    return report;
  }

  /**
   * Waits, within its share of the budget, for the background resume to wind down (it was told to
   * stop when the shutdown began). If it still holds the start-stop lease then, the shutdown takes
   * the lease over: the resume's own lock can never block the shutdown's.
   */
  async #windDownResume(budgetEnd: number): Promise<Lease | undefined> {
    if (this.#resumeTask === undefined || !this.#resumeRunning) return undefined;
    const startedAt = now();
    const end = Math.min(budgetEnd, startedAt + this.#options.shutdownTimeoutMs * RESUME_WIND_DOWN_SHARE);
    const settled = await bounded(
      this.#resumeTask.then(() => true),
      remaining(end),
      () => undefined,
      this.#force.signal,
    ).catch(() => false);
    const outcome = settled ? 'ok' : this.#force.signal.aborted ? 'forced' : 'timeout';
    this.#recorder.phase('resume-wind-down', startedAt, outcome);
    return settled ? undefined : this.#slot.take();
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
    try {
      await pEvent(this.#idleWaiters, 'idle', {
        signal: AbortSignal.any([timeUp.signal, this.#force.signal]),
      });
      return 'idle';
    } catch {
      return this.#force.signal.aborted ? 'forced' : 'timeout';
    } finally {
      clearTimeout(timer);
    }
  }
}

function labelOf(options: TrackOptions): string | undefined {
  if (options === null || typeof options !== 'object') invalid('track options', 'an object', options);
  const label: unknown = options.label;
  if (typeof label === 'string') return label;
  if (label !== undefined) invalid('label', 'a string', label);
  // No label: the only option is missing, so a misspelt one (`lable`) is the likely cause.
  checkOptionsObject('track', options, trackOptionNames);
  return undefined;
}
