/**
 * The PostgreSQL store over a character(n) id column (compared as bpchar, never cut to character(1)),
 * and under a host's own trigger that cascades a status change inside the store's unpark transaction
 * (the mark trigger still drops the cascaded rows' marks).
 */
import { describe, expect, it } from 'vitest';
import { uniqueName } from './support/env.js';
import { fence, outcomes, pgStoreTables, sqlName } from './support/pg-store-tables.js';

const { db, hostTable, store, rows, marks } = pgStoreTables('gd_pg_idtypes');

/** The host table's status of each id, ids trimmed of the padding of a character(n) column. */
const statuses = async (table: string): Promise<Record<string, string>> =>
  Object.fromEntries(
    (
      await rows<{ id: string; status: string }>(
        `SELECT trim(id::text) AS id, status FROM ${sqlName(table)} ORDER BY id`,
      )
    ).map((r) => [r.id, r.status]),
  );

describe('a character(n) id column', () => {
  // asId() casts to format_type(atttypid, NULL) = `character`, i.e. character(1): every id is cut to its
  // first character. parkPage writes by ctid (so it parks), but unparkPage's `held` join looks the rows up
  // through asId(): no row found, the mark deleted as "skipped", the workflow left paused for good.
  it('parkPage then unparkPage resumes every parked workflow (none stranded paused, marks not lost)', async () => {
    const table = await hostTable(
      [
        ['ab', 'running'],
        ['ac', 'running'],
      ],
      'id character(8) PRIMARY KEY, status text NOT NULL',
    );
    const s = store(table);
    const parked = await s.parkPage!(fence(1n), { limit: 10 });
    expect(outcomes(parked.results)).toEqual([
      ['ab', 'pausing'],
      ['ac', 'pausing'],
    ]);
    // the host's engine finishes pausing them
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
    expect(await marks(table)).toEqual(['ab', 'ac']);
    const unparked = await s.unparkPage!(fence(2n), { limit: 10 });
    expect(outcomes(unparked.results)).toEqual([
      ['ab', 'resumed'],
      ['ac', 'resumed'],
    ]);
    expect(await statuses(table)).toEqual({ ab: 'running', ac: 'running' });
  });

  it('unpark(ids) of a parked workflow resumes it', async () => {
    const table = await hostTable([['ab', 'running']], 'id character(8) PRIMARY KEY, status text NOT NULL');
    const s = store(table);
    await s.parkPage!(fence(1n), { limit: 10 });
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused'`);
    expect(outcomes(await s.unpark(['ab'], fence(2n)))).toEqual([['ab', 'resumed']]);
    expect(await statuses(table)).toEqual({ ab: 'running' });
  });

  it('listActive pages every running id exactly once (the cursor compared as the column)', async () => {
    const table = await hostTable(
      [
        ['aa', 'running'],
        ['ab', 'running'],
        ['ac', 'running'],
      ],
      'id character(8) PRIMARY KEY, status text NOT NULL',
    );
    const s = store(table);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await s.listActive(cursor === undefined ? { limit: 1 } : { limit: 1, cursor });
      seen.push(...page.items.map((id) => id.trim()));
      cursor = page.cursor;
      if (cursor === undefined) break;
    }
    expect(seen).toEqual(['aa', 'ab', 'ac']);
  });
});

describe("the mark trigger in the store's unpark transaction", () => {
  // The host's own trigger cascades a parent's resume to its children (here: a paused child is cancelled).
  // That update runs in unparkPage's transaction, where graceful_drain.unparking = 'on': the mark trigger
  // skips it, so the child's status moves away from paused and its mark stays.
  it("a host trigger's cascaded update in the page's transaction still drops the mark it should", async () => {
    const table = await hostTable(
      [
        ['a', 'running'],
        ['b', 'running'],
      ],
      'id text PRIMARY KEY, status text NOT NULL, parent text',
    );
    const T = sqlName(table);
    await db.pool.query(`UPDATE ${T} SET parent = 'a' WHERE id = 'b'`);
    const fn = `"${db.schema}"."${uniqueName('cascade')}"`;
    await db.pool.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE ${T} SET status = 'cancelled' WHERE parent = NEW.id AND status = 'paused';
        RETURN NULL;
      END $$`);
    await db.pool.query(`CREATE TRIGGER host_cascade AFTER UPDATE ON ${T} FOR EACH ROW
      WHEN (OLD.status = 'paused' AND NEW.status = 'running') EXECUTE FUNCTION ${fn}()`);
    const s = store(table);
    await s.parkPage!(fence(1n), { limit: 10 });
    await db.pool.query(`UPDATE ${T} SET status = 'paused'`);
    // one page: the parent only
    const page = await s.unparkPage!(fence(2n), { limit: 1 });
    expect(outcomes(page.results)).toEqual([['a', 'resumed']]);
    expect(await statuses(table)).toEqual({ a: 'running', b: 'cancelled' });
    // b left paused for cancelled: its pause is over, so its mark must be gone (as outside the page)
    expect(await marks(table)).toEqual([]);
  });
});
