/**
 * The chaos phase: a loop driven by one seeded random stream. Every 0.3 to 1.2 s it injects a fault
 * chosen by weight among those the backend can take (faults.ts), at a member or a slot chosen at
 * random, or arms a trap that springs on the next member to reach a state; members that exit are
 * restarted after a random delay; new workflows keep the cluster busy; the simulated user (user.ts)
 * pauses, resumes and pauses again; and about once per 20 s the whole cluster stops (gracefully, or
 * with its last member killed, or with every member killed) and starts again. The same seed gives the same choices, in the same order (what the servers and the
 * kernel do with them varies from run to run).
 */
import type { BackendName } from '../../harness/backend.js';
import { type HostDb, workflowId } from '../../harness/host-db.js';
import type { MemberProcess } from '../../harness/member.js';
import { deriveSeed, type Random, seededRandom, uniform } from '../../harness/random.js';
import type { ChaosCluster } from './cluster.js';
import { FAULTS, faultsFor, type FaultKind } from '../faults.js';
import { clock, type HarnessEvent, type Recorder } from '../history.js';
import type { Faults } from './inject.js';
import type { SimulatedUser, UserFault } from './user.js';

/** Steps of every workflow. */
export const STEPS = 6;

/** How the whole cluster stops: see run.ts. */
export type StopKind = 'cluster-stop' | 'crash-last' | 'crash-all';

/** A stop's kind, from `random`: graceful half the time, a crash of the last member or of all otherwise. */
export function stopKind(random: Random): StopKind {
  const roll = random();
  return roll < 0.5 ? 'cluster-stop' : roll < 0.75 ? 'crash-last' : 'crash-all';
}

/** Keeps the cluster busy: new workflows whenever fewer than `target` are running. */
export class Workload {
  readonly #db: HostDb;
  readonly #record: Recorder<HarnessEvent>;
  readonly #target: number;
  #created = 0;

  constructor(db: HostDb, record: Recorder<HarnessEvent>, target: number) {
    this.#db = db;
    this.#record = record;
    this.#target = target;
  }

  /** How many workflows were created. */
  get created(): number {
    return this.#created;
  }

