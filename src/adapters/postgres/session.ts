/**
 * One PostgreSQL session of `PostgresCoordinator`: the dedicated connection its advisory locks live on,
 * and the liveness check over it. Everything held on it (its "items": leases and memberships) is lost
 * with it, at once, and the connection destroyed so the server frees the locks; nothing lost is ever
 * re-created. See "Coordinator: what it guarantees" in docs/adapters/postgres.md.
 *
 * @internal
 */
import createDebug from 'debug';
import { ConfigurationError, CoordinatorUnavailableError } from '../../errors.js';
import { backgroundTimer } from '../../internal/keep-alive.js';
import { bounded, now } from '../../internal/time.js';
import { messageOf, type PgQueryResult, type PgSessionClient } from './driver.js';
import type { CompiledCoordinatorOptions } from './options.js';

/** The adapter's debug log. @internal */
export const debug = createDebug('graceful-drain:postgres');

/** A lease or a membership: kept alive by the session, lost with it. */
export interface SessionItem {
  /** The TTL it was taken with; the session checks liveness every third of the shortest one. */
  readonly ttlMs: number;
  /** A membership's incarnation, checked to still be in the members table; `undefined` for a lease. */
  readonly incarnation: string | undefined;
  /** Aborts its signal; called once, after the item was untracked. */
  lost(cause: unknown): void;
}

