/**
 * The simulated user: pauses, resumes and pauses again workflows in the host's tables, as a host's own
 * API would, racing the members' parks and resumes (the `user-...` faults of faults.ts).
 *
 * - **Pause** a running workflow: `paused` at once, or `pausing` when a step is in flight (the engine
 *   completes the pause after it). Only one with no claim, or a live claim short of its last step (the
 *   demo engine's own races with a pause, finding 4 of docs/reliability.md, stay out of the run).
 * - **Resume** a paused or pausing workflow, whether the user paused it or a shutdown parked it: its
 *   status goes back to `running` (with no owner when no step is in flight: runnable, whoever held it
 *   before), and the store's trigger drops the park mark (the contract: a mark
 *   belongs to the pause that made it). Then, often, **pause it again**: the library must never resume
 *   that pause, mark or no mark.
 * - **Pause a parked workflow**: the status does not change (it is paused already), so the host's pause
 *   path tells the store, `notePaused([id])`; the library must never resume it either.
 *
 * Every pause is recorded in the history once it took effect (`user-pause`), every resume too
 * (`user-resume`), and kept in the host's `user_pauses` table while it lasts (a resume deletes the row,
 * a new pause writes it again), which the final checks read. The user's writes are its own SQL on the
 * host's tables, through the harness's connection (the demo's `HostDb` knows only the first pause).
 */
import type { NotePausedOutcome, WorkflowStore } from 'graceful-drain';
import type pg from 'pg';
import { listAllParked } from '../../harness/backend.js';
import { type HostDb, STATUS } from '../../harness/host-db.js';
import { type PostgresHostDb, pgTransaction } from '../../harness/host-db-postgres.js';
import type { SqliteHostDb } from '../../harness/host-db-sqlite.js';
import type { Random } from '../../harness/random.js';
import { sqliteTransaction } from '../../harness/sqlite.js';
import { errorRecord, type HarnessEvent, type Recorder } from '../history.js';

/** A workflow as the user sees it. */
interface Row {
  readonly id: string;
  readonly status: string;
  readonly step: number;
  readonly steps: number;
  readonly owner: string | null;
  readonly leaseUntil: number | null;
  readonly userPaused: boolean;
}

/** What a pause took: the step, the claim of the step in flight (or null), its status-log row. */
interface Paused {
  readonly step: number;
  readonly claim: string | null;
  readonly statusSeq: number;
}

/** What a resume found: the step, the status it left, its status-log row, whether the user paused it. */
interface Resumed {
  readonly step: number;
  readonly from: string;
  readonly statusSeq: number;
  readonly userPaused: boolean;
}

/** The user's writes on the host's tables, one transaction each. A string says why nothing was done. */
interface UserSql {
  rows(): Promise<Row[]>;
  pause(id: string, at: number): Promise<Paused | string>;
  resume(id: string, at: number): Promise<Resumed | string>;
  /** After `notePaused`: records the user's pause of a workflow still paused or pausing. */
  notePausedRow(id: string, at: number): Promise<Paused | string>;
}

const PAUSED = new Set<string>([STATUS.paused, STATUS.pausing]);

/**
 * The claim a pause of a parked workflow waits for: none when it is `paused`. When it is `pausing`,
 * the step in flight may still be recorded (and complete the pause), or its claim was given back and
 * the host's sweep completes the pause: either way the move to `paused` that follows belongs to the
 * pause, and the final checks must know it (a claim that is no step's when there is none).
 */
function pausingClaim(row: { status: string; owner: string | null }): string | null {
  if (row.status !== STATUS.pausing) return null;
  return row.owner ?? 'none (pausing)';
}

/** Why a running workflow cannot be paused by the user now, or `undefined` when it can. */
function cannotPause(
  row: { status: string; step: number; steps: number; owner: string | null; leaseUntil: number | null },
  at: number,
): string | undefined {
  if (row.status !== STATUS.running) return `it is ${row.status}`;
  if (row.owner === null) return undefined;
  // A lapsed claim may still commit (the demo engine checks the owner, not the lease), and a last step
  // in flight finishes the workflow rather than pause it: both the example's races, not the library's.
  if ((row.leaseUntil ?? 0) < at) return 'a lapsed claim may still commit';
  if (row.step + 1 >= row.steps) return 'its last step is in flight';
  return undefined;
}

