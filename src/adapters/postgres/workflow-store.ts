import createDebug from 'debug';
import { ClosedError, ConfigurationError, StaleTokenError } from '../../errors.js';
import { bounded } from '../../internal/time.js';
import { describeValue } from '../../validate.js';
import type {
  Fence,
  ItemResult,
  ListOptions,
  Page,
  ParkedState,
  ParkedWorkflow,
  ParkOutcome,
  UnparkOutcome,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from '../../workflow-store.js';
import { checkFence, checkIds, checkList } from '../../internal/store-args.js';
import { quote, type TableName } from './identifiers.js';
import { checkSchema } from './migrate.js';
import type { PgQueryable } from './queryable.js';
import {
  compileStoreOptions,
  type PostgresWorkflowStatuses,
  type PostgresWorkflowStoreOptions,
  type Runner,
} from './store-options.js';
import { storeSql, type StoreSql } from './store-sql.js';

const debug = createDebug('graceful-drain:postgres');

const CAPABILITIES: WorkflowStoreCapabilities = Object.freeze({ fencing: 'monotonic' });
/** Types whose values every text converts to, so ids never need the fallback comparison. */
const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name', 'citext']);

function isDataException(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('22');
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
  readonly #runner: Runner;
  readonly #table: TableName;
  readonly #idColumn: string;
  readonly #statusColumn: string;
  readonly #statuses: PostgresWorkflowStatuses;
  readonly #schema: string;
  #prepared: Promise<Prepared> | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: PostgresWorkflowStoreOptions) {
    const o = compileStoreOptions(options);
    this.#table = o.table;
    this.#idColumn = o.idColumn;
    this.#statusColumn = o.statusColumn;
    this.#schema = o.schema;
    this.#statuses = o.statuses;
    this.#runner = o.runner;
  }

  async listActive(options: ListOptions): Promise<Page<string>> {
    const { limit, cursor } = checkList('list options', options);
    const { sql } = await this.#prepare();
    const values: unknown[] = [this.#statuses.running, limit + 1];
    if (cursor !== undefined) values.push(cursor);
    const rows = (await this.#runner.query(sql.listActive(cursor !== undefined), values)) as { id: string }[];
    const items = rows.slice(0, limit).map((row) => row.id);
    return { items, cursor: rows.length > limit ? items.at(-1) : undefined };
  }

  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    const { limit, cursor } = checkList('list options', options);
    const { sql, storeKey } = await this.#prepare();
    if (cursor === undefined) await this.#analyzeMarks(sql);
    const values: unknown[] = [storeKey, limit + 1];
    if (cursor !== undefined) values.push(cursor);
    const rows = (await this.#runner.query(sql.listParked(cursor !== undefined), values)) as {
      id: string;
      member_id: string;
      token: string | null;
      status: string | null;
    }[];
    const { pausing, paused } = this.#statuses;
    const items = rows.slice(0, limit).map((row) => {
      const state: ParkedState =
        row.status === paused
          ? 'paused'
          : pausing !== undefined && row.status === pausing
            ? 'pausing'
            : 'other';
      return {
        id: row.id,
        state,
        memberId: row.member_id,
        token: row.token === null ? undefined : BigInt(row.token),
      };
    });
    return { items, cursor: rows.length > limit ? items.at(-1)?.id : undefined };
  }

  async park(ids: readonly string[], fence: Fence): Promise<readonly ItemResult<ParkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const prepared = await this.#prepare();
    if (ids.length === 0) return [];
    const { running, pausing, paused } = this.#statuses;
    const outcome: ParkOutcome = pausing === undefined ? 'paused' : 'pausing';
    const run = (byType: boolean): Promise<Set<number>> =>
      this.#runner.transaction(async (q) => {
        await this.#checkFence(q, prepared, fence);
        const { rows } = await q.query(prepared.sql.park(byType), [
          ids,
          pausing ?? paused,
          running,
          prepared.storeKey,
          fence.memberId,
          fence.token?.toString() ?? null,
        ]);
        return new Set((rows as { ord: string | number }[]).map((row) => Number(row.ord)));
      });
    let parked: Set<number>;
    try {
      parked = await run(true);
    } catch (error) {
      // An id that is not a valid value of the id column's type: match on text instead.
      if (prepared.idIsText || !isDataException(error)) throw error;
      parked = await run(false);
    }
    debug('park: %d of %d ids', parked.size, ids.length);
    return ids.map((id, index) => ({ id, outcome: parked.has(index + 1) ? outcome : 'skipped' }));
  }

  async unpark(ids: readonly string[], fence: Fence): Promise<readonly ItemResult<UnparkOutcome>[]> {
    checkIds(ids);
    checkFence(fence);
    const prepared = await this.#prepare();
    if (ids.length === 0) return [];
    const { running, pausing, paused } = this.#statuses;
    const resumed = await this.#runner.transaction(async (q) => {
      await this.#checkFence(q, prepared, fence);
      const { rows } = await q.query(prepared.sql.unpark, [
        ids,
        prepared.storeKey,
        running,
        paused,
        pausing ?? null,
      ]);
      return new Set((rows as { ord: string | number }[]).map((row) => Number(row.ord)));
    });
    debug('unpark: %d of %d ids resumed', resumed.size, ids.length);
    return ids.map((id, index) => ({ id, outcome: resumed.has(index + 1) ? 'resumed' : 'skipped' }));
  }

  /**
   * Refreshes the statistics of the marks table (the store's own) when a resume round begins (rounds
   * are `resumeIntervalMs` apart; ANALYZE samples, so it stays cheap at any size): the member that parked wrote them in bulk moments ago, and planned from stale
   * statistics every batch of the resume scanned all remaining marks (quadratic in their number).
   * Without the privilege to analyze, PostgreSQL only warns; any error here is ignored.
   */
  async #analyzeMarks(sql: StoreSql): Promise<void> {
    await this.#runner.query(sql.analyzeMarks, []).catch((error: unknown) => {
      debug('analyze of the marks failed: %s', error instanceof Error ? error.message : String(error));
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
      debug('close: %s', error instanceof Error ? error.message : String(error));
    });
    return this.#closed;
  }

  /** Checks the schema version and the host's table once, and builds the statements. */
  #prepare(): Promise<Prepared> {
    if (this.#closed !== undefined)
      return Promise.reject(new ClosedError('The PostgresWorkflowStore is closed'));
    this.#prepared ??= this.#inspect().catch((error: unknown) => {
      this.#prepared = undefined;
      throw error;
    });
    return this.#prepared;
  }

  async #inspect(): Promise<Prepared> {
    await checkSchema(
      { query: async (text, values) => ({ rows: await this.#runner.query(text, values ?? []) }) },
      this.#schema,
      'PostgresWorkflowStore',
    );
    const rows = (await this.#runner.query(
      `SELECT n.nspname AS schema, c.relname AS table,
         format_type(a.atttypid, NULL) AS id_type,
         (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
          FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
          WHERE co.oid = a.attcollation) AS id_collation,
         EXISTS (SELECT 1 FROM pg_attribute s
          WHERE s.attrelid = c.oid AND s.attname = $3 AND s.attnum > 0 AND NOT s.attisdropped) AS has_status
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
       WHERE c.oid = to_regclass($1)`,
      [this.#table.sql, this.#idColumn, this.#statusColumn],
    )) as {
      schema: string;
      table: string;
      id_type: string | null;
      id_collation: string | null;
      has_status: boolean;
    }[];
    const row = rows[0];
    if (row === undefined) {
      throw new ConfigurationError(
        `Expected \`table\` to name an existing table, got ${describeValue(this.#table.sql)}: no such table is ` +
          'visible to this connection (names are case-sensitive, as written)',
      );
    }
    if (row.id_type === null) {
      throw new ConfigurationError(
        `Expected \`idColumn\` to name a column of ${this.#table.sql}, got ${describeValue(this.#idColumn)}`,
      );
    }
    if (!row.has_status) {
      throw new ConfigurationError(
        `Expected \`statusColumn\` to name a column of ${this.#table.sql}, got ${describeValue(this.#statusColumn)}`,
      );
    }
    const storeKey = `${row.schema}.${row.table}`;
    debug('store %s: id column of type %s', storeKey, row.id_type);
    return {
      // Type and collation names come from the catalog, quoted by it as needed, never from options.
      sql: storeSql({
        table: this.#table.sql,
        id: quote(this.#idColumn),
        status: quote(this.#statusColumn),
        idType: row.id_type,
        idCollation: row.id_collation ?? undefined,
        schema: quote(this.#schema),
      }),
      storeKey,
      idIsText: TEXT_TYPES.has(row.id_type),
    };
  }
}
