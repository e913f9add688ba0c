/**
 * `SqliteWorkflowStore.diagnose()`: does the status mapping match the host's rows? It reads the
 * statuses of the newest {@link SAMPLE} rows (by id, through the id index; the first rows in table
 * order without one), and only when none matches asks the whole table, and only through an index on
 * the status column that answers at once (never a scan).
 *
 * @internal
 */
import { quote } from '../../internal/sql-names.js';
import type { StoreWarning } from '../../workflow-store.js';
import type { SqliteDatabase } from './driver.js';
import type { CompiledStoreOptions } from './options.js';

/** How many rows `diagnose()` reads at most. */
export const SAMPLE = 1000;

/** How many distinct values a warning names. */
const SHOWN = 10;

interface Seen {
  readonly value: unknown;
  readonly n: bigint;
  readonly matched: bigint | null;
}

/** Warns when no row of a non-empty host table has one of the configured status values. */
export function diagnoseStatuses(
  db: SqliteDatabase,
  { names, statuses, table }: CompiledStoreOptions,
): StoreWarning[] {
  const host = names.table.sql;
  const id = quote(names.idColumn);
  const status = quote(names.statusColumn);
  const values = [statuses.running, statuses.pausing ?? statuses.paused, statuses.paused];
  const plan = (sql: string, ...params: unknown[]) =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map(
      (step) => step.detail,
    );
  const newest = `SELECT t.${status} AS s FROM ${host} AS t ORDER BY t.${id} DESC LIMIT ?`;
  const sorts = plan(newest, SAMPLE).some((detail) => detail.includes('TEMP B-TREE'));
  const sample = sorts ? `SELECT t.${status} AS s FROM ${host} AS t LIMIT ?` : newest;
  // Compared on the subquery's column, which keeps the status column's affinity.
  const seen = db
    .prepare(
      `SELECT s AS value, count(*) AS n, max(s IN (?, ?, ?)) AS matched
         FROM (${sample}) GROUP BY s ORDER BY n DESC, s`,
    )
    .safeIntegers(true)
    .all(...values, SAMPLE) as Seen[];
  if (seen.length === 0 || seen.some((row) => row.matched === 1n)) return [];
  const whole = seen.reduce((sum, row) => sum + Number(row.n), 0) < SAMPLE;
  let which = 'no row';
  if (!whole) {
    const exists = `SELECT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${status} IN (?, ?, ?))`;
    // Only an index search answers at once; a scan (of the table or of an index) is not bounded.
    if (!plan(exists, ...values).some((detail) => /^SCAN\b/.test(detail) && !/CONSTANT ROW/.test(detail))) {
      if (
        db
          .prepare(exists)
          .pluck()
          .get(...values) === 1
      )
        return [];
    } else {
      which = sorts
        ? `none of the first ${SAMPLE} rows`
        : `none of the ${SAMPLE} newest rows (by ${JSON.stringify(names.idColumn)})`;
    }
  }
  const configured = [
    `\`statuses.running\` ${JSON.stringify(statuses.running)}`,
    ...(statuses.pausing === undefined ? [] : [`\`statuses.pausing\` ${JSON.stringify(statuses.pausing)}`]),
    `\`statuses.paused\` ${JSON.stringify(statuses.paused)}`,
  ].join(', ');
  const shown = seen
    .slice(0, SHOWN)
    .map((row) => `${show(row.value)} (${row.n})`)
    .join(', ');
  const more = seen.length > SHOWN ? ` and ${seen.length - SHOWN} more` : '';
  return [
    {
      code: 'status-mismatch',
      message:
        `SqliteWorkflowStore: ${which} of ${JSON.stringify(table)} has a status of \`statuses\` (${configured}); ` +
        `the values of ${JSON.stringify(names.statusColumn)} seen are ${shown}${more}. ` +
        'Check `statuses`: as configured, a shutdown parks nothing and a start resumes nothing.',
    },
  ];
}

function show(value: unknown): string {
  if (value === null) return 'NULL';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint' || typeof value === 'number') return String(value);
  return '(a blob)';
}
