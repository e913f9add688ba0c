/**
 * The members of a chaos run, by slot: slot N runs one member at a time (`m<N>r<run>`), always behind
 * the same proxy. A member that exits during the chaos phase is replaced after a random delay (zero
 * now and then, so that a start races a stop); the calm phase starts a fresh set and stops it.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendConfig } from '../../harness/backend.js';
import { OWNER_COLUMN } from '../../harness/host-db.js';
import { memberArgs, MemberProcess } from '../../harness/member.js';
import { deriveSeed, type Random, seededRandom } from '../../harness/random.js';
import { throughPort } from '../../harness/servers.js';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import type { Timings } from '../faults.js';
import { clock, type HarnessEvent, HOSTILE_MODES, type HostileMode, type Recorder } from '../history.js';

/** The member script. */
const WORKER_SCRIPT = fileURLToPath(new URL('../members/worker.ts', import.meta.url));

/** Workflows each member drives at once (the sticky engine: one step of each in flight). */
export const CONCURRENCY = 2;

/** What a cluster needs to start its members. */
export interface ClusterOptions {
  readonly slots: number;
  readonly config: BackendConfig;
  readonly group: string;
  readonly runId: string;
  readonly seed: number;
  readonly timings: Timings;
  readonly historyDir: string;
  readonly proxies: readonly TcpProxy[];
  readonly record: Recorder<HarnessEvent>;
  readonly random: Random;
  /** Called with a line to show (a member that failed, for instance). */
  readonly log: (line: string) => void;
}

interface Slot {
  readonly slot: number;
  runs: number;
  member: MemberProcess | undefined;
  /** When to start the next member here (shared clock), if the slot is empty. */
  restartAt: number | undefined;
}

/** The member processes of a run. */
export class ChaosCluster {
  readonly #o: ClusterOptions;
  readonly #slots: Slot[];
  /** Every member ever started. */
  readonly members: MemberProcess[] = [];
  /** Whether empty slots are refilled (the chaos phase). */
  restarting = false;
  /** Hears of every state change of every member (the scheduler springs its traps on them). */
  onState: ((member: MemberProcess, state: string) => void) | undefined;
  /** The share of the members started from now on with hostile listeners (the chaos phase's). */
  hostileShare = 0;
  /** Hears of every member started with hostile listeners (the fault is recorded there). */
  onHostile: ((member: MemberProcess, mode: HostileMode) => void) | undefined;
  /** Hears of every member started (armed faults wait for the next start). */
  onSpawn: ((member: MemberProcess) => void) | undefined;
  /** Hears of what a member says of the faults it was armed with (`CHAOS <note>` lines: `host-lock`). */
  onNote: ((member: MemberProcess, note: string) => void) | undefined;

