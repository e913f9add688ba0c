import createDebug from 'debug';
import { ClosedError, ConfigurationError, EvictedMemberError, StaleTokenError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { quote } from '../../internal/sql-names.js';
import { parkedStateOf } from '../../internal/statuses.js';
import { checkCallOptions, checkFence, checkIds, checkList, pageOf } from '../../internal/store-args.js';
import { bounded } from '../../internal/time.js';
import { checkName, checkOneOf, checkOptionsObject, invalid } from '../../validate.js';
import type {
  Fence,
  GenerationEnd,
  GenerationMember,
  GenerationRecord,
  ItemResult,
  ListOptions,
  NotePausedOutcome,
  Page,
  ParkedWorkflow,
  ParkOutcome,
  ParkPage,
  RecoverOptions,
  RecoverOutcome,
  RecoverPage,
  RecoverPageOptions,
  StoreCallOptions,
  StoreWarning,
  UnparkOutcome,
  UnparkPage,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from '../../workflow-store.js';
import { messageOf, type PgQueryable, type PgQueryResult } from './driver.js';
import { markTrigger } from './mark-trigger.js';
import { checkSchema } from './migrate.js';
import {
  type CompiledStoreOptions,
  compileStoreOptions,
  type PostgresWorkflowStoreOptions,
} from './options.js';
import {
  type FenceCheck,
  inline,
  inspectHostTable,
  recoveryTables,
  storeSql,
  type StoreSql,
  UNPARKING,
} from './store-sql.js';

/** `listOwned()` of a store with an owner column. */
type ListOwned = (memberIds: readonly string[], options: ListOptions) => Promise<Page<string>>;
/** `evictMembers()` of a store with an owner column. */
type EvictMembers = (
  group: string,
  members: readonly GenerationMember[],
  fence: Fence,
  options?: StoreCallOptions,
) => Promise<void>;

const debug = createDebug('graceful-drain:postgres');

const CAPABILITIES: WorkflowStoreCapabilities = Object.freeze({ fencing: 'monotonic' });
/** Resume pages run by their marks after one whose range did not hold it (see `unparkPage`). */
const SEARCH_PAGES = 8;
/**
 * The largest page resumed by range: its ids are held in hash tables the planner builds only when they fit
 * in `work_mem` (a page of 10,000 needs well under 1 MB); past it, each test would walk the whole page.
 */
const RANGE_MAX_PAGE = 10_000;
/**
 * Thrown inside a resume page's transaction to roll back what its range wrote (see `unparkPage`), with the
 * ids the range listed.
 */
class RangeRaced extends Error {
  constructor(readonly ids: readonly string[]) {
    super('a workflow of the page changed under its range');
  }
}

/** Compares ids as the marks order them (`"C"`: by their UTF-8 bytes). */
const byMarkOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
/** Types whose values every text converts to, so ids never need the fallback comparison. */
const TEXT_TYPES = new Set(['text', 'character varying', 'bpchar', 'name', 'citext']);
/** `diagnose()`: rows sampled for the values shown, values shown, and the bound of its one scan. */
const DIAGNOSE_SAMPLE_ROWS = 1000;
const DIAGNOSE_SHOWN_VALUES = 10;
const DIAGNOSE_TIMEOUT_MS = 2000;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** `fence` checked, its `incarnation` too: a non-empty string when given. */
function checkStoreFence(fence: Fence): void {
  checkFence(fence);
  if (fence.incarnation !== undefined) checkName('fence.incarnation', fence.incarnation);
}

/**
 * The page of a fused statement's one row: a JSON array (`null` for none: decoded here, whatever parser
 * the pool has for `json`) of ids, each after a character that says what became of it.
 */
function pageRow(page: string | null | undefined): { ids: string[]; flags: string } {
  const entries = page == null ? [] : (JSON.parse(page) as string[]);
  return { ids: entries.map((entry) => entry.slice(1)), flags: entries.map((entry) => entry[0]).join('') };
}

/** The checked `mode` and `maxRecoveries` of a recovery's options. */
function checkRecovery(o: Record<string, unknown>): { mode: 'park' | 'count'; max: number } {
  const mode = checkOneOf('options.mode', o.mode, ['park', 'count'] as const);
  const max = o.maxRecoveries;
  if (!Number.isSafeInteger(max) || (max as number) < 0) {
    invalid('options.maxRecoveries', 'a whole number from 0 up', max);
  }
  return { mode, max: max as number };
}

/** The row of the fence check statement. */
interface FenceRow {
  readonly token: string | null;
  readonly evicted: readonly [string, string] | null;
}

/** What the store learns about the host's table at first use. */
interface Prepared {
  readonly sql: StoreSql;
  readonly storeKey: string;
  readonly idIsText: boolean;
  /** The owner column holds text: member ids compare as they are, no fallback needed. */
  readonly ownerIsText: boolean;
}

/**
 * A `WorkflowStore` over a table the host already has in PostgreSQL (an id column and a status
 * column); the parked-by-shutdown marks, the fencing high-water mark and the crash-recovery generation
 * record live in the schema `migrate()` created. Every write is one transaction; listing pages by keyset.
 * At first use the store checks the schema, the host's table and (unless `markTrigger: 'off'`) the mark
 * trigger. A call given up before its `COMMIT` is rolled back. See docs/adapters/postgres.md.
 *
 * @example
 * ```ts
 * const store = new PostgresWorkflowStore({
 *   pool,
 *   table: 'app.workflows',
 *   statuses: { running: 'RUNNING', pausing: 'PAUSING', paused: 'PAUSED' },
 * });
 * ```
 */
export class PostgresWorkflowStore implements WorkflowStore {
  readonly capabilities: WorkflowStoreCapabilities = CAPABILITIES;
  /**
   * With `ownerColumn` only (else `undefined`): the running workflows whose owner is one of `memberIds`,
   * a page at a time, in the id column's order; one ordered scan per member, merged.
   */
  declare readonly listOwned?: ListOwned;
  /**
   * With `ownerColumn` only (else `undefined`): in one transaction, fenced like park(), removes each
   * member's entry of `group`'s generation record (when it is that incarnation's) and records each
   * incarnation as evicted for good: every later call whose `fence.incarnation` is one of them rejects
   * with `EvictedMemberError` before it writes. Waits for a call of those incarnations in flight.
   */
  declare readonly evictMembers?: EvictMembers;
  readonly #o: CompiledStoreOptions;
  #prepared: Promise<Prepared> | undefined;
  #closed: Promise<void> | undefined;
  /** Resume pages still to run by their marks after one whose range did not hold it (`unparkRange`). */
  #searchPages = 0;

  constructor(options: PostgresWorkflowStoreOptions) {
    this.#o = compileStoreOptions(options);
    // Own properties, present only with an owner column: `typeof store.listOwned` tells the capability.
    if (this.#o.ownerColumn !== undefined) {
      this.listOwned = (memberIds, o) => this.#listOwned(memberIds, o);
      this.evictMembers = (group, members, fence, o) => this.#evictMembers(group, members, fence, o);
    }
  }

  async listActive(options: ListOptions): Promise<Page<string>> {
    const { limit, cursor, signal } = checkList('listActive()', options);
    const { sql } = await this.#prepare(signal);
    const values: unknown[] = [this.#o.statuses.running, limit + 1];
    if (cursor !== undefined) values.push(cursor);
    const [row] = (await this.#o.runner.query(sql.listActive(cursor !== undefined), values, signal)) as {
      ids: string | null;
    }[];
    return pageOf(row?.ids == null ? [] : (JSON.parse(row.ids) as string[]), limit, (id) => id);
  }

  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    const { limit, cursor, signal } = checkList('listParked()', options);
    const { sql, storeKey } = await this.#prepare(signal);
    // A resume round begins: the marks were just written in bulk, and stale statistics made every batch
    // scan them all. Errors (no right to analyze) are ignored.
    if (cursor === undefined) {
      await this.#o.runner.query(sql.analyzeMarks, [], signal).catch((error: unknown) => {
        if (signal?.aborted === true) throw error;
        debug('analyze of the marks failed: %s', messageOf(error));
      });
    }
    const values: unknown[] = [storeKey, limit + 1];
    if (cursor !== undefined) values.push(cursor);
    const rows = (await this.#o.runner.query(sql.listParked(cursor !== undefined), values, signal)) as {
      id: string;
      member_id: string;
      token: string | null;
      status: string | null;
    }[];
    const items = rows.map((row) => ({
      id: row.id,
      state: parkedStateOf(this.#o.statuses, row.status),
      memberId: row.member_id,
      token: row.token === null ? undefined : BigInt(row.token),
    }));
    return pageOf(items, limit, (item) => item.id);
  }

  async park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    checkIds(ids);
    checkStoreFence(fence);
    const { running, pausing, paused } = this.#o.statuses;
    const outcome = pausing === undefined ? 'paused' : 'pausing';
    const token = fence.token?.toString() ?? null;
    return this.#write('park()', options, ids, outcome, true, (prepared, byType, signal) =>
      this.#marking((replace) =>
        this.#batch(prepared, fence, signal, { deferFlush: true }, prepared.sql.park(byType, replace), [
          ids,
          pausing ?? paused,
          running,
          prepared.storeKey,
          fence.memberId,
          token,
        ]),
      ),
    );
  }

  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    checkIds(ids);
    checkStoreFence(fence);
    const { running, pausing, paused } = this.#o.statuses;
    const unparking = this.#o.markTrigger !== 'off';
    return this.#write('unpark()', options, ids, 'resumed', undefined, async (prepared, _, signal) => {
      const values = [prepared.storeKey, ids.length, running, paused, pausing ?? null, ids];
      const statement = prepared.sql.unpark(pausing !== undefined);
      const marked = await this.#unparkMarks(prepared, fence, signal, { unparking }, statement, values);
      const resumed = new Set(marked.ids.filter((_, i) => marked.flags[i] === 'r'));
      // The position of each id's first occurrence: a repeat is skipped.
      const ord = new Map<string, number>();
      for (const [index, id] of ids.entries()) if (!ord.has(id)) ord.set(id, index + 1);
      return [...resumed].map((id) => ({ ord: ord.get(id) as number }));
    });
  }

  /**
   * `listActive(options)` and `park()` of the ids it lists, in one transaction and one statement: the
   * page is read as `listActive` reads it (the same order and cursor), and its workflows still running
   * are paused and marked. One result per workflow listed, in id order. Fenced, committed and cancelled
   * like park().
   */
  async parkPage(fence: Fence, options: ListOptions): Promise<ParkPage> {
    checkStoreFence(fence);
    const { limit, cursor, signal } = checkList('parkPage()', options);
    const prepared = await this.#prepare(signal);
    const { running, pausing, paused } = this.#o.statuses;
    const outcome: ParkOutcome = pausing === undefined ? 'paused' : 'pausing';
    const token = fence.token?.toString() ?? null;
    const values: unknown[] = [running, limit, pausing ?? paused, prepared.storeKey, fence.memberId, token];
    if (cursor !== undefined) values.push(cursor);
    let page: Page<string> = { items: [], cursor: undefined };
    let flags = '';
    const parkedAgain = new Set<string>();
    await this.#marking(async (replace) => {
      parkedAgain.clear();
      const statement = prepared.sql.parkPage(cursor !== undefined, replace);
      await this.#batch(prepared, fence, signal, { deferFlush: true }, statement, values, async (q, rows) => {
        const listed = pageRow((rows[0] as { page: string | null } | undefined)?.page);
        page = pageOf(listed.ids, limit, (id) => id);
        flags = listed.flags;
        // Rows another transaction updated meanwhile: parked again by key, as park() would, if running.
        const again = page.items.filter((_, i) => flags[i] !== 'p');
        if (again.length > 0) {
          const park = prepared.sql.park(true, replace);
          const args = [again, pausing ?? paused, running, prepared.storeKey, fence.memberId, token];
          const { rows: done } = await q.query(inline(park, args));
          for (const { ord } of done as { ord: string }[]) parkedAgain.add(again[Number(ord) - 1] as string);
        }
        return rows;
      });
      return [];
    });
    debug('parkPage: %d listed, %d parked again by key', page.items.length, parkedAgain.size);
    return {
      results: page.items.map((id, i) => ({
        id,
        outcome: flags[i] === 'p' || parkedAgain.has(id) ? outcome : 'skipped',
      })),
      cursor: page.cursor,
    };
  }

  /**
   * `listParked(options)` and `unpark()` of the ids it lists but those still pausing (counted, left
   * parked), in one transaction and one statement: the page is read as `listParked` reads it (the same
   * order and cursor). One result per workflow listed not pausing, in id order. Fenced, committed and
   * cancelled like unpark().
   */
  async unparkPage(fence: Fence, options: ListOptions): Promise<UnparkPage> {
    checkStoreFence(fence);
    const { limit, cursor, signal } = checkList('unparkPage()', options);
    const prepared = await this.#prepare(signal);
    const { running, pausing, paused } = this.#o.statuses;
    const values: unknown[] = [prepared.storeKey, limit, running, paused, pausing ?? null];
    if (cursor !== undefined) values.push(cursor);
    const unparking = this.#o.markTrigger !== 'off';
    // Like a park's pages, a resume's commit without waiting for the WAL flush, but the last: that one
    // waits, and with it every page before it (see "Durability of batches" in docs/adapters/postgres.md).
    const deferLast = this.#o.batchCommit === 'deferred';
    const statement = prepared.sql.unparkPage(pausing !== undefined, cursor !== undefined, deferLast);
    const byRange = prepared.sql.unparkRange;
    let marks: { ids: string[]; flags: string };
    let vanished: readonly string[] = [];
    const settings = { unparking, byKey: true };
    if (byRange !== undefined && limit <= RANGE_MAX_PAGE && this.#searchPages === 0) {
      const rangeValues = [
        prepared.storeKey,
        limit,
        running,
        paused,
        ...(cursor === undefined ? [] : [cursor]),
      ];
      const fast = { statement: byRange(cursor !== undefined, deferLast), values: rangeValues };
      try {
        marks = await this.#unparkMarks(
          prepared,
          fence,
          signal,
          { ...settings, byRange: true },
          statement,
          values,
          fast,
        );
      } catch (error) {
        if (!(error instanceof RangeRaced)) throw error;
        // A transaction changed a workflow of the page while the range resumed it: rolled back, and the
        // page done again by its marks, which reports each outcome. A mark the range listed and the page
        // no longer finds was cleared meanwhile by someone else (a user's pause, a cancel): skipped.
        debug('unparkPage: a workflow changed under the range; the page by its marks');
        marks = await this.#unparkMarks(prepared, fence, signal, settings, statement, values);
        const now = new Set(marks.ids);
        vanished = error.ids.slice(0, limit).filter((id) => !now.has(id));
      }
    } else {
      if (this.#searchPages > 0) this.#searchPages--;
      marks = await this.#unparkMarks(prepared, fence, signal, settings, statement, values);
    }
    const { ids, flags } = marks;
    const page = pageOf(ids, limit, (id) => id);
    const results: ItemResult<UnparkOutcome>[] = [];
    let stillPausing = 0;
    for (const [i, id] of page.items.entries()) {
      const state = flags[i];
      if (state === 'w') stillPausing++;
      else results.push({ id, outcome: state === 'r' ? 'resumed' : 'skipped' });
    }
    // Only those the page by its marks would have listed: marks added before them meanwhile (a peer's
    // recovery) can push a mark still there past the page, to be done by the next one.
    const reached = page.cursor === undefined ? undefined : page.items[page.items.length - 1];
    const gone = vanished.filter((id) => reached === undefined || byMarkOrder(id, reached) < 0);
    if (gone.length > 0) {
      for (const id of gone) results.push({ id, outcome: 'skipped' });
      results.sort((a, b) => byMarkOrder(a.id, b.id));
    }
    debug('unparkPage: %d listed, %d still pausing', page.items.length, stillPausing);
    return { results, pausing: stillPausing, cursor: page.cursor };
  }

  /**
   * Records `fence.token` as the store's high-water mark, writing nothing else; `StaleTokenError` when a
   * higher token was recorded. Waits for a park or unpark in flight, so that its write is ordered first.
   */
  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    checkStoreFence(fence);
    const signal = checkCallOptions('raiseFence()', options);
    signal?.throwIfAborted();
    if (this.#closed !== undefined) throw new ClosedError('The PostgresWorkflowStore is closed');
    if (fence.token === undefined && !this.#checksIncarnation(fence)) return;
    const prepared = await this.#prepare(signal);
    await this.#o.runner.transaction((q) => this.#checkFence(q, prepared, fence), signal);
    debug('raiseFence: token %s', fence.token);
  }

  /**
   * Drops the parked-by-shutdown marks of `ids` (`released`; `skipped` when there was none): call it
   * from your "pause" path, so that a workflow a user paused while it was parked is never resumed.
   * Unfenced: it only ever takes a resume away.
   */
  async notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    checkIds(ids);
    return this.#write('notePaused()', options, ids, 'released', false, (prepared, byType, signal) =>
      this.#o.runner.transaction(
        async (q) => (await q.query(prepared.sql.notePaused(byType), [ids, prepared.storeKey])).rows,
        signal,
      ),
    );
  }

  /** The group's generation record (see docs/adapters/postgres.md, "Crash recovery"); one statement. */
  async readGeneration(group: string, options?: StoreCallOptions): Promise<GenerationRecord> {
    checkName('group', group);
    const signal = checkCallOptions('readGeneration()', options);
    const { sql, storeKey } = await this.#prepare(signal);
    const [row] = (await this.#o.runner.query(sql.readGeneration, [storeKey, group], signal)) as {
      generation: string;
      dirty: boolean;
      member_ids: string[];
      incarnations: string[];
    }[];
    const { generation, dirty, member_ids: ids, incarnations } = row as NonNullable<typeof row>;
    const members = ids
      .map((memberId, i) => Object.freeze({ memberId, incarnation: incarnations[i] as string }))
      .sort((a, b) => (a.memberId < b.memberId ? -1 : 1));
    return Object.freeze({ generation: Number(generation), members: Object.freeze(members), dirty });
  }

  /** Registers `member` as running in `group`, replacing an entry with its id. Fenced like park(). */
  async enterGeneration(
    group: string,
    member: GenerationMember,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkName('group', group);
    const values = [
      group,
      checkName('member.memberId', member?.memberId),
      checkName('member.incarnation', member.incarnation),
    ];
    // The incarnation registered is checked too: an evicted one never registers again.
    const registered = { memberId: values[1] as string, incarnation: values[2] as string };
    await this.#fenced(
      'enterGeneration()',
      fence,
      options,
      (q, { sql, storeKey }) => q.query(sql.enterGeneration, [storeKey, ...values]),
      registered,
    );
  }

  /**
   * Removes the entries of `memberIds` and ends the generation as `end` says (`clean` also resets every
   * workflow's recovery count), in one statement. Fenced like park().
   */
  async leaveGeneration(
    group: string,
    memberIds: readonly string[],
    end: GenerationEnd,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkName('group', group);
    checkIds(memberIds);
    checkOneOf('end', end, ['none', 'clean', 'dirty'] as const);
    await this.#fenced('leaveGeneration()', fence, options, (q, { sql, storeKey }) =>
      q.query(sql.leaveGeneration, [storeKey, group, memberIds, end]),
    );
  }

  /**
   * Hands back workflows a crash left running, in one transaction and one statement per call: each
   * running one is locked and counted, then parked as park() does (mode `park`) or only counted; one
   * recovered `maxRecoveries` times already moves to `statuses.failed` instead (kept as it is without
   * one), its count and mark dropped: `failed`. Not running: `skipped`. Fenced and cancelled like park().
   */
  async recover(
    ids: readonly string[],
    fence: Fence,
    options: RecoverOptions,
  ): Promise<readonly ItemResult<RecoverOutcome>[]> {
    checkIds(ids);
    checkStoreFence(fence);
    const o = checkOptionsObject('recover()', options, ['mode', 'maxRecoveries', 'signal']);
    const { mode, max } = checkRecovery(o);
    const { running, pausing, paused, failed } = this.#o.statuses;
    const recovered = mode === 'count' ? 'counted' : pausing === undefined ? 'paused' : 'pausing';
    const outcome = (row: { ord: string; spent: boolean }): RecoverOutcome =>
      row.spent ? 'failed' : recovered;
    const call = { signal: o.signal as AbortSignal | undefined };
    const token = fence.token?.toString() ?? null;
    return this.#write('recover()', call, ids, outcome, true, (prepared, byType, signal) => {
      const { storeKey, sql } = prepared;
      const values = [ids, running, storeKey, max, pausing ?? paused, failed ?? null, fence.memberId, token];
      return this.#marking(async (replace) => {
        // Always flushed: a peer check's recovery may be followed by no later durable write (workflows the
        // host was still pausing), and a batch lost with the dead peer already evicted would stay running.
        const statement = sql.recover(byType, replace, mode === 'park', failed !== undefined);
        const [row] = (await this.#batch(prepared, fence, signal, {}, statement, values)) as {
          hit: string | null;
        }[];
        return (row?.hit ?? '')
          .split(',')
          .filter((entry) => entry !== '')
          .map((entry) => ({ ord: entry.replace('-', ''), spent: entry.startsWith('-') }));
      });
    });
  }

  /**
   * `listActive(options)` and `recover()` of the ids it lists, in one transaction and one statement: the
   * page is read as `listActive` reads it (the same order and cursor), and its workflows are recovered as
   * recover() recovers them. Mode `park`: each row updated where the page's scan found it (no second
   * lookup); one another transaction updated meanwhile, or a spent one without `statuses.failed`, is
   * recovered by key (recover()'s statement) in the same transaction. Mode `count`: each locked by key.
   * One result per running workflow listed, in id order. Fenced, committed (the WAL flush awaited, as
   * recover()'s) and cancelled like recover().
   */
  async recoverPage(fence: Fence, options: RecoverPageOptions): Promise<RecoverPage> {
    checkStoreFence(fence);
    const names = ['limit', 'cursor', 'mode', 'maxRecoveries', 'signal'];
    const o = checkOptionsObject('recoverPage()', options, names);
    const { limit, cursor, signal } = checkList('recoverPage()', {
      limit: o.limit,
      cursor: o.cursor,
      signal: o.signal,
    });
    const { mode, max } = checkRecovery(o);
    const prepared = await this.#prepare(signal);
    const { running, pausing, paused, failed } = this.#o.statuses;
    const recovered = mode === 'count' ? 'counted' : pausing === undefined ? 'paused' : 'pausing';
    const token = fence.token?.toString() ?? null;
    const { storeKey, sql } = prepared;
    const values: unknown[] = [running, limit, storeKey, max, pausing ?? paused, failed ?? null];
    values.push(fence.memberId, token);
    if (cursor !== undefined) values.push(cursor);
    let page: Page<string> = { items: [], cursor: undefined };
    let flags = '';
    const again = new Map<string, RecoverOutcome>();
    const byRow = mode === 'park';
    await this.#marking(async (replace) => {
      again.clear();
      // Always flushed, as recover(): a recovery may be followed by no later durable write.
      const statement = byRow
        ? sql.recoverPageByRow(cursor !== undefined, replace, failed !== undefined)
        : sql.recoverPage(cursor !== undefined, replace, false, failed !== undefined);
      await this.#batch(prepared, fence, signal, {}, statement, values, async (q, rows) => {
        const listed = pageRow((rows[0] as { page: string | null } | undefined)?.page);
        page = pageOf(listed.ids, limit, (id) => id);
        flags = listed.flags;
        // Rows another transaction updated meanwhile, and spent ones without a failed status: recovered
        // by key, as recover() would, in the same transaction.
        const byKey = page.items.filter((_, i) => flags[i] === 'q');
        if (byKey.length > 0) {
          const recover = sql.recover(true, replace, true, failed !== undefined);
          const args = [
            byKey,
            running,
            storeKey,
            max,
            pausing ?? paused,
            failed ?? null,
            fence.memberId,
            token,
          ];
          const { rows: hit } = await q.query(inline(recover, args));
          for (const entry of ((hit[0] as { hit: string | null } | undefined)?.hit ?? '').split(',')) {
            if (entry === '') continue;
            const id = byKey[Number(entry.replace('-', '')) - 1] as string;
            again.set(id, entry.startsWith('-') ? 'failed' : recovered);
          }
        }
        return rows;
      });
      return [];
    });
    const results = page.items.map((id, i): ItemResult<RecoverOutcome> => ({
      id,
      outcome: flags[i] === 'r' ? recovered : flags[i] === 'f' ? 'failed' : (again.get(id) ?? 'skipped'),
    }));
    debug('recoverPage: %d listed, %d recovered by key', page.items.length, again.size);
    return { results, cursor: page.cursor };
  }

  /**
   * Warns (`status-mismatch`) when no row of a non-empty host table has one of the configured statuses:
   * a shutdown would park nothing. One query, bounded by a 2 s statement timeout (inconclusive then: no
   * warning), naming values from a sample of 1000 rows.
   */
  async diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    const signal = checkCallOptions('diagnose()', options);
    const { sql } = await this.#prepare(signal);
    const { running, pausing, paused } = this.#o.statuses;
    const configured = Object.entries({ running, pausing, paused }).flatMap(([key, value]) =>
      value === undefined ? [] : [[`statuses.${key}`, value] as const],
    );
    const params = [configured.map(([, value]) => value), DIAGNOSE_SAMPLE_ROWS, DIAGNOSE_SHOWN_VALUES + 1];
    let row: { matched: boolean; seen: (string | null)[] };
    try {
      row = await this.#o.runner.transaction(async (q) => {
        await q.query("SELECT set_config('statement_timeout', $1, true)", [`${DIAGNOSE_TIMEOUT_MS}ms`]);
        return (await q.query(sql.diagnose, params)).rows[0] as typeof row;
      }, signal);
    } catch (error) {
      // query_canceled by the statement timeout: too big a table to tell cheaply.
      if (codeOf(error) !== '57014' || signal?.aborted === true) throw error;
      debug('diagnose: inconclusive (%s)', messageOf(error));
      return [];
    }
    if (row.matched || row.seen.length === 0) return [];
    const shown = row.seen.slice(0, DIAGNOSE_SHOWN_VALUES);
    const values =
      shown.map((value) => (value === null ? 'NULL' : JSON.stringify(value))).join(', ') +
      (row.seen.length > DIAGNOSE_SHOWN_VALUES ? ', ...' : '');
    const hints = configured.flatMap(([name, value]) => {
      const like = shown.find((seen) => seen !== null && seen.trim().toLowerCase() === value.toLowerCase());
      return like === undefined ? [] : [`${name} ${JSON.stringify(like)}`];
    });
    const message =
      `PostgresWorkflowStore: no row of ${this.#o.table.sql} has a status the store is configured with (` +
      `${configured.map(([name, value]) => `${name} ${JSON.stringify(value)}`).join(', ')}), yet the table ` +
      `is not empty: its column ${quote(this.#o.statusColumn)} holds ${values} (a sample). A shutdown would ` +
      'park nothing and leave every workflow running. Status values are compared exactly, case included' +
      (hints.length > 0 ? `: did you mean ${hints.join(', ')}?` : '.');
    return [{ code: 'status-mismatch', message }];
  }

  /**
   * Runs `write`, one transaction (none for no ids): for the ids at the positions (`ord`) of the rows
   * it returns, `outcome` (or what it says of the row); `skipped` for the others. `byType`: match by the
   * id column's type, on a data exception again as text (`false`: as text at once on a text column;
   * `undefined`: no retry).
   */
  async #write<O extends string, R extends { ord: string | number }>(
    where: string,
    options: StoreCallOptions | undefined,
    ids: readonly string[],
    outcome: O | ((row: R) => O),
    byType: boolean | undefined,
    write: (
      prepared: Prepared,
      byType: boolean,
      signal: AbortSignal | undefined,
    ) => Promise<readonly unknown[]>,
  ): Promise<ItemResult<O | 'skipped'>[]> {
    const signal = checkCallOptions(where, options);
    const prepared = await this.#prepare(signal);
    const run = (t: boolean): Promise<readonly unknown[]> =>
      ids.length === 0 ? Promise.resolve([]) : write(prepared, t, signal);
    let rows: readonly unknown[];
    try {
      rows = await run(byType === false ? !prepared.idIsText : true);
    } catch (error) {
      if (byType === undefined || prepared.idIsText || codeOf(error)?.startsWith('22') !== true) throw error;
      rows = await run(false);
    }
    debug('%s: %d of %d ids written', where, rows.length, ids.length);
    const of = typeof outcome === 'function' ? outcome : () => outcome;
    const done = new Map((rows as R[]).map((row) => [Number(row.ord), of(row)]));
    return ids.map((id, index) => ({ id, outcome: done.get(index + 1) ?? 'skipped' }));
  }

  /**
   * Runs an unpark statement (`unpark`, `unparkPage`) as #batch does: its page of marks, each with what
   * became of it (`r`, `w`, `s`); the workflows the statement could not resume where their lock found
   * them (another transaction updated them meanwhile, `q`) resumed by key in the same transaction first.
   */
  async #unparkMarks(
    prepared: Prepared,
    fence: Fence,
    signal: AbortSignal | undefined,
    settings: { unparking: boolean; byKey?: boolean; byRange?: boolean },
    statement: string,
    values: readonly unknown[],
    fast?: { statement: string; values: readonly unknown[] },
  ): Promise<{ ids: string[]; flags: string }> {
    let marks: { ids: string[]; flags: string } = { ids: [], flags: '' };
    const opening = fast ?? { statement, values };
    await this.#batch(
      prepared,
      fence,
      signal,
      settings,
      opening.statement,
      opening.values,
      async (q, first) => {
        let rows = first;
        if (fast !== undefined) {
          const judged = rows[0] as
            { fast: boolean | null; whole: boolean | null; page: string | null } | undefined;
          if (judged?.fast === true && judged.whole !== true) {
            this.#searchPages = SEARCH_PAGES;
            throw new RangeRaced(pageRow(judged.page).ids);
          }
          if (judged?.fast !== true) {
            // The range did not hold the page (a mark pausing or gone, ids out of the marks' order, or
            // finished workflows thick between the parked ones): the page by its marks, in the same
            // transaction (the range wrote nothing), with the planner's choices back; and the next pages
            // too, so that a table whose ids never order as the marks' seldom pays for the range's walk.
            this.#searchPages = SEARCH_PAGES;
            await q.query('SET LOCAL enable_seqscan = on; SET LOCAL enable_bitmapscan = on');
            rows = (await q.query(inline(statement, values))).rows;
          }
        }
        marks = pageRow((rows[0] as { page: string | null } | undefined)?.page);
        const again = marks.ids.filter((_, i) => marks.flags[i] === 'q');
        if (again.length === 0) return rows;
        const { running, paused } = this.#o.statuses;
        const { rows: done } = await q.query(inline(prepared.sql.resumeByKey, [again, running, paused]));
        const resumed = new Set((done as { workflow_id: string }[]).map((row) => row.workflow_id));
        const { ids, flags } = marks;
        const settled = [...flags].map((flag, i) =>
          flag !== 'q' ? flag : resumed.has(ids[i] as string) ? 'r' : 's',
        );
        marks = { ids, flags: settled.join('') };
        debug('unpark: %d resumed by key of %d', resumed.size, again.length);
        return rows;
      },
    );
    return marks;
  }

  /**
   * A fenced batch statement (park, unpark, recover) in one transaction and two round trips: `BEGIN`, the
   * fence check and the statement go together (the simple protocol, values inlined as escaped literals),
   * then `COMMIT`. The statement writes nothing unless the fence check let it (the transaction's fence
   * flag); the check's row is then judged (`StaleTokenError`, `EvictedMemberError`: rolled back). Resolves
   * with the statement's rows. `deferFlush`: the commit does not wait for the WAL flush (see "Durability"
   * in docs/adapters/postgres.md), unless `batchCommit: 'synchronous'`. `byKey`: the transaction's plans
   * take no sort (a page of marks read in key order, whatever the statistics say). `then`: more of the
   * call's work, in its transaction once the fence is judged, before the `COMMIT`.
   */
  async #batch(
    prepared: Prepared,
    fence: Fence,
    signal: AbortSignal | undefined,
    {
      unparking = false,
      deferFlush = false,
      byKey = false,
      byRange = false,
    }: { unparking?: boolean; deferFlush?: boolean; byKey?: boolean; byRange?: boolean },
    text: string,
    values: readonly unknown[],
    then?: (q: PgQueryable, rows: readonly unknown[]) => Promise<readonly unknown[]>,
  ): Promise<readonly unknown[]> {
    const check = this.#fenceCheck(prepared, fence, unparking);
    const opening = [
      ...(deferFlush && this.#o.batchCommit === 'deferred' ? ['SET LOCAL synchronous_commit = off'] : []),
      // A page of marks is read in key order, however stale their statistics: a bulk park or recovery
      // leaves them saying the table is empty, and a plan sorting everything after the cursor wins.
      ...(byKey ? ['SET LOCAL enable_sort = off'] : []),
      // A resume by the host's range walks its primary key, which locks the rows in id order.
      ...(byRange ? ['SET LOCAL enable_seqscan = off', 'SET LOCAL enable_bitmapscan = off'] : []),
      inline(prepared.sql.fence(check.check), check.values),
      inline(text, values),
    ].join(';\n');
    return this.#o.runner.transaction(
      async (q, opened) => {
        const [checked, written] = opened.slice(-2) as [PgQueryResult, PgQueryResult];
        this.#judgeFence(checked.rows[0] as FenceRow, fence);
        return then === undefined ? written.rows : then(q, written.rows);
      },
      signal,
      opening,
    );
  }

  /**
   * Runs a batch that marks (and, recovering, counts) workflows: with plain inserts when the mark trigger
   * keeps running workflows unmarked, again replacing marks and raising counts when one was there all
   * the same (`unique_violation`: a stale mark, or a workflow recovered before).
   */
  async #marking(run: (replace: boolean) => Promise<readonly unknown[]>): Promise<readonly unknown[]> {
    if (this.#o.markTrigger === 'off') return run(true);
    try {
      return await run(false);
    } catch (error) {
      if (codeOf(error) !== '23505') throw error;
      debug('a stale mark met: the batch again, replacing marks');
      return run(true);
    }
  }

  /** Runs `write` in one transaction after the fence check, as park() does. */
  async #fenced(
    where: string,
    fence: Fence,
    options: StoreCallOptions | undefined,
    write: (q: PgQueryable, prepared: Prepared) => Promise<unknown>,
    also?: GenerationMember,
  ): Promise<void> {
    checkStoreFence(fence);
    const signal = checkCallOptions(where, options);
    const prepared = await this.#prepare(signal);
    await this.#o.runner.transaction(async (q) => {
      await this.#checkFence(q, prepared, fence, false, also);
      await write(q, prepared);
    }, signal);
    debug('%s by %s (token %s)', where, fence.memberId, fence.token);
  }

  /** The store has the owner capability and `fence` names an incarnation: its calls check it. */
  #checksIncarnation(fence: Fence): boolean {
    return this.#o.ownerColumn !== undefined && fence.incarnation !== undefined;
  }

  /**
   * One statement: throws `EvictedMemberError` when `fence.incarnation` (or `also`'s) was evicted (with
   * an owner column), records the token as the store's high-water mark or throws `StaleTokenError` (the
   * caller rolls back). `unparking`: sets the mark trigger's flag for the transaction too.
   */
  async #checkFence(
    q: PgQueryable,
    prepared: Prepared,
    fence: Fence,
    unparking = false,
    also?: GenerationMember,
  ): Promise<void> {
    const { check, values } = this.#fenceCheck(prepared, fence, unparking, also);
    if (!check.token && !check.incarnations) {
      if (unparking) await q.query(`SELECT set_config('${UNPARKING}', 'on', true)`);
      return;
    }
    const { rows } = await q.query(prepared.sql.fence(check), values);
    this.#judgeFence(rows[0] as FenceRow, fence);
  }

  /** The fence check statement's variant and values: the token, the incarnations to check (with the owner column). */
  #fenceCheck(
    prepared: Prepared,
    fence: Fence,
    unparking: boolean,
    also?: GenerationMember,
  ): { check: FenceCheck; values: unknown[] } {
    const { incarnation } = fence;
    // Incarnation -> member id, each once.
    const checked = new Map<string, string>();
    if (this.#o.ownerColumn !== undefined) {
      if (incarnation !== undefined) checked.set(incarnation, fence.memberId);
      if (also !== undefined && !checked.has(also.incarnation)) checked.set(also.incarnation, also.memberId);
    }
    const check = { token: fence.token !== undefined, incarnations: checked.size > 0, unparking };
    const values: unknown[] = [prepared.storeKey];
    if (fence.token !== undefined) values.push(fence.token.toString());
    if (check.incarnations) values.push([...checked.keys()], [...checked.values()]);
    return { check, values };
  }

  /** Throws what the fence check's row says: `EvictedMemberError`, `StaleTokenError`. */
  #judgeFence(row: FenceRow, fence: Fence): void {
    if (row.evicted !== null) throw new EvictedMemberError(row.evicted[0], row.evicted[1]);
    if (fence.token === undefined) return;
    const highest = BigInt(row.token as string);
    if (highest > fence.token) throw new StaleTokenError(fence.token, highest);
  }

  async #listOwned(memberIds: readonly string[], options: ListOptions): Promise<Page<string>> {
    if (!Array.isArray(memberIds)) invalid('memberIds', 'an array of member ids', memberIds);
    memberIds.forEach((id: unknown, i) => checkName(`memberIds[${i}]`, id));
    const { limit, cursor, signal } = checkList('listOwned()', options);
    const { sql, ownerIsText } = await this.#prepare(signal);
    const owners = [...new Set(memberIds)];
    if (owners.length === 0) return { items: [], cursor: undefined };
    const listOwned = sql.listOwned as NonNullable<StoreSql['listOwned']>;
    const values: unknown[] = [this.#o.statuses.running, limit + 1, owners];
    if (cursor !== undefined) values.push(cursor);
    const run = (byType: boolean) =>
      this.#o.runner.query(listOwned(cursor !== undefined, byType), values, signal);
    let rows: readonly unknown[];
    try {
      rows = await run(true);
    } catch (error) {
      // A member id the owner column's type cannot hold (not a uuid, say): compare as text.
      if (ownerIsText || signal?.aborted === true || codeOf(error)?.startsWith('22') !== true) throw error;
      rows = await run(false);
    }
    return pageOf(
      (rows as { id: string }[]).map((row) => row.id),
      limit,
      (id) => id,
    );
  }

  async #evictMembers(
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkName('group', group);
    if (!Array.isArray(members)) invalid('members', 'an array of `{ memberId, incarnation }`', members);
    const ids = members.map((m: unknown, i) =>
      checkName(`members[${i}].memberId`, (m as GenerationMember | null)?.memberId),
    );
    const incarnations = members.map((m, i) => checkName(`members[${i}].incarnation`, m.incarnation));
    await this.#fenced('evictMembers()', fence, options, (q, { sql, storeKey }) =>
      q.query(sql.evictMembers, [storeKey, group, ids, incarnations]),
    );
    debug('evictMembers: %s evicted from %s', incarnations.join(', '), group);
  }

  /** Ends the pool the store created, if any (never a client or pool passed in). Idempotent; never throws. */
  close(): Promise<void> {
    this.#closed ??= bounded(this.#o.runner.end(), 5000, () => new Error('timeout')).catch((error: unknown) =>
      debug('close: %s', messageOf(error)),
    );
    return this.#closed;
  }

  /** The first use's checks, shared by every call; a call given up stops waiting, the set-up goes on. */
  async #prepare(signal: AbortSignal | undefined): Promise<Prepared> {
    signal?.throwIfAborted();
    if (this.#closed !== undefined) throw new ClosedError('The PostgresWorkflowStore is closed');
    this.#prepared ??= this.#inspect().catch((error: unknown) => {
      this.#prepared = undefined;
      throw error;
    });
    return abortable(this.#prepared, signal);
  }

  async #inspect(): Promise<Prepared> {
    const o = this.#o;
    const query = (text: string, values: unknown[]): Promise<readonly unknown[]> =>
      o.runner.query(text, values);
    await checkSchema(query, o.schema, 'PostgresWorkflowStore');
    const info = await inspectHostTable(query, o);
    debug('store %s: id column of type %s', info.storeKey, info.idType);
    if (o.markTrigger !== 'off') await this.#ensureMarkTrigger(markTrigger(o.schema, o, info));
    return {
      // Type and collation names come from the catalog, quoted by it as needed, never from options.
      sql: storeSql(
        o.table.sql,
        quote(o.idColumn),
        quote(o.statusColumn),
        quote(o.schema),
        recoveryTables(o.schema),
        info,
        o.ownerColumn === undefined ? undefined : quote(o.ownerColumn),
      ),
      storeKey: info.storeKey,
      idIsText: TEXT_TYPES.has(info.idType),
      ownerIsText: info.owner !== undefined && TEXT_TYPES.has(info.owner.type),
    };
  }

  /** Checks the mark trigger; installs it (`'install'`) or asks for `migrate({ stores })` (`'verify'`). */
  async #ensureMarkTrigger(trigger: { checkSql: string; installSql: string }): Promise<void> {
    const o = this.#o;
    const [row] = (await o.runner.query(trigger.checkSql, [])) as { current: boolean }[];
    if (row?.current === true) return;
    const table = o.table.sql;
    const name = o.table.schema === undefined ? o.table.name : `${o.table.schema}.${o.table.name}`;
    const remedy =
      `\`await migrate(pool, { schema: '${o.schema}', stores: [{ table: '${name}', idColumn: ` +
      `'${o.idColumn}', statusColumn: '${o.statusColumn}', statuses }] })\` (from ` +
      "'graceful-drain/postgres') once as a role that may create triggers on the table, and again " +
      'whenever the statuses change';
    if (o.markTrigger === 'verify') {
      throw new ConfigurationError(
        `PostgresWorkflowStore: the trigger that drops a parked mark when its workflow leaves ` +
          `pausing/paused is missing on ${table}, or was made for other statuses (markTrigger: 'verify'). ` +
          `Install it with ${remedy}; or set markTrigger: 'install'.`,
      );
    }
    try {
      await o.runner.query(trigger.installSql, []);
    } catch (error) {
      const code = codeOf(error);
      // wrong_object_type (a view, which takes no trigger); insufficient_privilege (no TRIGGER on the
      // table, no CREATE on the schema, or not the owner).
      if (code !== '42809' && code !== '42501') throw error;
      const failed =
        `PostgresWorkflowStore could not install the trigger that drops a parked mark when its workflow ` +
        `leaves pausing/paused on ${table} (${messageOf(error)}). `;
      const off = "set markTrigger: 'off' and call store.notePaused(ids) wherever a user pauses workflows.";
      throw new ConfigurationError(
        code === '42809'
          ? `${failed}Give the store the table itself as \`table\`, or ${off}`
          : `${failed}It needs the TRIGGER privilege on the table and CREATE on the schema "${o.schema}". ` +
              `Run ${remedy}; or ${off}`,
        { cause: error },
      );
    }
    debug('store %s: mark trigger installed', table);
  }
}