function sqliteUser(db: SqliteHostDb): UserSql {
  const database = db.database;
  // One `BEGIN IMMEDIATE` transaction, retried asynchronously while another connection writes.
  const write = <T>(work: () => T): Promise<T> => sqliteTransaction(database, work);
  const row = (id: string) =>
    database
      .prepare(
        `SELECT w.id, w.status, w.step, w.steps, w.owner, w.lease_until AS leaseUntil,
                (u.workflow_id IS NOT NULL) AS userPaused
           FROM workflows w LEFT JOIN user_pauses u ON u.workflow_id = w.id WHERE w.id = ?`,
      )
      .get(id) as (Omit<Row, 'userPaused'> & { userPaused: number }) | undefined;
  const statusSeq = (id: string): number =>
    database.prepare('SELECT max(seq) FROM status_log WHERE workflow_id = ?').pluck().get(id) as number;
  const remember = (id: string, p: Paused, at: number): void => {
    database
      .prepare(
        'INSERT OR REPLACE INTO user_pauses (workflow_id, step, status_seq, paused_at, claim) VALUES (?, ?, ?, ?, ?)',
      )
      .run(id, p.step, p.statusSeq, at, p.claim);
  };
  return {
    rows: async () =>
      (
        database
          .prepare(
            `SELECT w.id, w.status, w.step, w.steps, w.owner, w.lease_until AS leaseUntil,
                    (u.workflow_id IS NOT NULL) AS userPaused
               FROM workflows w LEFT JOIN user_pauses u ON u.workflow_id = w.id
              WHERE w.status IN (?, ?, ?) ORDER BY w.id`,
          )
          .all(STATUS.running, STATUS.pausing, STATUS.paused) as (Omit<Row, 'userPaused'> & {
          userPaused: number;
        })[]
      ).map((r) => ({ ...r, userPaused: r.userPaused !== 0 })),
    pause: (id, at) =>
      write(() => {
        const r = row(id);
        if (r === undefined) return 'unknown';
        const why = cannotPause(r, at);
        if (why !== undefined) return why;
        const claim = r.owner;
        database
          .prepare('UPDATE workflows SET status = ?, updated_at = ? WHERE id = ?')
          .run(claim === null ? STATUS.paused : STATUS.pausing, at, id);
        const paused = { step: r.step, claim, statusSeq: statusSeq(id) };
        remember(id, paused, at);
        return paused;
      }),
    resume: (id, at) =>
      write(() => {
        const r = row(id);
        if (r === undefined) return 'unknown';
        if (!PAUSED.has(r.status)) return `it is ${r.status}`;
        // The host's resume makes it runnable: no step in flight (a lapsed lease), no owner.
        database
          .prepare(
            `UPDATE workflows SET status = ?, updated_at = ?,
               owner = CASE WHEN coalesce(lease_until, 0) < ? THEN NULL ELSE owner END,
               lease_until = CASE WHEN coalesce(lease_until, 0) < ? THEN NULL ELSE lease_until END
             WHERE id = ?`,
          )
          .run(STATUS.running, at, at, at, id);
        database.prepare('DELETE FROM user_pauses WHERE workflow_id = ?').run(id);
        return { step: r.step, from: r.status, statusSeq: statusSeq(id), userPaused: r.userPaused !== 0 };
      }),
    notePausedRow: (id, at) =>
      write(() => {
        const r = row(id);
        if (r === undefined) return 'unknown';
        if (!PAUSED.has(r.status)) return `it is ${r.status}`;
        if (r.userPaused !== 0) return 'paused by the user already';
        // Pausing: the step in flight may still be recorded, and complete the pause.
        const paused = {
          step: r.step,
          claim: pausingClaim(r),
          statusSeq: statusSeq(id),
        };
        remember(id, paused, at);
        return paused;
      }),
  };
}

