/**
 * The host's table as `PostgresWorkflowStore` (and `migrate({ stores })`) see it: the options that name
 * it, their validation, and what the catalog says about it.
 *
 * @internal
 */

import { ConfigurationError } from '../../errors.js';
import { checkName, checkOptionsObject, checkOneOf, describeValue, invalid } from '../../validate.js';
import { checkIdentifier, checkTableName, type TableName } from './identifiers.js';

/** The host's status values the store reads and writes. */
export interface PostgresWorkflowStatuses {
  /** A running workflow. */
  readonly running: string;
  /**
   * A workflow asked to pause and still winding down. When set, `park()` writes it and the host's
   * engine moves the workflow on to `paused`; when not, `park()` writes `paused` directly.
   */
  readonly pausing?: string | undefined;
  /** A paused workflow. */
  readonly paused: string;
}

/**
 * What the store does about the trigger that drops a parked-by-shutdown mark when its workflow leaves
 * `pausing`/`paused` (see the adapter's documentation):
 * - `'install'`: at first use, checks it and creates or replaces it when it is missing or was made for
 *   other statuses (needs the `TRIGGER` privilege on the table and `CREATE` on the marks' schema);
 * - `'verify'`: checks it, and fails with a `ConfigurationError` asking for `migrate({ stores })` when it
 *   is missing or outdated (the store never changes the database);
 * - `'off'`: no trigger; the host must call `notePaused()` on every pause a user asks for.
 */
export type MarkTriggerMode = 'install' | 'verify' | 'off';

/** The options that name the host's table and its statuses. */
export interface PostgresHostTableOptions {
  /** The host's table of workflows, `table` or `schema.table`: plain identifiers, used as written. */
  readonly table: string;
  /**
   * The id column (any type; ids are exchanged as its text form).
   * @defaultValue `'id'`
   */
  readonly idColumn?: string;
  /**
   * The status column (text, or an enum of the host's).
   * @defaultValue `'status'`
   */
  readonly statusColumn?: string;
  /**
   * The host's status values.
   * @defaultValue `{ running: 'running', paused: 'paused' }`
   */
  readonly statuses?: PostgresWorkflowStatuses;
}

/** The table options, validated, with defaults applied. */
export interface HostTable {
  readonly table: TableName;
  readonly idColumn: string;
  readonly statusColumn: string;
  readonly statuses: PostgresWorkflowStatuses;
}

const DEFAULT_STATUSES: PostgresWorkflowStatuses = Object.freeze({ running: 'running', paused: 'paused' });
/** The option names {@link compileHostTable} reads. */
export const HOST_TABLE_OPTIONS: readonly string[] = ['table', 'idColumn', 'statusColumn', 'statuses'];
/** The values of the `markTrigger` option. */
export const MARK_TRIGGER_MODES: readonly MarkTriggerMode[] = ['install', 'verify', 'off'];

/** Validates the table options found in `given` (messages prefixed with `prefix`) and applies defaults. */
export function compileHostTable(given: Record<string, unknown>, prefix = ''): HostTable {
  return Object.freeze({
    table: checkTableName(`${prefix}table`, given.table),
    idColumn: checkIdentifier(`${prefix}idColumn`, given.idColumn ?? 'id'),
    statusColumn: checkIdentifier(`${prefix}statusColumn`, given.statusColumn ?? 'status'),
    statuses: checkStatuses(given.statuses ?? DEFAULT_STATUSES, `${prefix}statuses`),
  });
}

/** Validates a `markTrigger` option. */
export function checkMarkTrigger(name: string, value: unknown): MarkTriggerMode {
  return value === undefined ? 'install' : checkOneOf(name, value, MARK_TRIGGER_MODES);
}

function checkStatuses(value: unknown, name: string): PostgresWorkflowStatuses {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    invalid(name, 'an object `{ running, pausing?, paused }`', value);
  }
  const given = checkOptionsObject(name, value, ['running', 'pausing', 'paused']);
  const running = checkName(`${name}.running`, given.running);
  const paused = checkName(`${name}.paused`, given.paused);
  const pausing = given.pausing === undefined ? undefined : checkName(`${name}.pausing`, given.pausing);
  const all = [running, paused, ...(pausing === undefined ? [] : [pausing])];
  if (new Set(all).size !== all.length) {
    throw new ConfigurationError(
      `Expected \`${name}\` to hold distinct values, got running ${describeValue(running)}, ` +
        `pausing ${describeValue(pausing)}, paused ${describeValue(paused)}`,
    );
  }
  return Object.freeze({ running, pausing, paused });
}

/** What the catalog says about the host's table. */
export interface TableInfo {
  /** The schema-qualified name the marks and the fence are kept under: `schema.table`, unquoted. */
  readonly storeKey: string;
  /** The same, schema-qualified and quoted by the server: one spelling whatever the options said. */
  readonly qualified: string;
  /** The id column's type, as `format_type` names it. */
  readonly idType: string;
  /** The id column's collation, quoted and qualified, or `undefined` for a type without one. */
  readonly idCollation: string | undefined;
}

/** Runs one read-only statement; rows as the driver parsed them. */
export type QueryRows = (text: string, values: unknown[]) => Promise<readonly unknown[]>;

/**
 * Reads the host's table from the catalog; a `ConfigurationError` names the option when the table or
 * a column does not exist (names are case-sensitive, as written).
 */
export async function inspectHostTable(query: QueryRows, host: HostTable, prefix = ''): Promise<TableInfo> {
  const rows = (await query(
    `SELECT n.nspname AS schema, c.relname AS table,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       format_type(a.atttypid, NULL) AS id_type,
       (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
        FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE co.oid = a.attcollation) AS id_collation,
       EXISTS (SELECT 1 FROM pg_attribute s
        WHERE s.attrelid = c.oid AND s.attname = $3 AND s.attnum > 0 AND NOT s.attisdropped) AS has_status
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.oid = to_regclass($1)`,
    [host.table.sql, host.idColumn, host.statusColumn],
  )) as {
    schema: string;
    table: string;
    qualified: string;
    id_type: string | null;
    id_collation: string | null;
    has_status: boolean;
  }[];
  const row = rows[0];
  if (row === undefined) {
    throw new ConfigurationError(
      `Expected \`${prefix}table\` to name an existing table, got ${describeValue(host.table.sql)}: no such ` +
        'table is visible to this connection (names are case-sensitive, as written)',
    );
  }
  if (row.id_type === null) {
    throw new ConfigurationError(
      `Expected \`${prefix}idColumn\` to name a column of ${host.table.sql}, got ${describeValue(host.idColumn)}`,
    );
  }
  if (!row.has_status) {
    throw new ConfigurationError(
      `Expected \`${prefix}statusColumn\` to name a column of ${host.table.sql}, got ${describeValue(host.statusColumn)}`,
    );
  }
  return {
    storeKey: `${row.schema}.${row.table}`,
    qualified: row.qualified,
    idType: row.id_type,
    idCollation: row.id_collation ?? undefined,
  };
}
