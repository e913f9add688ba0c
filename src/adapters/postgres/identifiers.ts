/**
 * SQL identifiers from options and the 64-bit keys of advisory locks.
 *
 * Names from options are never pasted into SQL as they come: each must be a plain identifier (letters,
 * digits, `_` and `$`, not starting with a digit, at most 63 bytes), and is double-quoted, so it is
 * used exactly as written (case included) and cannot carry SQL.
 *
 * @internal
 */

import { createHash } from 'node:crypto';
import { invalid } from '../../validate.js';

const PLAIN = /^[A-Za-z_][A-Za-z0-9_$]*$/;
/** PostgreSQL's NAMEDATALEN - 1. */
const MAX_BYTES = 63;

function isPlain(value: string): boolean {
  return PLAIN.test(value) && Buffer.byteLength(value) <= MAX_BYTES;
}

const EXPECTED =
  'a plain SQL identifier (letters, digits, `_` or `$`, not starting with a digit, 1-63 bytes)';

/** Validates a plain identifier; throws a `ConfigurationError` naming `option` and the value otherwise. */
export function checkIdentifier(option: string, value: unknown): string {
  if (typeof value !== 'string' || !isPlain(value)) invalid(option, EXPECTED, value);
  return value;
}

/** Double-quotes a validated identifier. */
export function quote(identifier: string): string {
  return `"${identifier}"`;
}

/**
 * A string literal for SQL text that cannot take a parameter (DDL, trigger conditions): an `E'...'`
 * literal with backslashes and quotes escaped, correct whatever `standard_conforming_strings` says.
 */
export function literal(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A table name from options: `table` or `schema.table`, both parts plain identifiers. */
export interface TableName {
  readonly schema: string | undefined;
  readonly table: string;
  /** The quoted, possibly schema-qualified name, ready for SQL. */
  readonly sql: string;
}

/** Validates `table` or `schema.table`; throws a `ConfigurationError` naming `option` otherwise. */
export function checkTableName(option: string, value: unknown): TableName {
  if (typeof value !== 'string')
    invalid(option, `a table name (${EXPECTED}, optionally \`schema.table\`)`, value);
  const parts = value.split('.');
  if (parts.length > 2 || !parts.every(isPlain)) {
    invalid(option, `a table name (${EXPECTED}, optionally \`schema.table\`)`, value);
  }
  const [first, second] = parts as [string, string | undefined];
  return second === undefined
    ? { schema: undefined, table: first, sql: quote(first) }
    : { schema: first, table: second, sql: `${quote(first)}.${quote(second)}` };
}

/**
 * A signed 64-bit advisory lock key: the first 8 bytes of the SHA-256 of the parts, NUL-separated and
 * prefixed with the schema, so two deployments in different schemas of one database never collide.
 * Returned as a decimal string, for a `$n::bigint` parameter.
 */
export function advisoryKey(schema: string, ...parts: string[]): string {
  const hash = createHash('sha256')
    .update(['graceful-drain', schema, ...parts].join('\0'))
    .digest();
  return hash.readBigInt64BE(0).toString();
}
