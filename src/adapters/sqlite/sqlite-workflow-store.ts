import type BetterSqlite3 from 'better-sqlite3';
import createDebug from 'debug';
import { checkFence, checkIds, pageOf } from '../../internal/store-args.js';
import { ConfigurationError, StaleTokenError } from '../../errors.js';
import { checkName, checkOptionsObject, invalid } from '../../validate.js';
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
import { callSignal, checkListCall } from './call-options.js';
import { checkSource, checkTimings, SqliteConnection } from './connection.js';
import { checkIdentifier, checkTableName } from './identifiers.js';
import type { StatusValues } from './mark-triggers.js';
import { diagnoseStatuses } from './store-diagnose.js';
import {
  CHUNK,
  checkHostTable,
  createStoreTables,
  StoreStatements,
  type StoreNames,
} from './store-tables.js';

const debug = createDebug('graceful-drain:sqlite');

/** The host's status values, as stored in its status column. */
export interface SqliteWorkflowStatuses {
  /** A running workflow. */
  readonly running: string;
  /**
   * A workflow asked to pause that the host is still winding down. Omit it when the host pauses at
   * once: `park()` then sets `paused` directly.
   */
  readonly pausing?: string | undefined;
  /** A paused workflow. */
  readonly paused: string;
}

/** Options of {@link SqliteWorkflowStore}. Give exactly one of `database` and `path`. */
export interface SqliteWorkflowStoreOptions {
  /** The host's better-sqlite3 database; the store never closes it. */
  readonly database?: BetterSqlite3.Database | undefined;
  /** The path of the host's database file, opened by the store (loading `better-sqlite3` lazily) and closed by `close()`. */
  readonly path?: string | undefined;
  /** The host's existing table of workflows: `name` or `schema.name`, plain identifiers. */
  readonly table: string;
  /**
   * The column holding a workflow's id (unique).
   * @defaultValue `'id'`
   */
  readonly idColumn?: string | undefined;
  /**
   * The column holding a workflow's status.
   * @defaultValue `'status'`
   */
  readonly statusColumn?: string | undefined;
  /**
   * The host's status values. When given, list every state your host has: `running` and `paused`
   * are required, `pausing` only when the host pauses in two steps.
   * @defaultValue `{ running: 'running', pausing: 'pausing', paused: 'paused' }`
   */
  readonly statuses?: SqliteWorkflowStatuses | undefined;
  /**
   * The store's own table of parked-by-shutdown marks (and, beside it, `<marksTable>_fence` holding the
   * highest fencing token seen). One per host table, in the host table's database (schema). The
   * triggers on the host's table are named `<marksTable>_unpaused` and `<marksTable>_deleted`.
   * @defaultValue `'graceful_drain_marks'`
   */
  readonly marksTable?: string | undefined;
  /**
   * The longest one statement may block the event loop waiting for another connection's write lock,
   * in milliseconds; past it the statement is retried asynchronously.
   * @defaultValue `50`
   */
  readonly busyTimeoutMs?: number | undefined;
  /**
   * How long an operation keeps retrying while the database stays busy before rejecting with
   * `CoordinatorUnavailableError`, in milliseconds.
   * @defaultValue `5000`
   */
  readonly operationTimeoutMs?: number | undefined;
}

const DEFAULTS = Object.freeze({
  idColumn: 'id',
  statusColumn: 'status',
  statuses: Object.freeze({ running: 'running', pausing: 'pausing', paused: 'paused' }),
  marksTable: 'graceful_drain_marks',
  busyTimeoutMs: 50,
  operationTimeoutMs: 5000,
});

const OPTION_NAMES = [
  'database',
  'path',
  'table',
  'idColumn',
  'statusColumn',
  'statuses',
  'marksTable',
  'busyTimeoutMs',
  'operationTimeoutMs',
];

