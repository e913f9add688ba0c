import { shuffle } from './stats.js';

/** A contender in a throughput comparison: `run(ops)` does `ops` operations. */
export interface ThroughputVariant {
  readonly name: string;
  run(ops: number): Promise<void>;
}

export interface ThroughputOptions {
  /** Operations per timed sample. */
  readonly ops: number;
  /** Timed rounds; each round times every variant once, in a fresh random order. */
  readonly rounds: number;
  /** Untimed rounds first, so the JIT has settled before anything counts. */
  readonly warmup: number;
  readonly onRound?: (round: number, of: number) => void;
}

/**
 * Times variants interleaved: every round runs each variant once, in shuffled order, so that noise on
 * a shared machine (another process, a frequency change) hits all of them alike. Returns, per
 * variant, one nanoseconds-per-operation sample per round; rounds line up across variants, so
 * ratios can be taken round by round.
 */
export async function interleaveThroughput(
  variants: readonly ThroughputVariant[],
  options: ThroughputOptions,
): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const total = options.warmup + options.rounds;
  for (let round = 0; round < total; round++) {
    for (const variant of shuffle([...variants])) {
      const t0 = performance.now();
      await variant.run(options.ops);
      const ns = ((performance.now() - t0) * 1e6) / options.ops;
      if (round >= options.warmup) samples.get(variant.name)?.push(ns);
    }
    options.onRound?.(round + 1, total);
  }
  return samples;
}

/** A contender in a latency comparison: `once()` does one operation, timed on its own. */
export interface LatencyVariant {
  readonly name: string;
  /**
   * One operation. Returns its latency in milliseconds when it times itself (to leave set-up out),
   * or nothing to have the whole call timed.
   */
  once(): Promise<number | void>;
}

export interface LatencyOptions {
  /** Timed iterations; each runs every variant once, in a fresh random order. */
  readonly iterations: number;
  /** Untimed iterations first. */
  readonly warmup: number;
  readonly onProgress?: (iteration: number, of: number) => void;
}

/**
 * Times single operations interleaved: each iteration runs every variant once in shuffled order.
 * Returns every latency, in milliseconds, per variant; index `i` of each array is iteration `i`.
 */
export async function interleaveLatency(
  variants: readonly LatencyVariant[],
  options: LatencyOptions,
): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const total = options.warmup + options.iterations;
  const every = Math.max(1, Math.floor(total / 20));
  for (let i = 0; i < total; i++) {
    for (const variant of shuffle([...variants])) {
      const t0 = performance.now();
      const self = await variant.once();
      const ms = typeof self === 'number' ? self : performance.now() - t0;
      if (i >= options.warmup) samples.get(variant.name)?.push(ms);
    }
    if ((i + 1) % every === 0 || i + 1 === total) options.onProgress?.(i + 1, total);
  }
  return samples;
}

/** Splits `values` into `blocks` consecutive blocks of (nearly) equal size. */
export function blocksOf(values: readonly number[], blocks: number): number[][] {
  const out: number[][] = [];
  const size = Math.max(1, Math.floor(values.length / blocks));
  for (let i = 0; i + size <= values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}
