/**
 * PostgresWorkflowStore's `recoverPage()`: `listActive()` and `recover()` of what it lists, in one
 * transaction and one statement. Results, cursors and what is written equal to the pair's on a twin
 * table; maxRecoveries and the failed status; mode count; a stale token and an evicted incarnation
 * writing nothing; a signal rolling back; a host row updated by another transaction meanwhile; bad
 * options named; and a DrainController's start after a crash recovering through it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PostgresCoordinator, PostgresWorkflowStore } from '../src/adapters/postgres/index.js';
import { ConfigurationError, EvictedMemberError, StaleTokenError } from '../src/errors.js';
import { DrainController } from '../src/index.js';
import type { Fence, RecoverPage } from '../src/workflow-store.js';
import { urlWithApplicationName } from './fixtures/postgres-setup.js';
import { POSTGRES_URL, uniqueName } from './support/env.js';
import {
  BEAT_COLUMNS,
  STATUSES_WITH_FAILED,
  fence,
  outcomes,
  pgStoreTables,
  sqlName,
  waitFor,
} from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_recpage', { statuses: STATUSES_WITH_FAILED, columns: BEAT_COLUMNS });
const { db, cleanup, hostTable, store, rows, statuses } = tables;
const { setStatus, markRows: marks, counts, backends } = tables;

/** Everything a rejected call must leave alone. */
const everything = async (table: string) => ({
  statuses: await statuses(table),
  marks: await marks(table),
  counts: await counts(table),
  fence: await rows(`SELECT token::text FROM "${db.schema}".store_fences WHERE store_key = $1`, [table]),
});
const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );

type Options = { mode: 'park' | 'count'; maxRecoveries: number };

/** Every page of recoverPage from the first. */
async function recoverAll(s: PostgresWorkflowStore, f: Fence, limit: number, o: Options) {
  const all: RecoverPage[] = [];
  let cursor: string | undefined;
  do {
    const page = await s.recoverPage(f, cursor === undefined ? { limit, ...o } : { limit, cursor, ...o });
    all.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined && all.length < 1000);
  return all;
}

/** Every page of listActive, each followed by recover() of its ids: what recoverPage must equal. */
async function listAndRecoverAll(s: PostgresWorkflowStore, f: Fence, limit: number, o: Options) {
  const all: RecoverPage[] = [];
  let cursor: string | undefined;
  do {
    const listed = await s.listActive(cursor === undefined ? { limit } : { limit, cursor });
    const results = listed.items.length === 0 ? [] : await s.recover(listed.items, f, o);
    all.push({ results, cursor: listed.cursor });
    cursor = listed.cursor;
  } while (cursor !== undefined && all.length < 1000);
  return all;
}

/** The same data in two tables: running ones (some recovered before, one with a stale mark), others. */
const DATA: readonly (readonly [string, string])[] = [
  ...Array.from({ length: 11 }, (_, i) => [`r${String(i).padStart(2, '0')}`, 'running'] as const),
  ['x-paused', 'paused'],
  ['x-pausing', 'pausing'],
  ['x-done', 'succeeded'],
  ['x-failed', 'failed'],
];

