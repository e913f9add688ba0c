/**
 * The faults, and how each is injected and healed. Every fault goes through something the harness
 * owns: a signal to one of its member processes, its own proxy between a member and the server, a
 * connection of one of its members killed on the server (found by connection name), or a write lock
 * it takes on the run's own SQLite file. The shared servers themselves are never stopped.
 *
 * | Fault            | What                                                               | Backends          |
 * | ---------------- | ------------------------------------------------------------------ | ----------------- |
 * | `sigterm`        | graceful stop of one member                                        | all               |
 * | `sigkill`        | crash of one member                                                | all               |
 * | `freeze`         | SIGSTOP for longer than the lease TTL, then SIGCONT                | all               |
 * | `freeze-at-...`  | the same, sprung on the next member that starts its hand-off (or   | all               |
 * |                  | its resume at start): it holds the start-stop lock then            |                   |
 * | `stall-at-park`  | a member's event loop stalls between listing and parking           | all               |
 * | `conn-kill`      | `CLIENT KILL` / `pg_terminate_backend` of a member's connections   | redis, postgres   |
 * | `partition`      | its proxy holds every byte (no FIN either) for a while             | redis, postgres   |
 * | `delay`          | its proxy forwards every chunk late                                | redis, postgres   |
 * | `server-restart` | every proxy drops its connections and refuses new ones for a while | redis, postgres   |
 * | `sqlite-stall`   | the harness holds the SQLite file's write lock for a while         | sqlite, redis     |
 * | `stop-all`       | every member gets SIGTERM at once, whatever else is going on       | all               |
 * | `cluster-stop`   | every fault healed, then every member gets SIGTERM at once (run.ts) | all              |
 */
import Database from 'better-sqlite3';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { BackendName } from '../examples/demo/backend.js';
import type { Random } from '../examples/demo/random.js';
import { type FaultKind, type HarnessEvent, type Recorder } from './history.js';
import type { MemberProcess } from './member.js';
import type { ChaosProxy } from './tcp-proxy.js';

/** The timings of a run, shared by the members' flags, the faults and the checker. */
export interface Timings {
  readonly memberTtlMs: number;
  readonly lockTtlMs: number;
  readonly claimTtlMs: number;
  readonly shutdownTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly stepMs: number;
}

/** Which faults each backend can take. */
export function faultsFor(backend: BackendName): readonly FaultKind[] {
  const signals: FaultKind[] = [
    'sigterm',
    'sigkill',
    'freeze',
    'freeze-at-handoff',
    'freeze-at-start',
    'stall-at-park',
    'stop-all',
    'cluster-stop',
  ];
  const network: FaultKind[] = ['conn-kill', 'partition', 'delay', 'server-restart'];
  switch (backend) {
    case 'sqlite':
      return [...signals, 'sqlite-stall'];
    case 'redis':
      return [...signals, ...network, 'sqlite-stall'];
    case 'postgres':
      return [...signals, ...network];
  }
}

/** What the faults act on. */
export interface FaultTargets {
  readonly backend: BackendName;
  readonly timings: Timings;
  readonly record: Recorder<HarnessEvent>;
  /** How many slots the cluster has. */
  readonly slots: number;
  /** The proxy of each slot (index = slot - 1); empty on SQLite. */
  readonly proxies: readonly ChaosProxy[];
  /** The harness's own connection to Redis (redis). */
  readonly redis: Redis | undefined;
  /** The harness's own pool on PostgreSQL (postgres). */
  readonly pg: pg.Pool | undefined;
  /** The SQLite file of the run (sqlite, redis). */
  readonly sqlitePath: string | undefined;
  /** The connection name / application_name prefix of a member. */
  connectionName(memberId: string): string;
}

interface Active {
  readonly fault: number;
  readonly kind: FaultKind;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly heal: () => void;
}

/** A uniform number in [min, max). */
export function uniform(random: Random, min: number, max: number): number {
  return min + (max - min) * random();
}

/** Injects faults, heals them on time, and heals them all at once when asked. */
export class Faults {
  readonly #t: FaultTargets;
  readonly #active = new Map<number, Active>();
  #next = 0;
  /** How many of each kind were injected. */
  readonly counts = new Map<FaultKind, number>();
  /** How long, in total, the timed faults of each kind lasted (as scheduled). */
  readonly durations = new Map<FaultKind, number>();