  constructor(options: ClusterOptions) {
    this.#o = options;
    this.#slots = Array.from({ length: options.slots }, (_, i) => ({
      slot: i + 1,
      runs: 0,
      member: undefined,
      restartAt: undefined,
    }));
  }

  /** How many slots. */
  get slots(): number {
    return this.#slots.length;
  }

  /** The connection name (Redis) / application_name prefix (PostgreSQL) of a member. */
  connectionName(memberId: string): string {
    return `gdc-${this.#o.runId}-${memberId}`;
  }

  /** The member running in each slot now (alive), if any. */
  live(): MemberProcess[] {
    return this.#slots.flatMap((s) => (s.member?.alive === true ? [s.member] : []));
  }

  /** The member of `slot`, if one runs there. */
  memberOf(slot: number): MemberProcess | undefined {
    const member = this.#slots[slot - 1]?.member;
    return member?.alive === true ? member : undefined;
  }

  /** Starts a member in `slot`. */
  spawn(slot: number): MemberProcess {
    const s = this.#slots[slot - 1] as Slot;
    s.runs++;
    s.restartAt = undefined;
    const o = this.#o;
    const t = o.timings;
    const memberId = `m${slot}r${s.runs}`;
    const c = o.config;
    const proxy = o.proxies[slot - 1];
    // Whether its listeners misbehave: drawn per member id, so that a seed replays it.
    const draw = seededRandom(deriveSeed(o.seed, 'hostile', memberId));
    const hostile =
      draw() < this.hostileShare ? HOSTILE_MODES[Math.floor(draw() * HOSTILE_MODES.length)] : undefined;
    const args = memberArgs(c, {
      group: o.group,
      history: join(o.historyDir, `${memberId}.jsonl`),
      connectionName: this.connectionName(memberId),
      concurrency: CONCURRENCY,
      engine: 'sticky',
      stepMs: t.stepMs,
      claimTtlMs: t.claimTtlMs,
      shutdownTimeoutMs: t.shutdownTimeoutMs,
      memberTtlMs: t.memberTtlMs,
      lockTtlMs: t.lockTtlMs,
      closeTimeoutMs: t.closeTimeoutMs,
      // The store knows who drives what: live members recover a crashed peer's workflows (crash-peer).
      ownerColumn: OWNER_COLUMN,
      peerCheckIntervalMs: t.peerCheckIntervalMs,
      seed: deriveSeed(o.seed, memberId),
      hostile,
    });
    // The URLs travel in the environment (never on a command line): the member's own proxy.
    const env: NodeJS.ProcessEnv = {};
    if (proxy !== undefined && c.backend === 'redis') env.GD_REDIS_URL = throughPort(c.redisUrl, proxy.port);
    if (proxy !== undefined && c.backend === 'postgres')
      env.GD_POSTGRES_URL = throughPort(c.postgresUrl, proxy.port);
    const stderr = join(o.historyDir, `${memberId}.stderr`);
    const member: MemberProcess = new MemberProcess({
      script: WORKER_SCRIPT,
      memberId,
      slot,
      args,
      env,
      // Its stdin stays open while the harness lives: the member ends itself when it closes.
      stdin: true,
      onMessage: (message) => {
        if (message.kind === 'STATE') this.onState?.(member, message.data.to);
      },
      onLine: (line, stream) => {
        if (stream === 'stderr') appendFileSync(stderr, `${line}\n`);
        else if (line.startsWith('CHAOS ')) this.onNote?.(member, line.slice('CHAOS '.length));
      },
    });
    s.member = member;
    this.members.push(member);
    o.record({ type: 'spawn', member: memberId, slot, pid: member.pid });
    if (hostile !== undefined) this.onHostile?.(member, hostile);
    this.onSpawn?.(member);
    void member.exited.then((exit) => {
      o.record({ type: 'exit', member: memberId, code: exit.code, signal: exit.signal });
      if (exit.code !== 0 && exit.signal === null && !member.isReady) {
        o.log(
          `${memberId} could not start (exit ${exit.code}): ${member.stderr.slice(-3).join(' | ') || 'see its history'}`,
        );
      }
      if (s.member === member && this.restarting) {
        // Now and then at once, so that a start races the stop of another member.
        s.restartAt = clock() + (o.random() < 0.25 ? 0 : 200 + o.random() * 1300);
      }
    });
    return member;
  }

  /** Starts the members of the empty slots whose time has come. */
  refill(): void {
    if (!this.restarting) return;
    const now = clock();
    for (const s of this.#slots) {
      if (s.member?.alive === true || s.restartAt === undefined || s.restartAt > now) continue;
      this.spawn(s.slot);
    }
  }

  /** Starts a member in every empty slot, now. */
  fill(): MemberProcess[] {
    return this.#slots.filter((s) => s.member?.alive !== true).map((s) => this.spawn(s.slot));
  }

  /**
   * SIGTERM to every live member at once; waits for them to exit, SIGKILL after `boundMs`. Resolves the
   * members it stopped, and those it had to kill.
   */
  async stopAll(
    signal: (member: MemberProcess, signal: NodeJS.Signals) => void,
    boundMs: number,
  ): Promise<{ stopped: MemberProcess[]; killed: MemberProcess[] }> {
    const stopped = this.live();
    for (const member of stopped) signal(member, 'SIGTERM');
    const killed: MemberProcess[] = [];
    const timer = setTimeout(() => {
      for (const member of stopped) {
        if (!member.alive) continue;
        killed.push(member);
        signal(member, 'SIGKILL');
      }
    }, boundMs);
    await Promise.all(stopped.map((m) => m.exited));
    clearTimeout(timer);
    return { stopped, killed };
  }
}
