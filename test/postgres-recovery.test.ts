/**
 * Crash recovery in the PostgreSQL store: the generation record, `recover()`, their fencing and
 * cancellation, the tables `migrate()` creates, and a member killed with running workflows recovered
 * by the next start of a DrainController on the PostgreSQL coordinator and store.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import {
  PostgresCoordinator,
  PostgresWorkflowStore,
  type PgPool,
  type PgPoolClient,
} from '../src/adapters/postgres/index.js';
import { ConfigurationError, StaleTokenError } from '../src/errors.js';
import { DrainController, type RecoveryReport } from '../src/index.js';
import { urlWithApplicationName } from './fixtures/postgres-setup.js';
import { POSTGRES_URL, uniqueName } from './support/env.js';
import {
  STATUSES_WITH_FAILED,
  fence,
  pgStoreTables,
  settle,
  sqlName,
  waitFor,
} from './support/pg-store-tables.js';

const tables = pgStoreTables('gd_pg_recovery', { statuses: STATUSES_WITH_FAILED });
const { db, cleanup, store, rows, statuses, markRows: marks, counts } = tables;
const { backends, waitingOnLock, allIdle, holdLock } = tables;

const EMPTY = { generation: 0, members: [], dirty: false };
const park = (maxRecoveries = 3) => ({ mode: 'park' as const, maxRecoveries });
const count = (maxRecoveries = 3) => ({ mode: 'count' as const, maxRecoveries });

/** A host table `(id idType, status)` in the test schema with `list`; its qualified name (the store key). */
const hostTable = (list: [string, string][], idType = 'text'): Promise<string> =>
  tables.hostTable(list, `id ${idType} PRIMARY KEY, status text NOT NULL`);

const fenceOf = async (table: string): Promise<string | null> =>
  (
    await rows<{ token: string }>(
      `SELECT token::text AS token FROM "${db.schema}".store_fences WHERE store_key = $1`,
      [table],
    )
  )[0]?.token ?? null;

/** Everything the store keeps of `table`, and the table's statuses: what a rejected call must leave alone. */
const everything = async (table: string, group = 'g') => ({
  statuses: await statuses(table),
  marks: await marks(table),
  counts: await counts(table),
  fence: await fenceOf(table),
  record: await rows(
    `SELECT g.generation::int, g.dirty, (SELECT array_agg(m.member_id || '/' || m.incarnation ORDER BY m.member_id)
       FROM "${db.schema}".parked_generation_members m WHERE m.store_key = $1 AND m.grp = $2) AS members
     FROM (VALUES (1)) one (x) LEFT JOIN "${db.schema}".parked_generations g ON g.store_key = $1 AND g.grp = $2`,
    [table, group],
  ),
});

/** A store on a pool of its own, named so that its backends can be found, its first use done. */
const namedStore = (table: string) => tables.namedStore(table, 'gd_rec');

