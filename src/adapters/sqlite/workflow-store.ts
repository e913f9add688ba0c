import {
  checkCallOptions,
  checkFence,
  checkIds,
  checkList,
  pageOf,
  resultsOf,
} from '../../internal/store-args.js';
import type {
  Fence,
  ItemResult,
  ListOptions,
  NotePausedOutcome,
  Page,
  ParkedWorkflow,
  ParkOutcome,
  StoreCallOptions,
  StoreWarning,
  UnparkOutcome,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from '../../workflow-store.js';
import { debug, SqliteConnection } from './connection.js';
import { diagnoseStatuses } from './diagnose.js';
import { compileStoreOptions, type SqliteWorkflowStoreOptions } from './options.js';
import { CHUNK, setUpStore, type StoreStatements } from './store-sql.js';

/**
 * A {@link WorkflowStore} over a table the host already has in SQLite. It reads the id and status
 * columns, writes only the status column (with the host's values), and keeps its parked-by-shutdown
 * marks and the highest fencing token in tables of its own. Each `park()` and `unpark()` is one
 * transaction, whatever the batch size; stale tokens are rejected with `StaleTokenError`.
 *
 * Its set-up (on the first call) installs two triggers on the host's table that drop a workflow's mark
 * when its status leaves `pausing`/`paused` or its row is deleted, so a user's later pause is never
 * undone. Their cost and how to remove them: docs/adapters/sqlite.md. Ids are strings.
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

  readonly #connection: SqliteConnection;
  readonly #options: ReturnType<typeof compileStoreOptions>;
  #sql!: StoreStatements;

  constructor(options: SqliteWorkflowStoreOptions) {
    const o = (this.#options = compileStoreOptions(options));
    this.#connection = new SqliteConnection(o, (db) => (this.#sql = setUpStore(db, o)));
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
    checkFence(fence);
    const signal = checkCallOptions('park()', options);
    const { running, pausing, paused } = this.#options.statuses;
    const at = Date.now();
    const parked = await this.#write('park workflows', ids, fence, signal, (sql, chunk) =>
      sql.park(chunk, running, pausing ?? paused, fence.memberId, fence.token ?? null, at),
    );
    debug('parked %d of %d (token %s)', parked.size, ids.length, fence.token);
    return resultsOf(ids, parked, pausing === undefined ? 'paused' : 'pausing');
  }

  /** Resumes the paused, marked ones among `ids` and clears their marks, in one transaction, as {@link park}. */
  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const signal = checkCallOptions('unpark()', options);
    const resumed = await this.#write('unpark workflows', ids, fence, signal, (sql, chunk) =>
      sql.unpark(chunk, this.#options.statuses),
    );
    debug('resumed %d of %d (token %s)', resumed.size, ids.length, fence.token);
    return resultsOf(ids, resumed, 'resumed');
  }

  /**
   * Records `fence.token` as the highest seen, writing nothing else; rejects with `StaleTokenError`
   * when a higher one was seen. A no-op for `token: undefined`.
   */
  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    checkFence(fence);
    const signal = checkCallOptions('raiseFence()', options);
    signal?.throwIfAborted();
    if (fence.token === undefined) return;
    await this.#write('raise the fence', [], fence, signal, () => []);
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
    const released = await this.#write('note paused workflows', ids, undefined, signal, (sql, chunk) =>
      sql.dropMarks(chunk),
    );
    debug('released %d of %d marks (paused by a user)', released.size, ids.length);
    return resultsOf(ids, released, 'released');
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

  /** One `BEGIN IMMEDIATE` transaction: the fence check (a stale token rolls back all), then `each` chunk. */
  #write(
    what: string,
    ids: readonly string[],
    fence: Fence | undefined,
    signal: AbortSignal | undefined,
    each: (sql: StoreStatements, chunk: readonly string[]) => readonly string[],
  ): Promise<Set<string>> {
    const work = (): Set<string> => {
      const sql = this.#sql;
      if (fence?.token !== undefined) sql.raiseFence(fence.token);
      const done = new Set<string>();
      for (let i = 0; i < ids.length; i += CHUNK) {
        for (const id of each(sql, ids.slice(i, i + CHUNK))) done.add(id);
      }
      return done;
    };
    return this.#connection.run((db) => db.transaction(work).immediate(), { what, signal });
  }
}
