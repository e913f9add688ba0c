/**
 * A crash stop of the whole cluster (the `crash-last` and `crash-all` faults): every member but one
 * stops gracefully and the last is killed mid-run, or every member is killed at once. What the killed
 * members held is stranded: running, held by nobody alive (the members run the sticky engine). Once
 * they are out of the group, 3 in 4 a user pauses a running workflow (the recovery must skip it), and
 * new members start; once they are all ready (their start gates done, intake open), the running
 * workflows held by a member that is not alive are recorded (none, if the start recovered them).
 */
import { type BackendConfig, openCoordinator } from '../../harness/backend.js';
import { type HostDb, ownerWorker } from '../../harness/host-db.js';
import type { MemberProcess } from '../../harness/member.js';
import type { Random } from '../../harness/random.js';
import { TIMINGS } from '../faults.js';
import { clock, type HarnessEvent, type Recorder } from '../history.js';
import type { ChaosCluster } from './cluster.js';
import type { Faults } from './inject.js';
import type { Workload } from './scheduler.js';
import type { SimulatedUser } from './user.js';

/** What a crash stop acts on, from the run (run.ts). */
export interface CrashStopContext {
  readonly cluster: ChaosCluster;
  readonly faults: Faults;
  readonly db: HostDb;
  readonly user: SimulatedUser;
  readonly workload: Workload;
  readonly config: BackendConfig;
  readonly group: string;
  readonly record: Recorder<HarnessEvent>;
  readonly log: (line: string) => void;
  /** Which member is kept for last, when it is killed, whether the user acts: a stream of its own. */
  readonly random: Random;
  /** Heals and disarms the faults, waits out the crashed and frozen, lets those stopping go. */
  quiesce(what: string): Promise<void>;
  /** Starts a member in every empty slot and waits until all are ready. */
  startAll(what: string): Promise<void>;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** Runs a crash stop of `kind`; its lines start with `label`. */
export async function crashStop(
  ctx: CrashStopContext,
  kind: 'crash-last' | 'crash-all',
  label: string,
  signal: AbortSignal,
): Promise<void> {
  const { cluster, faults, random: r } = ctx;
  const wasRestarting = cluster.restarting;
  await ctx.quiesce(
    kind === 'crash-last'
      ? 'every member but one stops gracefully, then the last one is killed'
      : 'every member is killed at once',
  );
  await ctx.workload.topUp();
  if (cluster.live().length === 0) await ctx.startAll(`the members before the ${kind}`);
  const live = cluster.live();
  let killed: MemberProcess[] = live;
  if (kind === 'crash-last') {
    const last = live[Math.floor(r() * live.length)] as MemberProcess;
    const others = live.filter((m) => m !== last);
    killed = [last];
    faults.begin(
      kind,
      { members: live },
      0,
      `${others.length} stopped gracefully, then ${last.memberId} killed`,
    );
    for (const m of others) faults.signal(m, 'SIGTERM');
    await Promise.race([
      Promise.all(others.map((m) => m.exited)),
      sleep(TIMINGS.shutdownTimeoutMs + TIMINGS.closeTimeoutMs + 3000, signal),
    ]);
    for (const m of others) if (m.alive) faults.signal(m, 'SIGKILL');
    await Promise.all(others.map((m) => m.exited));
  } else faults.begin(kind, { members: live }, 0, `${live.length} members killed at once`);
  // Mid-run: steps in flight (the last one has taken up what the others gave back).
  await sleep(TIMINGS.stepMs * (1 + 2 * r()), signal);
  for (const m of killed) faults.signal(m, 'SIGKILL');
  await Promise.all(killed.map((m) => m.exited));
  const killedAt = clock();
  const dead = new Set(killed.map((m) => m.memberId));
  const stranded = (await ctx.db.held()).filter((w) => dead.has(ownerWorker(w.owner) ?? ''));
  ctx.record({ type: 'crash-stop', kind, killed: [...dead], stranded: stranded.map((w) => w.id) });
  const ids = stranded.slice(0, 6).map((w) => w.id);
  ctx.log(
    `${label}: ${[...dead].join(', ')} killed; ${stranded.length} workflows stranded (running, held by the dead)` +
      (ids.length === 0 ? '' : `: ${ids.join(', ')}`),
  );
  // Out of the group: a start that still saw them alive would recover nothing.
  await waitGroupEmpty(ctx, signal);
  const leftAfterMs = clock() - killedAt;
  if (!signal.aborted && r() < 0.75) {
    const what = await ctx.user
      .act('user-pause')
      .catch((error: unknown) => ctx.log(`(user: ${(error as Error).message})`));
    if (typeof what === 'string') {
      faults.begin('user-pause', {}, 0, what);
      ctx.log(`${label}: a user ${what}`);
    }
  }
  if (signal.aborted) return;
  const hostile = cluster.hostileShare;
  cluster.hostileShare = 0;
  try {
    await ctx.startAll(`the members after the ${kind}`);
  } finally {
    cluster.hostileShare = hostile;
  }
  const alive = new Set(cluster.live().map((m) => m.memberId));
  const left = (await ctx.db.held()).filter((w) => !alive.has(ownerWorker(w.owner) ?? ''));
  ctx.record({
    type: 'crash-settled',
    kind,
    members: [...alive],
    stranded: left.map((w) => ({ id: w.id, owner: w.owner ?? '' })),
    leftAfterMs,
  });
  ctx.log(
    `${label}: the new members are ready (the dead left the group ${(leftAfterMs / 1000).toFixed(1)} s after the kill); ` +
      `${left.length === 0 ? 'nothing is left stranded' : `${left.length} workflows still stranded: ${left.map((w) => w.id).join(', ')}`}`,
  );
  cluster.restarting = wasRestarting;
}

/** Waits until nobody is left in the group (the killed members' memberships lapsed), within 3 TTLs. */
async function waitGroupEmpty(ctx: CrashStopContext, signal: AbortSignal): Promise<void> {
  const coordinator = await openCoordinator(ctx.config);
  try {
    const until = clock() + 3 * TIMINGS.memberTtlMs + 2000;
    while (!signal.aborted && clock() < until) {
      const members = await coordinator.members(ctx.group).catch(() => undefined);
      if (members?.length === 0) return;
      await sleep(100, signal);
    }
    ctx.log('(the killed members were still in the group 3 TTLs after the kill)');
  } finally {
    await coordinator.close();
  }
}

/**
 * A crash of one member while the others run (the `crash-peer` fault): every fault healed, at least two
 * members running; one of them (never the last one running) is SIGKILLed mid-run. What it drove stays
 * running, held by it, and no live member takes a held workflow: only the survivors' peer check (the
 * store's owner column) hands it back, once the dead member's membership is gone. Waits until nothing is
 * held by the dead member any more, or 3 membership TTLs and 2 peer-check intervals after the kill, and
 * records what is left then.
 */
export async function crashPeer(ctx: CrashStopContext, label: string, signal: AbortSignal): Promise<void> {
  const { cluster, faults, random: r } = ctx;
  await ctx.quiesce('one member is killed while the others run on');
  await ctx.workload.topUp();
  if (cluster.live().length < 2) await ctx.startAll('the members before the crash-peer');
  const live = cluster.live();
  if (live.length < 2 || signal.aborted) return;
  // Mid-run: the members drive workflows, steps in flight. The victim is one that holds some (else the
  // crash strands nothing and proves nothing), drawn among those that hold the most.
  await sleep(TIMINGS.stepMs * (2 + 2 * r()), signal);
  let victim: MemberProcess | undefined;
  for (let tries = 0; victim === undefined && tries < 30 && !signal.aborted; tries++) {
    const held = new Map<string, number>();
    for (const w of await ctx.db.held()) {
      const who = ownerWorker(w.owner) ?? '';
      held.set(who, (held.get(who) ?? 0) + 1);
    }
    const most = Math.max(0, ...live.map((m) => held.get(m.memberId) ?? 0));
    const candidates = live.filter((m) => m.alive && most > 0 && held.get(m.memberId) === most);
    victim = candidates[Math.floor(r() * candidates.length)];
    if (victim === undefined) await sleep(100, signal);
  }
  victim ??= live[Math.floor(r() * live.length)] as MemberProcess;
  const survivors = live.filter((m) => m !== victim);
  faults.begin(
    'crash-peer',
    { members: [victim] },
    0,
    `${victim.memberId} killed while ${survivors.length} run on`,
  );
  faults.signal(victim, 'SIGKILL');
  await victim.exited;
  const killedAt = clock();
  const heldByDead = async (): Promise<string[]> =>
    (await ctx.db.held()).filter((w) => ownerWorker(w.owner) === victim.memberId).map((w) => w.id);
  const stranded = await heldByDead();
  ctx.record({
    type: 'crash-peer',
    killed: victim.memberId,
    survivors: survivors.map((m) => m.memberId),
    stranded,
  });
  ctx.log(
    `${label}: ${victim.memberId} killed while ${survivors.map((m) => m.memberId).join(', ')} run on; ` +
      `${stranded.length} workflows stranded (running, held by it)${stranded.length === 0 ? '' : `: ${stranded.slice(0, 6).join(', ')}`}`,
  );
  const until = killedAt + 3 * TIMINGS.memberTtlMs + 2 * TIMINGS.peerCheckIntervalMs + 1000;
  let left = stranded;
  while (!signal.aborted && left.length > 0 && clock() < until) {
    await sleep(100, signal);
    left = await heldByDead();
  }
  const afterMs = clock() - killedAt;
  ctx.record({
    type: 'crash-peer-settled',
    killed: victim.memberId,
    members: cluster.live().map((m) => m.memberId),
    stranded: left,
    afterMs,
  });
  ctx.log(
    `${label}: ${(afterMs / 1000).toFixed(1)} s after the kill, ${
      left.length === 0
        ? `nothing is held by ${victim.memberId} any more`
        : `${left.length} workflows still held by ${victim.memberId}: ${left.join(', ')}`
    }`,
  );
}
