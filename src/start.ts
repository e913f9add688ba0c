/**
 * The start side of a `DrainController` with a coordinator: join the group (bounded, no phantom member
 * when a join lands late), re-join when the membership is lost, and run the background resume after the
 * store's diagnosis; at shutdown, wind the resume down and hand its start-stop lease over.
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, Lease, Membership } from './coordinator.js';
import { DrainTimeoutError, MembershipLostError } from './errors.js';
import { call, lost, remaining } from './internal/calls.js';
import { bounded, delay, now } from './internal/time.js';
import { publish } from './metrics.js';
import type { CompiledOptions } from './options.js';
import { frozenReport, type PhaseReport, type ResumeReport } from './report.js';
import { resumeAtStart } from './resume.js';
import type { DrainEvents } from './types.js';
import type { StoreWarning, WorkflowStore } from './workflow-store.js';

const log = createDebug('graceful-drain:start');

/** The share of `shutdownTimeoutMs` a shutdown waits for the background resume to wind down. */
const RESUME_WIND_DOWN_SHARE = 0.1;

/** What the start side needs from its controller. */
export interface StartHost {
  readonly options: CompiledOptions & {
    readonly handOff: { readonly coordinator: Coordinator; readonly store: WorkflowStore };
  };
  /** Aborted when the shutdown begins. */
  readonly lifecycle: AbortSignal;
  /** Emits to the user's listeners (one that throws is logged); false when there was none. */
  emit<K extends keyof DrainEvents>(event: K, ...args: DrainEvents[K]): boolean;
}

export class Starter {
  readonly #host: StartHost;
  readonly #slot: { lease: Lease | undefined } = { lease: undefined };
  #membership: Membership | undefined;
  #resumeTask: Promise<ResumeReport> | undefined;
  #resumeRunning = false;
  #warnings: readonly StoreWarning[] | undefined;

  constructor(host: StartHost) {
    this.#host = host;
  }

  /** The current membership, once joined. */
  get membership(): Membership | undefined {
    return this.#membership;
  }

  /** The store's warnings, once diagnosed. */
  get warnings(): readonly StoreWarning[] {
    return this.#warnings ?? [];
  }

  /** The background resume, once started. */
  get resumed(): Promise<ResumeReport> | undefined {
    return this.#resumeTask;
  }

  /** Joins, then starts the background resume. */
  async start(): Promise<void> {
    await this.#join();
    this.#resumeTask = this.#resume();
  }

