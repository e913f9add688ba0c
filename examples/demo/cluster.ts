/**
 * Worker processes seen from the orchestrator: a member process (harness/member.ts) running
 * `worker.ts`, its state changes, readiness, signal, exit, report, recovery and resume recorded on the
 * orchestrator's clock for the summary and the timeline.
 */
import { fileURLToPath } from 'node:url';
import {
  type MemberMessage,
  MemberProcess,
  type MemberProcessOptions,
  type RecoveryReportJson,
  type ResumeReportJson,
  type ShutdownReportJson,
} from '../../harness/member.js';

/** The worker script. */
export const WORKER_SCRIPT = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** A state of a worker's lane on the timeline: the controller's states, plus `spawned` before READY. */
export interface StateChange {
  readonly state: string;
  /** On the orchestrator's clock (ms since its start). */
  readonly at: number;
}

/** How a worker process ended, on the orchestrator's clock. */
export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: number;
}

/** Options of {@link WorkerProcess}. */
export interface WorkerProcessOptions extends Omit<MemberProcessOptions, 'script'> {
  /** Which start of this lane (1 for the first). */
  readonly run: number;
  /** The orchestrator's clock. */
  readonly clock: () => number;
}

/** A worker process. */
export class WorkerProcess extends MemberProcess {
  readonly run: number;
  readonly startedAt: number;
  readonly states: StateChange[] = [];
  readyAt: number | undefined;
  /** When the orchestrator sent a signal, and which. */
  signalled: { readonly signal: NodeJS.Signals; readonly at: number } | undefined;
  report: ShutdownReportJson | undefined;
  resumed: ResumeReportJson | undefined;
  /** What its start gate found of a crash and did (only when there was something to say). */
  recovery: RecoveryReportJson | undefined;
  /** Every `recovery` event, on the orchestrator's clock: the start gate's, then its peer checks'. */
  readonly recoveries: (RecoveryReportJson & { readonly at: number })[] = [];
  /** The workflows its start gate recovered, by outcome (`paused`, `pausing`, `failed`, `skipped`). */
  readonly recovered: Record<string, string[]> = {};
  ended: WorkerExit | undefined;
  readonly #clock: () => number;

  constructor(options: WorkerProcessOptions) {
    super({ ...options, script: WORKER_SCRIPT });
    this.run = options.run;
    this.#clock = options.clock;
    this.startedAt = options.clock();
    this.states.push({ state: 'spawned', at: this.startedAt });
    void this.exited.then(({ code, signal }) => {
      this.ended = { code, signal, at: this.#clock() };
      this.states.push({ state: 'exited', at: this.ended.at });
    });
  }

  protected override received(message: MemberMessage): void {
    const at = this.#clock();
    if (message.kind === 'READY') this.readyAt = at;
    else if (message.kind === 'STATE') this.states.push({ state: message.data.to, at });
    else if (message.kind === 'RESUMED') this.resumed = message.data;
    else if (message.kind === 'REPORT') this.report = message.data;
    else if (message.kind === 'RECOVERY') {
      this.recovery = message.data;
      this.recoveries.push({ ...message.data, at });
    } else if (message.kind === 'RECOVERED') {
      for (const [outcome, ids] of Object.entries(message.data.outcomes))
        (this.recovered[outcome] ??= []).push(...ids);
    }
    super.received(message);
  }

  /** Sends `signal`, recorded for the summary and the timeline. */
  override signal(signal: NodeJS.Signals): boolean {
    if (this.alive) this.signalled ??= { signal, at: this.#clock() };
    return super.signal(signal);
  }
}
