import createDebug from 'debug';
import { ClosedError, ConfigurationError, StaleTokenError } from '../../errors.js';
import { abortable } from '../../internal/abortable.js';
import { quote } from '../../internal/sql-names.js';
import { parkedStateOf } from '../../internal/statuses.js';
import { checkCallOptions, checkFence, checkIds, checkList } from '../../internal/store-args.js';
import { bounded } from '../../internal/time.js';
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
import type { PgQueryable } from './driver.js';
import { inspectHostTable } from './host-table.js';
import { markTrigger, UNPARKING, type MarkTrigger } from './mark-trigger.js';
import { checkSchema } from './migrate.js';
import {
  type CompiledStoreOptions,
  compileStoreOptions,
  type PostgresWorkflowStoreOptions,
} from './options.js';
import type { Runner } from './runner.js';
import { messageOf } from './session.js';
import { storeSql, type StoreSql } from './store-sql.js';

const debug = createDebug('graceful-drain:postgres');

const CAPABILITIES: WorkflowStoreCapabilities = Object.freeze({ fencing: 'monotonic' });
/** Types whose values every text converts to, so ids never need the fallback comparison. */
const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name', 'citext']);
/** `diagnose()`: rows sampled for the values shown, values shown, and the bound of its one scan. */
const DIAGNOSE_SAMPLE_ROWS = 1000;
const DIAGNOSE_SHOWN_VALUES = 10;
const DIAGNOSE_TIMEOUT_MS = 2000;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isDataException(error: unknown): boolean {
  return codeOf(error)?.startsWith('22') === true;
}

/** What the store learns about the host's table at first use. */
interface Prepared {
  readonly sql: StoreSql;
  readonly storeKey: string;
  readonly idIsText: boolean;
}

