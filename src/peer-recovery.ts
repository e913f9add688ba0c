/**
 * The periodic peer check, run while the controller runs, with a store that knows who drives what (the
 * owner capability): a registered peer whose membership is gone is evicted (its later writes are rejected)
 * and the running workflows it owned are handed back by the recovery policy, while the group keeps
 * running. Cheap first (the record and the members, no lock); the start-stop lock only when a registered
 * runner is gone, and then only if it is free within a short wait. See docs/protocol.md, "A peer crashes
 * while the group runs".
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, MemberInfo, Membership } from './coordinator.js';
import { DrainTimeoutError, LockTimeoutError } from './errors.js';
import { call, leaseLostReason, lost, remaining, timedAcquire } from './internal/calls.js';
import { bounded, now } from './internal/time.js';
import type { CompiledOptions } from './options.js';
import {
  handBackOwned,
  type HandBackCounts,
  LEAVING,
  type OwnerStore,
  policyOf,
  type RecoveryStep,
} from './recovery.js';
import { frozenReport, type RecoveryReport } from './report.js';
import type { Fence, GenerationMember } from './workflow-store.js';

const log = createDebug('graceful-drain:peer-recovery');

/** How long a check waits for the start-stop lock before it skips its round (a start or stop holds it). */
const LOCK_WAIT_MS = 250;

/** What the check needs from its controller. */
export interface PeerCheckHost {
  readonly options: CompiledOptions;
  readonly coordinator: Coordinator;
  readonly store: OwnerStore;
  /** The current membership (a re-join replaces it). */
  membership(): Membership | undefined;
  /** Aborted when the shutdown begins: the check stops, and a round under way gives up. */
  readonly lifecycle: AbortSignal;
  /** A round evicted crashed peers, or failed first after a success: what it found and did. Never throws. */
  report(report: RecoveryReport): void;
}

/** What a round found: the record's generation, the crashed peers, and every member id it handed back. */
interface RoundState {
  generation: number | undefined;
  dead: GenerationMember[];
  /** The crashed peers' ids and those a failed round left to retry (evicted already). */
  ids: string[];
}

const keyOf = (m: GenerationMember): string => `${m.memberId}\n${m.incarnation}`;

/** Runs a round every `peerCheckIntervalMs`, each after the last one ended, until `stop()`. */
export class PeerCheck {
  readonly #host: PeerCheckHost;
  readonly #stopped = new AbortController();
  readonly #signal: AbortSignal;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  /** Peers handed back only in part (a failed round): their ids are retried, unless a live member takes the id. */
  #orphans: string[] = [];
  /** Of the orphans' workflows, those a recovery hook already took (they stay running until re-driven). */
  readonly #handed = new Set<string>();
  /** Recovered workflows the host was still pausing, with when to give up unparking them. */
  readonly #pausing = new Map<string, number>();
  /** With the `report` policy nothing is evicted: each dead incarnation is reported once. */
  readonly #reported = new Set<string>();
  #failing = false;

  constructor(host: PeerCheckHost) {
    this.#host = host;
    this.#signal = AbortSignal.any([host.lifecycle, this.#stopped.signal]);
    this.#signal.addEventListener('abort', () => clearTimeout(this.#timer), { once: true });
  }

  /**
   * Schedules the first round. `orphans`: crashed peers already evicted whose workflows are not all handed
   * back yet (a start gate cut short), with the ids a hook already took from them (`handed`).
   */
  start(orphans: readonly string[] = [], handed: ReadonlySet<string> = new Set()): void {
    this.#orphans = [...orphans];
    for (const id of handed) this.#handed.add(id);
    this.#schedule();
  }