/** Whole seconds, at least one, as the server's keepalive settings take them. */
function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Destroys the socket of a `pg.Client` (`client.connection.stream`); `end()` for other clients. */
function destroyClient(client: PgSessionClient): void {
  const stream = (client as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
  if (typeof stream?.destroy === 'function') stream.destroy();
  else client.end().catch(() => {});
}

/** A dedicated connection with the coordinator's locks and memberships on it. */
export class PgSession {
  readonly #client: PgSessionClient;
  readonly #settings: CompiledCoordinatorOptions;
  readonly #onLost: (session: PgSession) => void;
  readonly #items = new Set<SessionItem>();
  /** The server's keepalive window: it may drop a silent session after it. Caps every item's TTL. */
  readonly #windowMs: number;
  /** The backend serving this session; a change means a proxy moved us to another connection. */
  #pid = 0;
  /** Set once the session is lost or closed, with the cause. */
  #lost: { readonly cause: unknown } | undefined;
  /** When the last successful round trip was *sent*: the server had heard from us by then. */
  #lastOk = now();
  #checking = false;
  #checkTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(client: PgSessionClient, settings: CompiledCoordinatorOptions, onLost: (s: PgSession) => void) {
    this.#client = client;
    this.#settings = settings;
    this.#onLost = onLost;
    const { keepAliveIdleMs, keepAliveIntervalMs, keepAliveCount } = settings;
    this.#windowMs = (seconds(keepAliveIdleMs) + seconds(keepAliveIntervalMs) * keepAliveCount) * 1000;
    // Without an 'error' listener a dropped connection would crash the host process.
    client.on('error', (error: Error) => this.lose(error));
    client.on('end', () => this.lose(new Error('The connection to PostgreSQL ended')));
  }

  /** False once the session is lost or closed: nothing held on it survives. */
  get alive(): boolean {
    return this.#lost === undefined;
  }

  /** The local deadline of an item with this TTL, on the `performance.now()` clock. */
  deadline(ttlMs: number): number {
    return this.#lastOk + Math.min(ttlMs, this.#windowMs);
  }

  /**
   * Connects, applies the session settings, and refuses a connection whose backend changes between
   * two statements (a transaction-pooling proxy), where session advisory locks cannot work.
   */
  async connect(): Promise<void> {
    const s = this.#settings;
    const slow = `Could not connect to PostgreSQL within ${s.connectTimeoutMs} ms`;
    await bounded(this.#client.connect(), s.connectTimeoutMs, () => new CoordinatorUnavailableError(slow));
    const keepAlive = [seconds(s.keepAliveIdleMs), seconds(s.keepAliveIntervalMs), s.keepAliveCount];
    // Server-side keepalives drop a vanished host's session within seconds, nothing drops it sooner than
    // our deadline expects, and fencing tokens commit durably. Settings unknown to the server are skipped.
    const settings = await this.#query(
      `SELECT pg_backend_pid() AS pid, (SELECT count(*) FROM (SELECT set_config(v.name, v.setting, false)
         FROM (VALUES ('tcp_keepalives_idle', $1::text), ('tcp_keepalives_interval', $2::text),
           ('tcp_keepalives_count', $3::text), ('tcp_user_timeout', '0'),
           ('idle_in_transaction_session_timeout', $4::text), ('idle_session_timeout', '0'),
           ('synchronous_commit', 'on')) AS v(name, setting)
         WHERE EXISTS (SELECT 1 FROM pg_settings p WHERE p.name = v.name)) AS applied) AS applied`,
      [...keepAlive, Math.ceil(s.idleInTransactionTimeoutMs)].map(String),
    );
    const first = (settings.rows[0] as { pid: number }).pid;
    const second = ((await this.#query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
    if (first !== second) {
      throw new ConfigurationError(
        `PostgresCoordinator: two consecutive statements ran on different PostgreSQL backends (pid ${first}, ` +
          `then ${second}). The connection goes through a pooler in transaction or statement mode (PgBouncer ` +
          '`pool_mode = transaction`, for instance), which hands each statement to any server connection: ' +
          'session advisory locks would be taken on one backend and checked or released on another. Give the ' +
          'coordinator a direct connection to PostgreSQL, or a pooler in session mode.',
      );
    }
    this.#pid = first;
    debug('session: connected, backend pid %d', first);
  }

  /** Runs a statement on this session; a statement that does not finish in time loses the session. */
  async query(text: string, values?: unknown[]): Promise<PgQueryResult> {
    if (this.#lost !== undefined) {
      throw new CoordinatorUnavailableError('The PostgreSQL session was lost', { cause: this.#lost.cause });
    }
    const sentAt = now();
    const result = await this.#query(text, values);
    if (sentAt > this.#lastOk) {
      this.#lastOk = sentAt;
      if (this.#items.size > 0 && !this.#checking) this.#schedule();
    }
    return result;
  }

  async #query(text: string, values?: unknown[]): Promise<PgQueryResult> {
    const ms = this.#settings.queryTimeoutMs;
    try {
      return await bounded(
        this.#client.query(text, values),
        ms,
        () => new CoordinatorUnavailableError(`PostgreSQL did not answer within ${ms} ms`),
      );
    } catch (error) {
      // A stuck statement blocks every later one on this connection: give the session up.
      if (error instanceof CoordinatorUnavailableError) this.lose(error);
      throw error;
    }
  }

  /** Keeps `item` alive with this session; it is lost with the session. */
  track(item: SessionItem): void {
    if (this.#lost !== undefined) return item.lost(this.#lost.cause);
    this.#items.add(item);
    this.#schedule();
  }

  /** Stops keeping `item` alive (released or left). */
  untrack(item: SessionItem): void {
    if (this.#items.delete(item)) this.#schedule();
  }

  #incarnations(): string[] {
    return [...this.#items].flatMap((item) => (item.incarnation === undefined ? [] : [item.incarnation]));
  }

  /** Arms the next liveness check and the watchdog, from the shortest TTL held. */
  #schedule(): void {
    clearTimeout(this.#checkTimer);
    clearTimeout(this.#watchdog);
    this.#checkTimer = undefined;
    this.#watchdog = undefined;
    if (!this.alive || this.#items.size === 0) return;
    const ttl = Math.min(this.#windowMs, ...[...this.#items].map((item) => item.ttlMs));
    const at = now();
    // Fires ahead of the server's own timeout: our items are aborted before anyone can take their locks.
    const silence = `No round trip to PostgreSQL completed within ${Math.round(ttl)} ms`;
    this.#watchdog = backgroundTimer(this.#lastOk + ttl - at, () =>
      this.lose(new CoordinatorUnavailableError(silence)),
    );
    if (!this.#checking)
      this.#checkTimer = backgroundTimer(this.#lastOk + ttl / 3 - at, () => void this.#check());
  }

  /** The cheap liveness check: the same backend, and every membership still in its group. */
  async #check(): Promise<void> {
    if (!this.alive || this.#checking) return;
    this.#checking = true;
    const incarnations = this.#incarnations();
    const sentAt = now();
    const present = `, ARRAY(SELECT incarnation FROM ${this.#settings.schemaSql}.members
      WHERE incarnation = ANY($1::text[])) AS present`;
    let row: { pid: number; present?: string[] };
    try {
      const { rows } =
        incarnations.length === 0
          ? await this.#query('SELECT pg_backend_pid() AS pid')
          : await this.#query(`SELECT pg_backend_pid() AS pid${present}`, [incarnations]);
      row = rows[0] as typeof row;
    } catch (error) {
      this.lose(error);
      return;
    } finally {
      this.#checking = false;
    }
    if (!this.alive) return;
    if (row.pid !== this.#pid) {
      this.lose(
        new CoordinatorUnavailableError(
          `The PostgreSQL backend changed from pid ${this.#pid} to ${row.pid}: a proxy moved this session ` +
            'to another server connection, and its advisory locks with it are gone',
        ),
      );
      return;
    }
    if (row.present !== undefined) {
      const present = new Set(row.present);
      // Only the memberships asked about: one that joined while the check ran was not.
      for (const item of [...this.#items]) {
        const incarnation = item.incarnation;
        if (incarnation !== undefined && incarnations.includes(incarnation) && !present.has(incarnation)) {
          this.#items.delete(item);
          item.lost(new Error('The membership row was deleted or replaced by a newer join'));
        }
      }
    }
    this.#lastOk = Math.max(this.#lastOk, sentAt);
    this.#schedule();
  }

  /** Marks the session lost and aborts every item; false when it already was. */
  #end(cause: unknown): boolean {
    if (!this.alive) return false;
    this.#lost = { cause };
    clearTimeout(this.#checkTimer);
    clearTimeout(this.#watchdog);
    const items = [...this.#items];
    this.#items.clear();
    for (const item of items) item.lost(cause);
    this.#onLost(this);
    return true;
  }

  /** Gives the session up: aborts every item, then destroys the connection. Idempotent. */
  lose(cause: unknown): void {
    if (!this.#end(cause)) return;
    debug('session %d: lost (%s)', this.#pid, messageOf(cause));
    destroyClient(this.#client);
  }

  /**
   * Closes the session within `budgetMs`: aborts every item (their locks are about to go), deletes the
   * membership rows and unlocks everything, then ends the connection, or destroys its socket when the
   * server does not answer in time. Never throws.
   */
  async close(cause: unknown, budgetMs: number): Promise<void> {
    const incarnations = this.#incarnations();
    if (!this.#end(cause)) return;
    const deadline = now() + budgetMs;
    const timeout = (): Error => new Error('timeout');
    const sql = `WITH gone AS (DELETE FROM ${this.#settings.schemaSql}.members
      WHERE incarnation = ANY($1::text[])) SELECT pg_advisory_unlock_all()`;
    try {
      await bounded(this.#client.query(sql, [incarnations]), budgetMs / 2, timeout);
    } catch (error) {
      debug('session %d: cleanup on close failed (%s)', this.#pid, messageOf(error));
    }
    try {
      await bounded(this.#client.end(), Math.max(0, deadline - now()), timeout);
    } catch {
      destroyClient(this.#client);
    }
    debug('session %d: closed', this.#pid);
  }
}
