/**
 * The statements of `PostgresWorkflowStore`, built once from validated, quoted names, and the catalog
 * read of the host's table. Ids travel as text, compared with the id column in its own type (`byType`,
 * so its index serves) or, for a batch with an id not of that type, as text.
 *
 * @internal
 */
import { ConfigurationError } from '../../errors.js';
import { checkTableName, literal, siblingTable } from '../../internal/sql-names.js';
import { describeValue } from '../../validate.js';
import type { HostTable } from './options.js';

/**
 * Set by the store's unpark for its transaction: the mark trigger skips the rows the store's own statements
 * resume (their marks already deleted), but not rows a host's trigger changes in cascade (see mark-trigger.ts).
 */
export const UNPARKING = 'graceful_drain.unparking';
/** Set by the fence check for its transaction: `ok` when the call may write (see `fence` below). */
const FENCE = 'graceful_drain.fence';
/** True when the fence check of the transaction let the call write: a batch statement writes nothing else. */
const FENCE_OK = `(SELECT current_setting('${FENCE}', true)) = 'ok'`;

/**
 * `text` with its parameters `$1`, `$2`... replaced by literals of `values`, for the simple protocol (which
 * takes several statements in one round trip, but no parameters): strings as escaped `E'...'` literals,
 * string arrays as array literals in one, `null` as `NULL`, numbers, bigints and booleans as written.
 * Quoted identifiers and string literals of `text` are left as they are.
 */
export function inline(text: string, values: readonly unknown[]): string {
  return text.replace(/'(?:[^']|'')*'|"[^"]*"|\$(\d+)/g, (match, n: string | undefined) => {
    if (n === undefined) return match;
    const value = values[Number(n) - 1];
    if (value === null || value === undefined) return 'NULL';
    if (typeof value === 'string') return literal(value);
    if (typeof value === 'number' || typeof value === 'bigint') return String(value);
    if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
    if (Array.isArray(value)) {
      const items = value.map((v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
      return literal(`{${items.join(',')}}`);
    }
    throw new TypeError(`inline(): cannot inline ${typeof value}`);
  });
}

/**
 * The id column types a resume may walk by range (`unparkRange`): text whose `::text` is the value itself,
 * so that the marks' ids name exactly the rows they came from.
 */
const RANGE_TYPES = new Set(['text', 'character varying']);
/**
 * How many rows of the host's a resume by range walks per workflow of the page, at most (and 16 more): a
 * range where the page's workflows are sparser than that (finished workflows between them) goes by the
 * marks, so the walk never costs much more than the page.
 */
const RANGE_SPREAD = 2;

/**
 * A column of a resume page's row (`commit`) that sets the transaction to commit without waiting for the
 * WAL flush when more marks follow the page (`page` listed `$2 + 1`), as the session is configured else.
 */
const DEFER_UNLESS_LAST = `,
        set_config('synchronous_commit', CASE WHEN (SELECT count(*) FROM page) > $2 THEN 'off'
          ELSE current_setting('synchronous_commit') END, true) AS commit`;

/** Runs one statement, resolving with its rows. */
export type QueryRows = (text: string, values: unknown[]) => Promise<readonly unknown[]>;

/** What the catalog says about the host's table: see {@link inspectHostTable}. */
export type TableInfo = Awaited<ReturnType<typeof inspectHostTable>>;

/** A column's type and collation, as the catalog names them (`a` a `pg_attribute` row). */
// A length-typed column is compared as its unbounded type: `character` alone means `character(1)`, to which
// a cast would cut every id to its first character (`bpchar` pads and compares as `character(n)` does).
const typeOf = (a: string, prefix: string): string => `
       CASE ${a}.atttypid WHEN 'bpchar'::regtype THEN 'bpchar' WHEN 'bit'::regtype THEN 'bit varying'
         ELSE format_type(${a}.atttypid, NULL) END AS "${prefix}Type",
       (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
        FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE co.oid = ${a}.attcollation) AS "${prefix}Collation"`;
const column = (a: string, name: string): string =>
  `LEFT JOIN pg_attribute ${a} ON ${a}.attrelid = c.oid AND ${a}.attname = ${name} AND ${a}.attnum > 0 AND NOT ${a}.attisdropped`;

/**
 * Reads the host's table from the catalog: `storeKey` (`schema.table`, the key of its marks and fence),
 * `qualified` (quoted by the server), the id column's type and collation, and the owner column's when
 * the store names one; a `ConfigurationError` names the option (after `prefix`) when the table or a
 * column does not exist.
 */
