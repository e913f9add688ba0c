import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/support/summary-reporter.js';

/** The tool runs: the demo, the examples, the benchmarks and the chaos harness, each run as a user would. */
const tools = ['test/demo.test.ts', 'test/examples.test.ts', 'test/bench.test.ts', 'test/chaos.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // One file at a time: the machine has two cores, the timing tests use real TTLs against real
    // servers, and the Redis fault tests pause every client of the server (CLIENT PAUSE).
    fileParallelism: false,
    // On CI, a failed test runs once more: the real-server tests keep real TTLs on a small, shared
    // machine. A test that passes only on its retry is named on a `FLAKY:` line (summary-reporter.ts)
    // and in CI's summary, to be fixed, not forgotten; one that fails twice fails the run.
    retry: process.env.CI ? 1 : 0,
    // better-sqlite3 for the running Node.js (12 on Node.js 20), so that its driver's tests always run.
    globalSetup: ['./scripts/better-sqlite3.ts'],
    // One closing line for the whole run, whichever projects it runs (`npm test` runs both).
    reporters: ['default', new SummaryReporter()],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: tools } },
      // After the unit tests, never beside them.
      { extends: true, test: { name: 'tools', include: tools, sequence: { groupOrder: 1 } } },
    ],
  },
});
