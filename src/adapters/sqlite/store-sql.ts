/**
 * The SQL of the workflow store: the host's table (read, and its status column written), the marks
 * table, and beside it the one-row fence table and the crash-recovery tables (the generation record and
 * the recovery counts). Every name is a validated identifier, quoted.
 *
 * @internal
 */
import { ConfigurationError, EvictedMemberError, StaleTokenError } from '../../errors.js';
import { quote, siblingTable } from '../../internal/sql-names.js';
import type { WorkflowStatuses } from '../../internal/statuses.js';
import { now } from '../../internal/time.js';
import type { GenerationRecord, ParkedState, ParkedWorkflow, RecoverOutcome } from '../../workflow-store.js';
import type { SqliteDatabase, SqliteStatement } from './driver.js';
import { checkHostTable, installMarkTriggers, RESUMING_ROWID, type HostTableInfo } from './mark-trigger.js';
import type { CompiledStoreOptions } from './options.js';

/** Ids per statement: one JSON array (`json_each`), so chunks only bound a statement's temporary data. */
export const CHUNK = 512;

/**
 * How long a page's listing (a resume's: its range's reading) may take (ms, plus so much per id listed)
 * before its writes go by id rather than by range: a dense page lists in about 0.2 µs an id, a sparse
 * one walks every id between.
 */
const SPARSE_MS = 1;
const SPARSE_MS_PER_ID = 0.004;

/** The store's own tables, quoted: all named from the marks table, in its database. */
function storeTables({ names }: CompiledStoreOptions) {
  const sibling = (suffix: string) => siblingTable(names.marksTable, suffix).sql;
  return {
    marks: names.marksTable.sql,
    fence: sibling('_fence'),
    generations: sibling('_generations'),
    members: sibling('_generation_members'),
    recoveries: sibling('_recoveries'),
    evictions: sibling('_evictions'),
  };
}

/**
 * Checks the host's table, then creates the store's tables if missing (so a database set up by an older
 * version gains the newer ones) and installs the triggers, in one `BEGIN IMMEDIATE` transaction
 * (concurrent set-ups of one file are serialised; an unchanged set-up changes no schema).
 */
