/**
 * The tools' child processes: a TypeScript script run under tsx, which speaks to its parent in lines
 * on stdout, `KIND {json}` (bigints as strings), and may read commands on stdin. The parent reads the
 * lines, sends signals and commands, and awaits the exit; every child still running can be ended at
 * once, whatever happens to the parent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: children run there, so that tsx finds tsconfig.json and its `paths`. */
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** A decoded line of protocol `M` (payloads by kind). */
export type Message<M> = { [K in keyof M & string]: { readonly kind: K; readonly data: M[K] } }[keyof M &
  string];

/** The lines of one protocol: `M` maps each kind to its payload. */
export class LineProtocol<M> {
  readonly #kinds: ReadonlySet<string>;

  constructor(kinds: readonly (keyof M & string)[]) {
    this.#kinds = new Set(kinds);
  }

  /** One line: `KIND {json}` (bigints as strings). */
  encode<K extends keyof M & string>(kind: K, data: M[K]): string {
    return `${kind} ${JSON.stringify(data, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
  }

  /** The message a line holds, or `undefined` for any other output. */
  decode(line: string): Message<M> | undefined {
    const space = line.indexOf(' ');
    if (space === -1 || !this.#kinds.has(line.slice(0, space))) return undefined;
    try {
      return { kind: line.slice(0, space), data: JSON.parse(line.slice(space + 1)) } as Message<M>;
    } catch {
      return undefined;
    }
  }

  /** Writes a message on this process's stdout; resolves once written, so it is out before an exit. */
  send<K extends keyof M & string>(kind: K, data: M[K]): Promise<void> {
    return new Promise((resolve) => process.stdout.write(`${this.encode(kind, data)}\n`, () => resolve()));
  }
}

/** How a child process ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Options of {@link ScriptProcess}. */
export interface ScriptProcessOptions<M> {
  /** The TypeScript file to run. */
  readonly script: string;
  readonly args?: readonly string[];
  readonly protocol: LineProtocol<M>;
  /** Added to this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Node.js flags before the script (`--expose-gc`). */
  readonly nodeArgs?: readonly string[];
  /** Keeps a pipe to its stdin, for {@link ScriptProcess.command}: it can end itself when that closes. */
  readonly stdin?: boolean;
  /** Hears every message. */
  readonly onMessage?: (message: Message<M>) => void;
  /** Hears every line that is not a message. */
  readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** Every child started and not yet exited, to end them on the way out. */
const running = new Set<{ killNow(): void }>();

/** Ends every child still running (SIGCONT first: a stopped one must see the SIGKILL). */
export function killAllChildren(): void {
  for (const child of running) child.killNow();
}

/** Calls `onLine` with every line of `stream` (the last one too, without its newline). */
export function readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
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

/** A child process running a script under tsx. */
export class ScriptProcess<M> {
  readonly exited: Promise<ProcessExit>;
  exit: ProcessExit | undefined;
  /** The last lines of its stderr, to show when it fails. */
  readonly stderr: string[] = [];
  readonly #child: ChildProcess;
  readonly #o: ScriptProcessOptions<M>;

  constructor(options: ScriptProcessOptions<M>) {
    this.#o = options;
    const tsx = import.meta.resolve('tsx');
    this.#child = spawn(
      process.execPath,
      [...(options.nodeArgs ?? []), '--import', tsx, options.script, ...(options.args ?? [])],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...options.env },
        stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      },
    );
    running.add(this);
    // A command written as the process exits meets a closed pipe: that is no failure of the parent.
    this.#child.stdin?.on('error', () => {});
    readLines(this.#child.stdout, (line) => {
      const message = options.protocol.decode(line);
      if (message === undefined) this.output(line, 'stdout');
      else this.received(message);
    });
    readLines(this.#child.stderr, (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 40) this.stderr.shift();
      this.output(line, 'stderr');
    });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': every line of its output has been read by then.
      this.#child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal };
        running.delete(this);
        resolve(this.exit);
      });
    });
  }

  /** A message came: passed to `onMessage`. */
  protected received(message: Message<M>): void {
    this.#o.onMessage?.(message);
  }

  /** A line that is not a message came: passed to `onLine`. */
  protected output(line: string, stream: 'stdout' | 'stderr'): void {
    this.#o.onLine?.(line, stream);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Sends `signal` if the process still runs. */
  signal(signal: NodeJS.Signals): boolean {
    return this.alive && this.#child.kill(signal);
  }

  /** Writes a command line on its stdin (with `stdin: true`). */
  command(line: string): boolean {
    const stdin = this.#child.stdin;
    if (!this.alive || stdin === null || stdin.destroyed) return false;
    stdin.write(`${line}\n`);
    return true;
  }

  /** SIGCONT then SIGKILL: ends it whatever state it is in. */
  killNow(): void {
    if (!this.alive) return;
    this.#child.kill('SIGCONT');
    this.#child.kill('SIGKILL');
  }
}
