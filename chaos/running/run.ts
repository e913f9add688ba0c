/**
 * One chaos run, from setup to clean-up:
 *
 * 1. **Setup**: the backend's tables (or keys) under names of the run's own, a proxy per slot between
 *    the members and the server (Redis, PostgreSQL), the first workflows, and `--members` members.
 * 2. **Chaos** for `--seconds`: see scheduler.ts; at a cluster stop, between the park and the restart,
 *    the simulated user (user.ts) often resumes, pauses again, or pauses parked workflows. A crash stop
 *    kills the last member (or every member): its workflows are stranded until the next start
 *    recovers them.
 * 3. **Calm**: every fault healed; a crash stop (the last member killed, or all); then the members it
 *    started stop gracefully, all at once; the user acts on what they parked; a fresh set of members
 *    starts, resumes what was parked (not what the user paused) and finishes every workflow; then it
 *    stops gracefully, all at once.
 * 4. **Checks** over the merged history and the final state of the host's tables (checker.ts).
 *
 * Whatever happens (a failure, Ctrl-C), `run()` ends every member it started, closes its proxies and
 * connections, and removes what it created on the servers and on disk.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendName } from '../../harness/backend.js';
import type { HostSnapshot } from '../../harness/host-db.js';
import { killAllChildren } from '../../harness/process.js';
import { deriveSeed, type Random, seededRandom } from '../../harness/random.js';
import { runChecks, type CheckResult } from '../checking/checker.js';
import { ChaosCluster, CONCURRENCY } from './cluster.js';
import { crashPeer, crashStop, type CrashStopContext } from './crash-stop.js';
import { TIMINGS } from '../faults.js';
import { clock, type HarnessEvent, historyFile, type Phase, readHistory, type Recorder } from '../history.js';
import { Faults, HOSTILE_SHARE } from './inject.js';
import { Scheduler, STEPS, type StopKind, Workload } from './scheduler.js';
import { RunServers } from './servers.js';
import { SimulatedUser } from './user.js';

/** The options of a run (the command line's flags). */
export interface RunOptions {
  readonly backend: BackendName;
  readonly members: number;
  readonly seconds: number;
  readonly seed: number;
  /** Keep the history in this folder (otherwise a temporary one, kept only when a check fails). */
  readonly historyDir?: string | undefined;
}

/** What a run found. */
export interface RunResult {
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
  /** Faults injected, by kind. */
  readonly faults: Readonly<Record<string, number>>;
  /** How long the timed faults of each kind lasted in total, in ms. */
  readonly faultMs: Readonly<Record<string, number>>;
  readonly faultCount: number;
  readonly membersStarted: number;
  readonly workflows: number;
  readonly stepsCommitted: number;
  readonly durationMs: number;
  /** Where the history is, when it was kept. */
  readonly historyDir: string | undefined;
  /** What the run created on the servers (all removed by then). */
  readonly created: { readonly pgSchema: string | null; readonly redisKeyPrefix: string | null };
  /** The process ids of every member it started (all ended by then). */
  readonly pids: readonly number[];
  /** The history around each violation, ready to print. */
  readonly report: string;
}

/** The run itself could not go on (a server is missing, members never started): exit code 1. */
export class RunError extends Error {}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** One chaos run. */
export class ChaosRun {
  readonly o: RunOptions;
  readonly runId = Math.random().toString(36).slice(2, 8);
  readonly group = `chaos-${this.runId}`;
  readonly t0 = clock();
  readonly folder = mkdtempSync(join(tmpdir(), 'graceful-drain-chaos-'));
  readonly historyDir: string;
  /** When members come back after an exit (a stream apart: exits happen in no fixed order). */
  readonly random;
  readonly record: Recorder<HarnessEvent>;
  readonly servers: RunServers;
  readonly problems: string[] = [];
  #cluster: ChaosCluster | undefined;
  #faults: Faults | undefined;
  #workload: Workload | undefined;
  #user: SimulatedUser | undefined;
  /** Whether the user acts at a cluster stop, and how: a stream apart. */
  readonly #stopRandom;
  /** Which member a crash stop keeps for last, the calm phase's crash, the user at a crash: a stream apart. */
  readonly #crashRandom;
  /** Which member the calm phase's crash-peer kills: a stream apart. */
  readonly #peerRandom;
  #cleaning: Promise<void> | undefined;