  async #join(): Promise<void> {
    const { handOff, group, memberId, memberTtlMs, startTimeoutMs } = this.#host.options;
    const lifecycle = this.#host.lifecycle;
    lifecycle.throwIfAborted();
    const timeUp = new AbortController();
    const signal = AbortSignal.any([lifecycle, timeUp.signal]);
    const joining = handOff.coordinator.join(group, memberId, { ttlMs: memberTtlMs, signal });
    const onTimeout = (): DrainTimeoutError => {
      const error = new DrainTimeoutError(
        `Joining group "${group}" took longer than startTimeoutMs (${startTimeoutMs} ms)`,
      );
      timeUp.abort(error);
      return error;
    };
    const membership = await bounded(joining, startTimeoutMs, onTimeout, lifecycle).catch(
      (error: unknown) => {
        // An adapter that completes the join after all must not leave a phantom member behind.
        const leave = (late: Membership): unknown =>
          late.leave().catch((e: unknown) => log('leaving a late join failed: %O', e));
        joining.then(leave, () => {});
        throw error;
      },
    );
    this.#membership = membership;
    log('joined %s as %s (incarnation %s)', group, memberId, membership.incarnation);
    const onLost = (): void => this.#onMembershipLost(membership);
    if (membership.signal.aborted) queueMicrotask(onLost);
    else membership.signal.addEventListener('abort', onLost, { once: true });
  }

  #onMembershipLost(membership: Membership): void {
    const lifecycle = this.#host.lifecycle;
    if (this.#membership !== membership || lifecycle.aborted) return;
    const error = membership.signal.reason ?? new MembershipLostError();
    log('membership lost: %O', error);
    this.#host.emit('membershipLost', error);
    // Re-join under a new incarnation (retried until shutdown begins), then resume what a peer may have
    // parked while this member looked gone.
    const rejoin = async (): Promise<void> => {
      for (let attempt = 0; !lifecycle.aborted; attempt++) {
        try {
          await this.#join();
          const previous = this.#resumeTask;
          this.#resumeTask = previous === undefined ? this.#resume() : previous.then(() => this.#resume());
          return;
        } catch (joinError) {
          log('re-join failed: %O', joinError);
          await delay(Math.min(250 * 2 ** attempt, 5_000), lifecycle).catch(() => {});
        }
      }
    };
    // Outside the adapter's abort dispatch: re-entering it synchronously would race its own clean-up.
    queueMicrotask(() => void rejoin());
  }

  async #resume(): Promise<ResumeReport> {
    const { options, lifecycle } = this.#host;
    this.#resumeRunning = true;
    try {
      this.#warnings ??= await this.#diagnose();
      return await resumeAtStart({
        options,
        ...options.handOff,
        signal: lifecycle,
        slot: this.#slot,
        warnings: this.#warnings,
        onRound: (progress) => {
          publish('resume', () => ({ group: options.group, memberId: options.memberId, ...progress }));
          this.#host.emit('resume', progress);
        },
      });
    } catch (error) {
      log('the background resume failed: %O', error);
      const none = { resumed: 0, skipped: 0, stillPausing: 0, rounds: 0, complete: false };
      return frozenReport({ ...none, warnings: this.warnings, errors: Object.freeze([error]) });
    } finally {
      this.#resumeRunning = false;
    }
  }

  /** Asks the store to diagnose its setup: a mistyped status mapping must not strand workflows silently. */
  async #diagnose(): Promise<readonly StoreWarning[]> {
    const { store } = this.#host.options.handOff;
    if (store.diagnose === undefined) return [];
    let warnings: readonly StoreWarning[];
    try {
      warnings = await call((signal) => store.diagnose?.({ signal }) ?? Promise.resolve([]), {
        end: now() + this.#host.options.resumeTimeoutMs,
        onTimeout: () => new DrainTimeoutError('The store did not answer diagnose() within resumeTimeoutMs'),
        stop: this.#host.lifecycle,
      });
    } catch (error) {
      log('diagnose failed: %O', error);
      return [];
    }
    for (const warning of warnings) {
      log('store warning %s: %s', warning.code, warning.message);
      if (!this.#host.emit('warning', warning))
        process.emitWarning(warning.message, { type: 'GracefulDrainWarning', code: warning.code });
    }
    return Object.freeze([...warnings]);
  }

  /**
   * Waits, within its share of the budget, for the background resume to wind down; past it, takes the
   * resume's lease over, so that the resume's own lock never blocks the shutdown's.
   */
  async windDown(
    budgetEnd: number,
    force: AbortSignal,
    phase: (startedAt: number, outcome: PhaseReport['outcome']) => void,
  ): Promise<Lease | undefined> {
    if (this.#resumeTask === undefined || !this.#resumeRunning) return undefined;
    const startedAt = now();
    const share = this.#host.options.shutdownTimeoutMs * RESUME_WIND_DOWN_SHARE;
    const end = Math.min(budgetEnd, startedAt + share);
    const resumed = this.#resumeTask.then(() => true);
    const settled = await bounded(resumed, remaining(end), () => undefined, force).catch(() => false);
    phase(startedAt, settled ? 'ok' : force.aborted ? 'forced' : 'timeout');
    const lease = this.#slot.lease;
    if (settled || lease === undefined || lost(lease)) return undefined;
    this.#slot.lease = undefined;
    return lease;
  }
}
