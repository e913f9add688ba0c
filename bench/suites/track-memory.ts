import { bytes, iqr, num } from '../lib/format.js';
import { heapUsed } from '../lib/heap.js';
import { trackContenders } from '../lib/library.js';
import { trackPeers } from '../lib/track-peers.js';
import { status, type Suite } from '../lib/result.js';
import { summarize } from '../lib/stats.js';
import { shuffle } from '../../harness/random.js';

const IN_FLIGHT = 10_000;

type Mode = 'nothing' | 'bare' | 'track' | 'track labeled' | 'p-limit' | 'p-queue' | 'lightship';

export const suite: Suite = {
  async run({ quick, progress }) {
    const { drain, limit, label } = await trackContenders();
    const { queue, beacon, settle, close } = await trackPeers();
    const modes: Mode[] = ['nothing', 'bare', 'track', 'track labeled', 'p-limit', 'p-queue', 'lightship'];
    const perTask = new Map<Mode, number[]>(modes.map((m) => [m, []]));
    const rounds = quick ? 2 : 15;
    const warmup = 1;

    for (let round = 0; round < warmup + rounds; round++) {
      for (const mode of shuffle([...modes])) {
        let open!: () => void;
        const gate = new Promise<void>((resolve) => (open = resolve));
        // A trivial async function that stays in flight until the gate opens.
        let started = 0;
        const task = async (): Promise<number> => {
          started++;
          await gate;
          return 1;
        };
        const held = new Array<Promise<number>>(IN_FLIGHT);
        const before = heapUsed();
        for (let i = 0; i < IN_FLIGHT; i++) {
          if (mode === 'bare') held[i] = task();
          else if (mode === 'track') held[i] = drain.track(task);
          else if (mode === 'track labeled') held[i] = drain.track(task, label);
          else if (mode === 'p-limit') held[i] = limit(task);
          else if (mode === 'p-queue') held[i] = queue(task);
          else if (mode === 'lightship') held[i] = beacon(task);
        }
        // p-limit starts its tasks a microtask later: measure once every task is running.
        const expected = mode === 'nothing' ? 0 : IN_FLIGHT;
        for (let turn = 0; turn < 10 && started < expected; turn++) await Promise.resolve();
        if (started !== expected) throw new Error(`${mode}: ${started} of ${expected} tasks started`);
        const after = heapUsed();
        if (round >= warmup) perTask.get(mode)?.push((after - before) / IN_FLIGHT);
        open();
        await Promise.all(mode === 'nothing' ? [] : held);
        if (mode === 'lightship') await settle(); // the timers of the beacons' die()
      }
      progress(`round ${round + 1}/${warmup + rounds}`);
    }
    await drain.shutdown();
    await close();

    // Round by round, so that each difference is taken between measurements minutes apart at most.
    const of = (mode: Mode): number[] => perTask.get(mode) ?? [];
    const nothing = of('nothing');
    const net = (mode: Mode): number[] => of(mode).map((v, i) => v - (nothing[i] ?? 0));
    const bare = net('bare');
    const overhead = (mode: Mode): number[] => net(mode).map((v, i) => v - (bare[i] ?? 0));
    const row = (name: string, mode: Mode): string[] => [
      name,
      iqr(summarize(net(mode)), bytes),
      mode === 'bare' ? '(baseline)' : iqr(summarize(overhead(mode)), bytes),
    ];
    const trackOverhead = summarize(overhead('track'));
    const trackTotal = summarize(net('track'));
    const labeledOverhead = summarize(overhead('track labeled'));
    const labeledTotal = summarize(net('track labeled'));
    return {
      method:
        `${IN_FLIGHT.toLocaleString('en-US')} calls of a trivial async function (\`async () => { await ` +
        `gate; return 1 }\`) held in flight, their promises kept in a preallocated array; the used heap ` +
        `is read after two forced full collections (\`--expose-gc\`) before and after starting them. ` +
        `Contenders: \`drain.track()\` without and with a label (one label shared by every task), ` +
        `\`pLimit(Infinity)\`, p-queue's \`add()\` at concurrency Infinity, and a lightship beacon per task ` +
        `(as in the overhead suite); the heap is read once every task has started. ` +
        `Baseline: the same function called bare, measured in the same round; each round runs every ` +
        `contender in a fresh random order, and a control round with nothing started is subtracted. ` +
        `${rounds} rounds after ${warmup} warm-up round; figures are median [interquartile range] per task.`,
      tables: [
        {
          title: `Heap per task with ${IN_FLIGHT.toLocaleString('en-US')} in flight`,
          columns: ['Contender', 'Total per task', 'Overhead over the bare call'],
          rows: [
            row('bare call (baseline)', 'bare'),
            row('track(fn)', 'track'),
            row('track(fn, { label })', 'track labeled'),
            row('p-limit(Infinity)', 'p-limit'),
            row('p-queue (concurrency Infinity)', 'p-queue'),
            row('lightship beacon', 'lightship'),
            ['nothing started (control)', iqr(summarize(nothing), bytes), ''],
          ],
        },
      ],
      checks: [
        {
          target: `track's memory per in-flight task under 300 B (${num(IN_FLIGHT)} in flight)`,
          measured: `${iqr(trackOverhead, bytes)} over the bare call; ${iqr(trackTotal, bytes)} in total`,
          status: status(trackOverhead.median < 300),
        },
        {
          target: `track(fn, { label })'s memory per in-flight task under 300 B (${num(IN_FLIGHT)} in flight)`,
          measured: `${iqr(labeledOverhead, bytes)} over the bare call; ${iqr(labeledTotal, bytes)} in total`,
          status: status(labeledOverhead.median < 300),
        },
      ],
      notes: [
        `The total includes what the bare call itself holds (the async function's suspended frame and ` +
          `its promise: ${bytes(summarize(bare).median)} here), which any way of running the task pays; ` +
          `the target is judged on track's own overhead.`,
      ],
    };
  },
};
