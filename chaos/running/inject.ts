/**
 * How each fault of the list (faults.ts) is injected and healed. Every fault goes through something
 * the harness owns: a signal to one of its member processes, its own proxy between a member and the
 * server, a connection of one of its members killed on the server (found by connection name), a lock
 * on the run's own SQLite file or PostgreSQL schema (its own, or one a member it armed takes), the
 * simulated user's own writes to the host's tables, or a flag given to a member at its start. The
 * shared servers themselves are never stopped.
 *
 * docs/reliability.md describes each fault at more length; test/chaos.test.ts checks that it names
 * every one of the list.
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { SqliteDatabase } from 'graceful-drain/sqlite';
import type { BackendName } from '../../harness/backend.js';
import type { MemberProcess } from '../../harness/member.js';
import { type Random, uniform } from '../../harness/random.js';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import type { FaultKind, Timings } from '../faults.js';
import type { HarnessEvent, Recorder } from '../history.js';

/** The share of the members started in the chaos phase given `hostile-listeners`. */
export const HOSTILE_SHARE = 0.3;

/** The faults in which the harness itself holds a lock on the host's database: its own writes wait. */
export const HOST_LOCKS: ReadonlySet<FaultKind> = new Set<FaultKind>(['sqlite-stall']);

/** What the faults act on. */
export interface FaultTargets {
  readonly backend: BackendName;
  readonly timings: Timings;
  readonly record: Recorder<HarnessEvent>;
  /** How many slots the cluster has. */
  readonly slots: number;
  /** The proxy of each slot (index = slot - 1); empty on SQLite. */
  readonly proxies: readonly TcpProxy[];
  /** The harness's own connection to Redis (redis). */
  readonly redis: Redis | undefined;
  /** The harness's own pool on PostgreSQL (postgres). */
  readonly pg: pg.Pool | undefined;
  /** The SQLite file of the run (sqlite, redis). */
  readonly sqlitePath: string | undefined;
  /** Whether the host's database is PostgreSQL (its host locks are row or table locks). */
  readonly postgres: boolean;
  /** The connection name / application_name prefix of a member. */
  connectionName(memberId: string): string;
}

interface Active {
  readonly fault: number;
  readonly kind: FaultKind;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly heal: () => void;
}

/** Injects faults, heals them on time, and heals them all at once when asked. */
export class Faults {
  readonly #t: FaultTargets;
  readonly #active = new Map<number, Active>();
  #next = 0;
  /** The command the members that start are armed with (`host-lock-at-resume`), until one takes it. */
  #nextStart: string | undefined;
  readonly #startArmed = new Set<MemberProcess>();
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

