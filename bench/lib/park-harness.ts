import type { ShutdownReport } from 'graceful-drain';
import { bytes, duration, iqr, times } from './format.js';
import type { HostTables } from './hand-off-driver.js';
import { heapUsed, PeakMemory, rss } from './heap.js';
import { core, memory } from './library.js';
import { status, type Check, type SuiteBody, type SuiteContext } from './result.js';
import { ratios, summarize } from './stats.js';
import { shuffle } from '../../harness/random.js';
import { uniqueName } from '../../harness/servers.js';

/** A database holding a host table of workflows, a store over it, and the raw SQL to compare with. */
export interface ParkBackend extends HostTables {
  /** What a reader needs to know of the set-up (table, indexes, settings, the raw statements). */
  readonly description: string;
  /**
   * The database runs in this process (SQLite): the tables show this process's CPU time beside the
   * elapsed time, a measure that other processes on a busy machine disturb less.
   */
  readonly inProcess?: boolean | undefined;
  /** How many workflows are running and paused now. */
  count(): Promise<{ readonly running: number; readonly paused: number }>;
}

interface Timed {
  readonly ms: number;
  /** This process's CPU time (user and system), ms. */
  readonly cpuMs: number;
  readonly rssGrowth: number;
}

/** This process's CPU time so far (user and system), ms. */
function cpuTime(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Options of {@link runParkSuite}. */
export interface ParkSuiteOptions {
  /**
   * The large count, parked and unparked in fewer rounds, with the retained heap measured while parking
   * it (`--quick`: 20,000).
   * @defaultValue `1_000_000`
   */
  readonly largeSize?: number | undefined;
  /** Rounds at the large count (`--quick`: 1). @defaultValue `2` */
  readonly largeRounds?: number | undefined;
  /**
   * For information, without a target: rounds of a park and its resume on one table, with no refill in
   * between, as a worker's table is used (`--quick`: 1). @defaultValue `0` (none)
   */
  readonly inUseRounds?: number | undefined;
  /**
   * For information, without a target: `rounds` rounds at the main count (100,000) again, on another host
   * table (other statuses, say) opened by `open`; `title` names it in the table's title, `description` in
   * the method (`--quick`: 1 round at the small count).
   */
  readonly alternate?:
    | {
        readonly title: string;
        readonly description: string;
        readonly rounds: number;
        readonly open: () => Promise<ParkBackend>;
      }
    | undefined;
}

/** The samples of one count's rounds. */
interface Samples {
  readonly park: number[];
  readonly rawPark: number[];
  readonly unpark: number[];
  readonly rawUnpark: number[];
  readonly parkPhase: number[];
  readonly rssPark: number[];
  readonly rssRawPark: number[];
  readonly cpuPark: number[];
  readonly cpuRawPark: number[];
  readonly cpuUnpark: number[];
  readonly cpuRawUnpark: number[];
}

/** Tolerated ratio to the raw statements (issue #15, item 1). */
const WITHIN = 1.5;

/**
 * Parks and unparks `n` workflows through a DrainController's own hand-off (a last-member shutdown
 * on an in-process coordinator, so that the store is what is measured), against the backend's raw
 * set-based statements, interleaved round by round, at 100,000 and at a large count (1,000,000); then
 * checks that the retained heap during a park does not grow with the number of workflows (10,000
 * against the large count).
 */
export async function runParkSuite(
  context: SuiteContext,
  open: () => Promise<ParkBackend>,
  options: ParkSuiteOptions = {},
): Promise<SuiteBody> {
  const { quick, progress } = context;
  const { DrainController } = await core();
  const { MemoryBackend, MemoryCoordinator } = await memory();
  const size = quick ? 5_000 : 100_000;
  const rounds = quick ? 2 : 5;
  const largeSize = quick ? 20_000 : (options.largeSize ?? 1_000_000);
  const largeRounds = quick ? 1 : (options.largeRounds ?? 2);
  const inUseRounds = Math.min(quick ? 1 : Number.POSITIVE_INFINITY, options.inUseRounds ?? 0);
  const memorySizes = [quick ? 1_000 : 10_000, largeSize];
  const main = await open();
  // The backend the helpers below work on: `main`, but for the alternate's rounds.
  let backend = main;
  // One backend for every controller of the suite, so fencing tokens keep increasing across runs.
  const coordination = new MemoryBackend();
  const group = uniqueName('bench');
  const budgetMs = 600_000;

  const coordinators: { close(): Promise<void> }[] = [];
  const controller = (): InstanceType<typeof DrainController> => {
    const coordinator = new MemoryCoordinator({ backend: coordination });
    coordinators.push(coordinator);
    // The resume too gets the whole budget: at 1,000,000 workflows it runs past the default minute.
    return new DrainController({
      group,
      coordinator,
      store: backend.store,
      shutdownTimeoutMs: budgetMs,
      resumeTimeoutMs: budgetMs,
    });
  };

  /** A last-member shutdown: parks everything page by page. */
  const park = async (
    onBatch?: () => void,
  ): Promise<{ ms: number; cpuMs: number; report: ShutdownReport }> => {
    const drain = controller();
    await drain.start();
    await drain.whenResumed();
    if (onBatch !== undefined) drain.on('park', onBatch);
    const [t0, c0] = [performance.now(), cpuTime()];
    const report = await drain.shutdown();
    const [ms, cpuMs] = [performance.now() - t0, cpuTime() - c0];
    if (report.handOff !== 'parked') {
      throw new Error(`the hand-off did not park: ${report.handOff} (${String(report.errors[0]?.error)})`);
    }
    return { ms, cpuMs, report };
  };

  /** A start: resumes everything parked, in the background; timed until it is done. */
  const unpark = async (expected: number): Promise<{ ms: number; cpuMs: number }> => {
    const drain = controller();
    const [t0, c0] = [performance.now(), cpuTime()];
    await drain.start();
    const resumed = await drain.whenResumed();
    const [ms, cpuMs] = [performance.now() - t0, cpuTime() - c0];
    if (resumed === undefined || !resumed.complete || resumed.resumed !== expected) {
      throw new Error(
        `the resume did not finish: ${JSON.stringify(resumed, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`,
      );
    }
    // A peer stays in the group, so that this controller's shutdown does not park everything again.
    const other = new MemoryCoordinator({ backend: coordination });
    coordinators.push(other);
    const peer = await other.join(group, 'peer', { ttlMs: 60_000 });
    // Registered as running too: a peer that is not would look like one still starting, and the
    // shutdown would leave the record dirty for it (the next start would then recover everything).
    const self = { memberId: 'peer', incarnation: peer.incarnation };
    const unfenced = { memberId: 'peer', token: undefined };
    await backend.store.enterGeneration?.(group, self, unfenced);
    const report = await drain.shutdown();
    await backend.store.leaveGeneration?.(group, ['peer'], 'none', unfenced);
    await peer.leave();
    await Promise.all(coordinators.splice(0).map((c) => c.close()));
    if (report.handOff !== 'peers-remain') throw new Error(`unexpected hand-off: ${report.handOff}`);
    return { ms, cpuMs };
  };

  const expect = async (running: number, paused: number, after: string): Promise<void> => {
    const c = await backend.count();
    if (c.running !== running || c.paused !== paused) {
      throw new Error(
        `after ${after}: ${c.running} running and ${c.paused} paused, expected ${running} and ${paused}`,
      );
    }
  };

  const measure = async <T>(work: () => Promise<T>): Promise<Timed & { value: T }> => {
    heapUsed();
    const before = rss();
    const peak = new PeakMemory();
    const [t0, c0] = [performance.now(), cpuTime()];
    const value = await work();
    const [ms, cpuMs] = [performance.now() - t0, cpuTime() - c0];
    return { ms, cpuMs, rssGrowth: peak.stop().rss - before, value };
  };

  /** `count` rounds at `n`, store and raw in random order each, from a freshly reset table. */
  const runRounds = async (n: number, count: number): Promise<Samples> => {
    const samples: Samples = {
      park: [],
      rawPark: [],
      unpark: [],
      rawUnpark: [],
      parkPhase: [],
      rssPark: [],
      rssRawPark: [],
      cpuPark: [],
      cpuRawPark: [],
      cpuUnpark: [],
      cpuRawUnpark: [],
    };
    const at = n.toLocaleString('en-US');
    for (let round = 1; round <= count; round++) {
      for (const who of shuffle(['store', 'raw'] as const)) {
        const doing = `${at}, round ${round}/${count}: ${who === 'store' ? 'store' : 'raw SQL'}`;
        progress(`${doing}, resetting`);
        await backend.reset(n);
        progress(`${doing}, parking`);
        if (who === 'store') {
          const p = await measure(() => park());
          samples.park.push(p.value.ms);
          samples.cpuPark.push(p.value.cpuMs);
          samples.rssPark.push(p.rssGrowth);
          samples.parkPhase.push(
            p.value.report.phases.find((ph) => ph.name === 'park')?.durationMs ?? Number.NaN,
          );
          if (p.value.report.parked !== n) throw new Error(`parked ${p.value.report.parked} of ${n}`);
          await expect(0, n, 'parking');
          await backend.settle?.();
          progress(`${doing}, unparking`);
          // Through measure(), as the other three: each timing starts after full collections, so that
          // none pays for the garbage of the one before it.
          const u = (await measure(() => unpark(n))).value;
          samples.unpark.push(u.ms);
          samples.cpuUnpark.push(u.cpuMs);
        } else {
          const p = await measure(() => backend.rawPark());
          if (p.value !== n) throw new Error(`the raw park marked ${p.value} of ${n}`);
          samples.rawPark.push(p.ms);
          samples.cpuRawPark.push(p.cpuMs);
          samples.rssRawPark.push(p.rssGrowth);
          await expect(0, n, 'the raw park');
          await backend.settle?.();
          progress(`${doing}, unparking`);
          const u = await measure(() => backend.rawUnpark());
          if (u.value !== n) throw new Error(`the raw unpark resumed ${u.value} of ${n}`);
          samples.rawUnpark.push(u.ms);
          samples.cpuRawUnpark.push(u.cpuMs);
        }
        await expect(n, 0, 'unparking');
      }
    }
    return samples;
  };

  try {
    // A warm-up of both contenders, untimed: connections, statement caches, the JIT.
    const warm = Math.min(size, 2_000);
    await backend.reset(warm);
    await park();
    await unpark(warm);
    await backend.reset(warm);
    await backend.rawPark();
    await backend.rawUnpark();

    const samples = await runRounds(size, rounds);
    const large = await runRounds(largeSize, largeRounds);

    // For information: a park and its resume round after round on one table, as a worker's table is used
    // (no refill in between). The first round starts from the fresh fill and is not counted; every
    // operation starts after settle(), as a new process finds the database.
    const inUse = { park: [] as number[], unpark: [] as number[] };
    if (inUseRounds > 0) {
      await backend.reset(size);
      for (let round = 0; round <= inUseRounds; round++) {
        const doing = `${size.toLocaleString('en-US')} on one table, round ${round}/${inUseRounds}`;
        progress(`${doing}: parking`);
        if (round > 0) await backend.settle?.();
        const p = (await measure(() => park())).value;
        if (p.report.parked !== size) throw new Error(`parked ${p.report.parked} of ${size}`);
        await backend.settle?.();
        progress(`${doing}: unparking`);
        const u = (await measure(() => unpark(size))).value;
        await expect(size, 0, 'unparking');
        if (round === 0) continue;
        inUse.park.push(p.ms);
        inUse.unpark.push(u.ms);
      }
    }

    // For information: the same rounds on the alternate's tables.
    let alternate: { title: string; description: string; samples: Samples } | undefined;
    if (options.alternate !== undefined) {
      const { title, description, rounds, open: openAlternate } = options.alternate;
      backend = await openAlternate();
      try {
        const name = backend.name;
        await backend.reset(warm);
        await park();
        await unpark(warm);
        const samples = await runRounds(size, quick ? 1 : rounds);
        const count = size.toLocaleString('en-US');
        alternate = {
          title: `${name}: ${count} workflows, ${title} (for information)`,
          description,
          samples,
        };
      } finally {
        await Promise.all(coordinators.splice(0).map((c) => c.close()));
        await backend.close();
        backend = main;
      }
    }

    // Retained heap while parking, sampled after forced collections every few batches (untimed).
    const retained: { n: number; growth: number; rssGrowth: number }[] = [];
    for (const n of memorySizes) {
      progress(`memory while parking ${n.toLocaleString('en-US')}`);
      await backend.reset(n);
      const base = heapUsed();
      const rssBase = rss();
      let batches = 0;
      let highest = base;
      const peak = new PeakMemory();
      await park(() => {
        if (batches++ % 10 === 0) highest = Math.max(highest, heapUsed());
      });
      highest = Math.max(highest, heapUsed());
      retained.push({ n, growth: highest - base, rssGrowth: peak.stop().rss - rssBase });
      await unpark(n);
    }

    const s = (xs: number[]) => summarize(xs);
    const [small, largest] = retained as [(typeof retained)[0], (typeof retained)[0]];
    const flat = largest.growth <= small.growth + 1024 ** 2;
    const n = size.toLocaleString('en-US');
    const big = largeSize.toLocaleString('en-US');
    /** The ratio checks of one count. */
    const ratioChecks = (count: string, x: Samples): Check[] => {
      const parkRatio = s(ratios(x.park, x.rawPark));
      const unparkRatio = s(ratios(x.unpark, x.rawUnpark));
      return [
        {
          target: `park ${count} running workflows within ${WITHIN}x of one raw set-based UPDATE plus marks (${backend.name})`,
          measured: `${iqr(s(x.park), duration)} vs ${iqr(s(x.rawPark), duration)}: ${iqr(parkRatio, times)}`,
          status: status(parkRatio.median <= WITHIN),
        },
        {
          target: `unpark ${count} within ${WITHIN}x of the raw statements (${backend.name})`,
          measured: `${iqr(s(x.unpark), duration)} vs ${iqr(s(x.rawUnpark), duration)}: ${iqr(unparkRatio, times)}`,
          status: status(unparkRatio.median <= WITHIN),
        },
      ];
    };
    const resumeVsPark = s(ratios(samples.unpark, samples.park));
    const checks: Check[] = [
      ...ratioChecks(n, samples),
      {
        target: `resume ${n} as fast as park (${backend.name})`,
        measured: `unpark ${iqr(s(samples.unpark), duration)} vs park ${iqr(s(samples.park), duration)}: ${iqr(resumeVsPark, times)}`,
        status: status(resumeVsPark.median <= 1),
      },
      ...ratioChecks(big, large),
      {
        target: `memory flat while parking (${backend.name}): retained heap does not grow with the workflow count, ${small.n.toLocaleString('en-US')} to ${big}`,
        measured: `${bytes(small.growth)} at ${small.n.toLocaleString('en-US')}, ${bytes(largest.growth)} at ${big}`,
        status: status(flat),
      },
    ];
    /** The table of one count's rounds. */
    const table = (count: string, x: Samples, title = `${backend.name}: ${count} workflows`) => ({
      title,
      columns: ['Operation', 'graceful-drain', 'raw SQL (baseline)', 'ratio'],
      rows: [
        [
          'park',
          iqr(s(x.park), duration),
          iqr(s(x.rawPark), duration),
          iqr(s(ratios(x.park, x.rawPark)), times),
        ],
        [
          'unpark',
          iqr(s(x.unpark), duration),
          iqr(s(x.rawUnpark), duration),
          iqr(s(ratios(x.unpark, x.rawUnpark)), times),
        ],
        [
          'unpark over park (the time of a resume over the time of its park)',
          iqr(s(ratios(x.unpark, x.park)), times),
          iqr(s(ratios(x.rawUnpark, x.rawPark)), times),
          '',
        ],
        ["park: the report's `park` phase alone", iqr(s(x.parkPhase), duration), '', ''],
        ...(backend.inProcess === true
          ? [
              [
                'park: CPU time of this process',
                iqr(s(x.cpuPark), duration),
                iqr(s(x.cpuRawPark), duration),
                iqr(s(ratios(x.cpuPark, x.cpuRawPark)), times),
              ],
              [
                'unpark: CPU time of this process',
                iqr(s(x.cpuUnpark), duration),
                iqr(s(x.cpuRawUnpark), duration),
                iqr(s(ratios(x.cpuUnpark, x.cpuRawUnpark)), times),
              ],
            ]
          : []),
        ['RSS growth while parking', iqr(s(x.rssPark), bytes), iqr(s(x.rssRawPark), bytes), ''],
      ],
    });
    return {
      method:
        `${n} running workflows in a host table; ${rounds} rounds, each parking and unparking them once ` +
        `through graceful-drain and once with raw SQL, in random order, from a freshly reset table; the ` +
        `same at ${big} in ${largeRounds} round${largeRounds === 1 ? '' : 's'}. ` +
        `Park: a DrainController's last-member shutdown (\`shutdown()\` to its report), which parks page ` +
        `by page (the store's \`parkPage()\`: a page listed and parked in one transaction; default ` +
        `\`batchSize\` 2,000) under the start-stop lock of an in-process MemoryCoordinator, so that the ` +
        `store is what is measured. Unpark: a new controller's \`start()\` until \`whenResumed()\` ` +
        `resolves (\`unparkPage()\`, page by page). ${backend.description} ` +
        (inUseRounds > 0
          ? `For information, without a target: ${n} workflows parked and resumed ${inUseRounds} ` +
            `round${inUseRounds === 1 ? '' : 's'} on one table with no refill in between, as a worker's ` +
            `table is used (after a first round from the fresh fill, not counted), each operation after ` +
            `the same settling as the unpark of the main rounds. `
          : '') +
        (alternate === undefined
          ? ''
          : `For information, without a target: the ${n} rounds again (${alternate.samples.park.length} ` +
            `of them) on ${alternate.description}. `) +
        `Figures: median [interquartile range] over rounds; ratios are taken round by round.` +
        (backend.inProcess === true
          ? ' With the database in this process, its CPU time (user and system) is shown too: the ' +
            'targets are on elapsed time, which other processes on a busy machine inflate more.'
          : ''),
      tables: [
        table(n, samples),
        ...(inUse.park.length === 0
          ? []
          : [
              {
                title: `${backend.name}: ${n} workflows parked and resumed round after round on one table (for information)`,
                columns: ['Operation', 'graceful-drain', 'ratio to the park'],
                rows: [
                  ['park', iqr(s(inUse.park), duration), ''],
                  [
                    'unpark (resume)',
                    iqr(s(inUse.unpark), duration),
                    iqr(s(ratios(inUse.unpark, inUse.park)), times),
                  ],
                ],
              },
            ]),
        ...(alternate === undefined ? [] : [table(n, alternate.samples, alternate.title)]),
        table(big, large),
        {
          title: `${backend.name}: retained heap while parking (sampled after full collections every 10 batches)`,
          columns: ['Workflows', 'Retained heap growth, highest', 'RSS growth, peak'],
          rows: retained.map((r) => [r.n.toLocaleString('en-US'), bytes(r.growth), bytes(r.rssGrowth)]),
        },
      ],
      checks,
      notes: [],
    };
  } finally {
    await Promise.all(coordinators.map((c) => c.close()));
    await main.close();
  }
}
