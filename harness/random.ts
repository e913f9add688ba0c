/** Seeded randomness, so that `--seed` replays the same choices. */

/** A random number generator: floats in [0, 1). */
export type Random = () => number;

/** mulberry32: small, fast, and good enough to pick workflows and jitter sleeps. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent seed for a part of the run (a worker, a phase) from the run's seed. */
export function deriveSeed(seed: number, ...parts: (string | number)[]): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (const c of parts.join('/')) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A uniform number in [min, max). */
export function uniform(random: Random, min: number, max: number): number {
  return min + (max - min) * random();
}

/** Shuffles `items` in place (Fisher-Yates) and returns them. */
export function shuffle<T>(items: T[], random: Random = Math.random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** `count` distinct items of `items`, chosen with `random`, in their original order. */
export function sample<T>(items: readonly T[], count: number, random: Random): T[] {
  return shuffle(
    items.map((_, i) => i),
    random,
  )
    .slice(0, count)
    .sort((a, b) => a - b)
    .map((i) => items[i] as T);
}