describe('PostgresWorkflowStore generation record', () => {
  it('readGeneration() of a group never seen reads generation 0, no members, not dirty, and writes nothing', async () => {
    const table = await hostTable([]);
    const s = store(table);
    const record = await s.readGeneration('g');
    expect(record).toEqual(EMPTY);
    expect(Object.isFrozen(record) && Object.isFrozen(record.members)).toBe(true);
    expect(await everything(table)).toEqual({
      statuses: {},
      marks: [],
      counts: {},
      fence: null,
      record: [{ generation: null, dirty: null, members: null }],
    });
    // migrate() made the tables, each keyed by the store (the host table) like the marks
    const keys = await rows<{ table: string; key: string }>(
      `SELECT c.conrelid::regclass::text AS table, pg_get_constraintdef(c.oid) AS key FROM pg_constraint c
       WHERE c.contype = 'p' AND c.connamespace = $1::regnamespace AND c.conrelid::regclass::text LIKE '%parked_%'
       ORDER BY 1`,
      [db.schema],
    );
    expect(keys.map((k) => [k.table.split('.')[1], k.key])).toEqual([
      ['parked_generation_members', 'PRIMARY KEY (store_key, grp, member_id)'],
      ['parked_generations', 'PRIMARY KEY (store_key, grp)'],
      ['parked_incarnations', 'PRIMARY KEY (store_key, incarnation)'],
      ['parked_recoveries', 'PRIMARY KEY (store_key, workflow_id)'],
    ]);
  });

  it('enterGeneration() registers a member, replacing the entry of its id; members in id order; groups and stores apart', async () => {
    const table = await hostTable([]);
    const s = store(table);
    await s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, fence(1n));
    await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n));
    await s.enterGeneration('g', { memberId: 'a', incarnation: 'a2' }, fence(2n));
    await s.enterGeneration('other', { memberId: 'c', incarnation: 'c1' }, fence());
    expect(await s.readGeneration('g')).toEqual({
      generation: 0,
      members: [
        { memberId: 'a', incarnation: 'a2' },
        { memberId: 'b', incarnation: 'b1' },
      ],
      dirty: false,
    });
    expect((await s.readGeneration('other')).members).toEqual([{ memberId: 'c', incarnation: 'c1' }]);
    // durable: another store on the same table reads it; a store on another table has a record of its own
    expect((await store(table).readGeneration('g')).members).toHaveLength(2);
    expect(await store(await hostTable([])).readGeneration('g')).toEqual(EMPTY);
  });

  it("leaveGeneration() 'none' only removes, 'dirty' sets dirty, 'clean' clears it, raises the generation and resets every count of the store", async () => {
    const table = await hostTable([
      ['w1', 'running'],
      ['w2', 'running'],
    ]);
    const otherTable = await hostTable([['w1', 'running']]);
    const s = store(table);
    const other = store(otherTable);
    for (const id of ['a', 'b', 'c'])
      await s.enterGeneration('g', { memberId: id, incarnation: id }, fence());
    await s.enterGeneration('h', { memberId: 'a', incarnation: 'a' }, fence());
    await s.leaveGeneration('g', ['a', 'absent'], 'none', fence(1n));
    expect(await s.readGeneration('g')).toEqual({
      generation: 0,
      members: [
        { memberId: 'b', incarnation: 'b' },
        { memberId: 'c', incarnation: 'c' },
      ],
      dirty: false,
    });
    await s.leaveGeneration('g', ['b'], 'dirty', fence(1n));
    expect(await s.readGeneration('g')).toEqual({
      generation: 0,
      members: [{ memberId: 'c', incarnation: 'c' }],
      dirty: true,
    });
    await s.recover(['w1', 'w2'], fence(1n), count());
    await other.recover(['w1'], fence(1n), count());
    await s.leaveGeneration('g', [], 'dirty', fence(1n));
    expect(await counts(table)).toEqual({ w1: 1, w2: 1 });
    await s.leaveGeneration('g', ['c', 'c'], 'clean', fence(1n));
    expect(await s.readGeneration('g')).toEqual({ generation: 1, members: [], dirty: false });
    expect(await counts(table)).toEqual({});
    expect(await counts(otherTable)).toEqual({ w1: 1 });
    // another group's record is its own; a clean end of a group never seen starts it at 1
    expect((await s.readGeneration('h')).members).toEqual([{ memberId: 'a', incarnation: 'a' }]);
    await s.leaveGeneration('new', [], 'clean', fence(1n));
    await s.leaveGeneration('g', [], 'clean', fence(1n));
    expect((await s.readGeneration('new')).generation).toBe(1);
    expect((await s.readGeneration('g')).generation).toBe(2);
  });
});

