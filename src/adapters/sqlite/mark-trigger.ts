/**
 * The host's table as the store's set-up finds it, and the triggers on it that drop a mark with the
 * pause it created: see docs/adapters/sqlite.md, "The triggers on the host's table". `OLD.x` and
 * `NEW.x` carry no column affinity, so the status values are written as literals of what the host's
 * column stores, converted by SQLite itself; the trigger SQL sticks to syntax old SQLite versions parse.
 *
 * @internal
 */
import { ConfigurationError } from '../../errors.js';
import { quote } from '../../internal/sql-names.js';
import type { SqliteDatabase } from './driver.js';
import type { CompiledStoreOptions } from './options.js';

type Affinity = 'TEXT' | 'NUMERIC' | 'INTEGER' | 'REAL' | 'BLOB';

/**
 * The rowid the store's own resume of a page leaves as its connection's `last_insert_rowid()` for the
 * length of its `UPDATE`: the trigger `<marksTable>_unpaused` then leaves the page's marks to the one
 * `DELETE` that follows (see `unparkPage` in store-sql.ts). `last_insert_rowid()` belongs to one
 * connection, so the host's own updates, on any other connection or on the same one before or after, are
 * never affected; a host that inserted a row with this very rowid and then resumed a paused workflow
 * without another insert between would have its mark kept, which no real rowid comes near.
 */
export const RESUMING_ROWID = '-4802577120331950883';

/** Where the host's table lives (`main`, `temp`, an attached database), and its columns' affinities. */
export interface HostTableInfo {
  readonly schema: string;
  readonly statusAffinity: Affinity;
  /** `BLOB` (no affinity) when the id column converts nothing: then an id's text may not compare as its value. */
  readonly idAffinity: Affinity;
  /**
   * Whether the table holds one row per id as its own comparisons see ids: the id column is the rowid
   * (`INTEGER PRIMARY KEY`), or alone the key of a unique index (primary key or not, not partial) in the
   * column's own collation (a `BINARY` index on a `NOCASE` column lets `'A'` and `'a'` both in, which the
   * column's comparisons take for one id).
   */
  readonly idUnique: boolean;
  /**
   * Whether the id column compares and orders ids as the marks table's `TEXT` key does (`TEXT` affinity,
   * `BINARY` collation), and holds one row per id, in a UTF-8 database: a range of mark ids is then the
   * same range of the host's ids, so a page can be resumed by walking the host's range rather than by a
   * search per mark.
   */
  readonly idOrderedAsMarks: boolean;
}

/**
 * Finds the host's table (unqualified: in SQLite's search order, `temp`, `main`, then the attached
 * databases) and checks it is a table with the configured columns (id, status, and the owner's when given), in the database of the marks table: so a
 * typo is a clear `ConfigurationError` at first use.
 */
