import type { Suite } from '../lib/result.js';

/** A suite as the runner knows it before loading it. */
export interface SuiteEntry {
  readonly id: string;
  readonly title: string;
  readonly load: () => Promise<Suite>;
}

/**
 * Every suite, in the order a run takes them, loaded lazily: a suite's drivers are imported only in
 * the child process that runs it.
 */
export const suites: readonly SuiteEntry[] = [
  {
    id: 'track-overhead',
    title: '1. track() overhead',
    load: async () => (await import('./track-overhead.js')).suite,
  },
  {
    id: 'track-memory',
    title: '1. Memory per task in flight',
    load: async () => (await import('./track-memory.js')).suite,
  },
  {
    id: 'drain-latency',
    title: '2. Drain latency',
    load: async () => (await import('./drain-latency.js')).suite,
  },
  {
    id: 'park-sqlite',
    title: '3. Parking on SQLite',
    load: async () => (await import('./park-sqlite.js')).suite,
  },
  {
    id: 'park-postgres',
    title: '3. Parking on PostgreSQL',
    load: async () => (await import('./park-postgres.js')).suite,
  },
  {
    id: 'locks',
    title: '4. Locks',
    load: async () => (await import('./locks.js')).suite,
  },
  {
    id: 'last-member',
    title: '5. Last-member shutdown on PostgreSQL',
    load: async () => (await import('./last-member.js')).suite,
  },
];
