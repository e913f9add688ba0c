import { duration, iqr, times } from '../lib/format.js';
import { core, memory } from '../lib/library.js';
import { openPostgresTables } from '../lib/postgres-tables.js';
import { status, type Suite, type SuiteBody, type SuiteContext } from '../lib/result.js';
import { ratios, summarize } from '../lib/stats.js';
import { shuffle } from '../../harness/random.js';
import { uniqueName } from '../../harness/servers.js';

/**
 * Crash recovery on PostgreSQL: a group whose last member died with `n` workflows running (its entry
 * left in the generation record, its membership gone), then one start: from `start()` until
 * `whenResumed()` reports every workflow resumed (the start gate recovers them by parking, the
 * background resume unparks them). Baseline: the raw set-based park plus unpark of the same rows. At
 * 10,000 (issue #13) and 100,000 (issue #15) workflows.
 */
async function run(context: SuiteContext): Promise<SuiteBody> {
  const { quick, progress } = context;
  const { DrainController } = await core();
  const { MemoryBackend, MemoryCoordinator } = await memory();
  /** Each size with its rounds. */
  const sizes: readonly (readonly [number, number])[] = quick
    ? [[2_000, 2]]
    : [
        [10_000, 5],
        [100_000, 3],
      ];
  const t = await openPostgresTables();
  const store = t.store;
  const coordination = new MemoryBackend();
  const group = uniqueName('bench-recovery');
  const coordinators: { close(): Promise<void> }[] = [];
  const dead = { memberId: 'dead-member', incarnation: 'dead-incarnation' };
  const unfenced = { memberId: 'bench', token: undefined };

  /** `n` running workflows, and a dead member registered as running them. */
  const crashed = async (n: number): Promise<void> => {
    await t.reset(n);
    // A clean end resets the recovery counts and removes whoever is registered.
    const record = await store.readGeneration(group);
    const ids = record.members.map((m) => m.memberId);
    await store.leaveGeneration(group, ids, 'clean', unfenced);
    await store.enterGeneration(group, dead, unfenced);
  };

  /** One start after the crash, timed until the resume reports every workflow resumed. */
  const recover = async (n: number): Promise<number> => {
    const coordinator = new MemoryCoordinator({ backend: coordination });
    coordinators.push(coordinator);
    const drain = new DrainController({ group, coordinator, store, shutdownTimeoutMs: 600_000 });
    const t0 = performance.now();
    await drain.start();
    const report = await drain.whenResumed();
    const ms = performance.now() - t0;
    const recovered = report?.recovery?.recovered;
    if (report === undefined || !report.complete || report.resumed !== n || recovered !== n) {
      throw new Error(`the recovery did not finish: ${JSON.stringify(report ?? null)}`);
    }
    // A peer stays, so this controller's shutdown parks nothing.
    const peer = await new MemoryCoordinator({ backend: coordination }).join(group, 'peer', {
      ttlMs: 60_000,
    });
    await store.enterGeneration(group, { memberId: 'peer', incarnation: peer.incarnation }, unfenced);
    await drain.shutdown();
    await store.leaveGeneration(group, ['peer'], 'none', unfenced);
    await peer.leave();
    await Promise.all(coordinators.splice(0).map((c) => c.close()));
    return ms;
  };

  /** `rounds` rounds at `size`, the store and the raw statements in random order each round. */
  const measure = async (size: number, rounds: number) => {
    const samples = { recovery: [] as number[], raw: [] as number[] };
    for (let round = 1; round <= rounds; round++) {
      for (const who of shuffle(['store', 'raw'] as const)) {
        progress(`round ${round}/${rounds}: ${who}, ${size.toLocaleString('en-US')} orphans`);
        await crashed(size);
        if (who === 'store') samples.recovery.push(await recover(size));
        else {
          const t0 = performance.now();
          await t.pool.query(t.rawPark);
          await t.pool.query(t.rawUnpark);
          samples.raw.push(performance.now() - t0);
        }
      }
    }
    return {
      size,
      recovery: summarize(samples.recovery),
      raw: summarize(samples.raw),
      ratio: summarize(ratios(samples.recovery, samples.raw)),
    };
  };

  try {
    await crashed(1_000);
    await recover(1_000);
    const results = [];
    for (const [size, rounds] of sizes) results.push(await measure(size, rounds));
    const en = (n: number): string => n.toLocaleString('en-US');
    const plan = sizes.map(([size, rounds]) => `${rounds} rounds at ${en(size)}`).join(', ');
    return {
      method:
        `Running workflows left by a member that died (registered in the group's generation record, its ` +
        `membership gone); ${plan}, each round recovering them once through graceful-drain and once with ` +
        `raw SQL, in random order, from a freshly reset table. graceful-drain: a new controller's ` +
        `\`start()\` (the start gate recovers them with policy \`resume\`, parking them batch by batch under ` +
        `the start-stop lock of an in-process MemoryCoordinator) until \`whenResumed()\` reports them all ` +
        `resumed (the background resume unparks them page by page through \`unparkPage()\`). Raw: the park suite's set-based park statement, then its unpark statement.`,
      tables: [
        {
          title: `PostgreSQL ${t.version}: recovering orphans`,
          columns: ['Orphans', 'graceful-drain', 'raw park + unpark (baseline)', 'ratio'],
          rows: results.map((r) => [
            en(r.size),
            iqr(r.recovery, duration),
            iqr(r.raw, duration),
            iqr(r.ratio, times),
          ]),
        },
      ],
      checks: results.flatMap((r) => [
        {
          target: `recover ${en(r.size)} orphans within 2x of a raw set-based park plus unpark (PostgreSQL)`,
          measured: `${iqr(r.recovery, duration)} vs ${iqr(r.raw, duration)}: ${iqr(r.ratio, times)}`,
          status: status(r.ratio.median <= 2),
        },
        // Issue #13's bound, at its size (and at the quick run's).
        ...(r.size > 10_000
          ? []
          : [
              {
                target: `recover ${en(r.size)} orphans in under one second from the start`,
                measured: iqr(r.recovery, duration),
                status: status(r.recovery.median < 1_000),
              },
            ]),
      ]),
      notes: [],
    };
  } finally {
    await Promise.all(coordinators.map((c) => c.close()));
    await t.close();
  }
}

export const suite: Suite = { run };