  constructor(options: RunOptions) {
    this.o = options;
    this.historyDir = options.historyDir ?? join(this.folder, 'history');
    mkdirSync(this.historyDir, { recursive: true });
    this.random = seededRandom(deriveSeed(options.seed, 'restarts'));
    this.#stopRandom = seededRandom(deriveSeed(options.seed, 'cluster-stop'));
    this.#crashRandom = seededRandom(deriveSeed(options.seed, 'crash-stop'));
    this.#peerRandom = seededRandom(deriveSeed(options.seed, 'crash-peer'));
    this.record = historyFile<HarnessEvent>(join(this.historyDir, 'harness.jsonl'), 'harness');
    this.servers = new RunServers(options.backend, this.runId, this.folder);
  }

  log(line: string): void {
    console.log(`[${((clock() - this.t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);
  }

  get #db() {
    return this.servers.db;
  }

  /** Runs it all; cleans up whatever happens. `signal` (Ctrl-C) cuts the run short. */
  async run(signal: AbortSignal): Promise<RunResult> {
    try {
      await this.#setup();
      if (!signal.aborted) await this.#chaos(signal);
      if (!signal.aborted) await this.#calm(signal);
      if (signal.aborted) throw new RunError('interrupted');
      return await this.#check();
    } finally {
      await this.cleanup();
    }
  }

  async #setup(): Promise<void> {
    const o = this.o;
    const t = TIMINGS;
    this.log(
      `chaos on ${o.backend}: ${o.members} members, ${o.seconds} s of faults, seed ${o.seed} ` +
        `(member TTL ${t.memberTtlMs} ms, lock TTL ${t.lockTtlMs} ms, shutdown budget ${t.shutdownTimeoutMs} ms)`,
    );
    this.record({
      type: 'run',
      backend: o.backend,
      seed: o.seed,
      members: o.members,
      seconds: o.seconds,
      timings: { ...TIMINGS },
    });
    try {
      await this.servers.open(o.members);
    } catch (error) {
      throw new RunError(`could not prepare the ${o.backend} backend: ${(error as Error).message}`);
    }
    const { config, proxies } = this.servers;
    this.#workload = new Workload(this.#db, this.record, o.members * CONCURRENCY * 2);
    await this.#workload.topUp();
    this.#cluster = new ChaosCluster({
      slots: o.members,
      config,
      group: this.group,
      runId: this.runId,
      seed: o.seed,
      timings: TIMINGS,
      historyDir: this.historyDir,
      proxies,
      record: this.record,
      random: this.random,
      log: (line) => this.log(line),
    });
    this.#faults = new Faults({
      backend: o.backend,
      timings: TIMINGS,
      record: this.record,
      slots: o.members,
      proxies,
      redis: this.servers.redis,
      pg: this.servers.pg,
      sqlitePath: o.backend === 'postgres' ? undefined : config.dbPath,
      postgres: o.backend === 'postgres',
      connectionName: (memberId) => (this.#cluster as ChaosCluster).connectionName(memberId),
    });
    const faults = this.#faults;
    this.#cluster.onHostile = (member, mode) =>
      faults.begin('hostile-listeners', { members: [member] }, 0, `${mode} (${member.memberId})`);
    this.#cluster.onSpawn = (member) => faults.started(member);
    this.#cluster.onNote = (member, note) => {
      if (note === 'host-lock') faults.hostLockTaken(member);
    };
    this.#user = new SimulatedUser({
      db: this.#db,
      pgSchema: config.pgSchema,
      store: this.servers.store,
      record: this.record,
      random: seededRandom(deriveSeed(o.seed, 'user')),
      maxPaused: o.members * 2,
    });
    await this.#startAll('the first members');
  }

  /** Starts a member in every empty slot and waits for all to be ready (20 s at most). */
  async #startAll(what: string): Promise<void> {
    const started = (this.#cluster as ChaosCluster).fill();
    this.log(`starting ${started.map((m) => m.memberId).join(', ')}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('not every member was ready within 20 s')), 20_000);
    });
    try {
      await Promise.race([Promise.all(started.map((m) => m.ready)), timeout]);
    } catch (error) {
      throw new RunError(`${what} did not start: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  #phaseStart(phase: Phase): void {
    this.record({ type: 'phase', phase });
  }

  async #chaos(signal: AbortSignal): Promise<void> {
    const o = this.o;
    this.#phaseStart('chaos');
    this.log(`chaos for ${o.seconds} s`);
    const scheduler = new Scheduler({
      backend: o.backend,
      cluster: this.#cluster as ChaosCluster,
      faults: this.#faults as Faults,
      db: this.#db,
      workload: this.#workload as Workload,
      user: this.#user as SimulatedUser,
      seed: o.seed,
      record: this.record,
      seconds: o.seconds,
      clusterStop: (kind: StopKind) =>
        kind === 'cluster-stop'
          ? this.#clusterStop('cluster stop', true, signal)
          : this.#crashStop(kind, kind, true, signal),
      progress: () => this.#progress(),
      log: (line) => this.log(line),
      signal,
    });
    (this.#cluster as ChaosCluster).hostileShare = HOSTILE_SHARE;
    try {
      await scheduler.run();
    } finally {
      (this.#cluster as ChaosCluster).hostileShare = 0;
    }
  }

  /**
   * Heals every fault, waits until no member that crashed or froze can still count as alive, then stops
   * every member gracefully at once and records what is left running (invariant 2). In the chaos phase
   * the cluster starts again at once.
   */
  async #clusterStop(label: string, restart: boolean, signal: AbortSignal): Promise<void> {
    const cluster = this.#cluster as ChaosCluster;
    const faults = this.#faults as Faults;
    const wasRestarting = cluster.restarting;
    await this.#quiesce(label, 'every member stops gracefully', restart, signal);
    // Work to park: the members stop with workflows running.
    await (this.#workload as Workload).topUp();
    const live = cluster.live();
    faults.begin('cluster-stop', { members: live }, 0, `${live.length} members at once`);
    await this.#stopAll(label);
    // Everything is parked, nobody runs: a user resumes and pauses again, or pauses a parked workflow,
    // before the next start (which must resume none of those). At three chaos-phase stops in four, and
    // at the calm phase's.
    if (!signal.aborted && (this.#stopRandom() < 0.75 || !restart)) {
      const what = await (this.#user as SimulatedUser)
        .act('user-at-cluster-stop')
        .catch((error: unknown) => this.log(`(user: ${(error as Error).message})`));
      if (typeof what === 'string') {
        faults.begin('user-at-cluster-stop', {}, 0, what);
        this.log(`${label}: a user ${what}`);
      }
    }
    cluster.restarting = wasRestarting;
    if (restart && !signal.aborted) cluster.fill();
  }

  /**
   * Before a stop of the whole cluster: no more restarts, every fault healed (and disarmed: the host
   * lock armed for the next start stays for a `restart`), then a wait until no member that crashed or
   * froze can still count as alive; those already on their way out (stopped under faults) go first.
   */
  async #quiesce(label: string, what: string, restart: boolean, signal: AbortSignal): Promise<void> {
    const cluster = this.#cluster as ChaosCluster;
    const faults = this.#faults as Faults;
    cluster.restarting = false;
    faults.healAll();
    faults.disarm(cluster.live(), !restart);
    const settleMs = TIMINGS.memberTtlMs * 1.5 + TIMINGS.lockTtlMs;
    this.log(`${label}: faults healed; ${what} in ${(settleMs / 1000).toFixed(1)} s`);
    await sleep(settleMs, signal);
    const leaving = cluster.live().filter((m) => m.stopping);
    if (leaving.length > 0) {
      await Promise.race([
        Promise.all(leaving.map((m) => m.exited)),
        sleep(TIMINGS.shutdownTimeoutMs + TIMINGS.closeTimeoutMs, signal),
      ]);
      for (const m of leaving) if (m.alive) faults.signal(m, 'SIGKILL');
      await Promise.all(leaving.map((m) => m.exited));
    }
  }

  /** A crash stop (crash-stop.ts), `restart` as in {@link #quiesce}. */
  async #crashStop(
    kind: 'crash-last' | 'crash-all',
    label: string,
    restart: boolean,
    signal: AbortSignal,
  ): Promise<void> {
    await crashStop(this.#crashContext(label, restart, signal, this.#crashRandom), kind, label, signal);
  }

  /** What a crash stop or a crash-peer acts on; `random` its stream of choices. */
  #crashContext(label: string, restart: boolean, signal: AbortSignal, random: Random): CrashStopContext {
    return {
      cluster: this.#cluster as ChaosCluster,
      faults: this.#faults as Faults,
      db: this.#db,
      user: this.#user as SimulatedUser,
      workload: this.#workload as Workload,
      config: this.servers.config,
      group: this.group,
      record: this.record,
      log: (line) => this.log(line),
      random,
      quiesce: (what) => this.#quiesce(label, what, restart, signal),
      startAll: (what) => this.#startAll(what),
    };
  }

  async #calm(signal: AbortSignal): Promise<void> {
    this.#phaseStart('calm');
    const cluster = this.#cluster as ChaosCluster;
    cluster.restarting = false;
    // One member killed while the others run: their peer check hands its workflows back.
    await crashPeer(this.#crashContext('calm', false, signal, this.#peerRandom), 'calm', signal);
    if (signal.aborted) return;
    await this.#crashStop(this.#crashRandom() < 0.5 ? 'crash-last' : 'crash-all', 'calm', false, signal);
    cluster.restarting = false;
    if (signal.aborted) return;
    await this.#clusterStop('calm', false, signal);
    if (signal.aborted) return;
    await this.#startAll('the fresh members of the calm phase');
    const bound = 30_000 + (this.#workload as Workload).created * STEPS * TIMINGS.stepMs;
    const until = clock() + bound;
    let done = false;
    let last = '';
    let stuck = 0;
    while (!signal.aborted && clock() < until) {
      // One consistent read of the host's tables: every workflow succeeded or paused by a user. Marks
      // are read after it: nothing is left to park then, so none can appear meanwhile.
      const snapshot = await this.#db.snapshot();
      const byUser = new Set(snapshot.userPauses.map((p) => p.workflowId));
      const open = snapshot.workflows.filter((w) => w.status !== 'succeeded' && !byUser.has(w.id));
      const marks = await this.servers.listParked();
      const marked = new Set(marks.map((p) => p.id));
      last = `${open.length} workflows not finished, ${marks.length} parked`;
      if (open.length === 0 && marks.length === 0) {
        done = true;
        break;
      }
      // Paused, with no mark and no user's pause: nothing will ever resume those. Waiting longer
      // only delays the report (the checks name them).
      const stranded = open.filter((w) => w.status === 'paused' && !marked.has(w.id));
      stuck = open.length > 0 && stranded.length === open.length ? stuck + 1 : 0;
      if (stuck >= 15) {
        last = `${stranded.length} workflows paused with no park mark and no user's pause: ${stranded
          .slice(0, 5)
          .map((w) => w.id)
          .join(', ')}`;
        break;
      }
      await sleep(200, signal);
    }
    if (!done)
      this.problems.push(
        `the workflows did not all finish within ${bound / 1000} s of the calm phase (${last})`,
      );
    else this.log(`every workflow not paused by a user has finished`);
    this.#phaseStart('final-stop');
    await this.#stopAll('final stop');
    this.#phaseStart('done');
  }

  /** SIGTERM to every live member at once; records what is left running once they have all exited. */
  async #stopAll(label: string): Promise<void> {
    const faults = this.#faults as Faults;
    const { stopped, killed } = await (this.#cluster as ChaosCluster).stopAll(
      (member, s) => faults.signal(member, s),
      TIMINGS.shutdownTimeoutMs + TIMINGS.closeTimeoutMs + 3000,
    );
    const snapshot = await this.#db.snapshot();
    const running = snapshot.workflows.filter((w) => w.status === 'running').map((w) => w.id);
    this.record({ type: 'cluster-stopped', members: stopped.map((m) => m.memberId), running });
    this.log(
      `${label}: ${stopped.length} members stopped${killed.length > 0 ? ` (${killed.length} had to be killed)` : ''}; ` +
        `${running.length} workflows left running${running.length === 0 ? '' : `: ${running.slice(0, 5).join(', ')}`}`,
    );
  }

  async #progress(): Promise<void> {
    const cluster = this.#cluster as ChaosCluster;
    const faults = this.#faults as Faults;
    const live = cluster.live();
    const frozen = live.filter((m) => m.frozen).length;
    const ready = live.filter((m) => m.state === 'running').length;
    const c = await this.#db.counts(Date.now());
    const parked = (await this.servers.listParked()).length;
    const injected = [...faults.counts.values()].reduce((a, b) => a + b, 0);
    const active = faults.active.map((f) => f.kind);
    this.log(
      `  members ${ready}/${this.o.members} running${frozen > 0 ? ` (${frozen} frozen)` : ''} · ` +
        `faults ${injected}${active.length > 0 ? ` (now: ${active.join(', ')})` : ''} · ` +
        `running ${c.running} · parked ${parked} · user-paused ${c.paused + c.pausing - parked} · done ${c.succeeded} · steps ${c.stepsDone}`,
    );
  }

  async #check(): Promise<RunResult> {
    const snapshot: HostSnapshot = await this.#db.snapshot();
    const parkedLeft = await this.servers.listParked();
    // Beside the history: the host's tables and the marks at the end, which the checks read too.
    writeFileSync(
      join(this.historyDir, 'final-state.json'),
      JSON.stringify({ snapshot, parkedLeft }, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
    );
    const history = readHistory(this.historyDir);
    const faults = this.#faults as Faults;
    const { checks, report } = runChecks({
      history,
      snapshot,
      parkedLeft,
      timings: TIMINGS,
      backend: this.o.backend,
      seed: this.o.seed,
      problems: this.problems,
    });
    const ok = checks.every((c) => c.ok);
    return {
      ok,
      checks,
      faults: Object.fromEntries(faults.counts),
      faultMs: Object.fromEntries(faults.durations),
      faultCount: [...faults.counts.values()].reduce((a, b) => a + b, 0),
      membersStarted: (this.#cluster as ChaosCluster).members.length,
      workflows: snapshot.workflows.length,
      stepsCommitted: snapshot.stepLog.length,
      durationMs: clock() - this.t0,
      historyDir: ok && this.o.historyDir === undefined ? undefined : this.historyDir,
      created: this.servers.created,
      pids: (this.#cluster as ChaosCluster).members.flatMap((m) => (m.pid === undefined ? [] : [m.pid])),
      report,
    };
  }

  /**
   * Ends every member, closes the proxies and the harness's connections, and removes what the run
   * created on the servers and the SQLite file (the history stays: the caller decides). Idempotent:
   * `run()` calls it on its way out, and the entry point again when something escapes.
   */
  cleanup(): Promise<void> {
    this.#cleaning ??= this.#cleanup();
    return this.#cleaning;
  }

  async #cleanup(): Promise<void> {
    this.#faults?.healAll();
    killAllChildren();
    await Promise.all((this.#cluster?.members ?? []).map((m) => m.exited));
    const failure = await this.servers.close();
    if (failure !== undefined) this.log(`(${failure})`);
  }

  /** Removes the temporary folder (history included). */
  removeFolder(): void {
    rmSync(this.folder, { recursive: true, force: true });
  }
}
