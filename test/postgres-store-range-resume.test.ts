/**
 * PostgresWorkflowStore's resume by the host's range (`unparkRange` in src/adapters/postgres/store-sql.ts):
 * where the id column holds text, a page of marks is resumed by one walk of the host's primary key over
 * the page's bounds, only when every mark's workflow is found paused there; otherwise the page goes by its
 * marks. Here: the statements each page ran (a pool that records them), a user's pause inside the range,
 * a workflow still pausing, ids that are not text.
 */
import { describe, expect, it } from 'vitest';
import type { PgPool, PgPoolClient } from '../src/adapters/postgres/index.js';
import { fence, outcomes, pgStoreTables, sqlName } from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_range_resume');
const { db, hostTable, store, statuses, setStatus, marks } = tables;

/** Parks every workflow of `table` through `s` (to `pausing`: the file's statuses), then has them paused. */
async function parkAll(s: ReturnType<typeof store>, table: string): Promise<void> {
  await s.parkPage(fence(1n), { limit: 100 });
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
});
