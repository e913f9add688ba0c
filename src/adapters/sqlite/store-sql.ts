/**
 * The SQL of the workflow store: the host's table (read, and its status column written), the marks
 * table, and the one-row fence table next to it. Every name is a validated identifier, quoted.
 *
 * @internal
 */

import { ConfigurationError } from '../../errors.js';
import { quote, siblingTable } from '../../internal/sql-names.js';
import type { WorkflowStatuses } from '../../internal/statuses.js';
import type { ParkedState, ParkedWorkflow } from '../../workflow-store.js';
import type { SqliteDatabase, SqliteStatement } from './driver.js';
import type { StoreNames } from './options.js';
import { hostTableInfo, installMarkTriggers, type HostTableInfo } from './mark-trigger.js';

/**
 * Ids per statement. They travel as one JSON array read with `json_each`, so SQLite's variable limit
 * does not apply; chunks only bound the temporary data of one statement.
 */
export const CHUNK = 512;

/**
 * Checks that the host's table and columns exist, so a typo is a clear error at first use, and that
 * the marks table is where the triggers on the host's table can reach it; returns where the host's
 * table lives and how its status column compares.
 */
export function checkHostTable(db: SqliteDatabase, names: StoreNames, table: string): HostTableInfo {
  let info: HostTableInfo;
  let columns: { name: string }[];
  try {
    info = hostTableInfo(db, names.table, names.statusColumn, table);
    columns = db.pragma(`${quote(info.schema)}.table_info(${quote(names.table.name)})`) as { name: string }[];
  } catch (error) {
    if (error instanceof ConfigurationError) throw error;
    throw new ConfigurationError(
      `Expected \`table\` to name an existing table, got ${JSON.stringify(table)}`,
      { cause: error },
    );
  }
  const present = new Set(columns.map((column) => column.name.toLowerCase()));
  for (const [option, column] of [
    ['idColumn', names.idColumn],
    ['statusColumn', names.statusColumn],
  ] as const) {
    if (!present.has(column.toLowerCase())) {
      throw new ConfigurationError(
        `Expected \`${option}\` to name a column of ${JSON.stringify(table)}, got ${JSON.stringify(column)}`,
      );
    }
  }
  // A trigger of a database other than `temp` reaches only tables of its own database.
  const marksSchema = names.marksTable.schema ?? 'main';
  if (info.schema !== 'temp' && marksSchema.toLowerCase() !== info.schema.toLowerCase()) {
    const given =
      names.marksTable.schema === undefined
        ? names.marksTable.name
        : `${marksSchema}.${names.marksTable.name}`;
    throw new ConfigurationError(
      `Expected \`marksTable\` to be in the database of \`table\` (${JSON.stringify(info.schema)}), got ${JSON.stringify(given)}: the store's triggers on the host's table reach only tables of the same database; give \`marksTable\` as "${info.schema}.${names.marksTable.name}"`,
    );
  }
  return info;
}

/**
 * Creates the marks and fence tables if they are missing, and installs (or replaces, when the status
 * values or names changed) the triggers on the host's table that drop a mark with its pause: one
 * `BEGIN IMMEDIATE` transaction, so concurrent set-ups of one file are serialised.
 */
