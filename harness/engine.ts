/**
 * A small workflow engine, as a host would write one around graceful-drain, in one of two modes:
 *
 * - `claims`: `concurrency` loops each claim a runnable workflow, run ONE step of it as tracked work
 *   (`drain.track`), then record the step and advance the workflow in one transaction. A claim is a
 *   lease: the workflow of a worker that dies runs on elsewhere once it lapses, so a crash strands
 *   nothing.
 * - `sticky`: `concurrency` loops each take up a workflow no worker holds and drive it from inside the
 *   worker, step after step, as one tracked task: its next step is known only to the worker that runs
 *   it (as with StackStorm's acked messages). No other worker takes it while it is held; at shutdown
 *   the worker finishes the step in flight and gives the workflow back. A worker that dies leaves its
 *   workflows `running` and held, with nobody to drive them: only crash recovery hands them back.
 *
 * A sweeper completes pauses: a `pausing` workflow with no step in flight (no owner, or a lease that
 * lapsed) becomes `paused`, with no owner (this is how a workflow parked while a step ran ends up paused,
 * and how the resume at start finds it ready; resumed, it is runnable again, held by nobody).
 *
 * The loops stop claiming when `stopping` aborts (shutdown began); a step in flight finishes and is
 * recorded (the drain waits for it); a step whose `signal` aborts (the drain deadline) is abandoned and
 * its claim released, so it runs again later. A claim made just as intake closed is released unrun.
 */
import { DrainClosedError, type DrainController, type TaskContext } from 'graceful-drain';
import type { Claim, CommitOutcome, HostDb } from './host-db.js';
import type { Random } from './random.js';

/** What the engine did, one event at a time (for the optional history log). */
export type EngineEvent =
  | {
      readonly type: 'claim';
      readonly id: string;
      readonly step: number;
      readonly claim: string;
      /** When the claim was made (epoch ms): its lease runs until `claimedAt + claimTtlMs`. */
      readonly claimedAt: number;
    }
  /** The step began to run, inside `drain.track()` (a claim released at once never starts). */
  | { readonly type: 'step-start'; readonly id: string; readonly step: number; readonly claim: string }
  | {
      readonly type: 'commit';
      readonly id: string;
      readonly step: number;
      readonly claim: string;
      readonly outcome: CommitOutcome;
    }
  | {
      readonly type: 'release';
      readonly id: string;
      readonly step: number;
      readonly claim: string;
      readonly why: string;
    }
  | { readonly type: 'pauses-completed'; readonly count: number }
  | {
      readonly type: 'error';
      readonly where: string;
      readonly message: string;
      /** The claim it happened to (a failed commit or release), if any. */
      readonly claim?: string;
    };

/** How the engine holds workflows: see the module's documentation. */
export type EngineMode = 'claims' | 'sticky';

/** The engine modes. */
export const ENGINE_MODES: readonly EngineMode[] = ['claims', 'sticky'];

/** Options of {@link Engine}. */
export interface EngineOptions {
  /** `claims` (a lease per step) or `sticky` (a worker drives what it took up). Default `claims`. */
  readonly mode?: EngineMode | undefined;
  /** The host database. */
  readonly db: HostDb;
  /** The worker's controller: steps run through its `track()`, loops stop on its `stopping`. */
  readonly drain: DrainController;
  /** This worker's id, recorded in the step log (the controller's member id). */
  readonly workerId: string;
  /** How many steps this worker runs at once (`sticky`: how many workflows it holds). */
  readonly concurrency: number;
  /** The mean duration of a step, in milliseconds. */
  readonly stepMs: number;
  /** How much a step's duration varies around `stepMs`, as a share of it in [0, 1]. */
  readonly stepJitter: number;
  /**
   * How long a claim lives: a worker that dies mid-step frees its workflow after this long (`sticky`: a
   * step's lease, after which the sweeper may complete a pause; the workflow stays held).
   */
  readonly claimTtlMs: number;
  /** How long a loop waits when there was nothing to claim. */
  readonly pollMs: number;
  /** How often the sweeper completes pauses. */
  readonly sweepMs: number;
  /** Randomness for step durations. */
  readonly random: Random;
  /** Receives every event (for a history log). */
  readonly onEvent?: ((event: EngineEvent) => void) | undefined;
}

/** What the engine did, in numbers. */
export interface EngineStats {
  claimed: number;
  committed: number;
  finished: number;
  lost: number;
  released: number;
  pausesCompleted: number;
  errors: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** The workflow engine of one worker process. */
export class Engine {
  readonly #o: EngineOptions;
  readonly #stop = new AbortController();
  readonly #loops: Promise<void>[] = [];
  #sweeper: Promise<void> | undefined;
  #claims = 0;
  readonly stats: EngineStats = {
    claimed: 0,
    committed: 0,
    finished: 0,
    lost: 0,
    released: 0,
    pausesCompleted: 0,
    errors: 0,
  };

  constructor(options: EngineOptions) {
    this.#o = options;
  }

