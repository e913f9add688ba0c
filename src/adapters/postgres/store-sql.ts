/**
 * The statements of `PostgresWorkflowStore`, built once from validated, quoted names.
 *
 * Ids travel as text. Each statement compares the host's id column with the ids cast to the column's
 * own type (`byType`), so its index serves the lookups; a batch with an id that does not parse as that
 * type is run again comparing text (`id::text = $id`), which is correct but cannot use the index.
 *
 * @internal
 */

/** The names a store's statements are made of, all ready for SQL. */
export interface StoreNames {
  /** The quoted, possibly qualified host table. */
  readonly table: string;
  /** The quoted id column. */
  readonly id: string;
  /** The quoted status column. */
  readonly status: string;
  /** The id column's type as the catalog names it (`format_type`), without modifiers. */
  readonly idType: string;
  /** The id column's collation as the catalog names it, or `undefined` for a type without collations. */
  readonly idCollation: string | undefined;
  /** The quoted schema of the marks. */
  readonly schema: string;
}

/** The statements of one store. Parameter lists are documented on each. */
export interface StoreSql {
  /** $1 running, $2 limit [, $3 cursor]. Rows: `id`. */
  readonly listActive: (withCursor: boolean) => string;
  /** $1 store key, $2 limit [, $3 cursor]. Rows: `id`, `member_id`, `token`, `status`. */
  readonly listParked: (withCursor: boolean) => string;
  /** $1 store key, $2 token. Rows: `token`, the highest token now recorded. */
  readonly fence: string;
  /** $1 ids, $2 new status, $3 running, $4 store key, $5 member, $6 token. Rows: `ord` of each parked id. */
  readonly park: (byType: boolean) => string;
  /** $1 ids, $2 store key, $3 running, $4 paused, $5 pausing. Rows: `ord` of each resumed id. */
  readonly unpark: string;
  /** $1 ids, $2 store key. Rows: `ord` of each id whose mark was dropped. */
  readonly notePaused: (byType: boolean) => string;
  /**
   * $1 the configured statuses, $2 sample size, $3 values shown. Row: `matched` (some row has one of
   * them), `seen` (distinct values of a bounded sample, as text; empty for an empty table).
   */
  readonly diagnose: string;
  /** No parameters: refreshes the planner's statistics of the marks table. */
  readonly analyzeMarks: string;
}

/** The deduplicated input ids of `$1`, each with the position of its first occurrence. */
const INPUT = `input AS (
    SELECT u.id, min(u.ord) AS ord FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord) GROUP BY u.id
  )`;

