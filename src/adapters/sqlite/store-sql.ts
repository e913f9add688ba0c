/**
 * The SQL of the workflow store: the host's table (read, and its status column written), the marks
 * table, and beside it the one-row fence table and the crash-recovery tables (the generation record and
 * the recovery counts). Every name is a validated identifier, quoted.
 *
 * @internal
 */
import { EvictedMemberError, StaleTokenError } from '../../errors.js';
import { quote, siblingTable } from '../../internal/sql-names.js';
import type { WorkflowStatuses } from '../../internal/statuses.js';
import type { GenerationRecord, ParkedState, ParkedWorkflow, RecoverOutcome } from '../../workflow-store.js';
import type { SqliteDatabase, SqliteStatement } from './driver.js';
import { checkHostTable, installMarkTriggers } from './mark-trigger.js';
import type { CompiledStoreOptions } from './options.js';

/** Ids per statement: one JSON array (`json_each`), so chunks only bound a statement's temporary data. */
export const CHUNK = 512;

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
  return prepareStatements(db, o);
}

/** One parked row as JSON: id, member, token as text (it may not fit a double), state. */
type ParkedJson = [string, string, string | null, ParkedState];

/** The generation record as one row: the members a JSON array of `[memberId, incarnation]`. */
interface GenerationRow {
  readonly generation: number | bigint;
  readonly dirty: number | bigint;
  readonly members: string;
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
 * The store's statements on one handle; a chunk of ids is bound as one JSON array. Why the
 * status tests read `(status = ?) IS TRUE` and `likelihood(status = ?, 1.0)`, and why unpark counts
 * first: docs/performance.md, "What changed in the SQLite store".
 */
function prepareStatements(db: SqliteDatabase, o: CompiledStoreOptions) {
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
  const marked = db
    .prepare<[string], number | bigint>(`SELECT count(*) FROM ${marks} AS m WHERE m.id IN ${chunk}`)
    .pluck();
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
      release.run();
    }
  };
  // Fast unparks in a row in which the trigger did not drop exactly one mark per workflow resumed (the
  // store's trigger is missing, or the host's own triggers write rows too); at 3, no more fast unparks.
  let triggerMisses = 0;
  // One JSON text per row; statuses compared in SQL, with the column's affinity.
  const parkedSql = (where: string) =>
    `SELECT json_array(m.id, m.member_id, CAST(m.token AS TEXT),
          CASE WHEN t.${status} = ? THEN 'pausing' WHEN t.${status} = ? THEN 'paused' ELSE 'other' END)
        FROM ${marks} AS m LEFT JOIN ${host} AS t ON t.${id} = m.id ${where} ORDER BY m.id LIMIT ?`;
  const parked = db.prepare<unknown[], string>(parkedSql('')).pluck();
  const parkedAfter = db.prepare<unknown[], string>(parkedSql('WHERE m.id > ?')).pluck();
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
  const strings = (rows: unknown[]) => rows.map((value) => String(value));
  /** Sets `to` on the workflows among `ids` whose status is `from`; returns their ids. */
  const transitionAll = (ids: readonly string[], to: string, from: string) =>
    strings(transition.all(to, JSON.stringify(ids), from));

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
    active(running: string, cursor: string | undefined, limit: number): string[] {
      if (cursor === undefined)
        return anyActive.get(running) === 1 ? strings(active.all(running, limit)) : [];
      return strings(activeAfter.all(running, cursor, limit));
    },

    /** Sets `target` on the running ones among `ids` and marks them; returns their ids. */
    park(
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
    },

    /**
     * Clears the marks among `ids`, except of workflows still `pausing`, and resumes the unmarked ones
     * that are paused; returns the ids resumed. A workflow without a mark is never touched.
     */
    unpark(ids: readonly string[], { running, pausing, paused }: WorkflowStatuses): string[] {
      const distinct = [...new Set(ids)];
      const list = JSON.stringify(distinct);
      // The usual case, every id marked and paused: one UPDATE resumes them all and the trigger drops
      // their marks. Both are checked on the marks themselves (a count of rows written would also count
      // the host's own triggers' writes): every id marked before (a user's pause, whose mark notePaused()
      // dropped, is never resumed), and none after (the trigger did its work); otherwise rolled back.
      const fast = (): boolean => {
        if (triggerMisses >= 3) return false;
        if (Number(marked.get(list)) !== distinct.length) return false;
        if (transitionCount.run(running, list, paused).changes !== distinct.length) return false;
        if (Number(marked.get(list)) === 0) {
          triggerMisses = 0;
          return true;
        }
        triggerMisses++;
        return false;
      };
      const slow = (): string[] => {
        const cleared = (
          pausing === undefined ? unmark.all(list) : unmarkUnlessPausing.all(list, pausing)
        ) as string[];
        return cleared.length === 0 ? [] : transitionAll(cleared, running, paused);
      };
      return attempt(fast, slow) ?? distinct;
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
