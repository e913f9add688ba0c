/**
 * The set-up the PostgreSQL store tests share: a migrated schema of the test file's own (made before its
 * first test, dropped after its last), host tables in it, stores over them closed after each test, a
 * cleanup list run after each test, and reads of what the host tables and the store's tables hold. Call
 * `pgStoreTables()` once at the top of a test file, outside any block.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import {
  PostgresWorkflowStore,
  type PostgresWorkflowStoreOptions,
} from '../../src/adapters/postgres/index.js';
import type { Fence } from '../../src/workflow-store.js';
import { testSchema, urlWithApplicationName, type TestSchema } from '../fixtures/postgres-setup.js';
import { uniqueName } from './env.js';

/** The statuses of the stores here unless a file or a test says otherwise. */
export const STATUSES = Object.freeze({ running: 'running', pausing: 'pausing', paused: 'paused' });
/** {@link STATUSES} and `failed`, for stores that fail a workflow recovered too often. */
export const STATUSES_WITH_FAILED = Object.freeze({ ...STATUSES, failed: 'failed' });

/** The columns of a host table unless a file or a test says otherwise. */
const COLUMNS = 'id text PRIMARY KEY, status text NOT NULL';
/** The columns of a host table with a `beat` the host's own transactions can update, status untouched. */
export const BEAT_COLUMNS = `${COLUMNS}, beat integer NOT NULL DEFAULT 0`;

/** A qualified name (`schema.table`) quoted for SQL, each part on its own. */
export function sqlName(qualified: string): string {
  return qualified
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/** A fence of `memberId` with `token`, and `incarnation` when given. */
export function fence(token?: bigint, memberId = 'm1', incarnation?: string): Fence {
  return { memberId, token, ...(incarnation === undefined ? {} : { incarnation }) };
}

/** The `[id, outcome]` pairs of a call's results, in order. */
export function outcomes(list: readonly { readonly id: string; readonly outcome: string }[]): string[][] {
  return list.map((r) => [r.id, r.outcome]);
}

/** What `promise` rejects with; an `Error('resolved')` when it resolves. */
export function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('resolved'),
    (error: unknown) => error,
  );
}

/** What `promise` rejects with, or `{ resolved: value }`. */
export function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) => error,
  );
}

/**
 * Polls `ready` every 20 ms until it holds; rejects naming `what` after `timeoutMs`. For what the server
 * only shows by being asked (a backend waiting on a lock, or idle again).
 */