  constructor(targets: FaultTargets) {
    this.#t = targets;
  }

  /** The faults in force now. */
  get active(): readonly { readonly kind: FaultKind }[] {
    return [...this.#active.values()];
  }

  /** Records a fault (and its heal after `durationMs`, when `heal` is given). */
  begin(
    kind: FaultKind,
    targets: { members?: readonly MemberProcess[]; slots?: readonly number[] },
    durationMs: number,
    detail: string,
    heal?: () => void,
  ): number {
    const fault = ++this.#next;
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    this.durations.set(kind, (this.durations.get(kind) ?? 0) + durationMs);
    this.#t.record({
      type: 'fault',
      fault,
      kind,
      targets: (targets.members ?? []).map((m) => m.memberId),
      slots: targets.slots ?? [],
      durationMs,
      detail,
    });
    if (heal !== undefined) {
      const timer = setTimeout(() => this.#heal(fault), durationMs);
      this.#active.set(fault, { fault, kind, timer, heal });
    }
    return fault;
  }

  #heal(fault: number): void {
    const active = this.#active.get(fault);
    if (active === undefined) return;
    this.#active.delete(fault);
    clearTimeout(active.timer);
    active.heal();
    this.#t.record({ type: 'heal', fault });
  }

  /** Heals every fault in force, at once. */
  healAll(): void {
    for (const fault of [...this.#active.keys()]) this.#heal(fault);
  }

  /** Sends a signal to a member, recorded. */
  signal(member: MemberProcess, signal: NodeJS.Signals): void {
    if (member.signal(signal)) this.#t.record({ type: 'signal', member: member.memberId, signal });
  }

  sigterm(member: MemberProcess): void {
    this.begin('sigterm', { members: [member] }, 0, 'graceful stop');
    this.signal(member, 'SIGTERM');
  }

  /** SIGTERM to every member at once, in whatever state the others are: the last ones race to park. */
  stopAll(members: readonly MemberProcess[]): void {
    this.begin('stop-all', { members }, 0, `${members.length} members at once`);
    for (const member of members) this.signal(member, 'SIGTERM');
  }

  sigkill(member: MemberProcess): void {
    this.begin('sigkill', { members: [member] }, 0, 'crash');
    this.signal(member, 'SIGKILL');
  }

  /** SIGSTOP for 1.2 to 2.5 lease TTLs, then SIGCONT. */
  freeze(member: MemberProcess, random: Random, kind: FaultKind = 'freeze'): void {
    if (!member.alive || member.frozen) return;
    const t = this.#t.timings;
    const ms = Math.round(uniform(random, 1.2, 2.5) * Math.max(t.lockTtlMs, t.memberTtlMs));
    this.signal(member, 'SIGSTOP');
    this.begin(kind, { members: [member] }, ms, `SIGSTOP for ${ms} ms (${member.state})`, () =>
      this.signal(member, 'SIGCONT'),
    );
  }

  /**
   * Arms every live member to stall its event loop for 1.2 to 2.5 lock TTLs the next time its park step
   * has listed the active workflows: a GC pause at the worst moment, the lease lapsing between the
   * listing and the park.
   */
  stallAtPark(members: readonly MemberProcess[], random: Random): void {
    const ms = Math.round(uniform(random, 1.2, 2.5) * this.#t.timings.lockTtlMs);
    const armed = members.filter((m) => m.command(`STALL ${ms}`));
    this.begin(
      'stall-at-park',
      { members: armed },
      0,
      `${armed.length} members armed: ${ms} ms after listing at park`,
    );
  }

  /** Disarms the stalls armed at these members (a calm phase begins). */
  disarm(members: readonly MemberProcess[]): void {
    for (const m of members) m.command('STALL 0');
  }

  /** Holds every byte to and from the slot's server for 0.3 to 2.5 TTLs. */
  partition(slot: number, member: MemberProcess | undefined, random: Random): void {
    const proxy = this.#proxy(slot);
    const ms = Math.round(uniform(random, 0.3, 2.5) * this.#t.timings.lockTtlMs);
    proxy.setBlackhole(true);
    this.begin(
      'partition',
      { members: member === undefined ? [] : [member], slots: [slot] },
      ms,
      `slot ${slot} blackholed for ${ms} ms`,
      () => proxy.setBlackhole(false),
    );
  }

  /** Forwards the slot's traffic 20 to 400 ms late, for 0.5 to 2 TTLs. */
  delay(slot: number, member: MemberProcess | undefined, random: Random): void {
    const proxy = this.#proxy(slot);
    const lag = Math.round(uniform(random, 20, 400));
    const ms = Math.round(uniform(random, 0.5, 2) * this.#t.timings.lockTtlMs);
    proxy.setDelay(lag);
    this.begin(
      'delay',
      { members: member === undefined ? [] : [member], slots: [slot] },
      ms,
      `slot ${slot}: +${lag} ms per chunk for ${ms} ms`,
      () => proxy.setDelay(0),
    );
  }

  /** Every proxy drops its connections and refuses new ones for 0.3 to 3 s: the server "restarts". */
  serverRestart(random: Random): void {
    const ms = Math.round(uniform(random, 300, 3000));
    for (const proxy of this.#t.proxies) proxy.setDown(true);
    const slots = this.#t.proxies.map((_, i) => i + 1);
    this.begin('server-restart', { slots }, ms, `server unreachable for ${ms} ms`, () => {
      for (const proxy of this.#t.proxies) proxy.setDown(false);
    });
  }

  /**
   * Kills a member's connections on the server, found by name: on Redis its coordinator's connection
   * (`CLIENT KILL ID`), on PostgreSQL its coordinator's session, its host pool's, or both.
   */
  async connKill(member: MemberProcess, random: Random): Promise<void> {
    const name = this.#t.connectionName(member.memberId);
    let killed: string[] = [];
    if (this.#t.redis !== undefined) {
      const list = (await this.#t.redis.call('CLIENT', 'LIST')) as string;
      const ids = list
        .split('\n')
        .map((line) => Object.fromEntries(line.split(' ').map((kv) => kv.split('=', 2) as [string, string])))
        .filter((c) => c.name === name)
        .map((c) => c.id as string);
      for (const id of ids) await this.#t.redis.call('CLIENT', 'KILL', 'ID', id);
      killed = ids.map((id) => `redis client ${id}`);
    } else if (this.#t.pg !== undefined) {
      // Its coordinator's session, its store's pool, its host database's pool, or all three.
      const which = random();
      const names =
        which < 0.35
          ? [`${name}-c`]
          : which < 0.6
            ? [`${name}-s`]
            : which < 0.8
              ? [`${name}-h`]
              : [`${name}-c`, `${name}-s`, `${name}-h`];
      const { rows } = await this.#t.pg.query<{ pid: number; application_name: string }>(
        `SELECT pid, application_name, pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = ANY($1::text[]) AND pid <> pg_backend_pid()`,
        [names],
      );
      const role = { c: 'coordinator', s: 'store', h: 'host' } as Record<string, string>;
      killed = rows.map((r) => `${role[r.application_name.slice(-1)] ?? 'a'} backend ${r.pid}`);
    }
    this.begin(
      'conn-kill',
      { members: [member] },
      0,
      killed.length === 0 ? 'no connection found' : `killed ${killed.join(', ')}`,
    );
  }

  /** Holds the SQLite file's write lock for 0.2 to 1.5 s: every writer waits (a stalled disk). */
  sqliteStall(random: Random): void {
    const path = this.#t.sqlitePath;
    if (path === undefined) return;
    const ms = Math.round(uniform(random, 200, 1500));
    const db = new Database(path, { timeout: 2000 });
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch {
      db.close();
      return;
    }
    const slots = Array.from({ length: this.#t.slots }, (_, i) => i + 1);
    this.begin('sqlite-stall', { slots }, ms, `write lock held for ${ms} ms`, () => {
      try {
        db.exec('ROLLBACK');
      } finally {
        db.close();
      }
    });
  }

  #proxy(slot: number): ChaosProxy {
    const proxy = this.#t.proxies[slot - 1];
    if (proxy === undefined) throw new Error(`no proxy for slot ${slot}`);
    return proxy;
  }
}
