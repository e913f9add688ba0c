import {
  checkCallOptions,
  checkFence,
  checkIds,
  checkList,
  checkSignal,
  pageOf,
  resultsOf,
} from '../../internal/store-args.js';
import { checkName, checkNonNegative, checkOneOf, checkOptionsObject, invalid } from '../../validate.js';
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
  StoreCallOptions,
  StoreWarning,
  UnparkOutcome,
  UnparkPage,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from '../../workflow-store.js';
import { debug, SqliteConnection } from './connection.js';
import type { SqliteDatabase } from './driver.js';
import { diagnoseStatuses } from './diagnose.js';
import { compileStoreOptions, type SqliteWorkflowStoreOptions } from './options.js';
import { CHUNK, setUpStore, type StoreStatements } from './store-sql.js';

/**
 * A {@link WorkflowStore} over a table the host already has in SQLite. It reads the id and status
 * columns, writes only the status column (with the host's values), and keeps its parked-by-shutdown
 * marks, the highest fencing token and the crash-recovery record in tables of its own. Each `park()`,
 * `unpark()` and `recover()` is one transaction, whatever the batch size; stale tokens are rejected with
 * `StaleTokenError`.
 *
 * Its set-up (on the first call) installs two triggers on the host's table that drop a workflow's mark
 * when its status leaves `pausing`/`paused` or its row is deleted, so a user's later pause is never
 * undone. Their cost and how to remove them: docs/adapters/sqlite.md. Ids are strings.
 *
 * With `ownerColumn` (the host's column naming the member that drives each workflow) it also has the
 * owner capability, `listOwned()` and `evictMembers()`; without it, neither method is there. Every
 * call whose `fence.incarnation` was evicted rejects with `EvictedMemberError`, whatever the option.
 *
 * @example
 * ```ts
 * import { openSqliteDatabase, SqliteWorkflowStore } from 'graceful-drain/sqlite';
 * const store = new SqliteWorkflowStore({
 *   database: await openSqliteDatabase('/var/lib/engine/engine.db'), // node:sqlite or better-sqlite3
 *   table: 'executions',
 *   statusColumn: 'state',
 *   statuses: { running: 'RUNNING', pausing: 'PAUSING', paused: 'PAUSED' },
 * });
 * ```
 */
export class SqliteWorkflowStore implements WorkflowStore {
  /** Stale tokens are rejected. */
  readonly capabilities: WorkflowStoreCapabilities = Object.freeze({ fencing: 'monotonic' });

  /**
   * Lists the running workflows whose owner (the `ownerColumn`) is one of `memberIds`, in id order,
   * `limit` at a time. Only with `ownerColumn`: `undefined` without it.
   */
  declare readonly listOwned?: (memberIds: readonly string[], options: ListOptions) => Promise<Page<string>>;

  /**
   * In one transaction, fenced: removes each of `members`' entries of `group`'s generation record (an
   * entry of the same id with another incarnation is kept) and records their incarnations in
   * `<marksTable>_evictions`, so that every later call whose `fence.incarnation` is one of them rejects
   * with `EvictedMemberError`. Idempotent. Only with `ownerColumn`: `undefined` without it.
   */
  declare readonly evictMembers?: (
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options?: StoreCallOptions,
  ) => Promise<void>;

  readonly #connection: SqliteConnection;
  readonly #options: ReturnType<typeof compileStoreOptions>;
  #sql!: StoreStatements;
  /** One transaction function per handle, running the work of the `#write()` under way. */
  #transaction: { db: SqliteDatabase; run: { immediate(): unknown }; work: () => unknown } | undefined;

  constructor(options: SqliteWorkflowStoreOptions) {
    const o = (this.#options = compileStoreOptions(options));
    this.#connection = new SqliteConnection(o, (db) => (this.#sql = setUpStore(db, o)));
    // Own properties only when configured, so `typeof store.listOwned === 'function'` tells the truth.
    if (o.names.ownerColumn !== undefined) {
      this.listOwned = (memberIds, list) => this.#listOwned(memberIds, list);
      this.evictMembers = (group, members, fence, call) => this.#evictMembers(group, members, fence, call);
    }
  }

  /** Lists running workflows in id order, `limit` at a time. */
  async listActive(options: ListOptions): Promise<Page<string>> {
    const { limit, cursor, signal } = checkList('listActive()', options);
    const ids = await this.#connection.run(
      () => this.#sql.active(this.#options.statuses.running, cursor, limit + 1),
      { what: 'list the active workflows', signal },
    );
    return pageOf(ids, limit, (id) => id);
  }

