/**
 * A member process seen from the harness: spawned from chaos/worker.ts under tsx, its protocol lines
 * read, its signals sent, its exit awaited. Every member started is tracked in one place, so that the
 * harness can end them all, whatever happens to it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decode } from '../examples/demo/protocol.js';

/** The worker script. */
export const WORKER_SCRIPT = fileURLToPath(new URL('./worker.ts', import.meta.url));
/** The repository root: members run there, so that tsx finds tsconfig.json and its `paths`. */
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** How a member process ended. */
export interface MemberExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Every member process started and not yet exited, to end them on the way out. */
const alive = new Set<MemberProcess>();

/** Sends SIGKILL to every member still running (and SIGCONT first: a stopped one must see it). */
export function killAllMembers(): void {
  for (const member of alive) member.killNow();
}

/** A member process. */
export class MemberProcess {
  readonly memberId: string;
  readonly slot: number;
  readonly ready: Promise<void>;
  readonly exited: Promise<MemberExit>;
  /** The controller's last state, as the member printed it. */
  state = 'spawned';
  /** Whether it printed READY. */
  isReady = false;
  /** Frozen by the harness (SIGSTOP, not yet SIGCONT). */
  frozen = false;
  /** Sent SIGTERM: on its way out. */
  stopping = false;
  exit: MemberExit | undefined;
  /** The last lines of stderr, for a failure message. */
  readonly stderr: string[] = [];
  readonly #child: ChildProcess;

  /**
   * @param stderrFile - where its stderr goes, line by line (beside its history).
   * @param onState - hears of every state change of its controller, as it prints them.
   * @param onNote - hears of what the member says of the faults it was armed with (`CHAOS <note>`
   *   lines: `host-lock` when it took a host lock).
   */
  constructor(
    memberId: string,
    slot: number,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    stderrFile: string,
    onState?: (member: MemberProcess, state: string) => void,
    onNote?: (member: MemberProcess, note: string) => void,
  ) {
    this.memberId = memberId;
    this.slot = slot;
    const tsx = import.meta.resolve('tsx');
    this.#child = spawn(process.execPath, ['--import', tsx, WORKER_SCRIPT, '--id', memberId, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      // stdin stays open while the harness lives: the member ends itself when it closes.
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    alive.add(this);
    // A command written as the process exits meets a closed pipe: that is no failure of the harness.
    this.#child.stdin?.on('error', () => {});
    let onReady!: () => void;
    let onNotReady!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onNotReady = reject;
    });
    this.ready.catch(() => {});
    this.#lines(this.#child.stdout, (line) => {
      if (line.startsWith('CHAOS ')) {
        onNote?.(this, line.slice('CHAOS '.length));
        return;
      }
      const message = decode(line);
      if (message?.kind === 'READY') {
        this.isReady = true;
        onReady();
      } else if (message?.kind === 'STATE') {
        this.state = message.data.to;
        onState?.(this, this.state);
      } else if (message?.kind === 'FAILED') onNotReady(new Error(`${memberId}: ${message.data.message}`));
    });
    this.#lines(this.#child.stderr, (line) => {
      appendFileSync(stderrFile, `${line}\n`);
      this.stderr.push(line);
      if (this.stderr.length > 30) this.stderr.shift();
    });
    this.exited = new Promise<MemberExit>((resolve) => {
      this.#child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal };
        alive.delete(this);
        onNotReady(new Error(`${memberId} exited (code ${code}, signal ${signal}) before it was ready`));
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Sends `signal` if the process still runs. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.alive) return false;
    if (signal === 'SIGSTOP') this.frozen = true;
    if (signal === 'SIGCONT') this.frozen = false;
    if (signal === 'SIGTERM') this.stopping = true;
    return this.#child.kill(signal);
  }

  /** Sends a command line on its stdin (see chaos/worker.ts). */
  command(line: string): boolean {
    if (!this.alive || this.#child.stdin === null || this.#child.stdin.destroyed) return false;
    this.#child.stdin.write(`${line}\n`);
    return true;
  }

  /** SIGCONT then SIGKILL: ends it whatever state it is in. */
  killNow(): void {
    if (!this.alive) return;
    this.#child.kill('SIGCONT');
    this.#child.kill('SIGKILL');
  }

  #lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
    if (stream === null) return;
    let buffer = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.length > 0) onLine(line);
      }
    });
    stream.on('end', () => {
      if (buffer.length > 0) onLine(buffer);
    });
  }
}
