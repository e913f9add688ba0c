/**
 * Member processes (the demo's workers, the chaos harness's members): a workflow engine in a
 * DrainController, run as a child process that prints its life on stdout, one line each:
 *
 * - `READY`: started (joined the group, intake open).
 * - `STATE`: every state change of its controller.
 * - `RESUME`: progress of the resume at start (the controller's `resume` event);
 *   `RESUMED`: the resume ended (`whenResumed()`).
 * - `RECOVERY`: what the start gate found of a crash and did (the controller's `recovery` event);
 *   `RECOVERED`: one `recover()` call of the store, its outcomes by id.
 * - `PARK`: a batch parked at shutdown (the controller's `park` event).
 * - `REPORT`: the shutdown report, last thing before exiting.
 * - `FAILED`: the member could not start or crashed.
 *
 * And {@link MemberProcess}, a member seen from the process that started it.
 */
import type { RecoveryReport, ResumeReport, ShutdownReport } from 'graceful-drain';
import type { BackendConfig } from './backend.js';
import { flagName } from './flags.js';
import { LineProtocol, type Message, ScriptProcess, type ScriptProcessOptions } from './process.js';

/** An error as JSON. */
export interface ErrorJson {
  readonly name: string;
  readonly code?: string;
  readonly message: string;
}

/** A `ShutdownReport` as JSON: bigint as string, errors as `{ phase, error: { name, code, message } }`. */
export type ShutdownReportJson = Omit<ShutdownReport, 'token' | 'errors'> & {
  readonly token: string | null;
  readonly errors: readonly { readonly phase: string; readonly error: ErrorJson }[];
};

/** A `RecoveryReport` as JSON, errors as `{ name, code, message }`. */
export type RecoveryReportJson = Omit<RecoveryReport, 'errors' | 'toJSON'> & {
  readonly errors: readonly ErrorJson[];
};

/** A `ResumeReport` as JSON, errors as `{ name, code, message }`. */
export type ResumeReportJson = Omit<ResumeReport, 'errors' | 'recovery' | 'toJSON'> & {
  readonly errors: readonly ErrorJson[];
  readonly recovery?: RecoveryReportJson | undefined;
};

/** Outcomes of a batch call of the store, grouped: outcome -> ids. */
export type OutcomesJson = Readonly<Record<string, readonly string[]>>;

/** The payload of each kind of line. */
export interface MemberMessages {
  READY: { readonly memberId: string; readonly pid: number; readonly group: string };
  STATE: { readonly from: string; readonly to: string };
  RESUME: ResumeReportJson;
  RESUMED: ResumeReportJson;
  RECOVERY: RecoveryReportJson;
  RECOVERED: { readonly outcomes: OutcomesJson; readonly token: string | null };
  PARK: {
    readonly parked: number;
    readonly stillPausing: number;
    readonly skipped: number;
    readonly token: string | null;
  };
  REPORT: ShutdownReportJson;
  FAILED: ErrorJson;
}

/** A decoded line of a member. */
export type MemberMessage = Message<MemberMessages>;

/** The members' lines. */
export const memberLines = new LineProtocol<MemberMessages>([
  'READY',
  'STATE',
  'RESUME',
  'RESUMED',
  'RECOVERY',
  'RECOVERED',
  'PARK',
  'REPORT',
  'FAILED',
]);

/** An error (or anything thrown) as JSON. */
export function errorJson(error: unknown): ErrorJson {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, ...(typeof code === 'string' ? { code } : {}), message: error.message };
  }
  return { name: 'Error', message: String(error) };
}

/** A shutdown report as JSON. */
export function shutdownReportJson(report: ShutdownReport): ShutdownReportJson {
  return {
    ...report,
    token: report.token === undefined ? null : report.token.toString(),
    errors: report.errors.map((e) => ({ phase: e.phase, error: errorJson(e.error) })),
  };
}

/** A recovery report as JSON. */
export function recoveryReportJson(report: RecoveryReport): RecoveryReportJson {
  return { ...report, errors: report.errors.map(errorJson) };
}

/** A resume report as JSON. */
export function resumeReportJson(report: ResumeReport): ResumeReportJson {
  const { recovery, ...rest } = report;
  return {
    ...rest,
    errors: report.errors.map(errorJson),
    ...(recovery === undefined ? {} : { recovery: recoveryReportJson(recovery) }),
  };
}

/** Results of a batch call of the store, grouped by outcome. */
export function outcomesJson(results: readonly { id: string; outcome: string }[]): OutcomesJson {
  const grouped: Record<string, string[]> = {};
  for (const r of results) (grouped[r.outcome] ??= []).push(r.id);
  return grouped;
}

/**
 * A member's command line: the backend of `config` (`--backend`, then `--db` or `--pg-schema`, and
 * `--redis-key-prefix`) and `flags` as `--kebab-case value`, those `undefined` left out. The server URLs
 * go in the environment, never on a command line that `ps` shows.
 */
export function memberArgs(
  config: BackendConfig,
  flags: Readonly<Record<string, string | number | undefined>>,
): string[] {
  const all = {
    backend: config.backend,
    ...(config.backend === 'postgres' ? { pgSchema: config.pgSchema } : { db: config.dbPath }),
    ...(config.backend === 'redis' ? { redisKeyPrefix: config.redisKeyPrefix } : {}),
    ...flags,
  };
  return Object.entries(all).flatMap(([key, value]) =>
    value === undefined ? [] : [flagName(key), String(value)],
  );
}

/** Options of {@link MemberProcess}. */
export interface MemberProcessOptions extends Omit<ScriptProcessOptions<MemberMessages>, 'protocol'> {
  /** The member id, passed as `--id`. */
  readonly memberId: string;
  /** Its place in the cluster (1-based): a member and the ones restarted after it share a slot. */
  readonly slot: number;
}

/** A member process, seen from the process that started it. */
export class MemberProcess extends ScriptProcess<MemberMessages> {
  readonly memberId: string;
  readonly slot: number;
  /** Resolves at its `READY`; rejects at `FAILED`, or when it exits before. */
  readonly ready: Promise<void>;
  isReady = false;
  /** Its controller's last state, as it printed it. */
  state = 'spawned';
  /** Stopped with SIGSTOP, not yet continued. */
  frozen = false;
  /** Sent SIGTERM: on its way out. */
  stopping = false;
  #settle: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(options: MemberProcessOptions) {
    super({ ...options, args: ['--id', options.memberId, ...(options.args ?? [])], protocol: memberLines });
    this.memberId = options.memberId;
    this.slot = options.slot;
    this.ready = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.ready.catch(() => {});
    void this.exited.then((exit) =>
      this.#settle?.reject(
        new Error(`${this.memberId} exited (code ${exit.code}, signal ${exit.signal}) before it was ready`),
      ),
    );
  }

  protected override received(message: MemberMessage): void {
    if (message.kind === 'READY') {
      this.isReady = true;
      this.#settle?.resolve();
    } else if (message.kind === 'STATE') this.state = message.data.to;
    else if (message.kind === 'FAILED') {
      this.#settle?.reject(new Error(`${this.memberId} failed: ${message.data.message}`));
    }
    super.received(message);
  }

  override signal(signal: NodeJS.Signals): boolean {
    if (!this.alive) return false;
    if (signal === 'SIGSTOP') this.frozen = true;
    if (signal === 'SIGCONT') this.frozen = false;
    if (signal === 'SIGTERM') this.stopping = true;
    return super.signal(signal);
  }
}
