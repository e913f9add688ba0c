/**
 * The in-flight tracker behind `DrainController.track()`, the hot path: counts a task synchronously
 * before it runs, refuses it in the same tick once intake is closed, and tells waiters when nothing is
 * in flight. Neither path allocates anything per call beyond its promise: the unlabelled one shares
 * its settle handlers, the labelled one takes a reusable slot, with its own handlers, in a {@link LabelList}.
 * @internal
 */
import { EventEmitter, once } from 'node:events';
import { pEvent } from 'p-event';
import type { OnIdleOptions, TaskContext, TrackOptions } from './types.js';
import { LabelList } from './internal/label-list.js';
import { now } from './internal/time.js';
import { checkOptionsObject, describeValue, invalid } from './validate.js';

type Task<T> = (context: TaskContext) => T | PromiseLike<T>;

/** What tasks were in flight when their `signal` was aborted. */
export interface AbortedTasks {
  readonly count: number;
  readonly labels: string[];
}

/** The tracker's view of its owner: the error for closed intake, and the public `idle` event. */
export interface TrackerOwner {
  closedError(): Error;
  emitIdle(): void;
}

const trackOptionNames = ['label'];

/** The built-in `then`: a task's promise that has it is followed directly. */
const promiseThen = Promise.prototype.then;

/**
 * A promise that settles once as `result` does, taking it as `await` takes a thenable: its `then` is
 * called once, later, with resolving functions of which only the first call counts, and a `then` that
 * throws (or a getter of it) rejects it. Never throws. For a task's result that is an object but not a
 * promise with the built-in `then`: a thenable, a promise with a `then` of its own (a subclass's, or an
 * own property) that might call back twice, and what the built-in `then` refused (an object that only
 * inherits from Promise.prototype, a subclass whose species throws, a promise whose `constructor` getter
 * throws). A `then` that never calls back leaves the task in flight, as a task that never ends.
 */
function settledOnce(result: object): Promise<unknown> {
  return new Promise((resolve) => resolve(result));
}

export class Tracker {
  readonly #owner: TrackerOwner;
  readonly #stopping = new AbortController();
  readonly #abort = new AbortController();
  /** Internal waiters for idleness: never the user's listeners, so one that throws cannot stall a drain. */
  readonly #idle = new EventEmitter();
  /** How many of those wait: the hot path emits only when one does. */
  #waiters = 0;
  readonly context: TaskContext;
  /** Whether intake is open. */
  open = false;
  #inFlight = 0;
  #labels: LabelList | undefined;
  #aborted: AbortedTasks | undefined;

  constructor(owner: TrackerOwner) {
    this.#owner = owner;
    this.context = Object.freeze({ signal: this.#abort.signal, stopping: this.#stopping.signal });
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** The tasks in flight when their `signal` aborted, if it did. */
  get aborted(): AbortedTasks | undefined {
    return this.#aborted;
  }

  /** See `DrainController.track`. */
  track<T>(fn: Task<T>, options?: TrackOptions): Promise<Awaited<T>> {
    if (typeof fn !== 'function') {
      throw new TypeError(`Expected \`fn\` to be a function, got ${describeValue(fn)}`);
    }
    const label = options === undefined ? undefined : labelOf(options);
    if (!this.open) return Promise.reject(this.#owner.closedError());
    if (label !== undefined) return this.#trackLabeled(fn, label);
    this.#inFlight++;
    let result: unknown;
    try {
      result = fn(this.context);
    } catch (error) {
      this.#done();
      return Promise.reject(error);
    }
    // A promise with the built-in `then`, the usual case, is followed directly; any other object (a
    // thenable, a promise with a `then` of its own) goes through settledOnce(), so the count always
    // comes back down, once.
    if (result instanceof Promise) {
      try {
        if (result.then === promiseThen)
          return result.then(this.#fulfilled, this.#rejected) as Promise<Awaited<T>>;
      } catch {
        // A `then` getter that throws, or a promise the built-in `then` cannot take (see settledOnce).
      }
    }
    if (result !== null && (typeof result === 'object' || typeof result === 'function')) {
      return settledOnce(result).then(this.#fulfilled, this.#rejected) as Promise<Awaited<T>>;
    }
    this.#done();
    return Promise.resolve(result as Awaited<T>);
  }

  /** See `DrainController.onIdle`. */
  async onIdle(options?: OnIdleOptions): Promise<void> {
    const signal = checkOptionsObject('onIdle', options, ['signal']).signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) invalid('signal', 'an AbortSignal', signal);
    signal?.throwIfAborted();
    if (this.#inFlight === 0) return;
    // `once` removes both listeners when either fires (a long-lived signal collects none), and rejects
    // with an AbortError: the signal's reason is rethrown instead.
    this.#waiters++;
    try {
      await once(this.#idle, 'idle', signal && { signal }).catch(() => {
        throw (signal as AbortSignal).reason;
      });
    } finally {
      this.#waiters--;
    }
  }

  /** Waits, event-driven, until nothing is in flight, the deadline passes, or `force` aborts. */
  async waitIdle(deadline: number, force: AbortSignal): Promise<'idle' | 'timeout' | 'forced'> {
    if (this.#inFlight === 0) return 'idle';
    if (force.aborted) return 'forced';
    const timeUp = new AbortController();
    const timer = setTimeout(() => timeUp.abort(), Math.max(0, deadline - now()));
    this.#waiters++;
    try {
      await pEvent(this.#idle, 'idle', { signal: AbortSignal.any([timeUp.signal, force]) });
      return 'idle';
    } catch {
      return force.aborted ? 'forced' : 'timeout';
    } finally {
      this.#waiters--;
      clearTimeout(timer);
    }
  }

  /** Aborts `stopping` ("wrap up"). */
  wrapUp(reason: unknown): void {
    this.#stopping.abort(reason);
  }

  /** Aborts every task's `signal` once, counting what is in flight: one settling in reaction is aborted. */
  abortTasks(reason: unknown): void {
    if (this.#abort.signal.aborted) return;
    this.#aborted = { count: this.#inFlight, labels: this.labels() };
    this.#abort.abort(reason);
  }

  /** The labels of the labelled tasks in flight. */
  labels(): string[] {
    return this.#labels === undefined ? [] : this.#labels.values();
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
    if (--this.#inFlight === 0) {
      if (this.#waiters !== 0) this.#idle.emit('idle');
      this.#owner.emitIdle();
    }
  }

  #trackLabeled<T>(fn: Task<T>, label: string): Promise<Awaited<T>> {
    const labels = (this.#labels ??= new LabelList(() => this.#done()));
    const slot = labels.add(label);
    this.#inFlight++;
    let result: unknown;
    try {
      result = fn(this.context);
    } catch (error) {
      labels.release(slot);
      return Promise.reject(error);
    }
    // As in track().
    if (result instanceof Promise) {
      try {
        if (result.then === promiseThen) return labels.follow(result, slot);
      } catch {
        // As in track().
      }
    }
    if (result !== null && (typeof result === 'object' || typeof result === 'function')) {
      return labels.follow(settledOnce(result), slot);
    }
    labels.release(slot);
    return Promise.resolve(result as Awaited<T>);
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
