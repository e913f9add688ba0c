import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { duration, iqr, num, times } from '../lib/format.js';
import { type MemberConfig, type ShutdownMemberMessages, shutdownMemberLines } from '../lib/member-lines.js';
import { openPostgresTables, type PostgresTables } from '../lib/postgres-tables.js';
import type { Chart, Suite, SuiteBody, SuiteContext, Table } from '../lib/result.js';
import { ratios, summarize } from '../lib/stats.js';
import { ScriptProcess } from '../../harness/process.js';
import { shuffle } from '../../harness/random.js';
import { REDIS_URL, serverMissing, uniqueName } from '../../harness/servers.js';

const MEMBER = fileURLToPath(new URL('../shutdown-member.ts', import.meta.url));
const COORDINATORS = ['postgres', 'redis'] as const;
type CoordinatorKind = (typeof COORDINATORS)[number];
const NAMES: Record<CoordinatorKind, string> = { postgres: 'PostgresCoordinator', redis: 'RedisCoordinator' };
const COLORS: Record<CoordinatorKind, string> = { postgres: '#2563eb', redis: '#dc2626' };
/** How long members may take to start (tsx, connections) or to stop before the suite gives up. */
const WAIT_MS = 120_000;

/** One group's shutdown. */
interface GroupStop {
  /** From the first SIGTERM sent to the last member's report reaching the suite. */
  readonly ms: number;
  /** The shutdown of the member that parked, from its SIGTERM to its report, as it measured it. */
  readonly parkerMs: number;
  /** How many members parked (found no live peer); the others left it to them. */
  readonly parkers: number;
  /** The longest any member waited for the start-stop lock (its report's `lock` phase). */
  readonly lockWaitMs: number;
}

type Report = ShutdownMemberMessages['REPORT'];

/**
 * What the members of one coordinator share: a host table and store of their own, and one group. The
 * store keeps the highest fencing token it has seen, and the tokens come from the group's lock: one
 * store with one group and one coordinator, as in production (another group's or coordinator's lock
 * counts from its own start, and its tokens would be stale).
 */
interface Setup {
  readonly kind: CoordinatorKind;
  readonly t: PostgresTables;
  readonly group: string;
  readonly keyPrefix: string;
}

