/**
 * `npm run demo -- --crash`: the demo's cluster on the sticky engine (each worker drives the workflows
 * it took up, which no other worker may take while it holds them), the last worker killed with SIGKILL
 * mid-run, and the next start recovering what it left running before intake opens.
 *
 * With `--recovery report` the workers only report the crash: the run shows the workflows it strands.
 */
import { type Check, check, hostChecks } from '../../harness/host-checks.js';
import { type HostSnapshot, ownerWorker, STATUS, type WorkflowRow } from '../../harness/host-db.js';
import { openCoordinator } from '../../harness/backend.js';
import { checkCleanShutdowns, checkHandOffs } from './checks.js';
import type { WorkerProcess } from './cluster.js';
import { Scenario, ScenarioError } from './scenario.js';
import type { WorkerSummary } from './summary.js';

/** Workflows each worker holds at once. */
const HELD = 4;

/** Short TTLs: a killed worker leaves the group within a second and a half. */
const TIMINGS = Object.freeze({ memberTtlMs: 1500, lockTtlMs: 1500, claimTtlMs: 1500 });

/** The rolling stop, then SIGKILL to the last worker; the next start recovers (or only reports). */
export class CrashScenario extends Scenario {
  /** The last worker, killed mid-run. */
  killed: WorkerProcess | undefined;
  /** What it held when it died: running, held by nobody alive. */
  stranded: WorkflowRow[] = [];
  /** The same rows when the next start began (the crash changed nothing of them meanwhile). */
  strandedAtRestart: WorkflowRow[] = [];
  /** How long the killed worker stayed in the group after the kill, in ms. */
  leftAfterMs: number | undefined;
  /** The workers of the next start. */
  restarted: WorkerProcess[] = [];

  get recovery(): 'resume' | 'report' {
    return this.o.recovery ?? 'resume';
  }

  override workerFlags(): Readonly<Record<string, string | number>> {
    return { engine: 'sticky', recovery: this.recovery, concurrency: HELD, ...TIMINGS };
  }

  override get title(): string {
    return `graceful-drain demo: rolling stop, the last worker killed, ${
      this.recovery === 'resume' ? 'crash recovery at the next start' : 'no recovery (report only)'
    }`;
  }

  override async strandedNow(): Promise<number | undefined> {
    const dead = this.killed?.memberId;
    return dead === undefined ? undefined : (await this.heldBy(dead)).length;
  }

