/**
 * SQL names taken from options, for the SQLite and PostgreSQL adapters: never pasted into SQL as they
 * come. Each must be a plain identifier (letters, digits, `_` and `$`, not starting with a digit, at
 * most 63 bytes: PostgreSQL's limit, and a name both databases take alike), and is double-quoted, so
 * it is used exactly as written (case included) and cannot carry SQL. Also the literals and advisory
 * lock keys of the PostgreSQL adapters.
 *
 * @internal
 */
import { createHash } from 'node:crypto';
import { invalid } from '../validate.js';

const PLAIN = /^[A-Za-z_][A-Za-z0-9_$]*$/;
/** PostgreSQL's NAMEDATALEN - 1. */
const MAX_BYTES = 63;
const EXPECTED =
  'a plain SQL identifier (letters, digits, `_` or `$`, not starting with a digit, 1-63 bytes)';

function isPlain(value: string): boolean {
  return PLAIN.test(value) && Buffer.byteLength(value) <= MAX_BYTES;
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
  /** The table's own name. */
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

/**
 * A PostgreSQL string literal for SQL text that cannot take a parameter (DDL, trigger conditions): an
 * `E'...'` literal with backslashes and quotes escaped, correct whatever `standard_conforming_strings` says.
 */
export function literal(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * A signed 64-bit PostgreSQL advisory lock key: the first 8 bytes of the SHA-256 of the parts,
 * NUL-separated and prefixed with the schema, so two deployments in different schemas of one database
 * never collide. A decimal string, for a `$n::bigint` parameter.
 */
export function advisoryKey(schema: string, ...parts: string[]): string {
  const hash = createHash('sha256')
    .update(['graceful-drain', schema, ...parts].join('\0'))
    .digest();
  return hash.readBigInt64BE(0).toString();
}
