/**
 * The host database on PostgreSQL: the same tables as on SQLite, in a schema of the run's own. A claim
 * is one `UPDATE` over a `FOR UPDATE SKIP LOCKED` pick, so workers never wait on each other's rows; a
 * commit locks the workflow's row, checks the owner, records the step and advances it, in one transaction.
 */
import type pg from 'pg';
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

/** A plain identifier, safe to quote and paste into SQL. */
function checkSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(
      `Expected a schema name of lowercase letters, digits and _, got ${JSON.stringify(schema)}`,
    );
  }
  return `"${schema}"`;
}

const toNumber = (value: unknown): number => Number(value);

/** Runs `work` in one transaction on a client of `pool`, rolled back when it throws. */
export async function pgTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client has no pool listener: without ours, a dropped connection crashes the process.
  const onError = (error: Error): void => void (broken = error);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((rollback: Error) => (broken = rollback));
    throw error;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/** The host database in one PostgreSQL schema. */
export class PostgresHostDb implements HostDb {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #owned: boolean;
  #closed = false;

  /**
   * @param pool - the pool to use; closed by `close()` when `owned`.
   * @param schema - the run's schema: the host tables live in it (graceful-drain's too).
   */
  constructor(pool: pg.Pool, schema: string, owned = true) {
    this.#pool = pool;
    this.#s = checkSchemaName(schema);
    this.#owned = owned;
  }

  /** The pool, for graceful-drain's `PostgresWorkflowStore({ pool })`: the host owns it. */
  get pool(): pg.Pool {
    return this.#pool;
  }