describe('PostgresWorkflowStore recover()', () => {
  const ROWS: [string, string][] = [
    ['r1', 'running'],
    ['r2', 'running'],
    ['user', 'paused'], // a user paused it: no mark
    ['parked', 'running'], // parked below, before the recovery
    ['done', 'succeeded'],
  ];

  it("mode 'park' writes what park() writes, so that unpark() resumes it; a user-paused or parked workflow is skipped and untouched", async () => {
    const table = await hostTable(ROWS);
    const s = store(table);
    await s.park(['parked'], fence(2n, 'old'));
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE id = 'parked'`);
    const parkedAt = `SELECT parked_at FROM "${db.schema}".parked WHERE store_key = $1 AND workflow_id = 'parked'`;
    const [before] = await rows(parkedAt, [table]);
    const results = await s.recover(
      ['r1', 'user', 'parked', 'done', 'nope', 'r2', 'r1'],
      fence(4n, 'm2'),
      park(),
    );
    expect(results).toEqual([
      { id: 'r1', outcome: 'pausing' },
      { id: 'user', outcome: 'skipped' },
      { id: 'parked', outcome: 'skipped' },
      { id: 'done', outcome: 'skipped' },
      { id: 'nope', outcome: 'skipped' },
      { id: 'r2', outcome: 'pausing' },
      { id: 'r1', outcome: 'skipped' },
    ]);
    expect(await statuses(table)).toEqual({
      done: 'succeeded',
      parked: 'paused',
      r1: 'pausing',
      r2: 'pausing',
      user: 'paused',
    });
    // park()'s marks, with the fence's member and token; the older mark is left exactly as it was
    expect(await marks(table)).toEqual([
      { id: 'parked', memberId: 'old', token: '2' },
      { id: 'r1', memberId: 'm2', token: '4' },
      { id: 'r2', memberId: 'm2', token: '4' },
    ]);
    expect(await rows(parkedAt, [table])).toEqual([before]);
    expect(await counts(table)).toEqual({ r1: 1, r2: 1 });
    expect(await fenceOf(table)).toBe('4');
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'paused' WHERE status = 'pausing'`);
    expect((await s.listParked({ limit: 10 })).items).toEqual([
      { id: 'parked', state: 'paused', memberId: 'old', token: 2n },
      { id: 'r1', state: 'paused', memberId: 'm2', token: 4n },
      { id: 'r2', state: 'paused', memberId: 'm2', token: 4n },
    ]);
    expect(await s.unpark(['parked', 'r1', 'r2', 'user'], fence(5n))).toEqual([
      { id: 'parked', outcome: 'resumed' },
      { id: 'r1', outcome: 'resumed' },
      { id: 'r2', outcome: 'resumed' },
      { id: 'user', outcome: 'skipped' },
    ]);
    expect(await statuses(table)).toMatchObject({ user: 'paused', r1: 'running', r2: 'running' });
  });

  it("mode 'park' writes paused at once when the host has no pausing status; an empty batch writes nothing", async () => {
    const table = await hostTable([['r1', 'running']]);
    const s = store(table, { statuses: { running: 'running', paused: 'paused' } });
    expect(await s.recover([], fence(9n), park(1))).toEqual([]);
    expect(await fenceOf(table)).toBeNull();
    expect(await s.recover(['r1'], fence(), park(1))).toEqual([{ id: 'r1', outcome: 'paused' }]);
    expect(await statuses(table)).toEqual({ r1: 'paused' });
    expect(await marks(table)).toEqual([{ id: 'r1', memberId: 'm1', token: null }]);
  });

  it("mode 'count' only counts: the status stays, no mark", async () => {
    const table = await hostTable(ROWS);
    const s = store(table);
    const recover = () => s.recover(['r1', 'user', 'done', 'r1'], fence(1n), count(5));
    expect(await recover()).toEqual([
      { id: 'r1', outcome: 'counted' },
      { id: 'user', outcome: 'skipped' },
      { id: 'done', outcome: 'skipped' },
      { id: 'r1', outcome: 'skipped' },
    ]);
    await recover();
    expect(await statuses(table)).toMatchObject({ r1: 'running', user: 'paused' });
    expect(await marks(table)).toEqual([]);
    expect(await counts(table)).toEqual({ r1: 2 });
  });

  it('past maxRecoveries sets statuses.failed, dropping the count and any mark; a cap of 0 fails at once', async () => {
    const table = await hostTable(ROWS);
    // no trigger: a mark stays on a workflow the host resumed (stale), and recover() must drop it
    const s = store(table, { markTrigger: 'off' });
    await s.recover(['r1', 'r2'], fence(1n), park(1));
    await db.pool.query(`UPDATE ${sqlName(table)} SET status = 'running' WHERE id IN ('r1', 'r2')`);
    expect((await marks(table)).map((m) => m.id)).toEqual(['r1', 'r2']);
    expect(await s.recover(['r1', 'r2', 'user'], fence(2n), park(1))).toEqual([
      { id: 'r1', outcome: 'failed' },
      { id: 'r2', outcome: 'failed' },
      { id: 'user', outcome: 'skipped' },
    ]);
    expect(await statuses(table)).toMatchObject({ r1: 'failed', r2: 'failed', user: 'paused' });
    expect(await marks(table)).toEqual([]);
    expect(await counts(table)).toEqual({});
    await db.pool.query(`INSERT INTO ${sqlName(table)} VALUES ('r3', 'running')`);
    expect(await s.recover(['r3'], fence(2n), count(0))).toEqual([{ id: 'r3', outcome: 'failed' }]);
    expect((await statuses(table)).r3).toBe('failed');
  });

  it('past maxRecoveries without a failed status: the status is left as it is, the count dropped', async () => {
    const table = await hostTable([['a', 'RUN']]);
    const s = store(table, { statuses: { running: 'RUN', paused: 'STOP' } });
    await s.recover(['a'], fence(), count(1));
    expect(await s.recover(['a'], fence(), park(1))).toEqual([{ id: 'a', outcome: 'failed' }]);
    expect(await statuses(table)).toEqual({ a: 'RUN' });
    expect(await counts(table)).toEqual({});
    expect(await s.recover(['a'], fence(), park(1))).toEqual([{ id: 'a', outcome: 'paused' }]);
  });

  it('matches ids by the column type (any spelling once), and a batch with an id of another type as text', async () => {
    const table = await hostTable(
      [
        ['7', 'running'],
        ['10', 'running'],
      ],
      'integer',
    );
    const s = store(table, { statuses: { running: 'running', paused: 'paused' } });
    expect(await s.recover(['007', '7', '10'], fence(), count(2))).toEqual([
      { id: '007', outcome: 'counted' },
      { id: '7', outcome: 'skipped' },
      { id: '10', outcome: 'counted' },
    ]);
    expect(await counts(table)).toEqual({ '10': 1, '7': 1 });
    // 'x' is no integer: the batch is matched as text, where only the column's own spelling matches
    expect(await s.recover(['x', '007', '7'], fence(), park(2))).toEqual([
      { id: 'x', outcome: 'skipped' },
      { id: '007', outcome: 'skipped' },
      { id: '7', outcome: 'paused' },
    ]);
    expect(await counts(table)).toEqual({ '10': 1, '7': 2 });
    expect(await marks(table)).toEqual([{ id: '7', memberId: 'm1', token: null }]);
  });

  it('the mark trigger drops a recovery mark when the host moves the status on; notePaused() releases one', async () => {
    const table = await hostTable(ROWS);
    const s = store(table);
    await s.recover(['r1', 'r2'], fence(1n), park());
    const set = (id: string, status: string) =>
      db.pool.query(`UPDATE ${sqlName(table)} SET status = $2 WHERE id = $1`, [id, status]);
    await set('r1', 'paused'); // the pause completes: the mark is kept
    await set('r2', 'cancelled');
    expect((await marks(table)).map((m) => m.id)).toEqual(['r1']);
    await set('r1', 'running'); // a user resumed it
    expect(await marks(table)).toEqual([]);
    expect(await s.unpark(['r1', 'r2'], fence(1n))).toEqual([
      { id: 'r1', outcome: 'skipped' },
      { id: 'r2', outcome: 'skipped' },
    ]);
    await s.recover(['r1'], fence(1n), park());
    expect(await s.notePaused(['r1'])).toEqual([{ id: 'r1', outcome: 'released' }]);
    expect(await s.unpark(['r1'], fence(1n))).toEqual([{ id: 'r1', outcome: 'skipped' }]);
    expect(await counts(table)).toEqual({ r1: 2, r2: 1 });
  });
});

