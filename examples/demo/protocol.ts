/**
 * What a worker prints on stdout for the orchestrator: one message a line, `KIND {json}`, bigints as
 * strings. Any other line is plain output.
 *
 * - `READY`: started and joined its group; intake open.
 * - `STATE`: a state change of its DrainController.
 * - `RESUME`: a round of the background resume (the controller's `resume` event).
 * - `RESUMED`: the background resume ended (`whenResumed()`).
 * - `PARK`: a batch parked at shutdown (the controller's `park` event).
 * - `REPORT`: the shutdown report, last thing before exiting.
 * - `FAILED`: the worker could not start or crashed.
 */
import type { ResumeReport, ShutdownReport } from 'graceful-drain';

/** The kinds of messages. */
export const MESSAGE_KINDS = ['READY', 'STATE', 'RESUME', 'RESUMED', 'PARK', 'REPORT', 'FAILED'] as const;

/** A message's kind. */
export type MessageKind = (typeof MESSAGE_KINDS)[number];

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

/** A `ResumeReport` as JSON, errors as `{ name, code, message }`. */
export type ResumeReportJson = Omit<ResumeReport, 'errors'> & { readonly errors: readonly ErrorJson[] };

/** The payload of each kind. */
export interface Messages {
  READY: { readonly memberId: string; readonly pid: number; readonly group: string };
  STATE: { readonly from: string; readonly to: string };
  RESUME: ResumeReportJson;
  RESUMED: ResumeReportJson;
  PARK: {
    readonly parked: number;
    readonly stillPausing: number;
    readonly skipped: number;
    readonly token: string | null;
  };
  REPORT: ShutdownReportJson;
  FAILED: ErrorJson;
}

/** A decoded message. */
export type Message = { [K in MessageKind]: { readonly kind: K; readonly data: Messages[K] } }[MessageKind];

/** An error (or anything thrown) as JSON. */
export function errorJson(error: unknown): ErrorJson {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      ...(typeof code === 'string' ? { code } : {}),
      message: error.message,
    };
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

/** A resume report as JSON. */
export function resumeReportJson(report: ResumeReport): ResumeReportJson {
  return { ...report, errors: report.errors.map(errorJson) };
}

/** One line: `KIND {json}` (bigints as strings). */
export function encode<K extends MessageKind>(kind: K, data: Messages[K]): string {
  return `${kind} ${JSON.stringify(data, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
}

/** The message a line holds, or `undefined` for plain output. */
export function decode(line: string): Message | undefined {
  const space = line.indexOf(' ');
  if (space === -1) return undefined;
  const kind = line.slice(0, space);
  if (!(MESSAGE_KINDS as readonly string[]).includes(kind)) return undefined;
  try {
    return { kind, data: JSON.parse(line.slice(space + 1)) } as Message;
  } catch {
    return undefined;
  }
}

/** The result of one check. */
export interface Check {
  /** What is checked, in a few words. */
  readonly name: string;
  readonly ok: boolean;
  /** A one-line account: what was found. */
  readonly detail: string;
  /** What failed, one line each (empty when `ok`). At most `MAX_PROBLEMS`. */
  readonly problems: readonly string[];
}
