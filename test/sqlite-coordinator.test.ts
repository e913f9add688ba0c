import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteCoordinator, type SqliteCoordinatorOptions } from '../src/adapters/sqlite/index.js';
import { RESERVED_TOKENS } from '../src/adapters/sqlite/coordinator-sql.js';
import { selfIdentity } from '../src/adapters/sqlite/process-identity.js';
import {
  ClosedError,
  ConfigurationError,
  LockLostError,
  LockTimeoutError,
  MembershipLostError,
} from '../src/errors.js';
import { delay, now, randomId } from '../src/internal/time.js';
import { ChildProcesses, kill, type ReadyProcess } from './support/processes.js';
import { forEachDriver, openDatabase, sqliteDriver, type TestDatabase } from './support/sqlite.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/sqlite-process.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gd-sqlite-coordinator-'));
const file = join(dir, 'coordination.db');

const made: SqliteCoordinator[] = [];
const databases: TestDatabase[] = [];
const children = new ChildProcesses();

function make(options: Omit<SqliteCoordinatorOptions, 'database'> = {}): SqliteCoordinator {
  const coordinator = new SqliteCoordinator({ driver: sqliteDriver(), path: file, ...options });
  made.push(coordinator);
  return coordinator;
}

function open(path = file): TestDatabase {
  const db = openDatabase(path);
  databases.push(db);
  return db;
}

/** A column of `lock`'s row (`token`, `ceiling`), read through `db`. */
function lockColumn(db: TestDatabase, column: 'token' | 'ceiling', lock: string): bigint {
  return db
    .prepare<[string], bigint>(`SELECT ${column} FROM graceful_drain_locks WHERE name = ?`)
    .pluck()
    .safeIntegers(true)
    .get(lock)!;
}

/** The reservation's ceiling of `lock` in the shared file. */
function ceilingOf(lock: string): bigint {
  const db = open();
  try {
    return lockColumn(db, 'ceiling', lock);
  } finally {
    db.close();
  }
}

/** Starts `test/fixtures/sqlite-process.ts` with these arguments. */
function child(...args: string[]): Promise<ReadyProcess> {
  return children.fixture(FIXTURE, ...args);
}