function postgresUser(db: PostgresHostDb, schema: string): UserSql {
  const pool = db.pool;
  const s = `"${schema}"`;
  type Client = pg.PoolClient;
  const transaction = <T>(work: (client: Client) => Promise<T>): Promise<T> => pgTransaction(pool, work);
  const toRow = (r: Record<string, unknown>): Row => ({
    id: String(r.id),
    status: String(r.status),
    step: Number(r.step),
    steps: Number(r.steps),
    owner: r.owner === null ? null : String(r.owner),
    leaseUntil: r.lease_until === null ? null : Number(r.lease_until),
    userPaused: r.user_paused === true,
  });
  const select = `SELECT w.id, w.status, w.step, w.steps, w.owner, w.lease_until, (u.workflow_id IS NOT NULL) AS user_paused
                    FROM ${s}.workflows w LEFT JOIN ${s}.user_pauses u ON u.workflow_id = w.id`;
  const row = async (client: Client, id: string): Promise<Row | undefined> => {
    const { rows } = await client.query(`${select} WHERE w.id = $1 FOR UPDATE OF w`, [id]);
    return rows[0] === undefined ? undefined : toRow(rows[0] as Record<string, unknown>);
  };
  const statusSeq = async (client: Client, id: string): Promise<number> => {
    const { rows } = await client.query<{ seq: string }>(
      `SELECT max(seq) AS seq FROM ${s}.status_log WHERE workflow_id = $1`,
      [id],
    );
    return Number(rows[0]?.seq);
  };
  const remember = async (client: Client, id: string, p: Paused, at: number): Promise<void> => {
    await client.query(
      `INSERT INTO ${s}.user_pauses (workflow_id, step, status_seq, paused_at, claim) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (workflow_id) DO UPDATE SET step = EXCLUDED.step, status_seq = EXCLUDED.status_seq,
         paused_at = EXCLUDED.paused_at, claim = EXCLUDED.claim`,
      [id, p.step, p.statusSeq, at, p.claim],
    );
  };
  const setStatus = (client: Client, id: string, status: string, at: number) =>
    client.query(`UPDATE ${s}.workflows SET status = $1, updated_at = $2 WHERE id = $3`, [status, at, id]);
  return {
    rows: async () => {
      const { rows } = await pool.query(`${select} WHERE w.status IN ($1, $2, $3) ORDER BY w.id`, [
        STATUS.running,
        STATUS.pausing,
        STATUS.paused,
      ]);
      return rows.map((r: Record<string, unknown>) => toRow(r));
    },
    pause: (id, at) =>
      transaction(async (client) => {
        const r = await row(client, id);
        if (r === undefined) return 'unknown';
        const why = cannotPause(r, at);
        if (why !== undefined) return why;
        await setStatus(client, id, r.owner === null ? STATUS.paused : STATUS.pausing, at);
        const paused = { step: r.step, claim: r.owner, statusSeq: await statusSeq(client, id) };
        await remember(client, id, paused, at);
        return paused;
      }),
    resume: (id, at) =>
      transaction(async (client) => {
        const r = await row(client, id);
        if (r === undefined) return 'unknown';
        if (!PAUSED.has(r.status)) return `it is ${r.status}`;
        // The host's resume makes it runnable: no step in flight (a lapsed lease), no owner.
        await client.query(
          `UPDATE ${s}.workflows SET status = $1, updated_at = $2,
             owner = CASE WHEN coalesce(lease_until, 0) < $2 THEN NULL ELSE owner END,
             lease_until = CASE WHEN coalesce(lease_until, 0) < $2 THEN NULL ELSE lease_until END
           WHERE id = $3`,
          [STATUS.running, at, id],
        );
        await client.query(`DELETE FROM ${s}.user_pauses WHERE workflow_id = $1`, [id]);
        return {
          step: r.step,
          from: r.status,
          statusSeq: await statusSeq(client, id),
          userPaused: r.userPaused,
        };
      }),
    notePausedRow: (id, at) =>
      transaction(async (client) => {
        const r = await row(client, id);
        if (r === undefined) return 'unknown';
        if (!PAUSED.has(r.status)) return `it is ${r.status}`;
        if (r.userPaused) return 'paused by the user already';
        const paused = {
          step: r.step,
          claim: pausingClaim(r),
          statusSeq: await statusSeq(client, id),
        };
        await remember(client, id, paused, at);
        return paused;
      }),
  };
}

