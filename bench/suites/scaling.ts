import { duration, iqr, num, times } from '../lib/format.js';
import { type HandOffDriver, handOffDriver, type HostTables } from '../lib/hand-off-driver.js';
import { openPostgresTables } from '../lib/postgres-tables.js';
import type { Chart, ChartSeries, Check, Suite, SuiteBody, SuiteContext, Table } from '../lib/result.js';
import { status } from '../lib/result.js';
import { openSqliteTables, SQLITE_TABLES } from '../lib/sqlite-tables.js';
import { ratios, summarize } from '../lib/stats.js';
import { shuffle } from '../../harness/random.js';

/** Time per workflow at the largest count may be at most this multiple of that at the smallest. */
const LINEAR = 1.5;

const OPERATIONS = ['park', 'resume', 'recovery'] as const;
type Operation = (typeof OPERATIONS)[number];
const COLORS: Record<Operation | 'raw', string> = {
  park: '#2563eb',
  resume: '#16a34a',
  recovery: '#dc2626',
  raw: '#94a3b8',
};

/** What one backend gave at one count: samples in ms, subject and baseline taken in the same rounds. */
interface Point {
  readonly n: number;
  readonly store: Record<Operation, number[]>;
  readonly raw: Record<Operation, number[]>;
}

async function openPostgres(): Promise<HostTables> {
  const t = await openPostgresTables();
  return {
    name: `PostgreSQL ${t.version}`,
    store: t.store,
    reset: (n) => t.reset(n),
    rawPark: async () => (await t.pool.query(t.rawPark)).rowCount ?? 0,
    rawUnpark: async () => (await t.pool.query(t.rawUnpark)).rowCount ?? 0,
    close: () => t.close(),
  };
}

/** Every count, `rounds(n)` rounds each, store and raw SQL in random order within a round. */
async function measure(
  tables: HostTables,
  counts: readonly number[],
  rounds: (n: number) => number,
  progress: (text: string) => void,
  notes: string[],
): Promise<Point[]> {
  const driver: HandOffDriver = await handOffDriver(tables.store);
  const checked = async (what: string, n: number, work: () => Promise<number>): Promise<number> => {
    const t0 = performance.now();
    const done = await work();
    if (done !== n) throw new Error(`${what} handled ${done} of ${n}`);
    return performance.now() - t0;
  };
  /**
   * Times one operation into `point`; one that fails is kept as NaN and its error as a note, so that
   * one bad point (at a million, after minutes) does not lose every other figure of the suite.
   */
  const attempt = async (point: Point, op: Operation, work: () => Promise<number>): Promise<boolean> => {
    try {
      point.store[op].push(await work());
      return true;
    } catch (error) {
      point.store[op].push(Number.NaN);
      const message = error instanceof Error ? error.message : String(error);
      notes.push(
        `${tables.name}, ${point.n.toLocaleString('en-US')} workflows: the ${op} failed: ${message}`,
      );
      return false;
    }
  };
  try {
    // A warm-up of every path, untimed: connections, statement caches, the JIT.
    const warm = Math.min(counts[0] ?? 1_000, 2_000);
    await tables.reset(warm);
    await driver.park(warm);
    await driver.unpark(warm);
    await driver.crash();
    await driver.recover(warm);
    await tables.reset(warm);
    await tables.rawPark();
    await tables.rawUnpark();

    const points: Point[] = [];
    for (const n of counts) {
      const point: Point = {
        n,
        store: { park: [], resume: [], recovery: [] },
        raw: { park: [], resume: [], recovery: [] },
      };
      const total = rounds(n);
      const count = n.toLocaleString('en-US');
      for (let round = 1; round <= total; round++) {
        const step = (text: string): void =>
          progress(`${tables.name}, ${count}, round ${round}/${total}: ${text}`);
        for (const who of shuffle(['store', 'raw'] as const)) {
          step(`${who === 'store' ? 'graceful-drain' : 'raw SQL'}, filling the table`);
          await tables.reset(n);
          if (who === 'store') {
            step('park');
            const parked = await attempt(point, 'park', () => driver.park(n));
            if (parked) {
              await tables.settle?.();
              step('resume');
              await attempt(point, 'resume', () => driver.unpark(n));
            } else {
              point.store.resume.push(Number.NaN);
              notes.push(`${tables.name}, ${count} workflows: the resume was not run (its park failed).`);
            }
            step('recovery, filling the table');
            await tables.reset(n);
            await driver.crash();
            step('recovery');
            await attempt(point, 'recovery', () => driver.recover(n));
          } else {
            step('park');
            const park = await checked('the raw park', n, () => tables.rawPark());
            await tables.settle?.();
            step('unpark');
            const unpark = await checked('the raw unpark', n, () => tables.rawUnpark());
            point.raw.park.push(park);
            point.raw.resume.push(unpark);
            point.raw.recovery.push(park + unpark);
          }
        }
      }
      points.push(point);
    }
    return points;
  } finally {
    await driver.close();
    await tables.close();
  }
}

const RAW_NAME: Record<Operation, string> = {
  park: 'raw park',
  resume: 'raw unpark',
  recovery: 'raw park + unpark',
};