  /** Stops the check; resolves once a round under way has given up and released the lock, or at `end`. */
  async stop(end: number): Promise<void> {
    this.#stopped.abort();
    clearTimeout(this.#timer);
    const round = this.#round;
    if (round !== undefined) await bounded(round, remaining(end), () => undefined).catch(() => {});
  }

  #schedule(): void {
    if (this.#signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#round = this.#run().finally(() => {
        this.#round = undefined;
        this.#schedule();
      });
    }, this.#host.options.peerCheckIntervalMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    const startedAt = now();
    const counts: HandBackCounts = { found: 0, recovered: 0, failed: 0, skipped: 0, pausing: [] };
    const state: RoundState = { generation: undefined, dead: [], ids: [] };
    const errors: unknown[] = [];
    // A signal of this round's own, aborted with the check's: every call's signal is made from it, never
    // from the long-lived one, which would keep a reference per call for good (Node.js 20 never drops a
    // dependant of `AbortSignal.any()` that nobody listened to: nodejs/node#55351).
    const round = new AbortController();
    const forward = (): void => round.abort(this.#signal.reason);
    if (this.#signal.aborted) return;
    this.#signal.addEventListener('abort', forward, { once: true });
    try {
      await this.#check(counts, state, round.signal);
    } catch (error) {
      if (this.#signal.aborted) return;
      errors.push(error);
      log('peer check failed: %O', error);
    } finally {
      this.#signal.removeEventListener('abort', forward);
    }
    for (const id of counts.pausing) this.#pausing.set(id, now() + this.#host.options.resumeTimeoutMs);
    const failed = errors.length > 0;
    // Reported when it found a crash or finished what a failed round left, and on the first failure
    // after a success (not once per interval).
    if (state.ids.length === 0 && state.dead.length === 0 && (!failed || this.#failing)) {
      this.#failing = failed;
      return;
    }
    this.#failing = failed;
    const report = frozenReport({
      policy: policyOf(this.#host.options.recovery),
      reason: 'peer-crash' as const,
      generation: state.generation,
      deadMembers: Object.freeze(state.ids.length > 0 ? state.ids : state.dead.map((m) => m.memberId)),
      found: counts.found,
      recovered: counts.recovered,
      failed: counts.failed,
      skipped: counts.skipped,
      complete: !failed,
      durationMs: now() - startedAt,
      errors: Object.freeze(errors),
    });
    try {
      this.#host.report(report);
    } catch (error) {
      log('reporting a peer check failed: %O', error);
    }
  }

  async #check(counts: HandBackCounts, state: RoundState, signal: AbortSignal): Promise<void> {
    const { options, coordinator, store } = this.#host;
    const { group, memberId } = options;
    const membership = this.#host.membership();
    // Not a member (lost, re-joining): it cannot tell who is alive.
    if (membership === undefined || membership.signal.aborted) return;
    const end = now() + options.resumeTimeoutMs;
    const bound = (what: string) => ({
      end,
      onTimeout: () => new DrainTimeoutError(`The peer check's budget ran out while ${what}`),
      stop: signal,
    });
    const report = policyOf(options.recovery) === 'report';
    // The registered runners gone: not leaving, not this member's id, and no live member holds their id (a
    // live holder may be a restarted incarnation driving what the id owns now: its start gate recovers the
    // dead one). With `report`, each is reported once.
    const crashed = (registered: readonly GenerationMember[], live: readonly MemberInfo[]) =>
      registered.filter(
        (m) =>
          !m.incarnation.endsWith(LEAVING) &&
          m.memberId !== memberId &&
          !live.some((l) => l.memberId === m.memberId) &&
          !(report && this.#reported.has(keyOf(m))),
      );

    // Cheap first: no lock unless a registered runner is gone (or earlier work is pending).
    if (this.#orphans.length === 0 && this.#pausing.size === 0) {
      const [record, live] = await Promise.all([
        call((s) => store.readGeneration(group, { signal: s }), bound('reading the generation record')),
        call((s) => coordinator.members(group, { signal: s }), bound('listing members')),
      ]);
      if (crashed(record.members, live).length === 0) return;
    }

    let lease;
    try {
      lease = await timedAcquire(coordinator, options, 'recovery', {
        ttlMs: options.lockTtlMs,
        timeoutMs: LOCK_WAIT_MS,
        signal,
        end,
      });
    } catch (error) {
      if (error instanceof LockTimeoutError && !signal.aborted) {
        log('the start-stop lock is busy: skipping this round');
        return;
      }
      throw error;
    }
    try {
      const held = lease;
      const token = coordinator.capabilities.fencing === 'none' ? undefined : held.token;
      const fence: Fence = { memberId, token, incarnation: membership.incarnation };
      const stop = AbortSignal.any([signal, held.signal]);
      const step: RecoveryStep = (what, run) => {
        if (lost(held)) throw leaseLostReason(held);
        return call(run, { ...bound(what), stop });
      };
      if (token !== undefined) await step('raising the fence', (s) => store.raiseFence(fence, { signal: s }));
      // Read again under the lock: another member (or a start gate) may have handled them meanwhile.
      const record = await step('reading the generation record', (s) =>
        store.readGeneration(group, { signal: s }),
      );
      state.generation = record.generation;
      // Near-expiry members count as alive: a later round catches them once they are gone.
      const live = await step('listing members', (s) => coordinator.members(group, { signal: s }));
      const dead = (state.dead = crashed(record.members, live));
      if (dead.length > 0) log('crashed peers: %o', dead);
      if (dead.length > 0 && !report)
        await step('evicting the dead members', (s) => store.evictMembers(group, dead, fence, { signal: s }));
      if (report) for (const m of dead) this.#reported.add(keyOf(m));
      // An orphan whose id a live member took since is that member's business now.
      const orphans = this.#orphans.filter((id) => !live.some((l) => l.memberId === id));
      const ids = [...new Set([...dead.map((m) => m.memberId), ...orphans])];
      this.#orphans = ids;
      if (orphans.length === 0) this.#handed.clear();
      state.ids = ids;
      const members = () => step('listing members', (s) => coordinator.members(group, { signal: s }));
      await handBackOwned(
        { store, options, fence, generation: record.generation, step, members },
        ids,
        counts,
        this.#handed,
      );
      this.#orphans = [];
      this.#handed.clear();
      await this.#unparkPausing(fence, step);
    } finally {
      await call((s) => lease.release({ signal: s }), {
        end: now() + options.lockTtlMs,
        onTimeout: () => new DrainTimeoutError('The peer check could not release the lock in time'),
      }).catch((error: unknown) => log('releasing the lock failed: %O', error));
    }
  }

  /** Unparks recovered workflows that were still pausing, once paused; gives up on each past its time. */
  async #unparkPausing(fence: Fence, step: RecoveryStep): Promise<void> {
    const ids = [...this.#pausing.keys()].slice(0, this.#host.options.batchSize);
    if (ids.length === 0) return;
    const results = await step('unparking', (s) => this.#host.store.unpark(ids, fence, { signal: s }));
    const t = now();
    for (const r of results) {
      if (r.outcome === 'resumed' || (this.#pausing.get(r.id) ?? 0) <= t) this.#pausing.delete(r.id);
    }
  }
}
