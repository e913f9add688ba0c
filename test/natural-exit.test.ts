/**
 * Invariant 9 on the real backends: after shutdown and close(), nothing holds the process. A real
 * child process must end by itself, without process.exit, soon after its report.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { testSchema } from './fixtures/postgres-setup.js';
import { uniqueName } from './support/env.js';

const fixture = fileURLToPath(new URL('./fixtures/natural-exit.ts', import.meta.url));

async function runToExit(
  args: string[],
): Promise<{ code: number | null; lines: string[]; afterReportMs: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let reportAt = Number.NaN;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean)) {
      lines.push(line);
      reportAt = performance.now();
    }
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(killer);
  return { code, lines, afterReportMs: performance.now() - reportAt };
}

describe('after shutdown and close(), nothing holds the process (real child processes)', () => {
  for (const backend of ['sqlite', 'redis'] as const) {
    it(`${backend}: the process ends by itself`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gd-exit-'));
      try {
        const { code, lines, afterReportMs } = await runToExit([backend, dir, uniqueName('gd-exit')]);
        expect(code).toBe(0);
        expect(JSON.parse(lines.at(-1) ?? '{}')).toEqual({ handOff: 'parked', parked: 2, outcome: 'clean' });
        expect(afterReportMs).toBeLessThan(10_000);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('postgres: the process ends by itself', async () => {
    const db = await testSchema('gd_exit');
    try {
      await db.pool.query(`CREATE TABLE "${db.schema}".host (id text PRIMARY KEY, status text NOT NULL)`);
      await db.pool.query(`INSERT INTO "${db.schema}".host VALUES ('w1', 'running'), ('w2', 'running')`);
      const { code, lines, afterReportMs } = await runToExit(['postgres', db.schema, uniqueName('gd-exit')]);
      expect(code).toBe(0);
      expect(JSON.parse(lines.at(-1) ?? '{}')).toEqual({ handOff: 'parked', parked: 2, outcome: 'clean' });
      expect(afterReportMs).toBeLessThan(10_000);
    } finally {
      await db.drop();
    }
  });
});
