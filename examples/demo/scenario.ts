/**
 * The demo's scenario, driven from the orchestrator: worker processes on a shared backend, a rolling
 * stop, a restart and a cluster stop, with the workflow counts sampled all along.
 */
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ParkedWorkflow, WorkflowStore } from 'graceful-drain';
import {
  type BackendConfig,
  type BackendName,
  cleanupBackend,
  type Host,
  listAllParked,
  openHost,
  prepareBackend,
  runBackend,
} from '../../harness/backend.js';
import { type Check, hostChecks } from '../../harness/host-checks.js';
import {
  type Counts,
  type HostDb,
  ownerWorker,
  workflowId,
  type WorkflowRow,
} from '../../harness/host-db.js';
import { type MemberMessage, memberArgs } from '../../harness/member.js';
import { deriveSeed, sample, seededRandom } from '../../harness/random.js';
import { redact } from '../../harness/servers.js';
import { checkCleanShutdowns, checkHandOffs } from './checks.js';
import { WorkerProcess } from './cluster.js';
import type { WorkerSummary } from './summary.js';
import { renderTimeline, workerLanes } from './timeline.js';

/** A failure of the run itself (a worker crashed, a wait ran out): reported, exit code 1. */
export class ScenarioError extends Error {}

/** Steps each worker runs at once. */
export const CONCURRENCY = 2;
/** How often the counts are sampled (for the timeline and the waits). */
const SAMPLE_MS = 150;
/** How often a progress line is printed. */
const PROGRESS_MS = 1000;

/** A sample of the counts, for the timeline. */
export interface Sample {
  readonly at: number;
  readonly counts: Counts;
  readonly parked: number;
  /** Running workflows held by a worker that died (the crash scenario), when there is one. */
  readonly stranded?: number | undefined;
}

/** The options of a run (the demo's flags). */
export interface ScenarioOptions {
  readonly workers: number;
  readonly workflows: number;
  readonly steps: number;
  readonly userPaused: number;
  readonly stepMs: number;
  readonly backend: BackendName;
  readonly db: string | undefined;
  readonly seed: number;
  /** The crash scenario (crash.ts): its workers' `--recovery`. */
  readonly recovery?: 'resume' | 'report' | undefined;
}

/**
 * One run of the demo: prepare the backend, start the cluster, let a user pause a few workflows, stop
 * the workers one at a time, restart them, run to the end and stop them all at once; sample the counts
 * all along. `run()` throws a {@link ScenarioError} when the run itself fails; what it did stays readable
 * (`workers`, `summaries()`, `checks()`, `samples`) either way.
 */
export class Scenario {
  readonly o: ScenarioOptions;
  readonly t0 = performance.now();
  readonly clock = (): number => performance.now() - this.t0;
  readonly runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  readonly group = `demo-${this.runId}`;
  readonly workers: WorkerProcess[] = [];
  readonly samples: Sample[] = [];
  readonly events: { at: number; label: string }[] = [];
  readonly markedEver = new Set<string>();
  readonly rollingStop: WorkerProcess[] = [];
  readonly finalStop: WorkerProcess[] = [];
  parkedAtStop: ParkedWorkflow[] = [];
  readonly config: BackendConfig;
  /** The temporary folder of the SQLite file, removed at the end (none with --db, or on PostgreSQL). */
  readonly folder: string | undefined;
  host: Host | undefined;
  /** Whether the backend was prepared and the workflows created: there is something to check. */
  prepared = false;
  failure: Error | undefined;
  #sampling = false;
  #sampler: Promise<void> | undefined;
  #lastProgress = -Infinity;
  latest: Sample | undefined;

  constructor(options: ScenarioOptions) {
    const o = (this.o = options);
    this.folder =
      o.db === undefined && o.backend !== 'postgres'
        ? mkdtempSync(join(tmpdir(), 'graceful-drain-demo-'))
        : undefined;
    this.config = runBackend(
      o.backend,
      'demo',
      this.runId,
      o.db !== undefined ? resolve(o.db) : this.folder !== undefined ? join(this.folder, 'demo.db') : '',
    );
  }