/** Builds the statements of a store over `names`. */
export function storeSql(names: StoreNames): StoreSql {
  const { table: T, id: ID, status: ST, idType: TY, schema: S } = names;
  // Text as a value of the id column, in the column's collation: comparisons the column's index serves.
  const asId = (text: string): string =>
    `(${text})::${TY}${names.idCollation === undefined ? '' : ` COLLATE ${names.idCollation}`}`;
  return {
    listActive: (withCursor) => `
      SELECT t.${ID}::text AS id FROM ${T} t
      WHERE t.${ST} = $1${withCursor ? ` AND t.${ID} > ${asId('$3')}` : ''}
      ORDER BY t.${ID} LIMIT $2`,
    // The page of marks is taken first, from the marks' own index, and each status is then read by id
    // (a scalar subquery, which the planner cannot turn into a scan of the whole host table): planned
    // otherwise, from stale statistics, every page scanned all remaining marks or the host table.
    listParked: (withCursor) => `
      SELECT p.workflow_id AS id, p.member_id, p.token::text AS token,
        (SELECT t.${ST}::text FROM ${T} t WHERE t.${ID} = ${asId('p.workflow_id')}) AS status
      FROM (
        SELECT workflow_id, member_id, token FROM ${S}.parked
        WHERE store_key = $1${withCursor ? ' AND workflow_id > ($3 COLLATE "C")' : ''}
        ORDER BY workflow_id LIMIT $2
      ) p
      ORDER BY p.workflow_id`,
    // An upsert rather than SELECT .. FOR UPDATE then UPDATE: one round trip, the same row lock held to
    // the end of the transaction, and the row created on first use.
    fence: `
      INSERT INTO ${S}.store_fences AS f (store_key, token) VALUES ($1, $2::bigint)
      ON CONFLICT (store_key) DO UPDATE SET token = GREATEST(f.token, EXCLUDED.token)
      RETURNING f.token::text AS token`,
    // One set-based UPDATE of the ids still running, and the marks of exactly those. A mark already
    // there is stale (a user resumed the workflow without an unpark): this park's mark replaces it.
    park: (byType) => `
      WITH ${INPUT},
      paused AS (
        UPDATE ${T} AS t SET ${ST} = $2
        FROM input i
        WHERE ${byType ? `t.${ID} = ${asId('i.id')}` : `(t.${ID}::text COLLATE "C") = (i.id COLLATE "C")`}
          AND t.${ST} = $3
        RETURNING t.${ID}::text AS workflow_id, i.ord
      ),
      marked AS (
        INSERT INTO ${S}.parked (store_key, workflow_id, member_id, token)
        SELECT $4, workflow_id, $5, $6::bigint FROM paused
        ON CONFLICT (store_key, workflow_id) DO UPDATE
          SET member_id = EXCLUDED.member_id, token = EXCLUDED.token, parked_at = now()
      )
      SELECT ord FROM paused`,
    // In `resumed`, `(status = $4) IS TRUE` keeps the planner from driving the update from an index on
    // the host's status, whose statistics predate the park; the ids (primary key) are the selective side.
    // Resume the marked ones still paused; clear the marks of those resumed and of those the host no
    // longer holds paused or pausing (a user resumed or cancelled them). A mark whose workflow is still
    // pausing, or turned paused after this statement's snapshot, stays for the next round.
    unpark: `
      WITH ${INPUT},
      marks AS (
        SELECT p.workflow_id, i.ord FROM input i
        JOIN ${S}.parked p ON p.store_key = $2 AND p.workflow_id = (i.id COLLATE "C")
      ),
      resumed AS (
        UPDATE ${T} AS t SET ${ST} = $3
        FROM marks m
        WHERE t.${ID} = ${asId('m.workflow_id')} AND (t.${ST} = $4) IS TRUE
        RETURNING m.workflow_id, m.ord
      ),
      cleared AS (
        DELETE FROM ${S}.parked p USING marks m
        WHERE p.store_key = $2 AND p.workflow_id = m.workflow_id
          AND (m.workflow_id IN (SELECT workflow_id FROM resumed)
            OR NOT EXISTS (SELECT 1 FROM ${T} t
              WHERE t.${ID} = ${asId('m.workflow_id')} AND t.${ST} IN ($4, $5)))
      )
      SELECT ord FROM resumed`,
    // Marks hold the id column's own text form: an id given in another spelling of the same value
    // ('007' for 7, an upper-case uuid) is brought to it through the column's type.
    notePaused: (byType) => `
      WITH ${INPUT},
      dropped AS (
        DELETE FROM ${S}.parked p USING input i
        WHERE p.store_key = $2
          AND p.workflow_id = ${byType ? `(${asId('i.id')})::text COLLATE "C"` : '(i.id COLLATE "C")'}
        RETURNING i.ord
      )
      SELECT ord FROM dropped`,
    // `::text` so that enum and integer columns compare too; on a text column it is no cast at all, and
    // an index of the host's on its status serves the lookup. Without one, the scan stops at the first
    // match; the caller bounds it with a statement timeout.
    diagnose: `
      SELECT EXISTS (SELECT 1 FROM ${T} t WHERE t.${ST}::text = ANY($1::text[])) AS matched,
        ARRAY(SELECT DISTINCT x.s FROM (SELECT t.${ST}::text AS s FROM ${T} t LIMIT $2) x
          ORDER BY 1 LIMIT $3) AS seen`,
    analyzeMarks: `ANALYZE ${S}.parked`,
  };
}
