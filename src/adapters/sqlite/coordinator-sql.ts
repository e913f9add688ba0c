/**
 * The coordinator's two tables and its statements. Lock rows are never deleted: a freed lock keeps its
 * last token, so tokens strictly increase per name for the life of the file.
 *
 * Tokens are reserved in durable blocks: a lock row's `ceiling` is the highest token any take may hand
 * out, raised only by a take committed at `synchronous = FULL` (a reserving take), which hands out the
 * first token past the reservation it finds and reserves {@link RESERVED_TOKENS} more. The takes in
 * between commit at the handle's own level (NORMAL in WAL mode: no fsync), and may be lost to a power
 * loss; the reservation that covers them is not. A coordinator instance reserves on its first take of
 * each name, so an instance started after a power loss never hands out a token below the durable
 * ceiling, that is, one handed out before it. See "Monotonic fencing tokens" in docs/adapters/sqlite.md.
 *
 * @internal
 */
import { ConfigurationError } from '../../errors.js';
import { quote } from '../../internal/sql-names.js';
import type { SqliteDatabase } from './driver.js';
import { isGone, selfIdentity } from './process-identity.js';

/** The owner's process and expiry as a row records them. Integers come back as bigints (`safeIntegers`). */
interface OwnerColumns {
  readonly pid: bigint | null;
  readonly pid_start: string | null;
  readonly pid_scope: string | null;
  readonly expires_at: bigint;
}

interface LockRow extends OwnerColumns {
  readonly token: bigint;
  /** The highest token takes may hand out (`NULL` in a row written before reservations). */
  readonly ceiling: bigint | null;
  readonly owner: string | null;
}

/** The tokens a reserving take reserves past the one it hands out. */
export const RESERVED_TOKENS = 1000;

interface MemberRow extends OwnerColumns {
  readonly member_id: string;
  readonly incarnation: string;
  readonly ttl_ms: bigint;
}

/** Whether a row has not expired at `wall` (`Date.now()`) and its owner's process is not gone. */
export function isLive(row: OwnerColumns, wall: number): boolean {
  const owner = { pid: Number(row.pid ?? 0), start: row.pid_start, scope: row.pid_scope };
  return Number(row.expires_at) > wall && !isGone(owner);
}

let self: Owner | undefined;

/** This process, as the `pid`, `pid_start` and `pid_scope` parameters of a write (made once). */
export function selfOwner(): Owner {
  if (self === undefined) {
    const me = selfIdentity();
    self = Object.freeze([me.pid, me.start, me.scope] as const);
  }
  return self;
}

/**
 * Switches the file to WAL, creates the tables if they are missing, and prepares the statements. What
 * is there already is only read: a WAL reader never waits, so a process starting while another holds
 * the write lock (a long `BEGIN IMMEDIATE` of its own) is not held up; `BEGIN IMMEDIATE` is taken only
 * to create a missing table.
 */
export function setUpCoordinator(db: SqliteDatabase, { tablePrefix: prefix }: { tablePrefix: string }) {
  const current = db.pragma('journal_mode', { simple: true });
  const mode =
    String(current).toLowerCase() === 'wal' ? current : db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    throw new ConfigurationError(
      `SqliteCoordinator needs WAL journal mode, the database is in ${String(mode)}`,
    );
  }
  const tables = [`${prefix}locks`, `${prefix}members`];
  // Table names compare without regard to ASCII case, as SQLite resolves them. A locks table made
  // before reservations lacks `ceiling`: it is added (its rows' tokens were each committed at FULL).
  const present = db
    .prepare<[string, string, string], number>(
      `SELECT count(*) + (SELECT count(*) FROM pragma_table_info(?) WHERE name = 'ceiling')
        FROM sqlite_master WHERE type = 'table' AND name COLLATE NOCASE IN (?, ?)`,
    )
    .pluck()
    .get(`${prefix}locks`, ...(tables as [string, string]));
  if (Number(present) !== tables.length + 1) {
    db.transaction(() => {
      const columns = db
        .prepare<[string], string>('SELECT name FROM pragma_table_info(?)')
        .pluck()
        .all(`${prefix}locks`);
      if (columns.length > 0 && !columns.includes('ceiling')) {
        db.exec(`ALTER TABLE ${quote(`${prefix}locks`)} ADD COLUMN ceiling INTEGER`);
      }
      db.exec(`CREATE TABLE IF NOT EXISTS ${quote(`${prefix}locks`)} (
        name TEXT PRIMARY KEY NOT NULL, token INTEGER NOT NULL, owner TEXT, expires_at INTEGER NOT NULL,
        pid INTEGER, pid_start TEXT, pid_scope TEXT, ceiling INTEGER
      ) WITHOUT ROWID`);
      db.exec(`CREATE TABLE IF NOT EXISTS ${quote(`${prefix}members`)} (
        group_name TEXT NOT NULL, member_id TEXT NOT NULL, incarnation TEXT NOT NULL, ttl_ms INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, pid INTEGER NOT NULL, pid_start TEXT, pid_scope TEXT,
        PRIMARY KEY (group_name, member_id)
      ) WITHOUT ROWID`);
    }).immediate();
  }
  return prepareStatements(db, prefix);
}

