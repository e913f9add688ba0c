import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/support/summary-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // One file at a time: the machine has two cores, the timing tests use real TTLs against real
    // servers, and the Redis fault tests pause every client of the server (CLIENT PAUSE).
    fileParallelism: false,
    reporters: ['default', new SummaryReporter()],
  },
});