  override async run(): Promise<void> {
    const o = this.o;
    // 1. The cluster starts; each worker takes up to HELD workflows and drives them.
    const first = await this.startCluster();

    // 2. Rolling stop of all but the last: each gives back what it held, to its peers.
    const last = first[first.length - 1] as WorkerProcess;
    for (const [i, worker] of first.slice(0, -1).entries()) {
      const share = 0.15 + (0.3 * (i + 1)) / first.length;
      await this.waitFor(
        `${Math.round(share * 100)}% of the steps`,
        (s) => s.counts.stepsDone >= share * this.completable(s),
        this.phaseTimeoutMs,
      );
      this.log(`SIGTERM -> ${worker.memberId}`);
      this.rollingStop.push(worker);
      await this.stop(worker);
    }

    // 3. The last one dies mid-run: no drain, no park; what it held stays `running`, held by nobody.
    await this.waitFor(
      '45% of the steps',
      (s) => s.counts.stepsDone >= 0.45 * this.completable(s),
      this.phaseTimeoutMs,
    );
    this.log(`SIGKILL -> ${last.memberId} (the last one running), mid-run: no drain, no park`);
    this.events.push({ at: this.clock(), label: `SIGKILL ${last.memberId}` });
    last.signal('SIGKILL');
    await last.exited;
    this.killed = last;
    const killedAt = this.clock();
    const held = await this.db.held();
    this.stranded = held.filter((w) => ownerWorker(w.owner) === last.memberId);
    const waiting = (await this.db.counts(Date.now())).running - held.length;
    this.log(
      `${last.memberId} is dead: ${this.stranded.length} workflows it held are stranded, running with ` +
        `nobody to drive them (${this.stranded.map((w) => `${w.id} at step ${w.step}/${w.steps}`).join(', ')}); ` +
        `${waiting} more wait, held by nobody`,
    );

    // 4. It leaves the group once its membership lapses.
    await this.waitForGroupEmpty();
    this.leftAfterMs = this.clock() - killedAt;
    this.log(
      `${last.memberId} has left the group, ${(this.leftAfterMs / 1000).toFixed(1)} s after the kill (its process is gone: no heartbeat)`,
    );
    const rows = new Map((await this.db.snapshot()).workflows.map((w) => [w.id, w]));
    this.strandedAtRestart = this.stranded.map((w) => rows.get(w.id) as WorkflowRow);

    // 5. The next start: its gate recovers what the dead generation left running, before intake opens.
    await new Promise((r) => setTimeout(r, 300));
    this.events.push({ at: this.clock(), label: 'restart' });
    this.restarted = await this.startWorkers(2);
    const open = this.recovery === 'resume' ? 0 : this.stranded.length;
    await this.waitFor(
      this.recovery === 'resume'
        ? 'every workflow not paused by a user to finish'
        : 'every workflow not paused by a user nor stranded to finish',
      (s) => s.counts.succeeded >= o.workflows - o.userPaused - open && s.parked === 0,
      this.phaseTimeoutMs,
    );
    if (this.recovery === 'resume') this.log('every workflow not paused by a user has finished');
    else {
      this.log(
        `every other workflow has finished; the ${open} stranded are still running, held by ${last.memberId}, ` +
          'which is dead: no start recovers them (policy report)',
      );
    }

    // 6. The whole cluster stops at once: the last member parks what runs (with report: the stranded).
    this.events.push({ at: this.clock(), label: 'cluster stop' });
    this.log(`SIGTERM -> ${this.restarted.map((w) => w.memberId).join(', ')} at once`);
    this.finalStop.push(...this.restarted);
    await Promise.all(this.restarted.map((w) => this.stop(w)));
    await this.stopSampling();
  }