/**
 * A `WorkflowStore` over a table the host already has in PostgreSQL (an id column and a status
 * column); the parked-by-shutdown marks and the fencing high-water mark live in the schema `migrate()`
 * created. Park and unpark are one transaction each: a fence check, one set-based statement, per-id
 * outcomes. Listing pages by keyset, so memory stays flat however many workflows there are.
 *
 * At first use the store checks the schema and the host's table, and (unless `markTrigger: 'off'`)
 * that the trigger tying each mark to the pause it created is in place, installing it when missing.
 * Every call takes an `AbortSignal`: a transaction given up before its `COMMIT` is rolled back, and a
 * statement stuck on a lock of the host's is cancelled.
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
  readonly #o: CompiledStoreOptions;
  readonly #runner: Runner;
  #prepared: Promise<Prepared> | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: PostgresWorkflowStoreOptions) {
    this.#o = compileStoreOptions(options);
    this.#runner = this.#o.runner;
  }

  async listActive(options: ListOptions): Promise<Page<string>> {
    const { limit, cursor, signal } = checkList('listActive()', options);
    const { sql } = await this.#prepare(signal);
    const values: unknown[] = [this.#o.statuses.running, limit + 1];
    if (cursor !== undefined) values.push(cursor);
    const rows = (await this.#runner.query(sql.listActive(cursor !== undefined), values, signal)) as {
      id: string;
    }[];
    const items = rows.slice(0, limit).map((row) => row.id);
    return { items, cursor: rows.length > limit ? items.at(-1) : undefined };
  }

  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    const { limit, cursor, signal } = checkList('listParked()', options);
    const { sql, storeKey } = await this.#prepare(signal);
    if (cursor === undefined) await this.#analyzeMarks(sql, signal);
    const values: unknown[] = [storeKey, limit + 1];
    if (cursor !== undefined) values.push(cursor);
    const rows = (await this.#runner.query(sql.listParked(cursor !== undefined), values, signal)) as {
      id: string;
      member_id: string;
      token: string | null;
      status: string | null;
    }[];
    const items = rows.slice(0, limit).map((row) => ({
      id: row.id,
      state: parkedStateOf(this.#o.statuses, row.status),
      memberId: row.member_id,
      token: row.token === null ? undefined : BigInt(row.token),
    }));
    return { items, cursor: rows.length > limit ? items.at(-1)?.id : undefined };
  }

  async park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const { prepared, signal } = await this.#begin('park()', options);
    const { running, pausing, paused } = this.#o.statuses;
    const rows = await this.#write(ids, prepared, signal, true, async (q, byType) => {
      await this.#checkFence(q, prepared, fence);
      const token = fence.token?.toString() ?? null;
      const values = [ids, pausing ?? paused, running, prepared.storeKey, fence.memberId, token];
      return (await q.query(prepared.sql.park(byType), values)).rows;
    });
    debug('park: %d of %d ids', rows.length, ids.length);
    return resultsAt(ids, rows, pausing === undefined ? 'paused' : 'pausing');
  }

  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const { prepared, signal } = await this.#begin('unpark()', options);
    const { running, pausing, paused } = this.#o.statuses;
    const rows = await this.#write(ids, prepared, signal, undefined, async (q) => {
      await this.#checkFence(q, prepared, fence);
      if (this.#o.markTrigger !== 'off') await q.query(`SELECT set_config('${UNPARKING}', 'on', true)`);
      const values = [ids, prepared.storeKey, running, paused, pausing ?? null];
      return (await q.query(prepared.sql.unpark, values)).rows;
    });
    debug('unpark: %d of %d ids resumed', rows.length, ids.length);
    return resultsAt(ids, rows, 'resumed');
  }

  /**
   * Records `fence.token` as the store's high-water mark (one row, shared by every store instance on
   * the table), writing nothing else; `StaleTokenError` when a higher token was recorded. A park or
   * unpark in flight holds that row to its end: this waits for it, so its write is ordered first.
   */
  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    checkFence(fence);
    const signal = checkCallOptions('raiseFence()', options);
    signal?.throwIfAborted();
    if (this.#closed !== undefined) throw new ClosedError('The PostgresWorkflowStore is closed');
    if (fence.token === undefined) return;
    const prepared = await this.#prepare(signal);
    await this.#runner.transaction((q) => this.#checkFence(q, prepared, fence), signal);
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
    const { prepared, signal } = await this.#begin('notePaused()', options);
    const rows = await this.#write(
      ids,
      prepared,
      signal,
      !prepared.idIsText,
      async (q, byType) => (await q.query(prepared.sql.notePaused(byType), [ids, prepared.storeKey])).rows,
    );
    debug('notePaused: %d of %d marks dropped', rows.length, ids.length);
    return resultsAt(ids, rows, 'released');
  }

  /**
   * Warns (`status-mismatch`) when no row of a non-empty host table has one of the configured statuses
   * (`running: 'running'` while the rows say `'RUNNING'`): a shutdown would park nothing. One query,
   * bounded: its scan by a 2 s statement timeout (inconclusive then: no warning), the values it names
   * by a sample of 1000 rows.
   */
  async diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    const signal = checkCallOptions('diagnose()', options);
    const { sql } = await this.#prepare(signal);
    const { running, pausing, paused } = this.#o.statuses;
    const configured: (readonly [string, string])[] = [['statuses.running', running]];
    if (pausing !== undefined) configured.push(['statuses.pausing', pausing]);
    configured.push(['statuses.paused', paused]);
    let row: { matched: boolean; seen: (string | null)[] };
    try {
      row = await this.#runner.transaction(async (q) => {
        await q.query("SELECT set_config('statement_timeout', $1, true)", [`${DIAGNOSE_TIMEOUT_MS}ms`]);
        const { rows } = await q.query(sql.diagnose, [
          configured.map(([, value]) => value),
          DIAGNOSE_SAMPLE_ROWS,
          DIAGNOSE_SHOWN_VALUES + 1,
        ]);
        return rows[0] as typeof row;
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

  /** Checks a call's options, then waits for the set-up. */
  async #begin(
    where: string,
    options: StoreCallOptions | undefined,
  ): Promise<{ prepared: Prepared; signal: AbortSignal | undefined }> {
    const signal = checkCallOptions(where, options);
    return { prepared: await this.#prepare(signal), signal };
  }

  /**
   * Runs `write` in one transaction (none for no ids), matching ids by the id column's type first
   * (`byType`); an id that is not a valid value of that type makes it run again matching on text.
   * `byType` undefined: no such fallback.
   */
  async #write(
    ids: readonly string[],
    prepared: Prepared,
    signal: AbortSignal | undefined,
    byType: boolean | undefined,
    write: (q: PgQueryable, byType: boolean) => Promise<readonly unknown[]>,
  ): Promise<readonly unknown[]> {
    if (ids.length === 0) return [];
    const run = (typed: boolean): Promise<readonly unknown[]> =>
      this.#runner.transaction((q) => write(q, typed), signal);
    try {
      return await run(byType ?? true);
    } catch (error) {
      if (byType === undefined || prepared.idIsText || !isDataException(error)) throw error;
      return run(false);
    }
  }

  /**
   * Refreshes the statistics of the marks table (the store's own) when a resume round begins (rounds
   * are `resumeIntervalMs` apart; ANALYZE samples, so it stays cheap at any size): the member that
   * parked wrote them in bulk moments ago, and planned from stale statistics every batch of the resume
   * scanned all remaining marks (quadratic in their number). Without the privilege to analyze,
   * PostgreSQL only warns; any error here but the call's own abort is ignored.
   */
  async #analyzeMarks(sql: StoreSql, signal: AbortSignal | undefined): Promise<void> {
    await this.#runner.query(sql.analyzeMarks, [], signal).catch((error: unknown) => {
      if (signal?.aborted === true) throw error;
      debug('analyze of the marks failed: %s', messageOf(error));
    });
  }

  /** Records the token as the store's high-water mark, or throws `StaleTokenError` (the caller rolls back). */
  async #checkFence(q: PgQueryable, prepared: Prepared, fence: Fence): Promise<void> {
    if (fence.token === undefined) return;
    const { rows } = await q.query(prepared.sql.fence, [prepared.storeKey, fence.token.toString()]);
    const highest = BigInt((rows[0] as { token: string }).token);
    if (highest > fence.token) throw new StaleTokenError(fence.token, highest);
  }

  /** Ends the pool the store created, if any (never a client or pool passed in). Idempotent; never throws. */
  close(): Promise<void> {
    this.#closed ??= bounded(this.#runner.end(), 5000, () => new Error('timeout')).catch((error: unknown) => {
      debug('close: %s', messageOf(error));
    });
    return this.#closed;
  }

  /**
   * The first use's checks and statements, shared by every call. A call given up waits no longer; the
   * set-up goes on, for the next call.
   */
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
    const query = (text: string, values: unknown[]): Promise<readonly unknown[]> =>
      this.#runner.query(text, values);
    await checkSchema(
      { query: async (text, values) => ({ rows: await query(text, values ?? []) }) },
      this.#o.schema,
      'PostgresWorkflowStore',
    );
    const host = this.#o;
    const info = await inspectHostTable(query, host);
    debug('store %s: id column of type %s', info.storeKey, info.idType);
    if (this.#o.markTrigger !== 'off') await this.#ensureMarkTrigger(markTrigger(this.#o.schema, host, info));
    return {
      // Type and collation names come from the catalog, quoted by it as needed, never from options.
      sql: storeSql({
        table: this.#o.table.sql,
        id: quote(this.#o.idColumn),
        status: quote(this.#o.statusColumn),
        idType: info.idType,
        idCollation: info.idCollation,
        schema: quote(this.#o.schema),
      }),
      storeKey: info.storeKey,
      idIsText: TEXT_TYPES.has(info.idType),
    };
  }

  /** Checks the mark trigger; installs it (`'install'`) or asks for `migrate({ stores })` (`'verify'`). */
  async #ensureMarkTrigger(trigger: MarkTrigger): Promise<void> {
    const [row] = (await this.#runner.query(trigger.checkSql, [])) as { current: boolean }[];
    if (row?.current === true) return;
    const table = this.#o.table.sql;
    const name =
      this.#o.table.schema === undefined
        ? this.#o.table.name
        : `${this.#o.table.schema}.${this.#o.table.name}`;
    const remedy =
      `\`await migrate(pool, { schema: '${this.#o.schema}', stores: [{ table: '${name}', idColumn: ` +
      `'${this.#o.idColumn}', statusColumn: '${this.#o.statusColumn}', statuses }] })\` (from ` +
      "'graceful-drain/postgres') once as a role that may create triggers on the table, and again " +
      'whenever the statuses change';
    if (this.#o.markTrigger === 'verify') {
      throw new ConfigurationError(
        `PostgresWorkflowStore: the trigger that drops a parked mark when its workflow leaves ` +
          `pausing/paused is missing on ${table}, or was made for other statuses (markTrigger: 'verify'). ` +
          `Install it with ${remedy}; or set markTrigger: 'install'.`,
      );
    }
    try {
      await this.#runner.query(trigger.installSql, []);
    } catch (error) {
      // wrong_object_type: a view, which takes no such trigger.
      if (codeOf(error) === '42809') {
        throw new ConfigurationError(
          `PostgresWorkflowStore could not install the trigger that drops a parked mark when its workflow ` +
            `leaves pausing/paused on ${table} (${messageOf(error)}). Give the store the table itself as ` +
            "`table`, or set markTrigger: 'off' and call store.notePaused(ids) wherever a user pauses workflows.",
          { cause: error },
        );
      }
      // insufficient_privilege: no TRIGGER on the table, no CREATE on the schema, or not the owner.
      if (codeOf(error) !== '42501') throw error;
      throw new ConfigurationError(
        `PostgresWorkflowStore could not install the trigger that drops a parked mark when its workflow ` +
          `leaves pausing/paused on ${table} (${messageOf(error)}). It needs the TRIGGER privilege on the ` +
          `table and CREATE on the schema "${this.#o.schema}". Run ${remedy}; or set markTrigger: 'off' ` +
          'and call store.notePaused(ids) wherever a user pauses workflows.',
        { cause: error },
      );
    }
    debug('store %s: mark trigger installed', table);
  }
}

/** One result per id, in order: `outcome` at the 1-based positions the statement returned as `ord`. */
function resultsAt<O extends string>(
  ids: readonly string[],
  rows: readonly unknown[],
  outcome: O,
): ItemResult<O | 'skipped'>[] {
  const done = new Set((rows as { ord: string | number }[]).map((row) => Number(row.ord)));
  return ids.map((id, index) => ({ id, outcome: done.has(index + 1) ? outcome : 'skipped' }));
}
