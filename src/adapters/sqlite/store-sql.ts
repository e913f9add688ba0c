/**
 * The SQL of the workflow store: the host's table (read, and its status column written), the marks
 * table, and the one-row fence table beside it. Every name is a validated identifier, quoted.
 *
 * @internal
 */
import { StaleTokenError } from '../../errors.js';
import { quote, siblingTable } from '../../internal/sql-names.js';
import type { WorkflowStatuses } from '../../internal/statuses.js';
import type { ParkedState, ParkedWorkflow } from '../../workflow-store.js';
import type { SqliteDatabase, SqliteStatement } from './driver.js';
import { checkHostTable, installMarkTriggers } from './mark-trigger.js';
import type { CompiledStoreOptions } from './options.js';

/** Ids per statement: one JSON array (`json_each`), so chunks only bound a statement's temporary data. */
export const CHUNK = 512;

/**
 * Checks the host's table, then creates the marks and fence tables if missing and installs the
 * triggers in one `BEGIN IMMEDIATE` transaction (concurrent set-ups of one file are serialised).
 */
export function setUpStore(db: SqliteDatabase, o: CompiledStoreOptions): StoreStatements {
  const host = checkHostTable(db, o);
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${o.names.marksTable.sql} (
      id TEXT PRIMARY KEY NOT NULL, member_id TEXT NOT NULL, token INTEGER, parked_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${siblingTable(o.names.marksTable, '_fence').sql} (
      id INTEGER PRIMARY KEY CHECK (id = 1), highest INTEGER NOT NULL
    )`);
    installMarkTriggers(db, o, host);
  }).immediate();
  return prepareStatements(db, o);
}

/** One parked row as JSON: id, member, token as text (it may not fit a double), state. */
type ParkedJson = [string, string, string | null, ParkedState];

/** The store's statements on one handle. */
export type StoreStatements = ReturnType<typeof prepareStatements>;

/**
 * The store's statements on one handle; a chunk of ids is bound as one JSON array. Why the
 * status tests read `(status = ?) IS TRUE` and `likelihood(status = ?, 1.0)`, and why unpark counts
 * first: docs/performance.md, "What changed in the SQLite store".
 */
function prepareStatements(db: SqliteDatabase, { names }: CompiledStoreOptions) {
  const host = names.table.sql;
  const id = quote(names.idColumn);
  const status = quote(names.statusColumn);
  const marks = names.marksTable.sql;
  const fence = siblingTable(names.marksTable, '_fence').sql;
  const chunk = '(SELECT value FROM json_each(?))';
  const firstColumns = (sql: string) => db.prepare(sql).pluck().safeIntegers(true);
  const highest = firstColumns(`SELECT highest FROM ${fence} WHERE id = 1`) as SqliteStatement<[], bigint>;
  const raiseHighest = db.prepare<[bigint]>(
    `INSERT INTO ${fence} (id, highest) VALUES (1, ?)
       ON CONFLICT (id) DO UPDATE SET highest = max(highest, excluded.highest)`,
  );
  const activeSql = `SELECT t.${id} FROM ${host} AS t WHERE likelihood(t.${status} = ?, 1.0)`;
  const active = firstColumns(`${activeSql} ORDER BY t.${id} LIMIT ?`);
  const activeAfter = firstColumns(`${activeSql} AND t.${id} > ? ORDER BY t.${id} LIMIT ?`);
  const transitionSql = `UPDATE ${host} AS t SET ${status} = ? WHERE t.${id} IN ${chunk} AND (t.${status} = ?) IS TRUE`;
  const transition = firstColumns(`${transitionSql} RETURNING ${id}`);
  const transitionCount = db.prepare(transitionSql);
  // A mark on a running workflow is stale (a user resumed it without an unpark): parking replaces it.
  const mark = db.prepare(
    `INSERT INTO ${marks} (id, member_id, token, parked_at) SELECT value, ?, ?, ? FROM json_each(?) WHERE true
       ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, token = excluded.token, parked_at = excluded.parked_at`,
  );
  const unmarkSql = `DELETE FROM ${marks} AS m WHERE m.id IN ${chunk}`;
  const unlessPausingSql = `${unmarkSql}
      AND NOT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${id} = m.id AND (t.${status} = ?) IS TRUE)`;
  const unmark = db.prepare(`${unmarkSql} RETURNING id`).pluck();
  const unmarkCount = db.prepare(unmarkSql);
  const unmarkUnlessPausing = db.prepare(`${unlessPausingSql} RETURNING id`).pluck();
  const unmarkUnlessPausingCount = db.prepare(unlessPausingSql);
  const savepoint = db.prepare('SAVEPOINT graceful_drain_unpark');
  const rollbackTo = db.prepare('ROLLBACK TO graceful_drain_unpark');
  const release = db.prepare('RELEASE graceful_drain_unpark');
  // One JSON text per row; statuses compared in SQL, with the column's affinity.
  const parkedSql = (where: string) =>
    `SELECT json_array(m.id, m.member_id, CAST(m.token AS TEXT),
          CASE WHEN t.${status} = ? THEN 'pausing' WHEN t.${status} = ? THEN 'paused' ELSE 'other' END)
        FROM ${marks} AS m LEFT JOIN ${host} AS t ON t.${id} = m.id ${where} ORDER BY m.id LIMIT ?`;
  const parked = db.prepare<unknown[], string>(parkedSql('')).pluck();
  const parkedAfter = db.prepare<unknown[], string>(parkedSql('WHERE m.id > ?')).pluck();
  const strings = (rows: unknown[]) => rows.map((value) => String(value));
  /** Sets `to` on the workflows among `ids` whose status is `from`; returns their ids. */
  const transitionAll = (ids: readonly string[], to: string, from: string) =>
    strings(transition.all(to, JSON.stringify(ids), from));

  return {
    /** Checks `token` against the highest seen (`StaleTokenError`), and records it. */
    raiseFence(token: bigint): void {
      const seen = highest.get();
      if (seen !== undefined && token < seen) throw new StaleTokenError(token, seen);
      if (seen === undefined || token > seen) raiseHighest.run(token);
    },

    /** A page of running workflows after `cursor`, in id order. */
    active(running: string, cursor: string | undefined, limit: number): string[] {
      return strings(
        cursor === undefined ? active.all(running, limit) : activeAfter.all(running, cursor, limit),
      );
    },

    /** Sets `target` on the running ones among `ids` and marks them; returns their ids. */
    park(
      ids: readonly string[],
      running: string,
      target: string,
      memberId: string,
      token: bigint | null,
      at: number,
    ) {
      const changed = transitionAll(ids, target, running);
      if (changed.length > 0) mark.run(memberId, token, at, JSON.stringify(changed));
      return changed;
    },

    /**
     * Clears the marks among `ids`, except of workflows still `pausing`, and resumes the unmarked ones
     * that are paused; returns the ids resumed. A workflow without a mark is never touched.
     */
    unpark(ids: readonly string[], { running, pausing, paused }: WorkflowStatuses): string[] {
      const distinct = [...new Set(ids)];
      const list = JSON.stringify(distinct);
      // When both counts are whole (the usual case), every id was unmarked and resumed.
      savepoint.run();
      const unmarked =
        pausing === undefined ? unmarkCount.run(list) : unmarkUnlessPausingCount.run(list, pausing);
      if (
        unmarked.changes === distinct.length &&
        transitionCount.run(running, list, paused).changes === distinct.length
      ) {
        release.run();
        return distinct;
      }
      rollbackTo.run();
      release.run();
      const cleared = (
        pausing === undefined ? unmark.all(list) : unmarkUnlessPausing.all(list, pausing)
      ) as string[];
      return cleared.length === 0 ? [] : transitionAll(cleared, running, paused);
    },

    /** Deletes the marks among `ids`; returns the ids whose mark was deleted. */
    dropMarks(ids: readonly string[]): string[] {
      return unmark.all(JSON.stringify(ids)) as string[];
    },

    /** A page of marked workflows after `cursor`, in id order, with the host's state of each. */
    parked(
      { pausing, paused }: WorkflowStatuses,
      cursor: string | undefined,
      limit: number,
    ): ParkedWorkflow[] {
      const held = pausing ?? null;
      const rows =
        cursor === undefined ? parked.all(held, paused, limit) : parkedAfter.all(held, paused, cursor, limit);
      return (JSON.parse(`[${rows.join(',')}]`) as ParkedJson[]).map(([id, memberId, token, state]) => ({
        id,
        state,
        memberId,
        token: token === null ? undefined : BigInt(token),
      }));
    },
  };
}