  /** Waits until no member is left in the group (the killed one's membership lapsed). */
  async waitForGroupEmpty(): Promise<void> {
    const coordinator = await openCoordinator(this.config);
    try {
      const end = this.clock() + 30_000;
      for (;;) {
        if (this.failure !== undefined) throw this.failure;
        if ((await coordinator.members(this.group)).length === 0) return;
        if (this.clock() > end) throw new ScenarioError('timed out after 30s waiting for the group to empty');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await coordinator.close();
    }
  }

  override async checks(): Promise<Check[]> {
    const parkedLeft = await this.listParked();
    const snapshot = await this.db.snapshot();
    const { all: summaries, of, one } = this.summariesBy();
    const killed = one(this.killed);
    const restarted = of(this.restarted);
    if (this.recovery === 'report') {
      // The stranded ones never finish: the other checks are of everything else; the marks left are theirs.
      const stranded = new Set(this.stranded.map((w) => w.id));
      const markedEver = new Set([...this.markedEver].filter((id) => !stranded.has(id)));
      const rest: HostSnapshot = {
        ...snapshot,
        workflows: snapshot.workflows.filter((w) => !stranded.has(w.id)),
        stepLog: snapshot.stepLog.filter((s) => !stranded.has(s.workflowId)),
      };
      return [
        checkHandOffs(of(this.rollingStop), of(this.finalStop), killed),
        checkStranded(this.stranded, this.strandedAtRestart, restarted, snapshot, parkedLeft),
        ...hostChecks(rest, {
          markedEver,
          parkedLeft: parkedLeft.filter((p) => !stranded.has(p.id)),
        }),
        checkCleanShutdowns(summaries, killed),
      ];
    }
    const markedEver = markedOrRecovered(this.markedEver, summaries);
    return [
      checkHandOffs(of(this.rollingStop), of(this.finalStop), killed),
      checkWouldStrand(this.stranded, this.strandedAtRestart),
      checkRecovered(this.stranded, killed, restarted),
      checkRecoveredOnce(summaries),
      ...hostChecks(snapshot, { markedEver, parkedLeft }),
      checkCleanShutdowns(summaries, killed),
    ];
  }

  override json(): Record<string, unknown> {
    return {
      crash: {
        recovery: this.recovery,
        killed: this.killed?.memberId ?? null,
        stranded: this.stranded.map((w) => w.id),
        leftAfterMs: this.leftAfterMs ?? null,
      },
    };
  }
}

/**
 * The workflows marked at some point: those the sampler saw, and those a recovery marked (the sampler may
 * have missed their marks: the resume is quick).
 */
export function markedOrRecovered(
  markedEver: ReadonlySet<string>,
  summaries: readonly WorkerSummary[],
): Set<string> {
  return new Set([
    ...markedEver,
    ...summaries.flatMap((w) => [...(w.recovered.paused ?? []), ...(w.recovered.pausing ?? [])]),
  ]);
}

const ids = (rows: readonly { readonly id: string }[]): string =>
  rows.length === 0 ? 'none' : rows.map((r) => r.id).join(', ');

/** Whether `row` is still as the crash left it: running, held by the same dead owner, at the same step. */
function untouched(row: WorkflowRow | undefined, then: WorkflowRow): boolean {
  return row?.status === STATUS.running && row.owner === then.owner && row.step === then.step;
}

/**
 * What recovery is for: the crash left workflows held by a worker that is gone, and nothing changed them
 * until the next start (no worker takes a held workflow).
 */
export function checkWouldStrand(stranded: readonly WorkflowRow[], atRestart: readonly WorkflowRow[]): Check {
  const problems: string[] = [];
  if (stranded.length === 0) problems.push('the killed worker held no workflow: nothing to recover');
  stranded.forEach((w, i) => {
    if (!untouched(atRestart[i], w)) problems.push(`${w.id}: changed before the next start`);
  });
  return check(
    'the crash strands what the dead worker held',
    problems,
    `${stranded.length} workflows (${ids(stranded)}) running, held by the dead worker, unchanged until the next start: ` +
      'without recovery (--recovery report) they stay so for good',
  );
}

/**
 * The next start recovered them, once: one worker's start gate found the crash (the killed worker among
 * the dead) and recovered every stranded workflow; no other start recovered anything.
 */
export function checkRecovered(
  stranded: readonly WorkflowRow[],
  killed: WorkerSummary | undefined,
  restarted: readonly WorkerSummary[],
): Check {
  const problems: string[] = [];
  const recoverers = restarted.filter(
    (w) => (w.recovery?.recovered ?? 0) > 0 || w.recovery?.reason === 'crash',
  );
  const recoverer = recoverers[0];
  if (recoverers.length !== 1) {
    problems.push(
      `${recoverers.length} starts recovered (${recoverers.map((w) => w.memberId).join(', ') || 'none'}), expected one`,
    );
  }
  const r = recoverer?.recovery;
  if (recoverer !== undefined && r !== undefined) {
    if (r.reason !== 'crash') problems.push(`${recoverer.memberId}: reason ${r.reason}, expected crash`);
    if (killed !== undefined && !r.deadMembers.includes(killed.memberId))
      problems.push(
        `${recoverer.memberId}: ${killed.memberId} not among the dead (${r.deadMembers.join(', ')})`,
      );
    if (!r.complete) problems.push(`${recoverer.memberId}: the recovery did not complete`);
    const handedBack = new Set([
      ...(recoverer.recovered.paused ?? []),
      ...(recoverer.recovered.pausing ?? []),
    ]);
    for (const w of stranded)
      if (!handedBack.has(w.id)) problems.push(`${w.id}: stranded, not recovered by ${recoverer.memberId}`);
    if (handedBack.size !== r.recovered)
      problems.push(
        `${recoverer.memberId}: reported ${r.recovered} recovered, its store calls ${handedBack.size}`,
      );
  }
  for (const w of restarted) {
    if (w !== recoverer && (w.recovery?.recovered ?? 0) > 0)
      problems.push(`${w.memberId} recovered ${w.recovery?.recovered} too`);
  }
  return check(
    'the next start recovered them before intake opened',
    problems,
    recoverer === undefined || r === undefined
      ? 'no start recovered'
      : `${recoverer.memberId}'s start found ${r.found} running left by ${r.deadMembers.join(', ')} and recovered ${r.recovered} ` +
          `(the ${stranded.length} stranded and ${r.recovered - stranded.length} waiting, held by nobody) in ${Math.round(r.durationMs)} ms; ` +
          'then the resume at start resumed them',
  );
}

/** No workflow was recovered twice: across every start, each id at most once. */
export function checkRecoveredOnce(workers: readonly WorkerSummary[]): Check {
  const count = new Map<string, number>();
  for (const w of workers) {
    for (const [outcome, list] of Object.entries(w.recovered)) {
      if (outcome === 'skipped') continue;
      for (const id of list) count.set(id, (count.get(id) ?? 0) + 1);
    }
  }
  const twice = [...count].filter(([, n]) => n > 1);
  return check(
    'no workflow recovered twice',
    twice.map(([id, n]) => `${id}: recovered ${n} times`),
    `${count.size} workflows recovered, each once`,
  );
}

/**
 * Without recovery (`--recovery report`): the next start found the crash and recovered nothing; the
 * stranded workflows stayed held by the dead worker, with no step run, while every other one finished;
 * only the last member's park at the cluster stop took them (their marks are left: the next start would
 * resume them).
 */
export function checkStranded(
  stranded: readonly WorkflowRow[],
  atRestart: readonly WorkflowRow[],
  restarted: readonly WorkerSummary[],
  snapshot: HostSnapshot,
  parkedLeft: readonly { readonly id: string }[],
): Check {
  const problems: string[] = [];
  if (stranded.length === 0) problems.push('the killed worker held no workflow');
  stranded.forEach((w, i) => {
    if (!untouched(atRestart[i], w)) problems.push(`${w.id}: changed before the next start`);
  });
  const reporter = restarted.find((w) => w.recovery?.reason === 'crash');
  if (reporter === undefined) problems.push('no start reported the crash');
  for (const w of restarted) {
    if ((w.recovery?.recovered ?? 0) > 0) problems.push(`${w.memberId} recovered ${w.recovery?.recovered}`);
  }
  const rows = new Map(snapshot.workflows.map((w) => [w.id, w]));
  const marked = new Set(parkedLeft.map((p) => p.id));
  for (const w of stranded) {
    const now = rows.get(w.id);
    if (now?.step !== w.step) problems.push(`${w.id}: at step ${now?.step}, stranded at step ${w.step}`);
    if (!marked.has(w.id)) problems.push(`${w.id}: not parked at the cluster stop (${now?.status})`);
  }
  const extra = parkedLeft.filter((p) => !stranded.some((w) => w.id === p.id));
  if (extra.length > 0) problems.push(`marks left on others: ${ids(extra)}`);
  return check(
    'without recovery the crash strands them',
    problems,
    `${stranded.length} workflows (${ids(stranded)}) held by the dead worker: ${
      reporter?.memberId ?? 'the next start'
    } found ${reporter?.recovery?.found ?? '?'} running and recovered none (policy report); no step of them ran while every other workflow ` +
      'finished; only the cluster stop parked them, the next start would resume them',
  );
}