  log(message: string): void {
    const at = (this.clock() / 1000).toFixed(1).padStart(5);
    console.log(`[${at}s] ${message}`);
  }

  get db(): HostDb {
    return (this.host as Host).db;
  }

  get store(): WorkflowStore {
    return (this.host as Host).store;
  }

  /** Creates the database, the host tables and the workflows. */
  async setup(): Promise<void> {
    const o = this.o;
    const dbPath = this.config.dbPath;
    const where =
      o.backend === 'postgres'
        ? `PostgreSQL ${redact(this.config.postgresUrl)}, schema ${this.config.pgSchema}`
        : o.backend === 'redis'
          ? `${dbPath} + Redis ${redact(this.config.redisUrl)}`
          : dbPath;
    this.log(
      `${o.workflows} workflows × ${o.steps} steps, ${o.workers} workers, backend ${o.backend} (${where}), seed ${o.seed}`,
    );
    this.host = await openHost(this.config, { poolSize: 2, ...this.hostOptions() });
    try {
      await prepareBackend(this.config, this.host);
    } catch (error) {
      const server = o.backend === 'postgres' ? 'PostgreSQL' : o.backend === 'redis' ? 'Redis' : 'SQLite';
      throw new ScenarioError(
        `could not prepare the ${server} backend: ${(error as Error).message}${
          o.backend === 'sqlite'
            ? ''
            : ` (is the server up? set GD_${server === 'Redis' ? 'REDIS' : 'POSTGRES'}_URL)`
        }`,
      );
    }
    const workflows = Array.from({ length: o.workflows }, (_, i) => ({
      id: workflowId(i + 1, o.workflows),
      steps: o.steps,
    }));
    await this.db.seed(workflows, Date.now());
    this.prepared = true;
  }