export function setUpStore(db: SqliteDatabase, o: CompiledStoreOptions): StoreStatements {
  const host = checkHostTable(db, o);
  const t = storeTables(o);
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.marks} (
      id TEXT PRIMARY KEY NOT NULL, member_id TEXT NOT NULL, token INTEGER, parked_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.fence} (
      id INTEGER PRIMARY KEY CHECK (id = 1), highest INTEGER NOT NULL
    )`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.generations} (
      grp TEXT PRIMARY KEY NOT NULL, generation INTEGER NOT NULL, dirty INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.members} (
      grp TEXT NOT NULL, member_id TEXT NOT NULL, incarnation TEXT NOT NULL, PRIMARY KEY (grp, member_id)
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.recoveries} (
      id TEXT PRIMARY KEY NOT NULL, count INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.evictions} (
      incarnation TEXT PRIMARY KEY NOT NULL, member_id TEXT NOT NULL, grp TEXT NOT NULL,
      evicted_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    installMarkTriggers(db, o, host);
  }).immediate();
  return prepareStatements(db, o, host);
}

/** One parked row as JSON: id, member, token as text (it may not fit a double), state. */
type ParkedJson = [string, string, string | null, ParkedState];

/** The generation record as one row: the members a JSON array of `[memberId, incarnation]`. */
interface GenerationRow {
  readonly generation: number | bigint;
  readonly dirty: number | bigint;
  readonly members: string;
}

/**
 * A page listed and parked in one transaction: the ids listed (at most `limit`, in id order), whether
 * more follow, and the ids parked among them (`undefined`: all of them).
 */
export interface ParkedPage {
  readonly ids: string[];
  readonly more: boolean;
  readonly parked: ReadonlySet<string> | undefined;
}

/**
 * A page of marks listed and unparked in one transaction: the ids listed that were not `pausing` (in id
 * order), the ids resumed among them (`undefined`: all of them), how many were `pausing`, whether more
 * follow, and the last id listed (the next page's cursor when more follow).
 */
export interface UnparkedPage {
  readonly ids: string[];
  readonly resumed: ReadonlySet<string> | undefined;
  readonly pausing: number;
  readonly more: boolean;
  readonly last: string | undefined;
}

/** How {@link StoreStatements.recover} recovers, and the mark it writes. */
export interface RecoverArgs {
  readonly mode: 'park' | 'count';
  readonly maxRecoveries: number;
  readonly memberId: string;
  readonly token: bigint | null;
  readonly at: number;
}

/** The store's statements on one handle. */
export type StoreStatements = ReturnType<typeof prepareStatements>;

/**
 * The store's statements on one handle; a chunk of ids is bound as one JSON array, a page's writes go by
 * the range of ids it listed. Why the status tests read `(status = ?) IS TRUE` and
 * `likelihood(status = ?, 1.0)`: docs/performance.md, "What changed in the SQLite store".
 */
function prepareStatements(db: SqliteDatabase, o: CompiledStoreOptions, info: HostTableInfo) {
  const { names } = o;
  const host = names.table.sql;
  const id = quote(names.idColumn);
  const status = quote(names.statusColumn);
  const { marks, fence, generations, members, recoveries, evictions } = storeTables(o);
  const chunk = '(SELECT value FROM json_each(?))';
  const firstColumns = (sql: string) => db.prepare(sql).pluck().safeIntegers(true);
  const highest = firstColumns(`SELECT highest FROM ${fence} WHERE id = 1`) as SqliteStatement<[], bigint>;
  const raiseHighest = db.prepare<[bigint]>(
    `INSERT INTO ${fence} (id, highest) VALUES (1, ?)
       ON CONFLICT (id) DO UPDATE SET highest = max(highest, excluded.highest)`,
  );
  const activeSql = `SELECT t.${id} FROM ${host} AS t WHERE likelihood(t.${status} = ?, 1.0)`;
  const active = firstColumns(`${activeSql} ORDER BY t.${id} LIMIT ?`);
  const activeAfter = firstColumns(`${activeSql} AND t.${id} > ? ORDER BY t.${id} LIMIT ?`);
  // Whether any row is running: through an index on the status column where the host has one (a
  // search), else a scan that stops at the first. A pass over a table with none running (the park's
  // last sweep) then costs no walk of every id.
  const anyActive = db
    .prepare<[string], number>(`SELECT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${status} = ?)`)
    .pluck();
  const transitionSql = `UPDATE ${host} AS t SET ${status} = ? WHERE t.${id} IN ${chunk} AND (t.${status} = ?) IS TRUE`;
  const transition = firstColumns(`${transitionSql} RETURNING ${id}`);
  const transitionCount = db.prepare(transitionSql);
  // A mark on a running workflow is stale (a user resumed it without an unpark): parking replaces it.
  const mark = db.prepare(
    `INSERT INTO ${marks} (id, member_id, token, parked_at) SELECT value, ?, ?, ? FROM json_each(?) WHERE true
       ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, token = excluded.token, parked_at = excluded.parked_at`,
  );
  const unmarkSql = `DELETE FROM ${marks} AS m WHERE m.id IN ${chunk}`;
  const unlessPausingSql = `${unmarkSql}
      AND NOT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${id} = m.id AND (t.${status} = ?) IS TRUE)`;
  const unmark = db.prepare(`${unmarkSql} RETURNING id`).pluck();
  const unmarkCount = db.prepare(unmarkSql);
  const unmarkUnlessPausing = db.prepare(`${unlessPausingSql} RETURNING id`).pluck();
  // Resumes the paused ones among a chunk that are marked: a workflow without a mark is never touched.
  const resumeMarked = db.prepare(
    `UPDATE ${host} AS t SET ${status} = ?
      WHERE t.${id} IN (SELECT m.id FROM ${marks} AS m WHERE m.id IN ${chunk}) AND (t.${status} = ?) IS TRUE`,
  );
  const savepoint = db.prepare('SAVEPOINT graceful_drain_batch');
  const rollbackTo = db.prepare('ROLLBACK TO graceful_drain_batch');
  const release = db.prepare('RELEASE graceful_drain_batch');
  /** Runs `fast`, kept when it returns true; else rolled back, then `slow` (both in the transaction). */
  const attempt = <T>(fast: () => boolean, slow: () => T): T | undefined => {
    savepoint.run();
    try {
      if (fast()) return undefined;
      rollbackTo.run();
      return slow();
    } finally {
      // Not after a rollback of the whole transaction (a host trigger's RAISE(ROLLBACK)): its error stands.
      if (db.inTransaction) release.run();
    }
  };
  // One JSON text per row; statuses compared in SQL, with the column's affinity.
  const parkedSql = (where: string) =>
    `SELECT json_array(m.id, m.member_id, CAST(m.token AS TEXT),
          CASE WHEN t.${status} = ? THEN 'pausing' WHEN t.${status} = ? THEN 'paused' ELSE 'other' END)
        FROM ${marks} AS m LEFT JOIN ${host} AS t ON t.${id} = m.id ${where} ORDER BY m.id LIMIT ?`;
  const parked = db.prepare<unknown[], string>(parkedSql('')).pluck();
  const parkedAfter = db.prepare<unknown[], string>(parkedSql('WHERE m.id > ?')).pluck();
  // The pages: listed, then written in the same transaction by the range of ids listed, (cursor, last]
  // (one statement each, no ids bound); each write is checked by its count against the page. Only where
  // an id's text compares as the value it came from: not in a column without affinity, where an id
  // listed as text may be an integer or a blob. The host's status is tested as the listing tests it, so
  // that an index on (status, id), when the host has one, serves both.
  const rangeSafe = info.idAffinity !== 'BLOB';
  /** A statement over the range `(lower, upper]` of `column`, or `(..., upper]` without a lower bound. */
  const ranged = (column: string, sql: (range: string) => string) => {
    const from = db.prepare(sql(`${column} > ? AND ${column} <= ?`));
    const first = db.prepare(sql(`${column} <= ?`));
    /** Runs it with `params` before the range's and `rest` after: the count of rows written. */
    return (params: unknown[], lower: string | undefined, upper: string, ...rest: unknown[]): number =>
      lower === undefined
        ? first.run(...params, upper, ...rest).changes
        : from.run(...params, lower, upper, ...rest).changes;
  };
  // Parks a page: its running workflows marked (a stale mark replaced, as `mark` does), then paused.
  const markPage = ranged(
    `t.${id}`,
    (range) => `INSERT INTO ${marks} (id, member_id, token, parked_at)
      SELECT CAST(t.${id} AS TEXT), ?, ?, ? FROM ${host} AS t WHERE likelihood(t.${status} = ?, 1.0) AND ${range}
        ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, token = excluded.token, parked_at = excluded.parked_at`,
  );
  const movePage = ranged(
    `t.${id}`,
    (range) => `UPDATE ${host} AS t SET ${status} = ? WHERE likelihood(t.${status} = ?, 1.0) AND ${range}`,
  );
  // Unparks a page of marks: their ids alone (the host's row is read by the write), then, where a
  // page's marks are not all paused, their state too. The ids come as one JSON array, in id order (the
  // subquery's), which one JSON.parse() turns into strings faster than a row each; whether more follow
  // is a search past the last.
  const markIdsSql = (after: string) =>
    `SELECT json_group_array(p.id) FROM (SELECT m.id FROM ${marks} AS m ${after} ORDER BY m.id LIMIT ?) AS p`;
  const markIdsFirst = db.prepare<[number], string>(markIdsSql('')).pluck();
  const markIdsAfter = db.prepare<[string, number], string>(markIdsSql('WHERE m.id > ?')).pluck();
  const marksAfter = db
    .prepare<[string], number>(`SELECT EXISTS (SELECT 1 FROM ${marks} WHERE id > ?)`)
    .pluck();
  // Where the host's ids order as the marks' do (info.idOrderedAsMarks), the paused ids of the host's
  // range of a page, from its first id to its last, as one JSON array in the order the plan reads them
  // (the id index's, where the table is large enough for the range to be searched): the same text as the
  // page's listing only when the page's marks are the range's paused workflows, and then the range is
  // resumed by a walk of the host's id index (`resumeRange`), with no search per mark. Read in another
  // order (a small table scanned in rowid order), the text differs and the page goes by a search per
  // mark: slower, never wrong. No ORDER BY: sorting the range costs more than the search it saves. Both
  // test the status by the one expression, so that an index on (status, id), where the host has one,
  // serves both.
  const pausedJson = db
    .prepare<unknown[], string>(
      `SELECT json_group_array(t.${id}) FROM ${host} AS t
        WHERE likelihood(t.${status} = ?, 1.0) AND t.${id} >= ? AND t.${id} <= ?`,
    )
    .pluck();
  const resumeRange = db.prepare(
    `UPDATE ${host} AS t SET ${status} = ? WHERE likelihood(t.${status} = ?, 1.0) AND t.${id} >= ? AND t.${id} <= ?`,
  );
  // Each row one text: the state's letter (i: pausing, p: paused, o: other), then the id.
  const markStatesSql = (range: string) =>
    `SELECT CASE WHEN t.${status} = ? THEN 'i' WHEN t.${status} = ? THEN 'p' ELSE 'o' END || m.id
       FROM ${marks} AS m LEFT JOIN ${host} AS t ON t.${id} = m.id WHERE ${range} ORDER BY m.id`;
  const markStatesFrom = db.prepare<unknown[], string>(markStatesSql('m.id > ? AND m.id <= ?')).pluck();
  const markStatesFirst = db.prepare<unknown[], string>(markStatesSql('m.id <= ?')).pluck();
  const resumePage = ranged(
    'm.id',
    (range) => `UPDATE ${host} AS t SET ${status} = ?
      WHERE t.${id} IN (SELECT m.id FROM ${marks} AS m WHERE ${range}) AND (t.${status} = ?) IS TRUE`,
  );
  // The page's resume with the trigger `<marks>_unpaused` kept quiet: its UPDATE runs with this
  // connection's last_insert_rowid() at RESUMING_ROWID (set by an insert into a temporary table, this
  // connection's own), so the marks are left to the range DELETE that follows, one walk of the page's marks
  // instead of a search per row. The insert that ends it, run whatever happened (a failed UPDATE, a host
  // trigger's RAISE(ROLLBACK) that undid the whole transaction), gives last_insert_rowid() back the value
  // the host had left, and records how many rows the UPDATE and every trigger it fired wrote
  // (total_changes() counts trigger writes, changes() does not): more than the UPDATE's own means a host's
  // trigger wrote rows too, maybe resuming another marked workflow, whose mark the quiet trigger kept; the
  // page is then rolled back and done with the trigger awake. The table is made again where it is gone: a
  // change of `PRAGMA temp_store` drops the connection's temporary tables.
  const flags = `temp.${quote('graceful_drain_resuming')}`;
  const ensureFlags = db.prepare(
    `CREATE TEMP TABLE IF NOT EXISTS ${flags} (n INTEGER PRIMARY KEY, written INTEGER NOT NULL, host INTEGER)`,
  );
  ensureFlags.run();
  const tidy = db.prepare(`DELETE FROM ${flags} WHERE n <> ${RESUMING_ROWID}`);
  const quiet = firstColumns(
    `INSERT OR REPLACE INTO ${flags} (n, written, host)
      VALUES (${RESUMING_ROWID}, total_changes(), last_insert_rowid()) RETURNING host`,
  ) as SqliteStatement<[], bigint>;
  const awake = firstColumns(
    `INSERT OR REPLACE INTO ${flags} (n, written)
      VALUES (?, total_changes() - coalesce((SELECT q.written FROM ${flags} AS q WHERE q.n = ${RESUMING_ROWID}), 0))
      RETURNING written`,
  ) as SqliteStatement<[bigint], bigint>;
  // Pages still to resume with the trigger awake, after one whose UPDATE set off a host's trigger.
  let awakePages = 0;
  // Pages still to resume by a search per mark, after one whose range held other paused workflows (a
  // user's pauses, say) or missed one of its marks.
  let searchPages = 0;
  /**
   * Runs `write`, a resume of a page's paused workflows, with the trigger quiet (the page's marks are then
   * all left): the rows it resumed, or -1 when it must be rolled back.
   */
  const resumeQuietly = (write: () => number): number => {
    ensureFlags.run();
    tidy.run();
    const host = quiet.get() as bigint;
    let resumed: number;
    try {
      resumed = write();
    } catch (error) {
      // At once: the host's next update on this connection must find the trigger awake.
      try {
        awake.get(host);
      } catch (wake) {
        throw new AggregateError(
          [error, wake],
          `The page's resume failed, then the trigger ${names.marksTable.name}_unpaused could not be woken on this connection (the host's next updates on it may keep marks until its next insert): ${String(wake)}`,
          { cause: wake },
        );
      }
      throw error;
    }
    // Its own rows and the insert that made it quiet: nothing a host's trigger wrote.
    if (Number(awake.get(host)) === resumed + 1) return resumed;
    awakePages = 8;
    return -1;
  };
  /**
   * The page's resume of its marked paused workflows, quiet where it can be (the page's marks are then
   * all left): the rows it resumed, or -1 when it must be rolled back. Quiet only over a host's table with
   * one row per id, where a count of the page's marks means that each one's workflow was paused; by the
   * host's range, from the page's `first` id to its `last`, where its ids order as the marks' and the
   * range's paused workflows are the page's marks (`listed`, the page's `count` ids as one JSON array).
   */
  const resumeMarkedPage = (
    running: string,
    paused: string,
    cursor: string | undefined,
    last: string,
    listed: string,
    first: string,
    count: number,
  ): number => {
    if (!info.idUnique || awakePages > 0) {
      if (awakePages > 0) awakePages--;
      return resumePage([running], cursor, last, paused);
    }
    // Not where the listing holds U+FFFD: an id that is not valid UTF-8 reads as it in JavaScript, where
    // two such ids would compare equal; without it, equal texts mean equal ids.
    if (info.idOrderedAsMarks && searchPages === 0 && !listed.includes('\uFFFD')) {
      const reading = now();
      const same = pausedJson.get(paused, first, last) === listed;
      // A range that took long to read walked many rows that are not the page's (finished workflows
      // between its marks, with no index on (status, id)): the UPDATE would walk them again, so the page
      // goes by a search per mark, as do the next ones.
      const sparse = now() - reading > SPARSE_MS + count * SPARSE_MS_PER_ID;
      if (same && !sparse) return resumeQuietly(() => resumeRange.run(running, paused, first, last).changes);
      searchPages = 8;
    } else if (searchPages > 0) searchPages--;
    return resumeQuietly(() => resumePage([running], cursor, last, paused));
  };
  // The marks left in the page once its paused workflows are resumed (the trigger drops theirs, unless
  // quiet): those of workflows in another state, and every one where the trigger is missing. A `pausing`
  // one's is kept.
  const unmarkPage = ranged('m.id', (range) => `DELETE FROM ${marks} AS m WHERE ${range}`);
  const unmarkPageUnlessPausing = ranged(
    'm.id',
    (range) => `DELETE FROM ${marks} AS m
      WHERE NOT EXISTS (SELECT 1 FROM ${host} AS t WHERE t.${id} = m.id AND (t.${status} = ?) IS TRUE) AND ${range}`,
  );
  // Pages still to unpark by their states first, after one whose marks were not all paused: at a resume
  // round's start, `pausing` ones come in runs.
  let detailedPages = 0;
  // Crash recovery: the generation record, read in one statement (one snapshot), and the counts.
  const generation = db.prepare<[string], GenerationRow>(
    `SELECT coalesce(g.generation, 0) AS generation, coalesce(g.dirty, 0) AS dirty,
        (SELECT json_group_array(json_array(m.member_id, m.incarnation)) FROM ${members} AS m WHERE m.grp = k.grp) AS members
      FROM (SELECT ? AS grp) AS k LEFT JOIN ${generations} AS g ON g.grp = k.grp`,
  );
  const enter = db.prepare<[string, string, string]>(
    `INSERT INTO ${members} (grp, member_id, incarnation) VALUES (?, ?, ?)
       ON CONFLICT (grp, member_id) DO UPDATE SET incarnation = excluded.incarnation`,
  );
  const leave = db.prepare<[string, string]>(
    `DELETE FROM ${members} WHERE grp = ? AND member_id IN ${chunk}`,
  );
  const endDirty = db.prepare<[string]>(
    `INSERT INTO ${generations} (grp, generation, dirty) VALUES (?, 0, 1)
       ON CONFLICT (grp) DO UPDATE SET dirty = 1`,
  );
  const endClean = db.prepare<[string]>(
    `INSERT INTO ${generations} (grp, generation, dirty) VALUES (?, 1, 0)
       ON CONFLICT (grp) DO UPDATE SET generation = generation + 1, dirty = 0`,
  );
  const resetCounts = db.prepare(`DELETE FROM ${recoveries}`);
  // The running ones among a chunk, each with whether its recoveries reached the cap.
  const stranded = db
    .prepare<[number, string, string], { id: unknown; spent: unknown }>(
      `SELECT t.${id} AS id, coalesce(r.count, 0) >= ? AS spent
         FROM ${host} AS t LEFT JOIN ${recoveries} AS r ON r.id = CAST(t.${id} AS TEXT)
        WHERE t.${id} IN ${chunk} AND (t.${status} = ?) IS TRUE`,
    )
    .safeIntegers(true);
  const count = db.prepare<[string]>(
    `INSERT INTO ${recoveries} (id, count) SELECT value, 1 FROM json_each(?) WHERE true
       ON CONFLICT (id) DO UPDATE SET count = count + 1`,
  );
  const dropCounts = db.prepare<[string]>(`DELETE FROM ${recoveries} WHERE id IN ${chunk}`);
  // The owner capability: evicted incarnations, and the running workflows of given owners.
  const evictedAs = db
    .prepare<[string], string>(`SELECT member_id FROM ${evictions} WHERE incarnation = ?`)
    .pluck();
  const evictOne = db.prepare<[string, string, string]>(
    `DELETE FROM ${members} WHERE grp = ? AND member_id = ? AND incarnation = ?`,
  );
  const recordEviction = db.prepare<[string, string, string, number]>(
    `INSERT INTO ${evictions} (incarnation, member_id, grp, evicted_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (incarnation) DO NOTHING`,
  );
  const owned = names.ownerColumn === undefined ? undefined : ownedStatements(db, o, names.ownerColumn);
  /**
   * The ids as strings: as they come from a text column; an integer id (a bigint) in decimal. A BLOB id is
   * refused: its bytes as text would be a cursor every BLOB sorts after, and the pages would list it again
   * and again.
   */
  const strings = (rows: unknown[]): string[] => {
    for (const value of rows) if (typeof value !== 'string') return rows.map(idText);
    return rows as string[];
  };
  const idText = (value: unknown): string => {
    if (value instanceof Uint8Array) {
      throw new ConfigurationError(
        `Expected \`idColumn\` to hold text or integer ids, got a BLOB (X'${Buffer.from(value).toString('hex')}') ` +
          `in ${host}: store ids as text, or as integers`,
      );
    }
    return String(value);
  };
  /** Sets `to` on the workflows among `ids` whose status is `from`; returns their ids. */
  const transitionAll = (ids: readonly string[], to: string, from: string) =>
    strings(transition.all(to, JSON.stringify(ids), from));

  /** A page of running workflows after `cursor`, in id order, as the values the table holds. */
  function listActiveValues(running: string, cursor: string | undefined, limit: number): unknown[] {
    if (cursor === undefined) return anyActive.get(running) === 1 ? active.all(running, limit) : [];
    return activeAfter.all(running, cursor, limit);
  }

  /** A page of running workflows after `cursor`, in id order. */
  function listActive(running: string, cursor: string | undefined, limit: number): string[] {
    return strings(listActiveValues(running, cursor, limit));
  }

  /** Sets `target` on the running ones among `ids` and marks them; returns their ids. */
  function parkIds(
    ids: readonly string[],
    running: string,
    target: string,
    memberId: string,
    token: bigint | null,
    at: number,
  ): string[] {
    const distinct = [...new Set(ids)];
    const list = JSON.stringify(distinct);
    // When every id was running (the usual case: listActive() just listed them), all are marked,
    // without `RETURNING`; otherwise rolled back and redone with it.
    return (
      attempt(
        () => {
          if (transitionCount.run(target, list, running).changes !== distinct.length) return false;
          mark.run(memberId, token, at, list);
          return true;
        },
        () => {
          const changed = transitionAll(distinct, target, running);
          if (changed.length > 0) mark.run(memberId, token, at, JSON.stringify(changed));
          return changed;
        },
      ) ?? distinct
    );
  }

  /**
   * Clears the marks among `ids`, except of workflows still `pausing`, and resumes the unmarked ones
   * that are paused; returns the ids resumed. A workflow without a mark is never touched.
   */
  function unparkIds(ids: readonly string[], { running, pausing, paused }: WorkflowStatuses): string[] {
    const distinct = [...new Set(ids)];
    const list = JSON.stringify(distinct);
    // The usual case, every id marked and paused: one UPDATE of the marked paused ones among them
    // resumes them all (a user's pause, whose mark notePaused() dropped, is never among them), counted
    // against the ids (a count of the rows it writes leaves out the triggers' writes); the trigger
    // drops their marks, and the DELETE what it left (a missing trigger). Otherwise rolled back, and the
    // marks cleared first, then the paused ones among those cleared resumed, each known by RETURNING.
    const fast = (): boolean => {
      if (resumeMarked.run(running, list, paused).changes !== distinct.length) return false;
      unmarkCount.run(list);
      return true;
    };
    const slow = (): string[] => {
      const cleared = (
        pausing === undefined ? unmark.all(list) : unmarkUnlessPausing.all(list, pausing)
      ) as string[];
      return cleared.length === 0 ? [] : transitionAll(cleared, running, paused);
    };
    return attempt(fast, slow) ?? distinct;
  }

  /** The paused ones among rows of `markStates` (state letter, then id). */
  const pausedAmong = (rows: readonly string[]): Set<string> => {
    const resumed = new Set<string>();
    for (const row of rows) if (row.charCodeAt(0) === 112 /* p */) resumed.add(row.slice(1));
    return resumed;
  };

  return {
    /** `EvictedMemberError` when `incarnation` was evicted. */
    checkNotEvicted(incarnation: string): void {
      const memberId = evictedAs.get(incarnation);
      if (memberId !== undefined) throw new EvictedMemberError(String(memberId), incarnation);
    },

    /** Removes each member's entry of `group` (when its incarnation matches) and records it evicted. */
    evict(group: string, evicted: readonly { memberId: string; incarnation: string }[], at: number): void {
      for (const { memberId, incarnation } of evicted) {
        evictOne.run(group, memberId, incarnation);
        recordEviction.run(incarnation, memberId, group, at);
      }
    },

    /**
     * A page of running workflows after `cursor` whose owner is one of `owners`, in id order; `undefined`
     * without an owner column.
     */
    owned:
      owned &&
      ((owners: readonly string[], running: string, cursor: string | undefined, limit: number): string[] =>
        strings(owned(owners, running, cursor, limit))),

    /** Checks `token` against the highest seen (`StaleTokenError`), and records it. */
    raiseFence(token: bigint): void {
      const seen = highest.get();
      if (seen !== undefined && token < seen) throw new StaleTokenError(token, seen);
      if (seen === undefined || token > seen) raiseHighest.run(token);
    },

    /** A page of running workflows after `cursor`, in id order. */
    active: listActive,

    /** Sets `target` on the running ones among `ids` and marks them; returns their ids. */
    park: parkIds,

    /**
     * Clears the marks among `ids`, except of workflows still `pausing`, and resumes the unmarked ones
     * that are paused; returns the ids resumed. A workflow without a mark is never touched.
     */
    unpark: unparkIds,

    /**
     * Lists a page of running workflows after `cursor` (as {@link active}) and parks it (as {@link park}):
     * in the usual case by the range of ids listed, one statement for the marks and one for the pause.
     */
    parkPage(
      running: string,
      target: string,
      memberId: string,
      token: bigint | null,
      at: number,
      cursor: string | undefined,
      limit: number,
    ): ParkedPage {
      const listing = now();
      const values = listActiveValues(running, cursor, limit + 1);
      // Written by range only when each id's text is the value's own (text, or an integer, which comes
      // as a bigint): a REAL id's text in JavaScript is not SQLite's (3.0 lists as '3', casts to '3.0'),
      // and a NULL id listed as 'null' would bound a range that takes in other rows.
      const plain = values.every((v) => typeof v === 'string' || typeof v === 'bigint');
      const ids = strings(values);
      // A listing that walked many more rows than it found (running ones few among the ids, and no
      // index on (status, id)): the range writes would walk them twice more, so the ids are written one
      // by one instead. Only a matter of speed: both ways write the same.
      const sparse = now() - listing > SPARSE_MS + ids.length * SPARSE_MS_PER_ID;
      const more = ids.length > limit;
      if (more) ids.length = limit;
      if (ids.length === 0) return { ids, more, parked: undefined };
      const last = ids[ids.length - 1] as string;
      // Every id listed is running (this transaction listed it): each range write must count the page.
      const parked = attempt(
        () =>
          rangeSafe &&
          plain &&
          !sparse &&
          markPage([memberId, token, at, running], cursor, last) === ids.length &&
          movePage([target, running], cursor, last) === ids.length,
        () => new Set(parkIds(ids, running, target, memberId, token, at)),
      );
      return { ids, more, parked };
    },

    /**
     * Lists a page of marks after `cursor` (as {@link parked}) and unparks the ones not `pausing` (as
     * {@link unpark}). In the usual case, every mark's workflow paused, by the range of ids listed: one
     * statement resumes the marked paused workflows of the range (their marks dropped by the trigger),
     * one drops the marks left; otherwise (a count short) rolled back and done by the states listed.
     */
    unparkPage(
      { running, pausing, paused }: WorkflowStatuses,
      cursor: string | undefined,
      limit: number,
    ): UnparkedPage {
      const listed = cursor === undefined ? markIdsFirst.get(limit)! : markIdsAfter.get(cursor, limit)!;
      const ids = JSON.parse(listed) as string[];
      const last = ids[ids.length - 1];
      if (last === undefined) return { ids, resumed: undefined, pausing: 0, more: false, last };
      const more = ids.length === limit && marksAfter.get(last) === 1;
      const unmarkLeft = (): void => {
        if (pausing === undefined) unmarkPage([], cursor, last);
        else unmarkPageUnlessPausing([pausing], cursor, last);
      };
      /** By the states: the `pausing` ones counted and left, the paused ones resumed, every other unmarked. */
      const byStates = (): UnparkedPage => {
        const rows =
          cursor === undefined
            ? markStatesFirst.all(pausing ?? null, paused, last)
            : markStatesFrom.all(pausing ?? null, paused, cursor, last);
        const ready: string[] = [];
        let held = 0;
        let resumable = 0;
        for (const row of rows) {
          const state = row.charCodeAt(0);
          if (state === 105 /* i: pausing */) held++;
          else {
            ready.push(row.slice(1));
            if (state === 112 /* p: paused */) resumable++;
          }
        }
        if (held > 0 || resumable !== ready.length) detailedPages = 8;
        if (ready.length === 0) return { ids: ready, resumed: new Set(), pausing: held, more, last };
        const exact = attempt(
          () => {
            if (resumePage([running], cursor, last, paused) !== resumable) return false;
            unmarkLeft();
            return true;
          },
          () => new Set(unparkIds(ready, { running, pausing, paused })),
        );
        const resumed = exact ?? (resumable === ready.length ? undefined : pausedAmong(rows));
        return { ids: ready, resumed, pausing: held, more, last };
      };
      if (detailedPages > 0) {
        detailedPages--;
        return byStates();
      }
      return (
        attempt(() => {
          const first = ids[0] as string;
          if (resumeMarkedPage(running, paused, cursor, last, listed, first, ids.length) !== ids.length) {
            return false;
          }
          // One row per id: every workflow of the page resumed, none is pausing, and each mark goes.
          if (info.idUnique) unmarkPage([], cursor, last);
          else unmarkLeft();
          return true;
        }, byStates) ?? { ids, resumed: undefined, pausing: 0, more, last }
      );
    },

    /** Deletes the marks among `ids`; returns the ids whose mark was deleted. */
    dropMarks(ids: readonly string[]): string[] {
      return unmark.all(JSON.stringify(ids)) as string[];
    },

    /** The generation record of `group`; members in id order. */
    generation(group: string): GenerationRecord {
      const row = generation.get(group) as GenerationRow;
      const entries = (JSON.parse(row.members) as [string, string][])
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([memberId, incarnation]) => Object.freeze({ memberId, incarnation }));
      return Object.freeze({
        generation: Number(row.generation),
        members: Object.freeze(entries),
        dirty: Number(row.dirty) !== 0,
      });
    },

    /** Registers a member of `group`, replacing the entry with its id. */
    enterGeneration(group: string, memberId: string, incarnation: string): void {
      enter.run(group, memberId, incarnation);
    },

    /** Removes the entries of `memberIds`, then ends the generation as `end` says. */
    leaveGeneration(group: string, memberIds: readonly string[], end: 'none' | 'clean' | 'dirty'): void {
      if (memberIds.length > 0) leave.run(group, JSON.stringify(memberIds));
      if (end === 'dirty') endDirty.run(group);
      if (end === 'clean') {
        endClean.run(group);
        resetCounts.run();
      }
    },

    /**
     * Recovers the running ones among `ids` (distinct): past the cap, set to `failed` (when given) with
     * count and mark dropped; else counted, and in mode `park` paused and marked as `park()` does.
     * Returns the outcome of each id written.
     */
    recover(
      ids: readonly string[],
      { running, pausing, paused, failed }: WorkflowStatuses,
      { mode, maxRecoveries, memberId, token, at }: RecoverArgs,
    ): Map<string, RecoverOutcome> {
      const fresh: string[] = [];
      const spent: string[] = [];
      for (const row of stranded.all(maxRecoveries, JSON.stringify(ids), running)) {
        (Number(row.spent) === 0 ? fresh : spent).push(String(row.id));
      }
      const outcomes = new Map<string, RecoverOutcome>();
      if (spent.length > 0) {
        const list = JSON.stringify(spent);
        if (failed !== undefined) transitionCount.run(failed, list, running);
        dropCounts.run(list);
        unmarkCount.run(list);
        for (const one of spent) outcomes.set(one, 'failed');
      }
      if (fresh.length > 0) {
        const list = JSON.stringify(fresh);
        count.run(list);
        let outcome: RecoverOutcome = 'counted';
        if (mode === 'park') {
          transitionCount.run(pausing ?? paused, list, running);
          mark.run(memberId, token, at, list);
          outcome = pausing === undefined ? 'paused' : 'pausing';
        }
        for (const one of fresh) outcomes.set(one, outcome);
      }
      return outcomes;
    },

    /** A page of marked workflows after `cursor`, in id order, with the host's state of each. */
    parked(
      { pausing, paused }: WorkflowStatuses,
      cursor: string | undefined,
      limit: number,
    ): ParkedWorkflow[] {
      const held = pausing ?? null;
      const rows =
        cursor === undefined ? parked.all(held, paused, limit) : parkedAfter.all(held, paused, cursor, limit);
      return (JSON.parse(`[${rows.join(',')}]`) as ParkedJson[]).map(([id, memberId, token, state]) => ({
        id,
        state,
        memberId,
        token: token === null ? undefined : BigInt(token),
      }));
    },
  };
}

