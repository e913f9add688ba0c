/**
 * The shapes of `pg` the PostgreSQL adapters rely on, typed structurally so that users never need
 * `@types/pg` (a `pg.Client`, `pg.Pool` and `pg.PoolClient` fit them), and the lazy loading of `pg`.
 *
 * @packageDocumentation
 */
import { importDriver } from '../../internal/import-driver.js';

/** What a query resolves with: the rows (parsed by the driver) and, for writes, how many were affected. */
export interface PgQueryResult {
  /** The rows, one object per row, keyed by column name. */
  readonly rows: readonly unknown[];
  /** How many rows the statement affected, when the driver says. */
  readonly rowCount?: number | null;
}

/** Anything that runs a parameterised statement: a `pg.Client`, a `pg.Pool`, a `pg.PoolClient`. */
export interface PgQueryable {
  /** Runs `text` with the parameters `$1, $2, ...` bound to `values`. */
  query(text: string, values?: unknown[]): Promise<PgQueryResult>;
}

/** One dedicated connection (a `pg.Client`): the coordinator connects it, and ends it on `close()`. */
export interface PgSessionClient extends PgQueryable {
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** Closes the connection. */
  end(): Promise<unknown>;
  /** A connection failure: without a listener, Node would crash the process. */
  on(event: 'error', listener: (error: Error) => void): unknown;
  /** The connection has ended, for whatever reason. */
  on(event: 'end', listener: () => void): unknown;
}

/** A connection checked out of a pool (`pg.PoolClient`). */
export interface PgPoolClient extends PgQueryable {
  /** Returns the connection to its pool; an error (or `true`) destroys it instead. */
  release(error?: Error | boolean): void;
  /** A failure while checked out (the pool's listener covers idle connections only). */
  on?(event: 'error', listener: (error: Error) => void): unknown;
  /** Stops listening, before the connection goes back to its pool. */
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
}

/** A connection pool (`pg.Pool`): statements on any connection, transactions on a checked-out one. */
export interface PgPool extends PgQueryable {
  /** Checks out one connection, for a transaction. */
  connect(): Promise<PgPoolClient>;
}

/** The parts of the `pg` module the adapters construct (from a URL). @internal */
export interface PgModule {
  readonly Client: new (config: Record<string, unknown>) => PgSessionClient;
  readonly Pool: new (config: Record<string, unknown>) => PgPool & {
    end(): Promise<void>;
    on(event: 'error', listener: (error: Error) => void): unknown;
  };
}

/** Imports `pg`, or throws `MissingDriverError` naming `adapter`. @internal */
export async function loadPg(adapter: string): Promise<PgModule> {
  const module = await importDriver<{ default?: PgModule } & PgModule>('pg', adapter);
  return module.default ?? module;
}

/** A short, secret-free description of an error, for messages and the debug log. @internal */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export { hasMethods } from '../../validate.js';