/**
 * A {@link WorkflowStore} over a table the host already has in SQLite. It reads the id and status
 * columns, writes only the status column (to the host's own values), and keeps its parked-by-shutdown
 * marks and the highest fencing token in tables of its own. Each `park()` and `unpark()` is one
 * transaction, whatever the batch size; stale tokens are rejected with `StaleTokenError`.
 *
 * Its set-up (on the first call) also installs two triggers on the host's table, named after
 * `marksTable`, that drop a workflow's mark when its status leaves `pausing`/`paused` or its row is
 * deleted: a mark belongs to the pause it created, so a user's later pause is never undone. Their cost
 * and how to remove them: `docs/adapters/sqlite.md`.
 *
 * Ids are strings: give them as `listActive()` and `listParked()` return them.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * import { SqliteWorkflowStore } from 'graceful-drain/sqlite';
 * const store = new SqliteWorkflowStore({
 *   database: new Database('/var/lib/engine/engine.db'),
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
  readonly #names: StoreNames;
  readonly #table: string;
  readonly #statuses: StatusValues;
  #sql: StoreStatements | undefined;

  constructor(options: SqliteWorkflowStoreOptions) {
    const given = checkOptionsObject('SqliteWorkflowStore', options, OPTION_NAMES);
    const source = checkSource('SqliteWorkflowStore', given.database, given.path);
    const table = given.table;
    const names: StoreNames = {
      table: checkTableName('table', table),
      idColumn: checkIdentifier('idColumn', given.idColumn ?? DEFAULTS.idColumn),
      statusColumn: checkIdentifier('statusColumn', given.statusColumn ?? DEFAULTS.statusColumn),
      marksTable: checkTableName('marksTable', given.marksTable ?? DEFAULTS.marksTable),
    };
    this.#names = names;
    this.#table = table as string;
    this.#statuses = checkStatuses(given.statuses);
    const [busyTimeoutMs, operationTimeoutMs] = checkTimings(
      given.busyTimeoutMs ?? DEFAULTS.busyTimeoutMs,
      given.operationTimeoutMs ?? DEFAULTS.operationTimeoutMs,
    );
    this.#connection = new SqliteConnection(source, {
      adapter: 'SqliteWorkflowStore',
      busyTimeoutMs,
      operationTimeoutMs,
      setup: (db) => {
        const host = checkHostTable(db, names, table as string);
        createStoreTables(db, names, this.#statuses, host);
        this.#sql = new StoreStatements(db, names);
      },
    });
  }

  get #statements(): StoreStatements {
    return this.#sql as StoreStatements;
  }

  /** Lists running workflows in id order, `limit` at a time. */
  async listActive(options: ListOptions): Promise<Page<string>> {
    const { limit, cursor, signal } = checkListCall('listActive', options);
    const ids = await this.#connection.run(
      () => {
        const sql = this.#statements;
        const { running } = this.#statuses;
        const rows =
          cursor === undefined
            ? sql.active.all(running, limit + 1)
            : sql.activeAfter.all(running, cursor, limit + 1);
        return (rows as unknown[]).map((value) => String(value));
      },
      { what: 'list the active workflows', signal },
    );
    return pageOf(ids, limit, (id) => id);
  }

  /** Lists marked workflows in id order with the host's state of each, `limit` at a time. */
  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    const { limit, cursor, signal } = checkListCall('listParked', options);
    const items: ParkedWorkflow[] = await this.#connection.run(
      () => {
        const { pausing, paused } = this.#statuses;
        return this.#statements.parked(pausing, paused, cursor, limit + 1);
      },
      { what: 'list the parked workflows', signal },
    );
    return pageOf(items, limit, (item) => item.id);
  }

  /**
   * Pauses and marks the running ones among `ids`, in one transaction. While another connection holds
   * the write lock the transaction is retried; when `options.signal` aborts, the retries stop and
   * nothing of this park is ever committed.
   */
  async park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const signal = callSignal('park', options);
    const { running, pausing, paused } = this.#statuses;
    const statuses = { running, target: pausing ?? paused };
    const outcome: ParkOutcome = pausing === null ? 'paused' : 'pausing';
    const parked = await this.#connection.run(
      (db) =>
        db
          .transaction(() => {
            this.#checkFence(fence.token);
            const sql = this.#statements;
            const done = new Set<string>();
            const at = Date.now();
            for (let i = 0; i < ids.length; i += CHUNK) {
              const chunk = ids.slice(i, i + CHUNK);
              for (const id of sql.park(chunk, statuses, fence.memberId, fence.token ?? null, at)) {
                done.add(id);
              }
            }
            return done;
          })
          .immediate(),
      { what: 'park workflows', signal },
    );
    debug('parked %d of %d (token %s)', parked.size, ids.length, fence.token);
    return results(ids, parked, outcome);
  }

  /**
   * Resumes the paused, marked ones among `ids` and clears marks that are done with, in one
   * transaction; `options.signal` stops it as for {@link park}.
   */
  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const signal = callSignal('unpark', options);
    const statuses = this.#statuses;
    const resumed = await this.#connection.run(
      (db) =>
        db
          .transaction(() => {
            this.#checkFence(fence.token);
            const sql = this.#statements;
            const done = new Set<string>();
            for (let i = 0; i < ids.length; i += CHUNK) {
              for (const id of sql.unpark(ids.slice(i, i + CHUNK), statuses)) done.add(id);
            }
            return done;
          })
          .immediate(),
      { what: 'unpark workflows', signal },
    );
    debug('resumed %d of %d (token %s)', resumed.size, ids.length, fence.token);
    return results(ids, resumed, 'resumed');
  }

  /**
   * Records `fence.token` as the highest seen (in `<marksTable>_fence`), writing nothing else; rejects
   * with `StaleTokenError` when a higher one was seen. A no-op for `token: undefined`.
   */
  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    checkFence(fence);
    const signal = callSignal('raiseFence', options);
    if (signal?.aborted) throw signal.reason;
    const { token } = fence;
    if (token === undefined) return;
    await this.#connection.run((db) => db.transaction(() => this.#checkFence(token)).immediate(), {
      what: 'raise the fence',
      signal,
    });
    debug('fence raised to %s', token);
  }

  /**
   * Drops the marks of `ids`, which a user has just paused, so that the library never resumes them:
   * `released` per id whose mark was dropped, `skipped` when it had none. Call it from the host's own
   * "pause" path (the status does not change when a user pauses a workflow that is already parked).
   */
  async notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    checkIds(ids);
    const signal = callSignal('notePaused', options);
    const released = await this.#connection.run(
      (db) =>
        db
          .transaction(() => {
            const done = new Set<string>();
            for (let i = 0; i < ids.length; i += CHUNK) {
              for (const id of this.#statements.dropMarks(ids.slice(i, i + CHUNK))) done.add(id);
            }
            return done;
          })
          .immediate(),
      { what: 'note paused workflows', signal },
    );
    debug('released %d of %d marks (paused by a user)', released.size, ids.length);
    return results(ids, released, 'released');
  }

  /**
   * Checks the status mapping against the host's rows: a `status-mismatch` warning when no row of a
   * non-empty table has one of the configured values, naming the values seen. Bounded: it reads the
   * newest 1000 rows (by id), and the whole table only through an index on the status column.
   */
  async diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    const signal = callSignal('diagnose', options);
    return this.#connection.run((db) => diagnoseStatuses(db, this.#names, this.#statuses, this.#table), {
      what: 'check the status mapping',
      signal,
    });
  }

  /** Inside the write transaction: rejects a stale token (rolling everything back) or records it. */
  #checkFence(token: bigint | undefined): void {
    if (token === undefined) return;
    const sql = this.#statements;
    const highest = sql.highest.get();
    if (highest !== undefined && token < highest) throw new StaleTokenError(token, highest);
    if (highest === undefined || token > highest) sql.raiseHighest.run(token);
  }

  /** Closes the database if the store opened it (never the user's). Idempotent; never throws. */
  async close(): Promise<void> {
    this.#connection.close();
  }
}