/** Starts `n` members, waits until every one is running, sends them all SIGTERM, and times the stop. */
async function stopGroup({ kind, t, group, keyPrefix }: Setup, n: number, size: number): Promise<GroupStop> {
  const reports: Report[] = [];
  let lastReportAt = Number.NaN;
  let failure: string | undefined;
  let ready = 0;
  let wake: () => void = () => {};
  const changed = (): void => wake();
  const members = Array.from({ length: n }, (_, i) => {
    const config: MemberConfig = { coordinator: kind, schema: t.schema, keyPrefix, group, memberId: `m${i}` };
    const member: ScriptProcess<ShutdownMemberMessages> = new ScriptProcess({
      script: MEMBER,
      args: [JSON.stringify(config)],
      protocol: shutdownMemberLines,
      onMessage: (message) => {
        if (message.kind === 'READY') ready++;
        else if (message.kind === 'REPORT') {
          lastReportAt = performance.now();
          reports.push(message.data);
        } else failure = `member m${i}: ${message.data.error}`;
        changed();
      },
    });
    void member.exited.then(changed);
    return member;
  });
  /** Waits until `done()` holds; a member failing or exiting too early, or a timeout, throws. */
  const until = async (what: string, done: () => boolean, exitsExpected: boolean): Promise<void> => {
    const deadline = performance.now() + WAIT_MS;
    while (!done()) {
      if (failure !== undefined) throw new Error(failure);
      const gone = members.find((m) => !m.alive);
      if (gone !== undefined && !exitsExpected) {
        throw new Error(
          `a member exited (${JSON.stringify(gone.exit)}) before ${what}: ${gone.stderr.join('\n')}`,
        );
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1_000));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  try {
    await until('every member to start', () => ready === n, false);
    const t0 = performance.now();
    for (const m of members) m.signal('SIGTERM');
    await until('every report', () => reports.length === n, true);
    await Promise.all(members.map((m) => m.exited));
    const ms = lastReportAt - t0;
    const parkers = reports.filter((r) => r.handOff === 'parked');
    const parked = parkers.reduce((sum, r) => sum + r.parked, 0);
    const errors = reports.flatMap((r) => r.errors);
    if (parked !== size || errors.length > 0) {
      throw new Error(
        `${parked} of ${size} parked by ${parkers.length} of ${n} members; errors: ${errors.join('; ')}`,
      );
    }
    const { rows } = await t.pool.query<{ running: number }>(
      `SELECT count(*)::int AS running FROM "${t.schema}".workflows WHERE status = 'running'`,
    );
    if (rows[0]?.running !== 0) throw new Error(`${rows[0]?.running} workflows left running`);
    const parker = parkers.find((r) => r.parked > 0) ?? parkers[0];
    const lockWaitMs = Math.max(
      ...reports.map((r) => r.phases.find((p) => p.name === 'lock')?.durationMs ?? Number.NaN),
    );
    return { ms, parkerMs: parker?.ms ?? Number.NaN, parkers: parkers.length, lockWaitMs };
  } finally {
    for (const m of members) m.killNow();
  }
}

async function run({ quick, progress }: SuiteContext): Promise<SuiteBody> {
  const memberCounts = quick ? [1, 2] : [1, 2, 4, 8];
  const size = quick ? 1_000 : 10_000;
  const rounds = quick ? 1 : 3;
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw serverMissing('Redis', 'GD_REDIS_URL', error);
  }
  const keyPrefix = `${uniqueName('gd-bench')}:`;
  const setups: Setup[] = [];
  const t = await openPostgresTables();
  const key = (kind: CoordinatorKind, n: number): string => `${kind}:${n}`;
  const samples = new Map<string, GroupStop[]>();
  const raw: number[] = [];
  try {
    setups.push({ kind: 'postgres', t, group: uniqueName('bench'), keyPrefix });
    setups.push({ kind: 'redis', t: await openPostgresTables(), group: uniqueName('bench'), keyPrefix });
    const combos = setups.flatMap((setup) => memberCounts.map((n) => ({ setup, n })));
    // A warm-up, untimed: the server's caches and plans (not worth its processes in a smoke run).
    if (!quick) {
      for (const setup of setups) {
        await setup.t.reset(size);
        await stopGroup(setup, 1, size);
      }
    }
    for (let round = 1; round <= rounds; round++) {
      for (const combo of shuffle([...combos, 'raw' as const])) {
        if (combo === 'raw') {
          progress(`round ${round}/${rounds}: raw park`);
          await t.reset(size);
          const t0 = performance.now();
          await t.pool.query(t.rawPark);
          raw.push(performance.now() - t0);
          continue;
        }
        const { setup, n } = combo;
        progress(`round ${round}/${rounds}: ${n} member${n > 1 ? 's' : ''} on ${NAMES[setup.kind]}`);
        await setup.t.reset(size);
        const stop = await stopGroup(setup, n, size);
        samples.set(key(setup.kind, n), [...(samples.get(key(setup.kind, n)) ?? []), stop]);
      }
    }
  } finally {
    await Promise.all(setups.map((setup) => setup.t.close()));
    const keys = await redis.keys(`{${keyPrefix}*`).catch(() => []);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }

  const get = (kind: CoordinatorKind, n: number): GroupStop[] => samples.get(key(kind, n)) ?? [];
  const count = size.toLocaleString('en-US');
  const table: Table = {
    title: `All members stopped at once, ${count} running workflows on PostgreSQL`,
    columns: [
      'Coordinator',
      'Members',
      'SIGTERM to the last report',
      'vs 1 member',
      "the parking member's own shutdown",
      'longest wait for the lock',
      'members that found no peer, by round',
    ],
    rows: COORDINATORS.flatMap((kind) =>
      memberCounts.map((n) => {
        const stops = get(kind, n);
        const ms = stops.map((s) => s.ms);
        const one = get(kind, 1).map((s) => s.ms);
        return [
          NAMES[kind],
          String(n),
          iqr(summarize(ms), duration),
          n === 1 ? '1x' : iqr(summarize(ratios(ms, one)), times),
          iqr(summarize(stops.map((s) => s.parkerMs)), duration),
          iqr(summarize(stops.map((s) => s.lockWaitMs)), duration),
          stops.map((s) => s.parkers).join(', '),
        ];
      }),
    ),
  };
  const chart: Chart = {
    file: 'performance-shutdown.svg',
    title: 'Group shutdown time by number of members',
    subtitle: `Every member sent SIGTERM at once; ${count} running workflows on PostgreSQL; ${rounds > 1 ? `medians of ${rounds} rounds` : 'one round'}`,
    x: { label: 'members', scale: 'linear', ticks: [0, ...memberCounts] },
    y: { label: 'SIGTERM to the last report', scale: 'linear', format: 'ms' },
    series: [
      ...COORDINATORS.map((kind) => ({
        name: NAMES[kind],
        color: COLORS[kind],
        points: memberCounts.map((n) => [n, summarize(get(kind, n).map((s) => s.ms)).median] as const),
      })),
      {
        name: 'raw park (baseline)',
        color: '#94a3b8',
        dashed: true,
        points: memberCounts.map((n) => [n, summarize(raw).median] as const),
      },
    ],
  };
  return {
    method:
      `A group of ${memberCounts.join(', ')} members, each a process of its own (bench/shutdown-member.ts: a ` +
      `DrainController with \`installSignalHandlers()\`, on a PostgresCoordinator or a RedisCoordinator, and a ` +
      `PostgresWorkflowStore on a \`pg.Pool\` of its own, max 4) over one host table of ${count} running ` +
      `workflows and nothing in flight. Once every member has started, each is sent SIGTERM at once; timed ` +
      `from the first signal to the last member's shutdown report (a line on its stdout). Every member ` +
      `leaves the group, then takes the start-stop lock in turn and lists the members: one that still sees a ` +
      `peer parks nothing; one that finds none takes the last member's path and parks what is still running ` +
      `(the first of them all ${count}, checked: none left running; the next ones nothing, but each holds the ` +
      `lock while it looks). ${rounds} round${rounds > 1 ? 's' : ''}, each running every group size on ` +
      `both coordinators and a raw set-based park of the same rows (the baseline), in random order, from a ` +
      `freshly rebuilt table. Each coordinator's members share a group and a store of their own (the store ` +
      `keeps the highest fencing token it has seen, and tokens come from the group's lock). ` +
      `Figures: median [interquartile range] over rounds.`,
    tables: [
      table,
      {
        title: `Baseline: raw set-based park of ${count} workflows`,
        columns: ['Operation', 'Time'],
        rows: [['raw park', iqr(summarize(raw), duration)]],
      },
    ],
    checks: [],
    notes: [
      `Per member of the largest group, the ${NAMES.postgres} adds ` +
        `${num(perMember(get('postgres', 1), get('postgres', memberCounts.at(-1) ?? 1), memberCounts.at(-1) ?? 1))} ms ` +
        `and the ${NAMES.redis} ${num(perMember(get('redis', 1), get('redis', memberCounts.at(-1) ?? 1), memberCounts.at(-1) ?? 1))} ms ` +
        `to the group's shutdown (median of the largest group minus that of one member, over the members added).`,
    ],
    charts: [chart],
  };
}

/** What each member past the first adds to the group's shutdown, in ms. */
function perMember(one: readonly GroupStop[], many: readonly GroupStop[], n: number): number {
  if (n <= 1) return 0;
  const m = (xs: readonly GroupStop[]): number => summarize(xs.map((s) => s.ms)).median;
  return (m(many) - m(one)) / (n - 1);
}

export const suite: Suite = { run };
