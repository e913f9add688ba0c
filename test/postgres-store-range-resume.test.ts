/**
 * PostgresWorkflowStore's resume by the host's range (`unparkRange` in src/adapters/postgres/store-sql.ts):
 * where the id column holds text, a page of marks is resumed by one walk of the host's primary key over
 * the page's bounds, only when every mark's workflow is found paused there; otherwise the page goes by its
 * marks. Here: the statements each page ran (a pool that records them), a user's pause inside the range,
 * a workflow still pausing, ids that are not text.
 */
import { describe, expect, it } from 'vitest';
import type { PgPool, PgPoolClient } from '../src/adapters/postgres/index.js';
import { BEAT_COLUMNS, fence, outcomes, pgStoreTables, sqlName, waitFor } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_range_resume', { columns: BEAT_COLUMNS });
const {
  db,
  heartbeatRace,
  hostTable,
  hostTransaction,
  namedStore,
  parkedTable,
  store,
  statuses,
  setStatus,
  marks,
} = tables;

/** Parks every workflow of `table` through `s` (to `pausing`: the file's statuses), then has them paused. */
async function parkAll(s: ReturnType<typeof store>, table: string, token = 1n): Promise<void> {
  await s.parkPage(fence(token), { limit: 100 });
  await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE status = 'pausing'`);
}

/** The shared pool, recording the text of every statement its connections run. */
function recordingPool(): { pool: PgPool; texts: string[] } {
  const texts: string[] = [];
  const pool: PgPool = {
    query: (text: string, values?: unknown[]) => db.pool.query(text, values),
    async connect(): Promise<PgPoolClient> {
      const client = await db.pool.connect();
      return {
        query: (text: string, values?: unknown[]) => {
          texts.push(text);
          return client.query(text, values);
        },
        release: (error?: Error | boolean) => client.release(error),
      } as PgPoolClient;
    },
  };
  return { pool, texts };
}

const byRange = (texts: readonly string[]): number => texts.filter((t) => t.includes('judged AS')).length;
const byMarks = (texts: readonly string[]): number => texts.filter((t) => t.includes('held AS')).length;

describe('PostgresWorkflowStore resume by the host range', () => {
  it('resumes a page by one walk of the range, and never a workflow a user paused inside it', async () => {
    const ids = ['wf-1', 'wf-2', 'wf-3', 'wf-4', 'wf-5'];
    const table = await hostTable(ids.map((id) => [id, 'running']));
    const { pool, texts } = recordingPool();
    const s = store(table, { pool });
    await parkAll(s, table);
    // The user pauses wf-3 again while it is parked: the mark goes, the workflow stays paused.
    await s.notePaused(['wf-3']);
    texts.length = 0;
    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(outcomes(page.results)).toEqual([
      ['wf-1', 'resumed'],
      ['wf-2', 'resumed'],
      ['wf-4', 'resumed'],
      ['wf-5', 'resumed'],
    ]);
    expect(await statuses(table)).toEqual({
      'wf-1': 'running',
      'wf-2': 'running',
      'wf-3': 'paused',
      'wf-4': 'running',
      'wf-5': 'running',
    });
    expect(await marks(table)).toEqual([]);
    // the range wrote the page: the page by its marks never ran
    expect([byRange(texts), byMarks(texts)]).toEqual([1, 0]);
  });

  it('goes by the marks for a page with a workflow still pausing, and for the pages after it', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `wf-${String(i).padStart(2, '0')}`);
    const table = await hostTable(ids.map((id) => [id, 'running']));
    const { pool, texts } = recordingPool();
    const s = store(table, { pool });
    await parkAll(s, table);
    await setStatus(table, 'wf-01', 'pausing');
    texts.length = 0;
    const first = await s.unparkPage(fence(2n), { limit: 3 });
    expect(outcomes(first.results)).toEqual([
      ['wf-00', 'resumed'],
      ['wf-02', 'resumed'],
    ]);
    expect(first.pausing).toBe(1);
    // the range found wf-01 not paused and wrote nothing; the page by its marks did the rest
    expect([byRange(texts), byMarks(texts)]).toEqual([1, 1]);
    let cursor = first.cursor;
    texts.length = 0;
    while (cursor !== undefined) {
      const next = await s.unparkPage(fence(2n), { limit: 3, cursor });
      cursor = next.cursor;
    }
    // three more pages, all by their marks (the range is tried again after eight)
    expect([byRange(texts), byMarks(texts)]).toEqual([0, 3]);
    expect(await marks(table)).toEqual(['wf-01']);
    expect(Object.values(await statuses(table)).filter((v) => v === 'running')).toHaveLength(11);
  });

  it('goes by the marks where the ids are not text', async () => {
    const table = await hostTable(
      [
        ['1', 'running'],
        ['2', 'running'],
        ['10', 'running'],
      ],
      'id bigint PRIMARY KEY, status text NOT NULL',
    );
    const { pool, texts } = recordingPool();
    const s = store(table, { pool });
    await parkAll(s, table);
    texts.length = 0;
    const page = await s.unparkPage(fence(2n), { limit: 10 });
    expect(outcomes(page.results).map(([, outcome]) => outcome)).toEqual(['resumed', 'resumed', 'resumed']);
    expect([byRange(texts), byMarks(texts)]).toEqual([0, 1]);
  });

  // The range's UPDATE walks the primary key and locks each row as it reaches it, in id order: a host
  // transaction that heartbeats paused workflows in id order waits for it or it for the host, never both.
  it('a host transaction touching paused workflows in id order does not deadlock with the range', async () => {
    // Stored in the reverse of id order: a scan of the table would reach c first, then wait for b.
    const named = await parkedTable(['c', 'b', 'a'], 'gd_range_races');
    expect(await heartbeatRace(named.table, named, 'b', 'c')).toEqual({ host: undefined, page: undefined });
    expect(await statuses(named.table)).toEqual({ a: 'running', b: 'running', c: 'running' });
    expect(await marks(named.table)).toEqual([]);
  });

  // A user's pause of a parked workflow while the range runs: the mark goes in the user's transaction,
  // which the range's delete of the marks waits for; the range rolls back, and the page by its marks
  // leaves the workflow paused and says it was skipped.
  it("a mark dropped while the range resumes its workflow: rolled back, the user's pause kept", async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b'], 'gd_range_races');
    const host = await hostTransaction();
    await host.run(`DELETE FROM "${db.schema}".parked WHERE store_key = '${table}' AND workflow_id = 'a'`);
    const unparking = s.unparkPage(fence(2n), { limit: 10 });
    await waitFor('the page to wait on the mark', waiting);
    expect((await statuses(table)).a).toBe('paused');
    await host.commit();
    expect(outcomes((await unparking).results)).toEqual([
      ['a', 'skipped'],
      ['b', 'resumed'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'paused', b: 'running' });
    expect(await marks(table)).toEqual([]);
  });

  // An index that orders the ids descending: a walk of the range could take it (sequential and bitmap
  // scans off, it costs the same as the primary key) and lock the rows against id order, which deadlocked
  // with the host's transaction below. Such a table's pages go by their marks, locked in id order.
  it('goes by the marks where an index orders the ids descending, and does not deadlock', async () => {
    const table = await hostTable(
      ['a', 'b', 'c'].map((id) => [id, 'running']),
      'id text PRIMARY KEY, status text NOT NULL, beat integer NOT NULL DEFAULT 0',
    );
    await db.pool.query(`CREATE INDEX ON ${sqlName(table)} (id DESC)`);
    const named = await namedStore(table, 'gd_range_desc');
    await parkAll(named.store, table);
    const recorded = recordingPool();
    const probe = store(table, { pool: recorded.pool });
    await probe.listParked({ limit: 1 });
    expect(await heartbeatRace(table, named, 'b', 'c')).toEqual({ host: undefined, page: undefined });
    expect(await statuses(table)).toEqual({ a: 'running', b: 'running', c: 'running' });
    // the same table through a store that records its statements: by the marks
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'running'`);
    await parkAll(probe, table, 3n);
    recorded.texts.length = 0;
    await probe.unparkPage(fence(4n), { limit: 10 });
    expect([byRange(recorded.texts), byMarks(recorded.texts)]).toEqual([0, 1]);
  });

  // Parked workflows among many finished ones: a walk of the range would read every row between them.
  // The walk stops after two rows per mark of the page (and 16); the page then goes by its marks.
  it('goes by the marks where the range holds many more rows than the page', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `wf-${String(i).padStart(3, '0')}`);
    const table = await hostTable(ids.map((id, i) => [id, i % 10 === 0 ? 'running' : 'done']));
    const { pool, texts } = recordingPool();
    const s = store(table, { pool });
    await parkAll(s, table);
    texts.length = 0;
    const page = await s.unparkPage(fence(2n), { limit: 20 });
    expect(outcomes(page.results).map(([id]) => id)).toEqual(ids.filter((_, i) => i % 10 === 0));
    expect([byRange(texts), byMarks(texts)]).toEqual([1, 1]);
    expect(await marks(table)).toEqual([]);
  });

  // The range rolled back after a workflow of the page was cancelled, and while it waited marks were
  // added before the page's (a peer's recovery parking): the page by its marks then lists those first,
  // and the range's marks it no longer reaches are left to the next page, not called skipped.
  it('after a rollback, reports no outcome for a mark the page by its marks did not reach', async () => {
    const table = await hostTable([
      ['c', 'running'],
      ['d', 'running'],
      ['e', 'running'],
      ['a', 'done'],
      ['b', 'done'],
    ]);
    const { store: s, waiting } = await namedStore(table, 'gd_range_vanish');
    await parkAll(s, table);
    const host = await hostTransaction();
    await host.run(`UPDATE ${sqlName(table)} SET status = 'cancelled' WHERE id = 'd'`);
    const first = s.unparkPage(fence(2n), { limit: 2 });
    await waitFor('the page to wait on the host row lock', waiting);
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id IN ('a', 'b')`);
    await db.pool.query(
      `INSERT INTO "${db.schema}".parked (store_key, workflow_id, member_id, token)
       SELECT $1, x, 'peer', 1 FROM unnest(ARRAY['a', 'b']) AS x`,
      [table],
    );
    await host.commit();
    const pages = [await first];
    for (let cursor = pages[0]?.cursor; cursor !== undefined;) {
      const next = await s.unparkPage(fence(2n), { limit: 2, cursor });
      pages.push(next);
      cursor = next.cursor;
    }
    const all = pages.flatMap((p) => outcomes(p.results));
    expect(all).toEqual([
      ['a', 'resumed'],
      ['b', 'resumed'],
      ['c', 'resumed'],
      ['e', 'resumed'],
    ]);
    expect(await statuses(table)).toEqual({
      a: 'running',
      b: 'running',
      c: 'running',
      d: 'cancelled',
      e: 'running',
    });
    expect(await marks(table)).toEqual([]);
  });
});
