import type { Suite } from '../lib/result.js';

/** A suite as the runner knows it before loading it. */
export interface SuiteEntry {
  readonly id: string;
  readonly title: string;
  readonly load: () => Promise<Suite>;
}

/** The suite of `./<id>.ts`, loaded lazily: its drivers are imported only in the process that runs it. */
const entry = (id: string, title: string): SuiteEntry => ({
  id,
  title,
  // Resolved when it runs (tsx), never bundled: vitest only reads the ids and titles.
  load: async () => ((await import(/* @vite-ignore */ `./${id}.js`)) as { suite: Suite }).suite,
});

/** Every suite, in the order a run takes them. */
export const suites: readonly SuiteEntry[] = [
  entry('track-overhead', '1. track() overhead'),
  entry('track-memory', '1. Memory per task in flight'),
  entry('drain-latency', '2. Drain latency'),
  entry('park-sqlite', '3. Parking on SQLite'),
  entry('park-postgres', '3. Parking on PostgreSQL'),
  entry('locks', '4. Locks'),
  entry('last-member', '5. Last-member shutdown on PostgreSQL'),
  entry('recovery-postgres', '6. Crash recovery on PostgreSQL'),
  entry('scaling', '7. Scaling: park, resume and recovery from 10k to 1M workflows'),
  entry('shutdown-members', '7. Scaling: group shutdown with 1 to 8 members'),
];
