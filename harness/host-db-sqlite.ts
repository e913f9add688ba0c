/**
 * The host database on SQLite, shared by every member process through one file in WAL mode, opened
 * with graceful-drain's choice of driver (`openSqliteDatabase()`: `node:sqlite` where the runtime has
 * it, better-sqlite3 otherwise). Writes are `BEGIN IMMEDIATE` transactions under a short busy timeout;
 * while another process holds the write lock they are retried asynchronously, so the event loop (and
 * the coordinator's renewals) never wait long.
 */
import { openSqliteDatabase, type SqliteDatabase, type SqliteStatement } from 'graceful-drain/sqlite';
import {
  afterStep,
  type Claim,
  type CommitOutcome,
  type Counts,
  type HostDb,
  type NextStep,
  type HostSnapshot,
  STATUS,
  type StatusLogRow,
  type StepLogRow,
  type UserPauseRow,
  type WorkflowRow,
} from './host-db.js';
import { sqliteTransaction } from './sqlite.js';

/** How long one statement may block on another process's write lock before an asynchronous retry. */
const BUSY_MS = 25;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS workflows (
  id TEXT PRIMARY KEY NOT NULL,
  status TEXT NOT NULL,
  step INTEGER NOT NULL DEFAULT 0,
  steps INTEGER NOT NULL,
  owner TEXT,
  -- The member that drives the workflow: the worker id of \`owner\` (\`worker-2#17\` -> \`worker-2\`), kept by
  -- the trigger below; graceful-drain's store reads it with \`ownerColumn: 'member'\` (the demo's --crash-peer).
  member TEXT,
  lease_until INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS workflows_runnable ON workflows (status, updated_at);
CREATE INDEX IF NOT EXISTS workflows_member ON workflows (member, id);
-- Whoever writes \`owner\` (a claim, a commit that keeps the workflow, a release, a pause), \`member\` follows.
CREATE TRIGGER IF NOT EXISTS workflows_member AFTER UPDATE OF owner ON workflows
WHEN OLD.owner IS NOT NEW.owner
BEGIN
  UPDATE workflows SET member = CASE
      WHEN NEW.owner IS NULL THEN NULL
      WHEN instr(NEW.owner, '#') > 0 THEN substr(NEW.owner, 1, instr(NEW.owner, '#') - 1)
      ELSE NEW.owner END
    WHERE id = NEW.id;
END;
CREATE TABLE IF NOT EXISTS step_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  worker TEXT NOT NULL,
  claim TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS status_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id TEXT NOT NULL,
  from_status TEXT NOT NULL,
  to_status TEXT NOT NULL,
  step INTEGER NOT NULL,
  at INTEGER NOT NULL
);
-- Every status change, whoever makes it (the engine, graceful-drain's store, a user), is audited.
CREATE TRIGGER IF NOT EXISTS workflows_status_audit AFTER UPDATE OF status ON workflows
WHEN OLD.status IS NOT NEW.status
BEGIN
  INSERT INTO status_log (workflow_id, from_status, to_status, step, at)
  VALUES (NEW.id, OLD.status, NEW.status, NEW.step, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
CREATE TABLE IF NOT EXISTS user_pauses (
  workflow_id TEXT PRIMARY KEY NOT NULL,
  step INTEGER NOT NULL,
  status_seq INTEGER NOT NULL,
  paused_at INTEGER NOT NULL,
  claim TEXT
);
`;

/** The host database on one SQLite file. */
export class SqliteHostDb implements HostDb {
  readonly kind = 'sqlite';
  readonly #db: SqliteDatabase;
  readonly #statements = new Map<string, SqliteStatement>();
  #closed = false;

  /** Opens (and creates) the file; WAL mode so that readers never wait for writers. */
  static async open(path: string): Promise<SqliteHostDb> {
    const db = await openSqliteDatabase(path, { timeout: BUSY_MS });
    db.pragma('journal_mode = WAL');
    return new SqliteHostDb(db);
  }

  private constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** The handle, for graceful-drain's `SqliteWorkflowStore({ database })`: the host owns it. */
  get database(): SqliteDatabase {
    return this.#db;
  }

  /** A prepared statement, prepared once. */
  #sql(text: string): SqliteStatement {
    let statement = this.#statements.get(text);
    if (statement === undefined) {
      statement = this.#db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  /** Runs `work` as one `BEGIN IMMEDIATE` transaction, retrying asynchronously while the file is busy. */
  #write<T>(work: () => T): Promise<T> {
    return sqliteTransaction(this.#db, work, 'immediate', () => this.#closed);
  }

  /** Runs `work` as one read transaction (one consistent snapshot). */
  #read<T>(work: () => T): Promise<T> {
    return sqliteTransaction(this.#db, work, 'deferred', () => this.#closed);
  }

  async createSchema(): Promise<void> {
    await this.#write(() => this.#db.exec(SCHEMA));
  }

  async seed(
    workflows: readonly { readonly id: string; readonly steps: number }[],
    at: number,
  ): Promise<void> {
    const insert = this.#sql(
      `INSERT INTO workflows (id, status, step, steps, created_at, updated_at) VALUES (?, ?, 0, ?, ?, ?)`,
    );
    await this.#write(() => {
      // Staggered updated_at: the first claims go in id order.
      workflows.forEach((w, i) => insert.run(w.id, STATUS.running, w.steps, at, at + i));
    });
  }

  async claim(owner: string, leaseMs: number, at: number): Promise<Claim | undefined> {
    const row = await this.#write(
      () =>
        this.#sql(
          `UPDATE workflows SET owner = ?, lease_until = ?
             WHERE id = (SELECT id FROM workflows
                         WHERE status = ? AND (owner IS NULL OR lease_until < ?)
                         ORDER BY updated_at, id LIMIT 1)
             RETURNING id, step, steps`,
        ).get(owner, at + leaseMs, STATUS.running, at) as
          { id: string; step: number; steps: number } | undefined,
    );
    return row === undefined ? undefined : { ...row, owner, claimedAt: at };
  }

  async take(owner: string, leaseMs: number, at: number): Promise<Claim | undefined> {
    const row = await this.#write(
      () =>
        this.#sql(
          `UPDATE workflows SET owner = ?, lease_until = ?
             WHERE id = (SELECT id FROM workflows WHERE status = ? AND owner IS NULL
                         ORDER BY updated_at, id LIMIT 1)
             RETURNING id, step, steps`,
        ).get(owner, at + leaseMs, STATUS.running) as { id: string; step: number; steps: number } | undefined,
    );
    return row === undefined ? undefined : { ...row, owner, claimedAt: at };
  }

  async commit(
    claim: Claim,
    worker: string,
    startedAt: number,
    at: number,
    next?: NextStep,
  ): Promise<CommitOutcome> {
    return this.#write(() => {
      const row = this.#sql('SELECT status, step, steps, owner FROM workflows WHERE id = ?').get(claim.id) as
        WorkflowRow | undefined;
      if (row === undefined || row.owner !== claim.owner || row.step !== claim.step) return 'lost';
      this.#sql(
        `INSERT INTO step_log (workflow_id, step, worker, claim, started_at, finished_at)
           VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(claim.id, claim.step, worker, claim.owner, startedAt, at);
      const after = afterStep(row, at, next);
      this.#sql(
        `UPDATE workflows SET step = ?, status = ?, owner = ?, lease_until = ?, updated_at = ?
           WHERE id = ?`,
      ).run(after.step, after.status, after.owner, after.leaseUntil, at, claim.id);
      return after.outcome;
    });
  }

  async release(claim: Claim, at: number): Promise<boolean> {
    const changes = await this.#write(
      () =>
        this.#sql(
          'UPDATE workflows SET owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND owner = ?',
        ).run(at, claim.id, claim.owner).changes,
    );
    return changes > 0;
  }

  async completePauses(at: number): Promise<number> {
    return this.#write(
      () =>
        this.#sql(
          `UPDATE workflows SET status = ?, owner = NULL, lease_until = NULL, updated_at = ?
             WHERE status = ? AND (owner IS NULL OR lease_until < ?)`,
        ).run(STATUS.paused, at, STATUS.pausing, at).changes,
    );
  }

  async pauseCandidates(at: number): Promise<WorkflowRow[]> {
    return this.#read(
      () =>
        this.#sql(
          `SELECT id, status, step, steps, CASE WHEN lease_until < ? THEN NULL ELSE owner END AS owner
           FROM workflows
           WHERE status = ? AND (step + 1 < steps OR owner IS NULL OR lease_until < ?) ORDER BY id`,
        ).all(at, STATUS.running, at) as WorkflowRow[],
    );
  }

  async userPause(id: string, at: number): Promise<UserPauseRow | undefined> {
    return this.#write(() => {
      const row = this.#sql(
        'SELECT status, step, owner, lease_until AS leaseUntil FROM workflows WHERE id = ?',
      ).get(id) as
        { status: string; step: number; owner: string | null; leaseUntil: number | null } | undefined;
      if (row?.status !== STATUS.running) return undefined;
      const claim = row.owner !== null && (row.leaseUntil ?? 0) >= at ? row.owner : null;
      if (claim === null) {
        this.#sql(
          'UPDATE workflows SET status = ?, owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?',
        ).run(STATUS.paused, at, id);
      } else {
        this.#sql('UPDATE workflows SET status = ?, updated_at = ? WHERE id = ?').run(STATUS.pausing, at, id);
      }
      const statusSeq = this.#sql('SELECT max(seq) FROM status_log WHERE workflow_id = ?')
        .pluck()
        .get(id) as number;
      this.#sql(
        'INSERT INTO user_pauses (workflow_id, step, status_seq, paused_at, claim) VALUES (?, ?, ?, ?, ?)',
      ).run(id, row.step, statusSeq, at, claim);
      return { workflowId: id, step: row.step, statusSeq, pausedAt: at, claim };
    });
  }

  async counts(at: number): Promise<Counts> {
    return this.#read(() => {
      const c = this.#sql(
        `SELECT count(*) AS total,
             coalesce(sum(status = ?), 0) AS running,
             coalesce(sum(status = ? AND owner IS NOT NULL AND lease_until >= ?), 0) AS inFlight,
             coalesce(sum(status = ?), 0) AS pausing,
             coalesce(sum(status = ?), 0) AS paused,
             coalesce(sum(status = ?), 0) AS succeeded,
             coalesce(sum(step), 0) AS stepsDone,
             coalesce(sum(steps), 0) AS stepsTotal
           FROM workflows`,
      ).get(STATUS.running, STATUS.running, at, STATUS.pausing, STATUS.paused, STATUS.succeeded) as Counts;
      return c;
    });
  }

  async held(): Promise<WorkflowRow[]> {
    return this.#read(
      () =>
        this.#sql(
          'SELECT id, status, step, steps, owner FROM workflows WHERE status = ? AND owner IS NOT NULL ORDER BY id',
        ).all(STATUS.running) as WorkflowRow[],
    );
  }

  async snapshot(): Promise<HostSnapshot> {
    return this.#read(() => ({
      workflows: this.#sql(
        'SELECT id, status, step, steps, owner FROM workflows ORDER BY id',
      ).all() as WorkflowRow[],
      stepLog: this.#sql(
        `SELECT seq, workflow_id AS workflowId, step, worker, claim, started_at AS startedAt,
             finished_at AS finishedAt FROM step_log ORDER BY seq`,
      ).all() as StepLogRow[],
      statusLog: this.#sql(
        `SELECT seq, workflow_id AS workflowId, from_status AS "from", to_status AS "to", step, at
           FROM status_log ORDER BY seq`,
      ).all() as StatusLogRow[],
      userPauses: this.#sql(
        `SELECT workflow_id AS workflowId, step, status_seq AS statusSeq, paused_at AS pausedAt, claim
           FROM user_pauses ORDER BY workflow_id`,
      ).all() as UserPauseRow[],
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
