/**
 * Drives a store through DrainControllers the way a group does, one operation at a time, each timed:
 * a last member's park, a start's resume, a start's recovery after a crash. The coordinator is an
 * in-process MemoryCoordinator, so that the store is what is measured (bench/suites/scaling.ts).
 */
import type { ResumeReport, WorkflowStore } from 'graceful-drain';
import { core, memory } from './library.js';
import { uniqueName } from '../../harness/servers.js';

/** Budgets wide enough for a million workflows: the bench measures time, it does not cut it short. */
const BUDGET_MS = 1_800_000;

/** A host table of workflows, a store over it, and the raw set-based statements to compare with. */
export interface HostTables {
  /** `PostgreSQL 15.4`, `SQLite 3.45.1`. */
  readonly name: string;
  readonly store: WorkflowStore;
  /** Leaves `n` workflows, all running, and no marks (the store's or the raw ones). */
  reset(n: number): Promise<void>;
  /**
   * Called, untimed, before a timed operation that does not start from `reset()` (an unpark after its
   * park): leaves the database as a new process finds it after the one before it closed it, as `reset()`
   * does. SQLite: checkpoints the WAL, as closing its last connection does; without it, an unpark would
   * pay for copying its park's last frames to the database file. Absent where there is nothing to do.
   */
  settle?(): Promise<void>;
  /** Pauses every running workflow and marks it, set-based. Returns the count. */
  rawPark(): Promise<number>;
  /** Resumes every marked paused workflow and clears the marks, set-based. Returns the count. */
  rawUnpark(): Promise<number>;
  close(): Promise<void>;
}

/** The operations of a group on one store, timed from the call to its end (ms). */
export interface HandOffDriver {
  /** A last member's `shutdown()`, to its report: parks every running workflow (`n`, checked). */
  park(n: number): Promise<number>;
  /** A start, until `whenResumed()`: resumes every parked workflow (`n`, checked). */
  unpark(n: number): Promise<number>;
  /** Registers a member that died running the group's workflows (untimed; after `reset`). */
  crash(): Promise<void>;
  /** A start after a crash, until `whenResumed()`: recovers and resumes `n` workflows (checked). */
  recover(n: number): Promise<number>;
  close(): Promise<void>;
}

/** What a start's resume report says, short: counts and the first error. */
function describe(report: ResumeReport | undefined): string {
  if (report === undefined) return 'no resume report';
  const r = report.recovery;
  const first = [...report.errors, ...(r?.errors ?? [])][0];
  return (
    `${report.resumed} resumed${report.complete ? '' : ' (incomplete)'}` +
    (r === undefined ? '' : `, ${r.recovered} of ${r.found} recovered${r.complete ? '' : ' (incomplete)'}`) +
    (first === undefined
      ? ''
      : `; ${first instanceof Error ? `${first.name}: ${first.message}` : String(first)}`)
  );
}

/** A driver of `store`'s hand-off, in a group of its own. */
export async function handOffDriver(store: WorkflowStore): Promise<HandOffDriver> {
  const { DrainController } = await core();
  const { MemoryBackend, MemoryCoordinator } = await memory();
  const backend = new MemoryBackend();
  const group = uniqueName('bench');
  const unfenced = { memberId: 'bench', token: undefined };
  const open: { close(): Promise<void> }[] = [];
  const controller = (): InstanceType<typeof DrainController> => {
    const coordinator = new MemoryCoordinator({ backend });
    open.push(coordinator);
    return new DrainController({
      group,
      coordinator,
      store,
      shutdownTimeoutMs: BUDGET_MS,
      resumeTimeoutMs: BUDGET_MS,
    });
  };
  const closeAll = async (): Promise<void> => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  };

  /** Stops `drain` while a stand-in peer stays, so that it parks nothing and leaves the record clean. */
  const stopBesidePeer = async (drain: InstanceType<typeof DrainController>): Promise<void> => {
    const other = new MemoryCoordinator({ backend });
    open.push(other);
    const peer = await other.join(group, 'peer', { ttlMs: 600_000 });
    // Registered as running: a peer that is not looks like one still starting, and the shutdown would
    // leave the record dirty for it (the next start would recover everything).
    await store.enterGeneration?.(group, { memberId: 'peer', incarnation: peer.incarnation }, unfenced);
    const report = await drain.shutdown();
    await store.leaveGeneration?.(group, ['peer'], 'none', unfenced);
    await peer.leave();
    await closeAll();
    if (report.handOff !== 'peers-remain') throw new Error(`unexpected hand-off: ${report.handOff}`);
  };

  /** A start, timed until the resume is done; checks what it resumed (and recovered). */
  const start = async (n: number, recovered: number | undefined): Promise<number> => {
    const drain = controller();
    const t0 = performance.now();
    await drain.start();
    const report = await drain.whenResumed();
    const ms = performance.now() - t0;
    // Stopped whatever the report says: a member left running would count as a live peer later.
    await stopBesidePeer(drain);
    const ok =
      report !== undefined &&
      report.complete &&
      report.resumed === n &&
      (recovered === undefined || (report.recovery?.recovered === recovered && report.recovery.complete));
    if (!ok) throw new Error(`the start did not resume ${n}: ${describe(report)}`);
    return ms;
  };

  return {
    async park(n) {
      const drain = controller();
      await drain.start();
      await drain.whenResumed();
      const t0 = performance.now();
      const report = await drain.shutdown();
      const ms = performance.now() - t0;
      await closeAll();
      if (report.handOff !== 'parked' || report.parked !== n) {
        throw new Error(
          `the last member did not park all ${n}: ${report.handOff}, ${report.parked} parked (${String(report.errors[0]?.error)})`,
        );
      }
      return ms;
    },
    unpark: (n) => start(n, undefined),
    async crash() {
      if (store.readGeneration === undefined || store.enterGeneration === undefined) {
        throw new Error('this store cannot recover after a crash');
      }
      // A clean end resets the recovery counts and removes whoever is registered.
      const record = await store.readGeneration(group);
      const ids = record.members.map((m) => m.memberId);
      await store.leaveGeneration?.(group, ids, 'clean', unfenced);
      await store.enterGeneration(group, { memberId: 'dead', incarnation: 'dead-incarnation' }, unfenced);
    },
    recover: (n) => start(n, n),
    close: closeAll,
  };
}