  /** Lists marked workflows in id order with the host's state of each, `limit` at a time. */
  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    const { limit, cursor, signal } = checkList('listParked()', options);
    const items = await this.#connection.run(
      () => this.#sql.parked(this.#options.statuses, cursor, limit + 1),
      { what: 'list the parked workflows', signal },
    );
    return pageOf(items, limit, (item) => item.id);
  }

  /**
   * Pauses and marks the running ones among `ids`, in one transaction, retried while the database is
   * busy; when `options.signal` aborts, the retries stop and nothing of this park is ever committed.
   */
  async park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    checkIds(ids);
    checkStoreFence(fence);
    const signal = checkCallOptions('park()', options);
    const { running, pausing, paused } = this.#options.statuses;
    const at = Date.now();
    const parked = await this.#writeChunks('park workflows', ids, fence, signal, (sql, chunk) =>
      sql.park(chunk, running, pausing ?? paused, fence.memberId, fence.token ?? null, at),
    );
    debug('parked %d of %d (token %s)', parked?.size ?? ids.length, ids.length, fence.token);
    return outcomesOf(ids, parked, pausing === undefined ? 'paused' : 'pausing');
  }

  /** Resumes the paused, marked ones among `ids` and clears their marks, in one transaction, as {@link park}. */
  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    checkIds(ids);
    checkStoreFence(fence);
    const signal = checkCallOptions('unpark()', options);
    const resumed = await this.#writeChunks('unpark workflows', ids, fence, signal, (sql, chunk) =>
      sql.unpark(chunk, this.#options.statuses),
    );
    debug('resumed %d of %d (token %s)', resumed?.size ?? ids.length, ids.length, fence.token);
    return outcomesOf(ids, resumed, 'resumed');
  }

  /**
   * Lists a page of running workflows as {@link listActive} does (the same page, the same cursor) and
   * parks them as {@link park} does, in one transaction, fenced and cancelled as {@link park}: in the
   * usual case one statement marks the page's running workflows and one pauses them, by the range of
   * ids listed. One result per workflow listed, in id order.
   */
  async parkPage(fence: Fence, options: ListOptions): Promise<ParkPage> {
    checkStoreFence(fence);
    const { limit, cursor, signal } = checkList('parkPage()', options);
    const { running, pausing, paused } = this.#options.statuses;
    const at = Date.now();
    const page = await this.#write('park workflows', fence, signal, (sql) =>
      sql.parkPage(running, pausing ?? paused, fence.memberId, fence.token ?? null, at, cursor, limit),
    );
    const { ids, parked } = page;
    const done: ParkOutcome = pausing === undefined ? 'paused' : 'pausing';
    const results =
      parked === undefined
        ? ids.map((id) => ({ id, outcome: done }))
        : ids.map((id) => ({ id, outcome: parked.has(id) ? done : ('skipped' as const) }));
    debug('parked a page of %d (token %s)', ids.length, fence.token);
    return { results, cursor: page.more ? ids[ids.length - 1] : undefined };
  }

  /**
   * Lists a page of marked workflows as {@link listParked} does (the same page, the same cursor) and
   * unparks the ones not `pausing` as {@link unpark} does, in one transaction, fenced and cancelled as
   * {@link park}; the `pausing` ones are counted and keep their marks. In the usual case (every one
   * paused) one statement resumes the page's marked paused workflows, by the range of ids listed. One
   * result per workflow listed not `pausing`, in id order.
   */
  async unparkPage(fence: Fence, options: ListOptions): Promise<UnparkPage> {
    checkStoreFence(fence);
    const { limit, cursor, signal } = checkList('unparkPage()', options);
    const page = await this.#write('unpark workflows', fence, signal, (sql) =>
      sql.unparkPage(this.#options.statuses, cursor, limit),
    );
    const { ids, resumed } = page;
    const results =
      resumed === undefined
        ? ids.map((id) => ({ id, outcome: 'resumed' as const }))
        : ids.map((id) => ({ id, outcome: resumed.has(id) ? ('resumed' as const) : ('skipped' as const) }));
    debug('unparked a page of %d, %d pausing (token %s)', ids.length, page.pausing, fence.token);
    return { results, pausing: page.pausing, cursor: page.more ? page.last : undefined };
  }

  /**
   * Records `fence.token` as the highest seen, writing nothing else; rejects with `StaleTokenError`
   * when a higher one was seen. A no-op for `token: undefined`.
   */
  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    checkStoreFence(fence);
    const signal = checkCallOptions('raiseFence()', options);
    signal?.throwIfAborted();
    if (fence.token === undefined && fence.incarnation === undefined) return;
    await this.#write('raise the fence', fence, signal, () => undefined);
    debug('fence raised to %s', fence.token);
  }

  /**
   * Drops the marks of `ids`, which a user has just paused, so that they are never resumed: `released`
   * per id whose mark was dropped, else `skipped`. Call it from the host's own "pause" path.
   */
  async notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    checkIds(ids);
    const signal = checkCallOptions('notePaused()', options);
    const released = await this.#writeChunks('note paused workflows', ids, undefined, signal, (sql, chunk) =>
      sql.dropMarks(chunk),
    );
    debug('released %d of %d marks (paused by a user)', released?.size ?? ids.length, ids.length);
    return outcomesOf(ids, released, 'released');
  }

  /** The group's generation record; a group never seen reads `{ generation: 0, members: [], dirty: false }`. */
  async readGeneration(group: string, options?: StoreCallOptions): Promise<GenerationRecord> {
    checkName('group', group);
    const signal = checkCallOptions('readGeneration()', options);
    return this.#connection.run(() => this.#sql.generation(group), {
      what: 'read the generation record',
      signal,
    });
  }

  /** Registers `member` as running in `group`, replacing an entry with its id; one transaction, fenced. */
  async enterGeneration(
    group: string,
    member: GenerationMember,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkName('group', group);
    const memberId = checkName('member.memberId', member?.memberId);
    const incarnation = checkName('member.incarnation', member.incarnation);
    checkStoreFence(fence);
    const signal = checkCallOptions('enterGeneration()', options);
    await this.#write('enter the generation', fence, signal, (sql) => {
      // An evicted incarnation never registers again, whoever writes it.
      sql.checkNotEvicted(incarnation);
      sql.enterGeneration(group, memberId, incarnation);
    });
    debug('%s entered the generation of %s (token %s)', memberId, group, fence.token);
  }

  /**
   * Removes the entries of `memberIds` and ends the generation as `end` says (`clean` also resets every
   * recovery count); one transaction, fenced.
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
    checkStoreFence(fence);
    const signal = checkCallOptions('leaveGeneration()', options);
    await this.#write('leave the generation', fence, signal, (sql) =>
      sql.leaveGeneration(group, memberIds, end),
    );
    debug('%o left the generation of %s (%s, token %s)', memberIds, group, end, fence.token);
  }

  /**
   * Hands back the running ones among `ids` in one transaction, fenced and cancelled as {@link park}:
   * counted, then paused and marked as `park()` does (mode `park`) or only counted (mode `count`); those
   * recovered `maxRecoveries` times already are set to `statuses.failed` (left as they are without
   * one), their count and any mark dropped. Not running: `skipped`.
   */
  async recover(
    ids: readonly string[],
    fence: Fence,
    options: RecoverOptions,
  ): Promise<readonly ItemResult<RecoverOutcome>[]> {
    checkIds(ids);
    checkStoreFence(fence);
    const o = checkOptionsObject('recover()', options, ['mode', 'maxRecoveries', 'signal']);
    const mode = checkOneOf('options.mode', o.mode, ['park', 'count'] as const);
    const maxRecoveries = checkNonNegative('options.maxRecoveries', o.maxRecoveries);
    const signal = checkSignal(o.signal);
    const distinct = [...new Set(ids)];
    const args = {
      mode,
      maxRecoveries,
      memberId: fence.memberId,
      token: fence.token ?? null,
      at: Date.now(),
    };
    const outcomes = await this.#write('recover workflows', fence, signal, (sql) => {
      const all = new Map<string, RecoverOutcome>();
      for (let i = 0; i < distinct.length; i += CHUNK) {
        const chunk = distinct.slice(i, i + CHUNK);
        for (const [id, outcome] of sql.recover(chunk, this.#options.statuses, args)) all.set(id, outcome);
      }
      return all;
    });
    debug('recovered %d of %d (%s, token %s)', outcomes.size, ids.length, mode, fence.token);
    const reported = new Set<string>();
    return ids.map((id) => {
      const outcome = outcomes.get(id);
      if (outcome === undefined || reported.has(id)) return { id, outcome: 'skipped' };
      reported.add(id);
      return { id, outcome };
    });
  }

  async #listOwned(memberIds: readonly string[], options: ListOptions): Promise<Page<string>> {
    const owners = checkMemberIds(memberIds);
    const { limit, cursor, signal } = checkList('listOwned()', options);
    const ids = await this.#connection.run(
      () => this.#sql.owned?.(owners, this.#options.statuses.running, cursor, limit + 1) ?? [],
      { what: 'list the owned workflows', signal },
    );
    return pageOf(ids, limit, (id) => id);
  }

  async #evictMembers(
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkName('group', group);
    if (!Array.isArray(members)) invalid('members', 'an array of { memberId, incarnation }', members);
    const evicted = members.map((member: unknown, i) => {
      const m = member as Partial<GenerationMember> | null;
      if (m === null || typeof m !== 'object')
        invalid(`members[${i}]`, 'an object { memberId, incarnation }', member);
      return {
        memberId: checkName(`members[${i}].memberId`, m.memberId),
        incarnation: checkName(`members[${i}].incarnation`, m.incarnation),
      };
    });
    checkStoreFence(fence);
    const signal = checkCallOptions('evictMembers()', options);
    const at = Date.now();
    await this.#write('evict members', fence, signal, (sql) => sql.evict(group, evicted, at));
    debug('evicted %o from %s (token %s)', evicted, group, fence.token);
  }

  /**
   * A `status-mismatch` warning when no row of a non-empty host table has one of the configured
   * statuses. Bounded: see docs/adapters/sqlite.md.
   */
  async diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    const signal = checkCallOptions('diagnose()', options);
    return this.#connection.run((db) => diagnoseStatuses(db, this.#options), {
      what: 'check the status mapping',
      signal,
    });
  }

  /** Closes the database if the store opened it (never the user's). Idempotent; never throws. */
  async close(): Promise<void> {
    this.#connection.close();
  }

  /**
   * One `BEGIN IMMEDIATE` transaction: the eviction check (an evicted `fence.incarnation` writes
   * nothing), the fence check (a stale token rolls back all), then `work`.
   */
  #write<T>(
    what: string,
    fence: Fence | undefined,
    signal: AbortSignal | undefined,
    work: (sql: StoreStatements) => T,
  ): Promise<T> {
    const run = (): T => {
      const sql = this.#sql;
      if (fence?.incarnation !== undefined) sql.checkNotEvicted(fence.incarnation);
      if (fence?.token !== undefined) sql.raiseFence(fence.token);
      return work(sql);
    };
    return this.#connection.run((db) => this.#immediate(db, run), { what, signal });
  }

  /** Runs `work` in a `BEGIN IMMEDIATE` transaction, through a transaction function made once per handle. */
  #immediate<T>(db: SqliteDatabase, work: () => T): T {
    let transaction = this.#transaction;
    if (transaction === undefined || transaction.db !== db) {
      const made: NonNullable<typeof transaction> = { db, work: noWork, run: { immediate: noWork } };
      made.run = db.transaction((): unknown => made.work());
      transaction = this.#transaction = made;
    }
    transaction.work = work;
    try {
      return transaction.run.immediate() as T;
    } finally {
      transaction.work = noWork;
    }
  }

  /**
   * `#write()` of `each` chunk of `ids`: the ids the chunks return, together, or `undefined` when they
   * return as many as `ids` has (each chunk returns each of its distinct ids at most once, and an id
   * done by an earlier chunk is not done again: so every id was done, and none is repeated).
   */
  #writeChunks(
    what: string,
    ids: readonly string[],
    fence: Fence | undefined,
    signal: AbortSignal | undefined,
    each: (sql: StoreStatements, chunk: readonly string[]) => readonly string[],
  ): Promise<ReadonlySet<string> | undefined> {
    return this.#write(what, fence, signal, (sql) => {
      const parts: (readonly string[])[] = [];
      let count = 0;
      for (let i = 0; i < ids.length; i += CHUNK) {
        const part = each(sql, ids.length <= CHUNK ? ids : ids.slice(i, i + CHUNK));
        parts.push(part);
        count += part.length;
      }
      return count === ids.length ? undefined : new Set(parts.flat());
    });
  }
}

/** One result per id, in order: `outcome` for each id done (`undefined`: all of them, none repeated). */
function outcomesOf<O extends string>(
  ids: readonly string[],
  done: ReadonlySet<string> | undefined,
  outcome: O,
): readonly ItemResult<O | 'skipped'>[] {
  return done === undefined ? ids.map((id) => ({ id, outcome })) : resultsOf(ids, done, outcome);
}

const noWork = (): undefined => undefined;

/** `checkFence()`, and `fence.incarnation` undefined or a non-empty string. */
function checkStoreFence(fence: unknown): Fence {
  const checked = checkFence(fence);
  if (checked.incarnation !== undefined) checkName('fence.incarnation', checked.incarnation);
  return checked;
}

/** `memberIds` must be an array of non-empty strings. */
function checkMemberIds(memberIds: unknown): readonly string[] {
  if (!Array.isArray(memberIds)) invalid('memberIds', 'an array of member ids', memberIds);
  memberIds.forEach((memberId: unknown, i) => checkName(`memberIds[${i}]`, memberId));
  return memberIds as readonly string[];
}