describe('PostgresWorkflowStore crash recovery, fenced and cancellable', () => {
  it('a stale token is refused with StaleTokenError and writes nothing', async () => {
    const table = await hostTable([['r1', 'running']]);
    const s = store(table);
    await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(5n));
    const before = await everything(table);
    const stale = fence(4n);
    const calls = [
      () => s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, stale),
      () => s.leaveGeneration('g', ['a'], 'none', stale),
      () => s.leaveGeneration('g', ['a'], 'clean', stale),
      () => s.leaveGeneration('g', ['a'], 'dirty', stale),
      () => s.recover(['r1'], stale, park(0)),
      () => s.recover(['r1'], stale, count()),
    ];
    for (const call of calls) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StaleTokenError);
      expect(error).toMatchObject({ token: 4n, highest: 5n });
    }
    expect(await everything(table)).toEqual(before);
    expect(before).toMatchObject({
      statuses: { r1: 'running' },
      fence: '5',
      record: [{ members: ['a/a1'] }],
    });
    // the same token, a higher one and none at all are accepted; each raises the fence as park() does
    await s.recover(['r1'], fence(5n), count());
    await s.leaveGeneration('g', ['a'], 'none', fence());
    await s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, fence(6n));
    await expect(s.park(['r1'], fence(5n))).rejects.toBeInstanceOf(StaleTokenError);
    expect(await fenceOf(table)).toBe('6');
  });

  it('a signal aborted already: each call rejects with its reason, with nothing sent', async () => {
    const table = await hostTable([['r1', 'running']]);
    let sent = 0;
    const counting: PgPool = {
      query: (text, values) => {
        sent++;
        return db.pool.query(text, values);
      },
      connect: async () => {
        sent++;
        return (await db.pool.connect()) as PgPoolClient;
      },
    };
    const s = store(table, { pool: counting });
    await s.listActive({ limit: 1 });
    sent = 0;
    const reason = new Error('stop');
    const signal = AbortSignal.abort(reason);
    const calls = [
      () => s.readGeneration('g', { signal }),
      () => s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n), { signal }),
      () => s.leaveGeneration('g', [], 'dirty', fence(1n), { signal }),
      () => s.recover(['r1'], fence(1n), { ...park(), signal }),
    ];
    for (const call of calls) expect(await settle(call())).toBe(reason);
    expect(sent).toBe(0);
    expect(await everything(table)).toMatchObject({
      statuses: { r1: 'running' },
      marks: [],
      counts: {},
      fence: null,
    });
  });

  it('recover() stuck on a host row lock: aborting rejects at once, the statement is cancelled, nothing lands', async () => {
    const table = await hostTable([
      ['r1', 'running'],
      ['r2', 'running'],
    ]);
    const { store: s, application } = await namedStore(table);
    const release = await holdLock(`SELECT * FROM ${sqlName(table)} WHERE id = 'r2' FOR UPDATE`);
    const controller = new AbortController();
    const outcome = settle(s.recover(['r1', 'r2'], fence(5n), { ...park(), signal: controller.signal }));
    await waitFor('the recovery to wait on the row lock', waitingOnLock(application));
    const reason = new Error('the start gave up on this batch');
    controller.abort(reason);
    expect(await outcome).toBe(reason);
    // cancelled and rolled back while the host still holds its lock
    await waitFor('the rollback', allIdle(application));
    await release();
    expect(await everything(table)).toMatchObject({
      statuses: { r1: 'running', r2: 'running' },
      marks: [],
      counts: {},
      fence: null,
    });
    // the store goes on working
    expect(await s.recover(['r1', 'r2'], fence(6n), park())).toEqual([
      { id: 'r1', outcome: 'pausing' },
      { id: 'r2', outcome: 'pausing' },
    ]);
  });

  it('enterGeneration() and leaveGeneration() stuck behind a write that holds the fence: aborted, they write nothing', async () => {
    const table = await hostTable([]);
    const { store: s, application } = await namedStore(table);
    await s.enterGeneration('g', { memberId: 'a', incarnation: 'a1' }, fence(1n));
    const before = await everything(table);
    const release = await holdLock(`SELECT * FROM "${db.schema}".store_fences FOR UPDATE`);
    for (const write of [
      (signal: AbortSignal) =>
        s.enterGeneration('g', { memberId: 'b', incarnation: 'b1' }, fence(2n), { signal }),
      (signal: AbortSignal) => s.leaveGeneration('g', ['a'], 'clean', fence(2n), { signal }),
    ]) {
      const controller = new AbortController();
      const outcome = settle(write(controller.signal));
      await waitFor('the write to wait on the fence row', waitingOnLock(application));
      controller.abort(new Error('given up'));
      expect(await outcome).toMatchObject({ message: 'given up' });
      await waitFor('the rollback', allIdle(application));
    }
    await release();
    expect(await everything(table)).toEqual(before);
  });

  it('refuses bad arguments, naming them', async () => {
    const s = store(await hostTable([]));
    const member = { memberId: 'a', incarnation: 'a1' };
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => s.readGeneration(''), /`group`/],
      [
        () => s.enterGeneration('g', { memberId: 'a', incarnation: 3 as never }, fence()),
        /`member.incarnation`.*`3`/,
      ],
      [() => s.enterGeneration('g', undefined as never, fence()), /`member.memberId`/],
      [() => s.enterGeneration('g', member, { memberId: 'm', token: 1 as never }), /`fence.token`/],
      [() => s.leaveGeneration('g', 'a' as never, 'none', fence()), /`ids`/],
      [() => s.leaveGeneration('g', ['a'], 'half' as never, fence()), /`end`.*"half"/],
      [() => s.recover(['a'], fence(), { mode: 'all' as never, maxRecoveries: 1 }), /`options.mode`.*"all"/],
      [() => s.recover(['a'], fence(), park(-1)), /`options.maxRecoveries`.*`-1`/],
      [() => s.recover(['a'], fence(), park(1.5)), /`options.maxRecoveries`.*`1.5`/],
      [() => s.recover(['a'], fence(), { ...park(), max: 1 } as never), /Unknown option `max`/],
      [() => s.recover(['a'], fence(), undefined as never), /`options.mode`/],
      [() => s.readGeneration('g', { signal: 'soon' } as never), /`signal`.*"soon"/],
    ];
    for (const [call, message] of cases) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(message);
    }
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
const { recovery } = await drain.whenResumed();
process.stdout.write('ready ' + JSON.stringify(recovery) + '\\n');
setInterval(() => {}, 60_000);
`;

describe('DrainController on the PostgreSQL coordinator and store', () => {
  it('a member killed with running workflows: the next start recovers them before start() resolves, its resume resumes them; later starts recover nothing', async () => {
    const table = await hostTable([
      ['w1', 'running'],
      ['w2', 'running'],
      ['w3', 'running'],
      ['user', 'paused'],
      ['done', 'succeeded'],
    ]);
    // No pausing status: a recovered workflow is paused at once, and the first resume round unparks it.
    const hostStatuses = { running: 'running', paused: 'paused' };
    const record = () => store(table).readGeneration('g');
    const application = uniqueName('gd_rec_a');
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
    expect(line.startsWith('ready ')).toBe(true);
    expect(JSON.parse(line.slice('ready '.length))).toMatchObject({ reason: 'none', recovered: 0 });
    expect((await record()).members.map((m) => m.memberId)).toEqual(['a']);

    // a crashes: no shutdown, its sessions end with its process, its entry in the record stays
    child.kill('SIGKILL');
    await once(child, 'exit');
    await waitFor("a's sessions to end", async () => (await backends(application)).length === 0);
    expect(await statuses(table)).toMatchObject({ w1: 'running', w2: 'running', w3: 'running' });

    const members: DrainController[] = [];
    const start = async (memberId: string, s: PostgresWorkflowStore): Promise<DrainController> => {
      const coordinator = new PostgresCoordinator({ url: POSTGRES_URL, schema: db.schema });
      cleanup.push(() => coordinator.close());
      const drain = new DrainController({
        group: 'g',
        memberId,
        coordinator,
        store: s,
        shutdownTimeoutMs: 5000,
      });
      cleanup.push(() => drain.shutdown({ force: true }));
      members.push(drain);
      return drain;
    };
    // b's store notes what each recovery page (recoverPage(): listed and recovered at once) left in the
    // table, and when
    const order: string[] = [];
    const seen: unknown[] = [];
    class Watched extends PostgresWorkflowStore {
      override async recoverPage(...args: Parameters<PostgresWorkflowStore['recoverPage']>) {
        const page = await super.recoverPage(...args);
        order.push('recovered');
        seen.push({ results: page.results, statuses: await statuses(table), marks: await marks(table) });
        return page;
      }
    }
    const watched = new Watched({ pool: db.pool, table, schema: db.schema, statuses: hostStatuses });
    cleanup.push(() => watched.close());
    const b = await start('b', watched);
    const states: string[] = [];
    b.on('recovery', () => states.push(b.state));
    await b.start();
    order.push('started');
    expect(order).toEqual(['recovered', 'started']);
    expect(states).toEqual(['starting']);
    expect(seen).toEqual([
      {
        results: ['w1', 'w2', 'w3'].map((id) => ({ id, outcome: 'paused' })),
        statuses: { done: 'succeeded', user: 'paused', w1: 'paused', w2: 'paused', w3: 'paused' },
        marks: ['w1', 'w2', 'w3'].map((id) => ({ id, memberId: 'b', token: expect.any(String) })),
      },
    ]);
    const resumed = await b.whenResumed();
    expect(resumed?.recovery).toMatchObject({
      policy: 'resume',
      reason: 'crash',
      deadMembers: ['a'],
      found: 3,
      recovered: 3,
      failed: 0,
      skipped: 0,
      complete: true,
    });
    expect(resumed).toMatchObject({ resumed: 3, complete: true, warnings: [] });
    expect(await statuses(table)).toEqual({
      done: 'succeeded',
      user: 'paused',
      w1: 'running',
      w2: 'running',
      w3: 'running',
    });
    expect(await marks(table)).toEqual([]);
    expect(await record()).toMatchObject({ members: [{ memberId: 'b' }], dirty: false });

    // c starts while b runs: b is alive and registered, nothing to recover
    const c = await start('c', store(table, { statuses: hostStatuses }));
    await c.start();
    expect((await c.whenResumed())?.recovery).toMatchObject({ reason: 'none', found: 0, recovered: 0 });
    // both stop gracefully, b last: it parks; the next start resumes what b parked and recovers nothing
    await c.shutdown();
    expect(await b.shutdown()).toMatchObject({ lastMember: true, parked: 3 });
    expect(await record()).toEqual({ generation: expect.any(Number), members: [], dirty: false });
    const d = await start('d', store(table, { statuses: hostStatuses }));
    await d.start();
    const resumedByD = await d.whenResumed();
    expect(resumedByD?.recovery as RecoveryReport).toMatchObject({
      reason: 'none',
      recovered: 0,
      deadMembers: [],
    });
    expect(resumedByD).toMatchObject({ resumed: 3, complete: true });
    expect(await statuses(table)).toMatchObject({
      user: 'paused',
      w1: 'running',
      w2: 'running',
      w3: 'running',
    });
    expect(members).toHaveLength(3);
  });
});