describe('PostgresWorkflowStore.recoverPage', () => {
  const configs: { name: string; statuses: Partial<typeof STATUSES_WITH_FAILED>; options: Options }[] = [
    {
      name: 'park, with pausing and failed',
      statuses: STATUSES_WITH_FAILED,
      options: { mode: 'park', maxRecoveries: 2 },
    },
    {
      name: 'park, no pausing, no failed',
      statuses: { running: 'running', paused: 'paused' },
      options: { mode: 'park', maxRecoveries: 2 },
    },
    {
      name: 'count, with failed',
      statuses: STATUSES_WITH_FAILED,
      options: { mode: 'count', maxRecoveries: 2 },
    },
    {
      name: 'count, no failed',
      statuses: { running: 'running', pausing: 'pausing', paused: 'paused' },
      options: { mode: 'count', maxRecoveries: 1 },
    },
  ];
  for (const { name, statuses: configured, options } of configs) {
    it(`equals listActive() + recover() on a twin table (${name}), in every page`, async () => {
      const tables = [await hostTable(DATA), await hostTable(DATA)];
      const [fused, pair] = tables.map((t) =>
        store(t, { statuses: configured as typeof STATUSES_WITH_FAILED }),
      ) as [PostgresWorkflowStore, PostgresWorkflowStore];
      for (const [i, t] of tables.entries()) {
        const s = i === 0 ? fused : pair;
        // counted before: r01 once, r02 twice (spent at 2), r03 once; a stale mark on r04 (a store
        // without the trigger left it): the statement meets it and is run again, replacing it
        await s.recover(['r01', 'r02', 'r03'], fence(1n), { mode: 'count', maxRecoveries: 9 });
        await s.recover(['r02'], fence(1n), { mode: 'count', maxRecoveries: 9 });
        await db.pool.query(
          `INSERT INTO "${db.schema}".parked (store_key, workflow_id, member_id, token) VALUES ($1, 'r04', 'old', 1)`,
          [t],
        );
      }
      const f = fence(5n, 'm2');
      const got = await recoverAll(fused, f, 3, options);
      const want = await listAndRecoverAll(pair, f, 3, options);
      expect(got).toEqual(want);
      expect(got.length).toBe(4);
      const results = got.flatMap((p) => p.results);
      expect(results.map((r) => r.id)).toEqual(DATA.slice(0, 11).map(([id]) => id));
      expect(new Set(results.map((r) => r.outcome)).size).toBeGreaterThan(1);
      const [a, b] = tables as [string, string];
      expect(await statuses(a)).toEqual(await statuses(b));
      expect(await marks(a)).toEqual(await marks(b));
      expect(await counts(a)).toEqual(await counts(b));
    });
  }

  it('past maxRecoveries moves a workflow to the failed status (outcome failed), its count and mark dropped; 0 fails at once', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'succeeded'],
    ]);
    const s = store(table);
    const park = { mode: 'park', maxRecoveries: 1 } as const;
    expect(outcomes((await s.recoverPage(fence(1n), { limit: 10, ...park })).results)).toEqual([
      ['a', 'pausing'],
      ['b', 'pausing'],
    ]);
    expect(await counts(table)).toEqual({ a: 1, b: 1 });
    expect((await marks(table)).map((m) => m.id)).toEqual(['a', 'b']);
    // the host resumes them (the mark trigger drops their marks), then they crash a member again
    await setStatus(table, 'a', 'running');
    await setStatus(table, 'b', 'running');
    expect(await marks(table)).toEqual([]);
    // a stale mark on b (left by a store without the trigger) is dropped with its count
    await db.pool.query(
      `INSERT INTO "${db.schema}".parked (store_key, workflow_id, member_id, token) VALUES ($1, 'b', 'old', 1)`,
      [table],
    );
    const page = await s.recoverPage(fence(2n), { limit: 10, ...park });
    expect(page).toEqual({
      results: [
        { id: 'a', outcome: 'failed' },
        { id: 'b', outcome: 'failed' },
      ],
      cursor: undefined,
    });
    expect(await statuses(table)).toEqual({ a: 'failed', b: 'failed', c: 'succeeded' });
    expect(await counts(table)).toEqual({});
    expect(await marks(table)).toEqual([]);
    // maxRecoveries 0: failed at once, in mode count too
    await db.pool.query(`INSERT INTO ${sqlName(table)} (id, status) VALUES ('d', 'running')`);
    const zero = await s.recoverPage(fence(2n), { limit: 10, mode: 'count', maxRecoveries: 0 });
    expect(outcomes(zero.results)).toEqual([['d', 'failed']]);
    expect((await statuses(table)).d).toBe('failed');
  });

  it('past maxRecoveries without a failed status: outcome failed, the status kept, the count dropped', async () => {
    const table = await hostTable([['a', 'running']]);
    const s = store(table, { statuses: { running: 'running', paused: 'paused' } });
    const count = { limit: 10, mode: 'count', maxRecoveries: 1 } as const;
    expect(outcomes((await s.recoverPage(fence(), count)).results)).toEqual([['a', 'counted']]);
    expect(outcomes((await s.recoverPage(fence(), count)).results)).toEqual([['a', 'failed']]);
    expect(await statuses(table)).toEqual({ a: 'running' });
    expect(await counts(table)).toEqual({});
    expect(outcomes((await s.recoverPage(fence(), count)).results)).toEqual([['a', 'counted']]);
  });

  it("mode 'count' only counts: statuses stay, no marks; a page at a time with listActive's cursor", async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'paused'],
      ['c', 'running'],
      ['d', 'running'],
    ]);
    const s = store(table);
    const first = await s.recoverPage(fence(1n), { limit: 2, mode: 'count', maxRecoveries: 3 });
    expect(first).toEqual({
      results: [
        { id: 'a', outcome: 'counted' },
        { id: 'c', outcome: 'counted' },
      ],
      cursor: 'c',
    });
    expect(await s.listActive({ limit: 2 })).toEqual({ items: ['a', 'c'], cursor: 'c' });
    const second = await s.recoverPage(fence(1n), { limit: 2, cursor: 'c', mode: 'count', maxRecoveries: 3 });
    expect(second).toEqual({ results: [{ id: 'd', outcome: 'counted' }], cursor: undefined });
    expect(await statuses(table)).toEqual({ a: 'running', b: 'paused', c: 'running', d: 'running' });
    expect(await marks(table)).toEqual([]);
    expect(await counts(table)).toEqual({ a: 1, c: 1, d: 1 });
    // an empty page past the end
    expect(
      await s.recoverPage(fence(1n), { limit: 2, cursor: 'd', mode: 'count', maxRecoveries: 3 }),
    ).toEqual({
      results: [],
      cursor: undefined,
    });
  });

  it('parks with the fence: the marks carry the member and token; unpark() resumes them', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store(table, { statuses: { running: 'running', paused: 'paused' } });
    const page = await s.recoverPage(fence(7n, 'm3'), { limit: 10, mode: 'park', maxRecoveries: 3 });
    expect(outcomes(page.results)).toEqual([
      ['a', 'paused'],
      ['b', 'paused'],
    ]);
    expect(await marks(table)).toEqual([
      { id: 'a', memberId: 'm3', token: '7' },
      { id: 'b', memberId: 'm3', token: '7' },
    ]);
    expect(outcomes(await s.unpark(['a', 'b'], fence(8n)))).toEqual([
      ['a', 'resumed'],
      ['b', 'resumed'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'running', b: 'running' });
  });

  it('under a stale token: StaleTokenError, nothing written (no status, mark, count or fence change)', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const s = store(table);
    await s.recover(['b'], fence(5n), { mode: 'count', maxRecoveries: 9 });
    const before = await everything(table);
    for (const mode of ['park', 'count'] as const) {
      const error = await rejection(s.recoverPage(fence(4n), { limit: 10, mode, maxRecoveries: 1 }));
      expect(error).toBeInstanceOf(StaleTokenError);
      expect(await everything(table)).toEqual(before);
    }
  });

  it('of an evicted incarnation: EvictedMemberError, nothing written; another incarnation recovers', async () => {
    const table = await hostTable(
      [
        ['a', 'running'],
        ['b', 'running'],
      ],
      'id text PRIMARY KEY, status text NOT NULL, owner text',
    );
    const s = store(table, { ownerColumn: 'owner' });
    const evictMembers = s.evictMembers;
    if (evictMembers === undefined) throw new Error('no owner capability');
    await evictMembers('g', [{ memberId: 'm1', incarnation: 'inc-1' }], fence(2n, 'm2', 'inc-2'));
    const before = await everything(table);
    for (const f of [fence(3n, 'm1', 'inc-1'), fence(undefined, 'm1', 'inc-1')]) {
      const error = await rejection(s.recoverPage(f, { limit: 10, mode: 'park', maxRecoveries: 3 }));
      expect(error).toBeInstanceOf(EvictedMemberError);
      expect(error).toMatchObject({ memberId: 'm1', incarnation: 'inc-1' });
      expect(await everything(table)).toEqual(before);
    }
    const page = await s.recoverPage(fence(3n, 'm1', 'inc-3'), { limit: 10, mode: 'park', maxRecoveries: 3 });
    expect(outcomes(page.results)).toEqual([
      ['a', 'pausing'],
      ['b', 'pausing'],
    ]);
  });

  it('a host row updated by another transaction meanwhile: judged by its latest status, once committed', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'running'],
    ]);
    const application = uniqueName('gd_recpage_lock');
    const s = store(table, { url: urlWithApplicationName(application) });
    // the store's first use (its checks, the mark trigger) done before the host takes its locks
    await s.listActive({ limit: 1 });
    const host = new pg.Client({ connectionString: POSTGRES_URL });
    await host.connect();
    cleanup.push(() => host.end());
    await host.query('BEGIN');
    await host.query(`UPDATE ${sqlName(table)} SET beat = beat + 1 WHERE id = 'a'`);
    await host.query(`UPDATE ${sqlName(table)} SET status = 'succeeded' WHERE id = 'b'`);
    const pending = s.recoverPage(fence(1n), { limit: 10, mode: 'park', maxRecoveries: 3 });
    await waitFor('the recovery to wait on the row lock', async () =>
      (await backends(application)).some((b) => b.waiting),
    );
    await host.query('COMMIT');
    const page = await pending;
    expect(outcomes(page.results)).toEqual([
      ['a', 'pausing'],
      ['b', 'skipped'],
      ['c', 'pausing'],
    ]);
    expect(await statuses(table)).toEqual({ a: 'pausing', b: 'succeeded', c: 'pausing' });
    expect((await marks(table)).map((m) => m.id)).toEqual(['a', 'c']);
    expect(await counts(table)).toEqual({ a: 1, c: 1 });
  });

  it('stuck on a host row lock: aborting rejects, the statement is cancelled and rolled back', async () => {
    const table = await hostTable([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    const application = uniqueName('gd_recpage_abort');
    const s = store(table, { url: urlWithApplicationName(application) });
    // the store's first use (its checks, the mark trigger) done before the host takes its locks
    await s.listActive({ limit: 1 });
    const host = new pg.Client({ connectionString: POSTGRES_URL });
    await host.connect();
    cleanup.push(() => host.end());
    await host.query('BEGIN');
    await host.query(`UPDATE ${sqlName(table)} SET beat = beat + 1 WHERE id = 'b'`);
    const controller = new AbortController();
    const options = { limit: 10, mode: 'park', maxRecoveries: 3, signal: controller.signal } as const;
    const outcome = rejection(s.recoverPage(fence(1n), options));
    await waitFor('the recovery to wait on the row lock', async () =>
      (await backends(application)).some((b) => b.waiting),
    );
    const reason = new Error('given up');
    controller.abort(reason);
    expect(await outcome).toBe(reason);
    await waitFor('the rollback', async () =>
      (await backends(application)).every((b) => b.state === 'idle' && !b.waiting),
    );
    await host.query('COMMIT');
    expect(await everything(table)).toEqual({
      statuses: { a: 'running', b: 'running' },
      marks: [],
      counts: {},
      fence: [],
    });
    // the store goes on working
    const page = await s.recoverPage(fence(1n), { limit: 10, mode: 'park', maxRecoveries: 3 });
    expect(outcomes(page.results)).toEqual([
      ['a', 'pausing'],
      ['b', 'pausing'],
    ]);
  });

  it('refuses bad options, naming the option and the value', async () => {
    const table = await hostTable([['a', 'running']]);
    const s = store(table);
    const ok = { limit: 10, mode: 'park', maxRecoveries: 1 } as const;
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => s.recoverPage(fence(), { ...ok, limit: 0 }), /`limit`.*`0`/],
      [() => s.recoverPage(fence(), { ...ok, cursor: 3 as never }), /`cursor`.*`3`/],
      [() => s.recoverPage(fence(), { ...ok, mode: 'all' as never }), /`options.mode`.*"all"/],
      [() => s.recoverPage(fence(), { ...ok, maxRecoveries: -1 }), /`options.maxRecoveries`.*`-1`/],
      [() => s.recoverPage(fence(), { ...ok, maxRecoveries: 1.5 }), /`options.maxRecoveries`.*`1.5`/],
      [() => s.recoverPage(fence(), { ...ok, max: 1 } as never), /Unknown option `max`/],
      [() => s.recoverPage(fence(), { ...ok, signal: 'soon' as never }), /`signal`.*"soon"/],
      [() => s.recoverPage(fence(), undefined as never), /`limit`/],
      [() => s.recoverPage({ memberId: 'm', token: 1 as never }, ok), /`fence.token`/],
    ];
    for (const [call, message] of cases) {
      const error = await rejection(call());
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(message);
    }
    expect(await everything(table)).toMatchObject({ statuses: { a: 'running' }, marks: [], counts: {} });
  });
});

