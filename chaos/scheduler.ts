/**
 * The chaos phase: a loop driven by one seeded random stream. Every 0.3 to 1.2 s it injects a fault
 * chosen by weight among those the backend can take, at a member or a slot chosen at random; members
 * that exit are restarted after a random delay; new workflows keep the cluster busy; now and then a
 * user pauses a running workflow; and about once per 20 s the whole cluster stops gracefully and
 * starts again. The same seed gives the same choices, in the same order (what the servers and the
 * kernel do with them varies from run to run).
 */
import type { BackendName } from '../examples/demo/backend.js';
import { type HostDb, workflowId } from '../examples/demo/host-db.js';
import { deriveSeed, type Random, seededRandom } from '../examples/demo/random.js';
import type { ChaosCluster } from './cluster.js';
import { faultsFor, type Faults, uniform } from './faults.js';
import { clock, type FaultKind, type HarnessEvent, type Recorder } from './history.js';
import type { MemberProcess } from './member.js';

/** How likely each fault is, relative to the others. */
const WEIGHTS: Readonly<Record<FaultKind, number>> = Object.freeze({
  sigterm: 2,
  sigkill: 2,
  freeze: 2,
  'freeze-at-handoff': 2,
  'freeze-at-start': 1,
  'stall-at-park': 2,
  'conn-kill': 2,
  partition: 2,
  delay: 1,
  'server-restart': 1,
  'sqlite-stall': 1,
  'stop-all': 2,
  // Scheduled apart, about one per 20 s of chaos.
  'cluster-stop': 0,
});

/** Steps of every workflow. */
export const STEPS = 6;

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

/** A freeze armed for the next member that reaches `state`. */
interface Trap {
  readonly kind: FaultKind;
  readonly state: string;
  readonly random: Random;
}

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  readonly backend: BackendName;
  readonly cluster: ChaosCluster;
  readonly faults: Faults;
  readonly db: HostDb;
  readonly workload: Workload;
  readonly seed: number;
  readonly record: Recorder<HarnessEvent>;
  readonly seconds: number;
  /** How many workflows a user pauses at most. */
  readonly userPauses: number;
  /** Stops every member gracefully and starts them again (see run.ts). */
  readonly clusterStop: () => Promise<void>;
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
  /** Which workflow a user pauses (depends on what runs: a stream apart). */
  readonly #pickRandom: Random;
  #paused = 0;
  #injected = 0;
  /** Freezes armed for the next member that reaches a state: `handing-off`, or `running` at start. */
  readonly #traps: Trap[] = [];

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#random = seededRandom(deriveSeed(options.seed, 'schedule'));
    this.#pickRandom = seededRandom(deriveSeed(options.seed, 'user-pause'));
    this.#kinds = faultsFor(options.backend).filter((k) => WEIGHTS[k] > 0);
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
    let nextFault = start + uniform(r, 300, 1200);
    let nextPause = start + uniform(r, 1500, 4000);
    let nextTick = start;
    o.cluster.restarting = true;
    o.cluster.onState = (member, state) => this.#spring(member, state);
    while (!o.signal.aborted && clock() < end) {
      const now = clock();
      o.cluster.refill();
      if (now >= nextTick) {
        nextTick = now + 1000;
        await o.workload.topUp().catch((error: unknown) => o.log(`(workload: ${(error as Error).message})`));
        await o.progress();
      }
      if (clusterStops.length > 0 && now >= (clusterStops[0] as number)) {
        clusterStops.shift();
        // A cluster stop is calm: no trap springs while it runs.
        this.#traps.length = 0;
        o.cluster.onState = undefined;
        await o.clusterStop();
        o.cluster.onState = (member, state) => this.#spring(member, state);
        nextFault = clock() + uniform(r, 300, 1200);
        continue;
      }
      if (now >= nextPause) {
        nextPause = now + uniform(r, 2000, 5000);
        if (this.#paused < o.userPauses) await this.#userPause();
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

  /** A member reached `state`: freeze it a moment later if a trap waits for that state. */
  #spring(member: MemberProcess, state: string): void {
    const i = this.#traps.findIndex((t) => t.state === state);
    if (i === -1) return;
    const [trap] = this.#traps.splice(i, 1) as [Trap];
    // A few milliseconds in: the member is taking, or holds, the start-stop lock.
    setTimeout(() => {
      if (this.#o.cluster.onState !== undefined) this.#o.faults.freeze(member, trap.random, trap.kind);
    }, trap.random() * 25);
  }

  #pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.#pickRandom() * items.length)];
  }

  async #inject(): Promise<void> {
    const { faults, cluster } = this.#o;
    const total = this.#kinds.reduce((n, k) => n + WEIGHTS[k], 0);
    let roll = this.#random() * total;
    const kind = this.#kinds.find((k) => (roll -= WEIGHTS[k]) < 0) ?? (this.#kinds[0] as FaultKind);
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
        this.#traps.push({ kind, state: 'handing-off', random });
        break;
      case 'freeze-at-start':
        this.#traps.push({ kind, state: 'running', random });
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
        faults.sqliteStall(random);
        break;
      case 'stop-all': {
        const running = live.filter((m) => !m.stopping);
        if (running.length > 0) faults.stopAll(running);
        break;
      }
      case 'cluster-stop':
        break;
    }
  }

  /** A user pauses a running workflow in the host table, with no park mark. */
  async #userPause(): Promise<void> {
    const { db, record, log } = this.#o;
    // Only workflows no member has claimed, not even under a lapsed claim: the demo's engine records a
    // step under a claim that lapsed while its member was frozen (it checks the owner, not the lease),
    // which would start a step after the user's pause. And never at the last step: a member may claim
    // it between this read and the pause, and would finish it. Both are the example's races, not the
    // library's.
    const snapshot = await db.snapshot();
    const unclaimed = new Set(snapshot.workflows.filter((w) => w.owner === null).map((w) => w.id));
    const candidates = (await db.pauseCandidates(Date.now())).filter(
      (w) => unclaimed.has(w.id) && w.step + 1 < w.steps,
    );
    const target = this.#pick(candidates.filter((w) => w.step > 0)) ?? this.#pick(candidates);
    if (target === undefined) return;
    const row = await db.userPause(target.id, Date.now());
    if (row === undefined) return;
    this.#paused++;
    record({ type: 'user-pause', id: row.workflowId, step: row.step, claim: row.claim });
    log(
      `a user pauses ${row.workflowId} at step ${row.step}${row.claim === null ? '' : ' (a step in flight)'}`,
    );
  }
}