export function createStoreTables(
  db: SqliteDatabase,
  names: StoreNames,
  statuses: WorkflowStatuses,
  host: HostTableInfo,
): void {
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${names.marksTable.sql} (
      id TEXT PRIMARY KEY NOT NULL,
      member_id TEXT NOT NULL,
      token INTEGER,
      parked_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${siblingTable(names.marksTable, '_fence').sql} (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      highest INTEGER NOT NULL
    )`);
    installMarkTriggers(db, names, statuses, host);
  }).immediate();
}

/** One parked row as JSON: id, member, token as text (it may not fit a double), state. */
type ParkedJson = [string, string, string | null, ParkedState];

type Statement = SqliteStatement;

/**
 * The store's statements on one handle, each prepared once. The ids of a chunk are bound as one JSON
 * array and read with `json_each`: one statement per chunk, whatever its size.
 *
 * Plans. The ids are the selective side of every write: each row is found through the host's id
 * column (its primary key). The status tests of those statements are written `(status = ?) IS TRUE`,
 * which SQLite cannot drive from an index on the status column: driven from one, every batch scanned
 * all rows of that status, and a park or a resume was quadratic. (`+status = ?` avoids the index too,
 * but drops the column's affinity: the text `'1'` would never equal the 1 of an INTEGER status column.)
 * `listActive` walks the id order: `likelihood(status = ?, 1.0)` tells the planner not to count on the
 * status test to be selective, so that it does not read every remaining row of that status through a
 * status index and sort them by id, for each page. An index that serves both, on `(status, id)` (or on
 * `status` alone in a WITHOUT ROWID or INTEGER PRIMARY KEY table), is still used.
 */
export class StoreStatements {
  readonly highest: SqliteStatement<[], bigint>;
  readonly raiseHighest: SqliteStatement<[bigint]>;
  readonly active: SqliteStatement<[string, number]>;
  readonly activeAfter: SqliteStatement<[string, string, number]>;
  readonly #transition: Statement;
  readonly #transitionCount: Statement;
  readonly #mark: Statement;
  readonly #unmark: Statement;
  readonly #unmarkCount: Statement;
  readonly #unmarkUnlessPausing: Statement;
  readonly #unmarkUnlessPausingCount: Statement;
  readonly #savepoint: Statement;
  readonly #rollbackTo: Statement;
  readonly #release: Statement;
  readonly #parked: SqliteStatement<[string | null, string, number], string>;
  readonly #parkedAfter: SqliteStatement<[string | null, string, string, number], string>;

  constructor(db: SqliteDatabase, names: StoreNames) {
    const host = names.table.sql;
    const id = quote(names.idColumn);
    const status = quote(names.statusColumn);
    const marks = names.marksTable.sql;
    const fence = siblingTable(names.marksTable, '_fence').sql;
    const chunk = '(SELECT value FROM json_each(?))';
    this.highest = db
      .prepare<[], bigint>(`SELECT highest FROM ${fence} WHERE id = 1`)
      .pluck()
      .safeIntegers(true);
    this.raiseHighest = db.prepare<[bigint]>(
      `INSERT INTO ${fence} (id, highest) VALUES (1, ?)
       ON CONFLICT (id) DO UPDATE SET highest = max(highest, excluded.highest)`,
    );
    const active = `SELECT t.${id} FROM ${host} AS t WHERE likelihood(t.${status} = ?, 1.0)`;
    this.active = db
      .prepare<[string, number]>(`${active} ORDER BY t.${id} LIMIT ?`)
      .pluck()
      .safeIntegers(true);
    this.activeAfter = db
      .prepare<[string, string, number]>(`${active} AND t.${id} > ? ORDER BY t.${id} LIMIT ?`)
      .pluck()
      .safeIntegers(true);
    const transition = `UPDATE ${host} AS t SET ${status} = ? WHERE t.${id} IN ${chunk} AND (t.${status} = ?) IS TRUE`;
    this.#transition = db.prepare(`${transition} RETURNING ${id}`).pluck().safeIntegers(true);
    this.#transitionCount = db.prepare(transition);
    // A mark on a running workflow is stale (a user resumed it without an unpark): parking replaces it.
    this.#mark = db.prepare(
      `INSERT INTO ${marks} (id, member_id, token, parked_at) SELECT value, ?, ?, ? FROM json_each(?) WHERE true
       ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, token = excluded.token, parked_at = excluded.parked_at`,
    );
    const unmark = `DELETE FROM ${marks} AS m WHERE m.id IN ${chunk}`;
    const unlessPausing = `${unmark}
      AND NOT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${id} = m.id AND (t.${status} = ?) IS TRUE)`;
    this.#unmark = db.prepare(`${unmark} RETURNING id`).pluck();
    this.#unmarkCount = db.prepare(unmark);
    this.#unmarkUnlessPausing = db.prepare(`${unlessPausing} RETURNING id`).pluck();
    this.#unmarkUnlessPausingCount = db.prepare(unlessPausing);
    this.#savepoint = db.prepare('SAVEPOINT graceful_drain_unpark');
    this.#rollbackTo = db.prepare('ROLLBACK TO graceful_drain_unpark');
    this.#release = db.prepare('RELEASE graceful_drain_unpark');
    // Each row travels as one JSON text, one value to hand over instead of four. The host's values
    // are compared in SQL, so that column affinity (e.g. INTEGER statuses) applies.
    const parked = (where: string) =>
      `SELECT json_array(m.id, m.member_id, CAST(m.token AS TEXT),
          CASE WHEN t.${status} = ? THEN 'pausing' WHEN t.${status} = ? THEN 'paused' ELSE 'other' END)
        FROM ${marks} AS m LEFT JOIN ${host} AS t ON t.${id} = m.id ${where} ORDER BY m.id LIMIT ?`;
    this.#parked = db.prepare<[string | null, string, number], string>(parked('')).pluck();
    this.#parkedAfter = db
      .prepare<[string | null, string, string, number], string>(parked('WHERE m.id > ?'))
      .pluck();
  }

  /** Sets `target` on the running ones among `ids` and marks them; returns their ids. */
  park(
    ids: readonly string[],
    statuses: { readonly running: string; readonly target: string },
    memberId: string,
    token: bigint | null,
    at: number,
  ): string[] {
    const changed = this.#transitionAll(ids, statuses.target, statuses.running);
    if (changed.length > 0) this.#mark.run(memberId, token, at, JSON.stringify(changed));
    return changed;
  }

  /**
   * Clears the marks among `ids`, except those of workflows still `pausing`, and resumes those of the
   * unmarked workflows that are paused; returns the ids resumed. A workflow that is no longer paused
   * only loses its mark; one without a mark is never touched.
   */
  unpark(ids: readonly string[], statuses: WorkflowStatuses): string[] {
    const { running, pausing, paused } = statuses;
    const distinct = [...new Set(ids)];
    const list = JSON.stringify(distinct);
    // In the usual chunk every id is marked and paused: when both counts are whole, every id was
    // unmarked and resumed, and no list of ids needs to come back (RETURNING made an unpark about a
    // fifth slower). Otherwise the chunk is rolled back and redone with RETURNING, to tell which.
    this.#savepoint.run();
    const unmarked =
      pausing === undefined ? this.#unmarkCount.run(list) : this.#unmarkUnlessPausingCount.run(list, pausing);
    if (
      unmarked.changes === distinct.length &&
      this.#transitionCount.run(running, list, paused).changes === distinct.length
    ) {
      this.#release.run();
      return distinct;
    }
    this.#rollbackTo.run();
    this.#release.run();
    const cleared = (
      pausing === undefined ? this.#unmark.all(list) : this.#unmarkUnlessPausing.all(list, pausing)
    ) as string[];
    return cleared.length === 0 ? [] : this.#transitionAll(cleared, running, paused);
  }

  /** Deletes the marks among `ids`; returns the ids whose mark was deleted. */
  dropMarks(ids: readonly string[]): string[] {
    return this.#unmark.all(JSON.stringify(ids)) as string[];
  }

  /** A page of marked workflows after `cursor`, in id order, with the host's state of each. */
  parked(
    pausing: string | undefined,
    paused: string,
    cursor: string | undefined,
    limit: number,
  ): ParkedWorkflow[] {
    const held = pausing ?? null;
    const rows =
      cursor === undefined
        ? this.#parked.all(held, paused, limit)
        : this.#parkedAfter.all(held, paused, cursor, limit);
    return (JSON.parse(`[${rows.join(',')}]`) as ParkedJson[]).map(([id, memberId, token, state]) => ({
      id,
      state,
      memberId,
      token: token === null ? undefined : BigInt(token),
    }));
  }

  /** Sets `to` on the workflows among `ids` whose status is `from`; returns their ids. */
  #transitionAll(ids: readonly string[], to: string, from: string): string[] {
    return (this.#transition.all(to, JSON.stringify(ids), from) as unknown[]).map((value) => String(value));
  }
}
