/**
 * The host's table as `PostgresWorkflowStore` (and `migrate({ stores })`) see it: what the catalog
 * says about it.
 *
 * @internal
 */
import { ConfigurationError } from '../../errors.js';
import { describeValue } from '../../validate.js';
import type { HostTable } from './options.js';

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