  /** Samples the counts (and the park marks) until stopped; prints progress every second. */
  startSampling(): void {
    this.#sampling = true;
    this.#sampler = (async () => {
      while (this.#sampling) {
        try {
          await this.sample();
        } catch (error) {
          this.log(`(sampling failed: ${(error as Error).message})`);
        }
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    })();
  }

  async stopSampling(): Promise<void> {
    this.#sampling = false;
    await this.#sampler;
    await this.sample();
  }

  async listParked(): Promise<ParkedWorkflow[]> {
    const all = await listAllParked(this.store);
    for (const p of all) this.markedEver.add(p.id);
    return all;
  }

  /** Running workflows held by a worker that died; `undefined` when no worker died (see crash.ts). */
  async strandedNow(): Promise<number | undefined> {
    return undefined;
  }

  /** The running workflows worker `memberId` holds (a dead worker's: stranded). */
  async heldBy(memberId: string): Promise<WorkflowRow[]> {
    return (await this.db.held()).filter((w) => ownerWorker(w.owner) === memberId);
  }

  async sample(): Promise<Sample> {
    const counts = await this.db.counts(Date.now());
    const parked = (await this.listParked()).length;
    const s: Sample = { at: this.clock(), counts, parked, stranded: await this.strandedNow() };
    this.samples.push(s);
    this.latest = s;
    if (s.at - this.#lastProgress >= PROGRESS_MS) {
      this.#lastProgress = s.at;
      this.log(this.progressLine(s));
    }
    return s;
  }

  progressLine({ counts: c, parked, stranded }: Sample): string {
    const userPaused = this.o.userPaused > 0 ? ` · paused by a user ${c.paused + c.pausing - parked}` : '';
    const held = stranded === undefined ? '' : `, ${stranded} held by a dead worker`;
    return (
      `  running ${c.running} (${c.inFlight} step${c.inFlight === 1 ? '' : 's'} in flight${held}) · parked ${parked}${userPaused}` +
      ` · done ${c.succeeded}/${c.total} · steps ${c.stepsDone}/${c.stepsTotal}`
    );
  }

  /** Waits until `ready()` holds, checking every sample; fails on a crashed worker or after `timeoutMs`. */
  async waitFor(what: string, ready: (s: Sample) => boolean, timeoutMs: number): Promise<void> {
    const end = this.clock() + timeoutMs;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const s = this.latest;
      if (s !== undefined && ready(s)) return;
      if (this.clock() > end)
        throw new ScenarioError(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A generous bound for a phase: the time all the work would take on one worker, plus slack. */
  get phaseTimeoutMs(): number {
    const o = this.o;
    return 30_000 + (3 * o.workflows * o.steps * o.stepMs) / CONCURRENCY;
  }

  /** How the orchestrator's own store is built, beyond the defaults (crash-peer.ts: the owner column). */
  hostOptions(): { readonly ownerColumn?: string } {
    return {};
  }

  /** Flags every worker gets beyond the run's own (the crash scenario's engine and timings). */
  workerFlags(): Readonly<Record<string, string | number>> {
    return {};
  }

  spawn(slot: number, run: number): WorkerProcess {
    const o = this.o;
    const memberId = run === 1 ? `worker-${slot}` : `worker-${slot}-r${run}`;
    const c = this.config;
    const args = memberArgs(c, {
      group: this.group,
      concurrency: CONCURRENCY,
      stepMs: o.stepMs,
      seed: deriveSeed(o.seed, memberId),
      ...this.workerFlags(),
    });
    const worker: WorkerProcess = new WorkerProcess({
      slot,
      run,
      memberId,
      args,
      clock: this.clock,
      // The URLs travel in the environment, not on command lines that `ps` shows.
      env: { GD_REDIS_URL: c.redisUrl, GD_POSTGRES_URL: c.postgresUrl },
      onMessage: (m) => this.onMessage(worker, m),
      onLine: (line, stream) => {
        if (stream === 'stdout') this.log(`${memberId}: ${line}`);
      },
    });
    this.workers.push(worker);
    void worker.exited.then((exit) => {
      if (worker.signalled === undefined && this.failure === undefined) {
        this.failure = new ScenarioError(
          `${memberId} exited on its own (code ${exit.code}, signal ${exit.signal})${
            worker.stderr.length > 0 ? `:\n${worker.stderr.slice(-15).join('\n')}` : ''
          }`,
        );
      }
    });
    return worker;
  }

  onMessage(w: WorkerProcess, m: MemberMessage): void {
    switch (m.kind) {
      case 'READY':
        this.log(`${w.memberId} started (pid ${m.data.pid}), joined group ${m.data.group}`);
        break;
      case 'RESUME':
        if (m.data.resumed > 0 || m.data.stillPausing > 0 || m.data.errors.length > 0) {
          this.log(
            `${w.memberId} resume round ${m.data.rounds}: resumed ${m.data.resumed} so far, ${m.data.stillPausing} still pausing${
              m.data.errors.length > 0 ? `, errors: ${m.data.errors.map((e) => e.message).join('; ')}` : ''
            }`,
          );
        }
        break;
      case 'RESUMED':
        if (m.data.resumed > 0 || !m.data.complete) {
          this.log(
            `${w.memberId} resumed ${m.data.resumed} parked workflows in ${m.data.rounds} round(s)${
              m.data.complete ? '' : ' (incomplete)'
            }`,
          );
        }
        break;
      case 'RECOVERY': {
        const r = m.data;
        if (r.reason === 'none' && r.errors.length === 0) break;
        const dead = r.deadMembers.length > 0 ? ` left by ${r.deadMembers.join(', ')} (dead)` : '';
        const did =
          r.reason === 'live-peers'
            ? 'recovered none: members that ran before it are alive'
            : r.policy === 'report'
              ? 'recovered none (policy report: it only reports)'
              : `recovered ${r.recovered}: parked them for the resume${r.skipped > 0 ? `, ${r.skipped} no longer running` : ''}${
                  r.failed > 0 ? `, ${r.failed} failed (recovered too often)` : ''
                }`;
        const found =
          r.reason === 'live-peers'
            ? `the crash of ${r.deadMembers.join(', ')}`
            : `${r.found} running${dead}`;
        const who =
          w.readyAt === undefined
            ? `${w.memberId}'s start, before intake opened`
            : `${w.memberId}'s peer check, while the group runs`;
        this.log(
          `${who}: crash recovery (${r.reason}) found ${found}; ${did}${
            r.errors.length > 0 ? `; errors: ${r.errors.map((e) => e.message).join('; ')}` : ''
          }`,
        );
        break;
      }
      case 'PARK':
        this.log(
          `${w.memberId} is the last member: parked ${m.data.parked} (${m.data.stillPausing} still pausing), token ${m.data.token}`,
        );
        break;
      case 'FAILED':
        this.log(`${w.memberId} FAILED: ${m.data.name}: ${m.data.message}`);
        break;
      default:
        break;
    }
  }

  async startWorkers(run: number): Promise<WorkerProcess[]> {
    const started = Array.from({ length: this.o.workers }, (_, i) => this.spawn(i + 1, run));
    this.log(`starting ${started.map((w) => w.memberId).join(', ')}`);
    const failed = new Promise<never>((_, reject) => {
      const timer = setInterval(() => {
        if (this.failure !== undefined) {
          clearInterval(timer);
          reject(this.failure);
        }
      }, 50);
      void Promise.allSettled(started.map((w) => w.ready)).then(() => clearInterval(timer));
    });
    failed.catch(() => {});
    await Promise.race([Promise.all(started.map((w) => w.ready)), failed]);
    return started;
  }

  /** SIGTERM, then wait for the exit; logs how the shutdown went. */
  async stop(worker: WorkerProcess): Promise<void> {
    worker.signal('SIGTERM');
    const exit = await worker.exited;
    const r = worker.report;
    const how =
      r === undefined
        ? 'no report'
        : `${r.outcome} in ${Math.round(r.durationMs)} ms, drained ${r.inFlightAtStart} in flight, hand-off ${r.handOff}${
            r.handOff === 'parked' ? ` (${r.parked} workflows)` : ''
          }`;
    this.log(`${worker.memberId} stopped (exit ${exit.code ?? exit.signal}): ${how}`);
  }

  /**
   * A user pauses workflows in the host table, with no park mark: `paused`, or `pausing` when a step is
   * in flight (the engine completes the pause after it).
   */
  async userPause(): Promise<void> {
    const o = this.o;
    if (o.userPaused === 0) return;
    const random = seededRandom(deriveSeed(o.seed, 'user-pause'));
    const paused = new Map<string, string>();
    for (let attempt = 0; paused.size < o.userPaused && attempt < 20; attempt++) {
      const candidates = (await this.db.pauseCandidates(Date.now())).filter((w) => !paused.has(w.id));
      // Prefer workflows part-way through (so that "no step after the pause" means something) with no
      // step in flight (paused at once); fall back on the others when there are too few.
      const wanted = o.userPaused - paused.size;
      const pool =
        [
          candidates.filter((w) => w.step > 0 && w.owner === null),
          candidates.filter((w) => w.owner === null),
        ].find((some) => some.length >= wanted) ?? candidates;
      for (const w of sample(pool, wanted, random)) {
        const row = await this.db.userPause(w.id, Date.now());
        if (row === undefined) continue;
        const how = row.claim === null ? 'paused' : `pausing: step ${row.step + 1} in flight`;
        paused.set(w.id, `${w.id} (at step ${row.step}/${w.steps}, ${how})`);
      }
      if (paused.size < o.userPaused) await new Promise((r) => setTimeout(r, 50));
    }
    if (paused.size < o.userPaused) {
      throw new ScenarioError(
        'the workflows finished before a user could pause them: give the demo more work (--workflows, --steps, --step-ms)',
      );
    }
    this.events.push({ at: this.clock(), label: `user paused ${paused.size}` });
    this.log(`a user pauses ${[...paused.values()].join(', ')} in the table (no park mark)`);
  }

  /** Steps that can still complete: those of every workflow but the ones a user paused. */
  completable(s: Sample): number {
    return s.counts.stepsTotal - this.o.userPaused * this.o.steps;
  }

  /**
   * Every scenario's opening: prepares the backend, starts sampling, starts the cluster (run 1), waits
   * for its first steps and lets a user pause workflows. Returns the workers.
   */
  async startCluster(): Promise<WorkerProcess[]> {
    await this.setup();
    this.startSampling();
    this.events.push({ at: this.clock(), label: 'cluster starts' });
    const workers = await this.startWorkers(1);
    await this.waitFor(
      'the first steps',
      (s) => s.counts.stepsDone >= Math.max(1, 0.1 * this.completable(s)),
      this.phaseTimeoutMs,
    );
    await this.userPause();
    return workers;
  }

  async run(): Promise<void> {
    const o = this.o;
    // 1. The cluster starts and runs.
    const first = await this.startCluster();

    // 2. Rolling stop: the first ones hand off to their peers; the last one parks.
    for (const [i, worker] of first.entries()) {
      const share = 0.15 + (0.3 * (i + 1)) / first.length;
      await this.waitFor(
        `${Math.round(share * 100)}% of the steps`,
        (s) => s.counts.stepsDone >= share * this.completable(s),
        this.phaseTimeoutMs,
      );
      const last = i === first.length - 1;
      this.log(`SIGTERM -> ${worker.memberId}${last ? ' (the last one running)' : ''}`);
      this.rollingStop.push(worker);
      await this.stop(worker);
    }
    this.parkedAtStop = await this.listParked();
    await this.sample();
    if (this.parkedAtStop.length > 0) {
      const parked = this.parkedAtStop;
      const states = ['paused', 'pausing', 'other']
        .map((state) => [state, parked.filter((p) => p.state === state).length] as const)
        .filter(([, n]) => n > 0)
        .map(([state, n]) => `${n} ${state}`)
        .join(', ');
      const ids = parked.slice(0, 12).map((p) => p.id);
      if (parked.length > ids.length) ids.push(`... and ${parked.length - ids.length} more`);
      this.log(
        `parked, from the marks table: ${parked.length} (${states}) by ${[
          ...new Set(parked.map((p) => p.memberId)),
        ].join(', ')} under token ${parked[0]?.token}: ${ids.join(', ')}`,
      );
    } else this.log('nothing was left running to park');

    // 3. The cluster comes back: parked workflows resume, and the rest runs to the end.
    await new Promise((r) => setTimeout(r, 300));
    this.events.push({ at: this.clock(), label: 'restart' });
    const second = await this.startWorkers(2);
    await this.waitFor(
      'every workflow not paused by a user to finish',
      (s) => s.counts.succeeded >= o.workflows - o.userPaused && s.parked === 0,
      this.phaseTimeoutMs,
    );
    this.log('every workflow not paused by a user has finished');

    // 4. The whole cluster stops at once: the members serialise on the start-stop lock; the last parks.
    this.events.push({ at: this.clock(), label: 'cluster stop' });
    this.log(`SIGTERM -> ${second.map((w) => w.memberId).join(', ')} at once`);
    this.finalStop.push(...second);
    await Promise.all(second.map((w) => this.stop(w)));
    await this.stopSampling();
  }

  /** The scenario's own checks, then the host data's. */
  async checks(): Promise<Check[]> {
    const parkedLeft = await this.listParked();
    const snapshot = await this.db.snapshot();
    const { all, of } = this.summariesBy();
    return [
      checkHandOffs(of(this.rollingStop), of(this.finalStop)),
      ...hostChecks(snapshot, { markedEver: this.markedEver, parkedLeft }),
      checkCleanShutdowns(all),
    ];
  }

  /** Every worker's summary (`all`), and those of the workers given, in their order (`of`, `one`). */
  summariesBy(): {
    readonly all: WorkerSummary[];
    of(workers: readonly WorkerProcess[]): WorkerSummary[];
    one(worker: WorkerProcess | undefined): WorkerSummary | undefined;
  } {
    const all = this.summaries();
    const byId = new Map(all.map((w) => [w.memberId, w]));
    return {
      all,
      of: (workers) => workers.map((w) => byId.get(w.memberId) as WorkerSummary),
      one: (worker) => (worker === undefined ? undefined : byId.get(worker.memberId)),
    };
  }

  summaries(): WorkerSummary[] {
    return [...this.workers]
      .sort((a, b) => a.run - b.run || a.slot - b.slot)
      .map((w) => ({
        memberId: w.memberId,
        slot: w.slot,
        run: w.run,
        pid: w.pid,
        startedAt: w.startedAt,
        readyAt: w.readyAt,
        signalled: w.signalled,
        exit: w.ended,
        report: w.report,
        resumed: w.resumed,
        recovery: w.recovery,
        recovered: w.recovered,
        recoveries: w.recoveries,
        states: w.states,
      }));
  }

  /** The timeline's title. */
  get title(): string {
    return 'graceful-drain demo: rolling stop, park, restart, resume';
  }

  /** What `--json` adds for this scenario. */
  json(): Record<string, unknown> {
    return { parkedAtStop: this.parkedAtStop.map((p) => ({ ...p, token: p.token?.toString() ?? null })) };
  }

  /** The run as an SVG, up to `end` on the clock. */
  timeline(end: number): string {
    const lanes = workerLanes(this.summaries(), this.o.workers, end);
    const points = (pick: (s: Sample) => number): [number, number][] =>
      this.samples.map((s) => [s.at, pick(s)]);
    const o = this.o;
    const stranded = this.samples.some((s) => s.stranded !== undefined)
      ? [
          {
            name: 'held by a dead worker',
            color: '#dc2626',
            dashed: true,
            points: points((s) => s.stranded ?? 0),
          },
        ]
      : [];
    return renderTimeline({
      title: this.title,
      subtitle: `${o.workflows} workflows × ${o.steps} steps, ${o.workers} workers, backend ${o.backend}, seed ${o.seed}`,
      durationMs: end,
      lanes,
      series: [
        { name: 'running', color: '#2563eb', points: points((s) => s.counts.running) },
        { name: 'parked (marked by shutdown)', color: '#ea580c', points: points((s) => s.parked) },
        {
          name: 'paused by a user',
          color: '#9333ea',
          dashed: true,
          points: points((s) => s.counts.paused + s.counts.pausing - s.parked),
        },
        { name: 'finished', color: '#16a34a', points: points((s) => s.counts.succeeded) },
        { name: 'steps in flight', color: '#94a3b8', points: points((s) => s.counts.inFlight) },
        ...stranded,
      ],
      events: this.events,
    });
  }

  /** Stops what is still running (after a failure or Ctrl-C): SIGTERM, then SIGKILL after 10 s. */
  async stopEverything(): Promise<void> {
    const alive = this.workers.filter((w) => w.alive);
    for (const w of alive) w.signal('SIGTERM');
    const timer = setTimeout(() => alive.forEach((w) => w.signal('SIGKILL')), 10_000);
    await Promise.all(alive.map((w) => w.exited));
    clearTimeout(timer);
    this.#sampling = false;
    await this.#sampler;
  }

  async cleanup(): Promise<void> {
    try {
      await cleanupBackend(this.config, this.host);
    } catch (error) {
      // When the backend could not even be prepared, that error was reported already.
      if (this.prepared)
        this.log(`(clean-up of the ${this.o.backend} backend failed: ${(error as Error).message})`);
    }
    await this.host?.close();
    if (this.folder !== undefined) await rm(this.folder, { recursive: true, force: true });
  }
}
