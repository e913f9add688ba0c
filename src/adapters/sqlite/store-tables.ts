/**
 * The SQL of the workflow store: the host's table (read, and its status column written), the marks
 * table, and the one-row fence table next to it. Every name is a validated identifier, quoted.
 *
 * @internal
 */

import type BetterSqlite3 from 'better-sqlite3';
import { ConfigurationError } from '../../errors.js';
import type { SqliteDatabase } from './connection.js';
import { quote, quoteTable, siblingTable, type TableName } from './identifiers.js';

/** Ids per statement: far below SQLite's variable limit (32766 since 3.32, 999 before). */
export const CHUNK = 512;

/** The names the store works with. */
export interface StoreNames {
  readonly table: TableName;
  readonly idColumn: string;
  readonly statusColumn: string;
  readonly marksTable: TableName;
}

/** Checks that the host's table and columns exist, so a typo is a clear error at first use. */
export function checkHostTable(db: SqliteDatabase, names: StoreNames, table: string): void {
  const schema = names.table.schema === undefined ? '' : `${quote(names.table.schema)}.`;
  let columns: { name: string }[];
  try {
    columns = db.pragma(`${schema}table_info(${quote(names.table.name)})`) as { name: string }[];
  } catch (error) {
    throw new ConfigurationError(
      `Expected \`table\` to name an existing table, got ${JSON.stringify(table)}`,
      {
        cause: error,
      },
    );
  }
  if (columns.length === 0) {
    throw new ConfigurationError(
      `Expected \`table\` to name an existing table, got ${JSON.stringify(table)}`,
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
}

/** Creates the marks and fence tables if they are missing. */
export function createStoreTables(db: SqliteDatabase, names: StoreNames): void {
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${quoteTable(names.marksTable)} (
      id TEXT PRIMARY KEY NOT NULL,
      member_id TEXT NOT NULL,
      token INTEGER,
      parked_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${quoteTable(siblingTable(names.marksTable, '_fence'))} (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      highest INTEGER NOT NULL
    )`);
  }).immediate();
}

/** A parked row as read. */
export interface ParkedRow {
  readonly id: string;
  readonly member_id: string;
  readonly token: bigint | null;
  readonly state: 'pausing' | 'paused' | 'other';
}

type Statement = BetterSqlite3.Statement<unknown[], unknown>;

/** The store's statements on one handle; the chunked ones are built per size and kept. */
export class StoreStatements {
  readonly #db: SqliteDatabase;
  readonly #chunked = new Map<string, Statement>();
  readonly #host: string;
  readonly #id: string;
  readonly #status: string;
  readonly #marks: string;
  readonly highest: BetterSqlite3.Statement<[], bigint>;
  readonly raiseHighest: BetterSqlite3.Statement<[bigint]>;
  readonly mark: BetterSqlite3.Statement<[string, string, bigint | null, number]>;
  readonly active: BetterSqlite3.Statement<[string, number]>;
  readonly activeAfter: BetterSqlite3.Statement<[string, string, number]>;
  readonly parked: BetterSqlite3.Statement<[string | null, string, number], ParkedRow>;
  readonly parkedAfter: BetterSqlite3.Statement<[string | null, string, string, number], ParkedRow>;

  constructor(db: SqliteDatabase, names: StoreNames) {
    this.#db = db;
    this.#host = quoteTable(names.table);
    this.#id = quote(names.idColumn);
    this.#status = quote(names.statusColumn);
    this.#marks = quoteTable(names.marksTable);
    const fence = quoteTable(siblingTable(names.marksTable, '_fence'));
    const [host, id, status, marks] = [this.#host, this.#id, this.#status, this.#marks];
    this.highest = db
      .prepare<[], bigint>(`SELECT highest FROM ${fence} WHERE id = 1`)
      .pluck()
      .safeIntegers(true);
    this.raiseHighest = db.prepare<[bigint]>(
      `INSERT INTO ${fence} (id, highest) VALUES (1, ?)
       ON CONFLICT (id) DO UPDATE SET highest = max(highest, excluded.highest)`,
    );
    // A mark on a running workflow is stale (a user resumed it without an unpark): parking replaces it.
    this.mark = db.prepare(
      `INSERT INTO ${marks} (id, member_id, token, parked_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, token = excluded.token, parked_at = excluded.parked_at`,
    );
    const active = `SELECT t.${id} FROM ${host} AS t WHERE t.${status} = ?`;
    this.active = db
      .prepare<[string, number]>(`${active} ORDER BY t.${id} LIMIT ?`)
      .pluck()
      .safeIntegers(true);
    this.activeAfter = db
      .prepare<[string, string, number]>(`${active} AND t.${id} > ? ORDER BY t.${id} LIMIT ?`)
      .pluck()
      .safeIntegers(true);
    // The host's values are compared in SQL, so that column affinity (e.g. INTEGER statuses) applies.
    const parked = `SELECT m.id, m.member_id, m.token,
        CASE WHEN t.${status} = ? THEN 'pausing' WHEN t.${status} = ? THEN 'paused' ELSE 'other' END AS state
      FROM ${marks} AS m LEFT JOIN ${host} AS t ON t.${id} = m.id`;
    this.parked = db
      .prepare<[string | null, string, number], ParkedRow>(`${parked} ORDER BY m.id LIMIT ?`)
      .safeIntegers(true);
    this.parkedAfter = db
      .prepare<[string | null, string, string, number], ParkedRow>(
        `${parked} WHERE m.id > ? ORDER BY m.id LIMIT ?`,
      )
      .safeIntegers(true);
  }

  #chunk(kind: string, size: number, build: (list: string) => string): Statement {
    const key = `${kind}:${size}`;
    let statement = this.#chunked.get(key);
    if (statement === undefined) {
      statement = this.#db.prepare(build(Array.from({ length: size }, () => '?').join(', ')));
      this.#chunked.set(key, statement);
    }
    return statement;
  }

  // In the updates below, `+status` keeps SQLite from driving them from an index on the host's status
  // column: the ids (the primary key) are the selective side, and a status-driven plan made every
  // batch scan all remaining rows of that status.

  /** Sets `target` on the running ones among `ids`; returns their ids. */
  pause(ids: readonly string[], target: string, running: string): string[] {
    const [host, id, status] = [this.#host, this.#id, this.#status];
    const size = bucket(ids.length);
    const statement = this.#chunk(
      'pause',
      size,
      (list) =>
        `UPDATE ${host} AS t SET ${status} = ? WHERE t.${id} IN (${list}) AND +t.${status} = ? RETURNING ${id}`,
    );
    return returned(statement, [target, ...pad(ids, size), running]);
  }

  /** Sets `running` on the paused, marked ones among `ids`; returns their ids. */
  resume(ids: readonly string[], running: string, paused: string): string[] {
    const [host, id, status, marks] = [this.#host, this.#id, this.#status, this.#marks];
    const size = bucket(ids.length);
    const statement = this.#chunk(
      'resume',
      size,
      (list) =>
        `UPDATE ${host} AS t SET ${status} = ? WHERE t.${id} IN (${list}) AND +t.${status} = ?
       AND EXISTS (SELECT 1 FROM ${marks} AS m WHERE m.id = t.${id}) RETURNING ${id}`,
    );
    return returned(statement, [running, ...pad(ids, size), paused]);
  }

  /** Clears the marks among `ids` except those of workflows still `pausing`. */
  unmark(ids: readonly string[], pausing: string | null): void {
    const [host, id, status, marks] = [this.#host, this.#id, this.#status, this.#marks];
    const size = bucket(ids.length);
    const statement = this.#chunk(
      'unmark',
      size,
      (list) =>
        `DELETE FROM ${marks} AS m WHERE m.id IN (${list})
       AND NOT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${id} = m.id AND t.${status} = ?)`,
    );
    statement.run(...pad(ids, size), pausing);
  }
}

/** Statement sizes are powers of two, so a handful of statements serve every batch size. */
function bucket(count: number): number {
  let size = 1;
  while (size < count) size *= 2;
  return Math.min(size, CHUNK);
}

/** `NULL` never equals anything, so padding matches no row. */
function pad(ids: readonly string[], size: number): (string | null)[] {
  const padded: (string | null)[] = [...ids];
  while (padded.length < size) padded.push(null);
  return padded;
}

function returned(statement: Statement, params: unknown[]): string[] {
  return (
    statement
      .pluck()
      .safeIntegers(true)
      .all(...params) as unknown[]
  ).map((value) => String(value));
}
