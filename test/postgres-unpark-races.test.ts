/**
 * PostgresWorkflowStore's unpark (`unparkMarks` in src/adapters/postgres/store-sql.ts) against concurrent
 * host transactions: a workflow that finishes pausing while a page resumes it, and a host that locks
 * several workflows in id order. A statement that resumed the paused workflows first and locked the others
 * after (tried, and reverted) failed all three: the first two left a workflow paused with no mark (never
 * resumed), the third deadlocked. Locking every row of the page in one scan, first, passes them.
 */
import { describe, expect, it } from 'vitest';
import { BEAT_COLUMNS, fence, outcomes, pgStoreTables, sqlName, waitFor } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_unpark_races', { columns: BEAT_COLUMNS });
const { heartbeatRace, hostTransaction, statuses, marks, parkedTable } = tables;
const NAME = 'gd_unpark_races';

describe('PostgresWorkflowStore unpark and concurrent host transactions', () => {
  // b is `pausing` in the statement's snapshot and the host's transaction moves it on to `paused` (the
  // mark trigger keeps the mark: both statuses are held), the engine's ordinary move racing a resume. A
  // statement that resumes only the rows `paused` in its snapshot skips b without waiting for it; judging
  // b later by its latest status (`paused`, not `pausing`) it then deleted the mark: b stayed paused with
  // no mark, never resumed. Locking the row first sees `paused`, and b is resumed.
  it('unparkPage() while the host finishes pausing a workflow (pausing -> paused): it is resumed or keeps its mark, never paused with no mark', async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b'], NAME, { paused: ['a'] });
    // b still pausing when the page begins; the engine's transaction moves it on to paused
    const host = await hostTransaction();
    await host.run(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = 'b'`);
    const unparking = s.unparkPage(fence(2n), { limit: 10 });
    await waitFor('the page to wait on the host row lock', waiting);
    await host.commit();
    const page = await unparking;
    const now = await statuses(table);
    const marked = await marks(table);
    // b resumed (as the old statement did), or left marked (counted pausing) for the next round
    expect(now.b === 'running' || marked.includes('b')).toBe(true);
    expect(outcomes(page.results).find(([id]) => id === 'b')?.[1] ?? 'pausing').not.toBe('skipped');
  });

  // The same race through unpark() (the same statement over given ids).
  it('unpark() while the host finishes pausing a workflow (pausing -> paused): it is resumed or keeps its mark', async () => {
    const { table, store: s, waiting } = await parkedTable(['a', 'b'], NAME, { via: 'park', paused: ['a'] });
    const host = await hostTransaction();
    await host.run(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = 'b'`);
    const unparking = s.unpark(['a', 'b'], fence(2n));
    await waitFor('the unpark to wait on the host row lock', waiting);
    await host.commit();
    await unparking;
    const now = await statuses(table);
    const marked = await marks(table);
    expect(now.b === 'running' || marked.includes('b')).toBe(true);
  });

  // The page's rows are locked in one scan, in id order. A statement that locked the `paused` rows first
  // (resuming them) and the others after deadlocked with a host transaction that touches several
  // workflows in id order (the usual discipline against deadlocks): the host holds `a` (pausing), the
  // unpark holds `b` and waits for `a`, the host then waits for `b`; PostgreSQL aborts one of the two
  // after deadlock_timeout (the host's work, or the resume page, fails with 40P01).
  it('a host transaction touching workflows in id order does not deadlock with unparkPage()', async () => {
    const named = await parkedTable(['a', 'b'], NAME, { paused: ['b'] });
    // a is still pausing: the host's engine heartbeats a, then b, in one transaction; neither the host's
    // update nor the resume is aborted as a deadlock victim
    expect(await heartbeatRace(named.table, named, 'a', 'b')).toEqual({ host: undefined, page: undefined });
    expect((await statuses(named.table)).b).toBe('running');
  });

  // The same with the rows stored out of id order and a workflow still pausing (so the page goes by its
  // marks, not by the host's range): on a table this small the planner finds the rows by a scan of the
  // table, and a lock taken in the order of that scan (c before b) deadlocked with the host. The lock
  // sits above an `ORDER BY` of the ids now, however the rows are found.
  it('a host transaction touching workflows in id order does not deadlock with a page by its marks, rows stored out of order', async () => {
    const named = await parkedTable(['c', 'b', 'a', 'd'], NAME, { paused: ['a', 'b', 'c'] });
    // statistics that say how small the table is
    await tables.db.pool.query(`ANALYZE ${sqlName(named.table)}`);
    expect(await heartbeatRace(named.table, named, 'b', 'c')).toEqual({ host: undefined, page: undefined });
    expect(await statuses(named.table)).toEqual({ a: 'running', b: 'running', c: 'running', d: 'pausing' });
  });
});
