/**
 * A small workflow engine, as a host would write one around graceful-drain: `concurrency` loops each
 * claim a runnable workflow, run ONE step of it as tracked work (`drain.track`), then record the step and
 * advance the workflow in one transaction. A sweeper completes pauses: a `pausing` workflow with no step
 * in flight becomes `paused` (this is how a workflow parked by graceful-drain while a step ran ends up
 * paused, and how the resume at start finds it ready).
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

/** Options of {@link Engine}. */
export interface EngineOptions {
  /** The host database. */
  readonly db: HostDb;
  /** The worker's controller: steps run through its `track()`, loops stop on its `stopping`. */
  readonly drain: DrainController;
  /** This worker's id, recorded in the step log (the controller's member id). */
  readonly workerId: string;
  /** How many steps this worker runs at once. */
  readonly concurrency: number;
  /** The mean duration of a step, in milliseconds. */
  readonly stepMs: number;
  /** How much a step's duration varies around `stepMs`, as a share of it in [0, 1]. */
  readonly stepJitter: number;
  /** How long a claim lives: a worker that dies mid-step frees its workflow after this long. */
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

  async #loop(): Promise<void> {
    const { drain, db, claimTtlMs, pollMs } = this.#o;
    const { stopping } = drain.context;
    const idle = AbortSignal.any([stopping, this.#stop.signal]);
    while (!idle.aborted) {
      let claim: Claim | undefined;
      try {
        claim = await db.claim(`${this.#o.workerId}#${++this.#claims}`, claimTtlMs, Date.now());
      } catch (error) {
        this.#error('claim', error);
      }
      if (claim === undefined) {
        await sleep(pollMs, idle).catch(() => {});
        continue;
      }
      this.stats.claimed++;
      this.#emit({
        type: 'claim',
        id: claim.id,
        step: claim.step,
        claim: claim.owner,
        claimedAt: claim.claimedAt,
      });
      const held = claim;
      try {
        await drain.track((context) => this.#runStep(held, context), {
          label: `${claim.id} step ${claim.step + 1}/${claim.steps}`,
        });
      } catch (error) {
        // Intake closed between the claim and track(): the step never ran; give the workflow back.
        if (error instanceof DrainClosedError) await this.#release(held, 'intake closed');
        else this.#error('step', error);
      }
    }
  }

  /** One step, as tracked work: a sleep that honours `signal`, then the commit. */
  async #runStep(claim: Claim, { signal }: TaskContext): Promise<CommitOutcome | undefined> {
    const { db, stepMs, stepJitter, random, workerId } = this.#o;
    const startedAt = Date.now();
    this.#emit({ type: 'step-start', id: claim.id, step: claim.step, claim: claim.owner });
    try {
      await sleep(Math.max(1, stepMs * (1 + stepJitter * (2 * random() - 1))), signal);
    } catch {
      // The drain deadline passed ("stop now"): abandon the step; it runs again after a resume.
      await this.#release(claim, 'aborted');
      return undefined;
    }
    let outcome: CommitOutcome;
    try {
      outcome = await db.commit(claim, workerId, startedAt, Date.now());
    } catch (error) {
      this.#error('commit', error, claim);
      await this.#release(claim, 'commit failed');
      return undefined;
    }
    if (outcome === 'lost') this.stats.lost++;
    else this.stats.committed++;
    if (outcome === 'finished') this.stats.finished++;
    this.#emit({ type: 'commit', id: claim.id, step: claim.step, claim: claim.owner, outcome });
    return outcome;
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
