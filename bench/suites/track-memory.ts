import { bytes, iqr, num } from '../lib/format.js';
import { heapUsed } from '../lib/heap.js';
import { trackContenders } from '../lib/library.js';
import { status, type Suite } from '../lib/result.js';
import { summarize } from '../lib/stats.js';
import { shuffle } from '../../harness/random.js';

const IN_FLIGHT = 10_000;

type Mode = 'nothing' | 'bare' | 'track' | 'track labeled' | 'p-limit';

export const suite: Suite = {
  async run({ quick, progress }) {
    const { drain, limit, label } = await trackContenders();
    const modes: Mode[] = ['nothing', 'bare', 'track', 'track labeled', 'p-limit'];
    const perTask = new Map<Mode, number[]>(modes.map((m) => [m, []]));
    const rounds = quick ? 3 : 15;
    const warmup = 1;

    for (let round = 0; round < warmup + rounds; round++) {
      for (const mode of shuffle([...modes])) {
        let open!: () => void;
        const gate = new Promise<void>((resolve) => (open = resolve));
        // A trivial async function that stays in flight until the gate opens.
        const task = async (): Promise<number> => {
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
        }
        if (mode === 'p-limit') await Promise.resolve(); // p-limit starts its tasks a microtask later
        const after = heapUsed();
        if (round >= warmup) perTask.get(mode)?.push((after - before) / IN_FLIGHT);
        open();
        await Promise.all(mode === 'nothing' ? [] : held);
      }
      progress(`round ${round + 1}/${warmup + rounds}`);
    }
    await drain.shutdown();

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
    return {
      method:
        `${IN_FLIGHT.toLocaleString('en-US')} calls of a trivial async function (\`async () => { await ` +
        `gate; return 1 }\`) held in flight, their promises kept in a preallocated array; the used heap ` +
        `is read after two forced full collections (\`--expose-gc\`) before and after starting them. ` +
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
      ],
      notes: [
        `The total includes what the bare call itself holds (the async function's suspended frame and ` +
          `its promise: ${bytes(summarize(bare).median)} here), which any way of running the task pays; ` +
          `the target is judged on track's own overhead.`,
      ],
    };
  },
};