/**
 * `listOwned()`'s statements. One owner (the usual case: one dead member) is read as a range of an index
 * on `(owner, id)` in id order, a page costing its own rows only; several owners are read together and
 * sorted, a page costing every remaining row of those owners (see docs/adapters/sqlite.md).
 */
function ownedStatements(db: SqliteDatabase, { names }: CompiledStoreOptions, ownerColumn: string) {
  const host = names.table.sql;
  const id = quote(names.idColumn);
  const status = quote(names.statusColumn);
  const owner = quote(ownerColumn);
  const sql = (who: string, after: string) =>
    `SELECT t.${id} FROM ${host} AS t WHERE t.${owner} ${who} AND t.${status} = ?${after} ORDER BY t.${id} LIMIT ?`;
  const prepare = (who: string, after: string) => db.prepare(sql(who, after)).pluck().safeIntegers(true);
  const one = prepare('= ?', '');
  const oneAfter = prepare('= ?', ` AND t.${id} > ?`);
  const list = '(SELECT value FROM json_each(?))';
  const many = prepare(`IN ${list}`, '');
  const manyAfter = prepare(`IN ${list}`, ` AND t.${id} > ?`);
  return (owners: readonly string[], running: string, cursor: string | undefined, limit: number) => {
    const distinct = [...new Set(owners)];
    if (distinct.length === 0) return [];
    const who = distinct.length === 1 ? distinct[0] : JSON.stringify(distinct);
    const [first, after] = distinct.length === 1 ? [one, oneAfter] : [many, manyAfter];
    return cursor === undefined ? first.all(who, running, limit) : after.all(who, running, cursor, limit);
  };
}
