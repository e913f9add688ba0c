import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DrainController, installSignalHandlers } from '../src/index.js';

const fixture = fileURLToPath(new URL('./fixtures/signal-worker.ts', import.meta.url));

interface Run {
  child: ChildProcess;
  output: string[];
  ready: Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const output: string[] = [];
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean)) {
      output.push(line);
      if (line === 'ready') onReady();
    }
  });
  const exit = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    at: performance.now(),
  }));
  return { child, output, ready, exit };
}

describe('installSignalHandlers() in a real child process', () => {
  it('SIGTERM drains the task in flight, then exits 0', async () => {
    const r = run({ TASK_MS: '300' });
    await r.ready;
    r.child.kill('SIGTERM');
    const { code } = await r.exit;
    expect(code).toBe(0);
    expect(r.output).toContain('report {"outcome":"clean","aborted":0}');
  });

  it('a second SIGTERM escalates to force and exits 1 at once', async () => {
    const r = run({ TASK_MS: '60000', BUDGET_MS: '60000' });
    await r.ready;
    r.child.kill('SIGTERM');
    // Give the first signal time to start the shutdown, then send the second.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const sentAt = performance.now();
    r.child.kill('SIGTERM');
    const { code, at } = await r.exit;
    expect(code).toBe(1);
    expect(at - sentAt).toBeLessThan(5_000);
    expect(r.output).toContain('report {"outcome":"forced","aborted":1}');
  });

  it('a drain that times out exits 1', async () => {
    const r = run({ TASK_MS: '60000', BUDGET_MS: '500', HONOUR_SIGNAL: '1' });
    await r.ready;
    r.child.kill('SIGINT');
    const { code } = await r.exit;
    expect(code).toBe(1);
    expect(r.output).toContain('report {"outcome":"timed-out","aborted":1}');
  });

  it('leaves no timer or handle behind: the process ends by itself after shutdown', async () => {
    const r = run({ TASK_MS: '100', BUDGET_MS: '30000', EXIT_MODE: 'natural' });
    await r.ready;
    r.child.kill('SIGTERM');
    const { code } = await r.exit;
    expect(code).toBe(0);
  });
});

describe('installSignalHandlers() in this process', () => {
  it('calls the injected exit with the code, and uninstall() removes the handlers', async () => {
    const drain = new DrainController();
    await drain.start();
    const before = process.listenerCount('SIGUSR2');
    let exitCode: number | undefined;
    const exited = new Promise<void>((resolve) => {
      const uninstall = installSignalHandlers(drain, {
        signals: ['SIGUSR2'],
        exit: (code) => {
          exitCode = code;
          uninstall();
          resolve();
        },
      });
    });
    expect(process.listenerCount('SIGUSR2')).toBe(before + 1);
    process.kill(process.pid, 'SIGUSR2');
    await exited;
    expect(exitCode).toBe(0);
    expect(process.listenerCount('SIGUSR2')).toBe(before);
  });

  it('checks its options', () => {
    const drain = new DrainController();
    expect(() => installSignalHandlers(drain, { signals: [] })).toThrow(
      'Expected `signals` to be a non-empty array of signal names, got `[array]` (array)',
    );
    expect(() => installSignalHandlers(drain, { exit: 1 as never })).toThrow(
      'Expected `exit` to be a function, got `1`',
    );
    expect(() => installSignalHandlers(drain, { signal: ['SIGTERM'] } as never)).toThrow(
      'Unknown option `signal`',
    );
  });

  it('refuses unknown and uncatchable signals, and counts a duplicate once', () => {
    const a = new DrainController({ group: 'g', shutdownTimeoutMs: 5_000 });
    expect(() => installSignalHandlers(a, { signals: ['SIGTREM' as never] })).toThrow(
      'Expected `signals` to be catchable signal names such as "SIGTERM", got `"SIGTREM"` (string)',
    );
    expect(() => installSignalHandlers(a, { signals: ['SIGUSR2', 'SIGKILL'] })).toThrow('got `"SIGKILL"`');
    const before = process.listenerCount('SIGUSR2');
    const uninstall = installSignalHandlers(a, { signals: ['SIGUSR2', 'SIGUSR2'], exit: () => {} });
    expect(process.listenerCount('SIGUSR2')).toBe(before + 1);
    uninstall();
  });
});