/** `value` becomes `'settled'` when `promise` resolves, or its rejection reason. */
function settledState(promise: Promise<unknown>): { value: unknown } {
  const state: { value: unknown } = { value: 'pending' };
  promise.then(
    () => (state.value = 'settled'),
    (error: unknown) => (state.value = error),
  );
  return state;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(made.splice(0).map((c) => c.close()));
  for (const db of databases.splice(0)) if (db.open) db.close();
  await children.killAll();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

forEachDriver(() => {
  describe('SqliteCoordinator constructor', () => {
    it('needs exactly one of database and path', () => {
      const db = open(join(dir, 'either.db'));
      expect(() => new SqliteCoordinator({})).toThrow(ConfigurationError);
      expect(() => new SqliteCoordinator({})).toThrow(/`database`.*`path`.*neither/);
      expect(() => new SqliteCoordinator({ database: db, path: file })).toThrow(/`database`.*`path`.*both/);
    });

    it('refuses unknown options, bad values and an in-memory database', () => {
      expect(
        () =>
          new SqliteCoordinator({
            driver: sqliteDriver(),
            path: file,
            busyTimeoutMS: 5,
          } as SqliteCoordinatorOptions),
      ).toThrow(/busyTimeoutMS.*did you mean `busyTimeoutMs`/);
      expect(() => new SqliteCoordinator({ driver: sqliteDriver(), path: file, pollIntervalMs: 0 })).toThrow(
        /`pollIntervalMs`.*`0`/,
      );
      expect(() => new SqliteCoordinator({ driver: sqliteDriver(), path: file, busyTimeoutMs: -1 })).toThrow(
        /`busyTimeoutMs`.*`-1`/,
      );
      expect(() => new SqliteCoordinator({ driver: sqliteDriver(), path: ':memory:' })).toThrow(/in-memory/);
      expect(() => new SqliteCoordinator({ database: open(':memory:') })).toThrow(/in-memory/);
      expect(() => new SqliteCoordinator({ database: {} as TestDatabase })).toThrow(/`database`/);
    });

    it('refuses a tablePrefix that is not a plain identifier, naming the option and the value', () => {
      for (const bad of ['x"; DROP TABLE y; --', 'a b', '1abc', 'a.b', '']) {
        expect(() => new SqliteCoordinator({ driver: sqliteDriver(), path: file, tablePrefix: bad })).toThrow(
          ConfigurationError,
        );
        expect(() => new SqliteCoordinator({ driver: sqliteDriver(), path: file, tablePrefix: bad })).toThrow(
          `\`tablePrefix\` to be a plain SQL identifier`,
        );
        expect(() => new SqliteCoordinator({ driver: sqliteDriver(), path: file, tablePrefix: bad })).toThrow(
          JSON.stringify(bad),
        );
      }
    });
  });

  describe('SqliteCoordinator ttlMs against busyTimeoutMs', () => {
    it('acquire() and join() reject a ttlMs of 5 × busyTimeoutMs or less with ConfigurationError, naming both', async () => {
      const c = make({ busyTimeoutMs: 40 });
      for (const call of [
        () => c.acquire(`lock-${randomId()}`, { ttlMs: 200, timeoutMs: 100 }),
        () => c.join(`group-${randomId()}`, 'm1', { ttlMs: 200 }),
        () => c.acquire(`lock-${randomId()}`, { ttlMs: 150, timeoutMs: 100 }),
      ]) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigurationError);
        expect((error as Error).message).toMatch(
          /^Expected `ttlMs` to be more than 5 × .*`busyTimeoutMs` \(40\), got `(200|150)` \(number\)/,
        );
      }
      // just above the bound, and with the defaults (busyTimeoutMs 50), it works
      await (await c.acquire(`lock-${randomId()}`, { ttlMs: 201, timeoutMs: 100 })).release();
      await (await make().join(`group-${randomId()}`, 'm1', { ttlMs: 251 })).leave();
      await expect(make().acquire('l', { ttlMs: 250, timeoutMs: 100 })).rejects.toThrow(
        /`busyTimeoutMs` \(50\), got `250`/,
      );
    });
  });

  describe('SqliteCoordinator signals of release, leave and members on a busy database', () => {
    it('release() that waits on the write lock stops at abort: the lock is not freed later; its signal says so; close() frees it', async () => {
      const c = make({ busyTimeoutMs: 5 });
      const lock = `lock-${randomId()}`;
      const lease = await c.acquire(lock, { ttlMs: 60_000, timeoutMs: 100 });
      const owner = () =>
        open().prepare('SELECT owner FROM graceful_drain_locks WHERE name = ?').pluck().get(lock);
      const held = owner();
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const blocker = open();
      blocker.exec('BEGIN IMMEDIATE');
      const controller = new AbortController();
      // Its first attempt runs, and finds the database busy, before release() returns.
      const releasing = settledState(lease.release({ signal: controller.signal }));
      const reason = new Error('given up');
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(releasing.value).toBe(reason);
      blocker.exec('COMMIT');
      await vi.advanceTimersByTimeAsync(10_000); // past every backoff: a pending retry would have run
      vi.useRealTimers();
      expect(owner()).toBe(held);
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      await c.close();
      expect(owner()).toBeNull();
    });

    it('leave() with a signal aborted while busy rejects with its reason, writing nothing; a later leave() confirms', async () => {
      const c = make({ busyTimeoutMs: 5 });
      const group = `group-${randomId()}`;
      const membership = await c.join(group, 'm1', { ttlMs: 60_000 });
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const blocker = open();
      blocker.exec('BEGIN IMMEDIATE');
      const controller = new AbortController();
      const leaving = settledState(membership.leave({ signal: controller.signal }));
      const reason = new Error('given up');
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(leaving.value).toBe(reason);
      blocker.exec('COMMIT');
      await vi.advanceTimersByTimeAsync(10_000);
      vi.useRealTimers();
      expect((await c.members(group)).map((m) => m.memberId)).toEqual(['m1']);
      expect(membership.signal.reason).toBeInstanceOf(MembershipLostError);
      await membership.leave();
      expect(await c.members(group)).toEqual([]);
      const aborted = AbortSignal.abort(reason);
      await expect(c.members(group, { signal: aborted })).rejects.toBe(reason);
      await membership.leave({ signal: aborted }); // left already: nothing to give up
    });
  });

  // Defects found in review, each test failing before its fix (with child processes: test/sqlite-coordinator-processes.test.ts).
  describe('SqliteCoordinator set-up while another connection holds the write lock', () => {
    it('members(), the first call on a file set up already, answers: the set-up only reads', async () => {
      const path = join(dir, `${randomId()}.db`);
      const group = `group-${randomId()}`;
      await (await make({ path }).join(group, 'm1', { ttlMs: 1000 })).leave();
      const blocker = open(path);
      blocker.exec('BEGIN IMMEDIATE');
      // Before: the set-up took BEGIN IMMEDIATE to run CREATE TABLE IF NOT EXISTS, and waited out this.
      const fresh = make({ path, operationTimeoutMs: 300 });
      expect(await fresh.members(group)).toEqual([]);
      blocker.exec('COMMIT');
    });

    it('acquire(), the first call on a new file, rejects with LockTimeoutError at timeoutMs, and sets up once the lock is free', async () => {
      const path = join(dir, `${randomId()}.db`);
      const blocker = open(path);
      blocker.pragma('journal_mode = WAL');
      blocker.exec('BEGIN IMMEDIATE');
      const fresh = make({ path });
      const started = now();
      const outcome = await fresh
        .acquire('l', { ttlMs: 1000, timeoutMs: 100 })
        .catch((error: unknown) => error);
      // Before: the set-up ran under operationTimeoutMs (5000), whatever the call's timeoutMs.
      expect(outcome).toBeInstanceOf(LockTimeoutError);
      expect(now() - started).toBeLessThan(2500);
      blocker.exec('COMMIT');
      const lease = await fresh.acquire('l', { ttlMs: 1000, timeoutMs: 1000 });
      expect(lease.token).toBe(1n);
      await lease.release();
    });
  });

  describe('SqliteCoordinator on a database file', () => {
    it('creates its tables under tablePrefix, switches the file to WAL, and leaves a user database open', async () => {
      const db = open(join(dir, `${randomId()}.db`));
      const prefix = `p_${randomId().slice(0, 8)}_`;
      const coordinator = new SqliteCoordinator({ database: db, tablePrefix: prefix });
      made.push(coordinator);
      const lease = await coordinator.acquire('l', { ttlMs: 1000, timeoutMs: 100 });
      await lease.release();
      const tables = db
        .prepare<[string], string>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ORDER BY name",
        )
        .pluck()
        .all(`${prefix}%`);
      expect(tables).toEqual([`${prefix}locks`, `${prefix}members`]);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const timeout = db.pragma('busy_timeout', { simple: true });
      await coordinator.close();
      expect(db.open).toBe(true);
      // the user's handle is left as it was found
      expect(db.pragma('busy_timeout', { simple: true })).toBe(timeout);
    });

    it('takes and releases on a user handle at its own busy timeout and synchronous level, and restores them', async () => {
      const db = open(join(dir, `${randomId()}.db`));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 1234');
      const coordinator = new SqliteCoordinator({ database: db });
      made.push(coordinator);
      for (let i = 1; i <= 3; i++) {
        const lease = await coordinator.acquire('l', { ttlMs: 1000, timeoutMs: 100 });
        expect(lease.token).toBe(BigInt(i));
        expect(db.pragma('synchronous', { simple: true })).toBe(1);
        expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
        await lease.release();
        expect(db.pragma('synchronous', { simple: true })).toBe(1);
        expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
      }
      // A setting the host changes between calls is the one restored.
      db.pragma('busy_timeout = 4321');
      await (await coordinator.acquire('l', { ttlMs: 1000, timeoutMs: 100 })).release();
      expect(db.pragma('busy_timeout', { simple: true })).toBe(4321);
    });

    it("reserves tokens at synchronous FULL on its first take, takes within the reservation at the handle's NORMAL, every write under its own busy timeout", async () => {
      const db = open(join(dir, `${randomId()}.db`));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 1234');
      // The handle the coordinator gets: its lock statements note the settings they run under.
      const seen: { sql: 'take' | 'free'; synchronous: unknown; busyTimeout: unknown }[] = [];
      const watched = (sql: string): 'take' | 'free' | undefined =>
        /^\s*(INSERT INTO "[^"]*locks"|UPDATE "[^"]*locks" SET token)/.test(sql)
          ? 'take'
          : /^\s*UPDATE "[^"]*locks" SET owner = NULL/.test(sql)
            ? 'free'
            : undefined;
      const database = new Proxy(db, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (property !== 'prepare') return typeof value === 'function' ? value.bind(target) : value;
          return (sql: string) => {
            const statement = target.prepare(sql);
            const kind = watched(sql);
            if (kind === undefined) return statement;
            const note = (): void => {
              seen.push({
                sql: kind,
                synchronous: target.pragma('synchronous', { simple: true }),
                busyTimeout: target.pragma('busy_timeout', { simple: true }),
              });
            };
            const watching: typeof statement = new Proxy(statement, {
              get(s, p) {
                const v: unknown = Reflect.get(s, p, s);
                if (typeof v !== 'function') return v;
                return (...args: unknown[]) => {
                  if (p === 'get' || p === 'run') note();
                  const result: unknown = (v as (...a: unknown[]) => unknown).apply(s, args);
                  // pluck() and safeIntegers() answer the statement: keep watching it.
                  return result === s ? watching : result;
                };
              },
            });
            return watching;
          };
        },
      });
      const coordinator = new SqliteCoordinator({ database, busyTimeoutMs: 40 });
      made.push(coordinator);
      for (let i = 0; i < 3; i++) {
        await (await coordinator.acquire('l', { ttlMs: 1000, timeoutMs: 100 })).release();
      }
      // The first take reserves (no row yet: the reserved UPDATE is not even tried); the next two take
      // within the reservation, at the handle's level.
      expect(seen.filter((s) => s.sql === 'take')).toEqual([
        { sql: 'take', synchronous: 2, busyTimeout: 40 },
        { sql: 'take', synchronous: 1, busyTimeout: 40 },
        { sql: 'take', synchronous: 1, busyTimeout: 40 },
      ]);
      expect(seen.filter((s) => s.sql === 'free')).toEqual(
        Array.from({ length: 3 }, () => ({ sql: 'free', synchronous: 1, busyTimeout: 40 })),
      );
      expect(db.pragma('synchronous', { simple: true })).toBe(1);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    });

    it('fencing tokens survive the release of the row, a new instance and another process', async () => {
      const lock = `lock-${randomId()}`;
      const a = make();
      const first = await a.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
      await first.release();
      const second = await a.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
      await second.release();
      expect(second.token).toBeGreaterThan(first.token);
      await a.close();
      const { value } = await child('once', file, lock);
      expect(BigInt(value)).toBeGreaterThan(second.token);
      const b = make();
      const third = await b.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
      // A new instance reserves first: its token is the first past the reservation.
      expect(third.token).toBe(ceilingOf(lock) - BigInt(RESERVED_TOKENS));
      expect(third.token).toBeGreaterThan(BigInt(value));
      const fourth = await (async () => {
        await third.release();
        return b.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
      })();
      expect(fourth.token).toBe(third.token + 1n);
      await fourth.release();
    });

    it.each(['free', 'gone'] as const)(
      'never hands a token out twice across a power loss: what the disk kept is the last reservation (its holder %s)',
      async (holder) => {
        const path = join(dir, `${randomId()}.db`);
        const lock = `lock-${randomId()}`;
        const a = new SqliteCoordinator({ driver: sqliteDriver(), path });
        made.push(a);
        // The reserving take commits at FULL: the disk holds the files as they are now.
        const reserved = await a.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
        await reserved.release();
        const durable = { db: readFileSync(path), wal: readFileSync(`${path}-wal`) };
        const tokens: bigint[] = [];
        for (let i = 0; i < 5; i++) {
          const lease = await a.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
          tokens.push(lease.token);
          await lease.release();
        }
        expect(tokens).toEqual([2n, 3n, 4n, 5n, 6n].map((t) => t + reserved.token - 1n));
        await a.close();
        // The power loss: the takes committed at NORMAL never reached the disk.
        writeFileSync(path, durable.db);
        writeFileSync(`${path}-wal`, durable.wal);
        rmSync(`${path}-shm`, { force: true });
        const db = open(path);
        expect(lockColumn(db, 'token', lock)).toBe(reserved.token);
        if (holder === 'gone') {
          // The disk kept the lock held, unexpired, by a process the power loss took (this pid, another
          // start time: a pid reused after the reboot): the next start takes it over.
          const me = selfIdentity();
          db.prepare(
            `UPDATE graceful_drain_locks SET owner = 'lost', expires_at = ?, pid = ?, pid_start = 'before',
               pid_scope = ? WHERE name = ?`,
          ).run(Date.now() + 60_000, me.pid, me.scope, lock);
        }
        db.close();
        // The instance started after it reserves past what the disk kept.
        const b = new SqliteCoordinator({ driver: sqliteDriver(), path });
        made.push(b);
        const after = await b.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
        expect(after.token).toBe(reserved.token + BigInt(RESERVED_TOKENS) + 1n);
        expect(after.token).toBeGreaterThan(tokens.at(-1)!);
        await after.release();
      },
    );

    it('reserves again when a reservation is used up, and adds the reservation to a table made without it', async () => {
      const path = join(dir, `${randomId()}.db`);
      const lock = `lock-${randomId()}`;
      const db = open(path);
      db.pragma('journal_mode = WAL');
      // The locks table as a version before reservations made it, with a token handed out.
      db.exec(`CREATE TABLE graceful_drain_locks (
        name TEXT PRIMARY KEY NOT NULL, token INTEGER NOT NULL, owner TEXT, expires_at INTEGER NOT NULL,
        pid INTEGER, pid_start TEXT, pid_scope TEXT
      ) WITHOUT ROWID`);
      db.prepare('INSERT INTO graceful_drain_locks (name, token, expires_at) VALUES (?, 7, 0)').run(lock);
      const c = new SqliteCoordinator({ driver: sqliteDriver(), path });
      made.push(c);
      const first = await c.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
      expect(first.token).toBe(8n);
      await first.release();
      const ceiling = (): bigint => lockColumn(db, 'ceiling', lock);
      expect(ceiling()).toBe(8n + BigInt(RESERVED_TOKENS));
      let last = first.token;
      for (let i = 0; i <= RESERVED_TOKENS; i++) {
        const lease = await c.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
        expect(lease.token).toBe(last + 1n);
        last = lease.token;
        await lease.release();
      }
      // The one before the last took the reservation's ceiling; the last reserved the next block.
      expect(last).toBe(8n + BigInt(RESERVED_TOKENS) + 1n);
      expect(ceiling()).toBe(last + BigInt(RESERVED_TOKENS));
    });

    it('a lock held by a process killed with SIGKILL is free at once, long before its TTL', async () => {
      const lock = `lock-${randomId()}`;
      const holder = await child('hold', file, lock, '60000');
      const c = make();
      await expect(c.acquire(lock, { ttlMs: 1000, timeoutMs: 200 })).rejects.toBeInstanceOf(LockTimeoutError);
      await kill(holder.process);
      const started = now();
      const lease = await c.acquire(lock, { ttlMs: 1000, timeoutMs: 2000 });
      expect(now() - started).toBeLessThan(500);
      expect(lease.token).toBeGreaterThan(BigInt(holder.value));
      await lease.release();
    });

    it('a member killed with SIGKILL disappears from members() at once', async () => {
      const group = `group-${randomId()}`;
      const member = await child('join', file, group, 'worker-1', '60000');
      const c = make();
      const listed = await c.members(group);
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ memberId: 'worker-1', incarnation: member.value, ttlMs: 60000 });
      expect(listed[0]?.expiresInMs).toBeGreaterThan(50_000);
      await kill(member.process);
      expect(await c.members(group)).toEqual([]);
    });

    it('processes competing for one lock never overlap, and tokens strictly increase', async () => {
      const lock = `lock-${randomId()}`;
      const logs = [0, 1, 2].map((i) => join(dir, `compete-${lock}-${i}.log`));
      await Promise.all(logs.map((log) => child('compete', file, lock, '15', log)));
      const rounds = logs
        .flatMap((log) => readFileSync(log, 'utf8').trim().split('\n'))
        .map((line) => {
          const [token, acquired, releasing] = line.split(' ').map(BigInt) as [bigint, bigint, bigint];
          return { token, acquired, releasing };
        })
        .sort((x, y) => (x.acquired < y.acquired ? -1 : 1));
      expect(rounds).toHaveLength(45);
      for (let i = 1; i < rounds.length; i++) {
        const [previous, next] = [rounds[i - 1], rounds[i]] as [(typeof rounds)[0], (typeof rounds)[0]];
        expect(next.acquired).toBeGreaterThan(previous.releasing);
        expect(next.token).toBeGreaterThan(previous.token);
      }
    });

    it('a busy database does not block the event loop while an acquire waits', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      await (await c.acquire(`warm-${randomId()}`, { ttlMs: 1000, timeoutMs: 100 })).release();
      const blocker = open();
      blocker.exec('BEGIN IMMEDIATE');
      let last = now();
      let longest = 0;
      const ticker = setInterval(() => {
        const t = now();
        longest = Math.max(longest, t - last);
        last = t;
      }, 1);
      setTimeout(() => blocker.exec('COMMIT'), 500);
      const started = now();
      const lease = await c.acquire(lock, { ttlMs: 1000, timeoutMs: 5000 });
      const waited = now() - started;
      clearInterval(ticker);
      expect(waited).toBeGreaterThanOrEqual(450);
      expect(longest).toBeLessThan(200);
      await lease.release();
    });

    it('a lease whose renewals cannot get through aborts with LockLostError before its recorded expiry', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      const ttlMs = 600;
      const lease = await c.acquire(lock, { ttlMs, timeoutMs: 100 });
      const reader = open();
      const expiresAt = (): number =>
        reader
          .prepare<[string], number>('SELECT expires_at FROM graceful_drain_locks WHERE name = ?')
          .pluck()
          .get(lock) as number;
      const blocker = open();
      blocker.exec('BEGIN IMMEDIATE');
      try {
        const recorded = expiresAt();
        const lost = once(lease.signal, 'abort');
        await lost;
        const abortedAt = Date.now();
        expect(lease.signal.reason).toBeInstanceOf(LockLostError);
        expect(lease.signal.reason).toMatchObject({ code: 'ERR_LOCK_LOST' });
        // no renewal got through, so the row still holds the expiry of the last one: not yet reached
        expect(expiresAt()).toBe(recorded);
        expect(abortedAt).toBeLessThan(recorded);
      } finally {
        blocker.exec('COMMIT');
      }
      await lease.release();
    });

    it('a lease taken away behind its back aborts at the next renewal; release() then resolves', async () => {
      const c = make();
      const lock = `lock-${randomId()}`;
      const lease = await c.acquire(lock, { ttlMs: 600, timeoutMs: 100 });
      open().prepare("UPDATE graceful_drain_locks SET owner = 'someone-else' WHERE name = ?").run(lock);
      const started = now();
      await once(lease.signal, 'abort');
      expect(now() - started).toBeLessThan(450);
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      await expect(lease.release()).resolves.toBeUndefined();
      // owner-checked: the other owner's row was not freed
      expect(open().prepare('SELECT owner FROM graceful_drain_locks WHERE name = ?').pluck().get(lock)).toBe(
        'someone-else',
      );
    });

    it('a membership whose row was removed aborts with MembershipLostError and is never re-added', async () => {
      const c = make();
      const group = `group-${randomId()}`;
      const membership = await c.join(group, 'm1', { ttlMs: 600 });
      open().prepare('DELETE FROM graceful_drain_members WHERE group_name = ?').run(group);
      await once(membership.signal, 'abort');
      expect(membership.signal.reason).toBeInstanceOf(MembershipLostError);
      expect(membership.signal.reason).toMatchObject({ code: 'ERR_MEMBERSHIP_LOST' });
      await delay(500);
      expect(await c.members(group)).toEqual([]);
      await expect(membership.leave()).resolves.toBeUndefined();
    });

    it('joining again as the same member replaces the older incarnation, whose signal aborts', async () => {
      const [a, b] = [make(), make()];
      const group = `group-${randomId()}`;
      const older = await a.join(group, 'm1', { ttlMs: 600 });
      const newer = await b.join(group, 'm1', { ttlMs: 600 });
      await once(older.signal, 'abort');
      expect(older.signal.reason).toBeInstanceOf(MembershipLostError);
      await older.leave();
      expect((await a.members(group)).map((m) => m.incarnation)).toEqual([newer.incarnation]);
    });

    it('close() aborts a waiting acquire with ClosedError', async () => {
      const [a, b] = [make(), make()];
      const lock = `lock-${randomId()}`;
      const held = await a.acquire(lock, { ttlMs: 1000, timeoutMs: 100 });
      const waiting = b.acquire(lock, { ttlMs: 1000, timeoutMs: 10_000 });
      await delay(100);
      await b.close();
      await expect(waiting).rejects.toBeInstanceOf(ClosedError);
      await held.release();
    });

    it('close() aborts the signals of what it held, frees the rows, and nothing renews them afterwards', async () => {
      const c = make();
      const [lock, group] = [`lock-${randomId()}`, `group-${randomId()}`];
      const lease = await c.acquire(lock, { ttlMs: 300, timeoutMs: 100 });
      const membership = await c.join(group, 'm1', { ttlMs: 300 });
      await c.close();
      expect(lease.signal.reason).toBeInstanceOf(LockLostError);
      expect(membership.signal.reason).toBeInstanceOf(MembershipLostError);
      const db = open();
      const rows = () => [
        db.prepare('SELECT owner FROM graceful_drain_locks WHERE name = ?').pluck().get(lock),
        db.prepare('SELECT count(*) FROM graceful_drain_members WHERE group_name = ?').pluck().get(group),
      ];
      expect(rows()).toEqual([null, 0]);
      await delay(400);
      expect(rows()).toEqual([null, 0]);
      await expect(lease.release()).resolves.toBeUndefined();
      await expect(membership.leave()).resolves.toBeUndefined();
    });

    it('its renewal timers never hold the process open', async () => {
      const lingering = await child('linger', file, `lock-${randomId()}`, `group-${randomId()}`);
      const exited = once(lingering.process, 'exit');
      const timeout = delay(5000).then(() => 'still running');
      expect(await Promise.race([exited.then(([code]) => code as number), timeout])).toBe(0);
    });

    it('close() before any use opens nothing', async () => {
      const path = join(dir, `${randomId()}.db`);
      const c = new SqliteCoordinator({ driver: sqliteDriver(), path });
      await c.close();
      expect(() => readFileSync(path)).toThrow(/ENOENT/);
      await expect(c.members('g')).rejects.toBeInstanceOf(ClosedError);
    });
  });
});