/** Member `a`, in a process of its own: starts, says `ready <its recovery report>`, and runs until killed. */
const MEMBER_A = `
import { DrainController } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)};
import { PostgresCoordinator, PostgresWorkflowStore } from ${JSON.stringify(
  new URL('../src/adapters/postgres/index.ts', import.meta.url).href,
)};
const { GD_URL: url, GD_SCHEMA: schema, GD_TABLE: table } = process.env;
const drain = new DrainController({
  group: 'g',
  memberId: 'a',
  coordinator: new PostgresCoordinator({ url, schema }),
  store: new PostgresWorkflowStore({ url, schema, table, statuses: { running: 'running', paused: 'paused' } }),
});
await drain.start();
await drain.whenResumed();
process.stdout.write('ready\\n');
setInterval(() => {}, 60_000);
`;

describe('DrainController on the PostgreSQL store: a start after a crash', () => {
  it('recovers the dead member’s running workflows through recoverPage(), page by page, before start() resolves', async () => {
    const running = Array.from({ length: 7 }, (_, i) => `w${i}`);
    const table = await hostTable([
      ...running.map((id) => [id, 'running'] as const),
      ['user', 'paused'],
      ['done', 'succeeded'],
    ]);
    const hostStatuses = { running: 'running', paused: 'paused' };
    const application = uniqueName('gd_recpage_a');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', MEMBER_A], {
      env: {
        ...process.env,
        GD_URL: urlWithApplicationName(application),
        GD_SCHEMA: db.schema,
        GD_TABLE: table,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanup.push(async () => child.kill('SIGKILL'));
    const [line] = (await Promise.race([
      once(createInterface({ input: child.stdout }), 'line'),
      once(child, 'exit').then(() => {
        throw new Error('member a exited before it was ready');
      }),
    ])) as [string];
    expect(line).toBe('ready');
    // a crashes: no shutdown, its entry in the generation record stays
    child.kill('SIGKILL');
    await once(child, 'exit');
    await waitFor("a's sessions to end", async () => (await backends(application)).length === 0);

    const calls: string[] = [];
    const pages: RecoverPage[] = [];
    class Watched extends PostgresWorkflowStore {
      override async recover(...args: Parameters<PostgresWorkflowStore['recover']>) {
        calls.push('recover');
        return super.recover(...args);
      }
      override async recoverPage(...args: Parameters<PostgresWorkflowStore['recoverPage']>) {
        const page = await super.recoverPage(...args);
        calls.push('recoverPage');
        pages.push(page);
        return page;
      }
    }
    const watched = new Watched({ pool: db.pool, table, schema: db.schema, statuses: hostStatuses });
    cleanup.push(() => watched.close());
    const coordinator = new PostgresCoordinator({ url: POSTGRES_URL, schema: db.schema });
    cleanup.push(() => coordinator.close());
    const b = new DrainController({
      group: 'g',
      memberId: 'b',
      coordinator,
      store: watched,
      shutdownTimeoutMs: 5000,
      batchSize: 3,
    });
    cleanup.push(() => b.shutdown({ force: true }));
    await b.start();
    calls.push('started');
    expect(calls).toEqual(['recoverPage', 'recoverPage', 'recoverPage', 'started']);
    expect(pages.flatMap((p) => outcomes(p.results))).toEqual(running.map((id) => [id, 'paused']));
    const resumed = await b.whenResumed();
    expect(resumed?.recovery).toMatchObject({
      reason: 'crash',
      deadMembers: ['a'],
      found: 7,
      recovered: 7,
      failed: 0,
      skipped: 0,
      complete: true,
    });
    expect(resumed).toMatchObject({ resumed: 7, complete: true });
    expect(await statuses(table)).toEqual({
      ...Object.fromEntries(running.map((id) => [id, 'running'])),
      user: 'paused',
      done: 'succeeded',
    });
    expect(await marks(table)).toEqual([]);
    expect(await counts(table)).toEqual(Object.fromEntries(running.map((id) => [id, 1])));
  });
});