  /** Whether the harness holds a lock on the host's database now: its own writes would wait. */
  get hostLocked(): boolean {
    return [...this.#active.values()].some((f) => HOST_LOCKS.has(f.kind));
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

  /**
   * Disarms the stalls and host locks armed at these members (a cluster stop begins), and the one
   * armed for the next start when `nextStart` (the calm phase begins).
   */
  disarm(members: readonly MemberProcess[], nextStart: boolean): void {
    if (nextStart) {
      this.#nextStart = undefined;
      this.#startArmed.clear();
    }
    for (const m of members) {
      m.command('STALL 0');
      m.command('LOCK 0');
    }
  }

  /** Holds every byte to and from the slot's server for 0.3 to 2.5 TTLs. */
  partition(slot: number, member: MemberProcess | undefined, random: Random): void {
    const proxy = this.#proxy(slot);
    const ms = Math.round(uniform(random, 0.3, 2.5) * this.#t.timings.lockTtlMs);
    proxy.setBlackhole(true);
    this.#atSlot('partition', slot, member, ms, `slot ${slot} blackholed for ${ms} ms`, () =>
      proxy.setBlackhole(false),
    );
  }

  /** Forwards the slot's traffic 20 to 400 ms late, for 0.5 to 2 TTLs. */
  delay(slot: number, member: MemberProcess | undefined, random: Random): void {
    const proxy = this.#proxy(slot);
    const lag = Math.round(uniform(random, 20, 400));
    const ms = Math.round(uniform(random, 0.5, 2) * this.#t.timings.lockTtlMs);
    proxy.setDelay(lag);
    this.#atSlot('delay', slot, member, ms, `slot ${slot}: +${lag} ms per chunk for ${ms} ms`, () =>
      proxy.setDelay(0),
    );
  }

  /** Records a fault on the network path of `slot` (and of `member`, who runs there). */
  #atSlot(
    kind: FaultKind,
    slot: number,
    member: MemberProcess | undefined,
    ms: number,
    detail: string,
    heal: () => void,
  ): void {
    this.begin(kind, { members: member === undefined ? [] : [member], slots: [slot] }, ms, detail, heal);
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
  async sqliteStall(random: Random): Promise<void> {
    const ms = Math.round(uniform(random, 200, 1500));
    const db = await this.#sqliteWriteLock();
    if (db === undefined) return;
    this.begin('sqlite-stall', { slots: this.#allSlots() }, ms, `write lock held for ${ms} ms`, () =>
      this.#sqliteUnlock(db),
    );
  }

  /**
   * Host-database lock contention while a member parks (`park`: at its hand-off) or resumes
   * (`resume`: at its start). Every live member is armed for the park (`LOCK <ms> park <how>`), the
   * next member to start for the resume; the next time an armed member's park lists active workflows,
   * or its resume lists parked ones, a connection of its own (not the store's) takes the lock before
   * the caller hears of the listing, and holds it for `ms`: the write that follows waits behind it.
   *
   * - the SQLite file's write lock (`BEGIN IMMEDIATE`), 0.3 to 3.5 s (on `sqlite` the coordinator
   *   shares the file: its renewals wait too, and the lease may be lost);
   * - on PostgreSQL every running, pausing or paused host row (`rows`: `SELECT ... FOR UPDATE`), or
   *   the host table (`table`: `LOCK TABLE ... IN EXCLUSIVE MODE`, reads go on), 0.5 to 4.5 s.
   *
   * Longer than the lease, or than what the shutdown has left, now and then: the park must give up in
   * time, and nothing it gave up on may land later. Taken from inside the member because the write
   * follows the listing within a millisecond: a lock from the harness would come too late.
   */
  armHostLock(
    kind: 'host-lock-at-park' | 'host-lock-at-resume',
    members: readonly MemberProcess[],
    random: Random,
  ): void {
    const postgres = this.#t.postgres;
    const ms = Math.round(postgres ? uniform(random, 500, 4500) : uniform(random, 300, 3500));
    const how = postgres ? (random() < 0.5 ? 'rows' : 'table') : 'file';
    const what =
      how === 'file'
        ? "the SQLite file's write lock"
        : how === 'rows'
          ? 'the host rows FOR UPDATE'
          : 'the host table IN EXCLUSIVE MODE';
    if (kind === 'host-lock-at-resume') {
      // The members that resume are those that start: armed as they start (see `started`).
      this.#nextStart = `LOCK ${ms} resume ${how}`;
      this.#startArmed.clear();
      this.begin(kind, {}, 0, `the members that start armed: ${what} for ${ms} ms at their resume`);
      return;
    }
    const armed = members.filter((m) => m.command(`LOCK ${ms} park ${how}`));
    this.begin(
      kind,
      { members: armed },
      0,
      `${armed.length} members armed: ${what} for ${ms} ms at the next park`,
    );
  }

  /**
   * A member started: armed with the host lock waiting for a start, if any. Every member that starts
   * is, until one of them has taken it (its resume found parked workflows): see {@link hostLockTaken}.
   */
  started(member: MemberProcess): void {
    if (this.#nextStart === undefined) return;
    if (member.command(this.#nextStart)) this.#startArmed.add(member);
  }

  /** A member took the host lock it was armed with: the others armed for a start are disarmed. */
  hostLockTaken(member: MemberProcess): void {
    if (!this.#startArmed.delete(member)) return;
    this.#nextStart = undefined;
    for (const m of this.#startArmed) m.command('LOCK 0');
    this.#startArmed.clear();
  }

  /** A connection of the harness's own holding the SQLite file's write lock, or `undefined` if busy. */
  async #sqliteWriteLock(): Promise<SqliteDatabase | undefined> {
    const path = this.#t.sqlitePath;
    if (path === undefined) return undefined;
    // A short busy timeout: the harness's event loop must not wait long behind a member's write.
    const { openSqliteDatabase } = await import('graceful-drain/sqlite');
    const db = await openSqliteDatabase(path, { timeout: 250 });
    try {
      db.exec('BEGIN IMMEDIATE');
      return db;
    } catch {
      db.close();
      return undefined;
    }
  }

  #sqliteUnlock(db: SqliteDatabase): void {
    try {
      db.exec('ROLLBACK');
    } finally {
      db.close();
    }
  }

  #allSlots(): number[] {
    return Array.from({ length: this.#t.slots }, (_, i) => i + 1);
  }

  #proxy(slot: number): TcpProxy {
    const proxy = this.#t.proxies[slot - 1];
    if (proxy === undefined) throw new Error(`no proxy for slot ${slot}`);
    return proxy;
  }
}