function table(name: string, points: readonly Point[]): Table {
  return {
    title: `${name}: time by number of workflows`,
    columns: ['Workflows', 'Operation', 'graceful-drain', 'raw SQL (baseline)', 'ratio', 'per workflow'],
    rows: points.flatMap((p) =>
      OPERATIONS.map((op) => {
        const store = summarize(p.store[op]);
        if (p.store[op].some(Number.isNaN)) {
          const what = [p.n.toLocaleString('en-US'), `${op} (vs ${RAW_NAME[op]})`];
          return [...what, 'failed (see below)', iqr(summarize(p.raw[op]), duration), '', ''];
        }
        return [
          p.n.toLocaleString('en-US'),
          `${op} (vs ${RAW_NAME[op]})`,
          iqr(store, duration),
          iqr(summarize(p.raw[op]), duration),
          iqr(summarize(ratios(p.store[op], p.raw[op])), times),
          `${num((store.median / p.n) * 1000)} µs`,
        ];
      }),
    ),
  };
}

/** Time per workflow at the largest count over that at the smallest, by operation. */
function growth(points: readonly Point[]): Record<Operation, number> {
  const first = points[0];
  const last = points[points.length - 1];
  const perWorkflow = (p: Point | undefined, op: Operation): number =>
    p === undefined || p.store[op].some(Number.isNaN) ? Number.NaN : summarize(p.store[op]).median / p.n;
  const out = {} as Record<Operation, number>;
  for (const op of OPERATIONS) out[op] = perWorkflow(last, op) / perWorkflow(first, op);
  return out;
}

function check(name: string, points: readonly Point[]): Check {
  const g = growth(points);
  const first = (points[0]?.n ?? 0).toLocaleString('en-US');
  const last = (points[points.length - 1]?.n ?? 0).toLocaleString('en-US');
  return {
    target: `park, resume and recovery grow linearly from ${first} to ${last} workflows: time per workflow at ${last} within ${LINEAR}x of that at ${first} (${name})`,
    measured: OPERATIONS.map((op) => `${op} ${times(g[op])}`).join(', '),
    status: status(OPERATIONS.every((op) => g[op] <= LINEAR)),
  };
}

function series(name: string, points: readonly Point[], dashed: boolean): ChartSeries[] {
  const line = (label: string, color: string, y: (p: Point) => number): ChartSeries => ({
    name: `${name} ${label}`,
    color,
    dashed,
    points: points.map((p) => [p.n, y(p)] as const),
  });
  return [
    ...OPERATIONS.map((op) =>
      line(op, COLORS[op], (p) =>
        p.store[op].some(Number.isNaN) ? Number.NaN : summarize(p.store[op]).median,
      ),
    ),
    line('raw park', COLORS.raw, (p) => summarize(p.raw.park).median),
  ];
}

async function run({ quick, progress }: SuiteContext): Promise<SuiteBody> {
  const counts = quick ? [1_000, 3_000] : [10_000, 100_000, 1_000_000];
  const rounds = (n: number): number => (quick ? 1 : n >= 1_000_000 ? 1 : 3);
  const backends = [
    { short: 'PostgreSQL', open: openPostgres, dashed: false },
    { short: 'SQLite', open: openSqliteTables, dashed: true },
  ];
  const notes: string[] = [];
  const measured: { short: string; name: string; points: Point[]; dashed: boolean }[] = [];
  for (const b of backends) {
    const tables = await b.open();
    const name = tables.name;
    measured.push({
      short: b.short,
      name,
      dashed: b.dashed,
      points: await measure(tables, counts, rounds, progress, notes),
    });
  }
  const chart: Chart = {
    file: 'performance-scaling.svg',
    title: 'Park, resume and recovery time by number of workflows',
    subtitle: `${measured.map((m) => m.name).join(' (solid) and ')} (dashed); medians, log-log; grey: raw set-based park`,
    x: { label: 'workflows', scale: 'log', format: 'count', ticks: counts },
    y: { label: 'time', scale: 'log', format: 'ms' },
    series: measured.flatMap((m) => series(m.short, m.points, m.dashed)),
  };
  const described = counts.map(
    (n) => `${n.toLocaleString('en-US')} (${rounds(n)} round${rounds(n) > 1 ? 's' : ''})`,
  );
  return {
    method:
      `How the hand-off's time grows with the number of workflows: ${described.join(', ')}, on PostgreSQL ` +
      `and SQLite. Each round fills the host table with that many running workflows and, in random order, ` +
      `(a) through graceful-drain: a last member's \`shutdown()\` to its report (park), a new member's ` +
      `\`start()\` until \`whenResumed()\` (resume), then, from a refilled table and a dead member registered ` +
      `in the group's generation record, a start until \`whenResumed()\` reports them all recovered and ` +
      `resumed (recovery); (b) with raw SQL: the set-based park, then the set-based unpark, of the parking ` +
      `suites (the recovery's baseline is their sum). The coordinator is an in-process MemoryCoordinator, ` +
      `so that the store is what is measured; default \`batchSize\` (2,000). The million-workflow point runs ` +
      `once (it alone takes minutes): its figure is one sample, not a median. PostgreSQL: the tables of the ` +
      `parking suite (a \`pg.Pool\`, max 4; TRUNCATE, INSERT, VACUUM ANALYZE before every run, the ` +
      `store's recovery counts emptied and vacuumed too). ` +
      SQLITE_TABLES,
    tables: measured.map((m) => table(m.name, m.points)),
    checks: measured.map((m) => check(m.name, m.points)),
    notes,
    charts: [chart],
  };
}

export const suite: Suite = { run };
