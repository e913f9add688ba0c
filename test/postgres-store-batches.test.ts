/**
 * How the PostgreSQL store sends its batches: `BEGIN`, the fence check and the statement in one round trip
 * (values inlined as escaped literals), then `COMMIT`; `batchCommit` for the WAL flush of park and recover.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PgPool, PgPoolClient } from '../src/adapters/postgres/index.js';
import { ConfigurationError, StaleTokenError } from '../src/errors.js';
import { uniqueName } from './support/env.js';
import { outcomes, pgStoreTables } from './support/pg-store-tables.js';

const { db, store } = pgStoreTables('gd_pg_batches', {
  statuses: Object.freeze({ running: 'running', paused: 'paused' }),
});

/** A host table in the test schema, its columns named as given, with `ids` running. */
async function hostTable(ids: string[], name = uniqueName('wf'), id = 'id', status = 'status') {
  const table = `"${db.schema}"."${name}"`;
  await db.pool.query(`CREATE TABLE ${table} ("${id}" text PRIMARY KEY, "${status}" text NOT NULL)`);
  for (const value of ids) await db.pool.query(`INSERT INTO ${table} VALUES ($1, 'running')`, [value]);
  return { table, option: `${db.schema}.${name}` };
}

describe('PostgresWorkflowStore batches', () => {
  it('park() and unpark() take any id as it is: quotes, backslashes, braces, commas, "NULL", $1, unicode', async () => {
    const ids = [
      "it's",
      'say "hi"',
      'back\\slash',
      '\\\\',
      '{braced}',
      'a,b',
      'NULL',
      'null',
      '$1',
      ' spaced ',
      'ünï',
      "E'x'",
      '"',
    ];
    const { table, option } = await hostTable(ids);
    const s = store(option);
    const given = [...ids, 'missing', "it's"];
    expect(outcomes(await s.park(given, { memberId: "m'1", token: 1n }))).toEqual([
      ...ids.map((id) => [id, 'paused']),
      ['missing', 'skipped'],
      ["it's", 'skipped'],
    ]);
    const parked = (await s.listParked({ limit: 100 })).items;
    expect(parked.map((p) => p.id).sort()).toEqual([...ids].sort());
    expect(new Set(parked.map((p) => p.memberId))).toEqual(new Set(["m'1"]));
    const { rows } = await db.pool.query<{ id: string; status: string }>(`SELECT id, status FROM ${table}`);
    expect(rows.every((r) => r.status === 'paused')).toBe(true);
    expect(outcomes(await s.unpark([...ids].reverse(), { memberId: 'm', token: 2n }))).toEqual(
      [...ids].reverse().map((id) => [id, 'resumed']),
    );
    expect((await s.listParked({ limit: 100 })).items).toEqual([]);
  });

  it('a table and columns named with $1 and $2 are used as named, not taken for parameters', async () => {
    const { option } = await hostTable(['a', 'b'], `wf$1_${uniqueName('t')}`, 'id$1', 'status$2');
    const s = store(option, { idColumn: 'id$1', statusColumn: 'status$2' });
    expect(outcomes(await s.park(['a', 'b'], { memberId: 'm', token: 1n }))).toEqual([
      ['a', 'paused'],
      ['b', 'paused'],
    ]);
    expect(
      outcomes(await s.recover(['a'], { memberId: 'm', token: 2n }, { mode: 'count', maxRecoveries: 3 })),
    ).toEqual([['a', 'skipped']]);
    expect(outcomes(await s.unpark(['a', 'b'], { memberId: 'm', token: 3n }))).toEqual([
      ['a', 'resumed'],
      ['b', 'resumed'],
    ]);
  });

  it('park() is one round trip for BEGIN, the fence check and the statement, then COMMIT', async () => {
    const { option } = await hostTable(['a', 'b']);
    const sent: string[] = [];
    // The pool as the store sees it, each statement recorded; connections say their backend's id, as pg's do.
    const pool: PgPool = {
      query: (text, values) => {
        sent.push(text.trim().split(/\s+/)[0] as string);
        return db.pool.query(text, values);
      },
      connect: async () => {
        const connection = await db.pool.connect();
        return {
          processID: (connection as pg.PoolClient & { processID: number }).processID,
          query: (text: string, values?: unknown[]) => {
            sent.push(text.trim().split(/\s+/)[0] as string);
            return connection.query(text, values);
          },
          release: (error?: Error | boolean) => connection.release(error),
        } as PgPoolClient;
      },
    };
    const s = store(option, { pool });
    await s.listActive({ limit: 1 });
    sent.length = 0;
    const signal = new AbortController().signal;
    await s.park(['a'], { memberId: 'm', token: 5n }, { signal });
    expect(sent).toEqual(['BEGIN;', 'COMMIT']);
    sent.length = 0;
    await s.unpark(['a'], { memberId: 'm', token: 6n }, { signal });
    expect(sent).toEqual(['BEGIN;', 'COMMIT']);
    sent.length = 0;
    // A stale token: the statement wrote nothing, and the transaction is rolled back.
    await expect(s.park(['b'], { memberId: 'm', token: 4n }, { signal })).rejects.toBeInstanceOf(
      StaleTokenError,
    );
    expect(sent).toEqual(['BEGIN;', 'ROLLBACK']);
  });

  it("batchCommit: park() commits without waiting for the flush ('deferred', the default); recover() and unpark() wait", async () => {
    const { table, option } = await hostTable(['a', 'b', 'c']);
    // The host's own trigger records the setting each write of the store runs under.
    const seen = `"${db.schema}"."${uniqueName('seen')}"`;
    await db.pool.query(`CREATE TABLE ${seen} (status text, setting text)`);
    const record = `"${db.schema}"."${uniqueName('record')}"`;
    await db.pool.query(`CREATE FUNCTION ${record}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO ${seen} VALUES (NEW.status, current_setting('synchronous_commit')); RETURN NEW; END $$`);
    await db.pool.query(
      `CREATE TRIGGER record BEFORE UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${record}()`,
    );
    const settings = async (): Promise<string[]> => {
      const { rows } = await db.pool.query<{ s: string }>(
        `SELECT status || ':' || setting AS s FROM ${seen}`,
      );
      await db.pool.query(`DELETE FROM ${seen}`);
      return rows.map((r) => r.s);
    };
    const deferred = store(option);
    await deferred.park(['a'], { memberId: 'm', token: 1n });
    expect(await settings()).toEqual(['paused:off']);
    await deferred.unpark(['a'], { memberId: 'm', token: 2n });
    expect(await settings()).toEqual(['running:on']);
    // A peer check evicts a crashed peer before it recovers, and may write nothing durable afterwards: a
    // recovery batch lost in a server crash would leave its workflows running, found by no member.
    await deferred.recover(['b'], { memberId: 'm', token: 3n }, { mode: 'park', maxRecoveries: 3 });
    expect(await settings()).toEqual(['paused:on']);
    const synchronous = store(option, { batchCommit: 'synchronous' });
    await synchronous.park(['c'], { memberId: 'm', token: 4n });
    expect(await settings()).toEqual(['paused:on']);
  });

  it('park() and recover() replace a stale mark of a running workflow, mark trigger or not', async () => {
    const { option } = await hostTable(['a', 'b', 'c']);
    const s = store(option);
    await s.listActive({ limit: 1 }); // the mark trigger installed
    // Marks left on running workflows (the trigger dropped, say), written behind the store's back.
    for (const id of ['a', 'c']) {
      await db.pool.query(
        `INSERT INTO "${db.schema}".parked (store_key, workflow_id, member_id, token) VALUES ($1, $2, 'old', 1)`,
        [option, id],
      );
    }
    expect(outcomes(await s.park(['a', 'b'], { memberId: 'new', token: 7n }))).toEqual([
      ['a', 'paused'],
      ['b', 'paused'],
    ]);
    expect(
      outcomes(await s.recover(['c'], { memberId: 'rec', token: 8n }, { mode: 'park', maxRecoveries: 3 })),
    ).toEqual([['c', 'paused']]);
    const parked = (await s.listParked({ limit: 10 })).items.map((p) => [p.id, p.memberId, p.token]);
    expect(parked).toEqual([
      ['a', 'new', 7n],
      ['b', 'new', 7n],
      ['c', 'rec', 8n],
    ]);
  });

  it('refuses a batchCommit it does not know, naming the option and the value', () => {
    expect(() => store('t', { batchCommit: 'later' as never })).toThrow(ConfigurationError);
    expect(() => store('t', { batchCommit: 'later' as never })).toThrow(/`batchCommit`.*"later"/);
  });
});
