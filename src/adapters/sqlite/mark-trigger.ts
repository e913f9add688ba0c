/**
 * The triggers that tie a parked-by-shutdown mark to the pause it created. Installed on the host's
 * table by the store's set-up, in the transaction that creates the marks table:
 *
 * - `<marksTable>_unpaused`: `AFTER UPDATE OF <status>`, when the old status is `pausing` or `paused`
 *   and the new one is neither (a user resumed, cancelled or completed it), deletes the row's mark.
 * - `<marksTable>_deleted`: `AFTER DELETE`, when the deleted row was `pausing` or `paused`, deletes its
 *   mark.
 *
 * The status values are written into the triggers as SQL literals. `OLD.x` and `NEW.x` carry no column
 * affinity in SQLite, so each literal is the configured value as the host's column would store it (the
 * text `'2'` is the integer `2` in an INTEGER column), converted by SQLite itself: the trigger then
 * compares exactly as the store's own `status = ?` does. The trigger SQL sticks to syntax old SQLite
 * versions parse, since every program that opens the file reads it.
 *
 * Several stores (processes) may set up one file at once: the existing triggers are read and, only
 * when they differ from the wanted ones (first set-up, changed status values or names), dropped and
 * created again, all inside the set-up's `BEGIN IMMEDIATE` transaction. SQLite's write lock serialises
 * the set-ups, so none sees a half-installed state, none fails on a trigger another just created, and
 * a set-up with unchanged options changes no schema (no statement of another connection is
 * re-prepared).
 *
 * @internal
 */

import { ConfigurationError } from '../../errors.js';
import { quote, type TableName } from '../../internal/sql-names.js';
import type { WorkflowStatuses } from '../../internal/statuses.js';
import type { SqliteDatabase } from './driver.js';
import type { StoreNames } from './options.js';

/** Where the host's table lives, and how its status column compares. */
export interface HostTableInfo {
  /** The schema (`main`, `temp`, an attached database) holding the table. */
  readonly schema: string;
  /** The status column's affinity keyword, as SQLite's rules derive it from the declared type. */
  readonly statusAffinity: 'TEXT' | 'NUMERIC' | 'INTEGER' | 'REAL' | 'BLOB';
}

/** The names of the two triggers of a marks table. */
export function triggerNames(marksTable: TableName): { readonly unpaused: string; readonly deleted: string } {
  return { unpaused: `${marksTable.name}_unpaused`, deleted: `${marksTable.name}_deleted` };
}

/**
 * Finds the schema of the host's table (SQLite's search order for an unqualified name: `temp`, `main`,
 * then the attached databases) and the affinity of its status column. Throws `ConfigurationError`
 * for a view: a trigger of ours cannot watch one.
 */
export function hostTableInfo(
  db: SqliteDatabase,
  table: TableName,
  statusColumn: string,
  given: string,
): HostTableInfo {
  const schemas = table.schema === undefined ? orderedSchemas(db) : [table.schema];
  for (const schema of schemas) {
    const type = db
      .prepare<[string], string>(
        `SELECT type FROM ${quote(schema)}.sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE`,
      )
      .pluck()
      .get(table.name);
    if (type === undefined) continue;
    if (type !== 'table') {
      throw new ConfigurationError(
        `Expected \`table\` to name a table, got ${JSON.stringify(given)}, a ${type}: the store installs a trigger on it`,
      );
    }
    const columns = db.pragma(`${quote(schema)}.table_info(${quote(table.name)})`) as {
      name: string;
      type: string;
    }[];
    const declared = columns.find((c) => c.name.toLowerCase() === statusColumn.toLowerCase())?.type ?? '';
    return { schema, statusAffinity: affinityOf(declared, isStrict(db, schema, table.name)) };
  }
  throw new ConfigurationError(`Expected \`table\` to name an existing table, got ${JSON.stringify(given)}`);
}

/** The schemas in the order SQLite searches an unqualified table name. */
function orderedSchemas(db: SqliteDatabase): string[] {
  const list = db.pragma('database_list') as { seq: number; name: string }[];
  const rank = (name: string): number => (name === 'temp' ? 0 : name === 'main' ? 1 : 2);
  return list
    .slice()
    .sort((a, b) => rank(a.name) - rank(b.name) || a.seq - b.seq)
    .map((entry) => entry.name);
}

