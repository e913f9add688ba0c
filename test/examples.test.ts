import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AMQP_URL, POSTGRES_URL, REDIS_URL } from './support/env.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Runs `examples/<name>/main.ts` as `npx tsx` would, against the local servers; resolves its outcome. */
function runExample(
  name: string,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const { DEBUG: _debug, ...env } = process.env; // debug output would land on stderr
  const child = spawn(process.execPath, ['--import', 'tsx', path.join('examples', name, 'main.ts')], {
    cwd: root,
    env: { ...env, GD_AMQP_URL: AMQP_URL, GD_POSTGRES_URL: POSTGRES_URL, GD_REDIS_URL: REDIS_URL },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // A hung example fails the test rather than hanging it.
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

describe('examples', () => {
  it('http-service: a slow request completes during the drain while /readyz turns 503', async () => {
    const { code, stdout, stderr, ms } = await runExample('http-service');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/GET \/readyz -> 200/);
    expect(stdout).toMatch(/during the drain: GET \/readyz -> 503/);
    expect(stdout).toMatch(/during the drain: GET \/livez -> 200/);
    expect(stdout).toMatch(/during the delay: GET \/work .*-> 200 \(connection: close\)/);
    expect(stdout).toMatch(/after the delay: GET \/work -> ECONNREFUSED/);
    expect(stdout).toMatch(/slow request completed during the drain -> 200 \(connection: close\)/);
    // The server itself is one tracked task beside the slow request (see docs/integrations/http.md).
    expect(stdout).toMatch(/"outcome":"clean","inFlightAtStart":2,"completed":2,"aborted":0/);
    expect(ms).toBeLessThan(15_000);
  });

  it('bullmq-worker: jobs in flight finish on shutdown, none stalls, none runs twice', async () => {
    const { code, stdout, stderr, ms } = await runExample('bullmq-worker');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(/A: report (\{.*\})/.exec(stdout)?.[1] ?? '{}') as Record<string, unknown>;
    expect(report).toMatchObject({ outcome: 'clean', aborted: 0 });
    expect(report.inFlightAtStart).toBeGreaterThan(0);
    expect(report.completed).toBe(report.inFlightAtStart);
    expect(stdout).toMatch(/after A: \{"active":0,/);
    expect(stdout).toMatch(/none stalled, none failed, none ran twice: true/);
    expect(ms).toBeLessThan(15_000);
  });

  it('rabbitmq-workflow-worker: the last engine parks, the next resumes, every step runs once', async () => {
    const { code, stdout, stderr, ms } = await runExample('rabbitmq-workflow-worker');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /A stopped: \{"outcome":"clean",.*"handOff":"peers-remain","lastMember":false,"parked":0\}/,
    );
    const parked =
      /B stopped last: \{"outcome":"clean",.*"handOff":"parked","lastMember":true,"parked":(\d+)\}/.exec(
        stdout,
      )?.[1];
    expect(Number(parked)).toBeGreaterThan(0);
    expect(stdout).toContain(`C started and resumed ${parked} workflows`);
    expect(stdout).toMatch(/steps recorded: 32 of 32,.*left on the queue: 0/);
    expect(stdout).toMatch(/checks passed/);
    expect(ms).toBeLessThan(15_000);
  });
});