/** The prepared statements of one database handle. */
export type CoordinatorStatements = ReturnType<typeof prepareStatements>;

type Owner = readonly [pid: number, start: string | null, scope: string | null];

function prepareStatements(db: SqliteDatabase, prefix: string) {
  const locks = quote(`${prefix}locks`);
  const members = quote(`${prefix}members`);
  // Takes the lock at the first token past its reservation and reserves RESERVED_TOKENS more; a row
  // made before reservations (`ceiling` NULL) continues from its token.
  const reservingTake = `INSERT INTO ${locks} (name, token, ceiling, owner, expires_at, pid, pid_start, pid_scope)
    VALUES (?, 1, ${1 + RESERVED_TOKENS}, ?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
      token = max(${locks}.token, coalesce(${locks}.ceiling, 0)) + 1,
      ceiling = max(${locks}.token, coalesce(${locks}.ceiling, 0)) + ${1 + RESERVED_TOKENS},
      owner = excluded.owner, expires_at = excluded.expires_at, pid = excluded.pid,
      pid_start = excluded.pid_start, pid_scope = excluded.pid_scope`;
  return {
    lock: db
      .prepare<[string], LockRow>(
        `SELECT token, ceiling, owner, expires_at, pid, pid_start, pid_scope FROM ${locks} WHERE name = ?`,
      )
      .safeIntegers(true),
    // The usual take, in one statement: the lock is free or expired and its reservation not used up;
    // its token bumped, read back. Nothing when the lock is held, or the row is missing or used up.
    takeReserved: db
      .prepare<[string, number, ...Owner, string, number], bigint>(
        `UPDATE ${locks} SET token = token + 1, owner = ?, expires_at = ?, pid = ?, pid_start = ?,
           pid_scope = ?
         WHERE name = ? AND (owner IS NULL OR expires_at <= ?) AND token < ceiling
         RETURNING token`,
      )
      .pluck()
      .safeIntegers(true),
    // A reserving take (committed at FULL), in one statement: the lock is free or expired; the first
    // token past its reservation (or its token, in a row made before reservations) handed out, and
    // the next RESERVED_TOKENS reserved.
    takeFree: db
      .prepare<[string, string, number, ...Owner, number], bigint>(
        `${reservingTake} WHERE ${locks}.owner IS NULL OR ${locks}.expires_at <= ? RETURNING token`,
      )
      .pluck()
      .safeIntegers(true),
    // A reserving takeover (committed at FULL) of a lock whose holder's process is gone, as `takeFree`.
    take: db
      .prepare<[string, string, number, ...Owner], bigint>(`${reservingTake} RETURNING token`)
      .pluck()
      .safeIntegers(true),
    renewLock: db.prepare<[number, string, string, number]>(
      `UPDATE ${locks} SET expires_at = ? WHERE name = ? AND owner = ? AND expires_at > ?`,
    ),
    // The token stays: it is the floor of the next holder's token.
    freeLock: db.prepare<[string, string]>(
      `UPDATE ${locks} SET owner = NULL, expires_at = 0, pid = NULL, pid_start = NULL, pid_scope = NULL
       WHERE name = ? AND owner = ?`,
    ),
    group: db
      .prepare<[string], MemberRow>(
        `SELECT member_id, incarnation, ttl_ms, expires_at, pid, pid_start, pid_scope FROM ${members}
         WHERE group_name = ? ORDER BY member_id`,
      )
      .safeIntegers(true),
    removeMember: db.prepare<[string, string, string]>(
      `DELETE FROM ${members} WHERE group_name = ? AND member_id = ? AND incarnation = ?`,
    ),
    putMember: db.prepare<[string, string, string, number, number, ...Owner]>(
      `INSERT INTO ${members} (group_name, member_id, incarnation, ttl_ms, expires_at, pid, pid_start, pid_scope)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (group_name, member_id) DO UPDATE SET incarnation = excluded.incarnation,
         ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at, pid = excluded.pid,
         pid_start = excluded.pid_start, pid_scope = excluded.pid_scope`,
    ),
    // A member that has already expired is never brought back: others have seen it leave.
    heartbeat: db.prepare<[number, string, string, string, number]>(
      `UPDATE ${members} SET expires_at = ?
       WHERE group_name = ? AND member_id = ? AND incarnation = ? AND expires_at > ?`,
    ),
  };
}
