/**
 * SQL names from options (SQLite and PostgreSQL adapters), never pasted into SQL as they come: each is a
 * plain identifier of at most 63 bytes (PostgreSQL's limit), double-quoted so it is used exactly as
 * written and cannot carry SQL. Also the PostgreSQL literals and advisory lock keys.
 * @internal
 */
import { createHash } from 'node:crypto';
import { invalid } from '../validate.js';

const EXPECTED =
  'a plain SQL identifier (letters, digits, `_` or `$`, not starting with a digit, 1-63 bytes)';

function isPlain(value: string): boolean {
  // 63: PostgreSQL's NAMEDATALEN - 1.
  return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(value) && Buffer.byteLength(value) <= 63;
}

/** Double-quotes a plain identifier. The pattern admits no quote, so there is nothing to escape. */
export function quote(identifier: string): string {
  return `"${identifier}"`;
}

/** Checks a plain identifier (a column, a schema, a table prefix) and returns it unquoted. */
export function checkIdentifier(option: string, value: unknown): string {
  if (typeof value !== 'string' || !isPlain(value)) invalid(option, EXPECTED, value);
  return value;
}

/** A table name from options: `name` or `schema.name`. */
export interface TableName {
  /** The schema (PostgreSQL), or the attached database (SQLite), when given. */
  readonly schema: string | undefined;
  readonly name: string;
  /** The quoted, possibly qualified name, ready for SQL. */
  readonly sql: string;
}

function tableName(schema: string | undefined, name: string): TableName {
  return { schema, name, sql: schema === undefined ? quote(name) : `${quote(schema)}.${quote(name)}` };
}

/** Checks `name` or `schema.name`, each part a plain identifier. */
export function checkTableName(option: string, value: unknown): TableName {
  const parts = typeof value === 'string' ? value.split('.') : [];
  if (parts.length === 0 || parts.length > 2 || !parts.every(isPlain)) {
    invalid(option, `a table name, \`name\` or \`schema.name\`, each part ${EXPECTED}`, value);
  }
  return parts.length === 2 ? tableName(parts[0], parts[1] as string) : tableName(undefined, value as string);
}

/** A table next to `table` (same schema) whose name has `suffix` appended. */
export function siblingTable(table: TableName, suffix: string): TableName {
  return tableName(table.schema, `${table.name}${suffix}`);
}

/** A PostgreSQL `E'...'` literal for SQL without parameters (DDL), whatever `standard_conforming_strings`. */
export function literal(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * A signed 64-bit PostgreSQL advisory lock key (a decimal string for `$n::bigint`): the first 8 bytes of
 * the SHA-256 of the schema and the parts, so deployments in different schemas never collide.
 */
export function advisoryKey(schema: string, ...parts: string[]): string {
  const hash = createHash('sha256').update(['graceful-drain', schema, ...parts].join('\0'));
  return hash.digest().readBigInt64BE(0).toString();
}