export async function inspectHostTable(query: QueryRows, host: HostTable, prefix = '') {
  const [row] = (await query(
    `SELECT n.nspname || '.' || c.relname AS "storeKey",
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,${typeOf('a', 'id')},${typeOf('o', 'owner')},
       EXISTS (SELECT 1 FROM pg_attribute s
        WHERE s.attrelid = c.oid AND s.attname = $3 AND s.attnum > 0 AND NOT s.attisdropped) AS "hasStatus",
       c.relkind = 'p' OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) AS "hasChildren",
       EXISTS (SELECT 1 FROM pg_index x
        WHERE x.indrelid = c.oid AND x.indkey[0] = a.attnum AND (x.indoption[0] & 1) = 1) AS "idDescending"
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     ${column('a', '$2')}
     ${column('o', '$4')}
     WHERE c.oid = to_regclass($1)`,
    [host.table.sql, host.idColumn, host.statusColumn, host.ownerColumn ?? null],
  )) as {
    storeKey: string;
    qualified: string;
    idType: string | null;
    idCollation: string | null;
    ownerType: string | null;
    ownerCollation: string | null;
    hasStatus: boolean;
    hasChildren: boolean;
    idDescending: boolean;
  }[];
  if (row === undefined) {
    throw new ConfigurationError(
      `Expected \`${prefix}table\` to name an existing table, got ${describeValue(host.table.sql)}: no such ` +
        'table is visible to this connection (names are case-sensitive, as written)',
    );
  }
  const [option, value] =
    row.idType === null ? ['idColumn', host.idColumn] : ['statusColumn', host.statusColumn];
  if (row.idType === null || !row.hasStatus) {
    throw new ConfigurationError(
      `Expected \`${prefix}${option}\` to name a column of ${host.table.sql}, got ${describeValue(value)}`,
    );
  }
  if (host.ownerColumn !== undefined && row.ownerType === null) {
    throw new ConfigurationError(
      `Expected \`${prefix}ownerColumn\` to name a column of ${host.table.sql}, got ${describeValue(host.ownerColumn)}`,
    );
  }
  const { storeKey, qualified, idType } = row;
  const owner =
    row.ownerType === null ? undefined : { type: row.ownerType, collation: row.ownerCollation ?? undefined };
  // A partitioned table, or one with inheritance children, spans several tables: a row's ctid is unique
  // within one of them only, so its rows are written by key (see storeSql).
  const byKey = row.hasChildren;
  // An index that orders the ids descending could serve a walk of their range, which would then lock the
  // rows against id order: such a table's resume goes by its marks (see `unparkRange`).
  const byRange = !byKey && RANGE_TYPES.has(idType) && !row.idDescending;
  return { storeKey, qualified, idType, idCollation: row.idCollation ?? undefined, owner, byKey, byRange };
}

/**
 * The generation record's tables in `schema` (validated), named from the marks table `parked`:
 * `parked_generations`, `parked_generation_members`, `parked_recoveries`, and the incarnations seen and
 * evicted, `parked_incarnations`; quoted and qualified.
 */
export function recoveryTables(schema: string) {
  const marks = checkTableName('schema', `${schema}.parked`);
  const [G, M, R, I] = ['_generations', '_generation_members', '_recoveries', '_incarnations'].map(
    (s) => siblingTable(marks, s).sql,
  );
  return { G: G as string, M: M as string, R: R as string, I: I as string };
}

/**
 * The deduplicated input ids of `$1`, each with the position of its first occurrence; `fenced`: none
 * unless the transaction's fence check let it write.
 */
const input = (fenced: boolean): string => `input AS (
    SELECT u.id, min(u.ord) AS ord FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord)
    ${fenced ? `WHERE ${FENCE_OK} ` : ''}GROUP BY u.id)`;

/**
 * Replaces a stale mark of a running workflow (left by a store without the mark trigger). Without it a
 * mark is a plain insert, about half the work of an upsert: with the trigger, a running workflow has no
 * mark, and the store retries a batch that meets one (`unique_violation`) with this clause.
 */
const REPLACE_MARK = `
        ON CONFLICT (store_key, workflow_id) DO UPDATE
          SET member_id = EXCLUDED.member_id, token = EXCLUDED.token, parked_at = now()`;

/** The statements of one store. */
export type StoreSql = ReturnType<typeof storeSql>;

/**
 * Builds the statements of a store from quoted names (`S` the marks' schema), and the id column's type
 * and collation as the catalog names them.
 */
