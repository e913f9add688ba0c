/**
 * `npm run demo -- --crash-peer`: the demo's cluster on the sticky engine (each worker drives the
 * workflows it took up, which no other worker may take while it holds them), with a store that knows who
 * drives what (the host table's `member` column, `ownerColumn: 'member'`). One worker, not the last, is
 * killed with SIGKILL mid-run; the others keep running, and their peer check (every
 * `peerCheckIntervalMs`) evicts the dead member once its membership is gone and hands back the running
 * workflows it owned, which the live workers then drive to the end. Nobody stops, nobody restarts.
 */
import { type Check, check, hostChecks } from '../../harness/host-checks.js';
import { OWNER_COLUMN, type WorkflowRow } from '../../harness/host-db.js';
import { checkCleanShutdowns, checkHandOffs } from './checks.js';
import type { WorkerProcess } from './cluster.js';
import { checkRecoveredOnce, markedOrRecovered } from './crash.js';
import { Scenario, ScenarioError } from './scenario.js';
import type { WorkerSummary } from './summary.js';

/** Workflows each worker holds at once. */
const HELD = 4;

/**
 * Short TTLs: a killed worker leaves the group within a second and a half, and a live member's peer check
 * (every 300 ms) finds it gone soon after.
 */
const TIMINGS = Object.freeze({
  memberTtlMs: 1500,
  lockTtlMs: 1500,
  claimTtlMs: 1500,
  peerCheckIntervalMs: 300,
});

/** A `recovery` event a worker sent, on the orchestrator's clock. */
type RecoveryEvent = NonNullable<WorkerSummary['recoveries']>[number];

/** SIGKILL to one worker while the others run; their peer check recovers its workflows. */
export class CrashPeerScenario extends Scenario {
  /** The worker killed mid-run (not the last one running). */
  killed: WorkerProcess | undefined;
  /** When it was killed, on the orchestrator's clock. */
  killedAt: number | undefined;
  /** What it held when it died: running, held by a process that is gone. */
  stranded: WorkflowRow[] = [];
  /** The workers that kept running. */
  survivors: WorkerProcess[] = [];
  /** How long after the kill the peer check handed its workflows back, in ms. */
  recoveredAfterMs: number | undefined;
  /** The killed worker's incarnation, from the group's generation record before the kill. */
  incarnation: string | undefined;
  /** What a write fenced with the dead incarnation got once it was evicted: the error, or the outcome. */
  zombieWrite: { readonly rejected: boolean; readonly what: string } | undefined;

  override workerFlags(): Readonly<Record<string, string | number>> {
    return { engine: 'sticky', recovery: 'resume', concurrency: HELD, ownerColumn: OWNER_COLUMN, ...TIMINGS };
  }

  /** The orchestrator's store knows who drives what too: it sends the dead incarnation's write (below). */
  override hostOptions(): { readonly ownerColumn?: string } {
    return { ownerColumn: OWNER_COLUMN };
  }

  override get title(): string {
    return 'graceful-drain demo: a worker killed while the others run, its workflows recovered by a peer check';
  }

  override async strandedNow(): Promise<number | undefined> {
    const dead = this.killed?.memberId;
    return dead === undefined ? undefined : (await this.heldBy(dead)).length;
  }

  /** The worker to kill: the middle one (never the last one running: the others keep the group). */
  victim(workers: readonly WorkerProcess[]): WorkerProcess {
    return workers[Math.floor((workers.length - 1) / 2)] as WorkerProcess;
  }