/** What the user acts through. */
export interface UserOptions {
  /** The harness's host database (its connection is the user's). */
  readonly db: HostDb;
  /** The PostgreSQL schema of the run (postgres). */
  readonly pgSchema: string;
  /** The harness's store over the host's table: the marks, and `notePaused`. */
  readonly store: WorkflowStore;
  readonly record: Recorder<HarnessEvent>;
  /** Which workflow, and what to do: a stream of its own. */
  readonly random: Random;
  /** At most this many workflows paused by the user at once. */
  readonly maxPaused: number;
}

/** The user faults, by kind. */
export type UserFault =
  | 'user-pause'
  | 'user-resume'
  | 'user-pause-parked'
  | 'user-at-park'
  | 'user-at-resume'
  | 'user-at-cluster-stop';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The simulated user. Every method resolves what it did, in a few words, or `undefined`. */
export class SimulatedUser {
  readonly #o: UserOptions;
  readonly #sql: UserSql;
  /** One action at a time: the history records them in the order they took effect. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: UserOptions) {
    this.#o = options;
    this.#sql =
      options.db.kind === 'sqlite'
        ? sqliteUser(options.db as SqliteHostDb)
        : postgresUser(options.db as PostgresHostDb, options.pgSchema);
  }

  /** Acts as the fault `kind` says, once the user's previous action is done. */
  act(kind: UserFault): Promise<string | undefined> {
    const next = this.#queue.then(() => this.#act(kind));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #act(kind: UserFault): Promise<string | undefined> {
    const r = this.#o.random;
    switch (kind) {
      case 'user-pause':
        return this.#pauseRunning();
      case 'user-resume':
        return this.#resume('any', r() < 0.5);
      case 'user-pause-parked':
        return this.#pauseParked();
      case 'user-at-park':
        return r() < 0.6 ? this.#pauseRunning() : this.#resume('user', r() < 0.5);
      case 'user-at-resume':
        return r() < 0.5 ? this.#pauseParked() : this.#resume('parked', r() < 0.7);
      case 'user-at-cluster-stop': {
        const done: string[] = [];
        for (let i = 0, n = r() < 0.5 ? 1 : 2; i < n; i++) {
          const what = r() < 0.6 ? await this.#resume('parked', true) : await this.#pauseParked();
          if (what !== undefined) done.push(what);
        }
        return done.length === 0 ? undefined : done.join('; ');
      }
    }
  }

  /** Pauses a running workflow, if fewer than the maximum are paused by the user. */
  async #pauseRunning(): Promise<string | undefined> {
    const rows = await this.#sql.rows();
    if (rows.filter((w) => w.userPaused).length >= this.#o.maxPaused) return undefined;
    const candidates = rows.filter(
      (w) => w.status === STATUS.running && w.owner === null && w.step + 1 < w.steps,
    );
    const target = this.#pick(candidates.filter((w) => w.step > 0)) ?? this.#pick(candidates);
    if (target === undefined) return undefined;
    return this.#pause(target.id, 'running');
  }

