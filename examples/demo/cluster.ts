/**
 * Worker processes seen from the orchestrator: spawn `worker.ts` under tsx, read its messages, record
 * its state changes on the orchestrator's clock, signal it, and wait for it to exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decode, type Message, type ResumeReportJson, type ShutdownReportJson } from './protocol.js';

/** The worker script. */
export const WORKER_SCRIPT = fileURLToPath(new URL('./worker.ts', import.meta.url));
/** The repository root: workers run there, so that tsx finds tsconfig.json and its `paths`. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A state of a worker's lane on the timeline: the controller's states, plus `spawned` before READY. */
export interface StateChange {
  readonly state: string;
  /** On the orchestrator's clock (ms since its start). */
  readonly at: number;
}

/** How a worker process ended. */
export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: number;
}

/** Options of {@link WorkerProcess}. */
export interface WorkerProcessOptions {
  /** The lane (1-based): worker-1 and its restarts share lane 1. */
  readonly slot: number;
  /** Which start of this lane (1 for the first). */
  readonly run: number;
  /** The member id, passed as `--id`. */
  readonly memberId: string;
  /** The worker's other flags. */
  readonly args: readonly string[];
  /** The orchestrator's clock. */
  readonly clock: () => number;
  /** Extra environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Called with every message, after it is recorded. */
  readonly onMessage?: (worker: WorkerProcess, message: Message) => void;
  /** Called with every line that is not a message. */
  readonly onOutput?: (worker: WorkerProcess, line: string, stream: 'stdout' | 'stderr') => void;
}

/** A worker process. */
export class WorkerProcess {
  readonly slot: number;
  readonly run: number;
  readonly memberId: string;
  readonly startedAt: number;
  readonly states: StateChange[] = [];
  readonly messages: Message[] = [];
  /** The last lines of stderr, to show when it fails. */
  readonly stderr: string[] = [];
  readonly ready: Promise<void>;
  readonly exited: Promise<WorkerExit>;
  readyAt: number | undefined;
  /** When the orchestrator sent a signal, and which. */
  signalled: { readonly signal: NodeJS.Signals; readonly at: number } | undefined;
  report: ShutdownReportJson | undefined;
  resumed: ResumeReportJson | undefined;
  exit: WorkerExit | undefined;
  readonly #child: ChildProcess;
  readonly #o: WorkerProcessOptions;

  constructor(options: WorkerProcessOptions) {
    this.#o = options;
    this.slot = options.slot;
    this.run = options.run;
    this.memberId = options.memberId;
    this.startedAt = options.clock();
    this.states.push({ state: 'spawned', at: this.startedAt });
    const tsx = import.meta.resolve('tsx');
    this.#child = spawn(
      process.execPath,
      ['--import', tsx, WORKER_SCRIPT, '--id', options.memberId, ...options.args],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let onReady!: () => void;
    let onNotReady!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onNotReady = reject;
    });
    this.ready.catch(() => {});
    this.#lines(this.#child.stdout, (line) => {
      const message = decode(line);
      if (message === undefined) {
        options.onOutput?.(this, line, 'stdout');
        return;
      }
      this.#record(message);
      if (message.kind === 'READY') onReady();
      if (message.kind === 'FAILED')
        onNotReady(new Error(`${this.memberId} failed: ${message.data.message}`));
      options.onMessage?.(this, message);
    });
    this.#lines(this.#child.stderr, (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 40) this.stderr.shift();
      options.onOutput?.(this, line, 'stderr');
    });
    this.exited = new Promise<WorkerExit>((resolve) => {
      // 'close', not 'exit': every line of its output has been read by then.
      this.#child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal, at: options.clock() };
        this.states.push({ state: 'exited', at: this.exit.at });
        onNotReady(new Error(`${this.memberId} exited (code ${code}, signal ${signal}) before it was ready`));
        resolve(this.exit);
      });
    });
  }

  /** The process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.exit === undefined;
  }

  /** The controller's current state, as last reported. */
  get state(): string {
    return this.states[this.states.length - 1]?.state ?? 'spawned';
  }

  /** Sends `signal` (recorded for the summary and the timeline). */
  kill(signal: NodeJS.Signals): void {
    if (!this.alive) return;
    this.signalled ??= { signal, at: this.#o.clock() };
    this.#child.kill(signal);
  }

  #record(message: Message): void {
    this.messages.push(message);
    const at = this.#o.clock();
    switch (message.kind) {
      case 'READY':
        this.readyAt = at;
        break;
      case 'STATE':
        this.states.push({ state: message.data.to, at });
        break;
      case 'RESUMED':
        this.resumed = message.data;
        break;
      case 'REPORT':
        this.report = message.data;
        break;
      default:
        break;
    }
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
      buffer = '';
    });
  }
}