export async function waitFor(what: string, ready: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A host's transaction on a session of its own (see {@link PgStoreTables.hostTransaction}). */
export interface HostTransaction {
  run(text: string): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** How the test file's stores and host tables are made. */
export interface PgStoreTablesOptions {
  /**
   * The statuses of {@link PgStoreTables.store}'s stores.
   * @defaultValue {@link STATUSES}
   */
  readonly statuses?: PostgresWorkflowStoreOptions['statuses'];
  /**
   * The column definitions of {@link PgStoreTables.hostTable}'s tables.
   * @defaultValue `'id text PRIMARY KEY, status text NOT NULL'`
   */
  readonly columns?: string;
  /**
   * Whether a store's `close()` that rejects after a test fails that test (after the whole cleanup
   * ran); else its error is ignored, as every other cleanup step's is.
   * @defaultValue `false`
   */
  readonly strictClose?: boolean;
}

/** A backend of the server, as pg_stat_activity shows it. */
export interface Backend {
  readonly state: string;
  /** Whether it waits on a lock. */
  readonly waiting: boolean;
}

/** A mark of the store's (a row of its `parked` table), its token as text. */
export interface Mark {
  readonly id: string;
  readonly memberId: string;
  readonly token: string | null;
}

/** A store whose backends can be found by name. */
export interface NamedStore {
  readonly store: PostgresWorkflowStore;
  /** The `application_name` of its backends. */
  readonly application: string;
  /** For {@link waitFor}: whether one of its backends waits on a lock. */
  readonly waiting: () => Promise<boolean>;
  /** For {@link waitFor}: whether none of its backends is in a transaction or running a statement. */
  readonly idle: () => Promise<boolean>;
}

/** What {@link pgStoreTables} gives a test file: each helper works in the file's schema. */
export interface PgStoreTables {
  /** The file's schema and the pool for the test's own statements; read them in tests and hooks only. */
  readonly db: Pick<TestSchema, 'schema' | 'pool'>;
  /**
   * Run after each test, the last pushed first, each step's error ignored (but a store's close() under
   * {@link PgStoreTablesOptions.strictClose}); push more.
   */
  readonly cleanup: (() => Promise<unknown>)[];
  /**
   * A new host table in the schema, `columns` its definition (the file's by default), with `rows`
   * `(id, status)`; its qualified name, the store key.
   */
  hostTable(rows?: readonly (readonly [string, string])[], columns?: string): Promise<string>;
  /**
   * A store over `table` in the schema with the file's statuses, on the shared pool unless `options`
   * give another source (`client`, `pool`, `url` or `connectionString`); closed after the test.
   */
  store(table: string, options?: Partial<PostgresWorkflowStoreOptions>): PostgresWorkflowStore;
  /**
   * A store over `table` like {@link PgStoreTables.store}'s, on a pool of its own (ended after the test)
   * whose backends are named after `name` (unique to the call); its first use (checks, trigger) done, so
   * that the statement a test sees blocking is the call's own.
   */
  namedStore(
    table: string,
    name: string,
    options?: Partial<PostgresWorkflowStoreOptions>,
  ): Promise<NamedStore>;
  /**
   * The start of the concurrency tests: a host table of `ids`, all running, parked by a store named after
   * `name` (as {@link PgStoreTables.namedStore}'s) through `via` (`parkPage()` by default, or `park()` of
   * every id), then the workflows `paused` (every one by default) moved on to `paused`, the others left
   * `pausing`. The store and its table.
   */
  parkedTable(
    ids: readonly string[],
    name: string,
    options?: { readonly via?: 'park' | 'parkPage'; readonly paused?: readonly string[] },
  ): Promise<NamedStore & { readonly table: string }>;
  /**
   * Another session running `sql` (a `SELECT … FOR UPDATE`, say) in a transaction it keeps open, as a
   * host's would, until the returned release (called after the test otherwise) rolls it back.
   */
  holdLock(sql: string): Promise<() => Promise<void>>;
  /**
   * A transaction of the host's on a session of its own: `run` statements in it, then `commit` or
   * `rollback` (rolled back after the test otherwise).
   */
  hostTransaction(): Promise<HostTransaction>;
  /**
   * A host transaction that heartbeats (`beat + 1`, a {@link BEAT_COLUMNS} table) workflow `first`, then,
   * once `named`'s `unparkPage()` of the marks waits for that row, workflow `second`, and commits: the
   * error code of each side (the host's second update, the page), `undefined` when it succeeded. With
   * `first` before `second` in id order, a page that locks in id order never deadlocks with it.
   */
  heartbeatRace(
    table: string,
    named: Pick<NamedStore, 'store' | 'waiting'>,
    first: string,
    second: string,
  ): Promise<{ readonly host: string | undefined; readonly page: string | undefined }>;
  /** The rows of a query on the shared pool. */
  rows<T>(text: string, values?: unknown[]): Promise<T[]>;
  /** The host table's status of each id, ids as text. */
  statuses(table: string): Promise<Record<string, string>>;
  /** Sets the status (or `column`) of `id` in the host table. */
  setStatus(table: string, id: string, status: string, column?: string): Promise<void>;
  /** The ids the store over `table` has marks for (in `schema`, the file's by default), in order. */
  marks(table: string, schema?: string): Promise<string[]>;
  /** The marks of the store over `table`, with their member and token, in id order. */
  markRows(table: string): Promise<Mark[]>;
  /** The recovery count of each workflow of the store over `table` that has one. */
  counts(table: string): Promise<Record<string, number>>;
  /** The backends of `application` (their `application_name`), as pg_stat_activity shows them. */
  backends(application: string): Promise<Backend[]>;
  /** For {@link waitFor}: whether a backend of `application` waits on a lock. */
  waitingOnLock(application: string): () => Promise<boolean>;
  /** For {@link waitFor}: whether no backend of `application` is in a transaction or running a statement. */
  allIdle(application: string): () => Promise<boolean>;
}

/**
 * Registers the hooks: a schema named after `prefix` made and migrated before the file's tests and
 * dropped after them, and the cleanup list run after each test. Call once, at the top of a test file.
 */
export function pgStoreTables(prefix: string, options: PgStoreTablesOptions = {}): PgStoreTables {
  const { statuses = STATUSES, columns: defaultColumns = COLUMNS, strictClose = false } = options;
  let schema: TestSchema | undefined;
  const current = (): TestSchema => {
    if (schema === undefined) throw new Error('the test schema is there in tests and hooks only');
    return schema;
  };
  beforeAll(async () => {
    schema = await testSchema(prefix);
  });
  afterAll(async () => {
    await current().drop();
  });

  const cleanup: (() => Promise<unknown>)[] = [];
  const closes = new WeakSet<() => Promise<unknown>>();
  afterEach(async () => {
    const failures: unknown[] = [];
    for (const step of cleanup.splice(0).reverse()) {
      await step().catch((error: unknown) => {
        if (strictClose && closes.has(step)) failures.push(error);
      });
    }
    if (failures.length > 0) throw failures[0];
  });

  const db: Pick<TestSchema, 'schema' | 'pool'> = {
    get schema() {
      return current().schema;
    },
    get pool() {
      return current().pool;
    },
  };
  const rows = async <T>(text: string, values: unknown[] = []): Promise<T[]> =>
    (await db.pool.query(text, values)).rows as T[];
  const backends = (application: string): Promise<Backend[]> =>
    rows<Backend>(
      `SELECT state, wait_event_type IS NOT DISTINCT FROM 'Lock' AS waiting
       FROM pg_stat_activity WHERE application_name = $1`,
      [application],
    );
  const waitingOnLock = (application: string) => async () =>
    (await backends(application)).some((b) => b.waiting);
  const allIdle = (application: string) => async () =>
    (await backends(application)).every((b) => b.state === 'idle');
  const store = (
    table: string,
    storeOptions: Partial<PostgresWorkflowStoreOptions> = {},
  ): PostgresWorkflowStore => {
    const { client, pool, url, connectionString } = storeOptions;
    const source = (client ?? pool ?? url ?? connectionString) ? {} : { pool: db.pool };
    const s = new PostgresWorkflowStore({ ...source, table, schema: db.schema, statuses, ...storeOptions });
    const close = () => s.close();
    closes.add(close);
    cleanup.push(close);
    return s;
  };

  const tables: PgStoreTables = {
    db,
    cleanup,
    async hostTable(list = [], columns = defaultColumns) {
      const table = `${db.schema}.${uniqueName('wf')}`;
      await db.pool.query(`CREATE TABLE ${sqlName(table)} (${columns})`);
      for (const [id, status] of list) {
        await db.pool.query(`INSERT INTO ${sqlName(table)} (id, status) VALUES ($1, $2)`, [id, status]);
      }
      return table;
    },
    store,
    async namedStore(table, name, storeOptions = {}) {
      const application = uniqueName(name);
      const pool = new pg.Pool({ connectionString: urlWithApplicationName(application), max: 2 });
      pool.on('error', () => {});
      cleanup.push(() => pool.end());
      const s = store(table, { pool, ...storeOptions });
      await s.listActive({ limit: 1 });
      return { store: s, application, waiting: waitingOnLock(application), idle: allIdle(application) };
    },
    async parkedTable(ids, name, { via = 'parkPage', paused = ids } = {}) {
      const table = await tables.hostTable(ids.map((id) => [id, 'running'] as const));
      const named = await tables.namedStore(table, name);
      if (via === 'park') await named.store.park(ids, fence(1n));
      else await named.store.parkPage(fence(1n), { limit: ids.length + 1 });
      await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = ANY($1::text[])`, [
        [...paused],
      ]);
      return { ...named, table };
    },
    async holdLock(sql) {
      const transaction = await tables.hostTransaction();
      await transaction.run(sql);
      return transaction.rollback;
    },
    async hostTransaction() {
      const holder = await db.pool.connect();
      await holder.query('BEGIN');
      let done = false;
      const end = async (how: string): Promise<void> => {
        if (done) return;
        done = true;
        await holder.query(how);
        holder.release();
      };
      cleanup.push(() => end('ROLLBACK'));
      return {
        run: async (text) => {
          await holder.query(text);
        },
        commit: () => end('COMMIT'),
        rollback: () => end('ROLLBACK'),
      };
    },
    async heartbeatRace(table, { store: s, waiting }, first, second) {
      const host = await tables.hostTransaction();
      await host.run(`UPDATE ${sqlName(table)} SET beat = beat + 1 WHERE id = '${first}'`);
      const unparking = settle(s.unparkPage(fence(2n), { limit: 10 }));
      await waitFor('the page to wait on the host row lock', waiting);
      const updated = await settle(
        host.run(`UPDATE ${sqlName(table)} SET beat = beat + 1 WHERE id = '${second}'`),
      );
      const codeOf = (outcome: unknown): string | undefined => (outcome as { code?: string } | null)?.code;
      if (codeOf(updated) === undefined) await host.commit();
      return { host: codeOf(updated), page: codeOf(await unparking) };
    },
    rows,
    async statuses(table) {
      const list = await rows<{ id: string; status: string }>(
        `SELECT id::text, status FROM ${sqlName(table)} ORDER BY id`,
      );
      return Object.fromEntries(list.map((r) => [r.id, r.status]));
    },
    async setStatus(table, id, status, column = 'status') {
      await db.pool.query(`UPDATE ${sqlName(table)} SET "${column}" = $2 WHERE id = $1`, [id, status]);
    },
    async marks(table, inSchema = db.schema) {
      const list = await rows<{ id: string }>(
        `SELECT workflow_id AS id FROM "${inSchema}".parked WHERE store_key = $1 ORDER BY 1`,
        [table],
      );
      return list.map((r) => r.id);
    },
    markRows: (table) =>
      rows<Mark>(
        `SELECT workflow_id AS id, member_id AS "memberId", token::text AS token FROM "${db.schema}".parked
         WHERE store_key = $1 ORDER BY workflow_id`,
        [table],
      ),
    async counts(table) {
      const list = await rows<{ id: string; count: string }>(
        `SELECT workflow_id AS id, count::text AS count FROM "${db.schema}".parked_recoveries
         WHERE store_key = $1 ORDER BY workflow_id`,
        [table],
      );
      return Object.fromEntries(list.map((r) => [r.id, Number(r.count)]));
    },
    backends,
    waitingOnLock,
    allIdle,
  };
  return tables;
}
