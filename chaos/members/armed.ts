/**
 * What a member does for the faults the harness arms it with: it reads the harness's commands on
 * stdin (a stall of its event loop, a lock on the host's database, each at a chosen point of its park or
 * resume), takes them when the point comes, and records its own stalls.
 */
import { WORKFLOWS_TABLE } from '../../harness/host-db.js';
import { readLines } from '../../harness/process.js';
import { POSTGRES_URL, withApplicationName } from '../../harness/servers.js';
import { errorRecord, fromNow, type MemberEvent, type Recorder } from '../history.js';

/** A turn of the event loop later than this is recorded as a stall. */
const STALL_MS = 250;

/** Records the event loop's stalls: on a busy machine a member may miss its deadlines without any fault. */
export function watchStalls(record: Recorder<MemberEvent>): void {
  let last = performance.now();
  const timer = setInterval(() => {
    const at = performance.now();
    if (at - last > STALL_MS) record({ type: 'stall', from: fromNow(last), ms: at - last });
    last = at;
  }, 50);
  timer.unref();
}

/** A host lock the harness armed: taken before the next write of `phase`. */
export interface HostLockArm {
  readonly ms: number;
  readonly phase: 'park' | 'resume';
  /** `file`: the SQLite file's write lock; `rows` / `table`: on PostgreSQL. */
  readonly how: 'file' | 'rows' | 'table';
}

/**
 * Reads the harness's commands on stdin, and ends this process at once (as a crash) when the harness
 * goes away: no member outlives its harness. Commands:
 *
 * - `STALL <ms>` arms a stall of the event loop for the next time the park step's listing of active
 *   workflows comes back (`STALL 0` disarms it);
 * - `LOCK <ms> <park|resume> <file|rows|table>` arms a host lock for the next time the park finds
 *   active workflows, or the resume parked ones, before it writes: see {@link holdHostLock} (`LOCK 0`
 *   disarms it).
 */
export function watchHarness(
  record: Recorder<MemberEvent>,
  onStall: (ms: number) => void,
  onLock: (arm: HostLockArm | undefined) => void,
): void {
  const stdin = process.stdin as NodeJS.ReadStream & { unref?: () => void };
  readLines(stdin, (line) => {
    const [command, arg, phase, how] = line.split(' ');
    const ms = Number(arg) > 0 ? Number(arg) : 0;
    if (command === 'STALL') {
      record({ type: 'stall-armed', ms });
      onStall(ms);
    } else if (command === 'LOCK') {
      record({ type: 'host-lock-armed', ms, phase: phase ?? '', how: how ?? '' });
      const valid =
        ms > 0 &&
        (phase === 'park' || phase === 'resume') &&
        (how === 'file' || how === 'rows' || how === 'table');
      onLock(valid ? { ms, phase, how } : undefined);
    }
  });
  stdin.on('end', () => process.kill(process.pid, 'SIGKILL'));
  stdin.on('error', () => process.kill(process.pid, 'SIGKILL'));
  // Watching must not keep the process alive: it has to end by itself after its shutdown.
  stdin.unref?.();
}

/** Where a host lock is taken: the SQLite file, or the PostgreSQL schema; its connection's name. */
export interface HostLockTarget {
  readonly db: string | undefined;
  readonly pgSchema: string;
  readonly connectionName: string;
}

/**
 * Takes a lock on the host's database through a connection of its own (not the store's, not the
 * host database's: another transaction of the same service, say), and releases it `ms` later: the
 * SQLite file's write lock (`BEGIN IMMEDIATE`), or on PostgreSQL the host rows that are running,
 * pausing or paused (`SELECT ... FOR UPDATE`) or the host table (`LOCK TABLE ... IN EXCLUSIVE MODE`).
 * Resolves once it holds the lock (`true`), or gave up (`false`, recorded): the store's next writes
 * wait behind it.
 */
export async function holdHostLock(
  config: HostLockTarget,
  arm: HostLockArm,
  record: Recorder<MemberEvent>,
): Promise<boolean> {
  const release = (done: () => Promise<void> | void): void => {
    const timer = setTimeout(() => {
      void Promise.resolve()
        .then(done)
        .catch(() => {})
        .finally(() => record({ type: 'host-lock-released' }));
    }, arm.ms);
    // Should the process end first, the lock goes with it.
    timer.unref();
  };
  try {
    if (arm.how === 'file') {
      const { openSqliteDatabase } = await import('graceful-drain/sqlite');
      const db = await openSqliteDatabase(config.db as string, { timeout: 250 });
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (error) {
        db.close();
        throw error;
      }
      record({ type: 'host-lock', ms: arm.ms, phase: arm.phase, what: "the SQLite file's write lock" });
      release(() => {
        db.exec('ROLLBACK');
        db.close();
      });
      return true;
    }
    const { default: pg } = await import('pg');
    const client = new pg.Client({
      connectionString: withApplicationName(POSTGRES_URL, `${config.connectionName}-l`),
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('BEGIN');
      // Never wait long behind another transaction: give up the fault instead.
      await client.query(`SET LOCAL lock_timeout = '1s'`);
      const table = `"${config.pgSchema}"."${WORKFLOWS_TABLE}"`;
      let what: string;
      if (arm.how === 'rows') {
        const locked = await client.query(
          `SELECT id FROM ${table} WHERE status IN ('running', 'pausing', 'paused') FOR UPDATE`,
        );
        what = `${locked.rowCount ?? 0} host rows FOR UPDATE`;
      } else {
        await client.query(`LOCK TABLE ${table} IN EXCLUSIVE MODE`);
        what = 'the host table IN EXCLUSIVE MODE';
      }
      record({ type: 'host-lock', ms: arm.ms, phase: arm.phase, what });
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    release(async () => {
      await client.query('ROLLBACK');
      await client.end();
    });
    return true;
  } catch (error) {
    record({ type: 'host-lock-failed', error: errorRecord(error) });
    return false;
  }
}

/** Blocks the event loop for `ms`, as a long GC pause or a starved CPU would. */
export function stallFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