  /**
   * Resumes a paused workflow: one a shutdown parked (`parked`), one the user paused (`user`), or
   * either (`any`, parked ones first); then, when `again`, pauses it again 0 to 300 ms later.
   */
  async #resume(prefer: 'parked' | 'user' | 'any', again: boolean): Promise<string | undefined> {
    const rows = (await this.#sql.rows()).filter((w) => PAUSED.has(w.status));
    const marked = new Set(await this.#marked());
    const parked = rows.filter((w) => !w.userPaused && marked.has(w.id));
    const user = rows.filter((w) => w.userPaused);
    const target =
      prefer === 'parked'
        ? this.#pick(parked)
        : prefer === 'user'
          ? this.#pick(user)
          : (this.#pick(parked) ?? this.#pick(user));
    if (target === undefined) return undefined;
    const { id } = target;
    const resumed = await this.#sql.resume(id, Date.now());
    if (typeof resumed === 'string') return this.#missed('resume', id, resumed);
    this.#o.record({
      type: 'user-resume',
      id,
      step: resumed.step,
      from: resumed.from,
      marked: marked.has(id),
      userPaused: resumed.userPaused,
      statusSeq: resumed.statusSeq,
    });
    const what = `resumed ${id} (${resumed.userPaused ? 'its own pause' : marked.has(id) ? 'parked' : resumed.from})`;
    if (!again) return what;
    await sleep(Math.floor(this.#o.random() * 300));
    const paused = await this.#pause(id, 're-pause');
    return paused === undefined ? what : `${what}, then ${paused}`;
  }

  /** Pauses a workflow that is parked: `notePaused`, then the user's pause recorded. */
  async #pauseParked(): Promise<string | undefined> {
    const rows = new Map((await this.#sql.rows()).map((w) => [w.id, w]));
    const parked = (await this.#marked()).filter((id) => {
      const w = rows.get(id);
      return w !== undefined && PAUSED.has(w.status) && !w.userPaused;
    });
    const id = this.#pick(parked);
    if (id === undefined) return undefined;
    let mark: NotePausedOutcome | undefined;
    for (let attempt = 0; attempt < 3 && mark === undefined; attempt++) {
      try {
        const [result] = await this.#o.store.notePaused([id], { signal: AbortSignal.timeout(5000) });
        mark = result?.outcome;
      } catch (error) {
        this.#missed('note-paused', id, `notePaused failed: ${errorRecord(error).message}`);
      }
    }
    if (mark === undefined) {
      // The mark may be gone or not: the user gives up and resumes it, which leaves no doubt.
      const resumed = await this.#sql.resume(id, Date.now());
      if (typeof resumed !== 'string') {
        this.#o.record({
          type: 'user-resume',
          id,
          step: resumed.step,
          from: resumed.from,
          marked: true,
          userPaused: false,
          statusSeq: resumed.statusSeq,
        });
      }
      return `gave up pausing ${id} (notePaused failed) and resumed it`;
    }
    const paused = await this.#sql.notePausedRow(id, Date.now());
    if (typeof paused === 'string')
      return this.#missed('pause-parked', id, `${paused} after notePaused (${mark})`);
    this.#o.record({
      type: 'user-pause',
      id,
      step: paused.step,
      claim: paused.claim,
      how: 'parked',
      statusSeq: paused.statusSeq,
      mark,
    });
    return `paused ${id}, parked (notePaused: ${mark})`;
  }

  async #pause(id: string, how: 'running' | 're-pause'): Promise<string | undefined> {
    const paused = await this.#sql.pause(id, Date.now());
    if (typeof paused === 'string') return this.#missed(how === 'running' ? 'pause' : 're-pause', id, paused);
    this.#o.record({
      type: 'user-pause',
      id,
      step: paused.step,
      claim: paused.claim,
      how,
      statusSeq: paused.statusSeq,
    });
    return `${how === 'running' ? 'paused' : 'paused again'} ${id} at step ${paused.step}${paused.claim === null ? '' : ' (a step in flight)'}`;
  }

  /** The ids the store holds a park mark for, paused or pausing. */
  async #marked(): Promise<string[]> {
    return (await listAllParked(this.#o.store)).filter((p) => p.state !== 'other').map((p) => p.id);
  }

  #missed(action: string, id: string, why: string): undefined {
    this.#o.record({ type: 'user-missed', action, id, why });
    return undefined;
  }

  #pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.#o.random() * items.length)];
  }
}