export function checkHostTable(db: SqliteDatabase, { names, table }: CompiledStoreOptions): HostTableInfo {
  const missing = `Expected \`table\` to name an existing table, got ${JSON.stringify(table)}`;
  let found:
    { schema: string; columns: { name: string; type: string; hidden: number; pk: number }[] } | undefined;
  try {
    for (const schema of names.table.schema === undefined ? orderedSchemas(db) : [names.table.schema]) {
      const type = db
        .prepare<[string], string>(
          `SELECT type FROM ${quote(schema)}.sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE`,
        )
        .pluck()
        .get(names.table.name);
      if (type === undefined) continue;
      if (type !== 'table') {
        throw new ConfigurationError(
          `Expected \`table\` to name a table, got ${JSON.stringify(table)}, a ${type}: the store installs a trigger on it`,
        );
      }
      // table_xinfo, not table_info: a generated column (an owner derived from a claim, say) is listed too.
      const columns = db.pragma(`${quote(schema)}.table_xinfo(${quote(names.table.name)})`);
      found = { schema, columns: columns as { name: string; type: string; hidden: number; pk: number }[] };
      break;
    }
  } catch (error) {
    if (error instanceof ConfigurationError) throw error;
    throw new ConfigurationError(missing, { cause: error });
  }
  if (found === undefined) throw new ConfigurationError(missing);
  const { schema, columns } = found;
  const column = (name: string) => columns.find((c) => sameName(c.name, name));
  for (const [option, name] of [
    ['idColumn', names.idColumn],
    ['statusColumn', names.statusColumn],
    ['ownerColumn', names.ownerColumn],
  ] as const) {
    if (name !== undefined && column(name) === undefined) {
      throw new ConfigurationError(
        `Expected \`${option}\` to name a column of ${JSON.stringify(table)}, got ${JSON.stringify(name)}`,
      );
    }
  }
  // Hidden 2 and 3: generated columns, which the store cannot write.
  if ((column(names.statusColumn)?.hidden ?? 0) >= 2) {
    throw new ConfigurationError(
      `Expected \`statusColumn\` to name a column the store can write, got ${JSON.stringify(names.statusColumn)}, a generated column of ${JSON.stringify(table)}`,
    );
  }
  // A trigger of a database other than `temp` reaches only tables of its own database.
  const marksSchema = names.marksTable.schema ?? 'main';
  if (schema !== 'temp' && marksSchema.toLowerCase() !== schema.toLowerCase()) {
    const given =
      names.marksTable.schema === undefined
        ? names.marksTable.name
        : `${marksSchema}.${names.marksTable.name}`;
    throw new ConfigurationError(
      `Expected \`marksTable\` to be in the database of \`table\` (${JSON.stringify(schema)}), got ${JSON.stringify(given)}: the store's triggers on the host's table reach only tables of the same database; give \`marksTable\` as "${schema}.${names.marksTable.name}"`,
    );
  }
  const strict = isStrict(db, schema, names.table.name);
  const idType = column(names.idColumn)?.type ?? '';
  const idAffinity = affinityOf(idType, strict);
  // A REAL id has two texts (JavaScript's 3 and 1e+21, SQLite's 3.0 and 1.0e+21): its mark, keyed by one,
  // would be missed by the triggers, keyed by the other, and a user's pause could be resumed.
  if (idAffinity === 'REAL') {
    throw new ConfigurationError(
      `Expected \`idColumn\` to name a column of text or integer ids, got ${JSON.stringify(names.idColumn)}, declared ${JSON.stringify(idType)} (REAL affinity) in ${JSON.stringify(table)}`,
    );
  }
  const collation = collationOf(db, schema, names.table.name, names.idColumn);
  const idUnique = isUniqueId(db, schema, names.table.name, names.idColumn, columns, collation);
  return {
    schema,
    statusAffinity: affinityOf(column(names.statusColumn)?.type ?? '', strict),
    idAffinity,
    idUnique,
    // In UTF-8 only: SQLite reads UTF-16 text out as UTF-8 without checking surrogates, so two ids that
    // BINARY tells apart (D800 0061 and D800 DC61) could read the same in the resume's comparison.
    idOrderedAsMarks:
      idUnique && idAffinity === 'TEXT' && collation === 'BINARY' && databaseEncoding(db) === 'UTF-8',
  };
}

/** {@link HostTableInfo.idUnique}; `false` where it cannot tell. */
function isUniqueId(
  db: SqliteDatabase,
  schema: string,
  table: string,
  column: string,
  columns: readonly { name: string; type: string; pk: number }[],
  collation: string | undefined,
): boolean {
  const same = (name: string | null | undefined) => name != null && sameName(name, column);
  const indexes = db.pragma(`${quote(schema)}.index_list(${quote(table)})`) as {
    name: string;
    unique: number;
    origin?: string;
    partial?: number;
  }[];
  // The rowid: a lone INTEGER primary key with no index of its own (a WITHOUT ROWID table has one).
  const keys = columns.filter((c) => c.pk > 0);
  const rowid = !indexes.some((index) => index.origin === 'pk');
  if (rowid && keys.length === 1 && same(keys[0]?.name) && keys[0]?.type.toUpperCase() === 'INTEGER')
    return true;
  if (collation === undefined) return false;
  return indexes.some((index) => {
    if (index.unique !== 1 || index.partial === 1) return false;
    const keyed = (
      db.pragma(`${quote(schema)}.index_xinfo(${quoteAny(index.name)})`) as {
        name: string | null;
        coll: string | null;
        key: number;
      }[]
    ).filter((k) => k.key === 1);
    return keyed.length === 1 && same(keyed[0]?.name) && keyed[0]?.coll?.toUpperCase() === collation;
  });
}

/**
 * The collation the column's comparisons use, as SQLite's own plan of one names it (`NOCASE-8`: the name,
 * then the text encoding); `undefined` where the plan does not say (a SQLite built without `EXPLAIN`, a
 * plan of another shape).
 */
