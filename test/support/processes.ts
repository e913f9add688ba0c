/**
 * Real child processes for the tests that need them (a lock or a write lock held by another process, a
 * process killed while it holds a row): started in the repository's root, read until they say `ready`,
 * and killed after each test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** How long a process may take to say `ready`. */
const READY_MS = 20_000;

/** A started process and what followed `ready ` on its stdout. */
export interface ReadyProcess {
  readonly process: ChildProcess;
  readonly value: string;
}

/** Whether `proc` was started and has not exited yet. */
const running = (proc: ChildProcess): boolean =>
  proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null;

/** Kills `proc` with SIGKILL, unless it has exited, and waits until it has been reaped. */
export async function kill(proc: ChildProcess): Promise<void> {
  if (!running(proc)) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGKILL');
  await exited;
}

/** The child processes of one test file: `start()` or `fixture()` them, `killAll()` after each test. */
export class ChildProcesses {
  readonly #children: ChildProcess[] = [];

  /** Starts `command args` in the repository's root; resolves once it prints a line `ready <value>`. */
  async start(command: string, args: readonly string[]): Promise<ReadyProcess> {
    const proc = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.push(proc);
    let stdout = '';
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const value = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${command} ${args.join(' ')} not ready in ${READY_MS} ms: ${stderr}`)),
        READY_MS,
      );
      proc.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = /^ready (.+)$/m.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(match[1] as string);
        }
      });
      // A command that could not start (ENOENT): no 'exit' follows.
      proc.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(
          new Error(`${command} ${args.join(' ')} exited with ${code} before ready: ${stdout}${stderr}`),
        );
      });
    });
    return { process: proc, value };
  }

  /** Starts the TypeScript file `path` in a Node.js process of its own (through tsx), with `args`. */
  fixture(path: string, ...args: string[]): Promise<ReadyProcess> {
    return this.start(process.execPath, ['--import', 'tsx', path, ...args]);
  }

  /** Kills every process started here that is still running, and waits until each has been reaped. */
  async killAll(): Promise<void> {
    await Promise.all(this.#children.splice(0).map(kill));
  }
}
