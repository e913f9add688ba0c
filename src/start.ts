/**
 * The start side of a `DrainController` with a coordinator: join the group (bounded, no phantom member
 * when a join lands late), re-join when the membership is lost, and run the background resume after the
 * store's diagnosis, and, with a store that knows who drives what, the periodic peer check; at shutdown,
 * stop the check, wind the resume down and hand its start-stop lease over.
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, Lease, Membership } from './coordinator.js';
import { DrainTimeoutError, EvictedMemberError, MembershipLostError } from './errors.js';
import { call, lost, remaining } from './internal/calls.js';
import { bounded, delay, now } from './internal/time.js';
import { publish } from './metrics.js';
import type { CompiledOptions } from './options.js';
import { PeerCheck } from './peer-recovery.js';
import { canRecover, canRecoverOwned, recoverAtStart } from './recovery.js';
import { frozenReport, type PhaseReport, type RecoveryReport, type ResumeReport } from './report.js';
import { resumeAtStart } from './resume.js';
import type { DrainEvents } from './types.js';
import type { StoreWarning, WorkflowStore } from './workflow-store.js';

const log = createDebug('graceful-drain:start');

/** What a recovery report's warning says. */
function recoveryMessage(what: string, report: RecoveryReport): string {
  const stranded = report.reason === 'live-peers' || (report.policy === 'report' && report.found > 0);
  return (
    `${what} (${report.reason}, policy ${report.policy}): ${report.found} found, ` +
    `${report.recovered} recovered, ${report.failed} moved to failed` +
    (report.deadMembers.length > 0 ? `; dead members: ${report.deadMembers.join(', ')}` : '') +
    (report.errors.length > 0
      ? `; ${report.errors.length} error(s), the first: ${String(report.errors[0])}`
      : '') +
    (stranded ? '; workflows are left running' : '')
  );
}