function checkStatuses(value: unknown): StatusValues {
  if (value === undefined) return { ...DEFAULTS.statuses };
  const given = checkOptionsObject('statuses', value, ['running', 'pausing', 'paused']);
  const running = checkName('statuses.running', given.running);
  const paused = checkName('statuses.paused', given.paused);
  const pausing = given.pausing === undefined ? null : checkName('statuses.pausing', given.pausing);
  const values = [running, paused, ...(pausing === null ? [] : [pausing])];
  for (const [key, status] of [
    ['running', running],
    ['pausing', pausing],
    ['paused', paused],
  ] as const) {
    // The values are written into the store's triggers as SQL literals, which end at a NUL.
    if (status?.includes('\u0000')) invalid(`statuses.${key}`, 'a string without NUL characters', status);
  }
  if (new Set(values).size !== values.length) {
    throw new ConfigurationError(
      `Expected \`statuses\` to hold distinct values, got ${JSON.stringify(value)}`,
    );
  }
  return { running, pausing, paused };
}

/** One result per id in the order given; a repeated id counts once. */
function results<O extends string>(
  ids: readonly string[],
  done: Set<string>,
  outcome: O,
): ItemResult<O | 'skipped'>[] {
  const reported = new Set<string>();
  return ids.map((id) => {
    if (done.has(id) && !reported.has(id)) {
      reported.add(id);
      return { id, outcome };
    }
    return { id, outcome: 'skipped' };
  });
}
