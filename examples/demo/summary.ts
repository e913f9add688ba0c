/** The end-of-run summary: one block per worker process, then the checks. Plain text. */
import type { Check } from '../../harness/host-checks.js';
import type { RecoveryReportJson, ResumeReportJson, ShutdownReportJson } from '../../harness/member.js';

/** What the summary shows of one worker process. */
export interface WorkerSummary {
  readonly memberId: string;
  /** Its lane: worker-1 and its restarts share slot 1. */
  readonly slot: number;
  /** Which start of its slot (1 for the first). */
  readonly run: number;
  readonly pid: number | undefined;
  /** Orchestrator clock, ms. */
  readonly startedAt: number;
  readonly readyAt: number | undefined;
  readonly signalled: { readonly signal: string; readonly at: number } | undefined;
  readonly exit:
    { readonly code: number | null; readonly signal: string | null; readonly at: number } | undefined;
  readonly report: ShutdownReportJson | undefined;
  readonly resumed: ResumeReportJson | undefined;
  /** What its start gate found of a crash and did, when there was something to say. */
  readonly recovery: RecoveryReportJson | undefined;
  /** The workflows its start gate (and its peer checks) recovered, by outcome. */
  readonly recovered: Readonly<Record<string, readonly string[]>>;
  /** Every `recovery` event it sent (the start gate's, its peer checks'), orchestrator clock in ms. */
  readonly recoveries?: readonly (RecoveryReportJson & { readonly at: number })[] | undefined;
  /** Its states over time (orchestrator clock, ms), from `spawned` to `exited`. */
  readonly states: readonly { readonly state: string; readonly at: number }[];
}

const s = (ms: number | undefined): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)}s`);
const ms = (n: number): string => `${Math.round(n)} ms`;

/** One worker's block: life, shutdown outcome, phases, in flight, parked, resumed. */
export function formatWorker(w: WorkerSummary): string[] {
  const lines: string[] = [];
  const exit =
    w.exit === undefined
      ? 'still running'
      : w.exit.signal !== null
        ? `killed by ${w.exit.signal}`
        : `exit ${w.exit.code}`;
  const head = `${w.memberId.padEnd(14)} pid ${String(w.pid ?? '?').padEnd(7)} up ${s(w.readyAt)} -> ${s(w.exit?.at)}`;
  const r = w.report;
  if (r === undefined) {
    lines.push(
      `${head}  ${w.signalled === undefined ? '' : `${w.signalled.signal} -> `}${exit}: no shutdown report`,
    );
  } else {
    lines.push(
      `${head}  ${w.signalled?.signal ?? r.reason ?? 'shutdown'} -> ${exit}: ${r.outcome} in ${ms(r.durationMs)}`,
    );
    const drained =
      r.inFlightAtStart === 0
        ? 'nothing in flight'
        : `${r.inFlightAtStart} in flight at shutdown (${r.completed} completed, ${r.aborted} aborted${
            r.stragglers > 0 ? `, ${r.stragglers} stragglers` : ''
          })`;
    const parked =
      r.handOff === 'parked' || r.parked > 0
        ? `parked ${r.parked}${r.stillPausing > 0 ? ` (${r.stillPausing} still pausing then)` : ''}${
            r.token === null ? '' : ` under token ${r.token}`
          }`
        : 'parked 0';
    lines.push(`${''.padEnd(14)} ${drained} · hand-off ${r.handOff} · ${parked}`);
    lines.push(
      `${''.padEnd(14)} phases: ${r.phases.map((p) => `${p.name} ${ms(p.durationMs)}${p.outcome === 'ok' ? '' : ` (${p.outcome})`}`).join(' · ')}`,
    );
    for (const e of r.errors)
      lines.push(`${''.padEnd(14)} error in ${e.phase}: ${e.error.name}: ${e.error.message}`);
  }
  const events = w.recoveries ?? (w.recovery === undefined ? [] : [w.recovery]);
  for (const rec of events) {
    if (rec.reason === 'none') continue;
    const found = `${rec.found} running${rec.deadMembers.length > 0 ? ` (left by ${rec.deadMembers.join(', ')}, dead)` : ''}`;
    const when =
      'at' in rec && w.readyAt !== undefined && rec.at >= w.readyAt
        ? `by a peer check at ${s(rec.at)}`
        : 'at start';
    lines.push(
      `${''.padEnd(14)} crash recovery ${when} (${rec.reason}, policy ${rec.policy}): ${found}, recovered ${rec.recovered}` +
        `${rec.failed > 0 ? `, failed ${rec.failed}` : ''}${rec.skipped > 0 ? `, skipped ${rec.skipped}` : ''}` +
        `${rec.complete ? '' : ', incomplete'} in ${ms(rec.durationMs)}`,
    );
    for (const e of rec.errors) lines.push(`${''.padEnd(14)} recovery error: ${e.name}: ${e.message}`);
  }
  const resumed = w.resumed;
  lines.push(
    `${''.padEnd(14)} resumed ${resumed?.resumed ?? 0}${
      resumed === undefined
        ? ''
        : ` (${resumed.rounds} round${resumed.rounds === 1 ? '' : 's'}${resumed.skipped > 0 ? `, ${resumed.skipped} skipped` : ''}${
            resumed.complete ? '' : ', incomplete'
          })`
    }`,
  );
  return lines;
}

/** The checks, one line each, with their problems below. */
export function formatChecks(checks: readonly Check[]): string[] {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.ok ? '✔' : '✘'} ${c.name}: ${c.ok ? c.detail : 'FAILED'}`);
    for (const p of c.problems) lines.push(`    - ${p}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(failed === 0 ? 'All checks passed.' : `${failed} of ${checks.length} checks FAILED.`);
  return lines;
}
