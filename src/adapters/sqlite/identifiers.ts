/**
 * SQL identifiers taken from options: validated against a plain pattern, then double-quoted, so a
 * table or column name is never pasted into SQL as it comes.
 *
 * @internal
 */

import { invalid } from '../../validate.js';

const PLAIN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A table name, possibly qualified by the schema of an attached database. */
export interface TableName {
  /** The schema (`main`, `temp` or an attached database), when given. */
  readonly schema: string | undefined;
  /** The table's own name. */
  readonly name: string;
}

/** Double-quotes a plain identifier. The pattern admits no quote, so there is nothing to escape. */
export function quote(identifier: string): string {
  return `"${identifier}"`;
}

/** Checks a plain identifier (a column name, a table prefix) and returns it unquoted. */
export function checkIdentifier(option: string, value: unknown): string {
  if (typeof value !== 'string' || !PLAIN.test(value)) {
    invalid(option, 'a plain SQL identifier (letters, digits and `_`, not starting with a digit)', value);
  }
  return value;
}

/** Checks a table name, `name` or `schema.name`, each part a plain identifier. */
export function checkTableName(option: string, value: unknown): TableName {
  if (typeof value === 'string') {
    const parts = value.split('.');
    if (parts.length <= 2 && parts.every((part) => PLAIN.test(part))) {
      return parts.length === 2
        ? { schema: parts[0] as string, name: parts[1] as string }
        : { schema: undefined, name: value };
    }
  }
  return invalid(
    option,
    'a plain SQL table name, optionally schema-qualified (`name` or `schema.name`, letters, digits and `_`)',
    value,
  );
}

/** The quoted, possibly qualified, SQL form of a table name. */
export function quoteTable(table: TableName): string {
  return table.schema === undefined ? quote(table.name) : `${quote(table.schema)}.${quote(table.name)}`;
}

/** A table next to `table` (same schema) whose name has `suffix` appended. */
export function siblingTable(table: TableName, suffix: string): TableName {
  return { schema: table.schema, name: `${table.name}${suffix}` };
}