  override async run(): Promise<void> {
    const o = this.o;
    // 1. The cluster starts; each worker takes up to HELD workflows and drives them.
    const workers = await this.startCluster();

    // 2. One worker dies mid-run: no drain, no leave; what it held stays `running`, held by it.
    await this.waitFor(
      '35% of the steps',
      (s) => s.counts.stepsDone >= 0.35 * this.completable(s),
      this.phaseTimeoutMs,
    );
    const victim = this.victim(workers);
    this.survivors = workers.filter((w) => w !== victim);
    this.log(
      `SIGKILL -> ${victim.memberId} while ${this.survivors.map((w) => w.memberId).join(', ')} run on: no drain, no leave`,
    );
    const record = await this.store.readGeneration?.(this.group);
    this.incarnation = record?.members.find((m) => m.memberId === victim.memberId)?.incarnation;
    this.events.push({ at: this.clock(), label: `SIGKILL ${victim.memberId}` });
    victim.signal('SIGKILL');
    await victim.exited;
    this.killed = victim;
    this.killedAt = this.clock();
    this.stranded = await this.heldBy(victim.memberId);
    this.log(
      `${victim.memberId} is dead: ${this.stranded.length} workflows it drove are stranded, running and held by it ` +
        `(${this.stranded.map((w) => `${w.id} at step ${w.step}/${w.steps}`).join(', ') || 'none'}); ` +
        'no live worker takes a held workflow',
    );

    // 3. Once its membership lapses, a live worker's peer check evicts it and hands its workflows back.
    const found = await this.waitForPeerRecovery(victim.memberId);
    this.recoveredAfterMs = found.at - (this.killedAt ?? 0);
    this.events.push({ at: found.at, label: `peer check: recovered ${found.recovered}` });
    this.log(
      `${(this.recoveredAfterMs / 1000).toFixed(1)} s after the kill, a peer check evicted ${victim.memberId} and ` +
        `handed back ${found.recovered} of its workflows, while the group kept running`,
    );

    // 4. The live workers drive everything to the end.
    await this.waitFor(
      'every workflow not paused by a user to finish',
      (s) => s.counts.succeeded >= o.workflows - o.userPaused && s.parked === 0,
      this.phaseTimeoutMs,
    );
    this.log('every workflow not paused by a user has finished');

    // 5. What the dead incarnation would write if it came back (a zombie: cut off, not dead): rejected.
    await this.sendZombieWrite(victim.memberId);

    // 6. The whole cluster stops at once: the last member parks what runs (nothing is left running).
    this.events.push({ at: this.clock(), label: 'cluster stop' });
    this.log(`SIGTERM -> ${this.survivors.map((w) => w.memberId).join(', ')} at once`);
    this.finalStop.push(...this.survivors);
    await Promise.all(this.survivors.map((w) => this.stop(w)));
    await this.stopSampling();
  }

  /**
   * Sends, through the store, a park fenced with the dead worker's member id and evicted incarnation, as
   * the worker would if it had only been cut off and came back: the store must reject it with
   * `EvictedMemberError` before it writes anything.
   */
  async sendZombieWrite(dead: string): Promise<void> {
    const id = this.stranded[0]?.id;
    if (this.incarnation === undefined || id === undefined) {
      this.zombieWrite = { rejected: false, what: 'not sent: no incarnation or nothing stranded' };
      return;
    }
    try {
      const results = await this.store.park([id], {
        memberId: dead,
        token: undefined,
        incarnation: this.incarnation,
      });
      this.zombieWrite = { rejected: false, what: `accepted: ${JSON.stringify(results)}` };
    } catch (error) {
      const e = error as { name?: string; code?: string; message?: string };
      this.zombieWrite = {
        rejected: e.code === 'ERR_EVICTED_MEMBER',
        what: `${e.name ?? 'Error'} (${e.code ?? 'no code'}): ${e.message ?? String(error)}`,
      };
    }
    this.log(
      `a park of ${id} fenced with ${dead}'s evicted incarnation ${this.incarnation} (as a zombie would send it): ` +
        (this.zombieWrite.rejected ? `rejected, ${this.zombieWrite.what}` : this.zombieWrite.what),
    );
  }

