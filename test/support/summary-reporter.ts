import type { Reporter, SerializedError, TestCase, TestModule } from 'vitest/node';

/** A test's name as a reader finds it: its file, then its suites and its own name. */
function nameOf(test: TestCase): string {
  return `${test.module.moduleId.replace(`${process.cwd()}/`, '')} > ${test.fullName}`;
}

/** The first line of the first error a test met (a flaky test keeps the error of its failed attempt). */
function why(test: TestCase): string {
  const message = test.result().errors?.[0]?.message.split('\n')[0]?.slice(0, 300);
  return message === undefined || message === '' ? '' : `: ${message}`;
}

/**
 * Prints plain closing lines after vitest's own summary, so that tools reading the last lines of a run
 * (CI) can count without parsing colours: one `FAILED: <file> > <test>: <its first error>` line per failed
 * test, one `FLAKY: <file> > <test> (passed on retry N): <the failed attempt's error>` line per test that passed only when retried (CI retries
 * once: see vitest.config.ts), then `Tests: N passed, N failed, N skipped`. A file that failed outside
 * its tests (it did not load, or its worker crashed) counts as one failure, and so does every unhandled
 * error: the line never says `0 failed` for a run that failed.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: readonly TestModule[], unhandledErrors: readonly SerializedError[] = []): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    const lines: string[] = [];
    for (const module of testModules) {
      let failedTests = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        const retries = test.diagnostic()?.retryCount ?? 0;
        if (state === 'passed') {
          passed++;
          if (retries > 0) lines.push(`FLAKY: ${nameOf(test)} (passed on retry ${retries})${why(test)}`);
        } else if (state === 'failed') {
          failedTests++;
          lines.push(`FAILED: ${nameOf(test)}${why(test)}`);
        } else skipped++;
      }
      failed += failedTests;
      if (module.state() === 'failed' && failedTests === 0) {
        failed++;
        lines.push(`FAILED: ${module.moduleId.replace(`${process.cwd()}/`, '')} (outside its tests)`);
      }
    }
    for (const error of unhandledErrors)
      lines.push(`FAILED: unhandled ${error.name ?? 'error'}: ${error.message}`);
    process.stdout.write(
      `\n${lines.map((l) => `${l}\n`).join('')}Tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`,
    );
  }
}