function isStrict(db: SqliteDatabase, schema: string, table: string): boolean {
  try {
    const rows = db.pragma(`${quote(schema)}.table_list(${quote(table)})`) as { strict?: number }[];
    return rows.some((row) => row.strict === 1);
  } catch {
    return false; // SQLite before 3.37: no STRICT tables either
  }
}

/** SQLite's column affinity rules (datatype3.html, 3.1), plus STRICT tables' `ANY` (no conversion). */
function affinityOf(declared: string, strict: boolean): HostTableInfo['statusAffinity'] {
  const type = declared.toUpperCase();
  if (strict && type === 'ANY') return 'BLOB';
  if (type.includes('INT')) return 'INTEGER';
  if (type.includes('CHAR') || type.includes('CLOB') || type.includes('TEXT')) return 'TEXT';
  if (type.includes('BLOB') || type === '') return 'BLOB';
  if (type.includes('REAL') || type.includes('FLOA') || type.includes('DOUB')) return 'REAL';
  return 'NUMERIC';
}

const PROBE = quote('graceful_drain_affinity_probe');

/**
 * Each value as an SQL literal of what the host's column would store: converted by SQLite through a
 * temporary column of the same affinity, and quoted by SQLite's own `quote()`.
 */
function literals(
  db: SqliteDatabase,
  values: readonly string[],
  affinity: HostTableInfo['statusAffinity'],
): string[] {
  db.exec(
    `DROP TABLE IF EXISTS temp.${PROBE}; CREATE TEMP TABLE ${PROBE} (n INTEGER PRIMARY KEY, v ${affinity})`,
  );
  try {
    const insert = db.prepare(`INSERT INTO temp.${PROBE} (n, v) VALUES (?, ?)`);
    values.forEach((value, i) => insert.run(i, value));
    return db.prepare<[], string>(`SELECT quote(v) FROM temp.${PROBE} ORDER BY n`).pluck().all();
  } finally {
    db.exec(`DROP TABLE IF EXISTS temp.${PROBE}`);
  }
}

/** What the triggers look like in `sqlite_master` (SQLite drops the schema from the stored name). */
function wantedTriggers(
  db: SqliteDatabase,
  names: StoreNames,
  statuses: WorkflowStatuses,
  info: HostTableInfo,
): { readonly name: string; readonly sql: string }[] {
  const held = literals(
    db,
    statuses.pausing === undefined ? [statuses.paused] : [statuses.pausing, statuses.paused],
    info.statusAffinity,
  ).join(', ');
  const host = quote(names.table.name);
  const status = quote(names.statusColumn);
  const marks = quote(names.marksTable.name);
  const drop = `DELETE FROM ${marks} WHERE id = CAST(OLD.${quote(names.idColumn)} AS TEXT)`;
  const trigger = triggerNames(names.marksTable);
  return [
    {
      name: trigger.unpaused,
      sql:
        `CREATE TRIGGER ${quote(trigger.unpaused)} AFTER UPDATE OF ${status} ON ${host} FOR EACH ROW` +
        ` WHEN OLD.${status} IN (${held}) AND (NEW.${status} IS NULL OR NEW.${status} NOT IN (${held}))` +
        ` BEGIN ${drop}; END`,
    },
    {
      name: trigger.deleted,
      sql:
        `CREATE TRIGGER ${quote(trigger.deleted)} AFTER DELETE ON ${host} FOR EACH ROW` +
        ` WHEN OLD.${status} IN (${held}) BEGIN ${drop}; END`,
    },
  ];
}

/**
 * Installs (or replaces, when they differ) the triggers that drop a mark when its workflow leaves
 * `pausing`/`paused` or is deleted. Call inside the set-up's write transaction.
 */
export function installMarkTriggers(
  db: SqliteDatabase,
  names: StoreNames,
  statuses: WorkflowStatuses,
  info: HostTableInfo,
): void {
  const schema = quote(info.schema);
  const existing = db.prepare<[string], string | null>(
    `SELECT sql FROM ${schema}.sqlite_master WHERE type = 'trigger' AND name = ?`,
  );
  for (const { name, sql } of wantedTriggers(db, names, statuses, info)) {
    if (existing.pluck().get(name) === sql) continue;
    db.exec(`DROP TRIGGER IF EXISTS ${schema}.${quote(name)}`);
    // Created under the host table's schema; SQLite stores it without the qualifier, as `sql` reads.
    db.exec(sql.replace(/^CREATE TRIGGER /, `CREATE TRIGGER ${schema}.`));
  }
}