  /** Waits for a live worker's `recovery` event of reason `peer-crash` naming `dead`. */
  async waitForPeerRecovery(dead: string): Promise<RecoveryEvent> {
    const end = this.clock() + 30_000;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const found = this.survivors
        .flatMap((w) => w.recoveries)
        .find((r) => r.reason === 'peer-crash' && r.deadMembers.includes(dead));
      if (found !== undefined) return found;
      if (this.clock() > end) {
        throw new ScenarioError(`timed out after 30s waiting for a peer check to recover ${dead}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  override async checks(): Promise<Check[]> {
    const parkedLeft = await this.listParked();
    const snapshot = await this.db.snapshot();
    const { all: summaries, of, one } = this.summariesBy();
    const killed = one(this.killed);
    const markedEver = markedOrRecovered(this.markedEver, summaries);
    return [
      checkHandOffs([], of(this.finalStop)),
      checkPeerRecovered(this.stranded, killed, of(this.survivors), this.killedAt),
      checkRecoveredOnce(summaries),
      check(
        "the dead incarnation's write is rejected",
        this.zombieWrite?.rejected === true ? [] : [this.zombieWrite?.what ?? 'not sent'],
        `a park fenced with ${this.killed?.memberId ?? '?'}'s evicted incarnation, sent after the recovery: ${
          this.zombieWrite?.what ?? 'not sent'
        }; nothing written`,
      ),
      ...hostChecks(snapshot, { markedEver, parkedLeft }),
      checkCleanShutdowns(summaries, killed),
    ];
  }

  override json(): Record<string, unknown> {
    return {
      crashPeer: {
        killed: this.killed?.memberId ?? null,
        stranded: this.stranded.map((w) => w.id),
        recoveredAfterMs: this.recoveredAfterMs ?? null,
        incarnation: this.incarnation ?? null,
        zombieWrite: this.zombieWrite ?? null,
      },
    };
  }
}

const ids = (list: Iterable<string>): string => [...list].join(', ') || 'none';

/**
 * A live worker's peer check recovered the dead worker's workflows while the group ran: the killed worker
 * held some (else there was nothing to recover); exactly one `recovery` event of reason `peer-crash` names
 * it among the dead, from a worker that was running then (after its start, before any stop); the
 * workflows the live workers recovered are exactly the ones it held (none a live member drove); no start
 * gate recovered anything (nobody restarted).
 */
export function checkPeerRecovered(
  stranded: readonly WorkflowRow[],
  killed: WorkerSummary | undefined,
  survivors: readonly WorkerSummary[],
  killedAt: number | undefined,
): Check {
  const problems: string[] = [];
  if (killed === undefined) problems.push('no worker was killed');
  else if (killed.exit?.signal !== 'SIGKILL' || killed.report !== undefined) {
    problems.push(`${killed.memberId}: expected killed by SIGKILL with no report`);
  }
  if (stranded.length === 0) problems.push('the killed worker held no workflow: nothing to recover');
  const dead = killed?.memberId ?? '';
  const events = survivors.flatMap((w) =>
    (w.recoveries ?? []).filter((r) => r.reason !== 'none').map((r) => ({ w, r })),
  );
  const naming = events.filter(({ r }) => r.reason === 'peer-crash' && r.deadMembers.includes(dead));
  if (naming.length !== 1) {
    problems.push(
      `${naming.length} peer-crash recoveries name ${dead} (${naming.map(({ w }) => w.memberId).join(', ') || 'none'}), expected one`,
    );
  }
  for (const { w, r } of events) {
    if (r.reason !== 'peer-crash') problems.push(`${w.memberId}: a recovery of reason ${r.reason}`);
    if (r.errors.length > 0) {
      problems.push(`${w.memberId}: recovery errors: ${r.errors.map((e) => e.message).join('; ')}`);
    }
  }
  const first = naming[0];
  if (first !== undefined) {
    const { w, r } = first;
    const stoppedAt = w.signalled?.at ?? Infinity;
    if (w.readyAt === undefined || r.at < w.readyAt || r.at >= stoppedAt) {
      problems.push(`${w.memberId}: the recovery was not made while it ran (a start gate or a stop)`);
    }
    if (killedAt !== undefined && r.at < killedAt) problems.push(`${w.memberId}: recovered before the kill`);
    if (!r.complete) problems.push(`${w.memberId}: the recovery did not complete`);
  }
  const handedBack = new Map<string, string[]>();
  for (const w of survivors) {
    for (const outcome of ['paused', 'pausing', 'failed'] as const) {
      for (const id of w.recovered[outcome] ?? [])
        handedBack.set(id, [...(handedBack.get(id) ?? []), w.memberId]);
    }
  }
  const held = new Set(stranded.map((w) => w.id));
  for (const id of held) if (!handedBack.has(id)) problems.push(`${id}: stranded, never recovered`);
  for (const id of handedBack.keys()) {
    if (!held.has(id)) problems.push(`${id}: recovered, but the dead worker did not hold it`);
  }
  const by = first?.w.memberId ?? 'nobody';
  const after =
    first === undefined || killedAt === undefined ? '?' : `${((first.r.at - killedAt) / 1000).toFixed(1)} s`;
  return check(
    "a live worker recovered the dead one's workflows while the group ran",
    problems,
    `${dead} held ${stranded.length} (${ids(held)}); ${by}'s peer check evicted it ${after} after the kill ` +
      `(reason peer-crash, dead ${first?.r.deadMembers.join(', ') ?? '?'}) and handed back exactly those: ` +
      `${ids(handedBack.keys())}; no workflow a live worker drove was touched. The steps it had in flight at ` +
      'the kill never committed: they ran again on a live worker (a step body at least once, its record exactly once)',
  );
}
