/**
 * installSignalHandlers() beyond signals: an onShutdown that throws is printed and fails the exit
 * code; `uncaught: true` drains on a crash; reports and errors render as JSON.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  ConfigurationError,
  DrainController,
  type ErrorCode,
  GracefulDrainError,
  installSignalHandlers,
  StaleTokenError,
} from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';

const fixture = fileURLToPath(new URL('./fixtures/crash-worker.ts', import.meta.url));

async function run(env: Record<string, string>, signal?: NodeJS.Signals) {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (signal !== undefined && stdout.includes('ready\n')) child.kill(signal);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

describe('installSignalHandlers() in a real child process', () => {
  it('an onShutdown that throws is printed to stderr and makes the exit code 1', async () => {
    const { code, stdout, stderr } = await run({}, 'SIGTERM');
    expect(stdout).toContain('report {"cause":"SIGTERM","outcome":"clean","completed":1}');
    expect(stderr).toContain('graceful-drain: onShutdown failed:');
    expect(stderr).toContain('onShutdown broke');
    expect(code).toBe(1);
  });

  it('with uncaught: true, an uncaught exception is printed, the work in flight drains, and it exits 1', async () => {
    const { code, stdout, stderr } = await run({ CRASH: 'exception' });
    expect(stderr).toContain('graceful-drain: uncaughtException, shutting down:');
    expect(stderr).toContain('boom from a timer');
    expect(stdout).toContain('report {"cause":"uncaughtException","outcome":"clean","completed":1}');
    expect(code).toBe(1);
  });

  it('with uncaught: true, an unhandled rejection does the same', async () => {
    const { code, stdout, stderr } = await run({ CRASH: 'rejection' });
    expect(stderr).toContain('boom from a promise');
    expect(stdout).toContain('report {"cause":"unhandledRejection","outcome":"clean","completed":1}');
    expect(code).toBe(1);
  });

  it('refuses a non-boolean `uncaught`, and leaves no crash handler behind after uninstall()', () => {
    const drain = new DrainController();
    expect(() => installSignalHandlers(drain, { uncaught: 'yes' as never })).toThrow(ConfigurationError);
    const before = process.listenerCount('uncaughtException');
    const uninstall = installSignalHandlers(drain, { uncaught: true, exit: () => {} });
    expect(process.listenerCount('uncaughtException')).toBe(before + 1);
    uninstall();
    expect(process.listenerCount('uncaughtException')).toBe(before);
  });
});

describe('reports and errors as JSON', () => {
  it('JSON.stringify(report) renders the token as a string and errors with their code', async () => {
    const backend = new MemoryBackend();
    const coordinator = new MemoryCoordinator({ backend });
    const store = new MemoryWorkflowStore();
    store.add('w1', 'running');
    const drain = new DrainController({ group: 'g', coordinator, store });
    await drain.start();
    await drain.whenResumed();
    drain.onStopIntake(() => {
      throw new StaleTokenError(1n, 2n);
    });
    const report = await drain.shutdown();
    const json = JSON.parse(JSON.stringify(report)) as Record<string, unknown>;
    expect(json).toMatchObject({ handOff: 'parked', parked: 1, token: String(report.token) });
    expect(json.errors).toEqual([
      {
        phase: 'intake-stopper',
        error: {
          name: 'StaleTokenError',
          code: 'ERR_STALE_TOKEN',
          message: 'Fencing token 1 is stale: the store has already seen token 2',
        },
      },
    ]);
    expect(Object.keys(report)).not.toContain('toJSON');
    await coordinator.close();
  });

  it('an error renders with its code and its cause', () => {
    const error = new GracefulDrainError('ERR_CLOSED', 'outer', { cause: new Error('inner') });
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      name: 'GracefulDrainError',
      code: 'ERR_CLOSED',
      message: 'outer',
      cause: { name: 'Error', message: 'inner' },
    });
  });

  it('every error code is a literal type', () => {
    expectTypeOf(new StaleTokenError(1n, 2n).code).toEqualTypeOf<'ERR_STALE_TOKEN'>();
    expectTypeOf(new ConfigurationError('x').code).toEqualTypeOf<'ERR_CONFIGURATION'>();
    expectTypeOf<GracefulDrainError['code']>().toEqualTypeOf<ErrorCode>();
  });
});