export function storeSql(
  T: string,
  ID: string,
  ST: string,
  S: string,
  { G, M, R, I }: ReturnType<typeof recoveryTables>,
  info: TableInfo,
  OWNER?: string,
) {
  const as = (type: { type: string; collation: string | undefined }, text: string): string =>
    `(${text})::${type.type}${type.collation === undefined ? '' : ` COLLATE ${type.collation}`}`;
  // Text as a value of the id column, in the column's collation: comparisons the column's index serves.
  const asId = (text: string): string => as({ type: info.idType, collation: info.idCollation }, text);
  const { owner } = info;
  // How a statement that listed rows writes them again: by their physical row (no second index lookup),
  // or by key where ctids repeat (a partitioned or inherited table: each partition starts at (0,1), and a
  // write by ctid alone would reach the other partitions' rows at the same place).
  const ROW = info.byKey ? ID : 'ctid';
  // The rows `t` of the ids `i` of `input` whose status is `status`. By type, each is found by primary key
  // whatever the statistics say (a bulk park or resume leaves them stale): from an array the planner
  // cannot size, the status tested `IS TRUE`, which no status index serves. As text, by any plan.
  const inputIn = (byType: boolean, status: string): string =>
    byType
      ? `t.${ID} = ${asId('i.id')} AND t.${ID} = ANY(ARRAY(SELECT ${asId('x.id')} FROM input x))
          AND (t.${ST} = ${status}) IS TRUE`
      : `(t.${ID}::text COLLATE "C") = (i.id COLLATE "C") AND t.${ST} = ${status}`;
  /**
   * Unparks the marks `where` selects (of `parked p`; by id in "C" order, the first `$2 + 1` when
   * `paged`, the first `$2` only written), one statement: $1 store key, $2 limit, $3 running, $4 paused
   * [, $5 pausing]. The workflows of those marks are locked first (`held`, their latest status read): the
   * order the mark trigger takes (a host's update holds its row, then the trigger deletes the mark), so
   * the two never deadlock. Then every mark whose workflow is not pausing is deleted, and the workflows of
   * the marks deleted still `paused` are resumed; a mark another transaction deleted or changed meanwhile
   * (`notePaused`, the trigger) is left alone and its workflow not resumed. The marks are deleted by
   * their row, and the workflows resumed by the row their lock found (no second lookup); a workflow
   * another transaction updated since the statement began is past its snapshot: `q`, resumed by key
   * (`resumeByKey`) in the same transaction. The workflows are found by key from an array and locked
   * in id order (`ORDER BY`: a lock above the order, however the planner finds the rows, even by a scan
   * of a table it takes to be small, whose rows may be stored in any order). One row: `page`, a JSON array of the ids,
   * each after a character: `r` resumed, `w` still pausing (left parked), `q` to resume by key, `s`
   * skipped. `deferLast`: the transaction commits without waiting for the WAL flush (`synchronous_commit`
   * off) when more marks follow the page; the last page's commit waits, as the session is configured,
   * and with it every page before it.
   */
  const unparkMarks = (withPausing: boolean, where: string, paged: boolean, deferLast = false): string => `
      WITH page AS MATERIALIZED (
        SELECT p.ctid AS mark, p.workflow_id, row_number() OVER (ORDER BY p.workflow_id) AS n
        FROM ${S}.parked p
        ${where}
        ORDER BY p.workflow_id${paged ? ' LIMIT $2 + 1' : ''}),
      held AS MATERIALIZED (
        SELECT t.${ID} AS key, t.${ROW} AS row, t.${ST}::text = $4 AS paused${withPausing ? `, t.${ST}::text = $5 AS pausing` : ''}
        FROM ${T} t
        WHERE ${FENCE_OK} AND t.${ID} = ANY(ARRAY(SELECT ${asId('x.workflow_id')} FROM page x WHERE x.n <= $2))
        ORDER BY t.${ID}
        FOR NO KEY UPDATE OF t),
      listed AS (
        SELECT l.n, l.mark, l.workflow_id, h.row, h.paused IS TRUE AS paused,
          ${withPausing ? 'h.pausing IS TRUE' : 'false'} AS pausing
        FROM page l LEFT JOIN held h ON h.key = ${asId('l.workflow_id')} WHERE l.n <= $2),
      cleared AS (
        DELETE FROM ${S}.parked p
        WHERE ${FENCE_OK} AND p.ctid = ANY(ARRAY(SELECT l.mark FROM listed l WHERE NOT l.pausing))
          AND p.store_key = $1
        RETURNING p.workflow_id),
      resumed AS (
        UPDATE ${T} AS t SET ${ST} = $3
        WHERE t.${ROW} = ANY(ARRAY(SELECT l.row FROM listed l
            WHERE l.paused AND l.workflow_id IN (SELECT c.workflow_id FROM cleared c)))
          AND (t.${ST} = $4) IS TRUE
        RETURNING t.${ID} AS key)
      SELECT json_agg(CASE WHEN g.n IN (SELECT l.n FROM listed l WHERE l.pausing) THEN 'w'
          WHEN ${asId('g.workflow_id')} IN (SELECT r.key FROM resumed r) THEN 'r'
          WHEN g.workflow_id IN (SELECT c.workflow_id FROM cleared c)
            AND g.n IN (SELECT l.n FROM listed l WHERE l.paused) THEN 'q'
          ELSE 's' END || g.workflow_id
        ORDER BY g.n)::text AS page${deferLast ? DEFER_UNLESS_LAST : ''}
      FROM page g`;

  /**
   * The rest of an unpark: $1 the ids (marks' ids) whose mark it deleted and whose workflow, locked,
   * was `paused` in a version newer than the statement's snapshot (another transaction updated it
   * meanwhile: its row moved on), $2 running, $3 paused. Resumes those still paused, by primary key.
   * Rows: `workflow_id` of each resumed.
   */
  const resumeByKey = `
      UPDATE ${T} AS t SET ${ST} = $2
      WHERE t.${ID} = ANY(ARRAY(SELECT ${asId('u.id')} FROM unnest($1::text[]) AS u (id))) AND (t.${ST} = $3) IS TRUE
      RETURNING t.${ID}::text COLLATE "C" AS workflow_id`;
  /**
   * The writes of a recovery (`recover`, `recoverPage`) over `hit`, its rows locked, each `spent` or not
   * (`of(spent)`: an array of their keys): a spent one moves to $6 (with `failed`), its count and mark
   * dropped; the others are counted, and with `park` set to $5 and marked ($7 member, $8 token).
   */
  const recoverWrites = (
    of: (spent: boolean) => string,
    replace: boolean,
    park: boolean,
    failed: boolean,
  ): string => `${
    failed
      ? `
      failed AS (UPDATE ${T} AS t SET ${ST} = $6 WHERE t.${ID} = ${of(true)}),`
      : ''
  }${
    park
      ? `
      paused AS (UPDATE ${T} AS t SET ${ST} = $5 WHERE t.${ID} = ${of(false)}),`
      : ''
  }
      counted AS (
        INSERT INTO ${R} AS r (store_key, workflow_id, count)
        SELECT $3, workflow_id, 1 FROM hit WHERE NOT spent${
          replace ? '\n        ON CONFLICT (store_key, workflow_id) DO UPDATE SET count = r.count + 1' : ''
        }),
      uncounted AS (
        DELETE FROM ${R} r USING hit h WHERE h.spent AND r.store_key = $3 AND r.workflow_id = h.workflow_id),${
          park
            ? `
      marked AS (
        INSERT INTO ${S}.parked (store_key, workflow_id, member_id, token)
        SELECT $3, workflow_id, $7, $8::bigint FROM hit WHERE NOT spent${replace ? REPLACE_MARK : ''}),`
            : ''
        }
      unmarked AS (
        DELETE FROM ${S}.parked p USING hit h WHERE h.spent AND p.store_key = $3 AND p.workflow_id = h.workflow_id)`;
  return {
    /**
     * $1 running, $2 limit [, $3 cursor]. One row: `ids`, in the id column's order, a JSON array (one row
     * rather than a row per id: far less for the driver to decode).
     */
    listActive: (withCursor: boolean) => `
      SELECT json_agg(x.id ORDER BY x.n)::text AS ids FROM (
        SELECT t.${ID}::text AS id, row_number() OVER (ORDER BY t.${ID}) AS n FROM ${T} t
        WHERE t.${ST} = $1${withCursor ? ` AND t.${ID} > ${asId('$3')}` : ''} ORDER BY t.${ID} LIMIT $2) x`,
    /** $1 store key, $2 limit [, $3 cursor]. Rows: `id`, `member_id`, `token`, `status` (read by id). */
    listParked: (withCursor: boolean) => `
      SELECT p.workflow_id AS id, p.member_id, p.token::text AS token,
        (SELECT t.${ST}::text FROM ${T} t WHERE t.${ID} = ${asId('p.workflow_id')}) AS status
      FROM (SELECT workflow_id, member_id, token FROM ${S}.parked
        WHERE store_key = $1${withCursor ? ' AND workflow_id > ($3 COLLATE "C")' : ''}
        ORDER BY workflow_id LIMIT $2) p
      ORDER BY p.workflow_id`,
    /**
     * The fence check of a write, one statement: $1 store key, then (each when asked for) the token and
     * the incarnations to check with their member ids (aligned arrays, no repeats). Row: `token`, the
     * highest now recorded (null without a token), its row locked to the end; `evicted`, the member id
     * and incarnation of one of the incarnations evicted, else null. Each incarnation's row of the
     * incarnations table is created or locked to the end of the transaction: an eviction waits for the
     * call, or the call sees it (on the row's latest version, whatever the statement's snapshot).
     * `unparking`: also sets the flag the mark trigger skips the transaction's rows by, in the same trip.
     * Sets the transaction's fence flag too: `ok` when the call may write (the token is the highest, no
     * incarnation evicted); the batch statements (park, unpark, recover) write nothing otherwise.
     */
    fence: ({ token, incarnations, unparking }: FenceCheck) => {
      let n = 1;
      const [tokenParam, incarnationsParam, membersParam] = [token, incarnations, incarnations].map((on) =>
        on ? `$${++n}` : '',
      );
      const seen = incarnations
        ? `WITH seen AS (
          INSERT INTO ${I} AS e (store_key, incarnation, member_id)
          SELECT $1, u.incarnation, u.member_id
          FROM unnest(${incarnationsParam}::text[], ${membersParam}::text[]) AS u (incarnation, member_id)
          ON CONFLICT (store_key, incarnation) DO UPDATE SET evicted_at = e.evicted_at
            WHERE e.evicted_at IS NOT NULL
          RETURNING e.member_id, e.incarnation, e.evicted_at IS NOT NULL AS evicted)`
        : '';
      const evicted = incarnations
        ? '(SELECT ARRAY[s.member_id, s.incarnation] FROM seen s WHERE s.evicted LIMIT 1)'
        : 'NULL::text[]';
      const flag = (highest: string): string =>
        `set_config('${FENCE}', CASE WHEN ${highest} AND ${evicted} IS NULL THEN 'ok' ELSE 'no' END, true)`;
      const columns = (highest: string): string =>
        `${evicted} AS evicted, ${flag(highest)} AS flag` +
        (unparking ? `, set_config('${UNPARKING}', 'on', true) AS unparking` : '');
      return token
        ? `${seen}
      INSERT INTO ${S}.store_fences AS f (store_key, token) VALUES ($1, ${tokenParam}::bigint)
      ON CONFLICT (store_key) DO UPDATE SET token = GREATEST(f.token, EXCLUDED.token)
      RETURNING f.token::text AS token, ${columns(`f.token = ${tokenParam}::bigint`)}`
        : `${seen}
      SELECT NULL::text AS token, ${columns('true')}`;
    },
    /**
     * $1 ids, $2 new status, $3 running, $4 store key, $5 member, $6 token. Rows: `ord` of the parked.
     * `replace`: replaces a mark already there (else a plain insert, which fails on one).
     */
    park: (byType: boolean, replace: boolean) => `
      WITH ${input(true)},
      paused AS (
        UPDATE ${T} AS t SET ${ST} = $2 FROM input i
        WHERE ${inputIn(byType, '$3')}
        RETURNING t.${ID}::text AS workflow_id, i.ord),
      marked AS (
        INSERT INTO ${S}.parked (store_key, workflow_id, member_id, token)
        SELECT $4, workflow_id, $5, $6::bigint FROM paused${replace ? REPLACE_MARK : ''})
      SELECT ord FROM paused`,
    /**
     * `listActive` and `park` of what it lists, one statement: $1 running, $2 limit, $3 new status, $4
     * store key, $5 member, $6 token [, $7 cursor]. One row: `page`, the page as `listActive` reads it
     * (`limit + 1` ids at most, in the id column's order) as a JSON array of the ids, each after a
     * character: `p` paused and marked now, `s` not. The page is one ordered scan, `listActive`'s; its first
     * `limit` rows are then updated where the scan found them (by their row, no second index lookup) and
     * marked. A row another transaction updated since the statement began is not (its row moved on):
     * `s`, though it may still be running; the caller parks those again by key (`park`) in the same
     * transaction. One row rather than a row per id: far less for the driver to decode. `replace`:
     * replaces a mark already there, as park() does.
     */
    parkPage: (withCursor: boolean, replace: boolean) => `
      WITH page AS MATERIALIZED (
        SELECT t.${ROW} AS row, t.${ID} AS key, row_number() OVER (ORDER BY t.${ID}) AS n FROM ${T} t
        WHERE t.${ST} = $1${withCursor ? ` AND t.${ID} > ${asId('$7')}` : ''}
        ORDER BY t.${ID} LIMIT $2 + 1),
      paused AS (
        UPDATE ${T} AS t SET ${ST} = $3
        WHERE ${FENCE_OK} AND t.${ROW} = ANY(ARRAY(SELECT p.row FROM page p WHERE p.n <= $2)) AND t.${ST} = $1
        RETURNING t.${ID} AS key),
      marked AS (
        INSERT INTO ${S}.parked (store_key, workflow_id, member_id, token)
        SELECT $4, key::text, $5, $6::bigint FROM paused${replace ? REPLACE_MARK : ''})
      SELECT json_agg(CASE WHEN p.key IN (SELECT x.key FROM paused x) THEN 'p' ELSE 's' END || p.key::text
        ORDER BY p.n)::text AS page
      FROM page p`,
    resumeByKey,
    /**
     * `unpark` of `$6` (ids), one statement: as `unparkPage` below, the marks of those ids (a repeat once)
     * in place of a page, `$2` their number at most. One row: `page`, the marks found (by id in "C"
     * order), as `unparkPage`'s.
     */
    unpark: (withPausing: boolean) =>
      unparkMarks(
        withPausing,
        `WHERE p.store_key = $1
          AND p.workflow_id = ANY(ARRAY(SELECT u.id COLLATE "C" FROM unnest($6::text[]) AS u (id)))`,
        false,
      ),
    /**
     * `listParked` and `unpark` of what it lists but those still pausing, one statement: $1 store key,
     * $2 limit, $3 running, $4 paused [, $5 pausing] [, $6 cursor]. One row: `page`, the page as
     * `listParked` reads it (`limit + 1` marks at most, by id in "C" order), each id after a character:
     * `r` resumed, `w` still pausing (left parked), `s` skipped. See `unparkMarks` (`deferLast`).
     */
    unparkPage: (withPausing: boolean, withCursor: boolean, deferLast: boolean) =>
      unparkMarks(
        withPausing,
        `WHERE p.store_key = $1${withCursor ? ' AND p.workflow_id > ($6 COLLATE "C")' : ''}`,
        true,
        deferLast,
      ),
    /**
     * `unparkPage` by the host's range, where the id column holds text and no index orders it descending
     * (`undefined` otherwise): $1 store key, $2 limit, $3 running, $4 paused [, $5 cursor]. The page's
     * marks are listed as `unparkPage` lists them, by id in "C" order; the host's primary key is then
     * walked from the page's first id to its last, in the column's own collation and at most
     * `RANGE_SPREAD` rows per mark (and 16), and the page's workflows found `paused` there are counted
     * (`found`). Only when every mark of the page is found so (`fast`), one `UPDATE` walks the range again
     * in id order (the index scan locks the rows as it goes: the order `unparkMarks` takes) and resumes
     * those still paused, whose marks are then deleted (after the rows are locked: the mark trigger's
     * order). No other row is written: not a workflow a user paused inside the range (it has no mark, so
     * it is not among those found). Otherwise (a mark whose workflow is `pausing` or gone, ids whose order
     * in the column's collation is not the marks', or a range too sparse) nothing is written. The
     * transaction must forbid sequential and bitmap scans (`SET LOCAL`), so that the walk is an index's
     * that starts with the id (ascending: see `inspectHostTable`). One row: `fast`; `whole`, every
     * workflow of the page resumed and every mark deleted by this statement (when not, a concurrent
     * transaction changed a workflow or dropped a mark, `notePaused()`: the caller rolls the transaction
     * back and runs `unparkPage`, which resumes a workflow only when it deleted its mark); `page` as
     * `unparkPage`'s, each id after `r` (resumed) or `w`; with `deferLast`, the commit setting as there.
     */
    unparkRange: !info.byRange
      ? undefined
      : (withCursor: boolean, deferLast: boolean) => {
          // The page's own bounds, its first and last id: rows before the first are none of its business.
          const range = `t.${ID} >= ${asId('(SELECT s.first FROM span s)')} AND t.${ID} <= ${asId('(SELECT s.last FROM span s)')}`;
          // `IS TRUE`: a test the planner keeps as a subquery, hashed once, rather than turn it into a join
          // (which it plans as a loop over the page for every row, taking the page for a few rows).
          const key = `(t.${ID}::text COLLATE "C")`;
          return `
      WITH page AS MATERIALIZED (
        SELECT p.workflow_id, row_number() OVER (ORDER BY p.workflow_id) AS n
        FROM ${S}.parked p
        WHERE p.store_key = $1${withCursor ? ' AND p.workflow_id > ($5 COLLATE "C")' : ''}
        ORDER BY p.workflow_id LIMIT $2 + 1),
      span AS MATERIALIZED (
        SELECT count(*) AS k, min(x.workflow_id) AS first, max(x.workflow_id) AS last FROM page x WHERE x.n <= $2),
      found AS MATERIALIZED (
        SELECT w.key FROM (
          SELECT ${key} AS key, t.${ST} AS status FROM ${T} t WHERE ${range}
          ORDER BY t.${ID} LIMIT ${RANGE_SPREAD} * (SELECT s.k FROM span s) + 16) w
        WHERE (w.status = $4) IS TRUE AND (w.key IN (SELECT x.workflow_id FROM page x WHERE x.n <= $2)) IS TRUE),
      judged AS MATERIALIZED (SELECT (SELECT count(*) FROM found) = (SELECT s.k FROM span s) AS fast),
      resumed AS (
        UPDATE ${T} AS t SET ${ST} = $3
        WHERE ${FENCE_OK} AND (SELECT j.fast FROM judged j) AND ${range} AND (t.${ST} = $4) IS TRUE
          AND (${key} IN (SELECT f.key FROM found f)) IS TRUE
        RETURNING ${key} AS key),
      cleared AS (
        DELETE FROM ${S}.parked p
        WHERE p.store_key = $1${withCursor ? ' AND p.workflow_id > ($5 COLLATE "C")' : ''}
          AND p.workflow_id <= (SELECT s.last FROM span s)
          AND ((SELECT count(*) FROM resumed) = (SELECT s.k FROM span s)
            OR (p.workflow_id IN (SELECT r.key FROM resumed r)) IS TRUE)
        RETURNING 1)
      SELECT (SELECT j.fast FROM judged j) AS fast,
        (SELECT count(*) FROM resumed) = (SELECT s.k FROM span s)
          AND (SELECT count(*) FROM cleared) = (SELECT s.k FROM span s) AS whole,
        json_agg(CASE WHEN g.workflow_id IN (SELECT r.key FROM resumed r) THEN 'r' ELSE 'w' END || g.workflow_id
          ORDER BY g.n)::text AS page${deferLast ? DEFER_UNLESS_LAST : ''}
      FROM page g`;
        },
    /** $1 ids, $2 store key. Rows: `ord` of each dropped mark (ids taken to the column's text form). */
    notePaused: (byType: boolean) => `
      WITH ${input(false)},
      dropped AS (
        DELETE FROM ${S}.parked p USING input i
        WHERE p.store_key = $2
          AND p.workflow_id = ${byType ? `(${asId('i.id')})::text COLLATE "C"` : '(i.id COLLATE "C")'}
        RETURNING i.ord)
      SELECT ord FROM dropped`,
    /**
     * $1 the configured statuses, $2 sample size, $3 values shown. Row: `matched` (a row has one),
     * `seen` (distinct values of a sample, as text: enum and integer columns compare too).
     */
    diagnose: `
      SELECT EXISTS (SELECT 1 FROM ${T} t WHERE t.${ST}::text = ANY($1::text[])) AS matched,
        ARRAY(SELECT DISTINCT x.s FROM (SELECT t.${ST}::text AS s FROM ${T} t LIMIT $2) x
          ORDER BY 1 LIMIT $3) AS seen`,
    analyzeMarks: `ANALYZE ${S}.parked`,
    /** $1 store key, $2 group. Row: `generation` (text), `dirty`, `member_ids` and `incarnations` (aligned). */
    readGeneration: `
      SELECT coalesce(g.generation, 0)::text AS generation, coalesce(g.dirty, false) AS dirty,
        ARRAY(SELECT m.member_id FROM ${M} m WHERE m.store_key = $1 AND m.grp = $2
          ORDER BY m.member_id) AS member_ids,
        ARRAY(SELECT m.incarnation FROM ${M} m WHERE m.store_key = $1 AND m.grp = $2
          ORDER BY m.member_id) AS incarnations
      FROM (VALUES (1)) AS one (x) LEFT JOIN ${G} g ON g.store_key = $1 AND g.grp = $2`,
    /** $1 store key, $2 group, $3 member, $4 incarnation. */
    enterGeneration: `
      INSERT INTO ${M} (store_key, grp, member_id, incarnation) VALUES ($1, $2, $3, $4)
      ON CONFLICT (store_key, grp, member_id) DO UPDATE SET incarnation = EXCLUDED.incarnation`,
    /**
     * $1 store key, $2 group, $3 member ids, $4 end (`none`, `clean`, `dirty`). One statement: the members
     * removed; `dirty` sets the flag; `clean` clears it, raises the generation and drops every count. The
     * members' incarnations not evicted are forgotten (a later call takes its row again).
     */
    leaveGeneration: `
      WITH gone AS (
        DELETE FROM ${M} m WHERE m.store_key = $1 AND m.grp = $2 AND m.member_id = ANY($3::text[])),
      ended AS (
        INSERT INTO ${G} AS g (store_key, grp, generation, dirty)
        SELECT $1, $2, CASE WHEN $4::text = 'clean' THEN 1 ELSE 0 END, $4::text = 'dirty'
        WHERE $4::text <> 'none'
        ON CONFLICT (store_key, grp) DO UPDATE
          SET generation = g.generation + EXCLUDED.generation, dirty = EXCLUDED.dirty),
      reset AS (DELETE FROM ${R} r WHERE r.store_key = $1 AND $4::text = 'clean'),
      seen AS (
        DELETE FROM ${I} e WHERE e.store_key = $1 AND e.member_id = ANY($3::text[]) AND e.evicted_at IS NULL)
      SELECT 1`,
    /**
     * $1 ids, $2 running, $3 store key, $4 max recoveries, $5 park's new status, $6 failed status, $7
     * member, $8 token; `park` (mode park) and `failed` (a failed status configured) choose what is
     * written. One row: `hit`, the `ord` of each running workflow, locked (an id given twice, in any
     * spelling, once), `-` before it when spent (recovered $4 times already), comma-separated. A spent
     * one moves to $6 (with `failed`), its count and mark dropped; the others are counted, and with `park`
     * set to $5 and marked as park() does. Every row is reached by primary key, however stale the
     * statistics (the recovery itself makes them so): the host's from an array the planner cannot size,
     * the counts one subquery per row, the spent ones' counts and marks from an array. `replace`: raises
     * a count and replaces a mark already there (else plain inserts, which fail on one: a workflow
     * recovered before since the last clean end).
     */
    recover: (byType: boolean, replace: boolean, park: boolean, failed: boolean) => {
      // The workflows of `hit` spent (or not): an array, the planner never scans the host's table for it.
      const of = (spent: boolean): string =>
        `ANY(ARRAY(SELECT ${asId('h.workflow_id')} FROM hit h WHERE ${spent ? '' : 'NOT '}h.spent))`;
      return `
      WITH input AS (${
        byType
          ? `
        SELECT DISTINCT ON (x.key) x.key, x.ord FROM (
          SELECT ${asId('u.id')} AS key, u.ord FROM unnest($1::text[]) WITH ORDINALITY AS u (id, ord)
          WHERE ${FENCE_OK}) x
        ORDER BY x.key, x.ord`
          : `
        SELECT u.id COLLATE "C" AS key, min(u.ord) AS ord FROM unnest($1::text[]) WITH ORDINALITY AS u (id, ord)
        WHERE ${FENCE_OK} GROUP BY u.id`
      }),
      hit AS (
        SELECT t.${ID}::text COLLATE "C" AS workflow_id, i.ord,
          coalesce((SELECT r.count FROM ${R} r
            WHERE r.store_key = $3 AND r.workflow_id = t.${ID}::text COLLATE "C"), 0) >= $4::bigint AS spent
        FROM input i JOIN ${T} t ON ${
          byType
            ? `t.${ID} = i.key AND t.${ID} = ANY(ARRAY(SELECT x.key FROM input x)) AND (t.${ST} = $2) IS TRUE`
            : `(t.${ID}::text COLLATE "C") = i.key AND t.${ST} = $2`
        }
        FOR NO KEY UPDATE OF t),${recoverWrites(of, replace, park, failed)}
      SELECT string_agg(CASE WHEN spent THEN '-' ELSE '' END || ord, ',') AS hit FROM hit`;
    },
    /**
     * `listActive` and `recover` of what it lists, one statement: $1 running, $2 limit, $3 store key, $4
     * max recoveries, $5 park's new status, $6 failed status, $7 member, $8 token [, $9 cursor]; `park`,
     * `failed` and `replace` as `recover`'s. The page is `listActive`'s (one ordered scan, `limit + 1`
     * ids at most, in the id column's order); its first `limit` are then recovered as `recover` recovers
     * them: each locked by primary key (a row another transaction updated since the statement began is
     * found in its latest version, its status tested again), counted, parked or moved to the failed
     * status. One row: `page`, a JSON array of the listed ids, each after a character: `r` recovered
     * (counted, and parked with `park`), `f` spent (failed), `s` skipped (no longer running).
     */
    recoverPage: (withCursor: boolean, replace: boolean, park: boolean, failed: boolean) => {
      const of = (spent: boolean): string =>
        `ANY(ARRAY(SELECT h.key FROM hit h WHERE ${spent ? '' : 'NOT '}h.spent))`;
      return `
      WITH page AS MATERIALIZED (
        SELECT t.${ID} AS key, row_number() OVER (ORDER BY t.${ID}) AS n FROM ${T} t
        WHERE t.${ST} = $1${withCursor ? ` AND t.${ID} > ${asId('$9')}` : ''}
        ORDER BY t.${ID} LIMIT $2 + 1),
      hit AS MATERIALIZED (
        SELECT t.${ID} AS key, t.${ID}::text COLLATE "C" AS workflow_id, p.n,
          coalesce((SELECT r.count FROM ${R} r
            WHERE r.store_key = $3 AND r.workflow_id = t.${ID}::text COLLATE "C"), 0) >= $4::bigint AS spent
        FROM page p JOIN ${T} t ON t.${ID} = p.key
          AND t.${ID} = ANY(ARRAY(SELECT x.key FROM page x WHERE x.n <= $2)) AND (t.${ST} = $1) IS TRUE
        WHERE ${FENCE_OK} AND p.n <= $2
        FOR NO KEY UPDATE OF t),${recoverWrites(of, replace, park, failed)}
      SELECT json_agg(CASE WHEN h.n IS NULL THEN 's' WHEN h.spent THEN 'f' ELSE 'r' END || p.key::text
          ORDER BY p.n)::text AS page
      FROM page p LEFT JOIN hit h ON h.n = p.n`;
    },
    /**
     * `recoverPage` in mode park, faster: the same parameters, the page read as there, each workflow
     * counted from the scan (its count as the statement's snapshot has it) and its row then updated where
     * the scan found it (no second lookup by key): set to $5 and counted and marked, or, spent and with
     * `failed`, set to $6, its count and mark dropped. A row another transaction updated since the
     * statement began may not be (its row moved on), nor a spent one without `failed`: `q`, for the
     * caller to recover by key (`recover`) in the same transaction. One row: `page`, each id after `r`
     * (parked), `f` (failed), or `q`.
     */
    recoverPageByRow: (withCursor: boolean, replace: boolean, failed: boolean) => {
      const rowsOf = (spent: boolean): string =>
        `ANY(ARRAY(SELECT p.row FROM page p WHERE p.n <= $2 AND ${spent ? '' : 'NOT '}p.spent))`;
      return `
      WITH page AS MATERIALIZED (
        SELECT t.${ROW} AS row, t.${ID} AS key, row_number() OVER (ORDER BY t.${ID}) AS n,
          coalesce((SELECT r.count FROM ${R} r
            WHERE r.store_key = $3 AND r.workflow_id = t.${ID}::text COLLATE "C"), 0) >= $4::bigint AS spent
        FROM ${T} t
        WHERE t.${ST} = $1${withCursor ? ` AND t.${ID} > ${asId('$9')}` : ''}
        ORDER BY t.${ID} LIMIT $2 + 1),
      paused AS (
        UPDATE ${T} AS t SET ${ST} = $5
        WHERE ${FENCE_OK} AND t.${ROW} = ${rowsOf(false)} AND t.${ST} = $1
        RETURNING t.${ID} AS key, t.${ID}::text COLLATE "C" AS workflow_id),
      counted AS (
        INSERT INTO ${R} AS r (store_key, workflow_id, count)
        SELECT $3, workflow_id, 1 FROM paused${
          replace ? '\n        ON CONFLICT (store_key, workflow_id) DO UPDATE SET count = r.count + 1' : ''
        }),
      marked AS (
        INSERT INTO ${S}.parked (store_key, workflow_id, member_id, token)
        SELECT $3, workflow_id, $7, $8::bigint FROM paused${replace ? REPLACE_MARK : ''}),${
          failed
            ? `
      failed AS (
        UPDATE ${T} AS t SET ${ST} = $6
        WHERE ${FENCE_OK} AND t.${ROW} = ${rowsOf(true)} AND t.${ST} = $1
        RETURNING t.${ID} AS key, t.${ID}::text COLLATE "C" AS workflow_id),
      uncounted AS (
        DELETE FROM ${R} r USING failed h WHERE r.store_key = $3 AND r.workflow_id = h.workflow_id),
      unmarked AS (
        DELETE FROM ${S}.parked p USING failed h WHERE p.store_key = $3 AND p.workflow_id = h.workflow_id),`
            : ''
        }
      done AS (
        SELECT x.key, 'r' AS flag FROM paused x${failed ? " UNION ALL SELECT y.key, 'f' FROM failed y" : ''})
      SELECT json_agg(coalesce(d.flag, 'q') || p.key::text ORDER BY p.n)::text AS page
      FROM page p LEFT JOIN done d ON d.key = p.key`;
    },
    /**
     * $1 store key, $2 group, $3 member ids, $4 their incarnations (aligned). One statement: each
     * member's entry removed when it is that incarnation's; each incarnation recorded as evicted (kept
     * as first evicted when it was already).
     */
    evictMembers: `
      WITH given AS (SELECT * FROM unnest($3::text[], $4::text[]) AS u (member_id, incarnation)),
      gone AS (
        DELETE FROM ${M} m USING given u
        WHERE m.store_key = $1 AND m.grp = $2 AND m.member_id = u.member_id AND m.incarnation = u.incarnation)
      INSERT INTO ${I} AS e (store_key, incarnation, member_id, grp, evicted_at)
      SELECT DISTINCT ON (u.incarnation) $1, u.incarnation, u.member_id, $2, now() FROM given u
      ON CONFLICT (store_key, incarnation) DO UPDATE
        SET evicted_at = coalesce(e.evicted_at, EXCLUDED.evicted_at), grp = coalesce(e.grp, EXCLUDED.grp)`,
    /**
     * With an owner column: $1 running, $2 limit, $3 owners (no repeats) [, $4 cursor]; `byType` compares
     * owners in the column's type, else as text. Rows: `id`, in the id column's order. One ordered index
     * scan per owner (an index on (owner, id) serves each), merged.
     */
    listOwned:
      OWNER === undefined || owner === undefined
        ? undefined
        : (withCursor: boolean, byType: boolean) => `
      SELECT x.id FROM unnest($3::text[]) AS o (owner)
      CROSS JOIN LATERAL (
        SELECT t.${ID}::text AS id, t.${ID} AS key FROM ${T} t
        WHERE ${byType ? `t.${OWNER} = ${as(owner, 'o.owner')}` : `t.${OWNER}::text = o.owner`}
          AND t.${ST} = $1${withCursor ? ` AND t.${ID} > ${asId('$4')}` : ''}
        ORDER BY t.${ID} LIMIT $2) AS x
      ORDER BY x.key LIMIT $2`,
  };
}

/** What a fence check does: see `fence` in {@link storeSql}. */
export interface FenceCheck {
  /** Checks and raises a token. */
  readonly token: boolean;
  /** Checks incarnations against the evicted ones. */
  readonly incarnations: boolean;
  /** Sets the mark trigger's flag. */
  readonly unparking: boolean;
}
