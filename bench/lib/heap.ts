/** Heap measurements; they need `--expose-gc`, which main.ts gives every suite process. */

type Gc = () => void;

function gcFunction(): Gc {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (gc === undefined) throw new Error('Run with --expose-gc (bench/main.ts does so for every suite)');
  return gc;
}

/** The used heap after full collections: what is still reachable. */
export function heapUsed(): number {
  const gc = gcFunction();
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Resident set size, in bytes. */
export function rss(): number {
  return process.memoryUsage.rss();
}

/**
 * Samples RSS and the used heap (without forcing collections) every `intervalMs` until stopped, keeping
 * the peaks: how much memory a long operation needs at most.
 */
export class PeakMemory {
  #rss = rss();
  #heap = process.memoryUsage().heapUsed;
  readonly #timer: NodeJS.Timeout;

  constructor(intervalMs = 20) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    const usage = process.memoryUsage();
    this.#rss = Math.max(this.#rss, usage.rss);
    this.#heap = Math.max(this.#heap, usage.heapUsed);
  }

  stop(): { readonly rss: number; readonly heapUsed: number } {
    clearInterval(this.#timer);
    this.sample();
    return { rss: this.#rss, heapUsed: this.#heap };
  }
}