function collationOf(db: SqliteDatabase, schema: string, table: string, column: string): string | undefined {
  try {
    const plan = db
      .prepare<[string], { opcode: unknown; p4: unknown }>(
        `EXPLAIN SELECT t.${quote(column)} = ? FROM ${quote(schema)}.${quote(table)} AS t`,
      )
      .all('');
    const compare = plan.filter((op) => op.opcode === 'Eq' || op.opcode === 'Ne');
    if (compare.length !== 1) return undefined;
    const named = /^(\w+)-\d+$/.exec(String(compare[0]?.p4));
    return named?.[1]?.toUpperCase();
  } catch {
    return undefined;
  }
}

/** The text encoding of the handle's databases (`UTF-8`, `UTF-16le`, `UTF-16be`: attached ones share it). */
function databaseEncoding(db: SqliteDatabase): string | undefined {
  try {
    return db.prepare<[], string>('PRAGMA encoding').pluck().get();
  } catch {
    return undefined;
  }
}

/** Whether two names are one to SQLite, which folds the case of ASCII letters only. */
function sameName(a: string, b: string): boolean {
  const fold = (name: string) => name.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
  return fold(a) === fold(b);
}

/** Any name found in the schema (an index of the host's), quoted: a `"` in it doubled. */
function quoteAny(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
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
function affinityOf(declared: string, strict: boolean): Affinity {
  const type = declared.toUpperCase();
  if (strict && type === 'ANY') return 'BLOB';
  if (type.includes('INT')) return 'INTEGER';
  if (type.includes('CHAR') || type.includes('CLOB') || type.includes('TEXT')) return 'TEXT';
  if (type.includes('BLOB') || type === '') return 'BLOB';
  if (type.includes('REAL') || type.includes('FLOA') || type.includes('DOUB')) return 'REAL';
  return 'NUMERIC';
}

const PROBE = quote('graceful_drain_affinity_probe');

/** Each value as a literal of what the host's column stores: through a temporary column of its affinity. */
function literals(db: SqliteDatabase, values: readonly string[], affinity: Affinity): string[] {
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

/** Installs the triggers, or replaces them where they differ. Call inside the set-up's write transaction. */
export function installMarkTriggers(
  db: SqliteDatabase,
  { names, statuses }: CompiledStoreOptions,
  info: HostTableInfo,
) {
  const { pausing, paused } = statuses;
  const values = pausing === undefined ? [paused] : [pausing, paused];
  const held = literals(db, values, info.statusAffinity).join(', ');
  const host = quote(names.table.name);
  const status = quote(names.statusColumn);
  const drop = `DELETE FROM ${quote(names.marksTable.name)} WHERE id = CAST(OLD.${quote(names.idColumn)} AS TEXT)`;
  const unpaused = `${names.marksTable.name}_unpaused`;
  const deleted = `${names.marksTable.name}_deleted`;
  // As `sqlite_master` stores them: without the schema, which SQLite drops from the name.
  const wanted = {
    [unpaused]:
      `CREATE TRIGGER ${quote(unpaused)} AFTER UPDATE OF ${status} ON ${host} FOR EACH ROW` +
      ` WHEN OLD.${status} IN (${held}) AND (NEW.${status} IS NULL OR NEW.${status} NOT IN (${held}))` +
      ` AND last_insert_rowid() <> ${RESUMING_ROWID}` +
      ` BEGIN ${drop}; END`,
    [deleted]: `CREATE TRIGGER ${quote(deleted)} AFTER DELETE ON ${host} FOR EACH ROW WHEN OLD.${status} IN (${held}) BEGIN ${drop}; END`,
  };
  const schema = quote(info.schema);
  const existing = db.prepare<[string], string | null>(
    `SELECT sql FROM ${schema}.sqlite_master WHERE type = 'trigger' AND name = ?`,
  );
  // Replaced only when they differ, in the set-up's transaction: an unchanged set-up changes no schema.
  for (const [name, sql] of Object.entries(wanted)) {
    if (existing.pluck().get(name) === sql) continue;
    db.exec(`DROP TRIGGER IF EXISTS ${schema}.${quote(name)}`);
    db.exec(sql.replace(/^CREATE TRIGGER /, `CREATE TRIGGER ${schema}.`));
  }
}
