import { shuffle } from '../../harness/random.js';

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
 * Runs `rounds` after `warmup` untimed ones; each round measures every variant once (`measure`), in a
 * fresh random order, so that noise on a shared machine (another process, a frequency change) hits all
 * of them alike. Returns one sample per variant per timed round: rounds line up across variants, so
 * ratios can be taken round by round.
 */
async function interleave<V extends { readonly name: string }>(
  variants: readonly V[],
  warmup: number,
  rounds: number,
  measure: (variant: V) => Promise<number>,
  onRound?: (round: number, of: number) => void,
): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const total = warmup + rounds;
  for (let round = 0; round < total; round++) {
    for (const variant of shuffle([...variants])) {
      const value = await measure(variant);
      if (round >= warmup) samples.get(variant.name)?.push(value);
    }
    onRound?.(round + 1, total);
  }
  return samples;
}

/** Times variants interleaved (see {@link interleave}): nanoseconds per operation, one per round. */
export function interleaveThroughput(
  variants: readonly ThroughputVariant[],
  { ops, rounds, warmup, onRound }: ThroughputOptions,
): Promise<Map<string, number[]>> {
  const perOp = async (variant: ThroughputVariant): Promise<number> => {
    const t0 = performance.now();
    await variant.run(ops);
    return ((performance.now() - t0) * 1e6) / ops;
  };
  return interleave(variants, warmup, rounds, perOp, onRound);
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
 * Times single operations interleaved (see {@link interleave}): every latency, in milliseconds, per
 * variant; index `i` of each array is iteration `i`.
 */
export function interleaveLatency(
  variants: readonly LatencyVariant[],
  { iterations, warmup, onProgress }: LatencyOptions,
): Promise<Map<string, number[]>> {
  const every = Math.max(1, Math.floor((warmup + iterations) / 20));
  return interleave(variants, warmup, iterations, latency, (i, of) => {
    if (i % every === 0 || i === of) onProgress?.(i, of);
  });
}

/** One operation's latency in milliseconds: as the variant timed it, or the whole call. */
async function latency(variant: LatencyVariant): Promise<number> {
  const t0 = performance.now();
  const self = await variant.once();
  return typeof self === 'number' ? self : performance.now() - t0;
}

/** Splits `values` into `blocks` consecutive blocks of (nearly) equal size. */
export function blocksOf(values: readonly number[], blocks: number): number[][] {
  const out: number[][] = [];
  const size = Math.max(1, Math.floor(values.length / blocks));
  for (let i = 0; i + size <= values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}