  async createSchema(): Promise<void> {
    const s = this.#s;
    await this.#pool.query(`
      CREATE SCHEMA IF NOT EXISTS ${s};
      CREATE TABLE IF NOT EXISTS ${s}.workflows (
        id text COLLATE "C" PRIMARY KEY,
        status text NOT NULL,
        step integer NOT NULL DEFAULT 0,
        steps integer NOT NULL,
        owner text,
        member text,
        lease_until bigint,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      );
      CREATE INDEX IF NOT EXISTS workflows_runnable ON ${s}.workflows (status, updated_at);
      CREATE INDEX IF NOT EXISTS workflows_member ON ${s}.workflows (member, id);
      -- The member that drives the workflow: the worker id of the owner (worker-2#17 -> worker-2),
      -- whoever writes the owner; graceful-drain's store reads it with ownerColumn 'member'.
      CREATE OR REPLACE FUNCTION ${s}.keep_member() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.member := CASE WHEN NEW.owner IS NULL THEN NULL ELSE split_part(NEW.owner, '#', 1) END;
        RETURN NEW;
      END $$;
      DROP TRIGGER IF EXISTS workflows_member ON ${s}.workflows;
      CREATE TRIGGER workflows_member BEFORE INSERT OR UPDATE OF owner ON ${s}.workflows
        FOR EACH ROW EXECUTE FUNCTION ${s}.keep_member();
      CREATE TABLE IF NOT EXISTS ${s}.step_log (
        seq bigserial PRIMARY KEY,
        workflow_id text NOT NULL,
        step integer NOT NULL,
        worker text NOT NULL,
        claim text NOT NULL,
        started_at bigint NOT NULL,
        finished_at bigint NOT NULL
      );
      CREATE TABLE IF NOT EXISTS ${s}.status_log (
        seq bigserial PRIMARY KEY,
        workflow_id text NOT NULL,
        from_status text NOT NULL,
        to_status text NOT NULL,
        step integer NOT NULL,
        at bigint NOT NULL
      );
      CREATE TABLE IF NOT EXISTS ${s}.user_pauses (
        workflow_id text PRIMARY KEY,
        step integer NOT NULL,
        status_seq bigint NOT NULL,
        paused_at bigint NOT NULL,
        claim text
      );
      -- Every status change, whoever makes it (the engine, graceful-drain's store, a user), is audited.
      CREATE OR REPLACE FUNCTION ${s}.audit_status() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ${s}.status_log (workflow_id, from_status, to_status, step, at)
        VALUES (NEW.id, OLD.status, NEW.status, NEW.step,
                (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
        RETURN NEW;
      END $$;
      DROP TRIGGER IF EXISTS workflows_status_audit ON ${s}.workflows;
      CREATE TRIGGER workflows_status_audit AFTER UPDATE OF status ON ${s}.workflows
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION ${s}.audit_status();
    `);
  }

  async seed(
    workflows: readonly { readonly id: string; readonly steps: number }[],
    at: number,
  ): Promise<void> {
    await this.#pool.query(
      `INSERT INTO ${this.#s}.workflows (id, status, step, steps, created_at, updated_at)
       SELECT id, $1, 0, steps, $2, $2 + ord - 1
       FROM unnest($3::text[], $4::int[]) WITH ORDINALITY AS w(id, steps, ord)`,
      [STATUS.running, at, workflows.map((w) => w.id), workflows.map((w) => w.steps)],
    );
  }

  async claim(owner: string, leaseMs: number, at: number): Promise<Claim | undefined> {
    const s = this.#s;
    const { rows } = await this.#pool.query<{ id: string; step: number; steps: number }>(
      `UPDATE ${s}.workflows SET owner = $1, lease_until = $2
       WHERE id = (SELECT id FROM ${s}.workflows
                   WHERE status = $3 AND (owner IS NULL OR lease_until < $4)
                   ORDER BY updated_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         AND status = $3 AND (owner IS NULL OR lease_until < $4)
       RETURNING id, step, steps`,
      [owner, at + leaseMs, STATUS.running, at],
    );
    const row = rows[0];
    return row === undefined ? undefined : { ...row, owner, claimedAt: at };
  }

  async take(owner: string, leaseMs: number, at: number): Promise<Claim | undefined> {
    const s = this.#s;
    const { rows } = await this.#pool.query<{ id: string; step: number; steps: number }>(
      `UPDATE ${s}.workflows SET owner = $1, lease_until = $2
       WHERE id = (SELECT id FROM ${s}.workflows WHERE status = $3 AND owner IS NULL
                   ORDER BY updated_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         AND status = $3 AND owner IS NULL
       RETURNING id, step, steps`,
      [owner, at + leaseMs, STATUS.running],
    );
    const row = rows[0];
    return row === undefined ? undefined : { ...row, owner, claimedAt: at };
  }

  async commit(
    claim: Claim,
    worker: string,
    startedAt: number,
    at: number,
    next?: NextStep,
  ): Promise<CommitOutcome> {
    const s = this.#s;
    return pgTransaction(this.#pool, async (client) => {
      const { rows } = await client.query<WorkflowRow>(
        `SELECT id, status, step, steps, owner FROM ${s}.workflows WHERE id = $1 FOR UPDATE`,
        [claim.id],
      );
      const row = rows[0];
      if (row === undefined || row.owner !== claim.owner || row.step !== claim.step) return 'lost';
      await client.query(
        `INSERT INTO ${s}.step_log (workflow_id, step, worker, claim, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [claim.id, claim.step, worker, claim.owner, startedAt, at],
      );
      const after = afterStep(row, at, next);
      await client.query(
        `UPDATE ${s}.workflows SET step = $1, status = $2, owner = $3, lease_until = $4, updated_at = $5
         WHERE id = $6`,
        [after.step, after.status, after.owner, after.leaseUntil, at, claim.id],
      );
      return after.outcome;
    });
  }

  async release(claim: Claim, at: number): Promise<boolean> {
    const result = await this.#pool.query(
      `UPDATE ${this.#s}.workflows SET owner = NULL, lease_until = NULL, updated_at = $1
       WHERE id = $2 AND owner = $3`,
      [at, claim.id, claim.owner],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async completePauses(at: number): Promise<number> {
    const result = await this.#pool.query(
      `UPDATE ${this.#s}.workflows SET status = $1, owner = NULL, lease_until = NULL, updated_at = $2
       WHERE status = $3 AND (owner IS NULL OR lease_until < $2)`,
      [STATUS.paused, at, STATUS.pausing],
    );
    return result.rowCount ?? 0;
  }

  async pauseCandidates(at: number): Promise<WorkflowRow[]> {
    const { rows } = await this.#pool.query<WorkflowRow>(
      `SELECT id, status, step, steps, CASE WHEN lease_until < $2 THEN NULL ELSE owner END AS owner
       FROM ${this.#s}.workflows
       WHERE status = $1 AND (step + 1 < steps OR owner IS NULL OR lease_until < $2) ORDER BY id`,
      [STATUS.running, at],
    );
    return rows;
  }

  async userPause(id: string, at: number): Promise<UserPauseRow | undefined> {
    const s = this.#s;
    return pgTransaction(this.#pool, async (client) => {
      const { rows } = await client.query<{
        status: string;
        step: number;
        owner: string | null;
        lease: string | null;
      }>(`SELECT status, step, owner, lease_until AS lease FROM ${s}.workflows WHERE id = $1 FOR UPDATE`, [
        id,
      ]);
      const row = rows[0];
      if (row?.status !== STATUS.running) return undefined;
      const claim = row.owner !== null && toNumber(row.lease ?? 0) >= at ? row.owner : null;
      // Paused at once: the owner of a lapsed claim goes too (a paused workflow has none).
      await client.query(
        claim === null
          ? `UPDATE ${s}.workflows SET status = $1, updated_at = $2, owner = NULL, lease_until = NULL WHERE id = $3`
          : `UPDATE ${s}.workflows SET status = $1, updated_at = $2 WHERE id = $3`,
        [claim === null ? STATUS.paused : STATUS.pausing, at, id],
      );
      const seq = await client.query<{ seq: string }>(
        `SELECT max(seq) AS seq FROM ${s}.status_log WHERE workflow_id = $1`,
        [id],
      );
      const statusSeq = toNumber(seq.rows[0]?.seq);
      await client.query(
        `INSERT INTO ${s}.user_pauses (workflow_id, step, status_seq, paused_at, claim) VALUES ($1, $2, $3, $4, $5)`,
        [id, row.step, statusSeq, at, claim],
      );
      return { workflowId: id, step: row.step, statusSeq, pausedAt: at, claim };
    });
  }

  async counts(at: number): Promise<Counts> {
    const { rows } = await this.#pool.query<Record<keyof Counts, string>>(
      `SELECT count(*) AS total,
         count(*) FILTER (WHERE status = $1) AS running,
         count(*) FILTER (WHERE status = $1 AND owner IS NOT NULL AND lease_until >= $2) AS "inFlight",
         count(*) FILTER (WHERE status = $3) AS pausing,
         count(*) FILTER (WHERE status = $4) AS paused,
         count(*) FILTER (WHERE status = $5) AS succeeded,
         coalesce(sum(step), 0) AS "stepsDone",
         coalesce(sum(steps), 0) AS "stepsTotal"
       FROM ${this.#s}.workflows`,
      [STATUS.running, at, STATUS.pausing, STATUS.paused, STATUS.succeeded],
    );
    const row = rows[0] as Record<keyof Counts, string>;
    return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, toNumber(v)])) as unknown as Counts;
  }

  async held(): Promise<WorkflowRow[]> {
    const { rows } = await this.#pool.query<WorkflowRow>(
      `SELECT id, status, step, steps, owner FROM ${this.#s}.workflows
       WHERE status = $1 AND owner IS NOT NULL ORDER BY id`,
      [STATUS.running],
    );
    return rows;
  }

  async snapshot(): Promise<HostSnapshot> {
    const s = this.#s;
    // One transaction, REPEATABLE READ: every table as of the same moment.
    return pgTransaction(this.#pool, async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const workflows = await client.query<WorkflowRow>(
        `SELECT id, status, step, steps, owner FROM ${s}.workflows ORDER BY id`,
      );
      const stepLog = await client.query(
        `SELECT seq, workflow_id AS "workflowId", step, worker, claim, started_at AS "startedAt",
           finished_at AS "finishedAt" FROM ${s}.step_log ORDER BY seq`,
      );
      const statusLog = await client.query(
        `SELECT seq, workflow_id AS "workflowId", from_status AS "from", to_status AS "to", step, at
         FROM ${s}.status_log ORDER BY seq`,
      );
      const userPauses = await client.query(
        `SELECT workflow_id AS "workflowId", step, status_seq AS "statusSeq", paused_at AS "pausedAt", claim
         FROM ${s}.user_pauses ORDER BY workflow_id`,
      );
      return {
        workflows: workflows.rows,
        stepLog: stepLog.rows.map((r: Record<string, unknown>): StepLogRow => ({
          seq: toNumber(r.seq),
          workflowId: String(r.workflowId),
          step: toNumber(r.step),
          worker: String(r.worker),
          claim: String(r.claim),
          startedAt: toNumber(r.startedAt),
          finishedAt: toNumber(r.finishedAt),
        })),
        statusLog: statusLog.rows.map((r: Record<string, unknown>): StatusLogRow => ({
          seq: toNumber(r.seq),
          workflowId: String(r.workflowId),
          from: String(r.from),
          to: String(r.to),
          step: toNumber(r.step),
          at: toNumber(r.at),
        })),
        userPauses: userPauses.rows.map((r: Record<string, unknown>): UserPauseRow => ({
          workflowId: String(r.workflowId),
          step: toNumber(r.step),
          statusSeq: toNumber(r.statusSeq),
          pausedAt: toNumber(r.pausedAt),
          claim: r.claim === null ? null : String(r.claim),
        })),
      };
    });
  }

  /** Drops the run's schema (the host tables and graceful-drain's), for the orchestrator's clean-up. */
  async dropSchema(): Promise<void> {
    await this.#pool.query(`DROP SCHEMA IF EXISTS ${this.#s} CASCADE`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) await this.#pool.end();
  }
}
