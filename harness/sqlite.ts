/**
 * SQLite writes that share a file with other processes, on either driver graceful-drain runs on: one
 * transaction at a time, retried asynchronously while another connection holds the lock.
 */
import type { SqliteDatabase } from 'graceful-drain/sqlite';

/** How long a write keeps retrying before it fails. */
const WRITE_TIMEOUT_MS = 10_000;

/**
 * Whether `error` says the database is busy or locked by another connection: better-sqlite3's
 * `SQLITE_BUSY...`/`SQLITE_LOCKED...` codes, or `node:sqlite`'s `ERR_SQLITE_ERROR` with primary result
 * code 5 (`SQLITE_BUSY`) or 6 (`SQLITE_LOCKED`).
 */
export function isBusy(error: unknown): boolean {
  const { code, errcode } = (error ?? {}) as { code?: unknown; errcode?: unknown };
  if (code === 'ERR_SQLITE_ERROR') return typeof errcode === 'number' && [5, 6].includes(errcode & 0xff);
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `work` in one transaction of `db`: `BEGIN IMMEDIATE` to write, a plain `BEGIN` to read. */
function transaction<T>(db: SqliteDatabase, work: () => T, mode: 'immediate' | 'deferred'): T {
  if (mode === 'immediate') return db.transaction(work).immediate();
  db.exec('BEGIN');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

/**
 * Runs `work` as one transaction (see {@link transaction}), retried asynchronously with a jittered
 * backoff while the file is busy, for up to 10 s; `closed` says when to stop.
 */
export async function sqliteTransaction<T>(
  db: SqliteDatabase,
  work: () => T,
  mode: 'immediate' | 'deferred' = 'immediate',
  closed: () => boolean = () => false,
): Promise<T> {
  const until = performance.now() + WRITE_TIMEOUT_MS;
  for (let attempt = 0; ; attempt++) {
    if (closed()) throw new Error('The database is closed');
    try {
      return transaction(db, work, mode);
    } catch (error) {
      if (!isBusy(error) || performance.now() > until) throw error;
    }
    await sleep(Math.min(40, 2 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random() / 2));
  }
}