/** How many of the peer check's warnings the reports keep (the latest): a long run of blips must not grow them. */
const KEPT_CHECK_WARNINGS = 20;

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
  readonly #extra: StoreWarning[] = [];
  /** The peer check's latest warnings, at most {@link KEPT_CHECK_WARNINGS}. */
  readonly #checkWarnings: StoreWarning[] = [];
  #recovery: RecoveryReport | undefined;
  #peerCheck: PeerCheck | undefined;
  /** The workflows the start gate's hook took from crashed peers (see recoverAtStart). */
  readonly #gateHanded = new Set<string>();

  constructor(host: StartHost) {
    this.#host = host;
  }

  /** The current membership, once joined. */
  get membership(): Membership | undefined {
    return this.#membership;
  }

  /** The warnings so far: the store's diagnosis, and the start gate's. */
  get warnings(): readonly StoreWarning[] {
    return Object.freeze([...this.#extra, ...this.#checkWarnings, ...(this.#warnings ?? [])]);
  }

  /** The background resume, once started. */
  get resumed(): Promise<ResumeReport> | undefined {
    return this.#resumeTask;
  }

  /** Joins, runs the crash-recovery gate (intake stays closed until it is done), then starts the background resume. */
  async start(): Promise<void> {
    await this.#join();
    const membership = this.#membership as Membership;
    this.#recovery = await this.#gate(membership);
    this.#host.lifecycle.throwIfAborted();
    // A membership lost during the gate was re-joined under a new incarnation, which the re-join registered,
    // perhaps before the gate registered the old one: a peer's start would take this live member for dead.
    // The current one is registered again, last (a failure is the re-join's to retry: logged).
    if (this.#membership !== membership) {
      await this.#reenter(this.#membership as Membership).catch((error: unknown) =>
        log('registering the re-joined incarnation after the start gate failed: %O', error),
      );
    }
    // After a resume the re-join started meanwhile, if it did: one at a time.
    const previous = this.#resumeTask;
    this.#resumeTask = previous === undefined ? this.#resume() : previous.then(() => this.#resume());
    this.#startPeerCheck();
  }

  /** With a store that knows who drives what: checks every `peerCheckIntervalMs` for crashed peers. */
  #startPeerCheck(): void {
    const { options, lifecycle } = this.#host;
    const { store, coordinator } = options.handOff;
    if (!canRecoverOwned(store) || options.peerCheckIntervalMs === 0) return;
    const { group, memberId } = options;
    this.#peerCheck = new PeerCheck({
      options,
      coordinator,
      store,
      lifecycle,
      membership: () => this.#membership,
      report: (report) => {
        log('peer check: %o', { ...report, errors: report.errors.length });
        publish('recovery', () => ({ group, memberId, ...report }));
        this.#host.emit('recovery', report);
        if (report.errors.length > 0 || (report.policy === 'report' && report.found > 0) || report.failed > 0)
          this.#warn(
            { code: 'recovery', message: recoveryMessage('Peer check', report) },
            this.#checkWarnings,
          );
      },
    });
    // A peer-crash recovery the gate left incomplete (its dead members already evicted, so no later
    // record lists them) is finished by the check's first round.
    const gate = this.#recovery;
    const pending = gate?.reason === 'peer-crash' && !gate.complete ? gate.deadMembers : [];
    this.#peerCheck.start(pending, this.#gateHanded);
  }

  /** What the start gate found and did; `undefined` when the store cannot recover. */
  get recovery(): RecoveryReport | undefined {
    return this.#recovery;
  }

  async #gate(membership: Membership): Promise<RecoveryReport | undefined> {
    const { options, lifecycle } = this.#host;
    const { store, coordinator } = options.handOff;
    if (!canRecover(store)) {
      this.#warn({
        code: 'no-recovery',
        message:
          'The store keeps no generation record (readGeneration, enterGeneration, leaveGeneration, recover): ' +
          "a crash of the group's last member will leave its running workflows stranded",
      });
      return undefined;
    }
    const report = await recoverAtStart({
      options,
      coordinator,
      store,
      membership,
      signal: lifecycle,
      handed: this.#gateHanded,
    });
    const { group, memberId } = options;
    publish('recovery', () => ({ group, memberId, ...report }));
    // A shutdown that cut the gate short is no failure of it: start() rejects, the shutdown takes over.
    const erred = report.errors.length > 0 && !lifecycle.aborted;
    if (report.reason !== 'none' || erred) this.#host.emit('recovery', report);
    const stranded = report.reason === 'live-peers' || (report.policy === 'report' && report.found > 0);
    if (!lifecycle.aborted && (erred || stranded || report.failed > 0))
      this.#warn({ code: 'recovery', message: recoveryMessage('Crash recovery at start', report) });
    return report;
  }

  /** Emits a warning, or prints it through `process.emitWarning` when nobody listens; kept for the reports. */
  #warn(warning: StoreWarning, kept: StoreWarning[] = this.#extra): void {
    log('warning %s: %s', warning.code, warning.message);
    kept.push(warning);
    if (kept === this.#checkWarnings && kept.length > KEPT_CHECK_WARNINGS) kept.shift();
    if (!this.#host.emit('warning', warning))
      process.emitWarning(warning.message, { type: 'GracefulDrainWarning', code: warning.code });
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
          await this.#reenter(this.#membership as Membership);
          await this.#probeEvicted(membership);
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

  /** After a re-join: registers the new incarnation, so the old one is not taken for a dead member. */
  async #reenter(membership: Membership): Promise<void> {
    const { options, lifecycle } = this.#host;
    const { store } = options.handOff;
    if (!canRecover(store)) return;
    const self = { memberId: options.memberId, incarnation: membership.incarnation };
    const fence = { ...self, token: undefined };
    await call((signal) => store.enterGeneration(options.group, self, fence, { signal }), {
      end: now() + options.startTimeoutMs,
      onTimeout: () =>
        new DrainTimeoutError('The store did not register the re-joined member within startTimeoutMs'),
      stop: lifecycle,
    });
  }

  /**
   * After a re-join, with a store that knows who drives what: whether the lost incarnation was evicted
   * meanwhile (a live member took it for crashed and recovered what it owned). Warned, so that the host
   * stops driving those workflows: they are handed back, to be re-driven elsewhere.
   */
  async #probeEvicted(lost: Membership): Promise<void> {
    const { options, lifecycle } = this.#host;
    const { store } = options.handOff;
    if (!canRecoverOwned(store)) return;
    const fence = { memberId: options.memberId, token: undefined, incarnation: lost.incarnation };
    try {
      await call((signal) => store.raiseFence(fence, { signal }), {
        end: now() + options.startTimeoutMs,
        onTimeout: () => new DrainTimeoutError('The store did not answer within startTimeoutMs'),
        stop: lifecycle,
      });
    } catch (error) {
      if (!(error instanceof EvictedMemberError)) return log('probing for an eviction failed: %O', error);
      this.#warn({
        code: 'recovery',
        message:
          `This member's incarnation ${lost.incarnation} was evicted while its membership was lost: a live ` +
          'member recovered the workflows it owned; stop driving them (they are handed back). It carries on ' +
          `as incarnation ${this.#membership?.incarnation ?? '(none)'}`,
      });
    }
  }

  async #resume(): Promise<ResumeReport> {
    const { options, lifecycle } = this.#host;
    this.#resumeRunning = true;
    try {
      this.#warnings ??= await this.#diagnose();
      return await resumeAtStart({
        options,
        ...options.handOff,
        incarnation: this.#membership?.incarnation,
        signal: lifecycle,
        slot: this.#slot,
        warnings: this.warnings,
        recovery: this.#recovery,
        onRound: (progress) => {
          publish('resume', () => ({ group: options.group, memberId: options.memberId, ...progress }));
          this.#host.emit('resume', progress);
        },
      });
    } catch (error) {
      log('the background resume failed: %O', error);
      const none = { resumed: 0, skipped: 0, stillPausing: 0, rounds: 0, complete: false };
      const rest = { warnings: this.warnings, recovery: this.#recovery, errors: Object.freeze([error]) };
      return frozenReport({ ...none, ...rest });
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
   * Stops the peer check (a round under way gives up and releases the lock before the hand-off takes
   * it); waits, within its share of the budget, for the background resume to wind down; past it, takes
   * the resume's lease over, so that the resume's own lock never blocks the shutdown's.
   */
  async windDown(
    budgetEnd: number,
    force: AbortSignal,
    phase: (startedAt: number, outcome: PhaseReport['outcome']) => void,
  ): Promise<Lease | undefined> {
    const startedAt = now();
    const share = this.#host.options.shutdownTimeoutMs * RESUME_WIND_DOWN_SHARE;
    const end = Math.min(budgetEnd, startedAt + share);
    await this.#peerCheck?.stop(end);
    if (this.#resumeTask === undefined || !this.#resumeRunning) return undefined;
    const resumed = this.#resumeTask.then(() => true);
    const settled = await bounded(resumed, remaining(end), () => undefined, force).catch(() => false);
    phase(startedAt, settled ? 'ok' : force.aborted ? 'forced' : 'timeout');
    const lease = this.#slot.lease;
    if (settled || lease === undefined || lost(lease)) return undefined;
    this.#slot.lease = undefined;
    return lease;
  }
}