  async topUp(): Promise<void> {
    const counts = await this.#db.counts(Date.now());
    const missing = this.#target - counts.running;
    if (missing <= 0) return;
    const ids = Array.from({ length: missing }, () => workflowId(++this.#created, 9999));
    await this.#db.seed(
      ids.map((id) => ({ id, steps: STEPS })),
      Date.now(),
    );
    this.#record({ type: 'seed', ids });
  }
}

/** A fault armed for the next member that reaches `state`. */
interface Trap {
  readonly kind: FaultKind;
  readonly state: string;
  readonly random: Random;
  /** How long after the state change it springs, at most (ms). */
  readonly withinMs: number;
  readonly spring: (member: MemberProcess) => void;
}

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  readonly backend: BackendName;
  readonly cluster: ChaosCluster;
  readonly faults: Faults;
  readonly db: HostDb;
  readonly workload: Workload;
  /** The simulated user. */
  readonly user: SimulatedUser;
  readonly seed: number;
  readonly record: Recorder<HarnessEvent>;
  readonly seconds: number;
  /**
   * Stops the whole cluster and starts it again (see run.ts): gracefully (`cluster-stop`), or the last
   * member killed (`crash-last`), or every member killed at once (`crash-all`).
   */
  readonly clusterStop: (kind: StopKind) => Promise<void>;
  /** Prints a progress line. */
  readonly progress: () => Promise<void>;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The chaos phase. */
export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #kinds: readonly FaultKind[];
  /** The schedule: when, what, where. One stream, drawn in the same order whatever happens. */
  readonly #random: Random;
  #injected = 0;
  /** Faults armed for the next member that reaches a state: `handing-off`, or `running` at start. */
  readonly #traps: Trap[] = [];

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#random = seededRandom(deriveSeed(options.seed, 'schedule'));
    this.#kinds = faultsFor(options.backend).filter((k) => FAULTS[k].weight > 0);
  }

  async run(): Promise<void> {
    const o = this.#o;
    const r = this.#random;
    const start = clock();
    const end = start + o.seconds * 1000;
    // Decided up front, so that the seed alone says when the cluster stops: about once per 20 s.
    const stops = Math.floor(o.seconds / 20 + 0.1 + 0.9 * r());
    const clusterStops = Array.from(
      { length: stops },
      () => start + uniform(r, 0.15, 0.85) * (end - start),
    ).sort((a, b) => a - b);
    // Their kinds from a stream apart: the schedule of the faults stays what it was.
    const kinds = seededRandom(deriveSeed(o.seed, 'stop-kind'));
    let nextFault = start + uniform(r, 300, 1200);
    let nextTick = start;
    o.cluster.restarting = true;
    o.cluster.onState = (member, state) => this.#spring(member, state);
    while (!o.signal.aborted && clock() < end) {
      const now = clock();
      o.cluster.refill();
      if (now >= nextTick) {
        nextTick = now + 1000;
        // Not while the harness holds the host's database: the new workflows would wait behind it.
        if (!o.faults.hostLocked) {
          await o.workload
            .topUp()
            .catch((error: unknown) => o.log(`(workload: ${(error as Error).message})`));
        }
        await o.progress();
      }
      if (clusterStops.length > 0 && now >= (clusterStops[0] as number)) {
        clusterStops.shift();
        // A cluster stop is calm: no trap springs while it runs. The traps armed stay armed: they
        // spring on the members that start after it (their resume has everything parked to resume).
        o.cluster.onState = undefined;
        await o.clusterStop(stopKind(kinds));
        o.cluster.onState = (member, state) => this.#spring(member, state);
        nextFault = clock() + uniform(r, 300, 1200);
        continue;
      }
      if (now >= nextFault) {
        nextFault = now + uniform(r, 300, 1200);
        await this.#inject().catch((error: unknown) => o.log(`(fault failed: ${(error as Error).message})`));
      }
      await sleep(50);
    }
    o.cluster.onState = undefined;
    this.#traps.length = 0;
  }

  /** A member reached `state`: spring the first trap that waits for that state, a moment later. */
  #spring(member: MemberProcess, state: string): void {
    const i = this.#traps.findIndex((t) => t.state === state);
    if (i === -1) return;
    const [trap] = this.#traps.splice(i, 1) as [Trap];
    // A few milliseconds in: the member is taking, or holds, the start-stop lock.
    setTimeout(() => {
      if (this.#o.cluster.onState !== undefined) trap.spring(member);
    }, trap.random() * trap.withinMs);
  }

  /** Arms `kind` for the next member that reaches `state`. */
  #arm(
    kind: FaultKind,
    state: string,
    random: Random,
    withinMs: number,
    spring: (member: MemberProcess) => void,
  ): void {
    this.#traps.push({ kind, state, random, withinMs, spring });
  }

  /** The user acts as `kind` says; recorded as a fault when it did something. */
  async #user(kind: UserFault): Promise<void> {
    const { faults, user, log } = this.#o;
    // Not while the harness holds the host's database: the user's writes would wait behind it.
    if (faults.hostLocked) return;
    try {
      const what = await user.act(kind);
      if (what === undefined) return;
      faults.begin(kind, {}, 0, what);
      log(`a user ${what}`);
    } catch (error) {
      log(`(user: ${(error as Error).message})`);
    }
  }

  async #inject(): Promise<void> {
    const { faults, cluster } = this.#o;
    const total = this.#kinds.reduce((n, k) => n + FAULTS[k].weight, 0);
    let roll = this.#random() * total;
    const kind = this.#kinds.find((k) => (roll -= FAULTS[k].weight) < 0) ?? (this.#kinds[0] as FaultKind);
    // Always draw the same numbers, whatever is alive, so that one seed replays the same choices;
    // the fault's own parameters (durations) come from a stream of its own.
    const slotRoll = this.#random();
    const random = seededRandom(deriveSeed(this.#o.seed, 'fault', ++this.#injected));
    const live = cluster.live();
    const member = live[Math.floor(slotRoll * live.length)];
    const slot = 1 + Math.floor(slotRoll * cluster.slots);
    switch (kind) {
      case 'sigterm':
        if (member !== undefined && !member.stopping) faults.sigterm(member);
        break;
      case 'sigkill':
        if (member !== undefined) faults.sigkill(member);
        break;
      case 'stall-at-park':
        faults.stallAtPark(live, random);
        break;
      case 'freeze-at-handoff':
        this.#arm(kind, 'handing-off', random, 25, (m) => faults.freeze(m, random, kind));
        break;
      case 'freeze-at-start':
        this.#arm(kind, 'running', random, 25, (m) => faults.freeze(m, random, kind));
        break;
      case 'host-lock-at-park':
      case 'host-lock-at-resume':
        faults.armHostLock(kind, live, random);
        break;
      case 'user-pause':
      case 'user-resume':
      case 'user-pause-parked':
        await this.#user(kind);
        break;
      case 'user-at-park':
        this.#arm(kind, 'handing-off', random, 50, () => void this.#user(kind));
        break;
      case 'user-at-resume':
        this.#arm(kind, 'running', random, 150, () => void this.#user(kind));
        break;
      case 'freeze':
        if (member !== undefined && !member.frozen) faults.freeze(member, random);
        break;
      case 'conn-kill':
        if (member !== undefined) await faults.connKill(member, random);
        break;
      case 'partition':
        faults.partition(slot, cluster.memberOf(slot), random);
        break;
      case 'delay':
        faults.delay(slot, cluster.memberOf(slot), random);
        break;
      case 'server-restart':
        faults.serverRestart(random);
        break;
      case 'sqlite-stall':
        await faults.sqliteStall(random);
        break;
      case 'stop-all': {
        const running = live.filter((m) => !m.stopping);
        if (running.length > 0) faults.stopAll(running);
        break;
      }
      case 'user-at-cluster-stop':
      case 'hostile-listeners':
      case 'cluster-stop':
      case 'crash-last':
      case 'crash-all':
        // Scheduled apart (run.ts, cluster.ts): never drawn.
        break;
    }
  }
}
