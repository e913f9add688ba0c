import { iqr, times } from '../lib/format.js';
import { interleaveThroughput, type ThroughputVariant } from '../lib/interleave.js';
import { trackContenders } from '../lib/library.js';
import { trackPeers } from '../lib/track-peers.js';
import { status, type Check, type Suite } from '../lib/result.js';
import { ratios, summarize } from '../lib/stats.js';

const BURST = 1_000;

/** The trivial async function every contender runs. */
const task = async (): Promise<number> => 1;

let sink = 0;

export const suite: Suite = {
  async run({ quick, progress }) {
    const { drain, limit, label } = await trackContenders();
    const { queue, beacon, settle, close } = await trackPeers();

    // One loop per contender, written out, so each call site stays monomorphic as in real code
    // (a shared loop taking the contender as an argument would be polymorphic and slow every one).
    const variants: ThroughputVariant[] = [
      {
        name: 'seq bare',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) sink += await task();
        },
      },
      {
        name: 'seq track',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) sink += await drain.track(task);
        },
      },
      {
        name: 'seq track labeled',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) sink += await drain.track(task, label);
        },
      },
      {
        name: 'seq p-limit',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) sink += await limit(task);
        },
      },
      {
        name: 'seq p-queue',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) sink += await queue(task);
        },
      },
      {
        name: 'seq lightship',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) sink += await beacon(task);
          await settle();
        },
      },
      {
        name: 'burst bare',
        run: async (ops) => {
          const batch = new Array<Promise<number>>(BURST);
          for (let done = 0; done < ops; done += BURST) {
            for (let i = 0; i < BURST; i++) batch[i] = task();
            for (const value of await Promise.all(batch)) sink += value;
          }
        },
      },
      {
        name: 'burst track',
        run: async (ops) => {
          const batch = new Array<Promise<number>>(BURST);
          for (let done = 0; done < ops; done += BURST) {
            for (let i = 0; i < BURST; i++) batch[i] = drain.track(task);
            for (const value of await Promise.all(batch)) sink += value;
          }
        },
      },
      {
        name: 'burst track labeled',
        run: async (ops) => {
          const batch = new Array<Promise<number>>(BURST);
          for (let done = 0; done < ops; done += BURST) {
            for (let i = 0; i < BURST; i++) batch[i] = drain.track(task, label);
            for (const value of await Promise.all(batch)) sink += value;
          }
        },
      },
      {
        name: 'burst p-limit',
        run: async (ops) => {
          const batch = new Array<Promise<number>>(BURST);
          for (let done = 0; done < ops; done += BURST) {
            for (let i = 0; i < BURST; i++) batch[i] = limit(task);
            for (const value of await Promise.all(batch)) sink += value;
          }
        },
      },
      {
        name: 'burst p-queue',
        run: async (ops) => {
          const batch = new Array<Promise<number>>(BURST);
          for (let done = 0; done < ops; done += BURST) {
            for (let i = 0; i < BURST; i++) batch[i] = queue(task);
            for (const value of await Promise.all(batch)) sink += value;
          }
        },
      },
      {
        name: 'burst lightship',
        run: async (ops) => {
          const batch = new Array<Promise<number>>(BURST);
          for (let done = 0; done < ops; done += BURST) {
            for (let i = 0; i < BURST; i++) batch[i] = beacon(task);
            for (const value of await Promise.all(batch)) sink += value;
          }
          await settle();
        },
      },
    ];
    const ops = quick ? 20_000 : 100_000;
    const rounds = quick ? 5 : 25;
    const warmup = quick ? 2 : 4;
    const samples = await interleaveThroughput(variants, {
      ops,
      rounds,
      warmup,
      onRound: (r, of) => progress(`round ${r}/${of}`),
    });
    await drain.shutdown();
    await close();
    if (sink !== ops * (rounds + warmup) * variants.length) throw new Error('not every task ran');

    const get = (name: string): number[] => samples.get(name) ?? [];
    const rows: string[][] = [];
    const checks: Check[] = [];
    for (const mode of ['seq', 'burst'] as const) {
      const bare = get(`${mode} bare`);
      const track = get(`${mode} track`);
      const shape = mode === 'seq' ? 'one at a time' : `bursts of ${BURST.toLocaleString('en-US')}`;
      const row = (name: string, contender: string): string[] => {
        const samples = get(`${mode} ${contender}`);
        return [
          shape,
          name,
          iqr(summarize(samples)),
          contender === 'bare' ? '1x' : iqr(summarize(ratios(samples, bare)), times),
          contender === 'bare' ? '' : iqr(summarize(ratios(samples, track)), times),
        ];
      };
      rows.push(
        row('bare call (baseline)', 'bare'),
        row('track(fn)', 'track'),
        row('track(fn, { label })', 'track labeled'),
        row('p-limit(Infinity)', 'p-limit'),
        row('p-queue (concurrency Infinity)', 'p-queue'),
        row('lightship beacon', 'lightship'),
      );
      const vsBare = summarize(ratios(track, bare));
      const labeledVsBare = summarize(ratios(get(`${mode} track labeled`), bare));
      const pLimitVsTrack = summarize(ratios(get(`${mode} p-limit`), track));
      checks.push(
        {
          target: `track within 2.5x of a bare call (${shape})`,
          measured: `${iqr(vsBare, times)} of bare`,
          status: status(vsBare.median <= 2.5),
        },
        {
          target: `track(fn, { label }) within 2.5x of a bare call (${shape})`,
          measured: `${iqr(labeledVsBare, times)} of bare`,
          status: status(labeledVsBare.median <= 2.5),
        },
        {
          target: `track at least 5x faster than p-limit(Infinity) (${shape})`,
          measured: `p-limit takes ${iqr(pLimitVsTrack, times)} track's time`,
          status: status(pLimitVsTrack.median >= 5),
        },
      );
    }
    return {
      method:
        `A trivial \`async () => 1\` called bare; through \`drain.track()\` on a running DrainController, ` +
        `without and with a label; and through the peers: \`pLimit(Infinity)\` (p-limit 7), ` +
        `\`queue.add()\` on a \`new PQueue({ concurrency: Infinity })\` (p-queue 9), and a lightship 9 ` +
        `beacon (\`createBeacon()\` before the call, \`die()\` when it settles, not awaited; lightship ` +
        `configured for beacons only: no signal handlers, no shutdown delay, its probe server on an ` +
        `ephemeral port and closed at the end). \`die()\` resolves on a 0 ms timer: each lightship sample ` +
        `ends by waiting 1 ms so that those timers run inside it (1 ms is under 1% of such a sample). Two shapes: one call at a time, each awaited; and ` +
        `bursts of ${BURST.toLocaleString('en-US')} calls in flight, awaited with \`Promise.all\`. ` +
        `Each sample is ${ops.toLocaleString('en-US')} calls; ${rounds} rounds after ${warmup} warm-up ` +
        `rounds; every round runs all contenders in a fresh random order, and ratios are taken round by ` +
        `round, so noise on the machine hits subject and baseline alike. Figures: median [interquartile range] ` +
        `over rounds; "vs track(fn)" is the same round-by-round ratio to the unlabelled \`track()\`.`,
      tables: [
        {
          title: 'Time per call (ns) and ratio to the bare call',
          columns: ['Shape', 'Contender', 'ns per call', 'vs bare', 'vs track(fn)'],
          rows,
        },
      ],
      checks,
      notes: [],
    };
  },
};