  /** Starts the claim loops and the sweeper. Call after `drain.start()`. */
  start(): void {
    if (this.#loops.length > 0) return;
    for (let slot = 0; slot < this.#o.concurrency; slot++) this.#loops.push(this.#loop());
    this.#sweeper = this.#sweep();
  }

  /**
   * Stops the claim loops (they also stop by themselves once shutdown begins) and waits for them, then
   * stops the sweeper after one last sweep. Call it after the shutdown, before closing the database.
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#loops);
    await this.#sweeper;
    await this.#completePauses();
  }

  #emit(event: EngineEvent): void {
    this.#o.onEvent?.(event);
  }

  #error(where: string, error: unknown, claim?: Claim): void {
    this.stats.errors++;
    const message = error instanceof Error ? error.message : String(error);
    this.#emit({ type: 'error', where, message, ...(claim === undefined ? {} : { claim: claim.owner }) });
  }

  /** A new owner: unique per claim, so a late commit of an old claim is refused. */
  #owner(): string {
    return `${this.#o.workerId}#${++this.#claims}`;
  }

  async #loop(): Promise<void> {
    const { drain, db, claimTtlMs, pollMs } = this.#o;
    const sticky = this.#o.mode === 'sticky';
    const { stopping } = drain.context;
    const idle = AbortSignal.any([stopping, this.#stop.signal]);
    while (!idle.aborted) {
      let claim: Claim | undefined;
      try {
        const owner = this.#owner();
        claim = await (sticky
          ? db.take(owner, claimTtlMs, Date.now())
          : db.claim(owner, claimTtlMs, Date.now()));
      } catch (error) {
        this.#error('claim', error);
      }
      if (claim === undefined) {
        await sleep(pollMs, idle).catch(() => {});
        continue;
      }
      this.stats.claimed++;
      this.#claimed(claim);
      const held = claim;
      try {
        await drain.track(
          async (context) => {
            // Sticky: step after step, for as long as the workflow runs on and the worker keeps it.
            let next: Claim | undefined = held;
            do next = await this.#runStep(next, context, sticky);
            while (next !== undefined);
          },
          { label: sticky ? `${claim.id} (held)` : `${claim.id} step ${claim.step + 1}/${claim.steps}` },
        );
      } catch (error) {
        // Intake closed between the claim and track(): the step never ran; give the workflow back.
        if (error instanceof DrainClosedError) await this.#release(held, 'intake closed');
        else this.#error('step', error);
      }
    }
  }

  #claimed(claim: Claim): void {
    this.#emit({
      type: 'claim',
      id: claim.id,
      step: claim.step,
      claim: claim.owner,
      claimedAt: claim.claimedAt,
    });
  }

  /**
   * One step, as tracked work (or part of it): a sleep that honours `signal`, then the commit. With
   * `keep` (sticky), a workflow that runs on is kept under a new owner unless the worker is stopping:
   * resolves the claim of its next step then.
   */
  async #runStep(claim: Claim, { signal, stopping }: TaskContext, keep: boolean): Promise<Claim | undefined> {
    const { db, stepMs, stepJitter, random, workerId, claimTtlMs } = this.#o;
    const startedAt = Date.now();
    this.#emit({ type: 'step-start', id: claim.id, step: claim.step, claim: claim.owner });
    try {
      await sleep(Math.max(1, stepMs * (1 + stepJitter * (2 * random() - 1))), signal);
    } catch {
      // The drain deadline passed ("stop now"): abandon the step; it runs again after a resume.
      await this.#release(claim, 'aborted');
      return undefined;
    }
    const owner = keep && !stopping.aborted && !this.#stop.signal.aborted ? this.#owner() : undefined;
    const at = Date.now();
    let outcome: CommitOutcome;
    try {
      outcome = await db.commit(
        claim,
        workerId,
        startedAt,
        at,
        owner === undefined ? undefined : { owner, leaseMs: claimTtlMs },
      );
    } catch (error) {
      this.#error('commit', error, claim);
      await this.#release(claim, 'commit failed');
      return undefined;
    }
    if (outcome === 'lost') this.stats.lost++;
    else this.stats.committed++;
    if (outcome === 'finished') this.stats.finished++;
    this.#emit({ type: 'commit', id: claim.id, step: claim.step, claim: claim.owner, outcome });
    if (outcome !== 'advanced' || owner === undefined) return undefined;
    const next: Claim = { id: claim.id, step: claim.step + 1, steps: claim.steps, owner, claimedAt: at };
    this.#claimed(next);
    return next;
  }

  async #release(claim: Claim, why: string): Promise<void> {
    try {
      if (await this.#o.db.release(claim, Date.now())) this.stats.released++;
      this.#emit({ type: 'release', id: claim.id, step: claim.step, claim: claim.owner, why });
    } catch (error) {
      this.#error('release', error, claim);
    }
  }

  async #sweep(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      await this.#completePauses();
      await sleep(this.#o.sweepMs, this.#stop.signal).catch(() => {});
    }
  }

  async #completePauses(): Promise<void> {
    try {
      const count = await this.#o.db.completePauses(Date.now());
      if (count > 0) {
        this.stats.pausesCompleted += count;
        this.#emit({ type: 'pauses-completed', count });
      }
    } catch (error) {
      this.#error('sweep', error);
    }
  }
}
